"""Case lifecycle (transitions, retroactive decisions, periods), single-person inclusion and households."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.application import LedgerApp
from ledger.domain import Change, Period, fold_periods, payment_id
from ledger.errors import AlreadyExists, AmountAboveStandard, CaseNotActive, DuplicatePayment, InvalidInput, InvalidTransition, NotFound
from ledger.values import Area, Channel, Programme
from tests.conftest import idn
from tests.unit.ledger_helpers import (
    APPROVER,
    FINANCE,
    JAN,
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


def suspend(app: LedgerApp, month: str, case_no: str = "U1", effective: date = date(2023, 9, 1)) -> None:
    app.suspend(case_no, "did not attend review", m(month), operator=APPROVER, effective=effective)


def resume(app: LedgerApp, month: str, case_no: str = "U1", effective: date = date(2023, 9, 1)) -> None:
    app.resume(case_no, m(month), operator=APPROVER, effective=effective)


def terminate(app: LedgerApp, month: str, case_no: str = "U1", effective: date = date(2023, 9, 1)) -> None:
    app.terminate(case_no, "moved away", m(month), operator=APPROVER, effective=effective)


def adjust(app: LedgerApp, amount_fen: int, month: str, effective: date, case_no: str = "U1", **kw: object) -> None:
    verify(app, case_no, effective=effective)
    app.adjust(case_no, amount_fen=amount_fen, from_month=m(month), operator=APPROVER, effective=effective, **kw)


def shape(app: LedgerApp, case_no: str = "U1") -> list[tuple[str, str | None, str, int]]:
    return [
        (str(p.from_month), str(p.to_month) if p.to_month else None, p.status, p.amount_fen)
        for p in app.get_case(case_no).periods()
    ]


# =================================================================== transitions refused


def test_resume_an_active_case_is_refused(app: LedgerApp) -> None:
    active_case(app)
    v = app.get_case("U1").version
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is active; cannot resume"):
        resume(app, "2023-03")
    assert app.get_case("U1").version == v


def test_suspend_a_terminated_case_is_refused(app: LedgerApp) -> None:
    active_case(app)
    terminate(app, "2023-05")
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is terminated; cannot suspend"):
        suspend(app, "2023-06")


def test_suspend_twice_is_refused(app: LedgerApp) -> None:
    active_case(app)
    suspend(app, "2023-05")
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is suspended; cannot suspend"):
        suspend(app, "2023-06")


def test_terminate_twice_is_refused(app: LedgerApp) -> None:
    active_case(app)
    terminate(app, "2023-05")
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is terminated; cannot terminate"):
        terminate(app, "2023-04")


def test_approve_twice_is_refused(app: LedgerApp) -> None:
    active_case(app)
    verify(app, effective=date(2023, 2, 1))
    v = app.get_case("U1").version
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is active; cannot approve"):
        approve(app, amount_fen=100000, effective=date(2023, 2, 2))
    assert app.get_case("U1").version == v


def test_reject_an_approved_case_is_refused(app: LedgerApp) -> None:
    active_case(app)
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is active; cannot reject"):
        app.reject("U1", "changed our mind", operator=APPROVER, effective=D)


def test_approve_a_rejected_case_is_refused(app: LedgerApp) -> None:
    set_standard(app)
    register(app)
    open_case(app)
    verify(app)
    app.reject("U1", "assets above limit", operator=APPROVER, effective=D)
    assert app.get_case("U1").status == "rejected"
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is rejected; cannot approve"):
        approve(app)


def test_reject_needs_a_reason(app: LedgerApp) -> None:
    set_standard(app)
    register(app)
    open_case(app)
    with nothing_written(app), pytest.raises(InvalidInput, match="a rejection needs a reason"):
        app.reject("U1", "  ", operator=APPROVER, effective=D)


def test_suspend_and_terminate_need_a_reason(app: LedgerApp) -> None:
    active_case(app)
    with nothing_written(app), pytest.raises(InvalidInput, match="a suspension needs a reason"):
        app.suspend("U1", "", m("2023-03"), operator=APPROVER, effective=D)
    with nothing_written(app), pytest.raises(InvalidInput, match="a termination needs a reason"):
        app.terminate("U1", " ", m("2023-03"), operator=APPROVER, effective=D)


def test_resume_must_be_after_the_suspension_month(app: LedgerApp) -> None:
    active_case(app)
    suspend(app, "2023-05")
    with nothing_written(app), pytest.raises(InvalidInput, match="suspended from 2023-05; resume from a later month"):
        resume(app, "2023-05")


def test_decisions_before_the_first_benefit_month_are_refused(app: LedgerApp) -> None:
    active_case(app, first_month=m("2023-03"))
    with nothing_written(app), pytest.raises(InvalidInput, match="2023-02 is before the first benefit month 2023-03"):
        suspend(app, "2023-02")
    with nothing_written(app), pytest.raises(InvalidInput, match="2023-02 is before the first benefit month 2023-03"):
        terminate(app, "2023-02")


def test_first_benefit_month_before_the_application_is_refused(app: LedgerApp) -> None:
    set_standard(app)
    register(app)
    open_case(app, effective=date(2023, 3, 10))
    verify(app, effective=date(2023, 3, 11))
    with nothing_written(app), pytest.raises(InvalidInput, match="first benefit month 2023-02 is before the application"):
        approve(app, first_month=m("2023-02"), effective=date(2023, 3, 12))


def test_temporary_case_cannot_be_paid_monthly_or_approved_monthly(app: LedgerApp) -> None:
    set_standard(app)
    register(app)
    open_case(app, "T1", programme=Programme.TEMPORARY)
    verify(app, "T1")
    with nothing_written(app), pytest.raises(InvalidTransition, match="case T1 is temporary assistance; cannot approve"):
        approve(app, "T1")
    with nothing_written(app), pytest.raises(InvalidTransition, match="temporary assistance; cannot be paid monthly"):
        issue(app, "T1", JAN)


def test_grant_paid_twice_is_a_duplicate_payment(app: LedgerApp) -> None:
    set_standard(app)
    register(app)
    open_case(app, "T1", programme=Programme.TEMPORARY)
    verify(app, "T1")
    with nothing_written(app), pytest.raises(InvalidTransition, match="case T1 is applied; cannot pay a grant"):
        app.pay_grant("T1", operator=FINANCE, effective=D)
    app.approve_grant("T1", grant_type="fire", amount_fen=150000, reason="house fire", operator=APPROVER, effective=D)
    app.pay_grant("T1", operator=FINANCE, effective=date(2023, 1, 6))
    case = app.get_case("T1")
    assert case.status == "paid" and case.grant["paid_on"] == date(2023, 1, 6)
    v = case.version
    with nothing_written(app), pytest.raises(DuplicatePayment, match="the grant of case T1 is already paid"):
        app.pay_grant("T1", operator=FINANCE, effective=date(2023, 1, 7))
    assert app.get_case("T1").version == v
    with nothing_written(app), pytest.raises(InvalidTransition, match="case T1 is paid; cannot approve a grant"):
        app.approve_grant("T1", grant_type="fire", amount_fen=100000, reason="again", operator=APPROVER, effective=D)


def test_grant_on_a_monthly_case_is_refused(app: LedgerApp) -> None:
    set_standard(app)
    register(app)
    open_case(app)
    verify(app)
    with nothing_written(app), pytest.raises(InvalidTransition, match="grants are for temporary assistance cases"):
        app.approve_grant("U1", grant_type="fire", amount_fen=1000, reason="x", operator=APPROVER, effective=D)


def test_bank_return_and_settlement_transitions(app: LedgerApp) -> None:
    active_case(app)
    ref = issue(app, "U1", JAN)
    app.settle_payment(ref, operator=FINANCE, effective=date(2023, 2, 3))
    with nothing_written(app), pytest.raises(InvalidTransition, match="payment P-U1-202301-1 is already settled"):
        app.settle_payment(ref, operator=FINANCE, effective=date(2023, 2, 4))
    with nothing_written(app), pytest.raises(InvalidTransition, match="already settled; the bank can return an issued payment only"):
        app.return_payment(ref, "account closed", operator=FINANCE, effective=date(2023, 2, 4))
    with nothing_written(app), pytest.raises(NotFound, match="no payment P-U1-202302-1"):
        app.settle_payment("P-U1-202302-1", operator=FINANCE, effective=date(2023, 2, 4))
    with nothing_written(app), pytest.raises(InvalidInput, match="invalid payment reference"):
        app.settle_payment("U1-202301", operator=FINANCE, effective=date(2023, 2, 4))


# =================================================================== retroactive decisions and periods


def test_approve_jan_suspend_may_resume_jul_retro_terminate_mar(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000, first_month=JAN)
    suspend(app, "2023-05", effective=date(2023, 5, 3))
    resume(app, "2023-07", effective=date(2023, 7, 3))
    assert shape(app) == [
        ("2023-01", "2023-05", "active", 120000),
        ("2023-05", "2023-07", "suspended", 120000),
        ("2023-07", None, "active", 120000),
    ]
    terminate(app, "2023-03", effective=date(2023, 8, 20))  # recorded in August, takes effect in March
    case = app.get_case("U1")
    assert case.status == "terminated"
    assert case.terminated_from == m("2023-03")
    assert shape(app) == [("2023-01", "2023-03", "active", 120000), ("2023-03", None, "terminated", 120000)]
    expected = {"2022-12": "not yet active", "2023-01": "active", "2023-02": "active", "2023-03": "terminated",
                "2023-05": "terminated", "2023-07": "terminated", "2024-01": "terminated"}
    assert {k: case.status_at(m(k)) for k in expected} == expected
    # The retroactive decision is recorded with both times: effective March, decided in August.
    last = list(app.events.get(case.id))[-1]
    assert (type(last).__name__, last.from_month, last.effective) == ("Terminated", m("2023-03"), date(2023, 8, 20))


def test_retroactive_suspension_is_recorded_and_stops_payments_from_its_month(app: LedgerApp) -> None:
    active_case(app)
    issue(app, "U1", m("2023-02"))
    suspend(app, "2023-02", effective=date(2023, 4, 15))  # already paid month: recorded anyway (rule 6)
    case = app.get_case("U1")
    assert case.status == "suspended" and case.suspended_from == m("2023-02")
    assert shape(app) == [("2023-01", "2023-02", "active", 120000), ("2023-02", None, "suspended", 120000)]
    assert case.status_at(m("2023-04")) == "suspended"


def test_adjustments_mid_way_and_a_retroactive_adjustment(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    suspend(app, "2023-05", effective=date(2023, 5, 2))
    resume(app, "2023-07", effective=date(2023, 7, 2))
    adjust(app, 110000, "2023-03", effective=date(2023, 7, 10))  # retroactive, recorded after the others
    assert shape(app) == [
        ("2023-01", "2023-03", "active", 120000),
        ("2023-03", "2023-05", "active", 110000),
        ("2023-05", "2023-07", "suspended", 110000),
        ("2023-07", None, "active", 110000),
    ]
    adjust(app, 100000, "2023-09", effective=date(2023, 8, 20))  # and one ahead of time
    assert shape(app)[-2:] == [("2023-07", "2023-09", "active", 110000), ("2023-09", None, "active", 100000)]
    case = app.get_case("U1")
    assert case.amount_fen == case.period_at(m("2023-12")).amount_fen == 100000
    assert case.status_at(m("2023-06")) == "suspended"
    # A payment takes the amount of its own benefit month.
    issue(app, "U1", m("2023-02"))
    issue(app, "U1", m("2023-04"))
    issue(app, "U1", m("2023-09"))
    paid = [app.repository.get(payment_id("U1", m(x), 1)).amount_fen for x in ("2023-02", "2023-04", "2023-09")]
    assert paid == [120000, 110000, 100000]


def test_adjustment_while_suspended_applies_when_resumed(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    suspend(app, "2023-03", effective=date(2023, 3, 2))
    adjust(app, 90000, "2023-04", effective=date(2023, 3, 20))
    resume(app, "2023-05", effective=date(2023, 5, 2))
    assert shape(app) == [
        ("2023-01", "2023-03", "active", 120000),
        ("2023-03", "2023-04", "suspended", 120000),
        ("2023-04", "2023-05", "suspended", 90000),
        ("2023-05", None, "active", 90000),
    ]


def test_adjustment_to_the_same_amount_is_refused(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    verify(app, effective=date(2023, 3, 1))
    with nothing_written(app), pytest.raises(InvalidInput, match=r"already receives 1,200\.00 yuan"):
        app.adjust("U1", amount_fen=120000, from_month=m("2023-04"), operator=APPROVER, effective=date(2023, 3, 2))


def test_adjustment_of_a_terminated_case_is_refused(app: LedgerApp) -> None:
    active_case(app)
    terminate(app, "2023-03")
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is terminated; cannot adjust the amount"):
        app.adjust("U1", amount_fen=90000, from_month=m("2023-02"), operator=APPROVER, effective=date(2023, 9, 2))
    with nothing_written(app), pytest.raises(InvalidTransition, match="case U1 is terminated; cannot record a verification"):
        verify(app, effective=date(2023, 9, 2))


def test_fold_periods_folds_decisions_into_periods() -> None:
    a, b = idn(1), idn(2)
    changes = [
        Change(m("2023-01"), 2, "approved", 100, (a, b)),
        Change(m("2023-06"), 3, "suspended"),
        Change(m("2023-04"), 5, "adjusted", 80, (a,)),
        Change(m("2023-04"), 7, "adjusted", 90, (a,)),  # same month, recorded later: wins
        Change(m("2023-08"), 9, "resumed"),
    ]
    assert fold_periods(changes) == [
        Period(m("2023-01"), m("2023-04"), "active", 100, (a, b)),
        Period(m("2023-04"), m("2023-06"), "active", 90, (a,)),
        Period(m("2023-06"), m("2023-08"), "suspended", 90, (a,)),
        Period(m("2023-08"), None, "active", 90, (a,)),
    ]
    assert fold_periods([]) == []


def test_fold_periods_merges_decisions_that_change_nothing() -> None:
    a = idn(1)
    changes = [
        Change(m("2023-01"), 2, "approved", 100, (a,)),
        Change(m("2023-03"), 3, "resumed"),  # not suspended: ignored
        Change(m("2023-05"), 4, "adjusted", 100, (a,)),  # same amount and persons: no new period
    ]
    assert fold_periods(changes) == [Period(m("2023-01"), None, "active", 100, (a,))]


def test_retroactive_suspension_recorded_after_a_resume_stops_payments(app: LedgerApp) -> None:
    active_case(app)
    suspend(app, "2023-05", effective=date(2023, 5, 3))
    resume(app, "2023-07", effective=date(2023, 7, 3))
    suspend(app, "2023-06", effective=date(2023, 8, 20))  # recorded in August: suspended from June on
    case = app.get_case("U1")
    assert case.status == "suspended" and case.suspended_from == m("2023-06")
    assert case.status_at(m("2023-08")) == case.status  # the fold must agree with the case
    before = written(app)
    with pytest.raises(CaseNotActive, match="not active in 2023-08"):
        issue(app, "U1", m("2023-08"))
    assert written(app) == before


def test_later_recorded_earlier_effective_adjustment_is_the_current_amount(app: LedgerApp) -> None:
    active_case(app, amount_fen=120000)
    adjust(app, 100000, "2023-06", effective=date(2023, 5, 10))
    adjust(app, 110000, "2023-03", effective=date(2023, 5, 20))  # correction recorded later, from March on
    case = app.get_case("U1")
    assert case.amount_fen == 110000
    assert case.period_at(m("2023-08")).amount_fen == case.amount_fen


# =================================================================== single-person inclusion


@pytest.fixture
def ill_member(app: LedgerApp) -> list[str]:
    """Household H1 of three: head flagged ill, other members without flags."""
    set_standard(app)
    return register(app, "H1", persons=3, head_flags=("ill",))


def test_single_person_inclusion_covers_only_that_person(app: LedgerApp, ill_member: list[str]) -> None:
    open_case(app, "S1", "H1", single_person=ill_member[0])
    verify(app, "S1")
    # The ceiling is one person's standard, not the household's.
    with nothing_written(app), pytest.raises(AmountAboveStandard, match="x 1 persons"):
        approve(app, "S1", amount_fen=76001)
    approve(app, "S1", amount_fen=76000)
    case = app.get_case("S1")
    assert case.single_person == ill_member[0]
    assert case.covered == (ill_member[0],)
    assert case.persons_at_approval == 1
    issue(app, "S1", JAN)
    assert app.repository.get(payment_id("S1", JAN, 1)).persons == 1


def test_single_person_approval_covering_others_is_refused(app: LedgerApp, ill_member: list[str]) -> None:
    open_case(app, "S1", "H1", single_person=ill_member[0])
    verify(app, "S1")
    with nothing_written(app), pytest.raises(InvalidInput, match="single-person inclusion; it covers .* only"):
        approve(app, "S1", amount_fen=76000, covered=ill_member[:2])


def test_single_person_inclusion_for_disabled_member(app: LedgerApp) -> None:
    set_standard(app)
    ids = register(app, "H1", persons=2, other_flags=("disabled",))
    open_case(app, "S1", "H1", single_person=ids[1])
    assert app.get_case("S1").single_person == ids[1]


@pytest.mark.parametrize("flags", [(), ("elderly",), ("minor",)])
def test_single_person_inclusion_refused_for_member_neither_ill_nor_disabled(app: LedgerApp, flags: tuple[str, ...]) -> None:
    set_standard(app)
    ids = register(app, "H1", persons=2, other_flags=flags)
    with nothing_written(app), pytest.raises(InvalidInput, match="single-person inclusion is for a seriously ill or severely disabled member"):
        open_case(app, "S1", "H1", single_person=ids[1])


def test_single_person_inclusion_refused_for_a_deceased_member(app: LedgerApp, ill_member: list[str]) -> None:
    app.record_death("H1", ill_member[0], operator=VERIFIER, effective=D)
    with nothing_written(app), pytest.raises(InvalidInput, match="is deceased; cannot apply alone"):
        open_case(app, "S1", "H1", single_person=ill_member[0])


def test_single_person_inclusion_refused_for_a_stranger(app: LedgerApp, ill_member: list[str]) -> None:
    with nothing_written(app), pytest.raises(InvalidInput, match="household H1 has no member with identity number"):
        open_case(app, "S1", "H1", single_person=idn(900))


def test_single_person_adjustment_covering_others_is_refused(app: LedgerApp, ill_member: list[str]) -> None:
    open_case(app, "S1", "H1", single_person=ill_member[0])
    verify(app, "S1")
    approve(app, "S1", amount_fen=70000)
    verify(app, "S1", effective=date(2023, 3, 1))
    before = written(app)
    with pytest.raises(InvalidInput, match="single-person inclusion"):
        app.adjust("S1", amount_fen=150000, covered=ill_member[:2], from_month=m("2023-04"),
                   operator=APPROVER, effective=date(2023, 3, 2))
    assert written(app) == before


# =================================================================== households


def member(n: int, relation: str = "child", **kw: object) -> dict[str, object]:
    return {"id_number": idn(n), "name": f"Person {n}", "relation": relation, **kw}


def register_members(app: LedgerApp, members: list[dict[str, object]], number: str = "H9") -> str:
    return app.register_household(number=number, community="Xijie", area=Area.URBAN, members=members,
                                  payee_account="6222", operator=VERIFIER, effective=D)


def test_household_is_registered_with_its_members(app: LedgerApp) -> None:
    assert register_members(app, [member(1, "head", flags="ill+disabled"), member(2, "spouse")]) == "H9"
    h = app.get_household("H9")
    assert h.payee_name == "Person 1"  # defaults to the head
    assert h.living_members() == [idn(1), idn(2)]
    assert h.members[idn(1)]["flags"] == ["disabled", "ill"]
    assert h.members[idn(1)]["status"] == "present"


@pytest.mark.parametrize(
    "members",
    [
        [member(1, "spouse"), member(2, "child")],
        [member(1, "head"), member(2, "head")],
    ],
    ids=["no head", "two heads"],
)
def test_household_needs_exactly_one_head(app: LedgerApp, members: list[dict[str, object]]) -> None:
    with nothing_written(app), pytest.raises(InvalidInput, match="household H9 must have exactly one member with relation 'head'"):
        register_members(app, members)


def test_household_refuses_the_same_identity_number_twice(app: LedgerApp) -> None:
    first = next(n for n in range(1, 100) if idn(n).endswith("X"))
    twin = dict(member(first, "child"), id_number=idn(first).lower())  # same number, lower-case x
    with nothing_written(app), pytest.raises(InvalidInput, match="household H9 lists the same identity number twice"):
        register_members(app, [member(first, "head"), twin])


def test_household_refuses_invalid_member_data(app: LedgerApp) -> None:
    with nothing_written(app), pytest.raises(InvalidInput, match="check digit does not match"):
        register_members(app, [dict(member(1, "head"), id_number=idn(1)[:17] + ("1" if idn(1)[17] != "1" else "2"))])
    with nothing_written(app), pytest.raises(InvalidInput, match="invalid relation 'boss'"):
        register_members(app, [member(1, "boss")])
    with nothing_written(app), pytest.raises(InvalidInput, match="invalid flag 'poor'"):
        register_members(app, [member(1, "head", flags=["poor"])])
    with nothing_written(app), pytest.raises(InvalidInput, match="has no members"):
        register_members(app, [])


def test_death_recorded_twice_is_refused(app: LedgerApp) -> None:
    register_members(app, [member(1, "head"), member(2)])
    app.record_death("H9", idn(2), operator=VERIFIER, effective=date(2023, 3, 1))
    h = app.get_household("H9")
    assert h.members[idn(2)]["status"] == "deceased" and h.members[idn(2)]["until"] == "2023-03-01"
    assert h.living_members() == [idn(1)]
    with nothing_written(app), pytest.raises(InvalidTransition, match="already recorded as deceased"):
        app.record_death("H9", idn(2), operator=VERIFIER, effective=date(2023, 3, 2))


def test_member_rules(app: LedgerApp) -> None:
    register_members(app, [member(1, "head"), member(2)])
    with nothing_written(app), pytest.raises(InvalidInput, match="already has member"):
        app.add_member("H9", member(2), operator=VERIFIER, effective=D)
    with nothing_written(app), pytest.raises(InvalidInput, match="a household has one head"):
        app.add_member("H9", member(3, "head"), operator=VERIFIER, effective=D)
    app.remove_member("H9", idn(2), "married out", operator=VERIFIER, effective=D)
    with nothing_written(app), pytest.raises(InvalidTransition, match="is already removed"):
        app.remove_member("H9", idn(2), "again", operator=VERIFIER, effective=D)
    with nothing_written(app), pytest.raises(InvalidInput, match="has no member with identity number"):
        app.record_death("H9", idn(3), operator=VERIFIER, effective=D)
    app.add_member("H9", member(3), operator=VERIFIER, effective=D)
    assert app.get_household("H9").living_members() == [idn(1), idn(3)]


def test_removed_or_deceased_member_cannot_be_covered(app: LedgerApp) -> None:
    set_standard(app)
    ids = register(app, "H1", persons=3)
    app.record_death("H1", ids[2], operator=VERIFIER, effective=D)
    open_case(app)
    verify(app)
    with nothing_written(app), pytest.raises(InvalidInput, match="is deceased; cannot be covered"):
        approve(app, amount_fen=100000, covered=ids)
    approve(app, amount_fen=100000)  # default: the living members
    assert app.get_case("U1").covered == tuple(ids[:2])


def test_household_move_and_programme_area_must_match(app: LedgerApp) -> None:
    set_standard(app)
    register(app, "H1", persons=1)
    with nothing_written(app), pytest.raises(InvalidInput, match="household H1 is urban; it applies for urban-dibao"):
        open_case(app, "R1", "H1", programme=Programme.RURAL_DIBAO)
    with nothing_written(app), pytest.raises(InvalidTransition, match="household H1 is already urban"):
        app.move_household("H1", Area.URBAN, operator=VERIFIER, effective=D)
    app.move_household("H1", Area.RURAL, operator=VERIFIER, effective=D)
    open_case(app, "R1", "H1", programme=Programme.RURAL_DIBAO)
    assert app.get_case("R1").area is Area.RURAL


# =================================================================== natural keys: AlreadyExists, NotFound


def test_registering_the_same_household_twice_is_refused(app: LedgerApp) -> None:
    register(app, "H1", persons=1)
    with nothing_written(app), pytest.raises(AlreadyExists, match="household H1 is already recorded"):
        register(app, "H1", persons=2, first_person=40)
    assert app.get_household("H1").living_members() == [idn(1)]


def test_opening_the_same_case_number_twice_is_refused(app: LedgerApp) -> None:
    set_standard(app)
    register(app, "H1", persons=1)
    register(app, "H2", persons=1, first_person=40)
    open_case(app, "U1", "H1")
    with nothing_written(app), pytest.raises(AlreadyExists, match="case U1 is already recorded"):
        open_case(app, "U1", "H2")
    with nothing_written(app), pytest.raises(AlreadyExists, match=r"case\s+U1\s+is already recorded"):
        app.apply(case_no=" U1 ", household_no="H2", programme=Programme.URBAN_DIBAO, channel=Channel.WINDOW,
                  operator=VERIFIER, effective=D)
    assert app.get_case("U1").household_no == "H1"


def test_unknown_case_household_are_not_found(app: LedgerApp) -> None:
    with nothing_written(app), pytest.raises(NotFound, match="no case X9"):
        verify(app, "X9")
    with nothing_written(app), pytest.raises(NotFound, match="no case X9"):
        issue(app, "X9", JAN)
    with nothing_written(app), pytest.raises(NotFound, match="no case X9"):
        app.get_case("X9")
    with nothing_written(app), pytest.raises(NotFound, match="no household H404"):
        open_case(app, "U1", "H404")
    with nothing_written(app), pytest.raises(NotFound, match="no household H404"):
        app.record_death("H404", idn(1), operator=VERIFIER, effective=D)
