"""Every aggregate survives a save and reload unchanged, and its events carry who, when effective, when recorded."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any
from uuid import UUID

import pytest

from ledger.application import LedgerApp, UnitOfWork
from ledger.domain import Case, Household, Payment, Standard, case_id, household_id, payment_id, standard_id
from ledger.values import Area, Channel, Programme
from tests.conftest import idn
from tests.unit.ledger_helpers import APPROVER, FINANCE, VERIFIER, m, written

LEDGER_EVENT_FIELDS = ("operator", "effective", "timestamp")


def state(aggregate: Any) -> dict[str, Any]:
    """Everything an aggregate holds, except the (empty after saving) list of pending events."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def assert_round_trip(app: LedgerApp, uow: UnitOfWork, aggregate_id: UUID, cls: type) -> Any:
    before = uow.find(aggregate_id)
    assert isinstance(before, cls)
    assert before.pending_events == []  # the unit of work has committed
    reloaded = app.repository.get(aggregate_id)
    assert type(reloaded) is cls
    assert reloaded is not before
    assert state(reloaded) == state(before)
    return reloaded


def assert_events_carry_who_and_when(app: LedgerApp, aggregate_id: UUID, started: datetime, expected: list[tuple[str, str, date]]) -> list[Any]:
    events = list(app.events.get(aggregate_id))
    assert [(type(e).__name__, e.operator, e.effective) for e in events] == expected
    finished = datetime.now(timezone.utc)
    for e in events:
        assert isinstance(e.timestamp, datetime) and e.timestamp.tzinfo is not None
        assert started <= e.timestamp <= finished
        assert isinstance(e.effective, date) and not isinstance(e.effective, datetime)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    return events


def stored_state(app: LedgerApp, aggregate_id: UUID) -> list[dict[str, Any]]:
    """The events as the event store holds them (JSON)."""
    return [json.loads(s.state) for s in app.recorder.select_events(aggregate_id)]


@pytest.fixture
def started() -> datetime:
    return datetime.now(timezone.utc)


def test_household_round_trip(app: LedgerApp, started: datetime) -> None:
    uow = app.unit_of_work()
    members = [
        {"id_number": idn(1), "name": "王大", "relation": "head", "flags": ["disabled"]},
        {"id_number": idn(2), "name": "王二", "relation": "spouse"},
        {"id_number": idn(3), "name": "王三", "relation": "child", "flags": "minor"},
    ]
    app.register_household(number="H1", community="西街", area=Area.URBAN, members=members, payee_account="6222-1",
                           operator=VERIFIER, effective=date(2023, 1, 5), uow=uow)
    app.add_member("H1", {"id_number": idn(4), "name": "王四", "relation": "parent", "flags": ["elderly", "ill"]},
                   operator=VERIFIER, effective=date(2023, 2, 1), uow=uow)
    app.remove_member("H1", idn(3), "married out", operator=VERIFIER, effective=date(2023, 3, 1), uow=uow)
    app.record_death("H1", idn(4), operator=APPROVER, effective=date(2023, 4, 1), uow=uow)
    app.move_household("H1", Area.RURAL, operator=APPROVER, effective=date(2023, 5, 1), uow=uow)
    app.change_account("H1", "王二", "6222-2", operator=APPROVER, effective=date(2023, 6, 1), uow=uow)
    uow.commit()

    h = assert_round_trip(app, uow, household_id("H1"), Household)
    assert h.area is Area.RURAL
    assert (h.payee_name, h.payee_account) == ("王二", "6222-2")
    assert h.living_members() == [idn(1), idn(2)]
    assert h.members[idn(3)]["status"] == "removed" and h.members[idn(4)]["status"] == "deceased"
    assert h.registered_on == date(2023, 1, 5)
    assert_events_carry_who_and_when(app, h.id, started, [
        ("Registered", VERIFIER, date(2023, 1, 5)),
        ("MemberAdded", VERIFIER, date(2023, 2, 1)),
        ("MemberRemoved", VERIFIER, date(2023, 3, 1)),
        ("MemberDeceased", APPROVER, date(2023, 4, 1)),
        ("AreaChanged", APPROVER, date(2023, 5, 1)),
        ("AccountChanged", APPROVER, date(2023, 6, 1)),
    ])
    raw = stored_state(app, h.id)
    assert raw[0]["effective"] == {"_type_": "date", "_data_": "2023-01-05"}
    assert raw[4]["area"] == {"_type_": "area", "_data_": "rural"}


def test_standard_round_trip(app: LedgerApp, started: datetime) -> None:
    uow = app.unit_of_work()
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, m("2022-01"), operator=APPROVER, effective=date(2021, 12, 20), uow=uow)
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 80000, m("2023-07"), operator=APPROVER, effective=date(2023, 6, 20), uow=uow)
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 79000, m("2023-07"), operator="zhao.lei", effective=date(2023, 6, 25), uow=uow)
    uow.commit()

    s = assert_round_trip(app, uow, standard_id(Programme.URBAN_DIBAO, Area.URBAN), Standard)
    assert s.history == [(m("2022-01"), 76000), (m("2023-07"), 79000)]  # the later setting for July replaced the earlier
    assert [s.in_force(m(x)) for x in ("2021-12", "2022-01", "2023-06", "2023-07", "2030-01")] == [None, 76000, 76000, 79000, 79000]
    events = assert_events_carry_who_and_when(app, s.id, started, [
        ("Created", APPROVER, date(2021, 12, 20)),
        ("Set", APPROVER, date(2021, 12, 20)),
        ("Set", APPROVER, date(2023, 6, 20)),
        ("Set", "zhao.lei", date(2023, 6, 25)),
    ])
    assert [e.amount_fen for e in events[1:]] == [76000, 80000, 79000]  # both July settings stay in the log
    raw = stored_state(app, s.id)
    assert raw[2]["amount_fen"] == 80000 and type(raw[2]["amount_fen"]) is int
    assert raw[2]["from_month"] == {"_type_": "month", "_data_": "2023-07"}
    # The rural standard of the same programme is another aggregate.
    assert standard_id(Programme.URBAN_DIBAO, Area.RURAL) != s.id


def build_case(app: LedgerApp, uow: UnitOfWork) -> None:
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, m("2022-01"), operator=APPROVER, effective=date(2022, 1, 1), uow=uow)
    members = [{"id_number": idn(i), "name": f"P{i}", "relation": "head" if i == 1 else "child"} for i in (1, 2, 3)]
    app.register_household(number="H1", community="c", area=Area.URBAN, members=members, payee_account="6222",
                           operator=VERIFIER, effective=date(2023, 1, 3), uow=uow)
    app.apply(case_no="U1", household_no="H1", programme=Programme.URBAN_DIBAO, channel=Channel.OUTREACH,
              operator=VERIFIER, effective=date(2023, 1, 3), uow=uow)
    app.verify("U1", income_fen=20000, assets_ok=True, verifier="sun.li", valid_until=date(2023, 6, 30),
               operator=VERIFIER, effective=date(2023, 1, 4), uow=uow)
    app.approve("U1", amount_fen=200000, first_month=m("2023-01"), add_on_fen=10000, add_on_reason="disability",
                operator=APPROVER, effective=date(2023, 1, 5), uow=uow)
    app.verify("U1", income_fen=30000, assets_ok=True, verifier="sun.li", valid_until=date(2023, 9, 30),
               operator=VERIFIER, effective=date(2023, 3, 1), uow=uow)
    app.adjust("U1", amount_fen=140000, covered=[idn(1), idn(2)], from_month=m("2023-04"),
               operator=APPROVER, effective=date(2023, 3, 5), uow=uow)
    app.suspend("U1", "review missed", m("2023-06"), operator=APPROVER, effective=date(2023, 6, 2), uow=uow)
    app.resume("U1", m("2023-08"), operator=APPROVER, effective=date(2023, 8, 2), uow=uow)
    app.terminate("U1", "moved away", m("2023-07"), operator=APPROVER, effective=date(2023, 9, 1), uow=uow)


def test_case_round_trip(app: LedgerApp, started: datetime) -> None:
    uow = app.unit_of_work()
    build_case(app, uow)
    uow.commit()

    c = assert_round_trip(app, uow, case_id("U1"), Case)
    assert (c.status, c.programme, c.channel, c.area) == ("terminated", Programme.URBAN_DIBAO, Channel.OUTREACH, Area.URBAN)
    assert (c.amount_fen, c.covered, c.persons_at_approval, c.first_month) == (140000, (idn(1), idn(2)), 3, m("2023-01"))
    assert [(v.no, v.verifier, v.passed, v.standard_fen) for v in c.verifications] == [(1, "sun.li", True, 76000), (2, "sun.li", True, 76000)]
    assert [(str(p.from_month), p.status, p.amount_fen, len(p.covered)) for p in c.periods()] == [
        ("2023-01", "active", 200000, 3),
        ("2023-04", "active", 140000, 2),
        ("2023-06", "suspended", 140000, 2),
        ("2023-07", "terminated", 140000, 2),
    ]
    events = assert_events_carry_who_and_when(app, c.id, started, [
        ("Applied", VERIFIER, date(2023, 1, 3)),
        ("Verified", VERIFIER, date(2023, 1, 4)),
        ("Approved", APPROVER, date(2023, 1, 5)),
        ("Verified", VERIFIER, date(2023, 3, 1)),
        ("AmountAdjusted", APPROVER, date(2023, 3, 5)),
        ("Suspended", APPROVER, date(2023, 6, 2)),
        ("Resumed", APPROVER, date(2023, 8, 2)),
        ("Terminated", APPROVER, date(2023, 9, 1)),
    ])
    # Who approved, on what verification, under which standard (the auditor's question).
    approved = events[2]
    assert (approved.verification_no, approved.standard_fen, approved.add_on_fen, approved.first_month) == (1, 76000, 10000, m("2023-01"))
    assert events[4].verification_no == 2
    assert events[1].verifier == "sun.li" and events[1].valid_until == date(2023, 6, 30)
    raw = stored_state(app, c.id)
    assert raw[0]["programme"] == {"_type_": "programme", "_data_": "urban-dibao"}
    assert raw[0]["channel"] == {"_type_": "channel", "_data_": "outreach"}
    assert raw[2]["amount_fen"] == 200000 and type(raw[2]["amount_fen"]) is int


def test_temporary_case_round_trip(app: LedgerApp, started: datetime) -> None:
    uow = app.unit_of_work()
    app.set_standard(Programme.RURAL_DIBAO, Area.RURAL, 50000, m("2022-01"), operator=APPROVER, effective=date(2022, 1, 1), uow=uow)
    app.register_household(number="R1", community="c", area=Area.RURAL, payee_account="6228",
                           members=[{"id_number": idn(7), "name": "P7", "relation": "head"}],
                           operator=VERIFIER, effective=date(2023, 2, 1), uow=uow)
    app.apply(case_no="T1", household_no="R1", programme=Programme.TEMPORARY, channel=Channel.REFERRAL,
              operator=VERIFIER, effective=date(2023, 2, 1), uow=uow)
    app.verify("T1", income_fen=0, assets_ok=True, verifier=VERIFIER, valid_until=date(2023, 2, 28),
               operator=VERIFIER, effective=date(2023, 2, 1), uow=uow)
    app.approve_grant("T1", grant_type="medical", amount_fen=600000, reason="surgery", override_reason="committee 7",
                      operator=APPROVER, effective=date(2023, 2, 3), uow=uow)
    app.pay_grant("T1", operator=FINANCE, effective=date(2023, 2, 4), uow=uow)
    uow.commit()

    c = assert_round_trip(app, uow, case_id("T1"), Case)
    assert c.status == "paid"
    assert c.grant == {"type": "medical", "amount_fen": 600000, "reason": "surgery",
                       "approved_on": date(2023, 2, 3), "paid_on": date(2023, 2, 4)}
    events = assert_events_carry_who_and_when(app, c.id, started, [
        ("Applied", VERIFIER, date(2023, 2, 1)),
        ("Verified", VERIFIER, date(2023, 2, 1)),
        ("GrantApproved", APPROVER, date(2023, 2, 3)),
        ("GrantPaid", FINANCE, date(2023, 2, 4)),
    ])
    assert (events[2].override_reason, events[2].standard_fen) == ("committee 7", 50000)
    assert (events[3].payee_name, events[3].payee_account) == ("P7", "6228")


def test_payment_round_trip(app: LedgerApp, started: datetime) -> None:
    uow = app.unit_of_work()
    build_case(app, uow)
    uow.commit()
    uow = app.unit_of_work()
    jan, may = m("2023-01"), m("2023-05")
    app.issue_payment("U1", jan, batch="B2023-01", operator=FINANCE, effective=date(2023, 1, 25), uow=uow)
    app.return_payment("P-U1-202301-1", "account frozen", operator=FINANCE, effective=date(2023, 1, 28), uow=uow)
    app.change_account("H1", "P1", "6222-new", operator=VERIFIER, effective=date(2023, 1, 29), uow=uow)
    app.issue_payment("U1", jan, batch="B2023-01R", operator=FINANCE, effective=date(2023, 2, 1), uow=uow)
    app.settle_payment("P-U1-202301-2", operator=FINANCE, effective=date(2023, 2, 3), uow=uow)
    app.issue_payment("U1", may, operator=FINANCE, effective=date(2023, 5, 25), uow=uow)
    uow.commit()

    p1 = assert_round_trip(app, uow, payment_id("U1", jan, 1), Payment)
    p2 = assert_round_trip(app, uow, payment_id("U1", jan, 2), Payment)
    p3 = assert_round_trip(app, uow, payment_id("U1", may, 1), Payment)
    assert (p1.ref, p1.status, p1.return_reason, p1.payee_account, p1.batch) == ("P-U1-202301-1", "returned", "account frozen", "6222", "B2023-01")
    assert (p2.ref, p2.status, p2.issue_no, p2.payee_account) == ("P-U1-202301-2", "settled", 2, "6222-new")  # account as of issue
    assert (p1.amount_fen, p1.persons, p1.programme, p1.area, p1.household_no, p1.month) == (200000, 3, Programme.URBAN_DIBAO, Area.URBAN, "H1", jan)
    assert (p3.amount_fen, p3.persons) == (140000, 2)  # the adjusted amount of May
    assert_events_carry_who_and_when(app, p1.id, started, [("Issued", FINANCE, date(2023, 1, 25)), ("Returned", FINANCE, date(2023, 1, 28))])
    assert_events_carry_who_and_when(app, p2.id, started, [("Issued", FINANCE, date(2023, 2, 1)), ("Settled", FINANCE, date(2023, 2, 3))])
    raw = stored_state(app, p1.id)
    assert raw[0]["month"] == {"_type_": "month", "_data_": "2023-01"}
    assert raw[0]["amount_fen"] == 200000 and type(raw[0]["amount_fen"]) is int


def test_every_command_writes_its_events_in_one_transaction(app: LedgerApp) -> None:
    """Notification ids advance by exactly the events a command recorded: nothing partial, nothing extra."""
    assert written(app) == 0
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, m("2022-01"), operator=APPROVER, effective=date(2022, 1, 1))
    assert written(app) == 2  # standard created and set, together
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 80000, m("2023-07"), operator=APPROVER, effective=date(2023, 6, 1))
    assert written(app) == 3
    notifications = app.recorder.select_notifications(start=1, limit=10)
    assert [n.id for n in notifications] == [1, 2, 3]
    assert {n.originator_id for n in notifications} == {standard_id(Programme.URBAN_DIBAO, Area.URBAN)}
