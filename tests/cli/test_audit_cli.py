"""``ledger audit``: check, explain, trail, seal and verify, as an auditor types them.

The district (see conftest) is a clean record: the checks find nothing and every payment
has its chain of authority. Anomalies are then planted through the commands a clerk
would use (a death recorded late, a standard lowered after the months were paid, a
legacy approval imported by file) and must be reported with exit status 1.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from tests.cli.conftest import CASHIER, CLERK, DECIDER, LI_MING, as_json, head, invoke, ok, refused
from tests.conftest import idn

AUDITOR = "audit.chen"
HEADERS = ["rule", "case", "month", "amount", "detail"]


def check_rows(db: str) -> list[dict[str, str]]:
    r = invoke(db, ["audit", "check", "--format", "csv"])
    assert r.exit_code in (0, 1), r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert r.stdout.splitlines()[0].split(",") == HEADERS
    return rows


def plant(db: str, tmp_path: Path) -> None:
    """A death recorded late, a standard lowered back, and a legacy approval whose approver verified it."""
    ok(db, "household", "record-death", "H1", "--id-number", LI_MING, "--date", "2023-03-15")
    ok(db, "standard", "set", "--programme", "urban-dibao", "--area", "urban", "--amount", "250", "--from", "2023-07",
       "--date", "2023-08-25", operator=DECIDER)
    lines = [
        {"action": "household.register", "number": "H9", "community": "Dongjie", "area": "urban",
         "payee_account": "6222020000000009", "members": [{"name": "Qian Yu", "id_number": idn(91), "relation": "head"}]},
        {"action": "case.apply", "case": "L1", "household": "H9", "programme": "urban-dibao", "channel": "window"},
        {"action": "case.verify", "case": "L1", "income": 100, "assets_ok": True, "verifier": CLERK, "valid_until": "2023-12-31"},
        {"action": "case.approve-legacy", "case": "L1", "amount": "500", "first_month": "2023-01", "approver": CLERK,
         "legacy_reference": "MZ-2019-0042"},
    ]
    path = tmp_path / "legacy.jsonl"
    path.write_text("".join(json.dumps({"operator": "import.bot", "date": "2023-01-10", **x}) + "\n" for x in lines))
    assert "imported 4 actions" in ok(db, "import", str(path), operator=None)
    ok(db, "payment", "issue", "L1", "--month", "2023-01", "--date", "2023-01-25", operator=CASHIER)


# --------------------------------------------------------------------------- check


def test_check_finds_nothing_on_a_clean_record(district: str) -> None:
    r = invoke(district, ["audit", "check"])
    assert r.exit_code == 0, r.output
    assert r.stdout == "no findings\n"
    assert as_json(district, "audit", "check") == []
    assert check_rows(district) == []


def test_check_reports_planted_anomalies_exits_1_and_its_csv_parses(district: str, tmp_path: Path) -> None:
    plant(district, tmp_path)
    r = invoke(district, ["audit", "check"])
    assert r.exit_code == 1, r.output
    assert "Error: 4 findings" in r.output
    assert r.stdout.splitlines()[0].split() == HEADERS

    rows = check_rows(district)
    assert [(x["rule"], x["case"], x["month"], x["amount"]) for x in rows] == [
        ("verifier-is-approver", "L1", "2023-01", "500.00"),
        ("above-standard", "U1", "2023-07", "900.00"),
        ("paid-after-death", "U1", "2023-04", "900.00"),
        ("paid-after-death", "U1", "2023-07", "900.00"),
    ]
    assert rows[0]["detail"].startswith(f"{CLERK} verified (no. 1) and approved (Case.LegacyApproved at position")
    assert rows[1]["detail"] == "P-U1-202307-1: 900.00 yuan is above the standard in force, 250.00 x 3 persons"
    assert LI_MING not in r.output  # identity numbers are masked
    assert rows[2]["detail"] == f"P-U1-202304-1 covers {LI_MING[:4]}**********{LI_MING[-4:]}, recorded as deceased on 2023-03-15"

    r = invoke(district, ["audit", "check", "--format", "json"])
    assert r.exit_code == 1
    found = json.loads(r.stdout)
    assert [(f["rule"], f["case"], f["month"], f["amount_fen"]) for f in found] == [
        (x["rule"], x["case"], x["month"], int(x["amount"].replace(".", ""))) for x in rows
    ]


def test_a_bank_line_that_matches_nothing_is_a_finding_until_resolved(district: str, tmp_path: Path) -> None:
    results = tmp_path / "results-202304.csv"
    results.write_text("reference,amount,result,reason\nP-U1-202304-1,900.00,settled,\nP-U7-202304-1,12.00,settled,\n")
    ok(district, "payroll", "results", str(results), "--date", "2023-04-05", operator=CASHIER)
    rows = check_rows(district)
    assert [(x["rule"], x["case"], x["month"], x["amount"]) for x in rows] == [("bank-exception-unresolved", "", "", "12.00")]
    assert rows[0]["detail"] == "results-202304.csv line 3 (P-U7-202304-1): unknown payment reference"
    assert "Error: 1 findings" in refused(district, "audit", "check")
    ok(district, "payroll", "resolve", str(results), "--line", "3", "--note", "the bank's test line", operator=CASHIER)
    assert ok(district, "audit", "check", operator=None) == "no findings\n"


# --------------------------------------------------------------------------- explain


def test_explain_a_clean_payment_every_link_in_place(district: str) -> None:
    r = invoke(district, ["audit", "explain", "P-U1-202302-1"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith("Payment P-U1-202302-1 (regular) for 2023-02: 900.00 yuan, 3 persons, settled; "
                          f"issued by {CASHIER} on 2023-02-01 (recorded ")
    assert "  authorised by Case.Approved of 2023-01-20: 900.00 yuan a month for 3 persons, approved by li.na" in out
    assert f"  on verification no. 1 by {CLERK} of 2023-01-10: passed, income 310.00, valid until 2023-12-31" in out
    assert f"  under the urban-dibao standard for urban areas: 760.00 yuan per person, set by {DECIDER} from 2023-01" in out
    assert out.endswith("  every link is in place\n")

    chain = as_json(district, "audit", "explain", "P-U1-202303-2")
    assert chain["flags"] == []
    assert chain["payment"]["kind"] == "re-issue" and chain["payment"]["status"] == "issued"
    assert chain["decision"]["approver"] == DECIDER and chain["verification"]["verifier"] == CLERK


def test_explain_exits_1_and_lists_the_broken_links(district: str, tmp_path: Path) -> None:
    plant(district, tmp_path)
    out = refused(district, "audit", "explain", "P-U1-202304-1")
    assert f"  ! a covered person ({LI_MING[:4]}...{LI_MING[-4:]}) died before 2023-04" in out
    assert "Error: 1 broken or missing links behind P-U1-202304-1" in out
    assert "every link is in place" not in out

    out = refused(district, "audit", "explain", "P-L1-202301-1")
    assert "  ! the approval was carried over from a legacy system (MZ-2019-0042) without the ledger's checks" in out
    assert f"  ! {CLERK} both verified and approved (four eyes)" in out
    assert "Error: 2 broken or missing links behind P-L1-202301-1" in out

    r = invoke(district, ["audit", "explain", "P-U1-202307-1", "--format", "json"])
    assert r.exit_code == 1
    chain = json.loads(r.stdout)
    assert chain["flags"] == [
        "the amount is above the standard in force (250.00 yuan x 3 persons)",
        f"a covered person ({LI_MING[:4]}...{LI_MING[-4:]}) died before 2023-07",
    ]


def test_explain_refuses_unknown_and_malformed_references(district: str) -> None:
    assert "no payment P-U1-202305-1" in refused(district, "audit", "explain", "P-U1-202305-1")
    assert "invalid payment reference 'U1-202302'" in refused(district, "audit", "explain", "U1-202302")


# --------------------------------------------------------------------------- trail


def test_trail_as_table_json_and_csv(district: str) -> None:
    rows = as_json(district, "audit", "trail", "U1")
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert set(rows[0]) == {"position", "effective", "recorded_at", "operator", "event", "subject", "what"}
    assert (rows[0]["event"], rows[0]["operator"], rows[0]["effective"]) == ("Case.Applied", CLERK, "2023-01-05")
    events = [(r["event"], r["subject"]) for r in rows]
    assert ("Payment.Returned", "P-U1-202303-1") in events and ("Payment.Issued", "P-U1-202303-2") in events
    returned = next(r for r in rows if r["event"] == "Payment.Returned")
    assert returned["what"] == "Payment returned by the bank: account closed" and returned["effective"] == "2023-03-04"
    assert rows[-1]["event"] == "Case.Terminated" and rows[-1]["operator"] == DECIDER

    r = invoke(district, ["audit", "trail", "U1", "--format", "csv"])
    assert r.exit_code == 0
    parsed = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(parsed[0]) == ["position", "effective", "recorded_at", "operator", "event", "subject", "what"]
    assert parsed == [{k: str(v) for k, v in x.items()} for x in rows]

    table = ok(district, "audit", "trail", "U1", operator=None).splitlines()
    assert table[0].split() == ["pos", "effective", "recorded", "operator", "what"]
    assert len(table) == len(rows) + 2
    assert re.match(r"\s*\d+  2023-01-05  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  zhang\.wei  Application U1 for urban-dibao via outreach",
                    table[2]), table[2]

    assert "no case U9" in refused(district, "audit", "trail", "U9")


# --------------------------------------------------------------------------- seal and verify


def test_seal_prints_the_position_and_digest_that_verify_later_accepts(district: str) -> None:
    before = head(district)
    out = ok(district, "audit", "seal", "--date", "2023-10-01", operator=AUDITOR)
    m = re.fullmatch(r"sealed position (\d+): ([0-9a-f]{64})\n", out)
    assert m is not None, out
    position, digest = int(m.group(1)), m.group(2)
    assert position == before and head(district) == before + 1

    out = ok(district, "audit", "verify", "--against", digest, operator=None)
    assert f"digest {digest} matches the record up to position {position}" in out
    assert f"the event log: {before + 1:,} events verified, 1 seals match; head {before + 1} digest " in out

    # The seal is in the record, with its operator; a later seal covers it.
    out2 = ok(district, "audit", "seal", operator=AUDITOR)
    assert out2.startswith(f"sealed position {before + 1}: ")
    out = ok(district, "audit", "verify", "--against", digest, operator=None)
    assert "2 seals match" in out

    assert "Missing option '--operator'" in refused(district, "audit", "seal", operator=None, code=2)


def test_seal_refuses_an_empty_ledger(db: str) -> None:
    assert "the ledger is empty; nothing to seal" in refused(db, "audit", "seal", operator=AUDITOR)
