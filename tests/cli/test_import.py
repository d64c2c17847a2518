"""``ledger import``: a realistic file with every action, and files that must be refused whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.importer import ACTIONS
from ledger.values import mask_id
from tests.cli.conftest import as_json, assert_summary, assert_totals, head, invoke, ok, refused
from tests.conftest import idn

A, B, C = idn(101), idn(102), idn(103, born="20150601")  # H1: head, spouse, child added later
D, E = idn(104, born="19480202"), idn(105)  # H2: head, sibling who moves out
F, G = idn(106), idn(107)  # H3: head, spouse who dies

CLERK, DECIDER, CASHIER = "zhang.wei", "li.na", "zhao.min"


def _line(action: str, operator: str, day: str, **fields: Any) -> dict[str, Any]:
    return {"action": action, "operator": operator, "date": day, **fields}


VALID: list[dict[str, Any]] = [
    _line("standard.set", DECIDER, "2022-12-20", programme="urban-dibao", area="urban", amount="760", **{"from": "2023-01"}),
    _line("standard.set", DECIDER, "2022-12-20", programme="rural-dibao", area="rural", amount=600, **{"from": "2023-01"}),
    _line("household.register", CLERK, "2023-01-05", number="H1", community="Dongjie", area="urban",
          payee_account="6222020000000001", payee_name="Wang Fang",
          members=[{"name": "Wang Fang", "id_number": A, "relation": "head", "flags": ["ill"]},
                   {"name": "Li Ming", "id_number": B, "relation": "spouse"}]),
    _line("household.add-member", CLERK, "2023-01-06", household="H1",
          member={"name": "Wang Xiao", "id_number": C, "relation": "child", "flags": "minor"}),
    _line("household.register", CLERK, "2023-01-06", number="H2", community="Xicun", area="urban",
          payee_account="6222020000000002",
          members=[{"name": "Zhao Lan", "id_number": D, "relation": "head", "flags": ["elderly"]},
                   {"name": "Zhao Gang", "id_number": E, "relation": "sibling"}]),
    _line("household.move", CLERK, "2023-01-07", household="H2", area="rural"),
    _line("household.set-account", CASHIER, "2023-01-07", household="H2", payee_name="Zhao Lan",
          payee_account="6228480000000022"),
    _line("household.remove-member", CLERK, "2023-01-08", household="H2", id_number=E, reason="moved out"),
    _line("household.register", CLERK, "2023-01-08", number="H3", community="Nanjie", area="urban",
          payee_account="6222020000000003",
          members=[{"name": "Sun Li", "id_number": F, "relation": "head"},
                   {"name": "Sun Mei", "id_number": G, "relation": "spouse"}]),
    _line("household.record-death", CLERK, "2023-01-09", household="H3", id_number=G),
    # U1: approved, paid, returned, re-issued, adjusted, suspended, resumed, terminated.
    _line("case.apply", CLERK, "2023-01-10", case="U1", household="H1", programme="urban-dibao", channel="outreach"),
    _line("case.verify", CLERK, "2023-01-12", case="U1", income="310", assets_ok=True, verifier=CLERK,
          valid_until="2023-12-31"),
    _line("case.approve", DECIDER, "2023-01-20", case="U1", amount="1500", first_month="2023-02", covered=[A, B, C]),
    _line("payment.issue", CASHIER, "2023-02-01", case="U1", month="2023-02"),
    _line("payment.settle", CASHIER, "2023-02-03", ref="P-U1-202302-1"),
    _line("payment.issue", CASHIER, "2023-03-01", case="U1", month="2023-03"),
    _line("payment.return", CASHIER, "2023-03-04", ref="P-U1-202303-1", reason="account closed"),
    _line("payment.issue", CASHIER, "2023-03-06", case="U1", month="2023-03"),
    _line("case.verify", CLERK, "2023-03-20", case="U1", income="420.50", assets_ok=True, verifier=CLERK,
          valid_until="2023-12-31"),
    _line("case.adjust", DECIDER, "2023-03-25", case="U1", amount="1200.50", **{"from": "2023-04"}),
    _line("payment.issue", CASHIER, "2023-04-01", case="U1", month="2023-04"),
    _line("case.suspend", DECIDER, "2023-04-28", case="U1", reason="review overdue", **{"from": "2023-05"}),
    _line("case.resume", DECIDER, "2023-05-28", case="U1", **{"from": "2023-06"}),
    _line("payment.issue", CASHIER, "2023-06-01", case="U1", month="2023-06"),
    _line("case.terminate", DECIDER, "2023-06-28", case="U1", reason="income above standard", **{"from": "2023-07"}),
    # R1: a rural application whose verification fails; rejected.
    _line("case.apply", CLERK, "2023-01-10", case="R1", household="H2", programme="rural-dibao", channel="window"),
    _line("case.verify", CLERK, "2023-01-11", case="R1", income=0, assets_ok=False, verifier=CLERK, valid_until="2023-06-30"),
    _line("case.reject", DECIDER, "2023-01-15", case="R1", reason="assets above the limits"),
    # T1: temporary assistance after the death in H3.
    _line("case.apply", CLERK, "2023-01-10", case="T1", household="H3", programme="temporary", channel="referral"),
    _line("case.verify", CLERK, "2023-01-11", case="T1", income="0.00", assets_ok=True, verifier=CLERK,
          valid_until="2023-02-28"),
    _line("grant.approve", DECIDER, "2023-01-12", case="T1", type="funeral", amount="2000", reason="funeral costs"),
    _line("grant.pay", CASHIER, "2023-01-13", case="T1"),
    # L1: a case carried over from the legacy system as it stood there.
    _line("case.apply", CLERK, "2023-01-14", case="L1", household="H3", programme="urban-dibao", channel="window"),
    _line("case.approve-legacy", CLERK, "2023-01-14", case="L1", amount="600", first_month="2023-01",
          approver="old.system", legacy_reference="MZ-2019-0042"),
]


def write_jsonl(path: Path, lines: list[Any], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines) + extra, encoding="utf-8")
    return path


def test_the_valid_file_covers_every_action() -> None:
    assert {line["action"] for line in VALID} == set(ACTIONS)


def test_import_valid_file(db: str, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "caseload.jsonl", VALID, extra="\n# a comment line and a blank line are skipped\n\n")
    out = ok(db, "import", str(f), operator=None)
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"imported {len(VALID)} actions (")
    assert "case.verify 4" in last and "payment.issue 5" in last and "grant.pay 1" in last
    n = head(db)
    assert f"({n} events)" in last

    cases = {r["case_no"]: r for r in as_json(db, "case", "list")}
    assert {k: v["status"] for k, v in cases.items()} == {"L1": "active", "R1": "rejected", "T1": "paid", "U1": "terminated"}
    assert cases["U1"]["amount"] == "1200.50"
    assert [r["case_no"] for r in as_json(db, "case", "list", "--programme", "rural-dibao")] == ["R1"]

    u1 = as_json(db, "account", "show", "U1", "--on", "2023-07-31")
    assert u1["status"] == "terminated"
    assert [(m["month"], m["entitled_fen"], m["issued_fen"], m["returned_fen"], m["net_paid_fen"]) for m in u1["months"]] == [
        ("2023-02", 150000, 150000, 0, 150000),
        ("2023-03", 150000, 300000, 150000, 150000),
        ("2023-04", 120050, 120050, 0, 120050),
        ("2023-06", 120050, 120050, 0, 120050),
    ]
    assert_totals(u1, entitled=540100, issued=690100, returned=150000, net_paid=540100, balance=0)
    assert [p["id_number"] for p in u1["covered"]] == [mask_id(A), mask_id(B), mask_id(C)]
    ops = {e["operator"] for e in u1["timeline"]}
    assert ops == {CLERK, DECIDER, CASHIER}

    t1 = as_json(db, "account", "show", "T1", "--on", "2023-01-31")
    assert t1["grant"]["amount_fen"] == 200000 and t1["status"] == "paid"

    h2 = as_json(db, "household", "show", "H2")
    assert h2["area"] == "rural" and h2["payee_account"].endswith("0022")
    assert {m["id_number"]: m["status"] for m in h2["members"]}[mask_id(E)] != "present"
    h3 = as_json(db, "household", "show", "H3")
    assert {m["id_number"]: m["status"] for m in h3["members"]}[mask_id(G)] != "present"

    text = ok(db, "account", "show", "U1", "--on", "2023-07-31", operator=None)
    for full in (A, B, C):
        assert full not in text
    assert_summary(text, entitled="5,401.00", issued="6,901.00", returned="1,500.00", net_paid="5,401.00", balance="0.00")

    # Importing the same file again is refused as a whole (the households exist) and writes nothing.
    again = refused(db, "import", str(f), operator=None)
    assert again.startswith("Error: line 3 (household.register): household H1 is already recorded")
    assert head(db) == n


def test_import_from_standard_input(db: str) -> None:
    data = "".join(json.dumps(x) + "\n" for x in VALID[:3])
    r = invoke(db, ["import", "-"], input=data)
    assert r.exit_code == 0, r.output
    assert "imported 3 actions" in r.output
    assert [d["programme"] for d in as_json(db, "standard", "list")] == ["rural-dibao", "urban-dibao"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "line 35: not valid JSON"),
        ('["a list"]', "line 35: expected a JSON object"),
        ('{"action": "case.fly", "operator": "x", "date": "2023-01-01"}', "line 35: field 'action': unknown action 'case.fly'"),
        ('{"action": "case.reject", "date": "2023-01-01", "case": "U1", "reason": "r"}', "line 35: field 'operator' is missing"),
        ('{"action": "case.reject", "operator": "x", "date": "2023-02-30", "case": "U1", "reason": "r"}',
         "line 35: field 'date': invalid date"),
        ('{"action": "case.reject", "operator": "x", "date": "2023-01-01", "case": "U1", "reason": "r", "colour": 1}',
         "line 35: field 'colour' is not a field of case.reject"),
        ('{"action": "payment.issue", "operator": "x", "date": "2023-07-01", "case": "U1", "month": "2023-7"}',
         "line 35: field 'month': invalid month"),
        ('{"action": "case.adjust", "operator": "x", "date": "2023-07-01", "case": "U1", "amount": 12.5, "from": "2023-07"}',
         "line 35: field 'amount': invalid amount 12.5: give yuan as text or an integer, never a float"),
        ('{"action": "payment.issue", "operator": "x", "date": "2023-07-01", "case": "U1", "month": "2023-06"}',
         "line 35 (payment.issue): case U1 is already paid for 2023-06"),
        ('{"action": "case.verify", "operator": "x", "date": "2023-07-01", "case": "U1", "income": "1", "assets_ok": "yes",'
         ' "verifier": "x", "valid_until": "2023-12-31"}', "line 35: field 'assets_ok': expected true or false"),
    ],
)
def test_import_is_all_or_nothing(db: str, tmp_path: Path, bad: str, message: str) -> None:
    ok(db, "standard", "set", "--programme", "tekun", "--area", "urban", "--amount", "1000", "--from", "2023-01",
       operator="li.na")
    before = head(db)
    f = write_jsonl(tmp_path / "f.jsonl", VALID, extra=bad + "\n")
    out = refused(db, "import", str(f), operator=None)
    assert out.startswith("Error: " + message), out
    assert out.count("\n") == 1
    assert head(db) == before
    assert as_json(db, "case", "list") == []


# --------------------------------------------------------------------------- bugs found in the importer


def _refused_cleanly(db: str, tmp_path: Path, raw: bytes) -> str:
    before = head(db)
    f = tmp_path / "hostile.jsonl"
    f.write_bytes("".join(json.dumps(x) + "\n" for x in VALID[:3]).encode() + raw)
    out = refused(db, "import", str(f), operator=None)
    assert out.startswith("Error: line "), out
    assert head(db) == before
    return out


@pytest.mark.parametrize("flags", [5, True, 1.5])
def test_import_member_flags_of_wrong_type(db: str, tmp_path: Path, flags: Any) -> None:
    line = _line("household.register", CLERK, "2023-01-05", number="H9", community="x", area="urban",
                 payee_account="1", members=[{"name": "A", "id_number": idn(109), "relation": "head", "flags": flags}])
    _refused_cleanly(db, tmp_path, (json.dumps(line) + "\n").encode())


@pytest.mark.parametrize("action", [["case.reject"], {"a": 1}])
def test_import_unhashable_action(db: str, tmp_path: Path, action: Any) -> None:
    _refused_cleanly(db, tmp_path, (json.dumps({"action": action, "operator": "x", "date": "2023-01-01"}) + "\n").encode())


def test_import_integer_beyond_python_limit(db: str, tmp_path: Path) -> None:
    line = '{"action": "case.reject", "operator": "x", "date": "2023-01-01", "case": "U1", "reason": ' + "9" * 5000 + "}\n"
    _refused_cleanly(db, tmp_path, line.encode())


def test_import_deeply_nested_json(db: str, tmp_path: Path) -> None:
    _refused_cleanly(db, tmp_path, b"[" * 100_000 + b"\n")


def test_import_invalid_utf8(db: str, tmp_path: Path) -> None:
    _refused_cleanly(db, tmp_path, b'{"action": "case.reject", "operator": "\xff"}\n')


@pytest.mark.parametrize("field", ["number", "payee_account", "community"])
def test_import_lone_surrogate(db: str, tmp_path: Path, field: str) -> None:
    line = _line("household.register", CLERK, "2023-01-05", number="H9", community="x", area="urban",
                 payee_account="1", members=[{"name": "A", "id_number": idn(109), "relation": "head"}])
    line[field] = "X\ud800"
    _refused_cleanly(db, tmp_path, (json.dumps(line) + "\n").encode())


def test_import_absurd_amount_keeps_reads_working(db: str, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "f.jsonl", [
        _line("standard.set", DECIDER, "2023-01-01", programme="tekun", area="urban", amount=10**20, **{"from": "2023-01"}),
    ])
    r = invoke(db, ["import", str(f)], catch=True)
    if r.exit_code == 0:  # accepted: then the ledger must still be readable
        r = invoke(db, ["case", "list"], catch=True)
        assert r.exit_code == 0 and r.exception is None, repr(r.exception)
    else:
        assert isinstance(r.exception, SystemExit) and r.exit_code == 1


def test_a_large_file_is_checked_in_several_processes_with_the_same_result(tmp_path: Path) -> None:
    from tests.unit.test_import_parallel import STANDARDS, interleaved

    lines = interleaved(range(0, 550))
    assert len(lines) >= 4000  # large enough to be checked in several processes
    standards = tmp_path / "standards.jsonl"
    standards.write_text("\n".join(STANDARDS) + "\n", encoding="utf-8")
    caseload = tmp_path / "caseload.jsonl"
    caseload.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = {}
    for workers in ("1", "2"):
        db = f"sqlite:///{tmp_path}/ledger-{workers}.sqlite"
        ok(db, "import", str(standards), operator=None)
        r = invoke(db, ["import", "--workers", workers, str(caseload)])
        assert r.exit_code == 0, r.output
        assert "import: 1,000 lines checked" in r.stderr
        shown = [invoke(db, [*args, "--format", "json"]).stdout for args in (["case", "list"], ["account", "show", "C101"])]
        outputs[workers] = (r.stdout, [_untimed(json.loads(text)) for text in shown], head(db))
        assert "verified" in ok(db, "audit", "verify", operator=None)
    assert outputs["2"] == outputs["1"]
    assert outputs["1"][0].startswith(f"imported {len(lines)} actions (")

    # A broken line is refused the same way, and nothing is written.
    db = f"sqlite:///{tmp_path}/ledger-2.sqlite"
    before = head(db)
    broken = list(lines)
    broken[3000] = broken[3000].replace('"date": "2023-', '"date": "2023-13-')
    caseload.write_text("\n".join(broken) + "\n", encoding="utf-8")
    assert refused(db, "import", "--workers", "2", str(caseload), operator=None).startswith("Error: line 3001: field 'date'")
    assert head(db) == before


def _untimed(value: Any) -> Any:
    """``value`` without the times events were recorded at (two imports record at different times)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "recorded_at"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value
