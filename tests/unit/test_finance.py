"""Finance: the monthly payroll, arrears, top-ups, overpayments and their recovery, the batch and
its bank file, the bank's results and the three-way reconciliation.

Payroll runs on the in-memory ledger get their candidates computed here from the aggregates
(what :func:`projections.payroll.candidates` would select from up-to-date read models);
the tests that need the read models (candidates, accounts, reconciliation) use a SQLite file.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text

from ledger.application import LedgerApp
from ledger.domain import BankFile, Case, Payment, bank_file_id, case_id, payment_id
from ledger.errors import CaseNotActive, DuplicatePayment, FourEyesViolation, InvalidInput, InvalidTransition, NotFound
from ledger.finance import PayrollResult, parse_results
from ledger.values import Month
from projections.payroll import candidates as rm_candidates
from projections.audit import trail
from projections.describe import describe, detail
from projections.queries import account_state, statistics
from projections.reconcile import reconcile
from projections.runner import Projections
from projections.verify import verify as verify_read_models
from tests.unit.ledger_helpers import APPROVER, VERIFIER, active_case, m, nothing_written, verify, written

RUNNER = "zhao.min"  # runs the payroll and loads the bank's files
CHECKER = "qian.jun"  # approves the batch (four eyes)
TODAY = date(2023, 6, 30)
DAY = date(2023, 6, 1)


@pytest.fixture
def app() -> LedgerApp:
    """An in-memory ledger with a fixed clock: benefit months up to 2023-08 are payable."""
    return LedgerApp("memory:", clock=lambda: TODAY)


# --------------------------------------------------------------------------- helpers


def events(app: LedgerApp, case_no: str, kind: type) -> list[Any]:
    return [e for e in app.events.get(case_id(case_no)) if isinstance(e, kind)]


def overpayments(app: LedgerApp, case_no: str) -> list[tuple[str, int, str]]:
    return [(str(e.month), e.amount_fen, e.cause) for e in events(app, case_no, Case.OverpaymentEstablished)]


def cancellations(app: LedgerApp, case_no: str) -> list[tuple[str, int, str]]:
    return [(str(e.month), e.amount_fen, e.cause) for e in events(app, case_no, Case.OverpaymentCancelled)]


def issues(app: LedgerApp, case_no: str, month: Month) -> list[Payment]:
    return app.issues(app.unit_of_work(), case_no, month)


def payment(app: LedgerApp, ref: str) -> Payment:
    from ledger.application import parse_payment_ref

    p = app.unit_of_work().find(payment_id(*parse_payment_ref(ref)))
    assert p is not None, ref
    return p


def owed_months(app: LedgerApp, case_no: str, upto: Month) -> list[Month]:
    """The months up to ``upto`` a case is active in and still owed something for (from the aggregates)."""
    c = app.get_case(case_no)
    if c.first_month is None:
        return []
    return [
        mo for mo in c.first_month.until(upto)
        if c.status_at(mo) == "active" and Payment.owed(c, mo, issues(app, case_no, mo)) > 0
    ]


def owed_candidates(app: LedgerApp, month: Month, case_nos: Iterable[str]) -> list[tuple[str, list[Month]]]:
    out = [(c, owed_months(app, c, month)) for c in sorted(case_nos)]
    return [(c, ms) for c, ms in out if ms]


def payroll(app: LedgerApp, month: Month, case_nos: Iterable[str] = ("U1",), operator: str = RUNNER,
            chunk: int = 500, progress: Any = None) -> PayrollResult:
    return app.run_payroll(month, None, owed_candidates(app, month, case_nos), operator=operator,
                           effective=month.first_day(), chunk=chunk, progress=progress)


def approve_batch(app: LedgerApp, ref: str) -> None:
    app.approve_batch(ref, operator=CHECKER, effective=DAY)


def adjust(app: LedgerApp, amount_fen: int, month: str, effective: date = date(2023, 5, 10), case_no: str = "U1") -> None:
    """A retroactive amount change on a new verification (by another operator than the approver)."""
    verify(app, case_no, effective=effective)
    app.adjust(case_no, amount_fen=amount_fen, from_month=m(month), operator=APPROVER, effective=effective)


def suspend(app: LedgerApp, month: str, case_no: str = "U1", effective: date = date(2023, 5, 10)) -> None:
    app.suspend(case_no, "did not attend review", m(month), operator=APPROVER, effective=effective)


def resume(app: LedgerApp, month: str, case_no: str = "U1", effective: date = date(2023, 5, 20)) -> None:
    app.resume(case_no, m(month), operator=APPROVER, effective=effective)


def terminate(app: LedgerApp, month: str, case_no: str = "U1", effective: date = date(2023, 5, 10)) -> None:
    app.terminate(case_no, "moved away", m(month), operator=APPROVER, effective=effective)


def pay_months(app: LedgerApp, *months: str, case_no: str = "U1") -> list[str]:
    return [app.issue_payment(case_no, m(x), operator=RUNNER, effective=m(x).first_day()) for x in months]


def results_file(*rows: Sequence[str]) -> bytes:
    """A bank results file as the bank writes it (CSV, quoted where needed)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["reference", "amount", "result", "reason"])
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def load(app: LedgerApp, content: bytes, name: str = "results.csv") -> Any:
    return app.load_bank_results(name, content, operator=RUNNER, effective=DAY)


def bank_file_of(app: LedgerApp, content: bytes) -> BankFile:
    f = app.unit_of_work().find(bank_file_id(hashlib.sha256(content).hexdigest()))
    assert f is not None
    return f


# =================================================================== arrears (补发)


def test_retroactive_approval_is_paid_in_arrears_by_the_next_payroll(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000, first_month=m("2023-01"))
    result = payroll(app, m("2023-04"))
    assert result.batch == "B-202304-all-1" and not result.resumed
    assert result.issued == [f"P-U1-2023{k:02d}-1" for k in (1, 2, 3, 4)]
    for ref in result.issued:
        p = payment(app, ref)
        assert (p.kind, p.gross_fen, p.offset_fen, p.amount_fen, p.persons, p.batch) == (
            "regular", 120000, 0, 120000, 2, "B-202304-all-1")
    assert result.totals == {"urban-dibao/urban": {"payments": 4, "gross_fen": 480000, "offset_fen": 0,
                                                   "amount_fen": 480000, "persons": 8}}
    assert result.skipped == []
    assert owed_months(app, "U1", m("2023-04")) == []
    assert app.get_case("U1").debt_fen == 0


def test_candidates_from_the_read_models_list_every_owed_month(sqlite_url: str) -> None:
    app = LedgerApp(sqlite_url, clock=lambda: TODAY)
    active_case(app, "U1", "H1", amount_fen=120000, first_month=m("2023-01"))
    active_case(app, "U2", "H2", amount_fen=100000, first_month=m("2023-03"), first_person=10)
    pay_months(app, "2023-01", "2023-02", case_no="U1")
    ref = pay_months(app, "2023-03", case_no="U1")[0]
    app.return_payment(ref, "account closed", operator=RUNNER, effective=date(2023, 3, 5))
    projections = Projections(app)
    projections.catch_up()
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        # U1: March returned, April owed; U2 approved from March: March and April owed.
        assert rm_candidates(conn, m("2023-04")) == [("U1", [m("2023-03"), m("2023-04")]),
                                                     ("U2", [m("2023-03"), m("2023-04")])]
        assert rm_candidates(conn, m("2023-04"), "rural-dibao") == []
        result = app.run_payroll(m("2023-04"), None, rm_candidates(conn, m("2023-04")), operator=RUNNER,
                                 effective=date(2023, 4, 1))
    assert result.issued == ["P-U1-202303-2", "P-U1-202304-1", "P-U2-202303-1", "P-U2-202304-1"]
    assert payment(app, "P-U1-202303-2").kind == "re-issue"
    assert payment(app, "P-U1-202303-2").persons == 2
    projections.catch_up()
    with engine.connect() as conn:
        assert rm_candidates(conn, m("2023-04")) == []
        state = account_state(conn, "U1", date(2023, 4, 30))
    assert state["totals"]["arrears_fen"] == 0
    assert state["totals"]["entitled_fen"] == 4 * 120000
    assert state["totals"]["net_paid_fen"] == 4 * 120000


# =================================================================== top-ups


def test_retroactive_increase_of_a_paid_month_is_paid_as_a_top_up_without_persons(sqlite_url: str) -> None:
    app = LedgerApp(sqlite_url, clock=lambda: TODAY)
    active_case(app, amount_fen=120000, first_month=m("2023-01"))
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 150000, "2023-02")  # recorded in May, takes effect in February: an increase
    assert overpayments(app, "U1") == []
    assert owed_months(app, "U1", m("2023-04")) == [m("2023-02"), m("2023-03"), m("2023-04")]
    result = payroll(app, m("2023-04"))
    assert result.issued == ["P-U1-202302-2", "P-U1-202303-2", "P-U1-202304-1"]
    for ref in ("P-U1-202302-2", "P-U1-202303-2"):
        p = payment(app, ref)
        assert (p.kind, p.issue_no, p.gross_fen, p.amount_fen, p.persons) == ("top-up", 2, 30000, 30000, 0)
    april = payment(app, "P-U1-202304-1")
    assert (april.kind, april.gross_fen, april.persons) == ("regular", 150000, 2)
    # A top-up is not a second payment of the month: nothing more is owed, and a further issue is refused.
    with nothing_written(app), pytest.raises(DuplicatePayment, match="case U1 is already paid for 2023-02 .P-U1-202302-2, issued."):
        app.issue_payment("U1", m("2023-02"), operator=RUNNER, effective=DAY)
    projections = Projections(app)
    projections.catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        figures = statistics(conn, m("2023-01"), m("2023-04"), date(2023, 4, 30))
        state = account_state(conn, "U1", date(2023, 4, 30))
    urban = figures["programmes"]["urban-dibao"]
    assert urban["person_times"] == 4 * 2  # four months, two persons: the top-ups add no person-time
    assert urban["paid_fen"] == 120000 + 3 * 150000
    assert state["totals"]["entitled_fen"] == 120000 + 3 * 150000
    assert state["totals"]["arrears_fen"] == 0


def test_a_top_up_returned_by_the_bank_is_owed_again_as_a_top_up(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01")
    adjust(app, 150000, "2023-01")
    (top_up,) = pay_months(app, "2023-01")
    app.return_payment(top_up, "account frozen", operator=RUNNER, effective=DAY)
    assert Payment.owed(app.get_case("U1"), m("2023-01"), issues(app, "U1", m("2023-01"))) == 30000
    (again,) = pay_months(app, "2023-01")
    p = payment(app, again)
    assert (again, p.kind, p.gross_fen, p.persons) == ("P-U1-202301-3", "top-up", 30000, 0)


# =================================================================== overpayments (追回)


def test_retroactive_decrease_establishes_an_overpayment_for_each_paid_month(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 100000, "2023-02")
    assert overpayments(app, "U1") == [("2023-02", 20000, "amount changed from 2023-02"),
                                       ("2023-03", 20000, "amount changed from 2023-02")]
    case = app.get_case("U1")
    assert case.overpaid == {m("2023-02"): 20000, m("2023-03"): 20000}
    assert case.debt_fen == 40000
    # The overpaid months are not owed anything; April is owed the new amount.
    assert owed_months(app, "U1", m("2023-04")) == [m("2023-04")]


def test_retroactive_suspension_of_paid_months_establishes_overpayments(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03", "2023-04")
    suspend(app, "2023-03")
    cause = "suspended from 2023-03: did not attend review"
    assert overpayments(app, "U1") == [("2023-03", 120000, cause), ("2023-04", 120000, cause)]
    assert app.get_case("U1").debt_fen == 240000
    assert owed_months(app, "U1", m("2023-05")) == []
    result = payroll(app, m("2023-05"))
    assert result.batch is None and result.issued == []


def test_retroactive_termination_of_paid_months_establishes_overpayments(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    terminate(app, "2023-02")
    cause = "terminated from 2023-02: moved away"
    assert overpayments(app, "U1") == [("2023-02", 120000, cause), ("2023-03", 120000, cause)]
    assert app.get_case("U1").debt_fen == 240000
    with nothing_written(app), pytest.raises(CaseNotActive, match="case U1 is not active in 2023-04 .terminated."):
        pay_months(app, "2023-04")


def test_a_decision_that_touches_no_paid_month_establishes_nothing(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02")
    suspend(app, "2023-03")
    adjust(app, 100000, "2023-04")
    assert overpayments(app, "U1") == [] and app.get_case("U1").debt_fen == 0


def test_next_payment_recovers_the_debt_by_offset_never_below_zero(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 100000, "2023-02")  # 2 x 200 yuan overpaid
    result = payroll(app, m("2023-04"))
    april = payment(app, result.issued[0])
    assert (april.gross_fen, april.offset_fen, april.amount_fen, april.status) == (100000, 40000, 60000, "issued")
    recovered = events(app, "U1", Case.OverpaymentRecovered)
    assert [(e.amount_fen, e.method, e.reference) for e in recovered] == [(40000, "offset", "P-U1-202304-1")]
    assert app.get_case("U1").debt_fen == 0
    # No debt left: the next payment is paid in full.
    may = payment(app, payroll(app, m("2023-05")).issued[0])
    assert (may.offset_fen, may.amount_fen) == (0, 100000)
    assert app.get_case("U1").debt_fen == 0


def test_a_fully_offset_payment_is_settled_at_once_and_not_in_the_bank_file(app: LedgerApp) -> None:
    active_case(app, "U1", "H1", amount_fen=120000)
    active_case(app, "U2", "H2", amount_fen=100000, first_person=10)
    pay_months(app, "2023-01", "2023-02", "2023-03", case_no="U1")
    pay_months(app, "2023-01", "2023-02", "2023-03", case_no="U2")
    suspend(app, "2023-02")  # U1: February and March overpaid, 2 x 1,200 yuan
    resume(app, "2023-04")
    assert app.get_case("U1").debt_fen == 240000
    result = payroll(app, m("2023-04"), ("U1", "U2"))
    assert result.issued == ["P-U1-202304-1", "P-U2-202304-1"]
    u1 = payment(app, "P-U1-202304-1")
    assert (u1.gross_fen, u1.offset_fen, u1.amount_fen, u1.status) == (120000, 120000, 0, "settled")
    assert app.get_case("U1").debt_fen == 120000
    assert result.totals["urban-dibao/urban"] == {"payments": 2, "gross_fen": 220000, "offset_fen": 120000,
                                                  "amount_fen": 100000, "persons": 4}
    approve_batch(app, result.batch)  # type: ignore[arg-type]
    lines, total = app.bank_file(result.batch)  # type: ignore[arg-type]
    assert lines == [["P-U2-202304-1", "Person 10", "6222020000000001", "1000.00", "2023-04"]]
    assert total == 100000
    # A fully offset payment has nothing for the bank to settle or return.
    with nothing_written(app), pytest.raises(InvalidTransition, match="P-U1-202304-1 is already settled"):
        app.return_payment("P-U1-202304-1", "no such account", operator=RUNNER, effective=DAY)
    # May clears the rest of the debt; June is paid in cash again.
    may = payment(app, payroll(app, m("2023-05"), ("U1",)).issued[0])
    assert (may.offset_fen, may.amount_fen, may.status) == (120000, 0, "settled")
    june = payment(app, payroll(app, m("2023-06"), ("U1",)).issued[0])
    assert (june.offset_fen, june.amount_fen, june.status) == (0, 120000, "issued")
    assert app.get_case("U1").debt_fen == 0


# =================================================================== refunds


def test_a_refund_reduces_the_debt_and_a_refund_above_it_is_refused(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 100000, "2023-02")
    app.record_refund("U1", 15000, "receipt 0042", operator=RUNNER, effective=DAY)
    case = app.get_case("U1")
    assert case.debt_fen == 25000 and case.refunded_fen == 15000
    (e,) = events(app, "U1", Case.OverpaymentRecovered)
    assert (e.amount_fen, e.method, e.reference) == (15000, "refund", "receipt 0042")
    with nothing_written(app), pytest.raises(InvalidInput, match="case U1 owes 250.00 yuan of overpayment; cannot recover 250.01"):
        app.record_refund("U1", 25001, "receipt 0043", operator=RUNNER, effective=DAY)
    with nothing_written(app), pytest.raises(InvalidInput, match="a refund needs a reference"):
        app.record_refund("U1", 100, " ", operator=RUNNER, effective=DAY)
    with nothing_written(app), pytest.raises(InvalidInput, match="a recovery must be (a )?positive"):
        app.record_refund("U1", 0, "receipt 0044", operator=RUNNER, effective=DAY)
    app.record_refund("U1", 25000, "receipt 0045", operator=RUNNER, effective=DAY)
    assert app.get_case("U1").debt_fen == 0
    with nothing_written(app), pytest.raises(InvalidInput, match="case U1 owes 0.00 yuan of overpayment"):
        app.record_refund("U1", 1, "receipt 0046", operator=RUNNER, effective=DAY)
    # After the refunds the next payment has nothing to offset.
    april = payment(app, pay_months(app, "2023-04")[0])
    assert (april.offset_fen, april.amount_fen) == (0, 100000)


def test_a_refund_without_debt_is_refused(app: LedgerApp) -> None:
    active_case(app)
    with nothing_written(app), pytest.raises(InvalidInput, match="owes 0.00 yuan"):
        app.record_refund("U1", 100, "receipt 1", operator=RUNNER, effective=DAY)
    with nothing_written(app), pytest.raises(NotFound, match="no case U9"):
        app.record_refund("U9", 100, "receipt 1", operator=RUNNER, effective=DAY)


# =================================================================== bank returns


def test_a_bank_return_reopens_the_month_and_the_reissue_covers_the_persons(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    (ref,) = pay_months(app, "2023-01")
    assert owed_months(app, "U1", m("2023-01")) == []
    app.return_payment(ref, "account closed", operator=RUNNER, effective=date(2023, 1, 9))
    assert payment(app, ref).status == "returned" and payment(app, ref).return_reason == "account closed"
    assert Payment.owed(app.get_case("U1"), m("2023-01"), issues(app, "U1", m("2023-01"))) == 120000
    assert overpayments(app, "U1") == [] and cancellations(app, "U1") == []
    result = payroll(app, m("2023-02"))
    assert result.issued == ["P-U1-202301-2", "P-U1-202302-1"]
    again = payment(app, "P-U1-202301-2")
    assert (again.kind, again.gross_fen, again.amount_fen, again.persons) == ("re-issue", 120000, 120000, 2)


def test_a_returned_payment_that_had_an_offset_reverses_the_recovery(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 100000, "2023-02")  # debt 400 yuan
    (april,) = pay_months(app, "2023-04")
    assert (payment(app, april).offset_fen, app.get_case("U1").debt_fen) == (40000, 0)
    app.return_payment(april, "account frozen", operator=RUNNER, effective=DAY)
    (rev,) = events(app, "U1", Case.RecoveryReversed)
    assert (rev.amount_fen, rev.reference) == (40000, april)
    case = app.get_case("U1")
    assert case.debt_fen == 40000  # the debt the offset cleared is owed again
    assert case.overpaid == {m("2023-02"): 20000, m("2023-03"): 20000}  # April was not overpaid
    # The re-issue offsets the debt again.
    (again,) = pay_months(app, "2023-04")
    p = payment(app, again)
    assert (p.kind, p.gross_fen, p.offset_fen, p.amount_fen) == ("re-issue", 100000, 40000, 60000)
    assert app.get_case("U1").debt_fen == 0


def test_a_bank_return_of_an_overpaid_month_cancels_the_overpayment(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    refs = pay_months(app, "2023-01", "2023-02", "2023-03")
    suspend(app, "2023-03")
    assert app.get_case("U1").debt_fen == 120000
    app.return_payment(refs[2], "account closed", operator=RUNNER, effective=DAY)
    assert cancellations(app, "U1") == [("2023-03", 120000, f"bank returned {refs[2]}")]
    case = app.get_case("U1")
    assert case.overpaid == {} and case.debt_fen == 0
    # Suspended in March: nothing owed for it after the return either.
    assert owed_months(app, "U1", m("2023-03")) == []


def test_a_bank_return_of_a_partly_overpaid_month_keeps_the_rest_established(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01")
    adjust(app, 150000, "2023-01")
    (top_up,) = pay_months(app, "2023-01")  # January delivered 1,500 yuan in two issues
    adjust(app, 130000, "2023-01", effective=date(2023, 5, 20))  # now 200 yuan overpaid
    assert app.get_case("U1").overpaid == {m("2023-01"): 20000}
    app.return_payment(top_up, "account frozen", operator=RUNNER, effective=DAY)  # delivered 1,200 < 1,300
    case = app.get_case("U1")
    assert case.overpaid == {} and case.debt_fen == 0
    assert Payment.owed(case, m("2023-01"), issues(app, "U1", m("2023-01"))) == 10000


def test_a_retroactive_resumption_cancels_the_overpayments_from_its_month(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03", "2023-04")
    suspend(app, "2023-02")
    assert app.get_case("U1").debt_fen == 3 * 120000
    resume(app, "2023-03")  # recorded in May, takes effect in March
    assert cancellations(app, "U1") == [("2023-03", 120000, "resumed from 2023-03"),
                                        ("2023-04", 120000, "resumed from 2023-03")]
    case = app.get_case("U1")
    assert case.overpaid == {m("2023-02"): 120000} and case.debt_fen == 120000


def test_a_retroactive_increase_cancels_an_overpayment_it_covers(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02")
    adjust(app, 100000, "2023-01")
    assert app.get_case("U1").debt_fen == 40000
    adjust(app, 110000, "2023-02", effective=date(2023, 5, 20))
    assert cancellations(app, "U1") == [("2023-02", 10000, "amount changed from 2023-02")]
    assert app.get_case("U1").overpaid == {m("2023-01"): 20000, m("2023-02"): 10000}


# =================================================================== the batch


def test_the_batch_is_approved_by_another_operator_than_its_runner(app: LedgerApp) -> None:
    active_case(app)
    result = payroll(app, m("2023-02"))
    ref = result.batch
    assert ref == "B-202302-all-1"
    (batch,) = app.batches(m("2023-02"), None)
    assert (batch.status, batch.started_by, batch.refs) == ("completed", RUNNER, ["P-U1-202301-1", "P-U1-202302-1"])
    with nothing_written(app), pytest.raises(FourEyesViolation, match=f"batch {ref} was run by {RUNNER}; another operator must approve"):
        app.approve_batch(ref, operator=RUNNER, effective=DAY)
    with nothing_written(app), pytest.raises(InvalidInput, match=f"batch {ref} is completed; its bank file can be exported only after"):
        app.bank_file(ref)
    with nothing_written(app), pytest.raises(InvalidTransition, match=f"batch {ref} is completed; its bank file can be exported only after"):
        app.record_export(ref, "bank.csv", b"x", 1, 1, operator=RUNNER, effective=DAY)
    approve_batch(app, ref)
    (batch,) = app.batches(m("2023-02"), None)
    assert (batch.status, batch.approved_by) == ("approved", CHECKER)
    with nothing_written(app), pytest.raises(InvalidTransition, match=f"batch {ref} is already approved"):
        app.approve_batch(ref, operator="sun.li", effective=DAY)
    lines, total = app.bank_file(ref)
    assert [x[0] for x in lines] == ["P-U1-202301-1", "P-U1-202302-1"] and total == 240000
    app.record_export(ref, "bank.csv", b"content", len(lines), total, operator=RUNNER, effective=DAY)
    (batch,) = app.batches(m("2023-02"), None)
    assert batch.exports == [{"file_name": "bank.csv", "sha256": hashlib.sha256(b"content").hexdigest(),
                              "lines": 2, "amount_fen": 240000}]
    with pytest.raises(NotFound, match="no batch B-202302-all-2"):
        app.approve_batch("B-202302-all-2", operator=CHECKER, effective=DAY)
    with pytest.raises(InvalidInput, match="invalid batch reference"):
        app.approve_batch("B-2023-all", operator=CHECKER, effective=DAY)


class Interrupted(Exception):
    """Stands for a run killed after some chunks were committed."""


def test_an_interrupted_run_leaves_an_open_batch_that_the_next_run_resumes(app: LedgerApp) -> None:
    nos = [f"U{i}" for i in range(1, 6)]
    for i, c in enumerate(nos):
        active_case(app, c, f"H{i}", amount_fen=100000 + i * 100, first_person=10 * i + 1)

    def stop_after_two_chunks(done: int, total: int) -> None:
        if done >= 4:
            raise Interrupted

    with pytest.raises(Interrupted):
        payroll(app, m("2023-02"), nos, chunk=2, progress=stop_after_two_chunks)
    (batch,) = app.batches(m("2023-02"), None)
    assert batch.status == "open"
    assert batch.refs == [f"P-{c}-2023{k:02d}-1" for c in nos[:4] for k in (1, 2)]
    with nothing_written(app), pytest.raises(InvalidTransition, match="batch B-202302-all-1 is still open .its run did not finish"):
        app.approve_batch("B-202302-all-1", operator=CHECKER, effective=DAY)
    # The next run gets the stale candidate list (all five cases): it resumes the open batch,
    # skips what the interrupted run paid and pays the rest.
    stale = [(c, [m("2023-01"), m("2023-02")]) for c in nos]
    result = app.run_payroll(m("2023-02"), None, stale, operator="sun.li", effective=DAY, chunk=2)
    assert (result.batch, result.resumed) == ("B-202302-all-1", True)
    assert result.issued == ["P-U5-202301-1", "P-U5-202302-1"]
    assert len(result.skipped) == 8 and all("already paid" in why for _, _, why in result.skipped)
    (batch,) = app.batches(m("2023-02"), None)
    assert batch.status == "completed"
    assert sorted(batch.refs) == sorted(f"P-{c}-2023{k:02d}-1" for c in nos for k in (1, 2))
    assert batch.totals["urban-dibao/urban"]["payments"] == 10
    assert batch.totals["urban-dibao/urban"]["gross_fen"] == 2 * sum(100000 + i * 100 for i in range(5))
    for c in nos:
        for k in (1, 2):
            assert len(issues(app, c, Month(2023, k))) == 1
    # Started by zhao.min and finished by sun.li: neither may approve it; a third officer does.
    for runner in (RUNNER, "sun.li"):
        with pytest.raises(FourEyesViolation):
            app.approve_batch("B-202302-all-1", operator=runner, effective=DAY)
    app.approve_batch("B-202302-all-1", operator=CHECKER, effective=DAY)


def test_a_second_run_for_the_same_month_issues_nothing_and_makes_no_batch(sqlite_url: str) -> None:
    app = LedgerApp(sqlite_url, clock=lambda: TODAY)
    active_case(app, "U1", "H1")
    active_case(app, "U2", "H2", first_person=10)
    projections = Projections(app)
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]

    def run() -> PayrollResult:
        projections.catch_up()
        with engine.connect() as conn:
            items = rm_candidates(conn, m("2023-03"))
        return app.run_payroll(m("2023-03"), None, items, operator=RUNNER, effective=DAY)

    first = run()
    assert first.batch == "B-202303-all-1" and len(first.issued) == 6
    before = written(app)
    second = run()
    assert (second.batch, second.issued, second.resumed) == (None, [], False)
    assert written(app) == before
    assert [b.ref for b in app.batches(m("2023-03"), None)] == ["B-202303-all-1"]


def test_a_run_with_stale_candidates_pays_nothing_twice(app: LedgerApp) -> None:
    active_case(app)
    payroll(app, m("2023-02"))
    result = app.run_payroll(m("2023-02"), None, [("U1", [m("2023-01"), m("2023-02")]), ("U9", [m("2023-02")])],
                             operator=RUNNER, effective=DAY)
    assert result.issued == []
    assert [(c, mo) for c, mo, _ in result.skipped] == [("U1", "2023-01"), ("U1", "2023-02"), ("U9", "2023-02")]
    assert "no case U9" in result.skipped[2][2]
    for k in (1, 2):
        assert len(issues(app, "U1", Month(2023, k))) == 1


def test_payroll_for_a_month_beyond_the_horizon_pays_nothing(app: LedgerApp) -> None:
    active_case(app)
    result = app.run_payroll(m("2023-09"), None, [("U1", [m("2023-09")])], operator=RUNNER, effective=DAY)
    assert result.issued == [] and "more than 2 months ahead" in result.skipped[0][2]


# =================================================================== bank results


def paid_batch(app: LedgerApp, case_nos: Sequence[str] = ("U1", "U2", "U3"), month: str = "2023-01") -> list[str]:
    """Active cases (1,000 / 1,100 / 1,200 yuan ...) paid for one month by an approved batch."""
    for i, c in enumerate(case_nos):
        active_case(app, c, f"H{c}", amount_fen=100000 + 10000 * i, first_person=10 * i + 1)
    result = payroll(app, m(month), case_nos)
    approve_batch(app, result.batch)  # type: ignore[arg-type]
    return result.issued


def test_results_applied_on_exact_reference_and_amount(app: LedgerApp) -> None:
    refs = paid_batch(app)
    assert refs == ["P-U1-202301-1", "P-U2-202301-1", "P-U3-202301-1"]
    content = results_file(
        ("P-U1-202301-1", "1000.00", "settled", ""),
        ("P-U2-202301-1", "1,100", "returned", "account closed"),
        ("P-U3-202301-1", "1200.0", "settled", ""),
    )
    loaded = load(app, content)
    assert (loaded.already_loaded, loaded.settled, loaded.returned, loaded.exceptions) == (False, 2, 1, [])
    assert [payment(app, r).status for r in refs] == ["settled", "returned", "settled"]
    assert payment(app, refs[1]).return_reason == "account closed"
    assert owed_months(app, "U2", m("2023-01")) == [m("2023-01")]
    f = bank_file_of(app, content)
    assert [(x["line"], x["ref"], x["outcome"]) for x in f.lines] == [
        (2, "P-U1-202301-1", "applied"), (3, "P-U2-202301-1", "applied"), (4, "P-U3-202301-1", "applied")]
    assert (f.file_name, f.loaded_by) == ("results.csv", RUNNER)


def test_lines_that_do_not_match_exactly_one_issued_payment_are_exceptions(app: LedgerApp) -> None:
    refs = paid_batch(app, ("U1", "U2", "U3", "U4"))
    app.settle_payment(refs[2], operator=RUNNER, effective=DAY)  # settled by hand before the file
    app.return_payment(refs[3], "account closed", operator=RUNNER, effective=DAY)  # returned by hand
    content = results_file(
        ("P-U1-202301-1", "1000.00", "settled", ""),              # 2 applied
        ("P-U9-202301-1", "1000.00", "settled", ""),              # 3 unknown reference
        ("P-U1-202301-1", "1000.00", "returned", "closed"),       # 4 duplicate of line 2
        ("P-U2-202301-1", "1100.01", "settled", ""),              # 5 amount off by one fen
        ("P-U3-202301-1", "1200.00", "returned", "closed"),       # 6 already settled
        ("P-U4-202301-1", "1300.00", "settled", ""),              # 7 already returned
        ("NOT-A-REF", "5.00", "settled", ""),                     # 8 not even a reference
        ("P-U1-202301-2", "1000.00", "settled", ""),              # 9 an issue that does not exist
    )
    before = written(app)
    loaded = load(app, content)
    assert (loaded.settled, loaded.returned) == (1, 0)
    problems = {x["line"]: (x["ref"], x["problem"]) for x in loaded.exceptions}
    assert problems == {
        3: ("P-U9-202301-1", "unknown payment reference"),
        4: ("P-U1-202301-1", "duplicate line: the same reference is on line 2"),
        5: ("P-U2-202301-1", "amount 1100.01 does not match the payment's 1100.00"),
        6: ("P-U3-202301-1", "payment is already settled"),
        7: ("P-U4-202301-1", "payment is already returned"),
        8: ("NOT-A-REF", "unknown payment reference"),
        9: ("P-U1-202301-2", "unknown payment reference"),
    }
    assert [payment(app, r).status for r in refs] == ["settled", "issued", "settled", "returned"]
    # Exactly two events: the settlement of line 2 and the file itself, with every line and its outcome.
    assert written(app) == before + 2
    f = bank_file_of(app, content)
    assert [x["line"] for x in f.lines] == list(range(2, 10))
    assert [x["line"] for x in f.exceptions()] == [3, 4, 5, 6, 7, 8, 9]
    assert f.lines[0] == {"line": 2, "ref": "P-U1-202301-1", "amount_fen": 100000, "result": "settled",
                          "reason": "", "outcome": "applied", "problem": ""}
    # An exception is resolved once, with a note; an applied line is not an exception.
    app.resolve_bank_exception(content, 5, "bank confirmed a typo", operator=RUNNER, effective=DAY)
    assert bank_file_of(app, content).resolved == {5: "bank confirmed a typo"}
    with nothing_written(app), pytest.raises(InvalidTransition, match="line 5 of results.csv is already resolved"):
        app.resolve_bank_exception(content, 5, "again", operator=RUNNER, effective=DAY)
    with nothing_written(app), pytest.raises(InvalidInput, match="line 2 of results.csv is not an exception"):
        app.resolve_bank_exception(content, 2, "x", operator=RUNNER, effective=DAY)
    with nothing_written(app), pytest.raises(InvalidInput, match="say how the exception was resolved"):
        app.resolve_bank_exception(content, 3, "  ", operator=RUNNER, effective=DAY)
    with nothing_written(app), pytest.raises(NotFound, match="this results file was never loaded"):
        app.resolve_bank_exception(content + b"\n", 3, "x", operator=RUNNER, effective=DAY)


def test_the_same_results_file_twice_changes_nothing(app: LedgerApp) -> None:
    refs = paid_batch(app)
    content = results_file((refs[0], "1000.00", "settled", ""), (refs[1], "1100.00", "returned", "closed"),
                           ("P-U9-202301-1", "1.00", "settled", ""))
    first = load(app, content)
    assert (first.settled, first.returned, len(first.exceptions)) == (1, 1, 1)
    before = written(app)
    again = load(app, content, name="renamed.csv")
    assert again.already_loaded and again.sha256 == first.sha256
    assert (again.settled, again.returned) == (0, 0)
    assert [x["line"] for x in again.exceptions] == [4]
    assert written(app) == before
    assert bank_file_of(app, content).file_name == "results.csv"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the results file is empty"),
        (b"ref,amount,result,reason\nP-U1-202301-1,1000.00,settled,\n", "line 1: expected the header reference,amount,result,reason"),
        (b"reference,amount,result\nP-U1-202301-1,1000.00,settled\n", "line 1: expected the header"),
        (b"reference,amount,result,reason\nP-U2-202301-1,1100.00,settled,\nP-U1-202301-1,1000.00,settled\n",
         "line 3: expected 4 fields .reference,amount,result,reason., found 3"),
        (b"reference,amount,result,reason\nP-U1-202301-1,1000.00,settled,,extra\n", "line 2: expected 4 fields"),
        (b"reference,amount,result,reason\nP-U1-202301-1,1000.001,settled,\n", "line 2: field 'amount': invalid amount"),
        (b"reference,amount,result,reason\nP-U1-202301-1,-1000.00,settled,\n", "line 2: field 'amount'"),
        (b"reference,amount,result,reason\nP-U1-202301-1,0,settled,\n", "line 2: field 'amount'.*must be positive"),
        (b"reference,amount,result,reason\nP-U2-202301-1,1100.00,settled,\nP-U1-202301-1,1000.00,paid,\n",
         "line 3: field 'result': expected settled or returned, found 'paid'"),
        (b"reference,amount,result,reason\nP-U1-202301-1,1000.00,returned,  \n", "line 2: field 'reason': a returned payment needs the bank's reason"),
        (b"reference,amount,result,reason\n,1000.00,settled,\n", "line 2: field 'reference' is empty"),
        ("reference,amount,result,reason\nP-U1-202301-1,1000.00,returned,账户已销户\n".encode("gbk"), "the results file is not UTF-8 text"),
    ],
    ids=["empty", "bad-header", "short-header", "short-line", "long-line", "three-decimals", "negative", "zero",
         "bad-result", "return-without-reason", "no-reference", "not-utf8"],
)
def test_a_malformed_results_file_is_refused_whole(app: LedgerApp, content: bytes, message: str) -> None:
    refs = paid_batch(app)
    with nothing_written(app), pytest.raises(InvalidInput, match=message):
        load(app, content)
    assert [payment(app, r).status for r in refs] == ["issued"] * 3
    assert app.unit_of_work().find(bank_file_id(hashlib.sha256(content).hexdigest())) is None


def test_a_results_file_with_a_bom_and_blank_lines_is_accepted() -> None:
    content = "\ufeffReference,Amount,Result,Reason\r\n\r\nP-U1-202301-1,1000.00,returned,账户已销户\r\n,,,\r\n".encode("utf-8")
    (line,) = parse_results(content)
    assert (line.line, line.ref, line.amount_fen, line.result, line.reason) == (3, "P-U1-202301-1", 100000, "returned", "账户已销户")


def test_a_header_only_results_file_is_loaded_with_no_lines(app: LedgerApp) -> None:
    paid_batch(app)
    loaded = load(app, b"reference,amount,result,reason\n")
    assert (loaded.settled, loaded.returned, loaded.exceptions) == (0, 0, [])


def test_a_returned_result_reopens_the_month_and_reverses_its_offset(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 100000, "2023-02")  # debt 400 yuan
    result = payroll(app, m("2023-04"))
    approve_batch(app, result.batch)  # type: ignore[arg-type]
    (line,) = app.bank_file(result.batch)[0]  # type: ignore[arg-type]
    assert line[3] == "600.00"  # 1,000 less the 400 offset
    load(app, results_file(("P-U1-202304-1", "600.00", "returned", "account frozen")))
    case = app.get_case("U1")
    assert case.debt_fen == 40000
    assert [(e.amount_fen, e.reference) for e in events(app, "U1", Case.RecoveryReversed)] == [(40000, "P-U1-202304-1")]
    assert owed_months(app, "U1", m("2023-04")) == [m("2023-04")]


# =================================================================== reconciliation


@pytest.fixture
def books(sqlite_url: str) -> tuple[LedgerApp, Projections]:
    """Four cases paid for March 2023 by an approved batch; one is entirely offset against debt."""
    app = LedgerApp(sqlite_url, clock=lambda: TODAY)
    for i, c in enumerate(("U1", "U2", "U3", "U4")):
        active_case(app, c, f"H{c}", amount_fen=100000 + 10000 * i, first_month=m("2023-01"), first_person=10 * i + 1)
        pay_months(app, "2023-01", "2023-02", case_no=c)
    suspend(app, "2023-01", case_no="U4", effective=date(2023, 2, 20))  # 2 x 1,300 yuan overpaid
    resume(app, "2023-03", case_no="U4", effective=date(2023, 2, 25))
    result = app.run_payroll(m("2023-03"), None, owed_candidates(app, m("2023-03"), ["U1", "U2", "U3", "U4"]),
                             operator=RUNNER, effective=date(2023, 3, 1))
    assert result.issued == ["P-U1-202303-1", "P-U2-202303-1", "P-U3-202303-1", "P-U4-202303-1"]
    assert payment(app, "P-U4-202303-1").status == "settled"  # fully offset
    app.approve_batch(result.batch, operator=CHECKER, effective=date(2023, 3, 2))  # type: ignore[arg-type]
    return app, Projections(app)


def reconciled(app: LedgerApp, projections: Projections, **scope: Any) -> Any:
    projections.catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        return reconcile(app, conn, **scope)


RESULTS_MARCH = results_file(
    ("P-U1-202303-1", "1000.00", "settled", ""),
    ("P-U2-202303-1", "1100.00", "returned", "account closed"),
)


def test_reconcile_classifies_every_payment_and_the_totals_agree(books: tuple[LedgerApp, Projections]) -> None:
    app, projections = books
    load(app, RESULTS_MARCH)
    rec = reconciled(app, projections, month=m("2023-03"))
    classes = {x["ref"]: (x["class"], x["events"], x["read_model"], x["bank"], x["note"]) for x in rec.lines}
    assert classes == {
        "P-U1-202303-1": ("matched", "settled", "settled", "settled", ""),
        "P-U2-202303-1": ("returned", "returned", "returned", "returned", ""),
        "P-U3-202303-1": ("outstanding", "issued", "issued", "-", ""),
        "P-U4-202303-1": ("matched", "settled", "settled", "no bank leg", "fully offset against overpayment"),
    }
    assert rec.balanced and rec.exceptions == []
    assert rec.totals["events"] == rec.totals["read_model"] == {
        "issued_fen": 100000 + 110000 + 120000, "settled_fen": 100000, "returned_fen": 110000,
        "outstanding_fen": 120000, "offset_fen": 130000,
    }
    assert rec.totals["bank"] == {"issued_fen": 210000, "settled_fen": 100000, "returned_fen": 110000,
                                  "outstanding_fen": 0, "offset_fen": 0}
    # The batch scope gives the same lines; another month has its own.
    by_batch = reconciled(app, projections, batch="B-202303-all-1")
    assert by_batch.lines == rec.lines and by_batch.totals == rec.totals
    january = reconciled(app, projections, month=m("2023-01"))
    assert len(january.lines) == 4 and {x["class"] for x in january.lines} == {"outstanding"}
    assert january.balanced


def test_payments_settled_or_returned_by_hand_are_explained(books: tuple[LedgerApp, Projections]) -> None:
    app, projections = books
    app.settle_payment("P-U1-202303-1", operator=RUNNER, effective=DAY)
    app.return_payment("P-U2-202303-1", "payee deceased", operator=RUNNER, effective=DAY)
    rec = reconciled(app, projections, month=m("2023-03"))
    notes = {x["ref"]: (x["class"], x["note"]) for x in rec.lines}
    assert notes["P-U1-202303-1"] == ("matched", "settled by hand, no bank line")
    assert notes["P-U2-202303-1"] == ("returned", "returned by hand, no bank line")
    assert rec.balanced


def test_a_tampered_read_model_row_is_an_exception(books: tuple[LedgerApp, Projections]) -> None:
    app, projections = books
    load(app, RESULTS_MARCH)
    projections.catch_up()
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("UPDATE rm_payment SET amount_fen = amount_fen + 1 WHERE ref = 'P-U3-202303-1'"))
    rec = reconciled(app, projections, month=m("2023-03"))
    (line,) = rec.exceptions
    assert (line["ref"], line["note"]) == ("P-U3-202303-1", "the read model differs from the events")
    assert not rec.balanced
    assert rec.totals["read_model"]["issued_fen"] == rec.totals["events"]["issued_fen"] + 1
    with engine.begin() as conn:
        conn.execute(text("UPDATE rm_payment SET amount_fen = amount_fen - 1, status = 'settled' WHERE ref = 'P-U3-202303-1'"))
    rec = reconciled(app, projections, month=m("2023-03"))
    assert [x["ref"] for x in rec.exceptions] == ["P-U3-202303-1"] and not rec.balanced
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rm_payment WHERE ref = 'P-U3-202303-1'"))
    rec = reconciled(app, projections, month=m("2023-03"))
    (line,) = rec.exceptions
    assert (line["ref"], line["read_model"], line["events"]) == ("P-U3-202303-1", "missing", "issued")


def test_an_unresolved_bank_exception_unbalances_until_resolved(books: tuple[LedgerApp, Projections]) -> None:
    app, projections = books
    content = results_file(
        ("P-U1-202303-1", "1000.00", "settled", ""),
        ("P-U3-202303-1", "1200.10", "settled", ""),       # 3: amount mismatch on a known payment
        ("P-U7-202303-1", "900.00", "returned", "closed"),  # 4: unknown payment of this month
        ("P-U7-202301-1", "900.00", "settled", ""),        # 5: unknown payment of another month
    )
    loaded = load(app, content)
    assert [x["line"] for x in loaded.exceptions] == [3, 4, 5]
    rec = reconciled(app, projections, month=m("2023-03"))
    assert not rec.balanced
    assert rec.totals["events"] == rec.totals["read_model"]
    notes = {x["ref"]: x["note"] for x in rec.exceptions}
    assert notes == {
        "P-U3-202303-1": "results.csv line 3: amount 1200.10 does not match the payment's 1200.00",
        "P-U7-202303-1": "results.csv line 4: unknown payment reference",
    }
    assert not reconciled(app, projections, month=m("2023-01")).balanced  # line 5
    app.resolve_bank_exception(content, 3, "bank keyed the amount wrongly; payment stands", operator=RUNNER, effective=DAY)
    rec = reconciled(app, projections, month=m("2023-03"))
    assert [x["ref"] for x in rec.exceptions] == ["P-U7-202303-1"] and not rec.balanced
    assert {x["ref"]: x["class"] for x in rec.lines}["P-U3-202303-1"] == "outstanding"
    app.resolve_bank_exception(content, 4, "not ours: another bureau's payment", operator=RUNNER, effective=DAY)
    assert reconciled(app, projections, month=m("2023-03")).balanced
    assert reconciled(app, projections, batch="B-202303-all-1").balanced
    app.resolve_bank_exception(content, 5, "not ours", operator=RUNNER, effective=DAY)
    assert reconciled(app, projections, month=m("2023-01")).balanced


def test_the_read_models_of_the_finance_events_equal_a_replay(books: tuple[LedgerApp, Projections]) -> None:
    app, projections = books
    load(app, RESULTS_MARCH)
    app.record_refund("U4", 10000, "receipt 7", operator=RUNNER, effective=date(2023, 3, 20))
    projections.catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        assert verify_read_models(app, conn, projections.head()) == []
        state = account_state(conn, "U4", date(2023, 3, 31))
    totals = state["totals"]
    # U4: paid January and February (2,600), suspended from January: all of it overpaid;
    # March (1,300) was entirely offset, a refund of 100 yuan came in.
    assert (totals["entitled_fen"], totals["net_paid_fen"], totals["arrears_fen"], totals["debt_fen"]) == (
        130000, 260000 - 10000, 0, 260000 - 130000 - 10000)
    assert totals["net_paid_fen"] + totals["arrears_fen"] - totals["debt_fen"] == totals["entitled_fen"]


# =================================================================== bugs found (strict xfails)


def test_a_recovered_overpayment_that_is_cancelled_is_paid_back(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 100000, "2023-02")  # 2 x 200 yuan overpaid
    payroll(app, m("2023-04"))  # April: 1,000 yuan, 400 of it kept as offset
    adjust(app, 120000, "2023-02", effective=date(2023, 5, 20))  # the decrease is undone: nothing was overpaid
    payroll(app, m("2023-05"))
    case = app.get_case("U1")
    months = list(m("2023-01").until(m("2023-05")))
    cash = sum(p.amount_fen for mo in months for p in issues(app, "U1", mo) if p.is_net)
    assert sum(case.entitlement(mo) for mo in months) == 5 * 120000
    assert case.debt_fen == 0, "the 400 yuan kept from April is still owed to the household"
    assert cash == 5 * 120000


def test_an_offset_for_a_month_the_bank_then_returns_is_paid_back(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    refs = pay_months(app, "2023-01", "2023-02", "2023-03")
    suspend(app, "2023-03")  # March overpaid: 1,200 yuan
    resume(app, "2023-04")
    april = payment(app, payroll(app, m("2023-04")).issued[0])
    assert (april.offset_fen, april.amount_fen) == (120000, 0)  # April entirely kept as offset
    app.return_payment(refs[2], "account closed", operator=RUNNER, effective=DAY)  # March never reached them
    payroll(app, m("2023-05"))
    case = app.get_case("U1")
    months = list(m("2023-01").until(m("2023-05")))
    cash = sum(p.amount_fen for mo in months for p in issues(app, "U1", mo) if p.is_net)
    assert case.debt_fen == 0
    assert cash == sum(case.entitlement(mo) for mo in months) == 4 * 120000


def test_the_operator_who_resumed_a_batch_cannot_approve_it(app: LedgerApp) -> None:
    for i, c in enumerate(("U1", "U2", "U3")):
        active_case(app, c, f"H{c}", first_person=10 * i + 1)

    def stop(done: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        payroll(app, m("2023-01"), ("U1", "U2", "U3"), chunk=1, progress=stop)
    resumed = app.run_payroll(m("2023-01"), None, owed_candidates(app, m("2023-01"), ("U1", "U2", "U3")),
                              operator="sun.li", effective=DAY)
    assert resumed.resumed and len(resumed.issued) == 2
    with pytest.raises(FourEyesViolation):
        app.approve_batch(resumed.batch, operator="sun.li", effective=DAY)  # type: ignore[arg-type]


def test_a_returned_payment_is_not_in_the_bank_file(app: LedgerApp) -> None:
    active_case(app, "U1", "H1")
    active_case(app, "U2", "H2", first_person=10)
    first = payroll(app, m("2023-01"), ("U1", "U2"))
    # Before the file goes out, the bank reports U1's account closed: returned, and re-issued by the clerk
    # to the new account (or by the next run, in its own batch).
    app.return_payment("P-U1-202301-1", "account closed", operator=RUNNER, effective=DAY)
    app.change_account("H1", "Person 1", "6222020000009999", operator=VERIFIER, effective=DAY)
    second = payroll(app, m("2023-01"), ("U1", "U2"))
    assert second.issued == ["P-U1-202301-2"]
    approve_batch(app, first.batch)  # type: ignore[arg-type]
    approve_batch(app, second.batch)  # type: ignore[arg-type]
    sent = [line for ref in (first.batch, second.batch) for line in app.bank_file(ref)[0]]  # type: ignore[arg-type]
    assert [x[0] for x in sent if x[0].startswith("P-U1-202301")] == ["P-U1-202301-2"]


def test_the_account_adds_up_as_of_the_end_of_a_month_paid_later(sqlite_url: str) -> None:
    app = LedgerApp(sqlite_url, clock=lambda: TODAY)
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02")
    adjust(app, 100000, "2023-02", effective=date(2023, 3, 10))  # February: 200 yuan overpaid
    # March's payroll runs on 3 April: March is paid 1,000, of which 200 offset.
    app.run_payroll(m("2023-03"), None, [("U1", [m("2023-03")])], operator=RUNNER, effective=date(2023, 4, 3))
    projections = Projections(app)
    projections.catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        end_of_march = account_state(conn, "U1", date(2023, 3, 31))["totals"]
        later = account_state(conn, "U1", date(2023, 4, 30))["totals"]
    assert later["net_paid_fen"] + later["arrears_fen"] - later["debt_fen"] == later["entitled_fen"]
    t = end_of_march
    assert t["net_paid_fen"] + t["arrears_fen"] - t["debt_fen"] == t["entitled_fen"], t


def test_an_issue_reads_as_issued_after_its_offset_is_released(db_url: str) -> None:
    """A payment's line in the trail is made from its read-model row: it still says what was issued."""
    app = LedgerApp(db_url, clock=lambda: TODAY)
    active_case(app, amount_fen=120000)
    pay_months(app, "2023-01", "2023-02", "2023-03")
    adjust(app, 100000, "2023-02")  # 2 x 200 yuan overpaid
    payroll(app, m("2023-04"))  # April: 1,000 yuan, 400 of it offset
    adjust(app, 120000, "2023-02", effective=date(2023, 5, 20))  # undone: the offset is given back
    april = payment(app, "P-U1-202304-1")
    assert (april.gross_fen, april.offset_fen, april.released_fen) == (60000, 0, 40000)
    projections = Projections(app)
    projections.catch_up()
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert verify_read_models(app, conn, projections.head()) == []
        lines = trail(conn, "U1")
        row = conn.execute(text("SELECT gross_fen, offset_fen, released_fen FROM rm_payment WHERE ref = 'P-U1-202304-1'")).one()
        stored = dict(conn.execute(text("SELECT id, state FROM ledger_events")).all())
    assert tuple(row) == (60000, 0, 40000)
    issued = [x["what"] for x in lines if x["event"] == "Payment.Issued" and x["subject"] == "P-U1-202304-1"]
    assert issued == ["Payment P-U1-202304-1 issued: 1,000.00 yuan for 2023-04, 2 persons, 400.00 of it offset against overpayment"]
    assert [x["event"] for x in lines][-2:] == ["Case.RecoveryReversed", "Payment.OffsetReleased"]
    # Every line says what its stored event says.
    assert [x["what"] for x in lines] == [describe(x["event"], detail(stored[x["position"]])) for x in lines]
    engine.dispose()


def test_an_offset_released_leaves_no_overpayment_on_its_month(db_url: str) -> None:
    """A release lowers what its month was delivered: the overpayment of that month follows it."""
    app = LedgerApp(db_url, clock=lambda: TODAY)
    active_case(app, amount_fen=100000)
    pay_months(app, "2023-01", "2023-02")
    adjust(app, 80000, "2023-01", effective=date(2023, 2, 10))  # cut: 2 x 200 yuan overpaid
    adjust(app, 120000, "2023-03", effective=date(2023, 2, 20))
    payroll(app, m("2023-03"))  # March: 1,200 yuan, 400 of it offset, 800 in cash
    # The cut reversed on appeal, 1,000 yuan from January (March's 1,200 replaced too): January and
    # February were paid right, and March was delivered 800 in cash. All 400 of the offset is released
    # (200 of it because March's own overpayment is cancelled once the first 200 are), and 200 is owed.
    adjust(app, 100000, "2023-01", effective=date(2023, 4, 10))
    march = payment(app, "P-U1-202303-1")
    assert (march.gross_fen, march.offset_fen, march.amount_fen, march.released_fen) == (80000, 0, 80000, 40000)
    case = app.get_case("U1")
    assert (case.overpaid, case.debt_fen, case.recovered_fen) == ({}, 0, 0)
    assert Payment.owed(case, m("2023-03"), [march]) == 20000
    projections = Projections(app)
    projections.catch_up()
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert verify_read_models(app, conn, projections.head()) == []
        t = account_state(conn, "U1", date(2023, 4, 30))["totals"]
    engine.dispose()
    # By the end of April: four months of 1,000 yuan, 2,800 paid, March's 200 and April's 1,000 owed.
    assert (t["entitled_fen"], t["net_paid_fen"], t["arrears_fen"], t["debt_fen"]) == (400000, 280000, 120000, 0)
    # The next payroll pays March's 200 yuan in cash.
    assert payroll(app, m("2023-03")).issued == ["P-U1-202303-2"]
    assert payment(app, "P-U1-202303-2").amount_fen == 20000


def test_a_run_with_only_stale_candidates_makes_no_batch(app: LedgerApp) -> None:
    active_case(app)
    payroll(app, m("2023-02"))
    before = written(app)
    result = app.run_payroll(m("2023-02"), None, [("U1", [m("2023-01"), m("2023-02")])], operator=RUNNER, effective=DAY)
    assert result.issued == []
    assert [b.ref for b in app.batches(m("2023-02"), None)] == ["B-202302-all-1"]
    assert result.batch is None and written(app) == before
