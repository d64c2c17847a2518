"""Which cases a payroll run should look at, selected from the read models with set-based SQL.

The selection only proposes (case, months) pairs: every payment is still decided on
the aggregates, so a read model that lags behind can make a run skip a case (the next
run pays it) but never pay anything twice.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from ledger.values import Month
from projections import tables as t


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
    upto = case((p.c.to_idx < M, p.c.to_idx), else_=M)
    entitled = (
        select(p.c.case_no, func.sum(p.c.amount_fen * (upto - p.c.from_idx)).label("e"))
        .where(p.c.known_to.is_(None), p.c.status == "active", p.c.from_idx < M, *prog)
        .group_by(p.c.case_no)
        .subquery()
    )
    delivered = (
        select(pay.c.case_no, func.sum(pay.c.gross_fen).label("v"))
        .where(pay.c.month_idx < M, pay.c.status != "returned")
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
                entitled.outerjoin(delivered, delivered.c.case_no == entitled.c.case_no).outerjoin(
                    established, established.c.case_no == entitled.c.case_no
                )
            )
            .where(entitled.c.e - func.coalesce(delivered.c.v, 0) + func.coalesce(established.c.o, 0) > 0)
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
