"""The standing anomaly checks and the chain of authority behind a payment.

Each anomaly is planted the way it can really arise (a retroactive decision recorded after
the months were paid, a legacy approval carried over without the ledger's checks, a
bank line that matches nothing, ...) and ``projections.audit.check`` must name it with
its rule, case, month and amount; once it is put right, the finding goes away.
``explain_payment`` lists the broken links of a payment's authority, and none for a
clean payment. (A SQLite file: the checks read the read models.)
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.audit import explain_payment
from ledger.errors import InvalidInput, NotFound
from ledger.values import Area, Channel, Month, Programme, mask_id
from projections.audit import check, trail
from projections.runner import Projections
from tests.conftest import idn, seed_case

VERIFIER, DECIDER, CASHIER, IMPORTER = "zhang.wei", "li.na", "zhao.min", "import.bot"
JAN, FEB, MAR = Month(2023, 1), Month(2023, 2), Month(2023, 3)
LATER = date(2023, 3, 20)  # when the retroactive decisions are recorded


def new_ledger(url: str) -> LedgerApp:
    return LedgerApp(url, clock=lambda: date(2023, 6, 30))


def findings(app: LedgerApp) -> list[dict[str, Any]]:
    Projections(app).catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        return check(conn)


def found(app: LedgerApp, rule: str | None = None) -> list[tuple[str, str, str, int | None]]:
    """(rule, case, month, amount) of every finding (of one rule)."""
    return [(f["rule"], f["case"], f["month"], f["amount_fen"]) for f in findings(app) if rule is None or f["rule"] == rule]


def pay(app: LedgerApp, case_no: str, *months: Month) -> list[str]:
    return [app.issue_payment(case_no, m, operator=CASHIER, effective=m.first_day()) for m in months]


def paid_case(url: str, months: tuple[Month, ...] = (JAN, FEB, MAR)) -> LedgerApp:
    """U1 of H1 (2 persons, 1,200 yuan a month from January, standard 760 yuan), paid for ``months``."""
    app = new_ledger(url)
    seed_case(app)
    pay(app, "U1", *months)
    return app


def members(app: LedgerApp, household: str = "H1") -> list[str]:
    return list(app.get_household(household).members)


# --------------------------------------------------------------------------- a clean ledger


def test_a_clean_ledger_has_no_findings_and_a_payment_with_every_link_in_place(sqlite_url: str) -> None:
    app = paid_case(sqlite_url)
    app.settle_payment("P-U1-202301-1", operator=CASHIER, effective=date(2023, 1, 3))
    assert findings(app) == []

    chain = explain_payment(app, "P-U1-202301-1")
    assert chain["flags"] == []
    assert chain["payment"]["ref"] == "P-U1-202301-1" and chain["payment"]["operator"] == CASHIER
    assert chain["payment"]["status"] == "settled" and chain["payment"]["gross_fen"] == 120000
    assert chain["payment"]["payee_account_ending"] == "0001"
    assert chain["decision"]["event"] == "Case.Approved" and chain["decision"]["approver"] == DECIDER
    assert chain["decision"]["amount_fen"] == 120000 and chain["decision"]["persons"] == 2
    assert chain["verification"]["verifier"] == VERIFIER and chain["verification"]["passed"] is True
    assert chain["standard"]["amount_fen"] == 76000 and chain["standard"]["from_month"] == "2022-01"
    for step in ("payment", "decision", "verification"):
        assert chain[step]["effective"] and chain[step]["recorded_at"]


def test_explain_refuses_an_unknown_or_malformed_reference(app: LedgerApp) -> None:
    seed_case(app)
    with pytest.raises(NotFound, match="no payment P-U1-202301-1"):
        explain_payment(app, "P-U1-202301-1")
    with pytest.raises(InvalidInput, match="invalid payment reference"):
        explain_payment(app, "U1-202301")


# --------------------------------------------------------------------------- paid while not active


def test_a_paid_month_suspended_back_is_found_until_the_overpayment_is_refunded(sqlite_url: str) -> None:
    app = paid_case(sqlite_url)
    app.suspend("U1", "review overdue", FEB, operator=DECIDER, effective=LATER)
    assert found(app) == [
        ("paid-while-not-active", "U1", "2023-02", 120000),
        ("paid-while-not-active", "U1", "2023-03", 120000),
    ]
    f = findings(app)[0]
    assert "suspended" in f["detail"] and "2,400.00 yuan" in f["detail"] and "not yet recovered" in f["detail"]
    assert "the case is not active in 2023-02 as the record stands now" in explain_payment(app, "P-U1-202302-1")["flags"]
    assert explain_payment(app, "P-U1-202301-1")["flags"] == []

    app.record_refund("U1", 200000, "RCPT-1", operator=CASHIER, effective=date(2023, 4, 1))
    # Recoveries clear the oldest month first: February is settled, 400 of March is still owed.
    assert found(app) == [("paid-while-not-active", "U1", "2023-03", 40000)]
    assert "; 400.00 yuan" in findings(app)[0]["detail"]
    app.record_refund("U1", 40000, "RCPT-2", operator=CASHIER, effective=date(2023, 4, 2))
    assert findings(app) == []


def test_a_paid_month_terminated_back_is_found_and_recovery_by_offset_clears_it(sqlite_url: str) -> None:
    app = new_ledger(sqlite_url)
    seed_case(app)
    seed_case(app, case_no="U2", household="H2")
    pay(app, "U1", JAN, FEB)
    app.terminate("U1", "income above the standard", FEB, operator=DECIDER, effective=LATER)
    assert found(app) == [("paid-while-not-active", "U1", "2023-02", 120000)]
    assert "terminated" in findings(app)[0]["detail"]
    # A bank return of the overpaid month cancels the overpayment itself.
    app.return_payment("P-U1-202302-1", "account closed", operator=CASHIER, effective=LATER)
    assert findings(app) == []


def test_a_paid_month_decreased_back_while_active_is_not_called_paid_while_not_active(sqlite_url: str) -> None:
    """A retroactive decrease leaves the case active: the overpayment is found, under another rule."""
    app = paid_case(sqlite_url)
    app.verify("U1", income_fen=40000, assets_ok=True, verifier=VERIFIER, valid_until=date(2023, 12, 31),
               operator=VERIFIER, effective=date(2023, 3, 18))
    app.adjust("U1", amount_fen=100000, from_month=FEB, operator=DECIDER, effective=LATER)
    got = findings(app)
    assert [(f["case"], f["month"], f["amount_fen"]) for f in got] == [("U1", "2023-02", 20000), ("U1", "2023-03", 20000)]
    assert all(f["rule"] != "paid-while-not-active" for f in got), got
    app.record_refund("U1", 40000, "RCPT-3", operator=CASHIER, effective=date(2023, 4, 1))
    assert findings(app) == []


# --------------------------------------------------------------------------- decisions and their verification


LEGACY = ["L1", "L2", "L3", "L4", "L5", "L6"]


def legacy_ledger(url: str) -> LedgerApp:
    """Six cases carried over from a legacy system, each with a different verification behind it."""
    app = new_ledger(url)
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, Month(2022, 1), operator=DECIDER, effective=date(2022, 1, 1))
    for n, case_no in enumerate(LEGACY, start=1):
        app.register_household(number=f"G{n}", community="Dongjie", area=Area.URBAN, payee_account=f"62220200000001{n:02d}",
                               members=[{"id_number": idn(500 + n), "name": f"G{n} head", "relation": "head"}],
                               operator=VERIFIER, effective=date(2023, 1, 2))
        app.apply(case_no=case_no, household_no=f"G{n}", programme=Programme.URBAN_DIBAO, channel=Channel.WINDOW,
                  operator=VERIFIER, effective=date(2023, 1, 3))
    # L1: no verification at all. L2: one that expired before the legacy decision.
    # L3: one that did not pass (income above the standard). L4: verified by the legacy approver.
    # L5: a valid verification by someone else (nothing to find but the legacy origin).
    # L6: a verification dated after the legacy decision it is supposed to support.
    for case_no, income, until, verifier, on in [
        ("L2", 20000, date(2023, 1, 31), VERIFIER, date(2023, 1, 10)),
        ("L3", 90000, date(2023, 12, 31), VERIFIER, date(2023, 1, 10)),
        ("L4", 20000, date(2023, 12, 31), "wu.lei", date(2023, 1, 10)),
        ("L5", 20000, date(2023, 12, 31), VERIFIER, date(2023, 1, 10)),
        ("L6", 20000, date(2023, 12, 31), VERIFIER, date(2023, 3, 1)),
    ]:
        app.verify(case_no, income_fen=income, assets_ok=True, verifier=verifier, valid_until=until,
                   operator=VERIFIER, effective=on)
    for n, case_no in enumerate(LEGACY, start=1):
        app.approve_legacy(case_no, amount_fen=50000 + n * 100, first_month=JAN, approver="wu.lei" if case_no == "L4" else "qian.jun",
                           legacy_reference=f"OLD-{n:04d}", operator=IMPORTER, effective=date(2023, 2, 10))
        pay(app, case_no, JAN)
    return app


def test_legacy_approvals_without_a_valid_verification_or_four_eyes_are_found(sqlite_url: str) -> None:
    app = legacy_ledger(sqlite_url)
    assert found(app) == [
        ("decision-without-verification", "L1", "2023-01", 50100),
        ("decision-without-valid-verification", "L2", "2023-01", 50200),
        ("decision-without-valid-verification", "L3", "2023-01", 50300),
        ("decision-without-valid-verification", "L6", "2023-01", 50600),
        ("verifier-is-approver", "L4", "2023-01", 50400),
    ]
    detail = {f["case"]: f["detail"] for f in findings(app)}
    assert "Case.LegacyApproved at position" in detail["L1"] and "has no verification behind it" in detail["L1"]
    assert detail["L2"] == "verification no. 1 expired on 2023-01-31 before the decision of 2023-02-10"
    assert detail["L3"] == "verification no. 1 did not pass"
    assert detail["L6"] == "verification no. 1 is dated after the decision"
    assert detail["L4"].startswith("wu.lei verified (no. 1) and approved (Case.LegacyApproved at position")


def test_explain_flags_every_broken_link_of_a_legacy_payment(sqlite_url: str) -> None:
    app = legacy_ledger(sqlite_url)
    legacy = "the approval was carried over from a legacy system ({}) without the ledger's checks"
    chains = {c: explain_payment(app, f"P-{c}-202301-1") for c in LEGACY}
    assert chains["L1"]["flags"] == [legacy.format("OLD-0001"), "no verification behind the decision"]
    assert "verification" not in chains["L1"]
    assert chains["L1"]["decision"]["approver"] == "qian.jun" and chains["L1"]["decision"]["legacy_reference"] == "OLD-0001"
    assert chains["L2"]["flags"] == [legacy.format("OLD-0002"),
                                     "verification no. 1 had expired (2023-01-31) when the decision was made"]
    assert chains["L3"]["flags"] == [legacy.format("OLD-0003"), "verification no. 1 did not pass"]
    assert chains["L4"]["flags"] == [legacy.format("OLD-0004"), "wu.lei both verified and approved (four eyes)"]
    assert chains["L5"]["flags"] == [legacy.format("OLD-0005")]
    assert chains["L6"]["flags"][0] == legacy.format("OLD-0006")


def test_explain_flags_a_verification_dated_after_the_decision(sqlite_url: str) -> None:
    app = legacy_ledger(sqlite_url)
    assert ("decision-without-valid-verification", "L6", "2023-01", 50600) in found(app)
    flags = explain_payment(app, "P-L6-202301-1")["flags"]
    assert len(flags) == 2 and "verification no. 1" in flags[1] and "after the decision" in flags[1], flags


def test_a_legacy_approval_imported_by_file_is_checked_the_same_way(sqlite_url: str) -> None:
    import io
    import json

    from ledger.importer import import_lines

    app = new_ledger(sqlite_url)
    seed_case(app, approve=False)
    line = {"action": "case.approve-legacy", "operator": IMPORTER, "date": "2023-01-20", "case": "U1", "amount": "1000",
            "first_month": "2023-01", "approver": VERIFIER, "legacy_reference": "OLD-77"}
    import_lines(app, io.StringIO(json.dumps(line) + "\n"))
    assert found(app) == [("verifier-is-approver", "U1", "2023-01", 100000)]


# --------------------------------------------------------------------------- the standard, deaths, double coverage


def test_a_standard_lowered_back_below_a_paid_amount_is_found(sqlite_url: str) -> None:
    app = paid_case(sqlite_url)
    assert found(app) == []
    # The standard for February on is lowered after those months were paid: 1,200 > 500 x 2.
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 50000, FEB, operator=DECIDER, effective=LATER)
    assert found(app) == [("above-standard", "U1", "2023-02", 120000), ("above-standard", "U1", "2023-03", 120000)]
    assert findings(app)[0]["detail"] == "P-U1-202302-1: 1,200.00 yuan is above the standard in force, 500.00 x 2 persons"
    assert "the amount is above the standard in force (500.00 yuan x 2 persons)" in explain_payment(app, "P-U1-202302-1")["flags"]
    assert explain_payment(app, "P-U1-202301-1")["flags"] == []
    # A re-issue after a bank return is the whole month's amount again: above the standard too.
    app.return_payment("P-U1-202303-1", "account closed", operator=CASHIER, effective=LATER)
    assert found(app, "above-standard") == [("above-standard", "U1", "2023-02", 120000)]
    pay(app, "U1", MAR)
    assert found(app, "above-standard")[-1] == ("above-standard", "U1", "2023-03", 120000)
    assert findings(app)[-1]["detail"].startswith("P-U1-202303-2: 1,200.00 yuan is above the standard in force")
    # Set back for March: only February stays above it.
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, MAR, operator=DECIDER, effective=LATER)
    assert found(app) == [("above-standard", "U1", "2023-02", 120000)]


def test_explain_flags_a_re_issue_above_the_standard(sqlite_url: str) -> None:
    app = paid_case(sqlite_url, months=(JAN,))
    app.return_payment("P-U1-202301-1", "account closed", operator=CASHIER, effective=date(2023, 1, 3))
    pay(app, "U1", JAN)
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 50000, JAN, operator=DECIDER, effective=LATER)
    assert found(app) == [("above-standard", "U1", "2023-01", 120000)]
    assert explain_payment(app, "P-U1-202301-2")["payment"]["kind"] == "re-issue"
    assert explain_payment(app, "P-U1-202301-2")["flags"] == [
        "the amount is above the standard in force (500.00 yuan x 2 persons)"
    ]


def test_a_death_recorded_back_before_paid_months_is_found(sqlite_url: str) -> None:
    app = paid_case(sqlite_url)
    child = members(app)[1]
    app.record_death("H1", child, operator=VERIFIER, effective=date(2023, 1, 20))
    # Died in January: the January payment was due, February and March were not.
    assert found(app) == [("paid-after-death", "U1", "2023-02", 120000), ("paid-after-death", "U1", "2023-03", 120000)]
    assert findings(app)[0]["detail"] == f"P-U1-202302-1 covers {mask_id(child)}, recorded as deceased on 2023-01-20"
    flags = explain_payment(app, "P-U1-202303-1")["flags"]
    assert flags == [f"a covered person ({child[:4]}...{child[-4:]}) died before 2023-03"]
    assert explain_payment(app, "P-U1-202301-1")["flags"] == []


def test_one_person_covered_by_two_cases_paid_for_the_same_month_is_found(sqlite_url: str) -> None:
    app = new_ledger(sqlite_url)
    seed_case(app)  # U1 (urban dibao) covers both members of H1, the head seriously ill
    head = members(app)[0]
    app.set_standard(Programme.TEKUN, Area.URBAN, 90000, Month(2022, 1), operator=DECIDER, effective=date(2022, 1, 1))
    app.apply(case_no="K1", household_no="H1", programme=Programme.TEKUN, channel=Channel.REFERRAL, single_person=head,
              operator=VERIFIER, effective=date(2023, 1, 6))
    app.verify("K1", income_fen=0, assets_ok=True, verifier=VERIFIER, valid_until=date(2023, 12, 31),
               operator=VERIFIER, effective=date(2023, 1, 6))
    app.approve("K1", amount_fen=90000, first_month=JAN, operator=DECIDER, effective=date(2023, 1, 7))
    pay(app, "U1", JAN, FEB)
    pay(app, "K1", JAN)
    assert found(app) == [("covered-twice", "K1", "2023-01", None), ("covered-twice", "U1", "2023-01", None)]
    details = [f["detail"] for f in findings(app)]
    assert details == [f"{mask_id(head)} is also covered by U1 for the same month",
                       f"{mask_id(head)} is also covered by K1 for the same month"]
    # Returned by the bank: no longer paid twice.
    app.return_payment("P-K1-202301-1", "account closed", operator=CASHIER, effective=date(2023, 1, 10))
    assert found(app) == []


def test_a_bank_line_that_matches_nothing_is_found_until_it_is_resolved(sqlite_url: str) -> None:
    app = paid_case(sqlite_url, months=(JAN,))
    content = (
        "reference,amount,result,reason\n"
        "P-U1-202301-1,1200.00,settled,\n"
        "P-U7-202301-1,300.00,settled,\n"
    ).encode()
    loaded = app.load_bank_results("results-202301.csv", content, operator=CASHIER, effective=date(2023, 1, 10))
    assert loaded.settled == 1 and len(loaded.exceptions) == 1
    assert findings(app) == [{
        "rule": "bank-exception-unresolved", "case": "", "month": "", "amount_fen": 30000,
        "detail": "results-202301.csv line 3 (P-U7-202301-1): unknown payment reference",
    }]
    app.resolve_bank_exception(content, 3, "the bank's test line", operator=CASHIER, effective=date(2023, 1, 11))
    assert findings(app) == []


def test_findings_are_ordered_by_rule_then_case_and_month(sqlite_url: str) -> None:
    app = paid_case(sqlite_url)
    app.record_death("H1", members(app)[1], operator=VERIFIER, effective=date(2023, 2, 10))
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 50000, MAR, operator=DECIDER, effective=LATER)
    app.suspend("U1", "review overdue", MAR, operator=DECIDER, effective=LATER)
    assert found(app) == [
        ("above-standard", "U1", "2023-03", 120000),
        ("paid-after-death", "U1", "2023-03", 120000),
        ("paid-while-not-active", "U1", "2023-03", 120000),
    ]


def test_the_trail_lists_every_event_of_a_case_and_its_payments_in_log_order(sqlite_url: str) -> None:
    app = paid_case(sqlite_url, months=(JAN,))
    app.return_payment("P-U1-202301-1", "account closed", operator=CASHIER, effective=date(2023, 1, 9))
    pay(app, "U1", JAN)
    Projections(app).catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = trail(conn, "U1")
        with pytest.raises(NotFound, match="no case U9"):
            trail(conn, "U9")
    kinds = [r["event"] for r in rows]
    assert kinds[:4] == ["Case.Applied", "Case.Verified", "Case.Approved", "Payment.Issued"]
    assert kinds[-2:] == ["Payment.Returned", "Payment.Issued"]
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert {r["subject"] for r in rows} == {"U1", "P-U1-202301-1", "P-U1-202301-2"}
    assert rows[2]["operator"] == DECIDER and rows[2]["what"].startswith("Approved 1,200.00 yuan a month for 2 persons")
