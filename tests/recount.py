"""An independent recount of the published figures straight from the stored events.

It reads the ``ledger_events`` table with plain SQL and decodes each event's JSON
``state`` itself. It uses neither the projections nor the aggregates, so a bug
shared by both cannot hide here. The definitions are those of DOMAIN.md section 5:

* a *net payment* is an issued payment the bank has not returned; a returned payment
  that is re-issued counts once, through its new issue;
* person-times of a monthly programme over a period = the persons of every net
  payment for a benefit month in the period (a top-up after a retroactive increase
  covers no additional persons: it is stored with 0 persons); paid = the sum of their
  ``amount_fen``, the cash paid (part of a payment offset against overpayment debt
  is not paid again: the month it repaid was counted when it was paid);
* newly added = cases whose first benefit month (``Approved.first_month``) lies in
  the period: distinct households, and the persons covered at approval;
* caseload on a date = dibao cases whose status in that date's benefit month is
  active. The status of a month is folded from the case's decisions in force by then
  (effective month not after it): the amount and persons of the latest-recorded
  approval or adjustment, the status of the latest-recorded approval, suspension or
  resumption; a termination in force makes the case terminated for good;
* temporary assistance = grants whose ``GrantPaid`` takes effect in the period, and
  the sum of their approved amounts.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

TOPIC_PREFIX = "ledger.domain:"


def _plain(value: Any) -> Any:
    """Undo the transcoder's ``{"_type_": ..., "_data_": ...}`` wrapping (dates, months, enums)."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            return _plain(value["_data_"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _decode(state: bytes | str) -> dict[str, Any]:
    raw = bytes(state) if not isinstance(state, str) else state.encode()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = zlib.decompress(raw).decode("utf-8")
    return _plain(json.loads(text))


def month_index(text: str) -> int:
    year, month = text.split("-")
    return int(year) * 12 + int(month) - 1


@dataclass
class StoredEvent:
    position: int
    originator: bytes
    version: int
    kind: str  # e.g. "Case.Approved"
    state: dict[str, Any]


def read_events(db_path: str) -> Iterator[StoredEvent]:
    """Every stored event in log order, decoded."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT id, originator_id, originator_version, topic, state FROM ledger_events ORDER BY id"
        )
        for position, originator, version, topic, state in rows:
            kind = topic[len(TOPIC_PREFIX):] if topic.startswith(TOPIC_PREFIX) else topic
            yield StoredEvent(position, bytes(originator), version, kind, _decode(state))
    finally:
        con.close()


@dataclass
class CaseRecord:
    case_no: str
    household_no: str
    programme: str
    area: str
    channel: str
    single_person: str | None
    first_month: int | None = None
    covered_at_approval: int = 0
    #: (from month index, recording order, kind, amount fen, persons covered)
    decisions: list[tuple[int, int, str, int, int]] = field(default_factory=list)
    grant_fen: int | None = None
    grant_paid_on: date | None = None
    verifiers: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)


@dataclass
class PaymentRecord:
    case_no: str
    programme: str
    month: int
    issue_no: int
    gross_fen: int
    cash_fen: int
    persons: int
    returned: bool = False


@dataclass
class Ledger:
    """The raw facts the recount needs, gathered from one pass over the log."""

    cases: dict[str, CaseRecord]
    payments: list[PaymentRecord]
    households: dict[str, dict[str, Any]]
    events: int
    #: How many events of each kind (e.g. ``"Case.OverpaymentEstablished"``).
    kinds: dict[str, int] = field(default_factory=dict)
    _by_case: dict[str, list[PaymentRecord]] | None = field(default=None, repr=False)

    def payments_of(self, case_no: str) -> list[PaymentRecord]:
        if self._by_case is None:
            self._by_case = defaultdict(list)
            for p in self.payments:
                self._by_case[p.case_no].append(p)
        return self._by_case.get(case_no, [])

    # ------------------------------------------------------------------ folds
    def status_in(self, case: CaseRecord, month: int) -> tuple[str, int, int] | None:
        """(status, amount fen, persons) of a case in a benefit month, folded from its decisions.

        Only decisions in force by ``month`` count; among them the latest recorded
        decides the amount and persons (approval/adjustment) and the status
        (approval/suspension/resumption). A termination in force ends the case.
        """
        in_force = sorted((d for d in case.decisions if d[0] <= month), key=lambda d: d[1])
        status: str | None = None
        amount = persons = 0
        terminated = False
        for _from_month, _order, kind, fen, n in in_force:
            if kind in ("approved", "adjusted"):
                amount, persons = fen, n
            if kind == "approved":
                status = "active"
            elif kind == "resumed" and status is not None:
                status = "active"
            elif kind == "suspended" and status is not None:
                status = "suspended"
            elif kind == "terminated":
                terminated = True
        if status is None:
            return None
        return ("terminated" if terminated else status), amount, persons

    def net_payments(self) -> list[PaymentRecord]:
        return [p for p in self.payments if not p.returned]

    # ------------------------------------------------------------------ figures
    def monthly(self, programme: str, first: int, last: int) -> tuple[int, int]:
        """(person-times, paid fen) of a monthly programme over benefit months first..last."""
        persons = fen = 0
        for p in self.net_payments():
            if p.programme == programme and first <= p.month <= last:
                persons += p.persons
                fen += p.cash_fen
        return persons, fen

    def newly_added(self, programme: str, first: int, last: int) -> tuple[int, int]:
        households: set[str] = set()
        persons = 0
        for c in self.cases.values():
            if c.programme == programme and c.first_month is not None and first <= c.first_month <= last:
                households.add(c.household_no)
                persons += c.covered_at_approval
        return len(households), persons

    def caseload(self, programmes: Iterable[str], on: date) -> tuple[int, int]:
        month = on.year * 12 + on.month - 1
        households: set[str] = set()
        persons = 0
        wanted = set(programmes)
        for c in self.cases.values():
            if c.programme not in wanted:
                continue
            s = self.status_in(c, month)
            if s and s[0] == "active":
                households.add(c.household_no)
                persons += s[2]
        return len(households), persons

    def temporary(self, first: date, last: date) -> tuple[int, int]:
        grants = fen = 0
        for c in self.cases.values():
            if c.programme == "temporary" and c.grant_paid_on and first <= c.grant_paid_on <= last:
                grants += 1
                fen += c.grant_fen or 0
        return grants, fen

    def balance(self, case: CaseRecord, first: int, last: int) -> int:
        """Entitlement of benefit months first..last minus the net payments for them (fen owed)."""
        owed = 0
        for month in range(first, last + 1):
            s = self.status_in(case, month)
            if s and s[0] == "active":
                owed += s[1]
        paid = sum(p.gross_fen for p in self.payments_of(case.case_no) if not p.returned and first <= p.month <= last)
        return owed - paid

    def figures(self) -> dict[str, int]:
        """The published figures for January-September 2023 (keys as ``ledger.demo.TARGETS``)."""
        jan, sep = month_index("2023-01"), month_index("2023-09")
        out: dict[str, int] = {}
        for programme in ("urban-dibao", "rural-dibao"):
            pt, fen = self.monthly(programme, jan, sep)
            hh, persons = self.newly_added(programme, jan, sep)
            out[f"{programme}.person_times"] = pt
            out[f"{programme}.paid_fen"] = fen
            out[f"{programme}.new_households"] = hh
            out[f"{programme}.new_persons"] = persons
        hh, persons = self.caseload(("urban-dibao", "rural-dibao"), date(2023, 9, 30))
        out["dibao.caseload_households"] = hh
        out["dibao.caseload_persons"] = persons
        out["tekun.paid_fen"] = self.monthly("tekun", jan, sep)[1]
        grants, fen = self.temporary(date(2023, 1, 1), date(2023, 9, 30))
        out["temporary.grants"] = grants
        out["temporary.paid_fen"] = fen
        return out


def load(db_path: str) -> Ledger:
    """Read the whole log of a ledger stored in an SQLite file."""
    cases: dict[str, CaseRecord] = {}
    case_by_id: dict[bytes, CaseRecord] = {}
    payment_by_id: dict[bytes, PaymentRecord] = {}
    payments: list[PaymentRecord] = []
    households: dict[str, dict[str, Any]] = {}
    household_by_id: dict[bytes, dict[str, Any]] = {}
    kinds: dict[str, int] = defaultdict(int)
    n = 0
    for e in read_events(db_path):
        n += 1
        kinds[e.kind] += 1
        s = e.state
        if e.kind == "Household.Registered":
            h = {"number": s["number"], "area": s["area"], "members": {m["id_number"]: dict(m) for m in s["members"]}}
            households[s["number"]] = h
            household_by_id[e.originator] = h
        elif e.kind == "Household.MemberAdded":
            m = s["member"]
            household_by_id[e.originator]["members"][m["id_number"]] = dict(m)
        elif e.kind == "Case.Applied":
            c = CaseRecord(s["case_no"], s["household_no"], s["programme"], s["area"], s["channel"], s.get("single_person"))
            cases[c.case_no] = c
            case_by_id[e.originator] = c
        elif e.kind.startswith("Case."):
            c = case_by_id[e.originator]
            kind = e.kind.split(".", 1)[1]
            if kind == "Verified":
                c.verifiers.append(s["verifier"])
            elif kind == "Approved":
                c.first_month = month_index(s["first_month"])
                c.covered_at_approval = len(s["covered"])
                c.decisions.append((c.first_month, e.version, "approved", s["amount_fen"], len(s["covered"])))
                c.approvers.append(s["operator"])
            elif kind == "AmountAdjusted":
                c.decisions.append((month_index(s["from_month"]), e.version, "adjusted", s["amount_fen"], len(s["covered"])))
                c.approvers.append(s["operator"])
            elif kind in ("Suspended", "Resumed", "Terminated"):
                c.decisions.append((month_index(s["from_month"]), e.version, kind.lower(), 0, 0))
            elif kind == "GrantApproved":
                c.grant_fen = s["amount_fen"]
                c.approvers.append(s["operator"])
            elif kind == "GrantPaid":
                c.grant_paid_on = date.fromisoformat(s["effective"])
        elif e.kind == "Payment.Issued":
            gross = s.get("gross_fen", s["amount_fen"])
            p = PaymentRecord(s["case_no"], s["programme"], month_index(s["month"]), s["issue_no"], gross, s["amount_fen"], s["persons"])
            payments.append(p)
            payment_by_id[e.originator] = p
        elif e.kind == "Payment.Returned":
            payment_by_id[e.originator].returned = True
        elif e.kind == "Payment.OffsetReleased":
            payment_by_id[e.originator].gross_fen -= s["amount_fen"]
    return Ledger(cases, payments, households, n, dict(kinds))
