"""Set-based projection of the commonest event, a payment issued, straight from the stored JSON.

Most of a mature ledger's log is ``Payment.Issued`` (one per case and month). Its read
model rows (the payment, which is also its line in the case's timeline, the month's
paid totals and the case's delivered total) depend on that one event alone, so a range
of the log can project all of them with three ``INSERT ... SELECT`` statements that read
the events' JSON inside the database (SQLite's JSON functions, PostgreSQL's ``jsonb``)
instead of decoding each event in Python. The other events of the range are then applied one by one in log order
(:meth:`projections.view.LedgerView.apply_decoded`); the only ones that touch a payment's
row (settled, returned, offset released) always come after its issue.

Both ways write the same rows: a test rebuilds a varied log both ways and compares
every table. On SQLite an issue is projected here only if its recorded time is in UTC
(as the ledger records it); any other is left to the event-by-event path, so that the
stored text of its time is always the one that path would write.
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

import psycopg2

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from sqlalchemy.engine import Connection

from ledger.domain import Payment
from projections import tables as t

ISSUED_TOPIC = get_topic(Payment.Issued)

_PAYMENT_COLUMNS = (
    "issue_position, ref, payment_id, case_no, household_no, programme, area, month_idx, issue_no, kind, gross_fen, offset_fen, "
    "amount_fen, released_fen, persons, status, payee_name, payee_account, batch, issued_on, issued_at, issued_by, settled_at, "
    "returned_at, return_reason"
)


def _sqlite_sql(events: str) -> str:
    # j: the state as text; ts: the recorded time as SQLAlchemy's SQLite DateTime stores it.
    source = f"""
        SELECT e.id AS id, lower(hex(e.originator_id)) AS pid, CAST(e.state AS TEXT) AS j
        FROM "{events}" e
        WHERE e.id > :lo AND e.id <= :hi AND e.topic = :topic
    """
    fields = f"""
        SELECT id, pid, {_sqlite_utc('j')} AS utc,
            json_extract(j, '$.ref') AS ref, json_extract(j, '$.case_no') AS case_no,
            json_extract(j, '$.household_no') AS household_no,
            json_extract(j, '$.programme._data_') AS programme, json_extract(j, '$.area._data_') AS area,
            CAST(substr(json_extract(j, '$.month._data_'), 1, 4) AS INTEGER) * 12
                + CAST(substr(json_extract(j, '$.month._data_'), 6, 2) AS INTEGER) - 1 AS month_idx,
            json_extract(j, '$.issue_no') AS issue_no, json_extract(j, '$.kind') AS kind,
            json_extract(j, '$.gross_fen') AS gross_fen, json_extract(j, '$.offset_fen') AS offset_fen,
            json_extract(j, '$.amount_fen') AS amount_fen, json_extract(j, '$.persons') AS persons,
            json_extract(j, '$.payee_name') AS payee_name, json_extract(j, '$.payee_account') AS payee_account,
            json_extract(j, '$.batch') AS batch, json_extract(j, '$.effective._data_') AS effective,
            json_extract(j, '$.operator') AS operator,
            CASE WHEN length(json_extract(j, '$.timestamp._data_')) = 32
                THEN replace(substr(json_extract(j, '$.timestamp._data_'), 1, 26), 'T', ' ')
                ELSE replace(substr(json_extract(j, '$.timestamp._data_'), 1, 19), 'T', ' ') || '.000000'
            END AS ts
        FROM ({source})
    """
    return fields


def _sqlite_utc(state: str) -> str:
    """SQLite: the recorded time is UTC, with or without microseconds (the forms the text conversion knows)."""
    ts = f"json_extract({state}, '$.timestamp._data_')"
    return f"(substr({ts}, -6) = '+00:00' AND length({ts}) IN (25, 32))"


def _postgres_sql(events: str) -> str:
    return f"""
        SELECT id, pid, TRUE AS utc,
            d->>'ref' AS ref, d->>'case_no' AS case_no, d->>'household_no' AS household_no,
            d->'programme'->>'_data_' AS programme, d->'area'->>'_data_' AS area,
            CAST(substr(d->'month'->>'_data_', 1, 4) AS INTEGER) * 12
                + CAST(substr(d->'month'->>'_data_', 6, 2) AS INTEGER) - 1 AS month_idx,
            CAST(d->>'issue_no' AS INTEGER) AS issue_no, d->>'kind' AS kind,
            CAST(d->>'gross_fen' AS BIGINT) AS gross_fen, CAST(d->>'offset_fen' AS BIGINT) AS offset_fen,
            CAST(d->>'amount_fen' AS BIGINT) AS amount_fen, CAST(d->>'persons' AS INTEGER) AS persons,
            d->>'payee_name' AS payee_name, d->>'payee_account' AS payee_account, d->>'batch' AS batch,
            CAST(d->'effective'->>'_data_' AS DATE) AS effective, d->>'operator' AS operator,
            CAST(d->'timestamp'->>'_data_' AS TIMESTAMPTZ) AS ts
        FROM (
            SELECT e.id AS id, replace(CAST(e.originator_id AS TEXT), '-', '') AS pid,
                CAST(convert_from(e.state, 'UTF8') AS JSONB) AS d
            FROM "{events}" e
            WHERE e.id > %(lo)s AND e.id <= %(hi)s AND e.topic = %(topic)s
            OFFSET 0  -- each state parsed once, not once per field read from it
        ) s
    """


#: PostgreSQL: the payments issued of ranges parsed ahead of their catch-up (see :func:`stage_issued`): an
#: unlogged table (derived from committed events; lost on a crash of the server, it is parsed again).
#: Its columns are those the source query reads, in its order; its name ends with a digest of them,
#: so a ledger whose stage has another shape uses a table of its own.
_STAGE_COLUMNS = (
    "id BIGINT PRIMARY KEY, pid TEXT, utc BOOLEAN, ref TEXT, case_no TEXT, household_no TEXT, programme TEXT, "
    "area TEXT, month_idx INTEGER, issue_no INTEGER, kind TEXT, gross_fen BIGINT, offset_fen BIGINT, "
    "amount_fen BIGINT, persons INTEGER, payee_name TEXT, payee_account TEXT, batch TEXT, effective DATE, "
    "operator TEXT, ts TIMESTAMPTZ"
)
STAGE = f"rm_stage_issued_{hashlib.sha256(_STAGE_COLUMNS.encode()).hexdigest()[:8]}"
_STAGE_DDL = f"CREATE UNLOGGED TABLE IF NOT EXISTS {STAGE} ({_STAGE_COLUMNS})"


def create_stage(dbapi: Any) -> None:
    """PostgreSQL: create the stage if it is missing, on an autocommit connection (so that others see it)."""
    cursor = dbapi.cursor()
    try:
        cursor.execute(_STAGE_DDL)
    except psycopg2.IntegrityError:  # created at the same moment by another process
        pass
    finally:
        cursor.close()


def stage_issued(dbapi: Any, events: str, lo: int, hi: int) -> None:
    """PostgreSQL, on an autocommit connection: parse the payments issued at lo < position <= hi into the stage.

    A catch-up's second server process does this for the next range while the first applies
    the range before it; the range's :func:`project_issued` then reads the parsed rows instead
    of parsing the JSON itself. The rows are those of committed events, which never change,
    so a range staged twice (two processes) or left there by a catch-up that stopped is the
    same rows: ``ON CONFLICT DO NOTHING``.
    """
    cursor = dbapi.cursor()
    try:
        cursor.execute(
            f"INSERT INTO {STAGE} SELECT * FROM ({_postgres_sql(events)}) f ON CONFLICT (id) DO NOTHING",
            {"lo": lo, "hi": hi, "topic": ISSUED_TOPIC},
        )
    finally:
        cursor.close()


def clear_stage(dbapi: Any, upto: int) -> None:
    """PostgreSQL: drop what is left in the stage up to a position (ranges staged but applied another way)."""
    cursor = dbapi.cursor()
    try:
        cursor.execute(f"DELETE FROM {STAGE} WHERE id <= %s", (upto,))
    finally:
        cursor.close()


def project_issued(conn: Connection, events: str, lo: int, hi: int, keep_delivered: bool = True,
                   staged: bool = False) -> tuple[int, int]:
    """Project every payment issued at positions lo < position <= hi that can be; returns how many, and how many are left.

    Runs inside the caller's transaction, before the range's other events are applied.
    Those left (SQLite, a time not in UTC) are for the event-by-event path:
    :func:`other_events` with ``which="unprojected"``.
    ``keep_delivered=False`` leaves the cases' delivered totals (``rm_delivered``) to be
    filled at the end of a fill from empty. ``staged`` (PostgreSQL): the range's payments
    were parsed into the stage by :func:`stage_issued`; they are read from there and taken
    out of it in this transaction.
    """
    postgres = conn.dialect.name == "postgresql"
    fields = _postgres_sql(events) if postgres else _sqlite_sql(events)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    params: Any = {"lo": lo, "hi": hi, "topic": ISSUED_TOPIC}
    try:
        if staged:
            source = f"(SELECT * FROM {STAGE} WHERE id > {int(lo)} AND id <= {int(hi)}) s"
            cursor.execute(f"SELECT COUNT(*) FROM {source}")
            count, left = cursor.fetchone()[0], 0
        else:
            source = "rm_bulk_issued"
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS rm_bulk_issued AS SELECT * FROM ({fields}) f WHERE 0 = 1"
                           if not postgres else
                           f"CREATE TEMPORARY TABLE IF NOT EXISTS rm_bulk_issued ON COMMIT DELETE ROWS AS "
                           f"SELECT * FROM ({fields}) f WITH NO DATA", params)
            cursor.execute("DELETE FROM rm_bulk_issued")
            cursor.execute(f"INSERT INTO rm_bulk_issued SELECT * FROM ({fields}) f", params)
            cursor.execute("SELECT COUNT(*), COUNT(*) - COALESCE(SUM(CASE WHEN utc THEN 1 ELSE 0 END), 0) FROM rm_bulk_issued")
            count, left = cursor.fetchone()
            if left:
                cursor.execute("DELETE FROM rm_bulk_issued WHERE NOT utc")
                count -= left
        if count:
            cursor.execute(f"""
                INSERT INTO {t.payments.name} ({_PAYMENT_COLUMNS})
                SELECT id, ref, pid, case_no, household_no, programme, area, month_idx, issue_no, kind, gross_fen,
                    offset_fen, amount_fen, 0, persons, CASE WHEN amount_fen = 0 THEN 'settled' ELSE 'issued' END,
                    payee_name, payee_account, batch, effective, ts, operator, CASE WHEN amount_fen = 0 THEN ts END, NULL, NULL
                FROM {source} ORDER BY id
            """)
            cursor.execute(f"""
                INSERT INTO {t.paid_months.name} (programme, area, month_idx, amount_fen, persons, payments)
                SELECT programme, area, month_idx, SUM(amount_fen), SUM(persons), COUNT(*)
                FROM {source} GROUP BY programme, area, month_idx
                ON CONFLICT (programme, area, month_idx) DO UPDATE SET
                    amount_fen = {t.paid_months.name}.amount_fen + excluded.amount_fen,
                    persons = {t.paid_months.name}.persons + excluded.persons,
                    payments = {t.paid_months.name}.payments + excluded.payments
            """)
            if keep_delivered:
                cursor.execute(f"""
                    INSERT INTO {t.delivered.name} (case_no, gross_fen)
                    SELECT case_no, SUM(gross_fen) FROM {source} GROUP BY case_no
                    ON CONFLICT (case_no) DO UPDATE SET gross_fen = {t.delivered.name}.gross_fen + excluded.gross_fen
                """)
        if staged:
            cursor.execute(f"DELETE FROM {STAGE} WHERE id > %s AND id <= %s", (lo, hi))
        else:
            cursor.execute("DELETE FROM rm_bulk_issued")
    finally:
        cursor.close()
    return int(count), int(left)


#: Which events of a range :func:`other_events` reads: every one, every one but the payments
#: issued (all projected by :func:`project_issued`), or every one it did not project.
WHICH = ("all", "not-issued", "unprojected")


def other_events(conn: Connection, events: str, lo: int, hi: int, limit: int, which: str = "unprojected") -> list[Notification]:
    """The events at lo < position <= hi that the event-by-event path applies, in order, ``limit`` at most (see :data:`WHICH`).

    "unprojected" reads the stored JSON of every payment issued in the range on SQLite;
    "not-issued" does not, for a range whose payments were all projected.
    """
    postgres = conn.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    if which not in WHICH:
        raise ValueError(f"which events: {which!r} is not one of {', '.join(WHICH)}")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if which == "all":
            cursor.execute(
                f'SELECT id, originator_id, originator_version, topic, state FROM "{events}" '
                f"WHERE id > {mark} AND id <= {mark} ORDER BY id LIMIT {mark}",
                (lo, hi, limit),
            )
        elif postgres or which == "not-issued":  # on PostgreSQL every payment issued is projected
            cursor.execute(
                f'SELECT id, originator_id, originator_version, topic, state FROM "{events}" '
                f"WHERE id > {mark} AND id <= {mark} AND topic <> {mark} ORDER BY id LIMIT {mark}",
                (lo, hi, ISSUED_TOPIC, limit),
            )
        else:
            cursor.execute(
                f'SELECT id, originator_id, originator_version, topic, state FROM "{events}" '
                f"WHERE id > ? AND id <= ? AND NOT (topic = ? AND {_sqlite_utc('CAST(state AS TEXT)')}) "
                "ORDER BY id LIMIT ?",
                (lo, hi, ISSUED_TOPIC, limit),
            )
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return [
        Notification(
            id=i,
            originator_id=UUID(bytes=oid) if type(oid) is bytes else (oid if isinstance(oid, UUID) else UUID(str(oid))),
            originator_version=version,
            topic=topic,
            state=bytes(state) if type(state) is not bytes else state,
        )
        for i, oid, version, topic, state in rows
    ]
