"""Persistence: the eventsourcing SQLAlchemy factory, tuned for the ledger.

One persistence route serves SQLite and PostgreSQL. The factory builds the engine
itself so that SQLite waits for a busy database instead of failing at once, and
writes with ``synchronous=NORMAL`` under WAL (durable at every checkpoint, safe on
power loss of the OS, and much faster for a clerk's many small commits).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from sqlalchemy import event

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
