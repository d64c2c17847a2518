"""The demonstration district reproduces the published figures (DOMAIN.md section 6).

The demo is built into a SQLite file through the ledger's commands, then every figure
is recounted from the raw stored events by :mod:`tests.recount`, which shares no code
with the ledger, the demo or the read models. The figures are written out here as
literals: they come from the bureau's report, not from the code under test.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.demo import DemoSummary, build_demo, plan_demo
from ledger.errors import AlreadyExists
from ledger.values import Area, id_check_char
from tests import recount

#: DOMAIN.md section 6 (amounts in fen).
PUBLISHED = {
    "urban-dibao.person_times": 51_800,
    "urban-dibao.paid_fen": 30_703_124_00,
    "urban-dibao.new_households": 149,
    "urban-dibao.new_persons": 223,
    "rural-dibao.person_times": 16_747,
    "rural-dibao.paid_fen": 10_009_148_00,
    "rural-dibao.new_households": 64,
    "rural-dibao.new_persons": 108,
    "dibao.caseload_households": 4_878,
    "dibao.caseload_persons": 7_328,
    "tekun.paid_fen": 5_212_599_00,
    "temporary.grants": 2_056,
    "temporary.paid_fen": 2_493_300_00,
}

DEC_2022, SEP_2023 = recount.month_index("2022-12"), recount.month_index("2023-09")


@dataclass
class Built:
    summary: DemoSummary
    ledger: recount.Ledger
    progress: list[tuple[str, int, int]]
    seconds: float
    url: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    app = LedgerApp(f"sqlite:///{path}")
    progress: list[tuple[str, int, int]] = []
    started = time.perf_counter()
    summary = build_demo(app, lambda stage, done, total: progress.append((stage, done, total)))
    seconds = time.perf_counter() - started
    return Built(summary, recount.load(str(path)), progress, seconds, f"sqlite:///{path}")


@pytest.mark.slow
def test_the_report_over_the_read_models_prints_the_published_figures(built: Built) -> None:
    """The second count: the statistics report, through the projections, knows nothing of the targets."""
    from datetime import date

    from ledger.values import Month
    from projections.queries import statistics
    from projections.runner import Projections

    app = LedgerApp(built.url)
    projections = Projections(app)
    projections.catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        s = statistics(conn, Month(2023, 1), Month(2023, 9), date(2023, 9, 30))
    p = s["programmes"]
    report = {
        "urban-dibao.person_times": p["urban-dibao"]["person_times"],
        "urban-dibao.paid_fen": p["urban-dibao"]["paid_fen"],
        "urban-dibao.new_households": p["urban-dibao"]["new_households"],
        "urban-dibao.new_persons": p["urban-dibao"]["new_persons"],
        "rural-dibao.person_times": p["rural-dibao"]["person_times"],
        "rural-dibao.paid_fen": p["rural-dibao"]["paid_fen"],
        "rural-dibao.new_households": p["rural-dibao"]["new_households"],
        "rural-dibao.new_persons": p["rural-dibao"]["new_persons"],
        "dibao.caseload_households": s["dibao_total"]["caseload"]["households"],
        "dibao.caseload_persons": s["dibao_total"]["caseload"]["persons"],
        "tekun.paid_fen": p["tekun"]["paid_fen"],
        "temporary.grants": p["temporary"]["person_times"],
        "temporary.paid_fen": p["temporary"]["paid_fen"],
    }
    assert report == PUBLISHED
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        from projections.verify import verify

        assert verify(app, conn, projections.view.position()) == []


def test_the_plan_alone_hits_the_published_figures() -> None:
    """Fast check of the calibration, before anything is recorded."""
    assert plan_demo(2023).figures() == PUBLISHED


@pytest.mark.slow
def test_the_calibration_holds_for_other_seeds() -> None:
    for seed in (1, 7, 42):
        assert plan_demo(seed).figures() == PUBLISHED, seed


@pytest.mark.slow
def test_recount_from_raw_events_gives_every_published_figure(built: Built) -> None:
    figures = built.ledger.figures()
    for key, value in PUBLISHED.items():
        assert figures[key] == value, f"{key}: recounted {figures[key]:,}, published {value:,}"


@pytest.mark.slow
def test_summary_agrees_with_the_recount(built: Built) -> None:
    s, ledger = built.summary, built.ledger
    assert s.figures == PUBLISHED
    assert s.events == ledger.events
    assert s.payments == ledger.kinds["Payment.Issued"]
    assert s.returns == ledger.kinds["Payment.Returned"]
    assert s.households == ledger.kinds["Household.Registered"] == len(ledger.households)
    assert s.cases == dict(sorted(Counter(c.programme for c in ledger.cases.values()).items()))
    assert s.grants_paid == ledger.kinds["Case.GrantPaid"]
    assert set(s.examples.values()) <= set(ledger.cases)
    assert 5 <= len(s.showcase) <= len(s.examples)
    assert s.describe()


@pytest.mark.slow
def test_the_build_is_timed_and_reports_progress(built: Built) -> None:
    last = {stage: (done, total) for stage, done, total in built.progress}
    assert last["households"][0] == last["households"][1] == built.summary.households
    print(f"\ndemo built in {built.seconds:.1f} s: {built.summary.describe()}")


@pytest.mark.slow
def test_a_second_build_is_refused_before_writing() -> None:
    app = LedgerApp("memory:")
    app.register_household(number="H000001", community="x", area=Area.URBAN, payee_account="1",
                           members=[{"id_number": "11010519491231002X", "name": "X", "relation": "head"}],
                           operator="chen.jing", effective=date(2022, 1, 1))
    with pytest.raises(AlreadyExists, match="already built"):
        build_demo(app)
    assert app.recorder.max_notification_id() == 1


@pytest.mark.slow
def test_at_most_one_net_payment_per_case_and_month(built: Built) -> None:
    net = Counter((p.case_no, p.month) for p in built.ledger.net_payments() if p.persons)
    assert max(net.values()) == 1
    reissued = [p for p in built.ledger.payments if p.issue_no > 1]
    assert reissued and all(not p.returned for p in reissued)


@pytest.mark.slow
def test_every_account_is_whole_except_the_documented_balances(built: Built) -> None:
    """Entitlement December 2022 - September 2023 equals what was paid, but for deliberate exceptions."""
    ledger, s = built.ledger, built.summary
    owed = {}
    for case in ledger.cases.values():
        if case.programme != "temporary" and case.decisions:
            balance = ledger.balance(case, DEC_2022, SEP_2023)
            if balance:
                owed[case.case_no] = balance
    assert owed == s.balances
    assert s.balances and all(v > 0 for v in s.balances.values())
    # No decision was retroactive: nothing was ever overpaid.
    assert "Case.OverpaymentEstablished" not in ledger.kinds


@pytest.mark.slow
def test_suspended_cases_stand_beside_the_caseload(built: Built) -> None:
    ledger = built.ledger
    statuses = Counter(
        (ledger.status_in(c, SEP_2023) or ("none",))[0]
        for c in ledger.cases.values()
        if c.programme in ("urban-dibao", "rural-dibao")
    )
    assert statuses["active"] == PUBLISHED["dibao.caseload_households"]
    assert statuses["suspended"] > 0 and statuses["terminated"] > 0


@pytest.mark.slow
def test_households_members_and_cases_are_realistic(built: Built) -> None:
    ledger = built.ledger
    members: list[dict[str, Any]] = [m for h in ledger.households.values() for m in h["members"].values()]
    ids = [m["id_number"] for m in members]
    assert len(set(ids)) == len(ids)
    for n in ids:
        assert n.startswith("140403") and len(n) == 18 and id_check_char(n[:17]) == n[17]
        assert 1920 <= int(n[6:10]) <= 2023
    flags = Counter(f for m in members for f in m["flags"])
    assert all(flags[f] > 100 for f in ("ill", "disabled", "elderly", "minor"))

    singles = [c for c in ledger.cases.values() if c.single_person]
    assert len(singles) > 100
    for c in singles:
        household = ledger.households[c.household_no]
        assert len(household["members"]) > 1
        assert {"ill", "disabled"} & set(household["members"][c.single_person]["flags"])

    channels = Counter(c.channel for c in ledger.cases.values() if c.programme.endswith("dibao"))
    assert channels["window"] > channels["outreach"] > channels["referral"] > 0
    new = [c for c in ledger.cases.values() if c.first_month is not None and c.first_month > DEC_2022]
    assert any(c.channel == "outreach" for c in new)

    for c in ledger.cases.values():
        # Four eyes: nobody approves a case they verified.
        assert not set(c.verifiers) & set(c.approvers), c.case_no
    assert ledger.kinds["Case.Suspended"] and ledger.kinds["Case.Resumed"] and ledger.kinds["Case.Terminated"]
    assert ledger.kinds["Case.AmountAdjusted"] and ledger.kinds["Case.Rejected"]
    assert ledger.kinds["Household.MemberDeceased"] and ledger.kinds["Household.MemberAdded"]
    assert ledger.kinds["Payment.Returned"] > ledger.kinds["Household.AccountChanged"] > 0
