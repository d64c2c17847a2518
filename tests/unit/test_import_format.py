"""Imported events are stored in the ledger's fixed format: existing databases and the hash chain depend on it.

``tests/data/import_sample_{1,2}.jsonl`` are two import files (every action, plus part
of the synthetic caseload; the second file goes on with aggregates the first one
stored). ``tests/data/import_sample_stored.jsonl`` is what the ledger stored for them,
position by position: originator id, version, topic and the state's exact bytes, with
only the recorded time (``timestamp``, always the first key) left blank. The file is a
record of the stored format, not something to regenerate when this test fails. It was
rewritten once, for decision 0025, in which only the originator ids of households, cases and
payments changed.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.application import LedgerApp
from ledger.importer import import_lines

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = [DATA / "import_sample_1.jsonl", DATA / "import_sample_2.jsonl"]
STORED = DATA / "import_sample_stored.jsonl"
TODAY = date(2024, 12, 31)

_TIMESTAMP = re.compile(rb'^\{"timestamp":\{"_type_":"datetime_iso","_data_":"[^"]*"\}')
_BLANK = b'{"timestamp":{"_type_":"datetime_iso","_data_":""}'


def stored_rows(app: LedgerApp) -> list[dict[str, Any]]:
    """Every stored event in log order, in the fixture's form (the recorded time blanked)."""
    rows = []
    for n in app.recorder.select_notifications(start=1, limit=1_000_000):
        state = bytes(n.state)
        blanked, count = _TIMESTAMP.subn(_BLANK, state)
        assert count == 1, f"position {n.id}: the state does not start with its timestamp: {state[:80]!r}"
        oid = n.originator_id
        rows.append({
            "position": n.id,
            "originator_id": (oid if isinstance(oid, UUID) else UUID(str(oid))).hex,
            "originator_version": n.originator_version,
            "topic": n.topic,
            "state": blanked.decode("utf-8"),
        })
    return rows


def expected_rows() -> list[dict[str, Any]]:
    with STORED.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def import_samples(app: LedgerApp) -> None:
    for path in SAMPLES:
        with path.open(encoding="utf-8") as f:
            import_lines(app, f)


def assert_stored_as_recorded(app: LedgerApp) -> None:
    """Import the sample files into an empty ledger and compare every stored event with the record."""
    import_samples(app)
    got, want = stored_rows(app), expected_rows()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w, f"position {w['position']} ({w['topic']}) differs"


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_imported_events_are_stored_byte_for_byte_as_recorded(where: str, tmp_path: Path) -> None:
    url = "memory:" if where == "memory" else f"sqlite:///{tmp_path}/ledger.sqlite"
    assert_stored_as_recorded(LedgerApp(url, clock=lambda: TODAY))


def test_an_imported_log_verifies(tmp_path: Path) -> None:
    from ledger.audit import verify_log

    app = LedgerApp(f"sqlite:///{tmp_path}/ledger.sqlite", clock=lambda: TODAY)
    import_samples(app)
    report = verify_log(app)
    assert report.problems == [] and report.events == len(expected_rows())


def test_the_samples_cover_every_kind_of_event_an_import_records() -> None:
    topics = {row["topic"].split(":")[1] for row in expected_rows()}
    assert {"Household.Registered", "Household.MemberAdded", "Household.MemberRemoved", "Household.MemberDeceased",
            "Household.AreaChanged", "Household.AccountChanged", "Standard.Created", "Standard.Set",
            "Case.Applied", "Case.Verified", "Case.Approved", "Case.LegacyApproved", "Case.Rejected",
            "Case.AmountAdjusted", "Case.Suspended", "Case.Resumed", "Case.Terminated", "Case.GrantApproved",
            "Case.GrantPaid", "Case.OverpaymentEstablished", "Case.OverpaymentRecovered",
            "Payment.Issued", "Payment.Settled", "Payment.Returned"} <= topics
