"""Persistence: the eventsourcing SQLAlchemy factory, tuned for the ledger.

One persistence route serves SQLite and PostgreSQL. The factory builds the engine
itself so that SQLite waits for a busy database instead of failing at once, and
writes with ``synchronous=NORMAL`` under WAL (durable at every checkpoint, safe on
power loss of the OS, and much faster for a clerk's many small commits) with a page
cache large enough for the indexes a batch writes into. Large appends to PostgreSQL
are one ``COPY`` (see ``docs/decisions/0013``).
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import psycopg2
import sqlalchemy.exc

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Notification, StoredEvent
from eventsourcing.utils import Environment
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore, transactions
from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from eventsourcing_sqlalchemy.recorders import SQLAlchemyApplicationRecorder

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, event, insert, select
from sqlalchemy.orm import Session

from ledger.chain import GENESIS, next_link
from ledger.errors import LedgerError

SQLITE_BUSY_TIMEOUT_S = 60

#: SQLite's page cache per connection (KiB). The default 2 MiB is far smaller than the
#: indexes a payroll or a rebuild writes into; every miss is a read of the file.
SQLITE_CACHE_KIB = 64 * 1024

#: WAL pages before SQLite copies them back into the database file (default 1,000). A
#: payroll chunk dirties thousands of index pages; checkpointing less often writes a page
#: changed by several chunks once (measured: about 10 % more payments per second).
SQLITE_WAL_AUTOCHECKPOINT = 16384

#: From this many events in one append, PostgreSQL is written with COPY instead of INSERT.
COPY_FROM = 50

#: How this version makes the ids it stores, kept with the log in ``<events table>_format``:
#: the key first (decision 0025), where earlier versions hashed the whole name.
FORMAT = {"household_ids": "number-first", "case_ids": "number-first", "payment_ids": "month-first"}

#: The topics of the aggregates whose ids kept their earlier format (a log of only these is not refused).
_UNCHANGED_TOPICS = "ledger.domain:Standard.%"


def copy_text(v: str) -> str:
    """Text in PostgreSQL's COPY text format (backslash, tab, newline and carriage return escaped)."""
    # Scans in C first: most text (names, numbers, the events' compact JSON) has nothing to escape.
    if "\\" in v:
        v = v.replace("\\", "\\\\")
    if "\t" in v:
        v = v.replace("\t", "\\t")
    if "\n" in v:
        v = v.replace("\n", "\\n")
    if "\r" in v:
        v = v.replace("\r", "\\r")
    return v


def append_only_installed(conn: Any, table: str) -> bool:
    """Whether the append-only triggers are in place (checked first, so a read-only role never needs DDL)."""
    if conn.dialect.name == "postgresql":
        names = {f"{table}_append_only", f"{table}_no_truncate"}
        found = conn.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%(t)s) AND NOT tgisinternal AND tgenabled <> 'D'",
            {"t": table},
        ).scalars().all()
        return names <= set(found)
    if conn.dialect.name == "sqlite":
        names = {f"{table}_no_update", f"{table}_no_delete"}
        found = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
        ).scalars().all()
        return names <= set(found)
    return True


def append_only_ddl(dialect: str, table: str) -> list[str]:
    """Statements that make ``table`` append-only in the database itself (idempotent)."""
    if dialect == "postgresql":
        return [
            """CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'the ledger''s %% table is append-only: %% refused', TG_TABLE_NAME, TG_OP;
            END $$""",
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()",
        ]
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'the ledger''s {table} table is append-only: UPDATE refused'); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'the ledger''s {table} table is append-only: DELETE refused'); END",
        ]
    return []


class LedgerFactory(SQLAlchemyFactory):
    """SQLAlchemy infrastructure with engine options chosen per database."""

    def __init__(self, env: Environment):
        InfrastructureFactory.__init__(self, env)
        self._schema_name = None
        url = self.env.get(self.SQLALCHEMY_URL)
        if not url:
            raise ValueError("no database URL")
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        else:
            kwargs["pool_pre_ping"] = True
        self.datastore = SQLAlchemyDatastore(url=url, autoflush=False, **kwargs)
        engine = self.datastore.engine
        assert engine is not None
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
                cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")
                cursor.close()


class LedgerApplicationRecorder(SQLAlchemyApplicationRecorder):
    """The stored-events recorder, with set-based SQL on the hot paths, a hash chain and append-only tables.

    Appends are one multi-row INSERT ... RETURNING per transaction (not one ORM object
    per event) and an aggregate's events are read with a plain compiled SELECT. The
    table, the unique key (originator_id, originator_version) and the PostgreSQL
    table lock that keeps notification ids in commit order are unchanged.

    Every append also extends the hash chain (``<events table>_chain``) in the same
    transaction, and the database itself refuses UPDATE, DELETE and TRUNCATE on the
    events and the chain (triggers, installed with the tables).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain_table = Table(
            f"{self.events_table_name}_chain",
            MetaData(),
            Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
            Column("link", String(64), nullable=False),
        )
        self.format_table = Table(
            f"{self.events_table_name}_format",
            MetaData(),
            Column("name", String(64), primary_key=True),
            Column("value", String(64), nullable=False),
        )

    def create_table(self) -> None:
        super().create_table()
        engine = self.datastore.engine
        assert engine is not None
        self.chain_table.create(engine, checkfirst=True)
        try:
            with engine.begin() as conn:
                for table in (self.events_table_name, self.chain_table.name):
                    if not append_only_installed(conn, table):
                        for statement in append_only_ddl(engine.dialect.name, table):
                            conn.exec_driver_sql(statement)
        except sqlalchemy.exc.ProgrammingError as e:
            # A read-only role (an auditor's) cannot (re)install the triggers; it need not.
            if not _denied(e):
                raise
        self._check_format(engine)

    def _check_format(self, engine: Any) -> None:
        """Mark a new log with this version's format; refuse a log whose ids this version would not find.

        A log without the format rows was made before they existed: if it holds households,
        cases or payments, their ids are of the earlier kind, and this version would neither
        find them by their numbers nor see the same thing recorded twice collide, so it is refused.
        """
        table = self.format_table
        marked = True  # the table is there (made now if it was missing)
        try:
            table.create(engine, checkfirst=True)
        except sqlalchemy.exc.ProgrammingError as e:
            if not _denied(e):
                raise
            marked = False  # a read-only role on a log made before the table
        with engine.begin() as conn:
            kept = dict(conn.execute(select(table.c.name, table.c.value)).all()) if marked else {}  # type: ignore[arg-type]
            if not kept:
                events = self.events_record_cls.__table__
                if conn.execute(select(events.c.id).where(events.c.topic.not_like(_UNCHANGED_TOPICS)).limit(1)).first():
                    kept = {name: "name-hash" for name in FORMAT}
                elif marked:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(table), [{"name": k, "value": v} for k, v in FORMAT.items()])
                    except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError) as e:
                        # Another process marked it first, or a read-only role (which need not).
                        if isinstance(e, sqlalchemy.exc.ProgrammingError) and not _denied(e):
                            raise
        if not kept:
            return
        for name in [*FORMAT, *(n for n in kept if n not in FORMAT)]:
            value = kept.get(name, "name-hash")  # a row missing: the earlier format of that id
            if FORMAT.get(name) != value:
                raise LedgerError(
                    f"this ledger's {name.replace('_', ' ')} are of the format {value!r}, this version's are "
                    f"{FORMAT.get(name)!r} (decision 0025): open it with the version that recorded it"
                )

    def lock_for_append(self, session: Session) -> None:
        """Hold, in the session's transaction, the lock every append takes (the events table's on
        PostgreSQL; SQLite's write lock is taken by the transaction's first write).

        Until the transaction ends no other process can append, so the head of the log
        read after this is the head the transaction's own appends follow.
        """
        self._lock_table(session)

    def _insert_stored_events(self, session: Session, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        if not stored_events:
            return []
        table = self.events_record_cls.__table__
        self._lock_table(session)
        if session.get_bind().dialect.name == "sqlite":
            return self._insert_sqlite(session, stored_events)
        if len(stored_events) >= COPY_FROM:
            return self._insert_postgres_copy(session, stored_events)
        rows = [
            {
                "originator_id": e.originator_id,
                "originator_version": e.originator_version,
                "topic": e.topic,
                "state": e.state,
            }
            for e in stored_events
        ]
        result = session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        ids = [r[0] for r in result]
        # Extend the hash chain in the same transaction (the table lock on PostgreSQL and
        # the write lock on SQLite are held, so no other append can interleave).
        chain = self.chain_table
        last = session.execute(select(chain.c.link).order_by(chain.c.position.desc()).limit(1)).scalar()
        previous = bytes.fromhex(last) if last else GENESIS
        chained = []
        for i, e in zip(ids, stored_events):
            previous = next_link(previous, i, e.originator_id, e.originator_version, e.topic, e.state)
            chained.append({"position": i, "link": previous.hex()})
        session.execute(insert(chain), chained)
        self._notify_channel(session)
        return ids

    def _insert_postgres_copy(self, session: Session, stored_events: Sequence[StoredEvent]) -> Sequence[int]:
        """PostgreSQL, many events (an import, a payroll chunk): one COPY for the events and one for their links.

        The table lock is held, so no other append draws from the events' id sequence
        until this transaction ends: the ids are reserved from it in one statement and
        written with the rows, in order, and nothing is read back. The rows are streamed:
        the server stores one part of them while the next is formatted and chained here.
        """
        table = self.events_record_cls.__table__.name
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            n = len(stored_events)
            sequence = self._id_sequence(cursor, table)
            # nextval gives the first id; setval makes the sequence's last id the n-th after it.
            cursor.execute("SELECT setval(%s, nextval(%s) + %s - 1)", (sequence, sequence, n))
            last = cursor.fetchone()[0]
            ids = range(last - n + 1, last + 1)
            cursor.execute(f'SELECT link FROM "{self.chain_table.name}" ORDER BY position DESC LIMIT 1')
            row = cursor.fetchone()
            links: list[str] = []
            rows = _CopyStream(_event_rows(ids, stored_events, bytes.fromhex(row[0]) if row else GENESIS, links))
            try:
                cursor.copy_expert(
                    f'COPY "{table}" (id, originator_id, originator_version, topic, state) FROM STDIN', rows
                )
            except psycopg2.IntegrityError as e:
                # The same aggregate version written twice: the event store's unique key refused it.
                raise IntegrityError(str(e)) from e
            cursor.copy_expert(f'COPY "{self.chain_table.name}" (position, link) FROM STDIN', io.StringIO("".join(links)))
        finally:
            cursor.close()
        self._notify_channel(session)
        return list(ids)

    def _id_sequence(self, cursor: Any, table: str) -> str:
        """The name of the sequence the events table's ids are drawn from (looked up once)."""
        name: str | None = getattr(self, "_sequence_name", None)
        if name is None:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (f'"{table}"',))
            name = cursor.fetchone()[0]
            if name is None:
                raise IntegrityError(f"the events table {table} has no id sequence")
            self._sequence_name = name
        return name

    def _insert_sqlite(self, session: Session, stored_events: Sequence[StoredEvent]) -> Sequence[int]:
        """SQLite: plain executemany. The write lock is held from the first INSERT to the
        commit, so the new rows take consecutive ids after the current maximum."""
        table = self.events_record_cls.__table__.name
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(
                f'INSERT INTO "{table}" (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)',
                [(e.originator_id.bytes, e.originator_version, e.topic, e.state) for e in stored_events],  # type: ignore[union-attr]
            )
        except sqlite3.IntegrityError as e:
            # The same aggregate version written twice: the event store's unique key refused it.
            raise IntegrityError(str(e)) from e
        last = cursor.execute(f'SELECT MAX(id) FROM "{table}"').fetchone()[0]
        ids = list(range(last - len(stored_events) + 1, last + 1))
        row = cursor.execute(f'SELECT link FROM "{self.chain_table.name}" ORDER BY position DESC LIMIT 1').fetchone()
        previous = bytes.fromhex(row[0]) if row else GENESIS
        chained = []
        for i, e in zip(ids, stored_events):
            previous = next_link(previous, i, e.originator_id, e.originator_version, e.topic, e.state)
            chained.append((i, previous.hex()))
        cursor.executemany(f'INSERT INTO "{self.chain_table.name}" (position, link) VALUES (?, ?)', chained)
        cursor.close()
        return ids

    def select_events(
        self,
        originator_id: UUID | str,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        table = self.events_record_cls.__table__
        q = select(table.c.originator_id, table.c.originator_version, table.c.topic, table.c.state).where(
            table.c.originator_id == originator_id
        )
        if gt is not None:
            q = q.where(table.c.originator_version > gt)
        if lte is not None:
            q = q.where(table.c.originator_version <= lte)
        q = q.order_by(table.c.originator_version.desc() if desc else table.c.originator_version)
        if limit is not None:
            q = q.limit(limit)
        return [_stored(r) for r in self._read(q)]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        table = self.events_record_cls.__table__
        q = select(table.c.id, table.c.originator_id, table.c.originator_version, table.c.topic, table.c.state)
        if start is not None:
            q = q.where(table.c.id >= start if inclusive_of_start else table.c.id > start)
        if stop is not None:
            q = q.where(table.c.id <= stop)
        if topics:
            q = q.where(table.c.topic.in_(list(topics)))
        q = q.order_by(table.c.id).limit(limit)
        return [
            Notification(
                id=r[0],
                originator_id=r[1],
                originator_version=r[2],
                topic=r[3],
                state=bytes(r[4]) if isinstance(r[4], memoryview) else r[4],
            )
            for r in self._read(q)
        ]

    def select_events_many(self, originator_ids: Sequence[UUID], chunk: int = 500) -> dict[UUID, list[StoredEvent]]:
        """Every event of many aggregates, in few queries: for loading a batch's aggregates at once.

        Read through the driver: at this volume SQLAlchemy's per-row type processing costs
        more than the query.
        """
        table = self.events_table_name
        try:
            transactions.get()
            inside = True
        except LookupError:
            inside = False
        if inside:  # inside a unit of work's transaction: use its connection
            with self.transaction(commit=False) as session:
                return self._select_many(session.connection(), table, originator_ids, chunk)
        assert self.datastore.engine is not None
        with self.datastore.engine.connect() as conn:
            return self._select_many(conn, table, originator_ids, chunk)

    @staticmethod
    def _select_many(conn: Any, table: str, originator_ids: Sequence[UUID], chunk: int) -> dict[UUID, list[StoredEvent]]:
        out: dict[UUID, list[StoredEvent]] = {}
        sqlite = conn.dialect.name == "sqlite"
        cursor = conn.connection.driver_connection.cursor()
        for i in range(0, len(originator_ids), chunk):
            part = originator_ids[i : i + chunk]
            if sqlite:
                marks = ", ".join("?" for _ in part)
                cursor.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM {table} "
                    f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
                    [u.bytes for u in part],
                )
            else:
                cursor.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM {table} "
                    "WHERE originator_id IN %s ORDER BY originator_id, originator_version",
                    (tuple(str(u) for u in part),),
                )
            by_key = {(u.bytes if sqlite else str(u)): u for u in part}
            for oid, version, topic, state in cursor.fetchall():
                key = oid if sqlite else str(oid)
                uid = by_key[key]
                out.setdefault(uid, []).append(
                    StoredEvent(originator_id=uid, originator_version=version, topic=topic,
                                state=bytes(state) if isinstance(state, memoryview) else state)
                )
        cursor.close()
        return out

    def _read(self, q: Any) -> list[Any]:
        """Run a read inside the current transaction if there is one, else on a pooled connection."""
        try:
            transactions.get()
        except LookupError:
            assert self.datastore.engine is not None
            with self.datastore.engine.connect() as conn:
                return list(conn.execute(q))
        with self.transaction(commit=False) as session:
            return list(session.execute(q))


#: Rows formatted per part of a streamed COPY.
COPY_PART = 1000


def _event_rows(ids: range, stored_events: Sequence[StoredEvent], previous: bytes, links: list[str]) -> Iterator[str]:
    """The events' rows in COPY text format, a part at a time, chaining each (its link appended to ``links``)."""
    part: list[str] = []
    for i, e in zip(ids, stored_events):
        state = e.state if type(e.state) is bytes else bytes(e.state)
        part.append(f"{i}\t{e.originator_id}\t{e.originator_version}\t{copy_text(e.topic)}\t\\\\x{state.hex()}\n")
        previous = next_link(previous, i, e.originator_id, e.originator_version, e.topic, state)
        links.append(f"{i}\t{previous.hex()}\n")
        if len(part) == COPY_PART:
            yield "".join(part)
            part = []
    if part:
        yield "".join(part)


class _CopyStream:
    """A file for ``copy_expert`` that hands over text parts as they are made (each ``read`` one part)."""

    def __init__(self, parts: Iterator[str]) -> None:
        self._parts = parts

    def read(self, _size: int = -1) -> str:
        return next(self._parts, "")


def _denied(e: Exception) -> bool:
    """Whether a database error says the role may not do this (an auditor's read-only role)."""
    return "permission denied" in str(e) or "must be owner" in str(e)


def _stored(r: Any) -> StoredEvent:
    return StoredEvent(
        originator_id=r[0],
        originator_version=r[1],
        topic=r[2],
        state=bytes(r[3]) if isinstance(r[3], memoryview) else r[3],
    )


LedgerFactory.application_recorder_class = LedgerApplicationRecorder
