"""A caseworker's day through the command line: every step and what the read commands then show."""

from __future__ import annotations

import csv
import io
import json

from tests.cli.conftest import (
    CASHIER,
    LI_MING,
    WANG_FANG,
    WANG_XIAO,
    ZHAO_LAN,
    as_json,
    assert_summary,
    assert_totals,
    build_district,
    head,
    invoke,
    month_row,
    ok,
)
from ledger.values import mask_id

FULL_IDS = (WANG_FANG, LI_MING, WANG_XIAO, ZHAO_LAN)


def _expect(expected: str, out: str) -> None:
    assert expected in out, f"expected {expected!r} in {out!r}"


def test_walkthrough_every_step_reports_what_it_recorded(db: str) -> None:
    build_district(db, check=_expect)
    # 3 standards, 2 households, U1: 3 + 7 payment events + 3 decisions, R1: 3, T1: 4.
    assert head(db) == 27
    assert ok(db, "case", "list", "--status", "terminated", "--format", "csv", operator=None).splitlines()[1].startswith("U1,")


def test_operator_from_environment_is_recorded(db: str) -> None:
    ok(db, "standard", "set", "--programme", "urban-dibao", "--area", "urban", "--amount", "760", "--from", "2023-01",
       operator="env.clerk")
    ok(db, "household", "register", "H1", "--community", "Dongjie", "--area", "urban",
       "--member", f"Wang Fang:{WANG_FANG}:head", "--account", "6222020000000001", operator="env.clerk")
    # An explicit --operator wins over the environment.
    r = invoke(db, ["case", "apply", "U1", "--household", "H1", "--programme", "urban-dibao", "--channel", "window",
                    "--operator", "explicit.clerk", "--date", "2023-01-05"], env={"LEDGER_OPERATOR": "env.clerk"})
    assert r.exit_code == 0, r.output
    ok(db, "case", "verify", "U1", "--income", "100", "--assets-ok", "--valid-until", "2023-12-31", "--date", "2023-01-06",
       operator="env.clerk")
    timeline = as_json(db, "account", "show", "U1", "--on", "2023-01-31")["timeline"]
    assert [(e["event"], e["operator"]) for e in timeline] == [
        ("Case.Applied", "explicit.clerk"),
        ("Case.Verified", "env.clerk"),
    ]
    assert "Verification by env.clerk passed" in timeline[1]["summary"]


def test_account_show_table(district: str) -> None:
    out = ok(district, "account", "show", "U1", "--on", "2023-09-30", operator=None)
    lines = out.splitlines()
    assert lines[0] == "Case U1  urban-dibao (urban), applied 2023-01-05 via outreach"
    assert lines[1] == "Household H1  Dongjie  payee Wang Fang ************0001"
    assert lines[2] == "Status on 2023-09-30: terminated"
    # month, entitled, issued, returned (the first columns), then the payments at the end.
    assert month_row(out, "2023-02")[:4] == ["2023-02", "900.00", "900.00", "0.00"]
    assert month_row(out, "2023-03")[:4] == ["2023-03", "900.00", "1,800.00", "900.00"]
    assert month_row(out, "2023-03")[-1] == "P-U1-202303-1 (returned), P-U1-202303-2"
    assert month_row(out, "2023-04")[:4] == ["2023-04", "900.00", "900.00", "0.00"]
    assert month_row(out, "2023-07")[:4] == ["2023-07", "900.00", "900.00", "0.00"]
    assert month_row(out, "2023-08")[:4] == ["2023-08", "900.00", "0.00", "0.00"]
    assert_summary(out, entitled="4,500.00", issued="4,500.00", returned="900.00", net_paid="3,600.00", balance="900.00")
    # Suspended months (May, June) and months after the termination are not due.
    assert not any(line.startswith(("2023-05 ", "2023-06 ", "2023-09 ")) for line in lines)
    assert f"Wang Fang  {mask_id(WANG_FANG)}  head      present" in lines
    for full in FULL_IDS:
        assert full not in out
    # The history names who recorded each step.
    assert any("li.na" in line and "Approved 900.00 yuan a month for 3 persons from 2023-02" in line for line in lines)
    assert any(CASHIER in line and "Payment returned by the bank: account closed" in line for line in lines)


def test_account_show_json_numbers_are_exact(district: str) -> None:
    s = as_json(district, "account", "show", "U1", "--on", "2023-09-30")
    assert s["status"] == "terminated"
    assert s["persons"] == 3
    assert s["first_month"] == "2023-02"
    assert [(m["month"], m["entitled_fen"], m["issued_fen"], m["returned_fen"], m["net_paid_fen"]) for m in s["months"]] == [
        ("2023-02", 90000, 90000, 0, 90000),
        ("2023-03", 90000, 180000, 90000, 90000),
        ("2023-04", 90000, 90000, 0, 90000),
        ("2023-07", 90000, 90000, 0, 90000),
        ("2023-08", 90000, 0, 0, 0),
    ]
    for m in s["months"]:
        assert m["net_paid_fen"] == m["issued_fen"] - m["returned_fen"], m
        assert m["entitled_yuan"] == f"{m['entitled_fen'] // 100}.{m['entitled_fen'] % 100:02d}"
    # 5 months of 900 due; 4 net paid (March twice, once returned): 900 still owed to the household.
    assert_totals(s, entitled=450000, issued=450000, returned=90000, net_paid=360000, balance=90000)
    assert [p["id_number"] for p in s["covered"]] == [mask_id(WANG_FANG), mask_id(LI_MING), mask_id(WANG_XIAO)]
    assert s["household"]["payee_account"] == "************0001"
    assert [e["event"] for e in s["timeline"]][:3] == ["Case.Applied", "Case.Verified", "Case.Approved"]


def test_account_show_as_of_earlier_dates(district: str) -> None:
    march = as_json(district, "account", "show", "U1", "--on", "2023-03-31")
    assert march["status"] == "active"
    assert march["monthly_amount_fen"] == 90000
    assert_totals(march, entitled=180000, issued=270000, returned=90000, net_paid=180000, balance=0)

    may = as_json(district, "account", "show", "U1", "--on", "2023-05-31")
    assert may["status"] == "suspended"
    assert may["monthly_amount_fen"] == 0

    january = as_json(district, "account", "show", "U1", "--on", "2023-01-31")
    assert january["status"] == "approved, not yet started"
    assert january["totals"]["entitled_fen"] == 0


def test_grant_account(district: str) -> None:
    s = as_json(district, "account", "show", "T1", "--on", "2023-09-30")
    assert s["programme"] == "temporary"
    assert s["status"] == "paid"
    assert s["grant"] == {"type": "illness", "amount_fen": 150000, "amount_yuan": "1500.00", "paid_on": "2023-03-08"}
    assert_totals(s, entitled=150000, issued=150000, returned=0, net_paid=150000, balance=0)
    before = as_json(district, "account", "show", "T1", "--on", "2023-03-06")
    assert before["status"] == "granted"
    assert_totals(before, entitled=150000, issued=0, net_paid=0, balance=150000)
    table = ok(district, "account", "show", "T1", "--on", "2023-09-30", operator=None)
    assert "Grant: illness  1,500.00 yuan  paid on 2023-03-08" in table
    assert_summary(table, entitled="1,500.00", issued="1,500.00", returned="0.00", net_paid="1,500.00", balance="0.00")


def test_full_identity_numbers_never_printed(district: str) -> None:
    outputs = []
    for case_no in ("U1", "R1", "T1"):
        for fmt in ("table", "json"):
            outputs.append(ok(district, "account", "show", case_no, "--on", "2023-09-30", "--format", fmt, operator=None))
    for number in ("H1", "H2"):
        for fmt in ("table", "json"):
            outputs.append(ok(district, "household", "show", number, "--format", fmt, operator=None))
    for fmt in ("table", "json", "csv"):
        outputs.append(ok(district, "case", "list", "--format", fmt, operator=None))
    text = "\n".join(outputs)
    for full in FULL_IDS:
        assert full not in text
        assert full[6:14] not in text  # not even the date of birth
        assert mask_id(full) in text
    assert "6222020000000001" not in text


def test_case_list_filters_and_formats(district: str) -> None:
    def cases(*args: str) -> list[str]:
        return [r["case_no"] for r in as_json(district, "case", "list", *args)]

    assert cases() == ["R1", "T1", "U1"]
    assert cases("--programme", "urban-dibao") == ["U1"]
    assert cases("--programme", "tekun") == []
    assert cases("--status", "rejected") == ["R1"]
    assert cases("--status", "paid") == ["T1"]
    assert cases("--household", "H2") == ["R1", "T1"]
    assert cases("--community", "Dongjie") == ["U1"]
    assert cases("--household", "H2", "--programme", "temporary") == ["T1"]
    assert cases("--limit", "2") == ["R1", "T1"]

    rows = {r["case_no"]: r for r in as_json(district, "case", "list")}
    assert rows["U1"]["amount"] == "900.00"
    assert rows["U1"]["persons"] == 3
    assert rows["U1"]["status"] == "terminated"
    assert rows["U1"]["first_month"] == "2023-02"
    assert rows["T1"]["amount"] == "1500.00"

    text = ok(district, "case", "list", "--format", "csv", "--community", "Xicun", operator=None)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["case", "household", "community", "programme", "channel", "status", "amount", "persons",
                         "first_month", "applied_on"]
    assert parsed[1:] == [
        ["R1", "H2", "Xicun", "rural-dibao", "window", "rejected", "0.00", "0", "", "2023-02-10"],
        ["T1", "H2", "Xicun", "temporary", "referral", "paid", "1500.00", "0", "", "2023-03-01"],
    ]

    r = invoke(district, ["case", "list", "--programme", "urban-dibao"])
    assert r.exit_code == 0
    assert r.stdout.splitlines()[2].split() == \
        ["U1", "H1", "Dongjie", "urban-dibao", "outreach", "terminated", "900.00", "3", "2023-02", "2023-01-05"]
    assert "1 cases" in r.stderr  # the count goes to stderr, data to stdout


def test_household_show(district: str) -> None:
    out = ok(district, "household", "show", "H1", operator=None)
    lines = out.splitlines()
    assert lines[0] == "Household H1  Dongjie (urban)  payee Wang Fang ************0001"
    assert f"Wang Xiao  {mask_id(WANG_XIAO)}  child     minor  present" in lines
    assert lines[-1] == "cases: U1 (urban-dibao, terminated)"
    h = as_json(district, "household", "show", "H2")
    assert h["area"] == "rural"
    assert h["members"] == [{
        "name": "Zhao Lan", "id_number": mask_id(ZHAO_LAN), "relation": "head", "flags": ["elderly", "ill"],
        "status": "present", "since": "2023-01-06", "until": None,
    }]
    assert [(c["case_no"], c["status"]) for c in h["cases"]] == [("R1", "rejected"), ("T1", "paid")]


def test_standard_list(district: str) -> None:
    data = as_json(district, "standard", "list")
    assert [(d["programme"], d["area"], d["from"], d["amount"]) for d in data] == [
        ("rural-dibao", "rural", "2023-01", "600.50"),
        ("urban-dibao", "urban", "2023-01", "760.00"),
        ("urban-dibao", "urban", "2024-01", "800.00"),
    ]
    table = ok(district, "standard", "list", operator=None)
    assert any(line.startswith("urban-dibao  urban  2024-01       800.00") for line in table.splitlines())
    text = ok(district, "standard", "list", "--format", "csv", operator=None)
    assert text.splitlines()[0] == "programme,area,from,amount,recorded_at"
    assert text.splitlines()[1].startswith("rural-dibao,rural,2023-01,600.50,")


def test_projections_status_catch_up_rebuild(district: str) -> None:
    before = as_json(district, "account", "show", "U1", "--on", "2023-09-30")
    n = head(district)
    ok(district, "household", "set-account", "H1", "--payee", "Li Ming", "--account", "6222020000000099", operator=CASHIER)
    status = as_json(district, "projections", "status")
    assert status == [{"name": "ledger", "position": n, "head": n + 1, "behind": 1}]
    table = ok(district, "projections", "status", operator=None)
    assert table.splitlines()[0].split() == ["read", "model", "position", "head", "behind"]

    assert ok(district, "projections", "catch-up", operator=None).splitlines()[-1] == "applied 1 events"
    assert as_json(district, "projections", "status") == [{"name": "ledger", "position": n + 1, "head": n + 1, "behind": 0}]
    assert ok(district, "projections", "catch-up", operator=None).splitlines()[-1] == "applied 0 events"

    assert ok(district, "projections", "rebuild", operator=None).splitlines()[-1] == f"rebuilt from {n + 1} events"
    after = as_json(district, "account", "show", "U1", "--on", "2023-09-30")
    assert after["household"]["payee_account"] == "************0099"
    assert after["household"]["payee_name"] == "Li Ming"
    for key in ("months", "totals", "covered", "status", "timeline"):
        assert after[key] == before[key], key
    assert as_json(district, "household", "show", "H1")["payee_name"] == "Li Ming"


def test_household_member_changes(district: str) -> None:
    from tests.conftest import idn

    baby = idn(14, born="20230301")
    ok(district, "household", "add-member", "H1", "--member", f"Wang Bao:{baby}:child:minor", "--date", "2023-03-02")
    ok(district, "household", "remove-member", "H1", "--id-number", LI_MING, "--reason", "moved out", "--date", "2023-04-01")
    ok(district, "household", "record-death", "H2", "--id-number", ZHAO_LAN, "--date", "2023-05-02")
    ok(district, "household", "move", "H1", "--area", "rural", "--date", "2023-06-01")
    h1 = as_json(district, "household", "show", "H1")
    assert h1["area"] == "rural"
    status = {m["id_number"]: m["status"] for m in h1["members"]}
    assert status[mask_id(baby)] == "present"
    assert status[mask_id(LI_MING)] != "present"
    h2 = as_json(district, "household", "show", "H2")
    assert h2["members"][0]["status"] != "present"
    assert json.dumps(h1).count(baby) == 0
