"""Catch-up, rebuild and status of the read models: a pull loop over the notification log.

Each page of events is applied and its tracking position written in one
transaction, so a catch-up killed at any point leaves the read models at the end
of the last committed page, and the next run goes on from there.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import sqlalchemy.exc
from eventsourcing.persistence import Notification
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ledger.application import LedgerApp
from ledger.batching import collector_paused
from projections import tables as t
from projections.bulk import clear_stage, create_stage, other_events, project_issued, stage_issued
from projections.view import LedgerView

Progress = Callable[[int, int], None]

#: Log positions applied per transaction by a catch-up or a rebuild.
PAGE_SIZE = 50_000

#: Events decoded and applied together within a transaction (a bound on memory).
EVENT_PAGE = 2000

#: Decoded pages the reader thread may hold ahead of the page being applied.
READ_AHEAD = 3

#: Log positions from which a range is read ahead: a smaller one (a command's catch-up of a
#: few events) is not worth a thread and a second connection.
READ_AHEAD_FROM = 5000

#: Ranges whose payments a catch-up parses ahead on PostgreSQL (see :class:`_Stager`), beyond the one applied.
STAGE_AHEAD = 2

#: Ranges whose stored events a catch-up on SQLite reads into the system's file cache ahead (see :class:`_Warmer`).
WARM_AHEAD = 2

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
        stager: _Stager | None = None
        warmer: _Warmer | None = None
        ahead = False  # whether a stager or a warmer was considered (at the first of several ranges)
        try:
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
                    if not ahead and hi < head:
                        ahead = True
                        # The ranges after this one, as this catch-up will apply them.
                        later = [(lo, min(head, lo + page_size)) for lo in range(hi, head, page_size)]
                        if self.set_based and _stage_ahead(self._engine()):
                            stager = _Stager(self._engine(), self._events_table(), later)
                        elif _warm_ahead(self._engine()):
                            warmer = _Warmer(self._engine(), self._events_table(), later)
                    staged = stager is not None and stager.ready(position, hi)
                    applied += self._apply_range(session, position, hi, keep_delivered=not filling, committed=True,
                                                 staged=staged)
                    if hi == head:
                        self.view.build_missing_indexes(session)
                if stager is not None:
                    stager.done(position, hi)
                if warmer is not None:
                    warmer.done()
                if progress:
                    progress(hi, head)
                if hi == head:  # the last page built the indexes: no further transaction to check them
                    break
        finally:
            if stager is not None:
                stager.close(head)
            if warmer is not None:
                warmer.close()
        if applied:
            self.refresh_statistics()
        return applied

    def _engine(self) -> Engine:
        return self.app.factory.datastore.engine  # type: ignore[attr-defined,no-any-return]

    def _events_table(self) -> str:
        return self.app.recorder.events_table_name  # type: ignore[attr-defined,no-any-return]

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

    def _apply_range(self, session: Session, lo: int, hi: int, keep_delivered: bool = True, committed: bool = False,
                     staged: bool = False) -> int:
        """Apply the events at positions lo < p <= hi in the caller's transaction; returns how many.

        The payments issued in the range are projected set-based from their stored JSON
        (:func:`projections.bulk.project_issued`), then every other event is applied in
        log order, :data:`EVENT_PAGE` at a time; the position ends at ``hi``.

        ``committed``: every event of the range is committed, so a second connection can see
        them. On PostgreSQL, from :data:`READ_AHEAD_FROM` positions, they are then read and decoded by a :class:`_Reader` thread on
        that connection, ahead of the page being applied, while this connection's server
        process does the set-based statements and each page's writes (see :func:`_read_ahead`).
        ``staged``: the range's payments issued were parsed ahead by a :class:`_Stager`.
        """
        conn = session.connection()
        table = self.app.recorder.events_table_name  # type: ignore[attr-defined]
        to_event = self.app.mapper.to_domain_event
        which = "not-issued" if self.set_based else "all"
        engine = self.app.factory.datastore.engine  # type: ignore[attr-defined]
        ahead = committed and hi - lo >= READ_AHEAD_FROM and _read_ahead(engine)
        reader = _Reader(engine, table, to_event, lo, hi, which) if ahead else None
        try:
            applied, left = project_issued(conn, table, lo, hi, keep_delivered, staged) if self.set_based else (0, 0)
            if left:  # some payments issued are for the event-by-event path too (SQLite, a time not in UTC)
                which = "unprojected"
                if reader is not None:
                    reader.close()
                    reader = None
            if reader is not None:
                pages: Iterator[Decoded] = iter(reader)
            else:
                pages = _pages(conn, table, to_event, lo, hi, which)
            for decoded in pages:
                self.view.apply_decoded(session, decoded, keep_delivered)
                applied += len(decoded)
        finally:
            if reader is not None:
                reader.close()
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


Decoded = list[tuple[Notification, Any]]


def _pages(conn: Any, table: str, to_event: Callable[[Notification], Any], lo: int, hi: int, which: str) -> Iterator[Decoded]:
    """The events at lo < p <= hi for the event-by-event path (see :func:`projections.bulk.other_events`), decoded,
    :data:`EVENT_PAGE` at a time."""
    position = lo
    while notes := other_events(conn, table, position, hi, EVENT_PAGE, which):
        yield [(n, to_event(n)) for n in notes]
        position = notes[-1].id


def _read_ahead(engine: Engine) -> bool:
    """Whether a catch-up reads ahead on a second connection: on PostgreSQL.

    There the reads are a second server process's work, on the other core, while this one's
    process writes (decision 0021). On SQLite both connections run in this process, and decoding
    in a thread only takes turns with applying (Python's global lock): measured, it gained nothing.
    """
    return engine.dialect.name == "postgresql"


def _stage_ahead(engine: Engine) -> bool:
    """Whether a catch-up of several ranges parses the next ranges' payments ahead (:class:`_Stager`): on PostgreSQL."""
    return engine.dialect.name == "postgresql"


def _warm_ahead(engine: Engine) -> bool:
    """Whether a catch-up of several ranges reads the next ranges' events into the file cache ahead (:class:`_Warmer`):
    on SQLite, for a database in a file."""
    return engine.dialect.name == "sqlite" and bool(engine.url.database) and engine.url.database != ":memory:"


def _room_or_stop(room: threading.Semaphore, stop: threading.Event) -> bool:
    """A thread working ahead of a catch-up: wait for room to work one range further; False once told to stop."""
    while not room.acquire(timeout=0.1):
        if stop.is_set():
            return False
    return not stop.is_set()


def warm(db: sqlite3.Connection, table: str, lo: int, hi: int) -> None:
    """Read every page of the stored events at lo < position <= hi (their state included), keeping nothing."""
    db.execute(f'SELECT SUM(LENGTH(state)) FROM "{table}" WHERE id > ? AND id <= ?', (lo, hi)).fetchone()


class _Warmer:
    """SQLite: reads the stored events of a catch-up's next ranges, on its own connection and thread, so that
    the pages the range's statements read are in the system's file cache by the time they run.

    A log larger than the machine's memory is read from the disk page by page, and each
    range's set-based statements then wait for every page they read (decision 0026). The
    read is one aggregate over the range, which runs inside SQLite without Python's lock,
    on the other core, while this process applies the range before. It writes nothing and
    only changes how soon a page is read: a range it did not read, or a read that failed,
    is read by the range's own statements as without it. Each read is a transaction of its
    own, so it holds no snapshot that would keep the write-ahead log from being reset.
    At most :data:`WARM_AHEAD` ranges ahead of the catch-up.
    """

    def __init__(self, engine: Engine, table: str, ranges: list[tuple[int, int]]) -> None:
        self._room = threading.Semaphore(WARM_AHEAD)
        self._stop = threading.Event()
        self._path = str(engine.url.database)
        self._thread = threading.Thread(target=self._run, args=(table, ranges), name="projection-warmer", daemon=True)
        self._thread.start()

    def _run(self, table: str, ranges: list[tuple[int, int]]) -> None:
        try:
            db = sqlite3.connect(self._path, timeout=1.0)
        except sqlite3.Error:
            return
        try:
            for lo, hi in ranges:
                if not _room_or_stop(self._room, self._stop):
                    return
                warm(db, table, lo, hi)
        except sqlite3.Error:  # the ranges not read are read by their own statements
            pass
        finally:
            db.close()

    def done(self) -> None:
        """The catch-up has applied one more range: the warmer may read one range further ahead."""
        self._room.release()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Reader:
    """Reads and decodes committed events on its own connection and thread, a few pages ahead of their use.

    Iterating yields the pages in log order; an error in the thread is raised there.
    :meth:`close` stops the thread (also when the consumer failed part-way) and waits for it.
    Each page is read in a transaction of its own, so the reader holds no snapshot between
    pages (on SQLite a long reader would keep the write-ahead log from being reset).
    """

    _END = object()

    def __init__(self, engine: Engine, table: str, to_event: Callable[[Notification], Any], lo: int, hi: int,
                 which: str) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(engine, table, to_event, lo, hi, which), name="projection-reader", daemon=True
        )
        self._thread.start()

    def _run(self, engine: Engine, table: str, to_event: Callable[[Notification], Any], lo: int, hi: int,
             which: str) -> None:
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for decoded in _pages(conn, table, to_event, lo, hi, which):
                    if not self._put(decoded):
                        return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Decoded]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Stager:
    """PostgreSQL: parses the payments issued of a catch-up's next ranges into the stage, on its own connection and thread.

    The JSON of a range's payments is then parsed by a second server process (on the other
    core) while the first applies the range before it (:func:`projections.bulk.stage_issued`).
    It works at most :data:`STAGE_AHEAD` ranges ahead of the catch-up. :meth:`ready` waits for
    a range it was given and says whether it is staged; a range it was not given, or one that
    failed, is projected from the events as without it, so the rows written are the same.
    """

    def __init__(self, engine: Engine, table: str, ranges: list[tuple[int, int]]) -> None:
        self._ranges = ranges
        self._staged: dict[tuple[int, int], threading.Event] = {r: threading.Event() for r in ranges}
        self._ok: set[tuple[int, int]] = set()
        self._passed: set[tuple[int, int]] = set()  # ranges the catch-up is past (this thread's only)
        self._room = threading.Semaphore(STAGE_AHEAD)
        self._stop = threading.Event()
        self._engine = engine
        self._thread = threading.Thread(target=self._run, args=(table,), name="projection-stager", daemon=True)
        self._thread.start()

    def _run(self, table: str) -> None:
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                dbapi = conn.connection.driver_connection
                create_stage(dbapi)
                for r in self._ranges:
                    if not _room_or_stop(self._room, self._stop):
                        return
                    stage_issued(dbapi, table, *r)
                    self._ok.add(r)
                    self._staged[r].set()
        except Exception:  # noqa: BLE001 - the ranges not staged are projected from the events instead
            pass
        finally:
            for event in self._staged.values():
                event.set()

    def ready(self, lo: int, hi: int) -> bool:
        """Wait for the range lo < p <= hi if it is one of this stager's; whether its payments are staged."""
        event = self._staged.get((lo, hi))
        if event is None:
            return False
        # Ranges before it that this catch-up did not apply (another process did) make room ahead.
        for earlier in self._ranges[: self._ranges.index((lo, hi))]:
            self.done(*earlier)
        event.wait()
        return (lo, hi) in self._ok

    def done(self, lo: int, hi: int) -> None:
        """The catch-up is past a range: the stager may work one range further ahead."""
        r = (lo, hi)
        if r in self._staged and r not in self._passed:
            self._passed.add(r)
            self._room.release()

    def close(self, upto: int) -> None:
        """Stop the thread and drop whatever it staged that was not applied from the stage."""
        self._stop.set()
        self._thread.join()
        if not self._ok:
            return
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                clear_stage(conn.connection.driver_connection, upto)
        except (sqlalchemy.exc.SQLAlchemyError, psycopg2.Error):
            pass  # the server is unreachable (the catch-up's own error says why); the next catch-up clears them
