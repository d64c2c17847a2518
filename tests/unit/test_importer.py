"""The JSON Lines importer: a valid file applies as a whole; any bad line writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.domain import payment_id
from ledger.errors import LedgerError, NotFound
from ledger.importer import ImportError_, import_lines
from ledger.values import Area, Month, Programme
from tests.conftest import idn
from tests.unit.ledger_helpers import written


def line(action: str, operator: str = "zhang.wei", date: str = "2023-01-05", **fields: Any) -> str:
    return json.dumps({"action": action, "operator": operator, "date": date, **fields}, ensure_ascii=False)


STANDARD = line("standard.set", "li.na", "2022-01-01", programme="urban-dibao", area="urban", amount="760", **{"from": "2022-01"})
HOUSEHOLD = line(
    "household.register", number="H1", community="东街", area="urban", payee_account="6222020000000001",
    members=[
        {"id_number": idn(1), "name": "张三", "relation": "head", "flags": ["ill"]},
        {"id_number": idn(2), "name": "张小", "relation": "child"},
    ],
)
APPLY = line("case.apply", case="U1", household="H1", programme="urban-dibao", channel="outreach")
VERIFY = line("case.verify", case="U1", income="200", assets_ok=True, verifier="zhang.wei", valid_until="2023-12-31")
APPROVE = line("case.approve", "li.na", case="U1", amount="1200.00", first_month="2023-01")

#: Three valid lines that would write events if the file were applied line by line.
PREFIX = [STANDARD, HOUSEHOLD, APPLY]


def run(app: LedgerApp, lines: list[str]) -> Any:
    return import_lines(app, [text + "\n" for text in lines])


def test_valid_multi_action_file_applies_everything(app: LedgerApp) -> None:
    lines = [
        "# urban dibao, January 2023",
        STANDARD,
        "",
        HOUSEHOLD,
        APPLY,
        VERIFY,
        APPROVE,
        line("payment.issue", "wang.fang", "2023-01-25", case="U1", month="2023-01"),
        line("payment.return", "wang.fang", "2023-01-28", ref="P-U1-202301-1", reason="account frozen"),
        line("payment.issue", "wang.fang", "2023-02-01", case="U1", month="2023-01"),
        line("payment.issue", "wang.fang", "2023-02-01", case="U1", month="2023-02"),
        line("payment.settle", "wang.fang", "2023-02-03", ref="P-U1-202302-1"),
        line("case.apply", case="T1", household="H1", programme="temporary", channel="referral"),
        line("case.verify", case="T1", income=0, assets_ok=True, verifier="zhang.wei", valid_until="2023-02-28"),
        line("grant.approve", "li.na", "2023-01-10", case="T1", type="fire", amount=1500, reason="kitchen fire"),
        line("grant.pay", "wang.fang", "2023-01-11", case="T1"),
        line("case.suspend", "li.na", "2023-03-02", case="U1", reason="review missed", **{"from": "2023-03"}),
    ]
    result = run(app, lines)
    assert result.lines == 15  # comments and blank lines are skipped
    assert result.actions == {
        "standard.set": 1, "household.register": 1, "case.apply": 2, "case.verify": 2, "case.approve": 1,
        "payment.issue": 3, "payment.return": 1, "payment.settle": 1, "grant.approve": 1, "grant.pay": 1,
        "case.suspend": 1,
    }
    assert written(app) == result.events == 16  # one transaction holding every event of the file
    case = app.get_case("U1")
    assert (case.status, case.amount_fen, case.channel.value) == ("suspended", 120000, "outreach")
    assert case.status_at(Month(2023, 2)) == "active"
    assert app.get_household("H1").members[idn(1)]["name"] == "张三"
    assert app.repository.get(payment_id("U1", Month(2023, 1), 1)).status == "returned"
    assert app.repository.get(payment_id("U1", Month(2023, 1), 2)).ref == "P-U1-202301-2"
    assert app.repository.get(payment_id("U1", Month(2023, 2), 1)).status == "settled"
    assert app.get_case("T1").grant["amount_fen"] == 150000
    assert app.get_case("T1").status == "paid"
    approved = [e for e in app.events.get(case.id) if type(e).__name__ == "Approved"]
    assert [(e.operator, e.effective.isoformat()) for e in approved] == [("li.na", "2023-01-05")]


def test_an_empty_file_writes_nothing(app: LedgerApp) -> None:
    result = run(app, ["# nothing", ""])
    assert (result.lines, result.events, result.actions) == (0, 0, {})
    assert written(app) == 0


BAD_LINES: list[tuple[str, str, str]] = [
    # (test id, the fourth line of the file, a pattern its error must match)
    ("bad JSON", '{"action": "case.verify", "case": "U1",', r"^line 4: not valid JSON"),
    ("not an object", '["case.verify", "U1"]', r"^line 4: expected a JSON object"),
    ("unknown action", line("case.verfy", case="U1"), r"^line 4: field 'action': unknown action 'case.verfy'"),
    ("no action", json.dumps({"operator": "x", "date": "2023-01-05"}), r"^line 4: field 'action': unknown action None"),
    ("missing operator", json.dumps({"action": "case.reject", "date": "2023-01-05", "case": "U1", "reason": "r"}),
     r"^line 4: field 'operator' is missing"),
    ("empty operator", line("case.reject", operator=" ", case="U1", reason="r"), r"^line 4: field 'operator': expected non-empty text"),
    ("missing date", json.dumps({"action": "case.reject", "operator": "li.na", "case": "U1", "reason": "r"}),
     r"^line 4: field 'date' is missing"),
    ("bad date", line("case.reject", date="2023-02-30", case="U1", reason="r"), r"^line 4: field 'date': invalid date '2023-02-30'"),
    ("missing field", line("case.verify", case="U1", income="200", assets_ok=True, valid_until="2023-12-31"),
     r"^line 4: field 'verifier' is missing for case.verify"),
    ("unknown field", line("case.verify", case="U1", income="200", assets_ok=True, verifier="z", verifer="z", valid_until="2023-12-31"),
     r"^line 4: field 'verifer' is not a field of case.verify"),
    ("float amount", line("case.approve", "li.na", case="U1", amount=1200.5, first_month="2023-01"),
     r"^line 4: field 'amount': invalid amount 1200\.5: .*never a float"),
    ("whole float amount", line("case.approve", "li.na", case="U1", amount=1200.0, first_month="2023-01"),
     r"^line 4: field 'amount': .*never a float"),
    ("float income", line("case.verify", case="U1", income=200.5, assets_ok=True, verifier="z", valid_until="2023-12-31"),
     r"^line 4: field 'income': .*never a float"),
    ("float add-on", line("case.approve", "li.na", case="U1", amount="1200", first_month="2023-01", add_on=50.5, add_on_reason="x"),
     r"^line 4: field 'add_on': .*never a float"),
    ("three decimals", line("case.approve", "li.na", case="U1", amount="1200.005", first_month="2023-01"),
     r"^line 4: field 'amount': invalid amount '1200\.005'"),
    ("zero amount", line("standard.set", programme="urban-dibao", area="urban", amount="0", **{"from": "2023-01"}),
     r"^line 4: field 'amount': .*must be positive"),
    ("bad month", line("case.approve", "li.na", case="U1", amount="1200", first_month="2023-13"),
     r"^line 4: field 'first_month': invalid month '2023-13'"),
    ("bad boolean", line("case.verify", case="U1", income="200", assets_ok="yes", verifier="z", valid_until="2023-12-31"),
     r"^line 4: field 'assets_ok': expected true or false"),
    ("bad enum", line("case.apply", case="U2", household="H1", programme="dibao", channel="window"),
     r"^line 4: field 'programme': invalid programme 'dibao'"),
    ("bad covered list", line("case.approve", "li.na", case="U1", amount="1200", first_month="2023-01", covered="all"),
     r"^line 4: field 'covered': expected a list of identity numbers"),
    ("bad members", line("household.register", number="H2", community="c", area="urban", payee_account="1", members=[]),
     r"^line 4: field 'members': expected a non-empty list"),
    # rule violations: the line, the action and the rule's own sentence
    ("no verification", line("case.approve", "li.na", case="U1", amount="1200", first_month="2023-01"),
     r"^line 4 \(case.approve\): case U1 needs a verification"),
    ("unknown case", line("case.verify", case="U9", income="200", assets_ok=True, verifier="z", valid_until="2023-12-31"),
     r"^line 4 \(case.verify\): no case U9"),
    ("household twice", HOUSEHOLD, r"^line 4 \(household.register\): household H1 is already recorded"),
    ("case twice", APPLY, r"^line 4 \(case.apply\): case U1 is already recorded"),
    ("bad id number", line("household.add-member", household="H1", member={"id_number": idn(3)[:17] + "Y", "name": "C", "relation": "child"}),
     r"^line 4\b.*invalid identity number"),
    ("resume active", line("case.resume", case="U1", **{"from": "2023-02"}), r"^line 4 \(case.resume\): case U1 is applied; cannot resume"),
]


@pytest.mark.parametrize(("fourth", "pattern"), [b[1:] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES])
def test_a_bad_line_is_named_and_nothing_is_written(app: LedgerApp, fourth: str, pattern: str) -> None:
    with pytest.raises(ImportError_, match=pattern) as raised:
        run(app, [*PREFIX, fourth, VERIFY])
    assert isinstance(raised.value, LedgerError)
    assert written(app) == 0
    with pytest.raises(NotFound):
        app.get_household("H1")  # the valid lines before the bad one were not written either


RULES_AT_LINE_N: list[tuple[str, list[str], str]] = [
    ("four eyes", [VERIFY, line("case.approve", "zhang.wei", case="U1", amount="1200", first_month="2023-01")],
     r"^line 5 \(case.approve\): case U1: zhang.wei verified this case"),
    ("above standard", [VERIFY, line("case.approve", "li.na", case="U1", amount="1520.01", first_month="2023-01")],
     r"^line 5 \(case.approve\): case U1: 1,520\.01 yuan a month is above the ceiling"),
    ("add-on without reason", [VERIFY, line("case.approve", "li.na", case="U1", amount="1200", first_month="2023-01", add_on="50")],
     r"^line 5 \(case.approve\): an add-on needs a documented reason"),
    ("failed verification", [line("case.verify", case="U1", income="760", assets_ok=True, verifier="zhang.wei", valid_until="2023-12-31"), APPROVE],
     r"^line 5 \(case.approve\): case U1: the latest verification \(no\. 1\) did not pass"),
    ("payment before approval", [VERIFY, line("payment.issue", "wang.fang", case="U1", month="2023-01")],
     r"^line 5 \(payment.issue\): case U1 is not active in 2023-01"),
    ("double payment in one file", [VERIFY, APPROVE, line("payment.issue", "wang.fang", case="U1", month="2023-01"),
                                    line("payment.issue", "wang.fang", case="U1", month="2023-01")],
     r"^line 7 \(payment.issue\): case U1 is already paid for 2023-01 \(P-U1-202301-1, issued\)"),
    ("settle unknown payment", [VERIFY, APPROVE, line("payment.settle", "wang.fang", ref="P-U1-202301-1")],
     r"^line 6 \(payment.settle\): no payment P-U1-202301-1"),
    ("grant above cap", [line("case.apply", case="T1", household="H1", programme="temporary", channel="window"),
                         line("case.verify", case="T1", income="0", assets_ok=True, verifier="zhang.wei", valid_until="2023-12-31"),
                         line("grant.approve", "li.na", case="T1", type="fire", amount="7600.01", reason="fire")],
     r"^line 6 \(grant.approve\): case T1: a grant of 7,600\.01 yuan is above 10 times"),
]


@pytest.mark.parametrize(("tail", "pattern"), [r[1:] for r in RULES_AT_LINE_N], ids=[r[0] for r in RULES_AT_LINE_N])
def test_a_rule_broken_at_line_n_aborts_the_whole_file(app: LedgerApp, tail: list[str], pattern: str) -> None:
    with pytest.raises(ImportError_, match=pattern):
        run(app, [*PREFIX, *tail])
    assert written(app) == 0


def test_a_failed_import_leaves_earlier_records_untouched_and_can_be_rerun(app: LedgerApp) -> None:
    run(app, PREFIX)
    before = written(app)
    assert before == 4  # standard created + set, household registered, case applied
    bad = [VERIFY, line("case.approve", "li.na", case="U1", amount=1200.5, first_month="2023-01")]
    with pytest.raises(ImportError_, match="line 2: field 'amount'"):
        run(app, bad)
    assert written(app) == before
    assert app.get_case("U1").verifications == []  # line 1's verification was not written
    run(app, [VERIFY, APPROVE])
    assert app.get_case("U1").status == "active"


def test_member_flags_and_ids_are_checked_like_the_command_line(app: LedgerApp) -> None:
    run(app, PREFIX)
    run(app, [line("household.add-member", household="H1", member={"id_number": idn(3).lower(), "name": "C", "relation": "spouse", "flags": "ill+disabled"})])
    h = app.get_household("H1")
    assert h.members[idn(3)]["flags"] == ["disabled", "ill"]
    assert h.area is Area.URBAN
    assert app.get_case("U1").programme is Programme.URBAN_DIBAO


@pytest.mark.parametrize(
    "tail",
    [
        [line("case.verify", case="U1", income=0.0, assets_ok=True, verifier="zhang.wei", valid_until="2023-12-31")],
        [line("case.verify", case="U1", income=False, assets_ok=True, verifier="zhang.wei", valid_until="2023-12-31")],
        [VERIFY, line("case.approve", "li.na", case="U1", amount="1200", first_month="2023-01", add_on=0.0)],
    ],
    ids=["income 0.0", "income false", "add_on 0.0"],
)
def test_zero_valued_floats_and_booleans_are_refused_too(app: LedgerApp, tail: list[str]) -> None:
    n = len(PREFIX) + len(tail)
    with pytest.raises(ImportError_, match=rf"line {n}: field '(income|add_on)'"):
        run(app, [*PREFIX, *tail])
    assert written(app) == 0


@pytest.mark.parametrize(
    ("fourth", "field"),
    [
        (line("case.approve", "li.na", case="U1", amount="1200", first_month="2023-01", covered=["123"]), "covered"),
        (line("household.register", number="H2", community="c", area="urban", payee_account="1",
              members=[{"name": "A", "relation": "head"}]), "id_number"),
    ],
    ids=["covered", "member id_number"],
)
def test_bad_identity_number_inside_a_field_names_the_field(app: LedgerApp, fourth: str, field: str) -> None:
    with pytest.raises(ImportError_, match=r"line 4\b") as raised:
        run(app, [*PREFIX, fourth])
    assert written(app) == 0
    assert f"'{field}'" in str(raised.value)


def test_a_bad_value_is_refused_every_time_it_occurs(app: LedgerApp) -> None:
    # Parsed values are remembered between lines; refusals are not.
    bad = line("case.reject", date="2023-02-30", case="U1", reason="r")
    for _ in range(2):
        with pytest.raises(ImportError_, match=r"^line 4: field 'date': invalid date '2023-02-30'"):
            run(app, [*PREFIX, bad])
    run(app, [*PREFIX, VERIFY])
    assert app.get_case("U1").verifications[0].verified_on.isoformat() == "2023-01-05"


def test_the_garbage_collector_is_left_as_it_was(app: LedgerApp) -> None:
    import gc

    assert gc.isenabled()
    run(app, PREFIX)
    assert gc.isenabled()
    with pytest.raises(ImportError_):
        run(app, [VERIFY, line("case.verify", case="U9", income="200", assets_ok=True, verifier="z", valid_until="2023-12-31")])
    assert gc.isenabled()
    gc.disable()
    try:
        run(app, [VERIFY])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_import_keeps_a_repository_cache_current() -> None:
    # With a cache that is not fast-forwarded, the saved aggregates must replace the cached ones.
    app = LedgerApp("memory:", env={"AGGREGATE_CACHE_MAXSIZE": "100", "AGGREGATE_CACHE_FASTFORWARD": "n"})
    run(app, PREFIX)
    assert app.get_case("U1").status == "applied"
    run(app, [VERIFY, APPROVE])
    assert app.get_case("U1").status == "active"


def test_an_import_still_reaches_a_hook_after_saving() -> None:
    seen: list[Any] = []

    class Hooked(LedgerApp):
        def _notify(self, recordings: list[Any]) -> None:
            seen.extend(recordings)

    app = Hooked("memory:")
    run(app, PREFIX)
    assert len(seen) == written(app) == 4
