"""A payroll month on the command line, as finance staff type it.

Four urban dibao cases approved from January are paid in February's payroll (January in
arrears); another operator approves the batch; the bank file is exported; the bank's
results come back with settlements, two returns and one line that matches nothing exactly;
the next run re-issues the returned payments; reconciliation fails while the exception is
open and passes once it is resolved.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import ledger
from ledger.application import LedgerApp
from tests.conftest import idn

CLERK, DECIDER, CASHIER, CHECKER = "zhang.wei", "li.na", "zhao.min", "qian.jun"
BATCH = "B-202302-all-1"

#: case, household, head of household, monthly amount (yuan)
CASES = [("U1", "H1", "Wang Fang", "700.00"), ("U2", "H2", "Li Ming", "650.50"),
         ("U3", "H3", "Zhao Lan", "600.00"), ("U4", "H4", "Sun Li", "550.00")]


def cli(db: str, *args: str, operator: str | None = None) -> Result:
    env = {"LEDGER_DATABASE_URL": None, "LEDGER_OPERATOR": operator}
    return CliRunner().invoke(ledger, ["--db", db, *args], env=env, catch_exceptions=False)


def ok(db: str, *args: str, operator: str | None = None) -> Result:
    r = cli(db, *args, operator=operator)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.output
    return r


def refused(db: str, *args: str, operator: str | None = None, code: int = 1) -> str:
    r = CliRunner().invoke(ledger, ["--db", db, *args], env={"LEDGER_DATABASE_URL": None, "LEDGER_OPERATOR": operator})
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r.stderr


def events(db: str) -> int:
    return LedgerApp(db).recorder.max_notification_id() or 0


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def write_results(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["reference", "amount", "result", "reason"])
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Four urban dibao cases of one person each, approved from January 2023, recorded through the commands."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ok(url, "standard", "set", "--programme", "urban-dibao", "--area", "urban", "--amount", "760", "--from", "2023-01",
       "--date", "2022-12-20", operator=DECIDER)
    for n, (case, household, head, amount) in enumerate(CASES, start=1):
        ok(url, "household", "register", household, "--community", "Dongjie", "--area", "urban",
           "--member", f"{head}:{idn(100 + n)}:head", "--account", f"62220200000000{n:02d}", "--date", "2023-01-05",
           operator=CLERK)
        ok(url, "case", "apply", case, "--household", household, "--programme", "urban-dibao", "--channel", "window",
           "--date", "2023-01-05", operator=CLERK)
        ok(url, "case", "verify", case, "--income", "200", "--assets-ok", "--valid-until", "2023-12-31",
           "--date", "2023-01-10", operator=CLERK)
        ok(url, "case", "approve", case, "--amount", amount, "--first-month", "2023-01", "--date", "2023-01-20",
           operator=DECIDER)
    return url


def run_payroll(db: str) -> Result:
    return ok(db, "payroll", "run", "--month", "2023-02", "--chunk", "3", "--date", "2023-02-01", operator=CASHIER)


def test_a_payroll_month_from_run_to_reconciliation(db: str, tmp_path: Path) -> None:
    # ---- the run: February, and January in arrears
    r = run_payroll(db)
    assert r.stdout.splitlines()[0] == f"batch {BATCH} created: 8 payments issued"
    assert "payroll 2023-02: 4 cases owed something" in r.stderr
    (totals,) = [line for line in r.stdout.splitlines() if line.startswith("urban-dibao/urban")]
    assert totals.split() == ["urban-dibao/urban", "8", "8", "5,001.00", "0.00", "5,001.00"]

    # ---- four eyes, and no bank file before the approval
    out = tmp_path / "bank-202302.csv"
    assert "another operator must approve it" in refused(db, "payroll", "approve", BATCH, "--date", "2023-02-02",
                                                         operator=CASHIER)
    assert "exported only after another operator approves it" in refused(
        db, "payroll", "export", BATCH, "--out", str(out), "--date", "2023-02-02", operator=CASHIER)
    assert not out.exists()
    r = ok(db, "payroll", "approve", BATCH, "--date", "2023-02-02", operator=CHECKER)
    assert r.stdout.strip() == f"batch {BATCH} approved by {CHECKER}"

    # ---- the bank file
    r = ok(db, "payroll", "export", BATCH, "--out", str(out), "--date", "2023-02-02", operator=CASHIER)
    assert r.stdout.strip() == f"{out}: 8 payments, 5,001.00 yuan"
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "reference,payee_name,account,amount,benefit_month"
    lines = list(csv.reader(io.StringIO(text)))[1:]
    expected = [[f"P-{case}-2023{m:02d}-1", head, f"62220200000000{n:02d}", amount, f"2023-{m:02d}"]
                for n, (case, _, head, amount) in enumerate(CASES, start=1) for m in (1, 2)]
    assert lines == sorted(expected)
    assert list(tmp_path.glob(".ledger-*")) == []  # no temporary file left beside it

    # ---- the bank's results: five settled, two returned, one line that matches no payment exactly
    results = write_results(tmp_path / "results-202302.csv", [
        ("P-U1-202301-1", "700.00", "settled", ""),                    # line 2
        ("P-U1-202302-1", "700.00", "settled", ""),                    # line 3
        ("P-U2-202301-1", "650.50", "returned", "account closed"),     # line 4
        ("P-U2-202302-1", "650.50", "settled", ""),                    # line 5
        ("P-U3-202301-1", "600.00", "settled", ""),                    # line 6
        ("P-U3-202302-1", "600.00", "returned", "payee deceased"),     # line 7
        ("P-U4-202301-1", "550.00", "settled", ""),                    # line 8
        ("P-U4-202302-1", "555.00", "settled", ""),                    # line 9: amount differs
    ])
    r = ok(db, "payroll", "results", str(results), "--date", "2023-02-10", operator=CASHIER)
    assert "results-202302.csv: 5 settled, 2 returned, 1 exceptions" in r.stderr
    exception_rows = [line.split() for line in r.stdout.splitlines()[2:]]
    assert exception_rows == [["9", "P-U4-202302-1", "555.00", "settled", "amount", "555.00", "does", "not", "match",
                               "the", "payment's", "550.00"]]

    # The same file again: nothing changes; json and csv list the exception with its line.
    before = events(db)
    r = ok(db, "payroll", "results", str(results), "--format", "json", "--date", "2023-02-10", operator=CASHIER)
    data = json.loads(r.stdout)
    assert (data["already_loaded"], data["settled"], data["returned"]) == (True, 0, 0)
    assert [(x["line"], x["ref"], x["problem"]) for x in data["exceptions"]] == [
        (9, "P-U4-202302-1", "amount 555.00 does not match the payment's 550.00")]
    assert "was already loaded" in r.stderr
    r = ok(db, "payroll", "results", str(results), "--format", "csv", operator=CASHIER)
    assert csv_rows(r.stdout) == [{"line": "9", "reference": "P-U4-202302-1", "amount": "555.00", "result": "settled",
                                   "problem": "amount 555.00 does not match the payment's 550.00"}]
    assert events(db) == before

    # ---- the next run re-issues the returned payments, in a batch of their own
    r = run_payroll(db)
    assert r.stdout.splitlines()[0] == "batch B-202302-all-2 created: 2 payments issued"
    r = run_payroll(db)
    assert r.stdout.strip() == "nothing to pay for 2023-02: every active case is paid"
    batches = json.loads(ok(db, "payroll", "list", "--month", "2023-02", "--format", "json").stdout)
    assert [(b["batch"], b["status"], b["run_by"], b["approved_by"], b["payments"], b["amount"], b["exports"])
            for b in batches] == [
        (BATCH, "approved", CASHIER, CHECKER, 8, "5001.00", 1),
        ("B-202302-all-2", "completed", CASHIER, "", 2, "1250.50", 0),
    ]
    listed = csv_rows(ok(db, "payroll", "list", "--format", "csv").stdout)
    assert [row["batch"] for row in listed] == [BATCH, "B-202302-all-2"]
    account = json.loads(ok(db, "account", "show", "U2", "--on", "2023-02-28", "--format", "json").stdout)
    january = next(m for m in account["months"] if m["month"] == "2023-01")
    assert january["payments"] == ["P-U2-202301-1 (returned)", "P-U2-202301-2"]

    # ---- reconciliation: January balances; February fails while line 9 is open
    r = ok(db, "reconcile", "--month", "2023-01")
    assert r.stdout.splitlines()[0] == "Reconciliation of month 2023-01: 5 lines, 3 matched, 1 outstanding, 1 returned, 0 exception"
    r = cli(db, "reconcile", "--month", "2023-02")
    assert r.exit_code == 1
    assert "1 unexplained lines in month 2023-02" in r.stderr
    assert r.stdout.splitlines()[0] == "Reconciliation of month 2023-02: 5 lines, 2 matched, 1 outstanding, 1 returned, 1 exception"
    assert "results-202302.csv line 9: amount 555.00 does not match the payment's 550.00" in r.stdout
    working = json.loads(cli(db, "reconcile", "--month", "2023-02", "--format", "json").stdout)
    assert working["balanced"] is False
    assert [x["ref"] for x in working["lines"] if x["class"] == "exception"] == ["P-U4-202302-1"]

    r = ok(db, "payroll", "resolve", str(results), "--line", "9", "--note", "bank keyed 555 by mistake; paid 550",
           "--date", "2023-02-12", operator=CASHIER)
    assert r.stdout.strip() == "results-202302.csv line 9: resolved"
    assert "already resolved" in refused(db, "payroll", "resolve", str(results), "--line", "9", "--note", "again",
                                         operator=CASHIER)
    assert "is not an exception" in refused(db, "payroll", "resolve", str(results), "--line", "2", "--note", "x",
                                            operator=CASHIER)

    r = ok(db, "reconcile", "--month", "2023-02", "--all")
    assert r.stdout.splitlines()[0] == "Reconciliation of month 2023-02: 5 lines, 2 matched, 2 outstanding, 1 returned, 0 exception"
    data = json.loads(ok(db, "reconcile", "--month", "2023-02", "--format", "json").stdout)
    assert data["balanced"] is True and data["scope"] == "month 2023-02"
    assert data["totals"]["events"] == data["totals"]["read_model"] == {
        "issued_fen": 310050, "settled_fen": 135050, "returned_fen": 60000, "outstanding_fen": 55000 + 60000,
        "offset_fen": 0}
    classes = {x["ref"]: x["class"] for x in data["lines"]}
    assert classes == {"P-U1-202302-1": "matched", "P-U2-202302-1": "matched", "P-U3-202302-1": "returned",
                       "P-U3-202302-2": "outstanding", "P-U4-202302-1": "outstanding"}
    rows = csv_rows(ok(db, "reconcile", "--month", "2023-02", "--format", "csv").stdout)
    assert list(rows[0]) == ["ref", "case", "month", "amount", "events", "read_model", "bank", "class", "note"]
    assert {row["ref"]: (row["amount"], row["class"]) for row in rows} == {
        "P-U1-202302-1": ("700.00", "matched"), "P-U2-202302-1": ("650.50", "matched"),
        "P-U3-202302-1": ("600.00", "returned"), "P-U3-202302-2": ("600.00", "outstanding"),
        "P-U4-202302-1": ("550.00", "outstanding")}
    by_batch = json.loads(ok(db, "reconcile", "--batch", BATCH, "--format", "json").stdout)
    assert by_batch["balanced"] is True and len(by_batch["lines"]) == 8


def test_a_malformed_results_file_is_refused_naming_the_line(db: str, tmp_path: Path) -> None:
    run_payroll(db)
    ok(db, "payroll", "approve", BATCH, operator=CHECKER)
    before = events(db)
    bad = write_results(tmp_path / "bad.csv", [("P-U1-202301-1", "700.00", "settled", ""),
                                               ("P-U2-202301-1", "650.50", "returned", "")])
    err = refused(db, "payroll", "results", str(bad), operator=CASHIER)
    assert err.strip() == "Error: line 3: field 'reason': a returned payment needs the bank's reason"
    bad.write_text("reference,amount,result,reason\nP-U1-202301-1,700.00,settled\n", encoding="utf-8")
    assert "line 2: expected 4 fields" in refused(db, "payroll", "results", str(bad), operator=CASHIER)
    bad.write_bytes("reference,amount,result,reason\nP-U1-202301-1,700.00,returned,账户冻结\n".encode("gb18030"))
    assert "not UTF-8" in refused(db, "payroll", "results", str(bad), operator=CASHIER)
    assert events(db) == before
    data = json.loads(ok(db, "reconcile", "--month", "2023-01", "--format", "json").stdout)
    assert {x["class"] for x in data["lines"]} == {"outstanding"}


def test_reconcile_needs_exactly_one_scope(db: str) -> None:
    assert "give exactly one of --month and --batch" in refused(db, "reconcile", code=2)
    assert "give exactly one of --month and --batch" in refused(db, "reconcile", "--month", "2023-01", "--batch", BATCH,
                                                                code=2)


def test_payroll_of_a_month_with_nothing_owed_makes_no_batch(db: str) -> None:
    r = ok(db, "payroll", "run", "--month", "2022-12", "--date", "2022-12-01", operator=CASHIER)
    assert r.stdout.strip() == "nothing to pay for 2022-12: every active case is paid"
    assert json.loads(ok(db, "payroll", "list", "--format", "json").stdout) == []
