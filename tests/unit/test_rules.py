"""The rules of DOMAIN.md section 3 that must hold when an event is recorded.

Every refusal test also shows that nothing was written: the event store's last
notification id (and the aggregate's version) are unchanged.
"""

from __future__ import annotations

from datetime import date

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.application import LedgerApp
from ledger.domain import Payment, payment_id
from ledger.errors import (
    AmountAboveStandard,
    CaseNotActive,
    DuplicatePayment,
    FourEyesViolation,
    InvalidInput,
    OverrideRequired,
    VerificationRequired,
)
from ledger.values import Area, Month, Programme
from tests.unit.ledger_helpers import (
    APPROVER,
    FINANCE,
    JAN,
    URBAN_STD,
    VERIFIER,
    D,
    active_case,
    approve,
    issue,
    m,
    nothing_written,
    open_case,
    register,
    set_standard,
    verify,
    written,
)


@pytest.fixture
def applied(app: LedgerApp) -> LedgerApp:
    """Urban standard 760.00 from 2022-01, household H1 of two, case U1 applied (no verification)."""
    set_standard(app)
    register(app, "H1", persons=2)
    open_case(app, "U1", "H1")
    return app


def version(app: LedgerApp, case_no: str = "U1") -> int:
    return app.get_case(case_no).version


# =================================================================== rule 1: verify before every grant


def test_approval_without_verification_is_refused(applied: LedgerApp) -> None:
    v = version(applied)
    with nothing_written(applied), pytest.raises(VerificationRequired, match="case U1 needs a verification recorded before"):
        approve(applied)
    assert version(applied) == v
    assert applied.get_case("U1").status == "applied"


def test_approval_with_a_passing_verification_is_recorded(applied: LedgerApp) -> None:
    verify(applied)
    approve(applied)
    case = applied.get_case("U1")
    assert case.status == "active"
    assert case.amount_fen == 120000


def test_verification_dated_after_the_decision_does_not_support_it(applied: LedgerApp) -> None:
    verify(applied, effective=date(2023, 1, 20))
    with nothing_written(applied), pytest.raises(VerificationRequired, match="needs a verification recorded before"):
        approve(applied, effective=date(2023, 1, 10))


def test_expired_verification_is_refused(applied: LedgerApp) -> None:
    verify(applied, valid_until=date(2023, 1, 31))
    v = version(applied)
    with nothing_written(applied), pytest.raises(VerificationRequired, match=r"verification no\. 1 expired on 2023-01-31"):
        approve(applied, effective=date(2023, 2, 1))
    assert version(applied) == v
    # valid through its last day
    approve(applied, effective=date(2023, 1, 31))
    assert applied.get_case("U1").status == "active"


@pytest.mark.parametrize("income_fen", [URBAN_STD, URBAN_STD + 1, 100000])
def test_verification_with_income_at_or_above_standard_fails_and_cannot_support_approval(
    applied: LedgerApp, income_fen: int
) -> None:
    verify(applied, income_fen=income_fen)
    assert applied.get_case("U1").verifications[-1].passed is False
    with nothing_written(applied), pytest.raises(VerificationRequired, match=r"latest verification \(no\. 1\) did not pass"):
        approve(applied)


def test_verification_just_below_standard_passes(applied: LedgerApp) -> None:
    verify(applied, income_fen=URBAN_STD - 1)
    assert applied.get_case("U1").verifications[-1].passed is True


def test_verification_with_assets_exceeding_fails_and_cannot_support_approval(applied: LedgerApp) -> None:
    verify(applied, income_fen=0, assets_ok=False)
    with nothing_written(applied), pytest.raises(VerificationRequired, match="did not pass"):
        approve(applied)


def test_latest_verification_decides_a_later_failure_withdraws_support(applied: LedgerApp) -> None:
    verify(applied)
    verify(applied, income_fen=URBAN_STD * 2)
    with nothing_written(applied), pytest.raises(VerificationRequired, match=r"no\. 2\) did not pass"):
        approve(applied)


def test_approver_must_not_be_the_verifier(applied: LedgerApp) -> None:
    verify(applied, verifier=VERIFIER)
    v = version(applied)
    with nothing_written(applied), pytest.raises(FourEyesViolation, match=f"{VERIFIER} verified this case"):
        approve(applied, operator=VERIFIER)
    assert version(applied) == v


def test_adjustment_needs_a_new_verification_after_the_last_decision(app: LedgerApp) -> None:
    active_case(app)
    v = version(app)
    # The verification that supported the approval cannot support the adjustment too.
    with nothing_written(app), pytest.raises(VerificationRequired, match="needs a new verification"):
        app.adjust("U1", amount_fen=100000, from_month=m("2023-04"), operator=APPROVER, effective=date(2023, 3, 10))
    assert version(app) == v
    verify(app, effective=date(2023, 3, 1))
    app.adjust("U1", amount_fen=100000, from_month=m("2023-04"), operator=APPROVER, effective=date(2023, 3, 10))
    assert app.get_case("U1").amount_fen == 100000
    # ... and that new verification is used up by this adjustment.
    with nothing_written(app), pytest.raises(VerificationRequired, match="needs a new verification"):
        app.adjust("U1", amount_fen=90000, from_month=m("2023-06"), operator=APPROVER, effective=date(2023, 5, 10))


def test_adjustment_on_an_expired_new_verification_is_refused(app: LedgerApp) -> None:
    active_case(app)
    verify(app, effective=date(2023, 3, 1), valid_until=date(2023, 3, 31))
    with nothing_written(app), pytest.raises(VerificationRequired, match="expired on 2023-03-31"):
        app.adjust("U1", amount_fen=100000, from_month=m("2023-05"), operator=APPROVER, effective=date(2023, 4, 2))


def test_adjustment_on_a_failed_new_verification_is_refused(app: LedgerApp) -> None:
    active_case(app)
    verify(app, effective=date(2023, 3, 1), income_fen=URBAN_STD)
    with nothing_written(app), pytest.raises(VerificationRequired, match="did not pass"):
        app.adjust("U1", amount_fen=100000, from_month=m("2023-04"), operator=APPROVER, effective=date(2023, 3, 10))


def test_adjuster_must_not_be_the_verifier(app: LedgerApp) -> None:
    active_case(app)
    verify(app, effective=date(2023, 3, 1), verifier="zhao.lei")
    v = version(app)
    with nothing_written(app), pytest.raises(FourEyesViolation, match="zhao.lei verified this case"):
        app.adjust("U1", amount_fen=100000, from_month=m("2023-04"), operator="zhao.lei", effective=date(2023, 3, 10))
    assert version(app) == v


@pytest.fixture
def temporary(app: LedgerApp) -> LedgerApp:
    """Urban standard 760.00; household H1; temporary assistance case T1 applied (no verification)."""
    set_standard(app)
    register(app, "H1", persons=3)
    open_case(app, "T1", "H1", programme=Programme.TEMPORARY)
    return app


def grant(app: LedgerApp, amount_fen: int = 150000, operator: str = APPROVER, override: str = "", effective: date = D) -> None:
    app.approve_grant("T1", grant_type="fire", amount_fen=amount_fen, reason="house fire", override_reason=override,
                      operator=operator, effective=effective)


def test_grant_without_verification_is_refused(temporary: LedgerApp) -> None:
    with nothing_written(temporary), pytest.raises(VerificationRequired, match="case T1 needs a verification"):
        grant(temporary)


def test_grant_on_failed_verification_is_refused(temporary: LedgerApp) -> None:
    verify(temporary, "T1", assets_ok=False)
    with nothing_written(temporary), pytest.raises(VerificationRequired, match="did not pass"):
        grant(temporary)


def test_grant_on_expired_verification_is_refused(temporary: LedgerApp) -> None:
    verify(temporary, "T1", valid_until=date(2023, 1, 10))
    with nothing_written(temporary), pytest.raises(VerificationRequired, match="expired on 2023-01-10"):
        grant(temporary, effective=date(2023, 1, 11))


def test_grant_approver_must_not_be_the_verifier(temporary: LedgerApp) -> None:
    verify(temporary, "T1")
    with nothing_written(temporary), pytest.raises(FourEyesViolation, match=f"{VERIFIER} verified this case"):
        grant(temporary, operator=VERIFIER)
    grant(temporary)
    assert temporary.get_case("T1").status == "granted"


# =================================================================== rule 2: one net payment per case and month


def test_second_issue_for_the_same_month_is_refused(app: LedgerApp) -> None:
    active_case(app)
    ref = issue(app, "U1", JAN)
    assert ref == "P-U1-202301-1"
    with nothing_written(app), pytest.raises(DuplicatePayment, match=r"case U1 is already paid for 2023-01 \(P-U1-202301-1, issued\)"):
        issue(app, "U1", JAN)


def test_issue_after_settlement_is_refused(app: LedgerApp) -> None:
    active_case(app)
    ref = issue(app, "U1", JAN)
    app.settle_payment(ref, operator=FINANCE, effective=date(2023, 2, 3))
    with nothing_written(app), pytest.raises(DuplicatePayment, match="settled"):
        issue(app, "U1", JAN)


def test_reissue_after_bank_return_gets_issue_number_two(app: LedgerApp) -> None:
    active_case(app)
    first = issue(app, "U1", JAN)
    app.return_payment(first, "account closed", operator=FINANCE, effective=date(2023, 2, 3))
    second = issue(app, "U1", JAN, effective=date(2023, 2, 10))
    assert second == "P-U1-202301-2"
    p1 = app.repository.get(payment_id("U1", JAN, 1))
    p2 = app.repository.get(payment_id("U1", JAN, 2))
    assert (p1.status, p1.return_reason) == ("returned", "account closed")
    assert (p2.status, p2.issue_no, p2.ref, p2.amount_fen) == ("issued", 2, "P-U1-202301-2", 120000)
    # The re-issue is again the one net payment: a third issue is refused until it too comes back.
    with nothing_written(app), pytest.raises(DuplicatePayment, match=r"P-U1-202301-2, issued"):
        issue(app, "U1", JAN)


def test_other_months_and_cases_are_independent(app: LedgerApp) -> None:
    active_case(app, "U1", "H1")
    active_case(app, "U2", "H2", first_person=50)
    assert issue(app, "U1", JAN) == "P-U1-202301-1"
    assert issue(app, "U1", JAN.add(1)) == "P-U1-202302-1"
    assert issue(app, "U2", JAN) == "P-U2-202301-1"


def test_payment_id_is_deterministic() -> None:
    assert payment_id("U1", JAN, 1) == payment_id("U1", Month(2023, 1), 1)
    assert len({payment_id("U1", JAN, 1), payment_id("U1", JAN, 2), payment_id("U1", JAN.add(1), 1), payment_id("U2", JAN, 1)}) == 4


def test_two_racing_issues_collide_on_the_event_store_unique_key(app: LedgerApp) -> None:
    """Double payment is impossible by construction: both clerks' units of work saw "no payment yet"."""
    active_case(app)
    first, second = app.unit_of_work(), app.unit_of_work()
    ref1 = app.issue_payment("U1", JAN, operator=FINANCE, effective=date(2023, 2, 1), uow=first)
    ref2 = app.issue_payment("U1", JAN, operator="zhao.lei", effective=date(2023, 2, 1), uow=second)
    assert ref1 == ref2 == "P-U1-202301-1"  # the check passed in both
    p1, p2 = first.find(payment_id("U1", JAN, 1)), second.find(payment_id("U1", JAN, 1))
    assert isinstance(p1, Payment) and isinstance(p2, Payment) and p1 is not p2
    assert p1.id == p2.id
    first.commit()
    before = written(app)
    with pytest.raises(IntegrityError):
        second.commit()
    assert written(app) == before
    stored = app.repository.get(payment_id("U1", JAN, 1))
    assert stored.version == 1
    assert [e.operator for e in app.events.get(payment_id("U1", JAN, 1))] == [FINANCE]


def test_a_race_lost_at_commit_is_retried_and_then_refused_as_duplicate(app: LedgerApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The application's retry re-runs the command on fresh state, where the rule check refuses it."""
    active_case(app)
    other = app.unit_of_work()
    app.issue_payment("U1", JAN, operator="zhao.lei", effective=date(2023, 2, 1), uow=other)
    original = app.issues
    calls: list[list[Payment]] = []

    def racing(w, case_no, month):  # type: ignore[no-untyped-def]
        found = original(w, case_no, month)
        calls.append(found)
        if len(calls) == 1:
            other.commit()  # the other clerk commits right after we looked
        return found

    monkeypatch.setattr(app, "issues", racing)
    with pytest.raises(DuplicatePayment, match="already paid for 2023-01"):
        issue(app, "U1", JAN)
    assert calls[0] == [] and len(calls[1]) == 1  # first attempt saw nothing, the retry saw the payment
    assert [e.operator for e in app.events.get(payment_id("U1", JAN, 1))] == ["zhao.lei"]
    assert app.unit_of_work().find(payment_id("U1", JAN, 2)) is None


# =================================================================== rule 3: no payment for an inactive month


def test_no_payment_before_the_first_benefit_month(app: LedgerApp) -> None:
    active_case(app, first_month=m("2023-03"))
    with nothing_written(app), pytest.raises(CaseNotActive, match=r"case U1 is not active in 2023-02 \(not yet active\)"):
        issue(app, "U1", m("2023-02"))
    assert issue(app, "U1", m("2023-03")) == "P-U1-202303-1"


def test_no_payment_for_a_suspended_month(app: LedgerApp) -> None:
    active_case(app)
    app.suspend("U1", "not reachable on review", m("2023-03"), operator=APPROVER, effective=date(2023, 3, 2))
    app.resume("U1", m("2023-05"), operator=APPROVER, effective=date(2023, 5, 2))
    for month in ("2023-03", "2023-04"):
        with nothing_written(app), pytest.raises(CaseNotActive, match=f"not active in {month} \\(suspended\\)"):
            issue(app, "U1", m(month))
    assert issue(app, "U1", m("2023-02")) == "P-U1-202302-1"
    assert issue(app, "U1", m("2023-05")) == "P-U1-202305-1"


def test_no_payment_for_a_terminated_month(app: LedgerApp) -> None:
    active_case(app)
    app.terminate("U1", "income above standard", m("2023-06"), operator=APPROVER, effective=date(2023, 6, 1))
    for month in ("2023-06", "2024-01"):
        with nothing_written(app), pytest.raises(CaseNotActive, match=f"not active in {month} \\(terminated\\)"):
            issue(app, "U1", m(month))
    assert issue(app, "U1", m("2023-05")) == "P-U1-202305-1"


def test_no_payment_for_an_applied_case(applied: LedgerApp) -> None:
    verify(applied)
    with nothing_written(applied), pytest.raises(CaseNotActive, match=r"case U1 is not active in 2023-01 \(applied\)"):
        issue(applied, "U1", JAN)


def test_no_payment_for_a_rejected_case(applied: LedgerApp) -> None:
    applied.reject("U1", "income above standard", operator=APPROVER, effective=D)
    with nothing_written(applied), pytest.raises(CaseNotActive, match=r"not active in 2023-01 \(rejected\)"):
        issue(applied, "U1", JAN)


# =================================================================== rule 5: amounts within the standard


@pytest.fixture
def two_standards(app: LedgerApp) -> LedgerApp:
    """Urban standard 760.00 from 2022-01 and 800.00 from 2023-07; household H1 of 2; case U1 verified."""
    set_standard(app, 76000, m("2022-01"))
    set_standard(app, 80000, m("2023-07"))
    register(app, "H1", persons=2)
    open_case(app, "U1", "H1")
    verify(app)
    return app


def test_approval_above_standard_times_persons_is_refused(two_standards: LedgerApp) -> None:
    app = two_standards
    v = version(app)
    with nothing_written(app), pytest.raises(
        AmountAboveStandard, match=r"1,520\.01 yuan a month is above the ceiling of 1,520\.00 yuan \(standard 760\.00 x 2 persons in 2023-06\)"
    ):
        approve(app, amount_fen=152001, first_month=m("2023-06"))
    assert version(app) == v
    approve(app, amount_fen=152000, first_month=m("2023-06"))  # exactly at the ceiling is allowed
    assert app.get_case("U1").changes[-1].amount_fen == 152000


def test_approval_uses_the_standard_in_force_in_the_first_benefit_month(two_standards: LedgerApp) -> None:
    app = two_standards
    # 1,600.00 fits 800.00 x 2 (from July) but not 760.00 x 2 (June): the first benefit month decides,
    # not the decision date (January).
    with nothing_written(app), pytest.raises(AmountAboveStandard, match="in 2023-06"):
        approve(app, amount_fen=160000, first_month=m("2023-06"))
    approve(app, amount_fen=160000, first_month=m("2023-07"))
    events = list(app.events.get(app.get_case("U1").id))
    assert events[-1].standard_fen == 80000


def test_approval_ceiling_counts_only_persons_covered(app: LedgerApp) -> None:
    set_standard(app)
    ids = register(app, "H1", persons=3)
    open_case(app, "U1", "H1")
    verify(app)
    with nothing_written(app), pytest.raises(AmountAboveStandard, match="x 2 persons"):
        approve(app, amount_fen=152001, covered=ids[:2])
    approve(app, amount_fen=152000, covered=ids[:2])
    assert app.get_case("U1").covered == tuple(ids[:2])


def test_approval_with_documented_add_on(two_standards: LedgerApp) -> None:
    app = two_standards
    with nothing_written(app), pytest.raises(AmountAboveStandard, match=r"\+ add-on 100\.00"):
        approve(app, amount_fen=162001, add_on_fen=10000, add_on_reason="severe disability")
    approve(app, amount_fen=162000, add_on_fen=10000, add_on_reason="severe disability")
    last = list(app.events.get(app.get_case("U1").id))[-1]
    assert (last.add_on_fen, last.add_on_reason) == (10000, "severe disability")


@pytest.mark.parametrize("reason", ["", "   "])
def test_add_on_without_reason_is_refused(two_standards: LedgerApp, reason: str) -> None:
    with nothing_written(two_standards), pytest.raises(InvalidInput, match="an add-on needs a documented reason"):
        approve(two_standards, amount_fen=152000, add_on_fen=10000, add_on_reason=reason)


def test_adjustment_above_standard_is_refused_with_the_standard_of_its_from_month(two_standards: LedgerApp) -> None:
    app = two_standards
    approve(app, amount_fen=150000, first_month=JAN)
    verify(app, effective=date(2023, 6, 1))
    v = version(app)
    with nothing_written(app), pytest.raises(AmountAboveStandard, match=r"above the ceiling of 1,520\.00 yuan .* in 2023-06"):
        app.adjust("U1", amount_fen=160000, from_month=m("2023-06"), operator=APPROVER, effective=date(2023, 6, 5))
    assert version(app) == v
    app.adjust("U1", amount_fen=160000, from_month=m("2023-07"), operator=APPROVER, effective=date(2023, 6, 5))
    assert app.get_case("U1").period_at(m("2023-07")).amount_fen == 160000
    assert app.get_case("U1").period_at(m("2023-06")).amount_fen == 150000


def test_adjustment_add_on_without_reason_is_refused(app: LedgerApp) -> None:
    active_case(app)
    verify(app, effective=date(2023, 3, 1))
    with nothing_written(app), pytest.raises(InvalidInput, match="an add-on needs a documented reason"):
        app.adjust("U1", amount_fen=160000, from_month=m("2023-04"), add_on_fen=10000,
                   operator=APPROVER, effective=date(2023, 3, 5))


def test_approval_without_any_standard_in_force_is_refused(app: LedgerApp) -> None:
    set_standard(app, 76000, m("2023-07"))
    register(app, "H1")
    open_case(app, "U1", "H1")
    verify(app, effective=date(2023, 7, 1))
    with nothing_written(app), pytest.raises(AmountAboveStandard, match="no urban-dibao standard for urban areas is in force in 2023-03"):
        approve(app, amount_fen=100000, first_month=m("2023-03"), effective=date(2023, 7, 2))


def test_grant_above_ten_standards_needs_override_reason(temporary: LedgerApp) -> None:
    app = temporary
    verify(app, "T1")
    cap = 10 * URBAN_STD
    v = version(app, "T1")
    with nothing_written(app), pytest.raises(OverrideRequired, match=r"7,600\.01 yuan is above 10 times .*\(7,600\.00 yuan\); give --override-reason"):
        grant(app, amount_fen=cap + 1)
    assert version(app, "T1") == v
    grant(app, amount_fen=cap + 1, override="critical illness, committee decision 2023-4")
    case = app.get_case("T1")
    assert case.status == "granted" and case.grant["amount_fen"] == cap + 1
    last = list(app.events.get(case.id))[-1]
    assert (last.override_reason, last.standard_fen) == ("critical illness, committee decision 2023-4", URBAN_STD)


def test_grant_of_exactly_ten_standards_needs_no_override(temporary: LedgerApp) -> None:
    verify(temporary, "T1")
    grant(temporary, amount_fen=10 * URBAN_STD)
    assert temporary.get_case("T1").status == "granted"


def test_grant_cap_follows_the_standard_in_force_on_the_grant_date(temporary: LedgerApp) -> None:
    app = temporary
    set_standard(app, 80000, m("2023-07"))
    verify(app, "T1", effective=date(2023, 6, 20))
    with nothing_written(app), pytest.raises(OverrideRequired, match=r"\(7,600\.00 yuan\)"):
        grant(app, amount_fen=800000, effective=date(2023, 6, 30))
    grant(app, amount_fen=800000, effective=date(2023, 7, 1))  # 10 x 800.00 from July
    assert app.get_case("T1").grant["amount_fen"] == 800000


def test_grant_cap_uses_the_rural_standard_for_a_rural_household(app: LedgerApp) -> None:
    set_standard(app, 76000)
    set_standard(app, 50000, programme=Programme.RURAL_DIBAO, area=Area.RURAL)
    register(app, "R1", persons=2, area=Area.RURAL)
    open_case(app, "T1", "R1", programme=Programme.TEMPORARY)
    verify(app, "T1")
    with nothing_written(app), pytest.raises(OverrideRequired, match=r"\(5,000\.00 yuan\)"):
        grant(app, amount_fen=500001)
