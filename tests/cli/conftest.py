"""Helpers for the command-line tests: a CliRunner, a database file per test, and a district.

Every test gets its own SQLite file under its ``tmp_path``. Commands are run in process
through click's :class:`CliRunner`; the operator is given with ``env={"LEDGER_OPERATOR": ...}``
or ``--operator``, never through ``os.environ``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import ledger
from tests.conftest import idn

CLERK = "zhang.wei"  # registers households, applies and verifies
DECIDER = "li.na"  # approves (four eyes: never the verifier)
CASHIER = "zhao.min"  # payments

# Identity numbers of the district (full numbers must never be printed).
WANG_FANG = idn(11)  # head of H1, seriously ill
LI_MING = idn(12)  # spouse in H1
WANG_XIAO = idn(13, born="20150101")  # child in H1
ZHAO_LAN = idn(21, born="19450303")  # head of H2 (rural), elderly


def copy_database(src: Path, dst: Path) -> None:
    """Copy a SQLite database consistently (its WAL included) with SQLite's backup API."""
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def invoke(db: str | None, args: Sequence[str], *, env: dict[str, str | None] | None = None,
           catch: bool = False, input: str | None = None) -> Result:
    """Run ``ledger [--db DB] ARGS`` in process; ``catch`` keeps exceptions in the result."""
    full = (["--db", db] if db else []) + list(args)
    base: dict[str, str | None] = {"LEDGER_OPERATOR": None, "LEDGER_DATABASE_URL": None}
    base.update(env or {})
    return CliRunner().invoke(ledger, full, env=base, catch_exceptions=catch, input=input)


def ok(db: str, *args: str, operator: str | None = CLERK) -> str:
    """Run a command that must succeed (exceptions propagate); return its output."""
    r = invoke(db, args, env={"LEDGER_OPERATOR": operator} if operator else None)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    return r.output


def refused(db: str | None, *args: str, code: int = 1, operator: str | None = CLERK,
            env: dict[str, str | None] | None = None) -> str:
    """Run a command that must be refused cleanly: exit ``code``, no traceback, a SystemExit."""
    full_env: dict[str, str | None] = {"LEDGER_OPERATOR": operator} if operator else {}
    full_env.update(env or {})
    r = invoke(db, args, env=full_env, catch=True)
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r.output


def head(db: str) -> int:
    """The number of events in the log (``projections status --format json``)."""
    r = invoke(db, ["projections", "status", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    heads = {row["head"] for row in rows}
    assert len(heads) == 1, rows
    return heads.pop()


def as_json(db: str, *args: str) -> Any:
    return json.loads(ok(db, *args, "--format", "json", operator=None))


# --------------------------------------------------------------------------- the district


def build_district(db: str, check: Callable[[str, str], None] | None = None) -> None:
    """A small district recorded through the commands a caseworker types.

    H1 (urban, Dongjie, 3 persons) has case U1: approved 900 yuan a month from 2023-02,
    paid for February (settled), March (returned by the bank, then re-issued), April and
    July; suspended May-June, resumed from July, terminated from September.
    H2 (rural, Xicun, 1 person) has R1 (rural dibao, rejected) and T1 (temporary, 1,500
    yuan illness grant, paid). ``check(expected_fragment, output)`` sees each command's output.
    """
    check = check or (lambda expected, out: None)

    def step(expected: str, *args: str, operator: str = CLERK) -> str:
        out = ok(db, *args, operator=operator)
        check(expected, out)
        return out

    step("urban-dibao standard for urban areas: 760.00 yuan per person from 2023-01",
         "standard", "set", "--programme", "urban-dibao", "--area", "urban", "--amount", "760", "--from", "2023-01",
         "--date", "2022-12-20", operator=DECIDER)
    step("urban-dibao standard for urban areas: 800.00 yuan per person from 2024-01",
         "standard", "set", "--programme", "urban-dibao", "--area", "urban", "--amount", "800.00", "--from", "2024-01",
         "--date", "2023-11-20", operator=DECIDER)
    step("rural-dibao standard for rural areas: 600.50 yuan per person from 2023-01",
         "standard", "set", "--programme", "rural-dibao", "--area", "rural", "--amount", "600.5", "--from", "2023-01",
         "--date", "2022-12-20", operator=DECIDER)

    step("household H1 registered with 3 members",
         "household", "register", "H1", "--community", "Dongjie", "--area", "urban",
         "--member", f"Wang Fang:{WANG_FANG}:head:ill",
         "--member", f"Li Ming:{LI_MING}:spouse",
         "--member", f"Wang Xiao:{WANG_XIAO}:child:minor",
         "--account", "6222020000000001", "--date", "2023-01-05")
    step("household H2 registered with 1 members",
         "household", "register", "H2", "--community", "Xicun", "--area", "rural",
         "--member", f"Zhao Lan:{ZHAO_LAN}:head:elderly+ill",
         "--account", "6222020000000002", "--payee", "Zhao Lan", "--date", "2023-01-06")

    # U1: the life of a monthly urban dibao case.
    step("case U1 applied for urban-dibao via outreach",
         "case", "apply", "U1", "--household", "H1", "--programme", "urban-dibao", "--channel", "outreach",
         "--date", "2023-01-05")
    step("case U1: verification no. 1 passed",
         "case", "verify", "U1", "--income", "310", "--assets-ok", "--valid-until", "2023-12-31", "--date", "2023-01-10")
    step("case U1 approved: 900.00 yuan a month for 3 persons from 2023-02",
         "case", "approve", "U1", "--amount", "900", "--first-month", "2023-02", "--date", "2023-01-20", operator=DECIDER)
    step("P-U1-202302-1", "payment", "issue", "U1", "--month", "2023-02", "--date", "2023-02-01", operator=CASHIER)
    step("P-U1-202302-1 settled", "payment", "settle", "P-U1-202302-1", "--date", "2023-02-03", operator=CASHIER)
    step("P-U1-202303-1", "payment", "issue", "U1", "--month", "2023-03", "--date", "2023-03-01", operator=CASHIER)
    step("P-U1-202303-1 returned: account closed",
         "payment", "return", "P-U1-202303-1", "--reason", "account closed", "--date", "2023-03-04", operator=CASHIER)
    step("P-U1-202303-2", "payment", "issue", "U1", "--month", "2023-03", "--date", "2023-03-06", operator=CASHIER)
    step("P-U1-202304-1", "payment", "issue", "U1", "--month", "2023-04", "--date", "2023-04-01", operator=CASHIER)
    step("case U1 suspended from 2023-05",
         "case", "suspend", "U1", "--reason", "review-overdue", "--from", "2023-05", "--date", "2023-04-25", operator=DECIDER)
    step("case U1 resumed from 2023-07",
         "case", "resume", "U1", "--from", "2023-07", "--date", "2023-06-20", operator=DECIDER)
    step("P-U1-202307-1", "payment", "issue", "U1", "--month", "2023-07", "--date", "2023-07-01", operator=CASHIER)
    step("case U1 terminated from 2023-09",
         "case", "terminate", "U1", "--reason", "income-above-standard", "--from", "2023-09", "--date", "2023-08-20",
         operator=DECIDER)

    # R1: a rural application that fails the means test and is rejected.
    step("case R1 applied for rural-dibao via window",
         "case", "apply", "R1", "--household", "H2", "--programme", "rural-dibao", "--channel", "window",
         "--date", "2023-02-10")
    step("case R1: verification no. 1 did NOT pass",
         "case", "verify", "R1", "--income", "0", "--assets-exceed", "--valid-until", "2023-06-30", "--date", "2023-02-15")
    step("case R1 rejected", "case", "reject", "R1", "--reason", "assets above the limits", "--date", "2023-02-20",
         operator=DECIDER)

    # T1: temporary assistance, a grant approved and paid.
    step("case T1 applied for temporary via referral",
         "case", "apply", "T1", "--household", "H2", "--programme", "temporary", "--channel", "referral",
         "--date", "2023-03-01")
    step("case T1: verification no. 1 passed",
         "case", "verify", "T1", "--income", "150.25", "--assets-ok", "--valid-until", "2023-04-30", "--date", "2023-03-02")
    step("grant of 1,500.00 yuan approved on case T1",
         "grant", "approve", "T1", "--type", "illness", "--amount", "1500", "--reason", "hospital bill",
         "--date", "2023-03-05", operator=DECIDER)
    step("grant of case T1 paid", "grant", "pay", "T1", "--date", "2023-03-08", operator=CASHIER)


@pytest.fixture(scope="session")
def district_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The district built once; each test copies the file (its own database)."""
    path = tmp_path_factory.mktemp("district") / "l.sqlite"
    build_district(url_of(path))
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    """An empty database of this test's own."""
    return url_of(tmp_path / "l.sqlite")


@pytest.fixture
def district(tmp_path: Path, district_template: Path) -> str:
    """A copy of the district in this test's own database file."""
    path = tmp_path / "l.sqlite"
    copy_database(district_template, path)
    return url_of(path)


# --------------------------------------------------------------------------- account checks

TOTALS = ("entitled", "issued", "returned", "net_paid", "balance")


def assert_totals(state: dict[str, Any], **fen: int) -> None:
    """Check the account totals exactly, in fen and as yuan text (other totals may be present)."""
    totals = state["totals"]
    for key, value in fen.items():
        assert totals[f"{key}_fen"] == value, (key, totals)
        whole, cents = divmod(abs(value), 100)
        assert totals[f"{key}_yuan"] == f"{'-' if value < 0 else ''}{whole}.{cents:02d}", (key, totals)
    if "balance" in fen:
        assert (totals["balance"] == "settled") == (fen["balance"] == 0), totals["balance"]


def assert_summary(text: str, **yuan_text: str) -> None:
    """Check the account table's summary: 'Entitlement accrued 4,500.00 ... net paid 3,600.00 ... balance 900.00'."""
    labels = {"entitled": "Entitlement accrued", "issued": "issued", "returned": "returned",
              "net_paid": "net paid", "balance": "balance"}
    for key, value in yuan_text.items():
        pattern = rf"(?<![\w-]){labels[key]}\s+{re.escape(value)}(?![\d,.])"
        assert re.search(pattern, text), f"{labels[key]} {value} not in:\n{text}"


def month_row(text: str, month: str) -> list[str]:
    """The cells of the account table's row for a benefit month (month, entitled, issued, returned, ...)."""
    rows = [line.split("  ") for line in text.splitlines() if re.match(rf"{month}\s{{2}}", line)]
    assert len(rows) == 1, (month, text)
    return [c.strip() for c in rows[0] if c.strip()]
