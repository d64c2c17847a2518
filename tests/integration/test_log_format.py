"""The log keeps the format of the ids it was recorded with, and a version that would misread it refuses it.

Payment ids are month first (decision 0025). A log recorded before the format row
existed holds payments whose ids were a hash of the whole name: this version would not
find them by reference and would not see a second issue of a month collide, so it
refuses to open such a log, in one line, without writing anything.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import create_engine, text

from ledger.application import LedgerApp
from ledger.domain import payment_id
from ledger.errors import LedgerError
from ledger.persistence import FORMAT
from ledger.values import Month
from tests.cli.conftest import refused
from tests.conftest import JAN, seed_case

TODAY = date(2023, 6, 30)


def _format_rows(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT name, value FROM ledger_events_format")).all())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def _forget_format(url: str) -> None:
    """Make the log look as one recorded before the format row existed."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE ledger_events_format"))
    finally:
        engine.dispose()


def test_a_new_log_is_marked_with_this_versions_format(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: TODAY)
    seed_case(app)
    app.issue_payment("U1", JAN, operator="zhao.min", effective=date(2023, 1, 10))
    assert _format_rows(db_url) == FORMAT == {"payment_ids": "month-first"}
    again = LedgerApp(db_url, clock=lambda: TODAY)  # opens without complaint
    assert again.unit_of_work().find(payment_id("U1", JAN, 1)) is not None


def test_a_log_with_payments_of_the_earlier_format_is_refused(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: TODAY)
    seed_case(app)
    app.issue_payment("U1", JAN, operator="zhao.min", effective=date(2023, 1, 10))
    head = app.recorder.max_notification_id()
    _forget_format(db_url)
    with pytest.raises(LedgerError, match="payment ids are of the format 'name-hash'.*'month-first'"):
        LedgerApp(db_url, clock=lambda: TODAY)
    out = refused(db_url, "account", "show", "U1")
    assert out.count("\n") == 1 and "name-hash" in out, out
    # Nothing was written: no format row claims the old log for this version.
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT MAX(id) FROM ledger_events")).scalar() == head
            assert conn.execute(text("SELECT COUNT(*) FROM ledger_events_format")).scalar() == 0
    finally:
        engine.dispose()


def test_a_log_without_payments_is_marked_when_opened(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: TODAY)
    seed_case(app)
    _forget_format(db_url)
    LedgerApp(db_url, clock=lambda: TODAY)
    assert _format_rows(db_url) == FORMAT


def test_payment_ids_sort_by_month_and_stay_distinct() -> None:
    months = [Month(2023, 12), Month(2024, 1), Month(2024, 2)]
    ids = [[payment_id(f"U{n}", m, i) for n in range(300) for i in (1, 2)] for m in months]
    for earlier, later in zip(ids, ids[1:]):
        assert max(u.bytes for u in earlier) < min(u.bytes for u in later)
    flat = [u for month in ids for u in month]
    assert len(set(flat)) == len(flat)
    assert {u.version for u in flat} == {8}
    assert payment_id("U1", JAN, 1) == payment_id("U1", Month(2023, 1), 1)  # the same name, the same id
