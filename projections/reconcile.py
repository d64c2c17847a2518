"""Three-way reconciliation of a benefit month (or a batch): events, read models and bank results.

* the events: every payment issued, replayed from the event store (the log is scanned
  for payment issues, independently of the read models);
* the read models: what the reports count as paid;
* the bank: the result lines loaded from the bank's files.

Each payment gets one line and one classification; the totals of the three sides
must agree to the fen. Anything unexplained is an exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.application import project_aggregate
from eventsourcing.utils import get_topic
from sqlalchemy import select
from sqlalchemy.engine import Connection

from ledger.application import LedgerApp, parse_payment_ref
from ledger.domain import Payment, payment_id
from ledger.errors import InvalidInput
from ledger.values import Month
from projections import tables as t
from projections.queries import _known, _moment

ISSUED_TOPIC = get_topic(Payment.Issued)


@dataclass
class Reconciliation:
    scope: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def exceptions(self) -> list[dict[str, Any]]:
        return [x for x in self.lines if x["class"] == "exception"]

    @property
    def balanced(self) -> bool:
        ev, rm = self.totals["events"], self.totals["read_model"]
        return ev == rm and not self.exceptions


def _issued_in_log(app: LedgerApp, month: Month | None, batch: str | None, known_at: datetime | None, page: int = 5000) -> Iterator[Any]:
    """Payment issues of the month or batch, straight from the stored events."""
    position = 0
    head = app.recorder.max_notification_id() or 0
    mapper = app.mapper
    while position < head:
        notes = app.recorder.select_notifications(start=position, limit=page, stop=head, topics=[ISSUED_TOPIC],
                                                  inclusive_of_start=False)
        if not notes:
            return
        for n in notes:
            e = mapper.to_domain_event(n)
            if known_at is not None and e.timestamp > known_at:
                continue
            if (month is None or e.month == month) and (batch is None or e.batch == batch):  # type: ignore[attr-defined]
                yield e
        position = notes[-1].id


def _payments_as_known(app: LedgerApp, refs: list[str], known_at: datetime | None) -> dict[str, Any]:
    """The payments' state from their own events (recorded by ``known_at``, if given)."""
    ids = {r: payment_id(*parse_payment_ref(r)) for r in refs}
    if known_at is None:
        w = app.unit_of_work()
        w.preload(ids.values())
        return {r: w.find(i) for r, i in ids.items()}
    stored = app.recorder.select_events_many(list(ids.values()))  # type: ignore[attr-defined]
    out = {}
    for r, i in ids.items():
        events = [app.mapper.to_domain_event(se) for se in stored.get(i, [])]
        out[r] = project_aggregate(None, [e for e in events if e.timestamp <= known_at])
    return out


def reconcile(
    app: LedgerApp, conn: Connection, month: Month | None = None, batch: str | None = None, known_at: datetime | None = None
) -> Reconciliation:
    """Reconcile one benefit month or one payroll batch, line by line and in total (as known at ``known_at``)."""
    scope = f"batch {batch}" if batch else f"month {month}"
    refs = [e.ref for e in _issued_in_log(app, month, batch, known_at)]
    events = _payments_as_known(app, refs, known_at)

    pay = t.payments
    q = select(pay).where(_known(pay.c.issued_at, conn, known_at))
    q = q.where(pay.c.batch == batch) if batch else q.where(pay.c.month_idx == month.index)  # type: ignore[union-attr]
    rm = {r["ref"]: dict(r) for r in conn.execute(q).mappings()}
    if known_at is not None:
        k = _moment(conn, known_at)
        for r in rm.values():
            r["status"] = (
                "returned" if r["returned_at"] is not None and r["returned_at"] <= k
                else "settled" if r["settled_at"] is not None and r["settled_at"] <= k
                else "issued"
            )

    bank: dict[str, list[dict[str, Any]]] = {}
    stray: list[dict[str, Any]] = []
    bl = t.bank_lines
    for r in conn.execute(
        select(bl).where(_known(bl.c.loaded_at, conn, known_at)).order_by(bl.c.loaded_at, bl.c.line)
    ).mappings():
        row = dict(r)
        if known_at is not None and row["resolved_at"] is not None and row["resolved_at"] > _moment(conn, known_at):
            row["resolved"] = None
        if row["ref"] in events or row["ref"] in rm:
            bank.setdefault(row["ref"], []).append(row)
        elif row["outcome"] == "exception" and not row["resolved"] and _in_scope(row["ref"], month, batch):
            stray.append(row)

    rec = Reconciliation(scope)
    sides = {name: {"issued_fen": 0, "settled_fen": 0, "returned_fen": 0, "outstanding_fen": 0, "offset_fen": 0}
             for name in ("events", "read_model", "bank")}
    for ref in sorted(set(events) | set(rm)):
        p, r = events.get(ref), rm.get(ref)
        lines = bank.get(ref, [])
        applied = [x for x in lines if x["outcome"] == "applied"]
        open_exceptions = [x for x in lines if x["outcome"] == "exception" and not x["resolved"]]
        line: dict[str, Any] = {
            "ref": ref,
            "case": (p.case_no if p else r["case_no"]),  # type: ignore[index]
            "month": str(p.month) if p else str(Month.from_index(r["month_idx"])),  # type: ignore[index]
            "amount_fen": p.amount_fen if p else None,
            "events": p.status if p else "missing",
            "read_model": r["status"] if r else "missing",
            "bank": applied[-1]["result"] if applied else ("-" if p is None or p.amount_fen else "no bank leg"),
            "class": "",
            "note": "",
        }
        if p is not None:
            _count(sides["events"], p.status, p.amount_fen, p.offset_fen)
        if r is not None:
            _count(sides["read_model"], r["status"], r["amount_fen"], r["offset_fen"])
        for x in applied:
            _count(sides["bank"], x["result"], x["amount_fen"], 0)
        if p is None or r is None or r["status"] != p.status or r["amount_fen"] != p.amount_fen:
            line["class"], line["note"] = "exception", "the read model differs from the events"
        elif applied and applied[-1]["result"] != p.status:
            line["class"] = "exception"
            line["note"] = f"the bank says {applied[-1]['result']}, the events say {p.status}"
        elif open_exceptions:
            line["class"] = "exception"
            line["note"] = "; ".join(f"{x['file_name']} line {x['line']}: {x['problem']}" for x in open_exceptions)
        elif p.status == "issued":
            line["class"] = "outstanding"
        elif p.status == "returned":
            line["class"] = "returned"
            if not applied:
                line["note"] = "returned by hand, no bank line"
        elif p.amount_fen == 0:
            line["class"], line["note"] = "matched", "fully offset against overpayment"
        else:
            line["class"] = "matched"
            if not applied:
                line["note"] = "settled by hand, no bank line"
        rec.lines.append(line)
    for x in stray:
        rec.lines.append({
            "ref": x["ref"], "case": "", "month": "", "amount_fen": x["amount_fen"], "events": "missing",
            "read_model": "missing", "bank": x["result"], "class": "exception",
            "note": f"{x['file_name']} line {x['line']}: {x['problem']}",
        })
    rec.totals = sides
    return rec


def _count(side: dict[str, int], status: str, amount: int, offset: int) -> None:
    side["issued_fen"] += amount
    side["offset_fen"] += offset
    key = {"issued": "outstanding_fen", "settled": "settled_fen", "returned": "returned_fen"}[status]
    side[key] += amount


def _in_scope(ref: str, month: Month | None, batch: str | None) -> bool:
    """Whether a bank line that matches no payment belongs to this reconciliation."""
    if batch is not None:
        return False
    try:
        return parse_payment_ref(ref)[1] == month
    except InvalidInput:
        return False
