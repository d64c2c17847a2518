"""Audit queries over the read models: the trail of a case and the standing anomaly checks."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ledger.errors import NotFound
from ledger.values import Month, mask_id, yuan
from projections import tables as t
from projections.describe import describe, detail
from projections.queries import _aware, _first_recorded, case_timeline

DECISIONS = ("Case.Approved", "Case.AmountAdjusted", "Case.LegacyApproved")
MONTHLY_CHECKED = ("urban-dibao", "rural-dibao", "tekun")


def trail(conn: Connection, case_no: str, known_at: datetime | None = None) -> list[dict[str, Any]]:
    """Every event of a case (and of its payments) in log order, with both times, the operator and a sentence."""
    if conn.execute(select(t.cases.c.case_no).where(t.cases.c.case_no == case_no)).first() is None:
        raise NotFound(f"no case {case_no}")
    if known_at is not None:
        first = _first_recorded(conn, case_no)
        if first is None or _aware(first) > _aware(known_at):  # type: ignore[operator]
            raise NotFound(f"no case {case_no}")  # not yet recorded at that moment
    rows = case_timeline(conn, case_no, known_at)
    return [
        {
            "position": r["position"],
            "effective": r["effective"].isoformat(),
            "recorded_at": _aware(r["recorded_at"]).isoformat(),  # type: ignore[union-attr]
            "operator": r["operator"],
            "event": r["kind"],
            "subject": r["subject_key"],
            "what": describe(r["kind"], r["fields"]),
        }
        for r in rows
    ]


def _decision_month(d: dict[str, Any]) -> Month:
    return Month.parse(d.get("first_month") or d["from_month"])


def check(conn: Connection) -> list[dict[str, Any]]:
    """Standing anomaly checks over the whole record; each finding names case, month, amount and rule."""
    findings: list[dict[str, Any]] = []

    def found(rule: str, case_no: str, month: Month | None, amount_fen: int | None, what: str) -> None:
        findings.append({"rule": rule, "case": case_no, "month": str(month) if month else "",
                         "amount_fen": amount_fen, "detail": what})

    cases = {r["case_no"]: dict(r) for r in conn.execute(select(t.cases)).mappings()}
    decisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in conn.execute(
        t.with_detail(t.timeline.c.position, t.timeline.c.case_no, t.timeline.c.kind, t.timeline.c.operator,
                      t.timeline.c.effective)
        .where(t.timeline.c.kind.in_(DECISIONS)).order_by(t.timeline.c.position)
    ):
        d = detail(r[5])
        d.update(position=r[0], kind=r[2], operator=r[3], effective=r[4], month=_decision_month(d))
        decisions[r[1]].append(d)
    verifications = {(r["case_no"], r["no"]): dict(r) for r in conn.execute(select(t.verifications)).mappings()}
    standards: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
    for r in conn.execute(select(t.standards).order_by(t.standards.c.position)).mappings():
        standards[(r["programme"], r["area"])].append((r["from_idx"], r["position"], r["amount_fen"]))
    deaths = {
        r["id_number"]: r["until"]
        for r in conn.execute(select(t.members).where(t.members.c.status == "deceased")).mappings()
        if r["until"] is not None
    }

    def standard_in_force(programme: str, area: str, month: Month) -> int | None:
        best = None
        for from_idx, _pos, amount in standards.get((programme, area), []):
            if from_idx <= month.index and (best is None or from_idx >= best[0]):
                best = (from_idx, amount)
        return best[1] if best else None

    def in_force(case_no: str, month: Month) -> dict[str, Any] | None:
        candidates = [d for d in decisions.get(case_no, []) if d["month"] <= month]
        return candidates[-1] if candidates else None

    # 1. Decisions: verification behind each, and four eyes.
    for case_no, ds in decisions.items():
        for d in ds:
            v = verifications.get((case_no, d.get("verification_no", 0)))
            approver = d.get("approver") or d["operator"]
            if v is None:
                found("decision-without-verification", case_no, d["month"], d["amount_fen"],
                      f"{d['kind']} at position {d['position']} has no verification behind it")
                continue
            problems = []
            if not v["passed"]:
                problems.append(f"verification no. {v['no']} did not pass")
            if v["valid_until"] < d["effective"]:
                problems.append(f"verification no. {v['no']} expired on {v['valid_until']} before the decision of {d['effective']}")
            if v["verified_on"] > d["effective"]:
                problems.append(f"verification no. {v['no']} is dated after the decision")
            if problems:
                found("decision-without-valid-verification", case_no, d["month"], d["amount_fen"], "; ".join(problems))
            if approver in (v["verifier"], v["recorded_by"]):
                found("verifier-is-approver", case_no, d["month"], d["amount_fen"],
                      f"{approver} verified (no. {v['no']}) and approved ({d['kind']} at position {d['position']})")

    # 2. Payments: net payments against their authority, the standard, deaths and double coverage.
    coverage: dict[tuple[str, int], set[str]] = defaultdict(set)
    for p in conn.execute(
        select(t.payments).where(t.payments.c.status != "returned").order_by(t.payments.c.case_no, t.payments.c.month_idx)
    ).mappings():
        month = Month.from_index(p["month_idx"])
        case_no = p["case_no"]
        d = in_force(case_no, month)
        if d is None:
            found("payment-without-decision", case_no, month, p["gross_fen"], f"{p['ref']} has no approval in force")
            continue
        covered = d.get("covered", [])
        std = standard_in_force(p["programme"], p["area"], month)
        if p["kind"] != "top-up" and std is not None:
            ceiling = std * len(covered) + int(d.get("add_on_fen") or 0)
            if p["gross_fen"] > ceiling:
                found("above-standard", case_no, month, p["gross_fen"],
                      f"{p['ref']}: {yuan(p['gross_fen'])} yuan is above the standard in force, "
                      f"{yuan(std)} x {len(covered)} persons" + (f" + add-on {yuan(int(d['add_on_fen']))}" if d.get("add_on_fen") else ""))
        for idn in covered:
            died = deaths.get(idn)
            if died is not None and Month.of(died) < month:
                found("paid-after-death", case_no, month, p["gross_fen"],
                      f"{p['ref']} covers {mask_id(idn)}, recorded as deceased on {died}")
            if p["programme"] in MONTHLY_CHECKED and p["persons"]:
                coverage[(idn, p["month_idx"])].add(case_no)

    for (idn, month_idx), case_nos in sorted(coverage.items()):
        if len(case_nos) > 1:
            for case_no in sorted(case_nos):
                others = ", ".join(sorted(case_nos - {case_no}))
                found("covered-twice", case_no, Month.from_index(month_idx), None,
                      f"{mask_id(idn)} is also covered by {others} for the same month")

    # 3. Months paid and no longer due, with overpayment not recovered.
    overpaid: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in conn.execute(select(t.overpayments.c.case_no, t.overpayments.c.month_idx, t.overpayments.c.amount_fen)):
        overpaid[r[0]][r[1]] += r[2]
    recovered: dict[str, int] = defaultdict(int)
    for r in conn.execute(select(t.recoveries.c.case_no, t.recoveries.c.amount_fen)):
        recovered[r[0]] += r[1]
    active: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in conn.execute(
        select(t.periods.c.case_no, t.periods.c.from_idx, t.periods.c.to_idx)
        .where(t.periods.c.known_to.is_(None), t.periods.c.status == "active", t.periods.c.case_no.in_(list(overpaid)))
    ):
        active[r[0]].append((r[1], r[2]))
    for case_no, months in sorted(overpaid.items()):
        debt = sum(months.values()) - recovered.get(case_no, 0)
        if debt <= 0:
            continue
        status = cases.get(case_no, {}).get("status", "?")
        # Recoveries clear the oldest overpaid months first; what is left is listed.
        left_recovered = recovered.get(case_no, 0)
        for m, established in sorted(months.items()):
            cleared = min(max(established, 0), max(left_recovered, 0))
            left_recovered -= cleared
            amount = established - cleared
            if amount <= 0:
                continue
            if any(a <= m < b for a, b in active.get(case_no, [])):
                found("overpaid-not-recovered", case_no, Month.from_index(m), amount,
                      f"paid above the amount now due; {yuan(debt)} yuan not yet recovered")
            else:
                found("paid-while-not-active", case_no, Month.from_index(m), amount,
                      f"paid for a month in which the case is no longer active (now {status}); {yuan(debt)} yuan not yet recovered")

    # 4. Bank results that matched nothing and were never resolved.
    for r in conn.execute(
        select(t.bank_lines).where(t.bank_lines.c.outcome == "exception", t.bank_lines.c.resolved.is_(None))
        .order_by(t.bank_lines.c.loaded_at, t.bank_lines.c.line)
    ).mappings():
        found("bank-exception-unresolved", "", None, r["amount_fen"],
              f"{r['file_name']} line {r['line']} ({r['ref']}): {r['problem']}")
    order = {k: i for i, k in enumerate([
        "decision-without-verification", "decision-without-valid-verification", "verifier-is-approver",
        "payment-without-decision", "above-standard", "paid-after-death", "covered-twice", "paid-while-not-active",
        "overpaid-not-recovered",
        "bank-exception-unresolved"])}
    findings.sort(key=lambda f: (order.get(f["rule"], 99), f["case"], f["month"]))
    return findings
