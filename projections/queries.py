"""Queries over the read models. Each returns plain data (dicts, lists, integers in fen).

Every query can be asked for a date in effective time (``on``) and, where noted,
as the record stood at a past moment (``known_at``: only events recorded by then).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from ledger.errors import NotFound
from ledger.values import Month, mask_id
from projections import tables as t
from projections.describe import describe, detail

MONTHLY = ("urban-dibao", "rural-dibao", "tekun")
DIBAO = ("urban-dibao", "rural-dibao")


def _moment(conn: Connection, when: datetime) -> datetime:
    """A recorded-time bound as the database stores it (SQLite keeps naive UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    return when.replace(tzinfo=None) if conn.dialect.name == "sqlite" else when


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _known(column: Any, conn: Connection, known_at: datetime | None) -> Any:
    return True if known_at is None else column <= _moment(conn, known_at)


def _periods_known(conn: Connection, known_at: datetime | None) -> Any:
    p = t.periods
    if known_at is None:
        return p.c.known_to.is_(None)
    k = _moment(conn, known_at)
    return and_(p.c.known_from <= k, or_(p.c.known_to.is_(None), p.c.known_to > k))


def _net(conn: Connection, known_at: datetime | None) -> Any:
    """A payment counts as paid unless the bank returned it (as known at ``known_at``)."""
    p = t.payments
    if known_at is None:
        return p.c.status != "returned"
    k = _moment(conn, known_at)
    return and_(p.c.issued_at <= k, or_(p.c.returned_at.is_(None), p.c.returned_at > k))


# --------------------------------------------------------------------------- households and cases


def household(conn: Connection, number: str) -> dict[str, Any]:
    """A household, its members (identity numbers masked) and its cases."""
    h = conn.execute(select(t.households).where(t.households.c.household_no == number)).mappings().first()
    if h is None:
        raise NotFound(f"no household {number}")
    members = [
        {
            "name": m["name"],
            "id_number": mask_id(m["id_number"]),
            "relation": m["relation"],
            "flags": [f for f in m["flags"].split(",") if f],
            "status": m["status"],
            "since": m["since"].isoformat(),
            "until": m["until"].isoformat() if m["until"] else None,
        }
        for m in conn.execute(
            select(t.members).where(t.members.c.household_no == number).order_by(t.members.c.relation != "head", t.members.c.id_number)
        ).mappings()
    ]
    cases = [
        {"case_no": c["case_no"], "programme": c["programme"], "status": c["status"]}
        for c in conn.execute(
            select(t.cases.c.case_no, t.cases.c.programme, t.cases.c.status)
            .where(t.cases.c.household_no == number)
            .order_by(t.cases.c.applied_on, t.cases.c.case_no)
        ).mappings()
    ]
    return {
        "household": number,
        "community": h["community"],
        "area": h["area"],
        "payee_name": h["payee_name"],
        "payee_account": mask_account(h["payee_account"]),
        "registered_on": h["registered_on"].isoformat(),
        "members": members,
        "cases": cases,
    }


def mask_account(account: str) -> str:
    return "*" * max(len(account) - 4, 0) + account[-4:]


def case_list(
    conn: Connection,
    *,
    programme: str | None = None,
    status: str | None = None,
    household: str | None = None,
    community: str | None = None,
    area: str | None = None,
    limit: int | None = None,
    on: date | None = None,
    known_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Cases with their status and monthly amount, filtered; ordered by case number.

    Without ``on`` and ``known_at`` the status is the case's latest; with them, the
    status and amount in force in ``on``'s benefit month as the record stood at
    ``known_at``.
    """
    c = t.cases
    q = select(c).where(_known(c.c.applied_at, conn, known_at)).order_by(c.c.case_no)
    for col, value in ((c.c.programme, programme), (c.c.household_no, household), (c.c.community, community), (c.c.area, area)):
        if value:
            q = q.where(col == value)
    if status and on is None and known_at is None:
        q = q.where(c.c.status == status)
    rows = [dict(r) for r in conn.execute(q).mappings()]
    if on is not None or known_at is not None:
        _as_of(conn, rows, Month.of(on or (known_at.date() if known_at else date.today())), known_at)
        if status:
            rows = [r for r in rows if r["status"] == status]
    if limit:
        rows = rows[:limit]
    return [
        {
            "case_no": r["case_no"],
            "household": r["household_no"],
            "community": r["community"],
            "programme": r["programme"],
            "area": r["area"],
            "channel": r["channel"],
            "single_person": bool(r["single_person"]),
            "status": r["status"],
            "amount_fen": r["amount_fen"],
            "persons": r["persons"],
            "first_month": str(Month.from_index(r["first_idx"])) if r["first_idx"] is not None else None,
            "applied_on": r["applied_on"].isoformat(),
        }
        for r in rows
    ]


def _as_of(conn: Connection, rows: list[dict[str, Any]], month: Month, known_at: datetime | None) -> None:
    """Replace each case's status, amount and persons by those in force in ``month`` as known at ``known_at``."""
    p = t.periods
    in_force = {
        r["case_no"]: r
        for r in conn.execute(
            select(p).where(p.c.from_idx <= month.index, p.c.to_idx > month.index, _periods_known(conn, known_at))
        ).mappings()
    }
    tl = t.timeline
    lifecycle: dict[str, str] = {}
    first: dict[str, int] = {}
    for case_no, kind, text in conn.execute(
        t.with_detail(tl.c.case_no, tl.c.kind)
        .where(tl.c.subject == "case", tl.c.kind.in_(
            ["Case.Rejected", "Case.GrantApproved", "Case.GrantPaid", "Case.Approved", "Case.LegacyApproved"]),
            _known(tl.c.recorded_at, conn, known_at))
        .order_by(tl.c.position)
    ):
        if kind in ("Case.Approved", "Case.LegacyApproved"):
            first[case_no] = Month.parse(detail(text)["first_month"]).index
        else:
            lifecycle[case_no] = {"Case.Rejected": "rejected", "Case.GrantApproved": "granted", "Case.GrantPaid": "paid"}[kind]
    for r in rows:
        period = in_force.get(r["case_no"])
        r["first_idx"] = first.get(r["case_no"])
        if period is not None:
            r["status"], r["amount_fen"], r["persons"] = period["status"], period["amount_fen"], period["persons"]
            if period["status"] == "terminated":
                r["amount_fen"], r["persons"] = 0, 0
            continue
        if r["case_no"] in first:
            r["status"] = "approved, not yet started" if month.index < first[r["case_no"]] else "applied"
            r["amount_fen"], r["persons"] = 0, 0
        else:
            r["status"] = lifecycle.get(r["case_no"], "applied")
            if r["status"] == "applied":
                r["amount_fen"], r["persons"] = 0, 0


# --------------------------------------------------------------------------- account


def account_state(conn: Connection, case_no: str, on: date, known_at: datetime | None = None) -> dict[str, Any]:
    """The account of a case as of ``on`` (DOMAIN §4): who, status, amount, history, balances."""
    c = conn.execute(select(t.cases).where(t.cases.c.case_no == case_no)).mappings().first()
    if c is None or (known_at is not None and _aware(_first_recorded(conn, case_no)) > _aware(known_at)):  # type: ignore[operator]
        raise NotFound(f"no case {case_no}")
    month = Month.of(on)
    h, members = household_as_known(conn, c["household_no"], known_at)
    payments = case_payments(conn, case_no, known_at)
    lines = case_timeline(conn, case_no, known_at, payments)
    facts = _case_facts(lines)
    covered_ids = facts["covered"] or ([c["single_person"]] if c["single_person"] else [])
    timeline = [
        {
            "position": e["position"],
            "effective": e["effective"].isoformat(),
            "recorded_at": _aware(e["recorded_at"]).isoformat(),  # type: ignore[union-attr]
            "operator": e["operator"],
            "event": e["kind"],
            "summary": describe(e["kind"], e["fields"]),
        }
        for e in lines
    ]
    state: dict[str, Any] = {
        "case_no": case_no,
        "programme": c["programme"],
        "area": c["area"],
        "channel": c["channel"],
        "on": on.isoformat(),
        "household": {k: h[k] for k in ("household", "community", "area", "payee_name", "payee_account")},
        "covered": [
            {
                "name": members[i]["name"] if i in members else "?",
                "id_number": mask_id(i),
                "relation": members[i]["relation"] if i in members else "?",
                "status": members[i]["status"] if i in members else "?",
            }
            for i in covered_ids
        ],
        "single_person": bool(c["single_person"]),
        "applied_on": c["applied_on"].isoformat(),
        "first_month": facts["first_month"],
        "timeline": timeline,
    }
    if c["programme"] == "temporary":
        state.update(_grant_account(c, on, facts))
    else:
        state.update(_monthly_account(conn, c, on, month, known_at, facts["status"], payments))
    totals = state["totals"]
    # What the household is owed (positive) or owes (negative), all told.
    balance = totals["arrears_fen"] - totals["debt_fen"]
    totals["balance_fen"] = balance
    totals["balance"] = "owed to the household" if balance > 0 else ("owed by the household" if balance < 0 else "settled")
    return state


def _case_facts(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """What the record said about a case's decisions, from its :func:`case_timeline`: persons covered, first month, status."""
    facts: dict[str, Any] = {"covered": [], "first_month": None, "status": "applied", "grant_type": None, "grant_fen": 0}
    for line in timeline:
        if line["subject"] != "case":
            continue
        kind, d = line["kind"], line["fields"]
        if kind in ("Case.Approved", "Case.LegacyApproved"):
            facts.update(covered=d["covered"], first_month=d["first_month"], status="active")
        elif kind == "Case.AmountAdjusted":
            facts["covered"] = d["covered"]
        elif kind == "Case.Rejected":
            facts["status"] = "rejected"
        elif kind == "Case.GrantApproved":
            facts.update(status="granted", grant_type=d["grant_type"], grant_fen=d["amount_fen"])
        elif kind == "Case.GrantPaid":
            facts["status"] = "paid"
        elif kind in ("Case.Suspended", "Case.Resumed", "Case.Terminated"):
            facts["status"] = {"Case.Suspended": "suspended", "Case.Resumed": "active", "Case.Terminated": "terminated"}[kind]
    return facts


def household_as_known(conn: Connection, number: str, known_at: datetime | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A household and its members as the record stood at ``known_at`` (now, if None)."""
    if known_at is None:
        h = household(conn, number)
        members = {
            m["id_number"]: dict(m)
            for m in conn.execute(select(t.members).where(t.members.c.household_no == number)).mappings()
        }
        return h, members
    h: dict[str, Any] | None = None  # type: ignore[no-redef]
    members: dict[str, dict[str, Any]] = {}  # type: ignore[no-redef]
    for kind, text in conn.execute(
        t.with_detail(t.timeline.c.kind)
        .where(t.timeline.c.household_no == number, t.timeline.c.subject == "household",
               _known(t.timeline.c.recorded_at, conn, known_at))
        .order_by(t.timeline.c.position)
    ):
        d = detail(text)
        if kind == "Household.Registered":
            h = {"household": number, "community": d["community"], "area": d["area"],
                 "payee_name": d["payee_name"], "payee_account": mask_account(d["payee_account"])}
            members = {m["id_number"]: dict(m, status="present") for m in d["members"]}
        elif h is None:
            continue
        elif kind == "Household.MemberAdded":
            members[d["member"]["id_number"]] = dict(d["member"], status="present")
        elif kind in ("Household.MemberRemoved", "Household.MemberDeceased"):
            members[d["id_number"]]["status"] = "removed" if kind == "Household.MemberRemoved" else "deceased"
        elif kind == "Household.AreaChanged":
            h["area"] = d["area"]
        elif kind == "Household.AccountChanged":
            h.update(payee_name=d["payee_name"], payee_account=mask_account(d["payee_account"]))
    if h is None:
        raise NotFound(f"no household {number}")
    return h, members


def case_payments(conn: Connection, case_no: str, known_at: datetime | None = None) -> list[Any]:
    """A case's payments issued by ``known_at`` (every one, if None), by month and issue number."""
    pay = t.payments
    return list(
        conn.execute(
            select(pay).where(pay.c.case_no == case_no, _known(pay.c.issued_at, conn, known_at))
            .order_by(pay.c.month_idx, pay.c.issue_no)
        ).mappings()
    )


def issue_fields(payment: Any) -> dict[str, Any]:
    """The business fields of a payment's issue, from its ``rm_payment`` row (its line, decision 0027).

    The row's gross and offset are less any offset released since; the issue's are not.
    """
    released = payment["released_fen"]
    return {
        "ref": payment["ref"],
        "kind": payment["kind"],
        "month": str(Month.from_index(payment["month_idx"])),
        "issue_no": payment["issue_no"],
        "gross_fen": payment["gross_fen"] + released,
        "offset_fen": payment["offset_fen"] + released,
        "amount_fen": payment["amount_fen"],
        "persons": payment["persons"],
    }


def case_timeline(
    conn: Connection, case_no: str, known_at: datetime | None = None, payments: list[Any] | None = None
) -> list[dict[str, Any]]:
    """Every event of a case and of its payments known at ``known_at``, in log order.

    Each line: ``position``, ``kind``, ``subject``, ``subject_key``, ``effective``,
    ``recorded_at``, ``operator`` and ``fields`` (the event's business fields). A payment's
    issue has no line in ``rm_event``: its row of ``rm_payment`` is its line, and its fields
    are read from that row, not from its stored event (:func:`issue_fields`). ``payments`` are
    the case's :func:`case_payments` at ``known_at``, if the caller has them already.
    """
    tl = t.timeline
    lines = [
        {"position": r[0], "kind": r[1], "subject": r[2], "subject_key": r[3], "effective": r[4],
         "recorded_at": r[5], "operator": r[6], "fields": detail(r[7])}
        for r in conn.execute(
            t.with_detail(tl.c.position, tl.c.kind, tl.c.subject, tl.c.subject_key, tl.c.effective,
                          tl.c.recorded_at, tl.c.operator)
            .where(tl.c.case_no == case_no, _known(tl.c.recorded_at, conn, known_at))
        )
    ]
    if payments is None:
        payments = case_payments(conn, case_no, known_at)
    lines.extend(
        {"position": p["issue_position"], "kind": "Payment.Issued", "subject": "payment", "subject_key": p["ref"],
         "effective": p["issued_on"], "recorded_at": p["issued_at"], "operator": p["issued_by"],
         "fields": issue_fields(p)}
        for p in payments
    )
    lines.sort(key=lambda line: line["position"])
    return lines


def _first_recorded(conn: Connection, case_no: str) -> datetime | None:
    return conn.execute(select(func.min(t.timeline.c.recorded_at)).where(t.timeline.c.case_no == case_no)).scalar()


def _grant_account(c: Any, on: date, facts: dict[str, Any]) -> dict[str, Any]:
    """A temporary grant as the record stood (``facts`` come from the events known at the moment asked)."""
    known = facts["status"]
    granted = known in ("granted", "paid")
    paid = known == "paid" and c["grant_paid_on"] <= on
    amount = facts["grant_fen"] if granted else 0
    status = "paid" if paid else ("granted" if granted else known if known in ("applied", "rejected") else "applied")
    return {
        "status": status,
        "monthly_amount_fen": None,
        "grant": {"type": facts["grant_type"], "amount_fen": amount, "paid_on": c["grant_paid_on"].isoformat() if paid else None},
        "months": [],
        "recoveries": [],
        "totals": {
            "entitled_fen": amount,
            "issued_fen": amount if paid else 0,
            "returned_fen": 0,
            "refunded_fen": 0,
            "net_paid_fen": amount if paid else 0,
            "offset_fen": 0,
            "arrears_fen": amount - (amount if paid else 0),
            "overpayment_established_fen": 0,
            "recovered_fen": 0,
            "debt_fen": 0,
        },
    }


def _monthly_account(
    conn: Connection, c: Any, on: date, month: Month, known_at: datetime | None, lifecycle: str, issued: list[Any]
) -> dict[str, Any]:
    """The months and totals of a monthly case; ``issued`` are its :func:`case_payments` at ``known_at``."""
    p = t.periods
    periods = list(
        conn.execute(
            select(p).where(p.c.case_no == c["case_no"], _periods_known(conn, known_at)).order_by(p.c.from_idx)
        ).mappings()
    )
    payments = [r for r in issued if r["month_idx"] <= month.index]
    op = t.overpayments
    overpaid: dict[int, int] = {}
    for r in conn.execute(
        select(op.c.month_idx, op.c.amount_fen).where(
            op.c.case_no == c["case_no"], op.c.month_idx <= month.index, _known(op.c.recorded_at, conn, known_at)
        )
    ):
        overpaid[r[0]] = overpaid.get(r[0], 0) + r[1]
    rec = t.recoveries
    # Offsets count with the payment they were taken from (by its benefit month); refunds
    # by the date they were received.
    refs = {r["ref"] for r in payments}
    recoveries = [
        dict(r)
        for r in conn.execute(
            select(rec).where(rec.c.case_no == c["case_no"], _known(rec.c.recorded_at, conn, known_at))
            .order_by(rec.c.position)
        ).mappings()
        if (r["reference"] in refs if r["method"] in ("offset", "reversal") else r["effective"] <= on)
    ]
    k = _moment(conn, known_at) if known_at else None

    def blank() -> dict[str, Any]:
        return {"entitled_fen": 0, "delivered_fen": 0, "issued_fen": 0, "returned_fen": 0, "offset_fen": 0, "payments": []}

    by_month: dict[int, dict[str, Any]] = {}
    for r in periods:
        if r["status"] != "active":
            continue
        for i in range(r["from_idx"], min(r["to_idx"], month.index + 1)):
            by_month.setdefault(i, blank())["entitled_fen"] = r["amount_fen"]
    for r in payments:
        m = by_month.setdefault(r["month_idx"], blank())
        returned = r["returned_at"] is not None and (k is None or r["returned_at"] <= k)
        m["issued_fen"] += r["amount_fen"]
        if returned:
            m["returned_fen"] += r["amount_fen"]
        else:
            m["delivered_fen"] += r["gross_fen"]
            m["offset_fen"] += r["offset_fen"]
        m["payments"].append(r["ref"] + (" (returned)" if returned else ""))
    for i in overpaid:
        by_month.setdefault(i, blank())
    months = [
        {
            "month": str(Month.from_index(i)),
            "entitled_fen": m["entitled_fen"],
            "issued_fen": m["issued_fen"],
            "returned_fen": m["returned_fen"],
            "offset_fen": m["offset_fen"],
            "net_paid_fen": m["issued_fen"] - m["returned_fen"],
            "owed_fen": max(0, m["entitled_fen"] - m["delivered_fen"]),
            "overpaid_fen": overpaid.get(i, 0),
            "payments": m["payments"],
        }
        for i, m in sorted(by_month.items())
    ]
    now = next((r for r in periods if r["from_idx"] <= month.index < r["to_idx"]), None)
    if now is not None:
        status = now["status"]
    elif periods and month.index < periods[0]["from_idx"]:
        status = "approved, not yet started"
    else:
        status = lifecycle if lifecycle in ("applied", "rejected") else "applied"
    refunded = sum(r["amount_fen"] for r in recoveries if r["method"] == "refund")
    recovered = sum(r["amount_fen"] for r in recoveries)
    established = sum(overpaid.values())
    issued = sum(m["issued_fen"] for m in months)
    returned = sum(m["returned_fen"] for m in months)
    return {
        "status": status,
        "monthly_amount_fen": now["amount_fen"] if now is not None and status == "active" else 0,
        "persons": now["persons"] if now is not None else 0,
        "months": months,
        "recoveries": [
            {"method": r["method"], "amount_fen": r["amount_fen"], "reference": r["reference"], "effective": r["effective"].isoformat()}
            for r in recoveries
        ],
        "totals": {
            "entitled_fen": sum(m["entitled_fen"] for m in months),
            "issued_fen": issued,
            "returned_fen": returned,
            "refunded_fen": refunded,
            "net_paid_fen": issued - returned - refunded,
            "offset_fen": sum(m["offset_fen"] for m in months),
            "arrears_fen": sum(m["owed_fen"] for m in months),
            "overpayment_established_fen": established,
            "recovered_fen": recovered,
            "debt_fen": established - recovered,
        },
    }


# --------------------------------------------------------------------------- statistics


def statistics(
    conn: Connection, first: Month, last: Month, on: date, known_at: datetime | None = None, kept: bool = True
) -> dict[str, Any]:
    """The monthly civil-affairs statistics (DOMAIN §5) for benefit months ``first``..``last``.

    Paid amount and person-times come from net payments (returned ones do not count; a
    re-issue counts once); newly added from first benefit months in the period; the
    caseload from the case periods in force in ``on``'s benefit month.

    As the record stands now, every figure comes from the totals and counts the
    projection keeps (a few rows per month); ``kept=False`` computes the same figures
    from every payment, case and period instead (the reference the kept ones are
    tested against). As known at a past moment, they are always computed that way.
    """
    kept = kept and known_at is None
    if kept:
        # As the record stands now: the monthly totals the projection keeps, a row a month.
        pm = t.paid_months
        rows = conn.execute(
            select(pm.c.programme, func.sum(pm.c.amount_fen), func.sum(pm.c.persons), func.sum(pm.c.payments))
            .where(pm.c.month_idx >= first.index, pm.c.month_idx <= last.index)
            .group_by(pm.c.programme)
        ).all()
    else:
        # As known at a past moment: from every payment and when it was issued and returned.
        pay = t.payments
        rows = conn.execute(
            select(
                pay.c.programme,
                func.coalesce(func.sum(pay.c.amount_fen), 0),
                func.coalesce(func.sum(pay.c.persons), 0),
                func.count(),
            )
            .where(pay.c.month_idx >= first.index, pay.c.month_idx <= last.index, _net(conn, known_at))
            .group_by(pay.c.programme)
        ).all()
    paid = {r[0]: {"paid_fen": int(r[1]), "person_times": int(r[2]), "payments": int(r[3])} for r in rows}

    c = t.cases
    if kept:
        # As the record stands now: the counts the projection keeps (see projections.counts).
        nc = t.new_counts
        new_rows = conn.execute(
            select(nc.c.programme, func.sum(nc.c.households), func.sum(nc.c.persons))
            .where(nc.c.lo_idx >= first.index, nc.c.hi_idx <= last.index)
            .group_by(nc.c.programme)
        ).all()
    else:
        new_rows = conn.execute(
            select(c.c.programme, func.count(func.distinct(c.c.household_no)), func.coalesce(func.sum(c.c.persons_at_approval), 0))
            .where(c.c.first_idx >= first.index, c.c.first_idx <= last.index, _known(c.c.approved_at, conn, known_at))
            .group_by(c.c.programme)
        ).all()
    new = {r[0]: {"households": int(r[1]), "persons": int(r[2])} for r in new_rows}

    month = Month.of(on)
    loads = _caseload_kept(conn, month) if kept else _caseload_scanned(conn, month, known_at)

    def caseload(programme: str, status: str) -> dict[str, int]:
        return loads.get((programme, status), {"households": 0, "persons": 0, "cases": 0})

    grants = conn.execute(
        select(func.count(), func.coalesce(func.sum(c.c.amount_fen), 0)).where(
            c.c.programme == "temporary",
            c.c.status == "paid",
            c.c.grant_paid_on >= first.first_day(),
            c.c.grant_paid_on <= last.last_day(),
            _known(c.c.grant_paid_at, conn, known_at),
        )
    ).one()

    out: dict[str, Any] = {
        "period": {"from": str(first), "to": str(last)},
        "on": on.isoformat(),
        "programmes": {},
    }
    for prog in MONTHLY:
        out["programmes"][prog] = {
            "person_times": paid.get(prog, {}).get("person_times", 0),
            "paid_fen": paid.get(prog, {}).get("paid_fen", 0),
            "payments": paid.get(prog, {}).get("payments", 0),
            "new_households": new.get(prog, {}).get("households", 0),
            "new_persons": new.get(prog, {}).get("persons", 0),
            "caseload": caseload(prog, "active"),
            "suspended": caseload(prog, "suspended"),
        }
    out["programmes"]["temporary"] = {"person_times": int(grants[0]), "paid_fen": int(grants[1])}
    out["dibao_total"] = {"caseload": caseload("dibao", "active"), "suspended": caseload("dibao", "suspended")}
    return out


Loads = dict[tuple[str, str], dict[str, int]]


def _caseload_kept(conn: Connection, month: Month) -> Loads:
    """The caseload in ``month`` from the steps the projection keeps: a few rows per month."""
    cs = t.caseload_steps
    return {
        (grp, status): {"households": int(h), "persons": int(p), "cases": int(n)}
        for grp, status, h, p, n in conn.execute(
            select(cs.c.grp, cs.c.status, func.sum(cs.c.households), func.sum(cs.c.persons), func.sum(cs.c.cases))
            .where(cs.c.month_idx <= month.index)
            .group_by(cs.c.grp, cs.c.status)
        )
    }


def _caseload_scanned(conn: Connection, month: Month, known_at: datetime | None) -> Loads:
    """The caseload in ``month`` from the case periods as known at ``known_at``, in two scans."""
    p = t.periods
    # The caseload in two scans of the periods in force: one by programme and status, one
    # for urban and rural dibao together (a household is counted once across both).
    in_force = (
        p.c.status.in_(("active", "suspended")),
        p.c.from_idx <= month.index,
        p.c.to_idx > month.index,
        _periods_known(conn, known_at),
    )
    loads: dict[tuple[str, str], dict[str, int]] = {}
    for programme, status, households, persons, cases in conn.execute(
        select(p.c.programme, p.c.status, func.count(func.distinct(p.c.household_no)),
               func.coalesce(func.sum(p.c.persons), 0), func.count())
        .where(p.c.programme.in_(MONTHLY), *in_force)
        .group_by(p.c.programme, p.c.status)
    ):
        loads[(programme, status)] = {"households": int(households), "persons": int(persons), "cases": int(cases)}
    for status, households, persons, cases in conn.execute(
        select(p.c.status, func.count(func.distinct(p.c.household_no)), func.coalesce(func.sum(p.c.persons), 0),
               func.count())
        .where(p.c.programme.in_(DIBAO), *in_force)
        .group_by(p.c.status)
    ):
        loads[("dibao", status)] = {"households": int(households), "persons": int(persons), "cases": int(cases)}

    return loads
