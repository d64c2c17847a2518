"""Read models on real databases: incremental equals rebuild, and a killed catch-up resumes exactly once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.values import Month
from projections.queries import statistics
from projections.runner import Projections
from projections.verify import dump, verify
from tests.history import build_history

ROOT = Path(__file__).resolve().parents[2]


def _engine(app: LedgerApp):  # type: ignore[no-untyped-def]
    return app.factory.datastore.engine  # type: ignore[attr-defined]


def test_incremental_catch_up_equals_rebuild_and_replay(db_url: str) -> None:
    app = LedgerApp(db_url)
    projections = Projections(app)
    build_history(app, cases=40, months=3)
    projections.catch_up(page_size=97)
    assert projections.catch_up() == 0  # nothing new
    # Later events, some retroactive, applied on top of the caught-up read models.
    before = projections.head()
    d = date(2023, 4, 10)
    app.suspend("U00002", "moved away", Month(2023, 2), operator="li.na", effective=d)
    app.return_payment("P-U00003-202303-1", "account frozen", operator="zhao.min", effective=d)
    app.issue_payment("U00003", Month(2023, 3), operator="zhao.min", effective=d)
    app.terminate("U00004", "income above standard", Month(2023, 1), operator="li.na", effective=d)
    assert projections.head() - before >= 4  # four decisions, and the overpayments they establish
    assert projections.catch_up() == projections.head() - before
    with _engine(app).connect() as conn:
        incremental = dump(conn)
        assert verify(app, conn, projections.view.position()) == []
    assert projections.rebuild(page_size=1000) == projections.head()
    with _engine(app).connect() as conn:
        assert dump(conn) == incremental


def _indexes(app: LedgerApp) -> dict[str, tuple[tuple[str, ...], bool]]:
    """The read models' indexes in the database (PostgreSQL's of unique columns left out, as SQLite's are)."""
    from sqlalchemy import inspect

    from projections import tables as t

    found = {}
    inspector = inspect(_engine(app))
    for table in t.metadata.sorted_tables:
        for ix in inspector.get_indexes(table.name):
            if not ix.get("duplicates_constraint"):
                found[ix["name"]] = (tuple(ix["column_names"]), bool(ix["unique"]))
    return found


class _Stop(Exception):
    pass


def test_a_catch_up_from_empty_builds_the_deferred_indexes_at_its_end(db_url: str) -> None:
    """Dropped in the first page, built in the last; a catch-up stopped between leaves them to the next."""
    from projections import tables as t

    app = LedgerApp(db_url)
    projections = Projections(app)
    declared = {str(i.name): (tuple(c.name for c in i.columns), bool(i.unique))
                for table in t.metadata.sorted_tables for i in table.indexes}
    deferred = {str(i.name) for i in t.deferred_indexes()}
    assert deferred and deferred < set(declared)
    assert _indexes(app) == declared
    build_history(app, cases=30, months=3)

    def stop(done: int, head: int) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        projections.catch_up(progress=stop, page_size=100)
    assert 0 < projections.view.position() < projections.head()
    assert set(declared) - set(_indexes(app)) == deferred  # the first page's transaction dropped them

    assert projections.catch_up() == projections.head() - 100
    assert _indexes(app) == declared
    with _engine(app).connect() as conn:
        resumed = dump(conn)
        assert verify(app, conn, projections.head()) == []
    assert projections.rebuild(page_size=150) == projections.head()
    assert _indexes(app) == declared
    with _engine(app).connect() as conn:
        assert dump(conn) == resumed
    # A later catch-up (not from empty) keeps every index in place.
    app.suspend("U00002", "moved away", Month(2023, 3), operator="li.na", effective=date(2023, 4, 10))
    assert projections.catch_up() >= 1
    assert _indexes(app) == declared


def _one_problem_after(app: LedgerApp, projections: Projections, *statements: str) -> str:
    """Run these statements on the read models, verify them, and return the one problem verify lists."""
    from sqlalchemy import text

    with _engine(app).begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    with _engine(app).connect() as conn:
        problems = verify(app, conn, projections.view.position())
    assert len(problems) == 1, problems
    return problems[0]


def test_verify_lists_a_tampered_read_model(sqlite_url: str) -> None:
    app = LedgerApp(sqlite_url)
    projections = Projections(app)
    build_history(app, cases=5, months=2)
    projections.catch_up()
    problem = _one_problem_after(
        app, projections, "UPDATE rm_payment SET amount_fen = amount_fen + 1 WHERE ref = 'P-U00001-202302-1'")
    m = re.fullmatch(r"payments P-U00001-202302-1: amount_fen is (\d+) in the read model, (\d+) by replay", problem)
    assert m is not None, problem
    assert int(m.group(1)) == int(m.group(2)) + 1
    # The kept per-case totals the payroll's arrears check reads are checked too.
    problem = _one_problem_after(
        app, projections,
        "UPDATE rm_payment SET amount_fen = amount_fen - 1 WHERE ref = 'P-U00001-202302-1'",
        "UPDATE rm_delivered SET gross_fen = gross_fen - 7 WHERE case_no = 'U00002'",
    )
    m = re.fullmatch(r"delivered U00002: gross_fen is (\d+) in the read model, (\d+) by replay", problem)
    assert m is not None, problem
    assert int(m.group(1)) == int(m.group(2)) - 7


@pytest.mark.slow
def test_catch_up_killed_part_way_resumes_without_counting_twice(db_url: str) -> None:
    app = LedgerApp(db_url)
    build_history(app, cases=150, months=12)
    projections = Projections(app)
    head = projections.head()
    env = dict(os.environ, LEDGER_DATABASE_URL=db_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "projections", "catch-up", "--page-size", "50"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while projections.view.position() < head // 4 and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    stopped_at = projections.view.position()
    assert 0 < stopped_at < head, "the catch-up was killed part-way"

    projections.catch_up()
    assert projections.view.position() == head
    with _engine(app).connect() as conn:
        assert verify(app, conn, head) == []
        after_kill = dump(conn)
        figures = statistics(conn, Month(2023, 1), Month(2023, 12), date(2023, 12, 31))
    projections.rebuild()
    with _engine(app).connect() as conn:
        assert dump(conn) == after_kill
        assert statistics(conn, Month(2023, 1), Month(2023, 12), date(2023, 12, 31)) == figures


def test_set_based_projection_writes_what_event_by_event_does(db_url: str) -> None:
    """Payments issued projected from their stored JSON in SQL equal the same events applied one by one."""
    app = LedgerApp(db_url)
    build_history(app, cases=60, months=12)  # payments, returns, re-issues, retroactive suspensions
    one_by_one = Projections(app, set_based=False)
    assert one_by_one.rebuild(page_size=700) == one_by_one.head()
    with _engine(app).connect() as conn:
        reference = dump(conn)
    assert reference["rm_payment"] and reference["rm_event"] and reference["rm_paid_month"]
    set_based = Projections(app)
    assert set_based.rebuild(page_size=700) == set_based.head()
    with _engine(app).connect() as conn:
        assert dump(conn) == reference
        assert verify(app, conn, set_based.head()) == []


def _readers() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "projection-reader"]


def test_events_read_ahead_on_a_second_connection_project_what_the_transaction_reads(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A catch-up's reader thread and the single-connection path (a payroll's catch-up) write the same rows."""
    import projections.runner as runner

    app = LedgerApp(db_url)
    build_history(app, cases=60, months=6)
    projections = Projections(app)
    assert runner._read_ahead(_engine(app)) == (_engine(app).dialect.name == "postgresql")
    used = []
    real = runner._Reader
    monkeypatch.setattr(runner, "_Reader", lambda *a: used.append(1) or real(*a))
    monkeypatch.setattr(runner, "_read_ahead", lambda engine: True)  # on SQLite too: it works there, it only gains nothing
    monkeypatch.setattr(runner, "READ_AHEAD_FROM", 0)  # every range, however small
    assert projections.rebuild(page_size=500) == projections.head()
    assert used, "the catch-up read ahead"
    with _engine(app).connect() as conn:
        read_ahead = dump(conn)
    monkeypatch.setattr(runner, "_read_ahead", lambda engine: False)
    used.clear()
    assert projections.rebuild(page_size=500) == projections.head()
    assert not used
    with _engine(app).connect() as conn:
        assert dump(conn) == read_ahead
        assert verify(app, conn, projections.head()) == []
    assert not _readers()


def test_an_event_the_reader_cannot_decode_fails_the_catch_up_and_stores_nothing(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app = LedgerApp(db_url)
    build_history(app, cases=30, months=3)
    projections = Projections(app)
    projections.catch_up()
    before = projections.view.position()
    with _engine(app).connect() as conn:
        caught_up = dump(conn)
    app.suspend("U00002", "moved away", Month(2023, 2), operator="li.na", effective=date(2023, 4, 10))
    real = app.mapper.to_domain_event

    def broken(n):  # type: ignore[no-untyped-def]
        if n.id > before:
            raise ValueError(f"event {n.id} cannot be decoded")
        return real(n)

    monkeypatch.setattr(app.mapper, "to_domain_event", broken)
    monkeypatch.setattr(runner_module(), "_read_ahead", lambda engine: True)  # the reader on SQLite too
    monkeypatch.setattr(runner_module(), "READ_AHEAD_FROM", 0)
    with pytest.raises(ValueError, match=rf"event {before + 1} cannot be decoded"):
        projections.catch_up()
    assert projections.view.position() == before
    with _engine(app).connect() as conn:
        assert dump(conn) == caught_up
    assert not _readers()
    monkeypatch.undo()
    assert projections.catch_up() == projections.head() - before


def test_a_page_that_fails_stops_the_reader_and_rolls_its_range_back(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app = LedgerApp(db_url)
    build_history(app, cases=60, months=6)
    projections = Projections(app)
    projections.catch_up()
    with _engine(app).connect() as conn:
        caught_up = dump(conn)
    pages = []
    real = projections.view.apply_decoded

    def fails_on_the_second(session, decoded, keep_delivered=True):  # type: ignore[no-untyped-def]
        pages.append(len(decoded))
        if len(pages) == 2:
            raise RuntimeError("disk full")
        return real(session, decoded, keep_delivered)

    monkeypatch.setattr(runner_module(), "EVENT_PAGE", 50)  # several pages in the first range
    monkeypatch.setattr(runner_module(), "_read_ahead", lambda engine: True)  # the reader on SQLite too
    monkeypatch.setattr(runner_module(), "READ_AHEAD_FROM", 0)
    monkeypatch.setattr(projections.view, "apply_decoded", fails_on_the_second)
    with pytest.raises(RuntimeError, match="disk full"):
        projections.rebuild()
    assert not _readers()
    assert projections.view.position() == 0  # emptied by the rebuild; its only range rolled back
    monkeypatch.undo()
    assert projections.catch_up() == projections.head()
    with _engine(app).connect() as conn:
        assert dump(conn) == caught_up


def runner_module():  # type: ignore[no-untyped-def]
    import projections.runner

    return projections.runner


def test_payments_recorded_in_another_time_zone_are_left_to_the_event_by_event_path(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A ledger run with ``TZINFO_TOPIC`` set records local times; on SQLite those payments are not projected in SQL."""
    from datetime import timedelta, timezone

    import eventsourcing.domain

    import projections.runner as runner

    app = LedgerApp(db_url)
    build_history(app, cases=40, months=2)
    from ledger.errors import LedgerError

    active = []
    for i in range(40):
        try:
            app.issue_payment(f"U{i:05d}", Month(2023, 3), operator="zhao.min", effective=date(2023, 3, 10))
        except LedgerError:
            continue
        active.append(f"U{i:05d}")
        if len(active) == 1:  # the next ones in Beijing time, then one in UTC again
            monkeypatch.setattr(eventsourcing.domain, "TZINFO", timezone(timedelta(hours=8)))
        elif len(active) == 3:
            app.suspend(active[-1], "moved away", Month(2023, 4), operator="li.na", effective=date(2023, 3, 10))
            monkeypatch.undo()
        elif len(active) == 4:
            break

    one_by_one = Projections(app, set_based=False)
    assert one_by_one.rebuild() == one_by_one.head()
    with _engine(app).connect() as conn:
        reference = dump(conn)
    left = []
    real = runner.project_issued

    def spy(*args):  # type: ignore[no-untyped-def]
        projected, not_projected = real(*args)
        left.append(not_projected)
        return projected, not_projected

    monkeypatch.setattr(runner, "project_issued", spy)
    set_based = Projections(app)
    assert set_based.rebuild() == set_based.head()
    assert left == [2 if _engine(app).dialect.name == "sqlite" else 0]
    with _engine(app).connect() as conn:
        assert dump(conn) == reference
        assert verify(app, conn, set_based.head()) == []


def test_a_catch_up_of_a_few_events_does_not_read_ahead(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import projections.runner as runner

    app = LedgerApp(db_url)
    build_history(app, cases=10, months=1)
    projections = Projections(app)
    used = []
    real = runner._Reader
    monkeypatch.setattr(runner, "_Reader", lambda *a: used.append(a[4] - a[3]) or real(*a))
    monkeypatch.setattr(runner, "_read_ahead", lambda engine: True)
    assert projections.catch_up() == projections.head() < runner.READ_AHEAD_FROM
    assert used == []
    monkeypatch.setattr(runner, "READ_AHEAD_FROM", 10)
    assert projections.rebuild(page_size=25) == projections.head()
    assert used and all(n >= 10 for n in used)


def _stage_rows(app: LedgerApp) -> int:
    from projections.bulk import STAGE

    with _engine(app).connect() as conn:
        return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {STAGE}").scalar_one()


def _threads(name: str) -> list[str]:
    """The running threads of a catch-up's helpers of this name ("projection-stager", "projection-warmer")."""
    import threading

    return [t.name for t in threading.enumerate() if t.name == name]


@pytest.mark.postgres
def test_payments_parsed_ahead_by_a_second_connection_project_what_the_range_parses(postgres_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: the next ranges' payments parsed into the stage while a range is applied write the same rows."""
    import projections.runner as runner

    app = LedgerApp(postgres_url)
    build_history(app, cases=60, months=12)
    projections = Projections(app)
    monkeypatch.setattr(runner, "_stage_ahead", lambda engine: False)
    assert projections.rebuild(page_size=300) == projections.head()
    with _engine(app).connect() as conn:
        reference = dump(conn)
    assert reference["rm_payment"]
    monkeypatch.undo()

    answers: list[bool] = []
    real = runner._Stager.ready
    monkeypatch.setattr(runner._Stager, "ready", lambda self, lo, hi: answers.append(real(self, lo, hi)) or answers[-1])
    assert projections.rebuild(page_size=300) == projections.head()
    assert len(answers) >= 3 and not answers[0] and all(answers[1:]), f"every range after the first was staged: {answers}"
    assert _stage_rows(app) == 0  # each range took its rows out of the stage
    assert not _threads("projection-stager")
    with _engine(app).connect() as conn:
        assert dump(conn) == reference
        assert verify(app, conn, projections.head()) == []


@pytest.mark.postgres
def test_a_range_the_stager_could_not_parse_is_projected_from_the_events(postgres_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import projections.runner as runner
    from projections.bulk import clear_stage, stage_issued

    app = LedgerApp(postgres_url)
    build_history(app, cases=60, months=12)
    projections = Projections(app)
    assert projections.rebuild(page_size=300) == projections.head()
    with _engine(app).connect() as conn:
        reference = dump(conn)

    calls: list[tuple[int, int]] = []

    def fails_on_the_second(dbapi, table, lo, hi):  # type: ignore[no-untyped-def]
        calls.append((lo, hi))
        if len(calls) == 2:
            raise RuntimeError("the stager's connection was lost")
        stage_issued(dbapi, table, lo, hi)

    monkeypatch.setattr(runner, "stage_issued", fails_on_the_second)
    assert projections.rebuild(page_size=300) == projections.head()
    assert len(calls) == 2  # it stopped at its first failure
    assert _stage_rows(app) == 0
    assert not _threads("projection-stager")
    with _engine(app).connect() as conn:
        assert dump(conn) == reference

    # A range staged twice (two processes) is its rows once; what no catch-up took is cleared.
    from projections.bulk import ISSUED_TOPIC

    events = app.recorder.events_table_name
    with _engine(app).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        issued = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {events} WHERE topic = %s", (ISSUED_TOPIC,)).scalar_one()
        assert issued > 0
        dbapi = conn.connection.driver_connection
        stage_issued(dbapi, events, 0, projections.head())
        stage_issued(dbapi, events, 0, projections.head())
        assert _stage_rows(app) == issued
        clear_stage(dbapi, projections.head())
    assert _stage_rows(app) == 0


@pytest.mark.postgres
def test_a_catch_up_whose_stage_cannot_be_cleared_at_the_end_still_completes(postgres_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Clearing the stage at the end is best effort: the catch-up's work is committed, what is left goes next time."""
    import psycopg2

    import projections.runner as runner
    from projections.bulk import clear_stage

    app = LedgerApp(postgres_url)
    build_history(app, cases=60, months=12)
    projections = Projections(app)
    monkeypatch.setattr(runner, "_stage_ahead", lambda engine: False)
    assert projections.rebuild(page_size=300) == projections.head()
    with _engine(app).connect() as conn:
        reference = dump(conn)
    monkeypatch.undo()

    failed: list[int] = []

    def lost(dbapi, upto):  # type: ignore[no-untyped-def]
        failed.append(upto)
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(runner, "clear_stage", lost)
    assert projections.rebuild(page_size=300) == projections.head()
    assert failed == [projections.head()]
    assert not _threads("projection-stager")
    with _engine(app).connect() as conn:
        assert dump(conn) == reference
    monkeypatch.undo()
    with _engine(app).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        clear_stage(conn.connection.driver_connection, projections.head())
    assert _stage_rows(app) == 0


@pytest.mark.postgres
def test_the_stager_goes_on_past_ranges_another_catch_up_applied(postgres_url: str) -> None:
    """A catch-up whose next range is further on (another process applied the ranges between) does not wait forever."""
    import threading

    import projections.runner as runner

    app = LedgerApp(postgres_url)
    build_history(app, cases=20, months=3)
    head = app.recorder.max_notification_id()
    step = head // 4 + 1
    ranges = [(lo, min(head, lo + step)) for lo in range(0, head, step)]
    assert len(ranges) > runner.STAGE_AHEAD + 1
    stager = runner._Stager(_engine(app), app.recorder.events_table_name, ranges)
    answer: list[bool] = []
    waiter = threading.Thread(target=lambda: answer.append(stager.ready(*ranges[-1])), daemon=True)
    waiter.start()
    waiter.join(timeout=30)
    stager.close(head)
    assert answer == [True], "the last range was staged although the ones before it were never applied here"
    assert _stage_rows(app) == 0 and not _threads("projection-stager")


def test_a_rebuild_on_sqlite_reads_the_next_ranges_ahead_and_writes_the_same_rows(sqlite_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import projections.runner as runner

    app = LedgerApp(sqlite_url)
    build_history(app, cases=30, months=6)
    projections = Projections(app)
    assert runner._warm_ahead(_engine(app))
    monkeypatch.setattr(runner, "_warm_ahead", lambda engine: False)
    assert projections.rebuild(page_size=200) == projections.head()
    with _engine(app).connect() as conn:
        reference = dump(conn)
    monkeypatch.undo()

    log: list[tuple[str, int]] = []  # ("read", lo) from the warmer, ("applied", hi) from the catch-up, in order
    real = runner.warm
    monkeypatch.setattr(runner, "warm", lambda db, table, lo, hi: (real(db, table, lo, hi), log.append(("read", lo))))
    head = projections.head()
    assert projections.rebuild(progress=lambda done, _: log.append(("applied", done)), page_size=200) == head
    assert not _threads("projection-warmer")
    read = [p for kind, p in log if kind == "read"]
    assert read == list(range(200, head, 200))[: len(read)] and read, "the ranges after the first, in order"
    for i, entry in enumerate(log):
        if entry[0] == "read":  # never more than WARM_AHEAD ranges beyond the one being applied
            ranges_applied = sum(1 for kind, _ in log[:i] if kind == "applied")
            assert entry[1] // 200 <= ranges_applied + runner.WARM_AHEAD
    with _engine(app).connect() as conn:
        assert dump(conn) == reference
        assert verify(app, conn, head) == []


def test_a_warmer_that_cannot_read_changes_nothing(sqlite_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    import projections.runner as runner

    app = LedgerApp(sqlite_url)
    build_history(app, cases=20, months=3)
    projections = Projections(app)
    assert projections.rebuild(page_size=150) == projections.head()
    with _engine(app).connect() as conn:
        reference = dump(conn)

    def fails(db, table, lo, hi):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(runner, "warm", fails)
    assert projections.rebuild(page_size=150) == projections.head()
    assert not _threads("projection-warmer")
    with _engine(app).connect() as conn:
        assert dump(conn) == reference


def test_only_a_sqlite_file_is_read_ahead_by_a_warmer() -> None:
    from sqlalchemy import create_engine

    import projections.runner as runner

    assert runner._warm_ahead(create_engine("sqlite:////tmp/ledger.sqlite"))
    assert not runner._warm_ahead(create_engine("sqlite://"))
    assert not runner._warm_ahead(create_engine("sqlite:///:memory:"))
    assert not runner._warm_ahead(create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"))
