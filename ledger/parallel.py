"""An import file's independent households, checked in several processes at once.

The rules of one line read and change only its household, that household's cases and
their payments (and the standards, which only a ``standard.set`` line changes). So the
lines of a file fall into groups that share nothing: a household with its cases and
their payments. :func:`plan` finds them; :func:`run` gives each worker process a share
of them, forked after the file is parsed and its aggregates loaded, and each runs its
lines through the same commands, in file order, and encodes the events they record.
This process runs one share itself, then takes the others' stored events, puts every
aggregate's events in the order one process would have saved them (see
:func:`_order`), and the caller writes them in one transaction, as before.

An error is the one at the lowest line among the workers' first errors: the lines
before it passed in every share, and they would have in one process too. A file with
a ``standard.set`` line runs in one process (every verification and decision reads
the standards). See ``docs/decisions/0029-imports-in-several-processes.md``.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.domain import case_id, household_id
from ledger.errors import InvalidInput

if TYPE_CHECKING:
    from ledger.application import LedgerApp, UnitOfWork
    from ledger.importer import Parsed

#: Fewest lines a file has before it is checked in several processes (forking costs a few ms).
PARALLEL_FROM = 4_000

#: Most worker processes, this one included.
MOST_WORKERS = 4

#: In a worker: the connection pools it inherited, never to be closed there.
_INHERITED: list[Any] = []

#: (line, message) of a line that broke a rule or named something wrong.
Failure = tuple[int, str]

#: Where an aggregate came into a unit of work: (0, its place among those loaded first) or
#: (line, its place among the aggregates that line added); one process saves them in this order.
Place = tuple[int, int]


def default_workers() -> int:
    """The processes an import may use: the cores this process may run on, at most :data:`MOST_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MOST_WORKERS, cores))


def _case_of_ref(ref: Any) -> str | None:
    from ledger.application import parse_payment_ref

    try:
        return parse_payment_ref(ref)[0]
    except (InvalidInput, AttributeError):
        return None


def plan(parsed: Sequence[Parsed], uow: UnitOfWork, workers: int) -> list[list[Parsed]] | None:
    """The file's lines in ``workers`` shares of whole groups, each in file order; None to run in one process.

    Lines are grouped by the households, cases and payments they name: a case goes with
    the household it applied from (in this file, or as stored), a payment with its case.
    A line that names nothing it could be grouped by (a payment reference that does not
    parse) is a group of its own: it fails the same way wherever it runs.
    """
    if workers < 2 or len(parsed) < PARALLEL_FROM:
        return None
    parent: dict[Any, Any] = {}

    def root(k: Any) -> Any:
        r = parent.setdefault(k, k)
        while r != parent[r]:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    def join(a: Any, b: Any) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb

    keys: list[Any] = []
    for n, _action, name, fields, _operator, _day in parsed:
        if name == "standard.set":
            return None
        key: Any = None
        household = fields.get("household", fields.get("number"))
        if isinstance(household, str):
            key = household_id(household)
        case = fields.get("case")
        if not isinstance(case, str) and "ref" in fields:
            case = _case_of_ref(fields["ref"])
        if isinstance(case, str):
            cid = case_id(case)
            if key is not None:
                join(cid, key)
            else:
                known = uow.find_cached(cid)
                if known is not None:
                    join(cid, household_id(known.household_no))
            key = cid
        if key is None:
            key = ("line", n)
        root(key)
        keys.append(key)
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(root(key), []).append(i)
    shares: list[list[int]] = [[] for _ in range(workers)]
    for members in sorted(groups.values(), key=len, reverse=True):
        min(shares, key=len).extend(members)
    used = [sorted(s) for s in shares if s]
    if len(used) < 2:
        return None
    return [[parsed[i] for i in s] for s in used]


#: What a share returns: its counts by action, its first failure, and its aggregates' stored events by place.
Outcome = tuple[dict[str, int], Failure | None, list[tuple[Place, list[StoredEvent]]]]

#: A stored event as a worker sends it: (originator id's bytes, version, topic, state).
Sent = tuple[bytes, int, str, bytes]


def _check(app: LedgerApp, uow: UnitOfWork, share: Sequence[Parsed],
           progress: Callable[[int], None] | None) -> Outcome:
    """Run a share's lines in order (to its first failure) and encode what they recorded."""
    from ledger.importer import apply_lines

    cache = uow._cache  # noqa: SLF001 - the unit of work's own order is what is kept
    base = len(cache)
    places: dict[UUID, Place] = {}

    def added(n: int, count: int) -> None:
        new = [k for _, k in zip(range(count), reversed(cache))]
        for k, aggregate_id in enumerate(reversed(new)):
            places[aggregate_id] = (n, k)

    counts, failure = apply_lines(app, uow, share, progress, added)
    out: list[tuple[Place, list[StoredEvent]]] = []
    if failure is None:
        to_stored = app.mapper.to_stored_event
        for i, (aggregate_id, aggregate) in enumerate(cache.items()):
            if aggregate.pending_events:
                place = places[aggregate_id] if i >= base else (0, i)
                out.append((place, [to_stored(e) for e in aggregate.collect_events()]))
    return counts, failure, out


def _sent(outcome: Outcome) -> tuple[dict[str, int], Failure | None, list[tuple[Place, list[Sent]]]]:
    counts, failure, placed = outcome
    return counts, failure, [(place, [(s.originator_id.bytes, s.originator_version, s.topic, s.state) for s in stored])
                             for place, stored in placed]


def _received(sent: tuple[dict[str, int], Failure | None, list[tuple[Place, list[Sent]]]]) -> Outcome:
    counts, failure, placed = sent
    return counts, failure, [(place, [StoredEvent(originator_id=UUID(bytes=i), originator_version=v, topic=t, state=s)
                                      for i, v, t, s in stored]) for place, stored in placed]


def _child(app: LedgerApp, uow: UnitOfWork, share: Sequence[Parsed], conn: Any) -> None:
    """A worker process: its own connections to the database, then its share, then the result down the pipe."""
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    if engine is not None:
        # The parent's pooled connections must be neither used nor closed here (closing one
        # would end the parent's session on PostgreSQL): kept referenced until this process
        # ends (without finalising anything), and a new pool for this process.
        _INHERITED.append(engine.pool)
        engine.dispose(close=False)
    try:
        result: Any = ("ok", _sent(_check(app, uow, share, None)))
    except BaseException as e:  # noqa: BLE001 - whatever it is, the parent raises it
        try:
            pickle.dumps(e)
            result = ("raise", e)
        except Exception:  # noqa: BLE001
            result = ("raise", RuntimeError("".join(traceback.format_exception(e)).strip()))
    try:
        conn.send_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        conn.close()
        if engine is not None:
            engine.dispose()  # this process's own connections only


def run(app: LedgerApp, uow: UnitOfWork, shares: list[list[Parsed]],
        progress: Callable[[int], None] | None) -> tuple[dict[str, int], list[StoredEvent]]:
    """Check the shares at once, the first in this process; the counts and every stored event, in saving order.

    Raises the lowest line's failure as :class:`ledger.importer.ImportError_`, or what a worker raised.
    """
    from ledger.importer import ImportError_

    context = multiprocessing.get_context("fork")
    for stream in (sys.stdout, sys.stderr):  # a worker must not write again what this process has yet to
        stream.flush()
    children = []
    try:
        for share in shares[1:]:
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_child, args=(app, uow, share, send), daemon=True)
            process.start()
            send.close()
            children.append((process, receive))
        outcomes = [_check(app, uow, shares[0], progress)]
        for process, receive in children:
            try:
                status, value = pickle.loads(receive.recv_bytes())
            except EOFError:
                raise RuntimeError(f"an import worker process ended without a result (exit code {process.exitcode})") from None
            if status == "raise":
                raise value
            outcomes.append(_received(value))
    finally:
        for process, receive in children:
            receive.close()
            if process.is_alive():
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
    failures = [f for _, f, _ in outcomes if f is not None]
    if failures:
        raise ImportError_(min(failures)[1])
    counts: dict[str, int] = {}
    for c, _, _ in outcomes:
        for name, k in c.items():
            counts[name] = counts.get(name, 0) + k
    return counts, _order(outcomes)


def _order(outcomes: list[Outcome]) -> list[StoredEvent]:
    """Every share's stored events, aggregate by aggregate in the order one process saves them.

    One process's unit of work holds the aggregates it loaded first, then those each line
    added (created or loaded), in line order: each aggregate's :data:`Place`. Within an
    aggregate, its events in order.
    """
    placed = [item for _, _, events in outcomes for item in events]
    placed.sort(key=lambda item: item[0])
    return [stored for _, events in placed for stored in events]
