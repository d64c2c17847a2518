"""Persistence: the eventsourcing SQLAlchemy factory, tuned for the ledger.

One persistence route serves SQLite and PostgreSQL. The factory builds the engine
itself so that SQLite waits for a busy database instead of failing at once, and
writes with ``synchronous=NORMAL`` under WAL (durable at every checkpoint, safe on
power loss of the OS, and much faster for a clerk's many small commits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InfrastructureFactory, Notification, StoredEvent
from eventsourcing.utils import Environment
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore, transactions
from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from eventsourcing_sqlalchemy.recorders import SQLAlchemyApplicationRecorder
from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

SQLITE_BUSY_TIMEOUT_S = 60


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
                cursor.close()


class LedgerApplicationRecorder(SQLAlchemyApplicationRecorder):
    """The stored-events recorder, with set-based SQL on the hot paths.

    Appends are one multi-row INSERT ... RETURNING per transaction (not one ORM object
    per event) and an aggregate's events are read with a plain compiled SELECT. The
    table, the unique key (originator_id, originator_version) and the PostgreSQL
    table lock that keeps notification ids in commit order are unchanged.
    """

    def _insert_stored_events(self, session: Session, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        if not stored_events:
            return []
        table = self.events_record_cls.__table__
        self._lock_table(session)
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
        self._notify_channel(session)
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
        """Every event of many aggregates, in few queries: for loading a batch's aggregates at once."""
        table = self.events_record_cls.__table__
        out: dict[UUID, list[StoredEvent]] = {}
        for i in range(0, len(originator_ids), chunk):
            q = (
                select(table.c.originator_id, table.c.originator_version, table.c.topic, table.c.state)
                .where(table.c.originator_id.in_(originator_ids[i : i + chunk]))
                .order_by(table.c.originator_id, table.c.originator_version)
            )
            for r in self._read(q):
                se = _stored(r)
                out.setdefault(se.originator_id, []).append(se)  # type: ignore[arg-type]
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


def _stored(r: Any) -> StoredEvent:
    return StoredEvent(
        originator_id=r[0],
        originator_version=r[1],
        topic=r[2],
        state=bytes(r[3]) if isinstance(r[3], memoryview) else r[3],
    )


LedgerFactory.application_recorder_class = LedgerApplicationRecorder
