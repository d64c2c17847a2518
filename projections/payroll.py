"""The monthly payroll over the read models: which cases to look at, and paying them.

:func:`candidates` proposes (case, months) pairs with set-based SQL. The proposal may
lag behind the log: every payment is decided again inside the transaction that stores
it (:class:`ReadModelPayroll`), so a stale candidate is skipped (the next run pays what
it missed) and nothing is paid twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from ledger.application import RETRIES, LedgerApp
from ledger.batching import collector_paused
from ledger.domain import batch_id
from ledger.errors import ConcurrentChange
from ledger.finance import add_totals, parse_batch_ref
from ledger.issues import FirstIssues
from ledger.values import Area, Month, Programme
from projections import tables as t
from projections.runner import Projections


def candidates(conn: Connection, month: Month, programme: str | None = None) -> list[tuple[str, list[Month]]]:
    """Cases owed something for ``month`` or any earlier month, with those months, by case number."""
    M = month.index
    p, pay, op = t.periods, t.payments, t.overpayments
    prog = [p.c.programme == programme] if programme else []
    months: dict[str, set[int]] = defaultdict(set)

    # 1. Active in the payroll month and not yet fully delivered for it.
    active = select(p.c.case_no, p.c.amount_fen).where(
        p.c.known_to.is_(None), p.c.status == "active", p.c.from_idx <= M, p.c.to_idx > M, *prog
    ).subquery()
    delivered_m = (
        select(pay.c.case_no, func.sum(pay.c.gross_fen).label("v"))
        .where(pay.c.month_idx == M, pay.c.status != "returned")
        .group_by(pay.c.case_no)
        .subquery()
    )
    for case_no, in conn.execute(
        select(active.c.case_no)
        .select_from(active.outerjoin(delivered_m, delivered_m.c.case_no == active.c.case_no))
        .where(active.c.amount_fen > func.coalesce(delivered_m.c.v, 0))
    ):
        months[case_no].add(M)

    # 2. Arrears of earlier months: entitled - delivered + overpayment established > 0
    #    (the sum over months of what is still owed; established overpayments are the
    #    months delivered above entitlement, which must not hide an owed month).
    #    Delivered before M is the case's kept total (rm_delivered, every month) less what was
    #    delivered for M and later (few rows), so the check reads one row per case, not every
    #    payment the case ever had.
    upto = case((p.c.to_idx < M, p.c.to_idx), else_=M)
    entitled = (
        select(p.c.case_no, func.sum(p.c.amount_fen * (upto - p.c.from_idx)).label("e"))
        .where(p.c.known_to.is_(None), p.c.status == "active", p.c.from_idx < M, *prog)
        .group_by(p.c.case_no)
        .subquery()
    )
    kept = t.delivered
    later = (
        select(pay.c.case_no, func.sum(pay.c.gross_fen).label("v"))
        .where(pay.c.month_idx >= M, pay.c.status != "returned")
        .group_by(pay.c.case_no)
        .subquery()
    )
    established = (
        select(op.c.case_no, func.sum(op.c.amount_fen).label("o")).where(op.c.month_idx < M).group_by(op.c.case_no).subquery()
    )
    owing = [
        r[0]
        for r in conn.execute(
            select(entitled.c.case_no)
            .select_from(
                entitled.outerjoin(kept, kept.c.case_no == entitled.c.case_no)
                .outerjoin(later, later.c.case_no == entitled.c.case_no)
                .outerjoin(established, established.c.case_no == entitled.c.case_no)
            )
            .where(
                entitled.c.e - (func.coalesce(kept.c.gross_fen, 0) - func.coalesce(later.c.v, 0))
                + func.coalesce(established.c.o, 0) > 0
            )
        )
    ]
    for i in range(0, len(owing), 500):
        part = owing[i : i + 500]
        owed: dict[tuple[str, int], int] = defaultdict(int)
        for case_no, from_idx, to_idx, amount in conn.execute(
            select(p.c.case_no, p.c.from_idx, p.c.to_idx, p.c.amount_fen).where(
                p.c.case_no.in_(part), p.c.known_to.is_(None), p.c.status == "active", p.c.from_idx < M
            )
        ):
            for m in range(from_idx, min(to_idx, M)):
                owed[(case_no, m)] += amount
        for case_no, m, v in conn.execute(
            select(pay.c.case_no, pay.c.month_idx, func.sum(pay.c.gross_fen))
            .where(pay.c.case_no.in_(part), pay.c.month_idx < M, pay.c.status != "returned")
            .group_by(pay.c.case_no, pay.c.month_idx)
        ):
            owed[(case_no, m)] -= int(v)
        for (case_no, m), amount in owed.items():
            if amount > 0:
                months[case_no].add(m)
    return [(c, [Month.from_index(m) for m in sorted(ms)]) for c, ms in sorted(months.items())]


# --------------------------------------------------------------------------- the run


#: Cases per transaction when the read models decide the plain months.
CHUNK = 20000

@dataclass(frozen=True)
class _Plain:
    """What the read models say of a case for one month, enough to issue its first payment."""

    household_no: str
    programme: Programme
    area: Area
    amount_fen: int
    persons: int
    payee_name: str
    payee_account: str


class ReadModelPayroll:
    """Pays a chunk of a payroll in one transaction that also keeps the read models.

    The transaction first takes the lock every append takes and brings the read models
    to the head of the log, so they are exactly what the aggregates would say at that
    moment. A month that is plain (the case is active in it, nothing was issued for it
    yet, and the case owes no overpayment to offset) is then issued straight from the
    read models' facts (the event :meth:`ledger.domain.Payment.first_issue_event` builds, written
    straight to its stored form by :class:`ledger.issues.FirstIssues`); every other
    month (a re-issue, a top-up, an offset, a case not active) is decided on the
    aggregates as a clerk's single payment is. The payments' events, the batch's, and
    the read-model rows they make are written in that one transaction, and the read
    models' position moves past them, so nothing is applied twice or left behind.
    A payment's deterministic id still makes a second issue collide in the event store.
    """

    def __init__(self, app: LedgerApp, projections: Projections) -> None:
        self.app = app
        self.projections = projections
        self._batch: Any = None  # the run's batch aggregate as this process last saved it
        #: Payments issued so far from the read models' facts, and on the aggregates.
        self.from_read_models = 0
        self.from_aggregates = 0

    def __call__(
        self, ref: str, part: Sequence[tuple[str, Sequence[Month]]], operator: str, effective: date
    ) -> tuple[list[str], list[tuple[str, str, str]], dict[str, dict[str, int]]]:
        for _attempt in range(RETRIES):
            try:
                with collector_paused():
                    paid = self._pay(ref, part, operator, effective)
                self.projections.refresh_statistics()
                return paid
            except IntegrityError:
                self._batch = None  # another process wrote meanwhile: decide again on fresh state
        raise ConcurrentChange("the payroll's cases changed meanwhile, try again")

    def _pay(
        self, ref: str, part: Sequence[tuple[str, Sequence[Month]]], operator: str, effective: date
    ) -> tuple[list[str], list[tuple[str, str, str]], dict[str, dict[str, int]]]:
        app, view = self.app, self.projections.view
        with app.recorder.transaction(commit=True) as session:  # type: ignore[attr-defined]
            view.lock(session)
            app.recorder.lock_for_append(session)  # type: ignore[attr-defined]
            self.projections.catch_up_in(session)
            horizon = app.horizon()
            by_month: dict[int, list[str]] = defaultdict(list)
            for case_no, months in part:
                for m in months:
                    if m <= horizon:
                        by_month[m.index].append(case_no)
            plain: dict[tuple[str, int], _Plain] = {}
            for idx, case_nos in by_month.items():
                plain.update(_plain_months(session.connection(), case_nos, idx))

            writer = FirstIssues(app.mapper, batch=ref, operator=operator, effective=effective)
            events: list[StoredEvent] = []
            refs: list[str] = []
            rest: list[tuple[str, list[Month]]] = []
            for case_no, months in part:
                others = []
                for m in months:
                    f = plain.pop((case_no, m.index), None)
                    if f is None:
                        others.append(m)
                        continue
                    stored, payment_ref = writer.stored(
                        case_no=case_no, household_no=f.household_no, programme=f.programme, area=f.area, month=m,
                        amount_fen=f.amount_fen, persons=f.persons, payee_name=f.payee_name,
                        payee_account=f.payee_account,
                    )
                    events.append(stored)
                    refs.append(payment_ref)
                if others:
                    rest.append((case_no, others))

            w = app.unit_of_work()
            if self._batch is not None:
                w.seed(self._batch)
            more, skipped, more_totals = app.issue_through_aggregates(w, ref, rest, operator, effective)
            refs.extend(more)
            totals = writer.totals
            add_totals(totals, more_totals)
            app.add_to_batch(w, ref, refs, totals, operator, effective)

            w.commit()
            if events:
                app.recorder.insert_events(events)
            # The chunk's own events, into the read models in the same transaction.
            self.projections.catch_up_in(session)
        self._batch = w.find_cached(batch_id(*parse_batch_ref(ref)))
        self.from_read_models += len(events)
        self.from_aggregates += len(more)
        return refs, skipped, totals


def _plain_months(conn: Connection, case_nos: list[str], month_idx: int) -> dict[tuple[str, int], _Plain]:
    """The cases among ``case_nos`` whose month ``month_idx`` is plain, with the facts to pay it.

    A chunk's cases are read with four queries, whatever its size: on SQLite as one
    range of case numbers (its text order is Python's, and the indexes on case number
    serve it; rows outside the chunk are dropped here), on PostgreSQL as one array.
    """
    if not case_nos:
        return {}
    wanted = set(case_nos)
    if conn.dialect.name == "postgresql":
        mark, which, keys = "%s", "{col} = ANY(%s)", (sorted(wanted),)
    else:
        mark, which, keys = "?", "{col} >= ? AND {col} <= ?", (min(wanted), max(wanted))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            f"SELECT DISTINCT case_no FROM {t.payments.name} WHERE {which.format(col='case_no')} "
            f"AND month_idx = {mark}", (*keys, month_idx))
        issued = {r[0] for r in cursor.fetchall()}
        debt: dict[str, int] = defaultdict(int)
        cursor.execute(
            f"SELECT case_no, SUM(amount_fen) FROM {t.overpayments.name} WHERE {which.format(col='case_no')} "
            "GROUP BY case_no", keys)
        for case_no, v in cursor.fetchall():
            debt[case_no] += int(v)
        cursor.execute(
            f"SELECT case_no, SUM(amount_fen) FROM {t.recoveries.name} WHERE {which.format(col='case_no')} "
            "GROUP BY case_no", keys)
        for case_no, v in cursor.fetchall():
            debt[case_no] -= int(v)
        cursor.execute(
            f"SELECT c.case_no, c.household_no, c.programme, c.area, p.amount_fen, p.persons, h.payee_name, h.payee_account "
            f"FROM {t.cases.name} c JOIN {t.periods.name} p ON p.case_no = c.case_no "
            f"JOIN {t.households.name} h ON h.household_no = c.household_no "
            f"WHERE {which.format(col='c.case_no')} AND p.known_to IS NULL "
            f"AND p.from_idx <= {mark} AND p.to_idx > {mark} AND p.status = 'active'",
            (*keys, month_idx, month_idx))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    out: dict[tuple[str, int], _Plain] = {}
    programmes = {p.value: p for p in Programme if p.is_monthly}
    areas = {a.value: a for a in Area}
    for case_no, household_no, programme, area, amount, persons, payee_name, payee_account in rows:
        if case_no not in wanted or case_no in issued or debt.get(case_no, 0) > 0 or amount <= 0 or persons < 1:
            continue
        prog = programmes.get(programme)
        if prog is None:
            continue
        out[(case_no, month_idx)] = _Plain(household_no, prog, areas[area], int(amount), int(persons),
                                           payee_name, payee_account)
    return out
