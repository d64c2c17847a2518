"""Catch-up, rebuild and status of the read models: a pull loop over the notification log.

Each page of events is applied and its tracking position written in one
transaction, so a catch-up killed at any point leaves the read models at the end
of the last committed page, and the next run goes on from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ledger.application import LedgerApp
from ledger.batching import collector_paused
from projections import tables as t
from projections.bulk import other_events, project_issued
from projections.view import LedgerView

Progress = Callable[[int, int], None]

#: Log positions applied per transaction by a catch-up or a rebuild.
PAGE_SIZE = 50_000

#: Events decoded and applied together within a transaction (a bound on memory).
EVENT_PAGE = 2000

#: Rows changed in a read-model table, beyond half its size, before it is re-analysed.
ANALYZE_FLOOR = 1000


@dataclass(frozen=True)
class Status:
    name: str
    position: int
    head: int

    @property
    def behind(self) -> int:
        return self.head - self.position


class Projections:
    """The read models of one ledger database."""

    def __init__(self, app: LedgerApp, set_based: bool = True) -> None:
        """``set_based=False`` applies every event one by one (the reference the set-based path is tested against)."""
        self.app = app
        self.set_based = set_based
        events = app.recorder.events_table_name  # type: ignore[attr-defined]
        if events != t.stored_events.name:  # the read models' queries join the events table by this name
            raise RuntimeError(f"the events table is {events}, the read models expect {t.stored_events.name}")
        self.view = LedgerView(app.factory.datastore)  # type: ignore[attr-defined]
        self.view.create_table()

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def status(self) -> list[Status]:
        head = self.head()
        return [Status("ledger", self.view.position(), head)]

    def catch_up(self, progress: Progress | None = None, page_size: int = PAGE_SIZE) -> int:
        """Apply every event recorded after the read models' position; returns how many.

        Up to ``page_size`` log positions are applied per transaction (see
        :meth:`_apply_range`), and the read models' position moves to the end of that
        range in the same transaction.

        Filling the read models from empty (a rebuild, or the first catch-up of an imported
        log), the indexes no catch-up reads are dropped in the first page's transaction and
        built in the last one's: each is then sorted once instead of written row by row.
        A catch-up that stops in between leaves them to the next one, which builds them
        when it reaches the head. The cases' delivered totals (``rm_delivered``) go with
        them: not kept page by page, filled with one GROUP BY when the indexes are built.
        """
        head = self.head()
        applied = 0
        filling = False  # from empty: the cases' delivered totals are filled at the end, with the indexes
        while True:
            with collector_paused(), self.view.transaction(commit=True) as session:
                position = self.view.lock(session)
                if position >= head:
                    self.view.build_missing_indexes(session)
                    break
                if position == 0:
                    self.view.drop_deferred_indexes(session)
                    filling = True
                hi = min(head, position + page_size)
                applied += self._apply_range(session, position, hi, keep_delivered=not filling)
                if hi == head:
                    self.view.build_missing_indexes(session)
            if progress:
                progress(hi, head)
            if hi == head:  # the last page built the indexes: no further transaction to check them
                break
        if applied:
            self.refresh_statistics()
        return applied

    def catch_up_in(self, session: Session) -> int:
        """Inside a transaction that holds the lock appends take: apply every event up to the head.

        The read models are then exactly the log as it stands in that transaction, so what
        the transaction decides from them is what the aggregates would decide.
        """
        position = self.view.lock(session)
        table = self.app.recorder.events_table_name  # type: ignore[attr-defined]
        head = session.connection().exec_driver_sql(f'SELECT MAX(id) FROM "{table}"').scalar() or 0
        if head <= position:
            return 0
        return self._apply_range(session, position, head)

    def _apply_range(self, session: Session, lo: int, hi: int, keep_delivered: bool = True) -> int:
        """Apply the events at positions lo < p <= hi in the caller's transaction; returns how many.

        The payments issued in the range are projected set-based from their stored JSON
        (:func:`projections.bulk.project_issued`), then every other event is applied in
        log order, :data:`EVENT_PAGE` at a time; the position ends at ``hi``.
        """
        conn = session.connection()
        table = self.app.recorder.events_table_name  # type: ignore[attr-defined]
        applied = project_issued(conn, table, lo, hi, keep_delivered) if self.set_based else 0
        to_event = self.app.mapper.to_domain_event
        position = lo
        while notes := other_events(conn, table, position, hi, EVENT_PAGE, all_events=not self.set_based):
            self.view.apply_page(session, notes, to_event, keep_delivered)
            applied += len(notes)
            position = notes[-1].id
        self.view.move_to(session, hi)
        return applied

    def refresh_statistics(self) -> list[str]:
        """PostgreSQL: re-analyse the read-model tables that changed by more than half since last analysed.

        The planner's choices for the payroll's and the reports' queries depend on the
        tables' statistics; a table filled from empty in one rebuild or one payroll has
        none until the server's own autovacuum gets to it (seconds to minutes later),
        and a plan made without them can be a thousand times slower. Returns the tables
        analysed.
        """
        engine = self.app.factory.datastore.engine  # type: ignore[attr-defined]
        if engine.dialect.name != "postgresql":
            return []
        names = [table.name for table in t.metadata.sorted_tables]
        with engine.connect() as conn:
            stale = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%(names)s) "
                    "AND n_mod_since_analyze > %(floor)s + 0.5 * n_live_tup",
                    {"names": names, "floor": ANALYZE_FLOOR},
                )
            ]
        if stale:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for name in stale:
                    conn.exec_driver_sql(f'ANALYZE "{name}"')
        return stale

    def rebuild(self, progress: Progress | None = None, page_size: int = PAGE_SIZE) -> int:
        """Drop the read models and replay the whole log into them."""
        with self.view.transaction(commit=True) as session:
            self.view.clear(session)
        return self.catch_up(progress, page_size)
