"""Large appends on PostgreSQL (one streamed COPY with ids reserved from the sequence) keep the log whole.

An append that fails after its ids were reserved leaves a gap in the ids (as any
rolled-back insert does with a sequence); what follows is numbered after the gap, in
order, chained to the last stored event, and the whole log still verifies.
"""

from __future__ import annotations

import pytest

from eventsourcing.persistence import IntegrityError, StoredEvent
from ledger import persistence
from ledger.application import LedgerApp
from ledger.audit import verify_log
from ledger.importer import import_lines
from projections.runner import Projections
from projections.verify import verify
from tests.unit.test_import_format import SAMPLES, TODAY

pytestmark = pytest.mark.postgres


def _ids(app: LedgerApp) -> list[int]:
    return [n.id for n in app.recorder.select_notifications(start=1, limit=1_000_000)]


def test_a_failed_copy_append_leaves_a_gap_and_the_log_verifies(postgres_url: str) -> None:
    app = LedgerApp(postgres_url, clock=lambda: TODAY)
    try:
        with SAMPLES[0].open(encoding="utf-8") as f:
            first = import_lines(app, f)
        assert first.events >= persistence.COPY_FROM  # written by the COPY path
        stored = _ids(app)
        assert stored == list(range(1, first.events + 1))

        # A COPY append refused by the unique key: its last event repeats a stored version.
        notes = app.recorder.select_notifications(start=1, limit=persistence.COPY_FROM + 10)
        clash = [
            StoredEvent(originator_id=n.originator_id, originator_version=10_000 + i if i < len(notes) - 1
                        else n.originator_version, topic=n.topic, state=n.state)
            for i, n in enumerate(notes)
        ]
        with pytest.raises(IntegrityError):
            app.recorder.insert_events(clash)
        assert _ids(app) == stored  # nothing of it was stored

        with SAMPLES[1].open(encoding="utf-8") as f:
            second = import_lines(app, f)
        after = _ids(app)[len(stored):]
        assert len(after) == second.events
        # Numbered after the reserved ids of the failed append, in order, with no gap among them.
        assert after == list(range(after[0], after[0] + second.events))
        assert after[0] == stored[-1] + len(clash) + 1

        report = verify_log(app)
        assert report.ok, report.problems
        assert report.events == first.events + second.events
        assert report.head_position == after[-1]

        projections = Projections(app)
        assert projections.catch_up() == first.events + second.events
        assert projections.status()[0].position == after[-1]
        with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
            assert verify(app, conn, after[-1]) == []
    finally:
        app.close()
