"""The account balances to the fen, whatever happens to a case (property-based).

Random histories of a few cases: approvals (often with a first month already past),
retroactive amount changes up and down (each on a new verification), suspensions,
resumptions and terminations taking effect in paid months, payroll runs for increasing
months, bank returns and settlements, a clerk's re-issues, refunds, and cuts reversed on
appeal (which cancel a debt already recovered by offset, so the offset is released). After each history,
for every case::

    net paid + arrears owed - overpayment debt == entitlement accrued

computed from the aggregates, and (on a SQLite file) from the read models' account totals;
and no case and month is ever paid twice net.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from ledger.application import LedgerApp, parse_payment_ref
from ledger.domain import Payment, payment_id
from ledger.errors import LedgerError
from ledger.values import Area, Channel, Month, Programme
from projections.audit import trail
from projections.describe import describe, detail
from projections.payroll import ReadModelPayroll
from projections.payroll import candidates as rm_candidates
from projections.queries import account_state
from projections.runner import Projections
from projections.verify import verify as verify_read_models
from tests.conftest import idn

TODAY = date(2024, 6, 30)  # with MONTHS_AHEAD = 2, months up to 2024-08 are payable
FIRST, LAST = Month(2024, 1), Month(2024, 8)
MONTHS = list(FIRST.until(LAST))
CASES = ("U0", "U1", "U2")
AMOUNTS = (50000, 80000, 100000, 120000, 150000)  # two persons, standard 760 yuan: at most 1,520 yuan
VERIFIER, APPROVER, RUNNER = "zhang.wei", "li.na", "zhao.min"
DECIDED = date(2024, 1, 15)

case_no = st.sampled_from(CASES)
month = st.integers(0, len(MONTHS) - 1)
decision = st.one_of(
    st.tuples(st.just("adjust"), case_no, month, st.sampled_from(AMOUNTS)),
    st.tuples(st.just("adjust"), case_no, month, st.sampled_from(AMOUNTS)),
    st.tuples(st.just("suspend"), case_no, month),
    st.tuples(st.just("resume"), case_no, month),
    st.tuples(st.just("resume"), case_no, month),
    st.tuples(st.just("terminate"), case_no, month),
    st.tuples(st.just("return"), st.integers(0, 50)),
    st.tuples(st.just("return"), st.integers(0, 50)),
    st.tuples(st.just("settle"), st.integers(0, 50)),
    st.tuples(st.just("reissue"), case_no, month, st.integers(0, 50)),
    st.tuples(st.just("refund"), case_no, st.integers(1, 4)),
    st.tuples(st.just("cut"), case_no, st.booleans()),
    st.tuples(st.just("cut"), case_no, st.booleans()),
)
#: Each case approved before some payroll round, for a first month that may be already past.
approvals = st.tuples(*(
    st.tuples(st.just("approve"), st.just(c), month, st.sampled_from(AMOUNTS), st.integers(0, 4)) for c in CASES
))
#: Rounds: the decisions and bank answers recorded before each month's payroll.
rounds = st.lists(st.lists(decision, max_size=5), min_size=3, max_size=len(MONTHS))


def histories_of(approved: tuple[tuple[Any, ...], ...], decided: list[list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    for r, ops_of_round in enumerate(decided):
        ops += [a[:4] for a in approved if a[4] == r] + ops_of_round + [("payroll",)]
    return ops


def with_an_appeal(approved: tuple[tuple[Any, ...], ...], decided: list[list[tuple[Any, ...]]], c: str, r: int
                   ) -> list[tuple[Any, ...]]:
    """A history in which case ``c``, paid since round ``r`` or before, is cut from its first month, the payroll
    recovers the debt by offset, and the cut is reversed on appeal: the offset is released and owed again."""
    r = min(r, len(decided) - 1)
    approved = tuple((a[0], a[1], a[2] % r, a[3], 0) for a in approved)  # approved first, paid before the cut
    decided = [list(ops) for ops in decided]
    decided[r].insert(0, ("cut", c, True))
    return histories_of(approved, decided)


histories = st.one_of(
    st.builds(histories_of, approvals, rounds),
    st.builds(with_an_appeal, approvals, rounds, case_no, st.integers(1, len(MONTHS) - 2)),
)


def new_ledger(url: str) -> LedgerApp:
    app = LedgerApp(url, clock=lambda: TODAY)
    uow = app.unit_of_work()
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, Month(2023, 1), operator=APPROVER,
                     effective=date(2023, 1, 1), uow=uow)
    for i, c in enumerate(CASES):
        members = [{"id_number": idn(10 * i + k), "name": f"P{i}-{k}", "relation": "head" if k == 0 else "child"}
                   for k in range(2)]
        app.register_household(number=f"H{i}", community="Dongjie", area=Area.URBAN, members=members,
                               payee_account=f"62220200{i:08d}", operator=VERIFIER, effective=date(2023, 12, 1), uow=uow)
        app.apply(case_no=c, household_no=f"H{i}", programme=Programme.URBAN_DIBAO, channel=Channel.WINDOW,
                  operator=VERIFIER, effective=date(2023, 12, 1), uow=uow)
    uow.commit()
    return app


def verify(app: LedgerApp, c: str) -> None:
    app.verify(c, income_fen=10000, assets_ok=True, verifier=VERIFIER, valid_until=date(2025, 12, 31),
               operator=VERIFIER, effective=DECIDED)


def issues(app: LedgerApp, c: str, mo: Month) -> list[Payment]:
    return app.issues(app.unit_of_work(), c, mo)


def owed_candidates(app: LedgerApp, upto: Month) -> list[tuple[str, list[Month]]]:
    """What is owed, month by month, decided on the aggregates."""
    out = []
    for c in CASES:
        case = app.get_case(c)
        if case.first_month is None:
            continue
        months = [mo for mo in case.first_month.until(upto)
                  if case.status_at(mo) == "active" and Payment.owed(case, mo, issues(app, c, mo)) > 0]
        if months:
            out.append((c, months))
    return out


@dataclass
class History:
    """Plays random operations on a ledger; a refused one must write nothing."""

    app: LedgerApp
    projections: Projections | None = None
    cursor: int = 0  # the next payroll month
    refs: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    before: int = 0
    #: Cuts appealed, reversed after the next payroll: (case, the month the cut took effect, the amount before it).
    appealed: list[tuple[str, Month, int]] = field(default_factory=list)

    def mark(self) -> None:
        """Remember the head of the log: a refused command must leave it there."""
        self.before = self.app.recorder.max_notification_id() or 0

    def play(self, op: tuple[Any, ...]) -> None:
        self.mark()
        try:
            self._play(op)
        except LedgerError as e:
            after = self.app.recorder.max_notification_id() or 0
            assert after == self.before, f"{op} was refused ({e}) but wrote {after - self.before} events"
            self.log.append(f"{op}: refused: {e}")
        else:
            self.log.append(f"{op}")
        if op[0] == "payroll":
            appealed, self.appealed = self.appealed, []
            for c, start, amount in appealed:
                self.play(("restore", c, start, amount))

    def from_month(self, c: str, i: int) -> Month:
        """Month ``i``, but not before the case's first month (then the decision would be refused)."""
        first = self.app.get_case(c).first_month
        return max(first, MONTHS[i]) if first is not None and i % 4 else MONTHS[i]

    def _play(self, op: tuple[Any, ...]) -> None:
        app, kind = self.app, op[0]
        if kind == "approve":
            _, c, i, amount = op
            if app.get_case(c).status != "applied":
                return
            verify(app, c)
            self.mark()
            app.approve(c, amount_fen=amount, first_month=MONTHS[i], operator=APPROVER, effective=DECIDED)
        elif kind in ("adjust", "cut"):
            # A cut is to the lowest amount from the case's first month: every month paid is overpaid.
            _, c, i, amount = op if kind == "adjust" else (kind, op[1], 0, AMOUNTS[0])
            case = app.get_case(c)
            if case.status not in ("active", "suspended") or case.amount_fen == amount:
                return
            verify(app, c)  # an amount change needs a new verification
            self.mark()
            start = self.from_month(c, i) if kind == "adjust" else case.first_month
            before = case.amount_fen
            app.adjust(c, amount_fen=amount, from_month=start, operator=APPROVER, effective=DECIDED)
            if kind == "cut" and op[2]:
                self.appealed.append((c, start, before))
        elif kind == "restore":
            # A cut reversed on appeal: the amount before it, from the month it took effect. Where the payroll
            # since recovered the debt the cut made by offset, the offset is released.
            _, c, start, amount = op
            case = app.get_case(c)
            if case.status not in ("active", "suspended") or case.amount_fen == amount:
                return
            verify(app, c)
            self.mark()
            app.adjust(c, amount_fen=amount, from_month=start, operator=APPROVER, effective=DECIDED)
        elif kind == "suspend":
            app.suspend(op[1], "review overdue", self.from_month(op[1], op[2]), operator=APPROVER, effective=DECIDED)
        elif kind == "resume":
            case = app.get_case(op[1])
            # Mostly a month after the suspension took effect (sometimes in the past: retroactive).
            start = case.suspended_from.add(1 + op[2] % 3) if case.status == "suspended" else MONTHS[op[2]]
            app.resume(op[1], min(start, LAST), operator=APPROVER, effective=DECIDED)
        elif kind == "terminate":
            app.terminate(op[1], "income above the standard", self.from_month(op[1], op[2]), operator=APPROVER,
                          effective=DECIDED)
        elif kind == "payroll":
            if self.cursor >= len(MONTHS):
                return
            mo = MONTHS[self.cursor]
            self.cursor += 1
            expected = owed_candidates(app, mo)
            if self.projections is not None:
                # The read models propose exactly what the aggregates say is owed.
                self.projections.catch_up()
                with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
                    proposed = rm_candidates(conn, mo)
                assert proposed == expected, (mo, proposed, expected)
            # With read models, the plain months are paid from them and the rest on the aggregates.
            pay_chunk = ReadModelPayroll(app, self.projections) if self.projections is not None else None
            result = app.run_payroll(mo, None, expected, operator=RUNNER, effective=mo.first_day(), chunk=2,
                                     pay_chunk=pay_chunk)
            assert not result.skipped, result.skipped
            self.refs.extend(result.issued)
        elif kind in ("return", "settle"):
            open_ = [r for r in self.refs if payment(app, r).status == "issued"]
            if not open_:
                return
            ref = open_[op[1] % len(open_)]
            if kind == "return":
                app.return_payment(ref, "account closed", operator=RUNNER, effective=DECIDED)
            else:
                app.settle_payment(ref, operator=RUNNER, effective=DECIDED)
        elif kind == "reissue":
            # A clerk pays what is owed (usually after a bank return), or tries a month at random.
            owed = [(c, mo) for c, months in owed_candidates(app, LAST) for mo in months]
            c, mo = owed[op[3] % len(owed)] if owed and op[3] % 2 else (op[1], MONTHS[op[2]])
            self.refs.append(app.issue_payment(c, mo, operator=RUNNER, effective=DECIDED))
        elif kind == "refund":
            debt = app.get_case(op[1]).debt_fen
            # 1..3: part or all of the debt; 4: one fen more than owed (refused)
            amount = debt + 1 if op[2] == 4 else max(1, debt * op[2] // 3)
            app.record_refund(op[1], amount, f"receipt {len(self.log)}", operator=RUNNER, effective=DECIDED)


def payment(app: LedgerApp, ref: str) -> Payment:
    return app.unit_of_work().find(payment_id(*parse_payment_ref(ref)))


def account_from_aggregates(app: LedgerApp, c: str) -> dict[str, int]:
    """The account totals recomputed from the aggregates; checks the per-month invariants on the way."""
    case = app.get_case(c)
    entitled = cash = arrears = offsets = 0
    for mo in MONTHS:
        month_issues = issues(app, c, mo)
        ent = case.entitlement(mo)
        delivered = Payment.delivered(month_issues)
        net = [p for p in month_issues if p.is_net]
        entitled += ent
        cash += sum(p.amount_fen for p in net)
        offsets += sum(p.offset_fen for p in net)
        arrears += max(0, ent - delivered)
        # Never paid twice: at most one net payment covering persons per case and month ...
        assert len([p for p in net if p.persons]) <= 1, (c, mo, [(p.ref, p.status, p.persons) for p in month_issues])
        # ... and whatever was delivered above the entitlement is established as overpaid.
        assert max(0, delivered - ent) == case.overpaid.get(mo, 0), (c, mo, delivered, ent, case.overpaid)
        for p in month_issues:
            # An offset released after its debt was cancelled can leave a payment that delivered nothing.
            assert p.gross_fen == p.offset_fen + p.amount_fen and p.gross_fen >= 0 and p.amount_fen >= 0
            assert (p.persons > 0) == (p.kind in ("regular", "re-issue")), (p.ref, p.kind, p.persons)
        assert [p.issue_no for p in month_issues] == list(range(1, len(month_issues) + 1))
    assert set(case.overpaid) <= set(MONTHS)
    # Every fen recovered is a refund or an offset of a payment the bank did not return.
    assert case.recovered_fen == offsets + case.refunded_fen, (c, case.recovered_fen, offsets, case.refunded_fen)
    return {"entitled_fen": entitled, "net_paid_fen": cash - case.refunded_fen, "arrears_fen": arrears,
            "debt_fen": case.debt_fen}


def check(app: LedgerApp, log: list[str]) -> dict[str, dict[str, int]]:
    out = {}
    for c in CASES:
        t = account_from_aggregates(app, c)
        assert t["net_paid_fen"] + t["arrears_fen"] - t["debt_fen"] == t["entitled_fen"], (c, t, log)
        out[c] = t
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_the_account_balances_on_the_aggregates(ops: list[tuple[Any, ...]]) -> None:
    history = History(new_ledger("memory:"))
    for op in ops:
        history.play(op)
    check(history.app, history.log)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_the_account_balances_in_the_read_models(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = new_ledger(f"sqlite:///{Path(tmp) / 'ledger.sqlite'}")
        history = History(app, Projections(app))
        for op in ops:
            history.play(op)
        check_read_models(history)


def check_read_models(history: History) -> None:
    """The accounts from the read models equal those from the aggregates, and balance."""
    app = history.app
    expected = check(app, history.log)
    projections = history.projections
    assert projections is not None
    projections.catch_up()
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert verify_read_models(app, conn, projections.head()) == []
        stored = dict(conn.execute(text(f"SELECT id, state FROM {app.recorder.events_table_name}")).all())  # type: ignore[attr-defined]
        for c in CASES:
            # Each line of the trail (a payment's issue made from its row) says what its stored event says.
            lines = trail(conn, c)
            assert [x["what"] for x in lines] == [describe(x["event"], detail(stored[x["position"]])) for x in lines]
            totals = account_state(conn, c, LAST.last_day())["totals"]
            got = {k: totals[k] for k in expected[c]}
            assert got == expected[c], (c, got, expected[c], history.log)
            assert totals["net_paid_fen"] + totals["arrears_fen"] - totals["debt_fen"] == totals["entitled_fen"]
    engine.dispose()
