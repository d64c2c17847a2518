"""The log keeps the format of the ids it was recorded with, and a version that would misread it refuses it.

Household and case ids are number first, payment ids month first (decision 0025). A log
recorded before the format rows existed holds ids that were a hash of the whole name:
this version would not find those records by their numbers and would not see the same
thing recorded twice collide, so it refuses to open such a log, in one line, without
writing anything.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger.application import LedgerApp
from ledger.domain import case_id, household_id, payment_id
from ledger.errors import LedgerError
from ledger.persistence import FORMAT
from ledger.values import Area, Month, Programme
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


def _execute(url: str, *statements: str) -> None:
    """Run statements on the database in one transaction (outside the ledger)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _forget_format(url: str) -> None:
    """Make the log look as one recorded before the format rows existed."""
    _execute(url, "DROP TABLE ledger_events_format")


def test_a_new_log_is_marked_with_this_versions_format(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: TODAY)
    seed_case(app)
    app.issue_payment("U1", JAN, operator="zhao.min", effective=date(2023, 1, 10))
    assert _format_rows(db_url) == FORMAT == {
        "household_ids": "number-first", "case_ids": "number-first", "payment_ids": "month-first"}
    again = LedgerApp(db_url, clock=lambda: TODAY)  # opens without complaint
    assert again.unit_of_work().find(payment_id("U1", JAN, 1)) is not None


def test_a_log_with_payments_of_the_earlier_format_is_refused(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: TODAY)
    seed_case(app)
    app.issue_payment("U1", JAN, operator="zhao.min", effective=date(2023, 1, 10))
    head = app.recorder.max_notification_id()
    _forget_format(db_url)
    with pytest.raises(LedgerError, match="household ids are of the format 'name-hash'.*'number-first'"):
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


def test_a_log_of_only_standards_is_marked_when_opened(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: TODAY)
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, Month(2022, 1), operator="li.na", effective=date(2022, 1, 1))
    _forget_format(db_url)
    LedgerApp(db_url, clock=lambda: TODAY)
    assert _format_rows(db_url) == FORMAT


def test_a_log_marked_with_another_format_is_refused(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: TODAY)
    seed_case(app)
    _execute(db_url, "DELETE FROM ledger_events_format WHERE name = 'case_ids'")
    with pytest.raises(LedgerError, match="case ids are of the format 'name-hash'"):
        LedgerApp(db_url, clock=lambda: TODAY)
    _execute(db_url, "INSERT INTO ledger_events_format (name, value) VALUES ('case_ids', 'number-first')",
             "INSERT INTO ledger_events_format (name, value) VALUES ('grant_ids', 'later')")
    with pytest.raises(LedgerError, match="grant ids are of the format 'later', this version's are None"):
        LedgerApp(db_url, clock=lambda: TODAY)


def test_household_and_case_ids_sort_by_number() -> None:
    numbers = [f"H{n:07d}" for n in range(0, 3000, 7)]
    ids = [household_id(n) for n in numbers]
    # Sorted by their first six characters (numbers given out in order are added in order).
    assert [u.bytes[:6] for u in ids] == sorted(u.bytes[:6] for u in ids)
    assert ids[0].bytes[:6] == b"H00000"
    assert case_id("U1").bytes[:6] == b"U1\0\0\0\0"
    cases = [case_id(f"U{n:07d}") for n in range(3000)] + [case_id(f"T{n:07d}") for n in range(3000)]
    assert len(set(cases)) == len(cases) and {u.version for u in cases} == {8}
    assert household_id("U1") != case_id("U1")  # the same number, two kinds of record


def test_payment_ids_sort_by_month_and_stay_distinct() -> None:
    months = [Month(2023, 12), Month(2024, 1), Month(2024, 2)]
    ids = [[payment_id(f"U{n}", m, i) for n in range(300) for i in (1, 2)] for m in months]
    for earlier, later in zip(ids, ids[1:]):
        assert max(u.bytes for u in earlier) < min(u.bytes for u in later)
    flat = [u for month in ids for u in month]
    assert len(set(flat)) == len(flat)
    assert {u.version for u in flat} == {8}
    assert payment_id("U1", JAN, 1) == payment_id("U1", Month(2023, 1), 1)  # the same name, the same id


@pytest.mark.postgres
def test_a_read_only_role_opens_a_marked_log_and_is_refused_an_unmarked_one(postgres_url: str) -> None:
    """An auditor's role may only read: it opens a log of this format, and cannot mark or misread an older one."""
    app = LedgerApp(postgres_url, clock=lambda: TODAY)
    seed_case(app)
    role = f"auditor_{uuid.uuid4().hex[:8]}"
    database = make_url(postgres_url).database
    _execute(postgres_url, f"CREATE ROLE {role} LOGIN", f'GRANT CONNECT ON DATABASE "{database}" TO {role}',
             f"GRANT USAGE ON SCHEMA public TO {role}", f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    auditor = make_url(postgres_url).set(username=role, password=None).render_as_string(hide_password=False)
    try:
        reader = LedgerApp(auditor, clock=lambda: TODAY)
        assert reader.unit_of_work().find(case_id("U1")) is not None
        reader.factory.datastore.engine.dispose()
        _forget_format(postgres_url)
        with pytest.raises(LedgerError, match="household ids are of the format 'name-hash'"):
            LedgerApp(auditor, clock=lambda: TODAY)
    finally:
        _execute(postgres_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")
