"""Failures at the command line: one line, the right exit status, nothing written, no traceback.

Exit 1 is a refusal by the ledger (unknown case, a rule broken, the database unreachable);
exit 2 is malformed input, and the message names the option.
"""

from __future__ import annotations

import pytest

from tests.cli.conftest import CASHIER, CLERK, DECIDER, LI_MING, as_json, head, invoke, ok, refused
from tests.conftest import idn

# --------------------------------------------------------------------------- unknown things


@pytest.mark.parametrize(
    "args",
    [
        ["account", "show", "X9"],
        ["case", "verify", "X9", "--income", "100", "--assets-ok", "--valid-until", "2023-12-31"],
        ["case", "approve", "X9", "--amount", "100", "--first-month", "2023-02"],
        ["case", "suspend", "X9", "--reason", "r", "--from", "2023-05"],
        ["case", "resume", "X9", "--from", "2023-05"],
        ["case", "terminate", "X9", "--reason", "r", "--from", "2023-05"],
        ["case", "reject", "X9", "--reason", "r"],
        ["grant", "pay", "X9"],
        ["payment", "issue", "X9", "--month", "2023-02"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_unknown_case(district: str, args: list[str]) -> None:
    before = head(district)
    out = refused(district, *args)
    assert out == "Error: no case X9\n"
    assert head(district) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["household", "show", "H9"], "Error: no household H9\n"),
        (["case", "apply", "U9", "--household", "H9", "--programme", "tekun", "--channel", "window"], "Error: no household H9\n"),
        (["payment", "settle", "P-U1-202305-1"], "Error: no payment P-U1-202305-1\n"),
        (["payment", "return", "nonsense", "--reason", "x"],
         "Error: invalid payment reference 'nonsense': expected P-<case>-<YYYYMM>-<n>\n"),
    ],
)
def test_unknown_household_or_payment(district: str, args: list[str], message: str) -> None:
    before = head(district)
    assert refused(district, *args) == message
    assert head(district) == before


# --------------------------------------------------------------------------- rules


def _one_line_error(out: str) -> None:
    assert out.startswith("Error: "), out
    assert out.count("\n") == 1 and out.endswith("\n"), out


@pytest.fixture
def applied(district: str) -> str:
    """The district plus U2: applied and verified by the clerk, not yet approved."""
    ok(district, "household", "register", "H3", "--community", "Nanjie", "--area", "urban",
       "--member", f"Sun Li:{idn(31)}:head", "--member", f"Sun Mei:{idn(32)}:child:minor",
       "--account", "6222020000000003", "--date", "2023-02-01")
    ok(district, "case", "apply", "U2", "--household", "H3", "--programme", "urban-dibao", "--channel", "window",
       "--date", "2023-02-01")
    ok(district, "case", "verify", "U2", "--income", "200", "--assets-ok", "--valid-until", "2023-06-30", "--date", "2023-02-02")
    return district


@pytest.mark.parametrize(
    "args, operator, fragment",
    [
        # Rule 1: four eyes.
        (["case", "approve", "U2", "--amount", "900", "--first-month", "2023-03", "--date", "2023-02-05"], CLERK,
         "cannot also approve it"),
        # Rule 1: the verification has expired.
        (["case", "approve", "U2", "--amount", "900", "--first-month", "2023-08", "--date", "2023-07-05"], DECIDER,
         "expired on 2023-06-30"),
        # Rule 1: no verification recorded before the decision.
        (["case", "approve", "U2", "--amount", "900", "--first-month", "2023-03", "--date", "2023-02-01"], DECIDER,
         "needs a verification recorded before this decision"),
        # Rule 5: above the standard times the persons covered (760 x 2).
        (["case", "approve", "U2", "--amount", "1520.01", "--first-month", "2023-03", "--date", "2023-02-05"], DECIDER,
         "above the ceiling of 1,520.00 yuan"),
        # An add-on needs its reason.
        (["case", "approve", "U2", "--amount", "1600", "--add-on", "100", "--first-month", "2023-03", "--date", "2023-02-05"],
         DECIDER, "add-on needs a documented reason"),
        # Covering someone who is not a member.
        (["case", "approve", "U2", "--amount", "700", "--cover", idn(99), "--first-month", "2023-03", "--date", "2023-02-05"],
         DECIDER, "Error: "),
        # Rule 2: February of U1 is paid already.
        (["payment", "issue", "U1", "--month", "2023-02"], CASHIER, "already paid for 2023-02"),
        # Rule 3: U1 is suspended in May, terminated from September, and U2 is not approved.
        (["payment", "issue", "U1", "--month", "2023-05"], CASHIER, "not active in 2023-05"),
        (["payment", "issue", "U1", "--month", "2023-10"], CASHIER, "not active in 2023-10"),
        (["payment", "issue", "U2", "--month", "2023-03"], CASHIER, "not active in 2023-03"),
        # Transitions.
        (["case", "resume", "U1", "--from", "2023-10"], DECIDER, "case U1 is terminated; cannot resume"),
        (["case", "suspend", "U2", "--reason", "r", "--from", "2023-03"], DECIDER, "cannot suspend"),
        (["payment", "settle", "P-U1-202302-1"], CASHIER, "already settled"),
        (["payment", "return", "P-U1-202303-1", "--reason", "again"], CASHIER, "already returned"),
        (["grant", "pay", "T1"], CASHIER, "already paid"),
        (["grant", "approve", "U2", "--type", "fire", "--amount", "100", "--reason", "r"], DECIDER,
         "grants are for temporary assistance cases"),
        # Duplicates.
        (["case", "apply", "U1", "--household", "H1", "--programme", "urban-dibao", "--channel", "window"], CLERK,
         "case U1 is already recorded"),
        (["household", "register", "H1", "--community", "x", "--area", "urban", "--member", f"A:{idn(41)}:head",
          "--account", "1"], CLERK, "household H1 is already recorded"),
        # Wrong programme for the household's area.
        (["case", "apply", "U3", "--household", "H2", "--programme", "urban-dibao", "--channel", "window"], CLERK,
         "household H2 is rural"),
        # Members must make sense.
        (["household", "register", "H4", "--community", "x", "--area", "urban", "--member", f"A:{idn(42)}:boss",
          "--account", "1"], CLERK, "invalid relation 'boss'"),
        (["household", "register", "H4", "--community", "x", "--area", "urban", "--member", f"A:{idn(43)}:spouse",
          "--account", "1"], CLERK, "exactly one member with relation 'head'"),
    ],
)
def test_rule_broken_is_one_line_and_writes_nothing(applied: str, args: list[str], operator: str, fragment: str) -> None:
    before = head(applied)
    out = refused(applied, *args, operator=operator)
    _one_line_error(out)
    assert fragment in out
    assert head(applied) == before


def test_grant_above_ten_standards_needs_override(district: str) -> None:
    ok(district, "case", "apply", "T2", "--household", "H2", "--programme", "temporary", "--channel", "window",
       "--date", "2023-04-01")
    ok(district, "case", "verify", "T2", "--income", "0", "--assets-ok", "--valid-until", "2023-05-31", "--date", "2023-04-02")
    before = head(district)
    # Rural standard 600.50: the cap is 6,005.00 yuan.
    out = refused(district, "grant", "approve", "T2", "--type", "fire", "--amount", "6005.01", "--reason", "house burnt",
                  "--date", "2023-04-03", operator=DECIDER)
    _one_line_error(out)
    assert "6,005.00" in out and "--override-reason" in out
    assert head(district) == before
    ok(district, "grant", "approve", "T2", "--type", "fire", "--amount", "6005.01", "--reason", "house burnt",
       "--override-reason", "house burnt down, family of one", "--date", "2023-04-03", operator=DECIDER)
    assert head(district) == before + 1
    assert as_json(district, "account", "show", "T2", "--on", "2023-04-30")["grant"]["amount_fen"] == 600501


# --------------------------------------------------------------------------- malformed input (exit 2)

APPROVE = ["case", "approve", "U1", "--first-month", "2023-02"]


@pytest.mark.parametrize(
    "args, option",
    [
        (["payment", "issue", "U1", "--month", "2023-13"], "--month"),
        (["payment", "issue", "U1", "--month", "2023-1"], "--month"),
        (["payment", "issue", "U1", "--month", "March"], "--month"),
        (["payment", "issue", "U1", "--month", "1899-12"], "--month"),
        (["payment", "issue", "U1", "--month", ""], "--month"),
        (APPROVE + ["--amount", "1.234"], "--amount"),
        (APPROVE + ["--amount", "-5"], "--amount"),
        (APPROVE + ["--amount", "0"], "--amount"),
        (APPROVE + ["--amount", "1e3"], "--amount"),
        (APPROVE + ["--amount", "abc"], "--amount"),
        (APPROVE + ["--amount", "NaN"], "--amount"),
        (APPROVE + ["--amount", "12 yuan"], "--amount"),
        (["case", "approve", "U1", "--amount", "900", "--first-month", "02/2023"], "--first-month"),
        (["case", "suspend", "U1", "--reason", "r", "--from", "23-05"], "--from"),
        (["case", "adjust", "U1", "--amount", "800", "--from", "2023-00"], "--from"),
        (["case", "suspend", "U1", "--reason", "r", "--from", "2023-05", "--date", "2023-02-30"], "--date"),
        (["case", "suspend", "U1", "--reason", "r", "--from", "2023-05", "--date", "yesterday"], "--date"),
        (["case", "verify", "U1", "--income", "100", "--assets-ok", "--valid-until", "2023-12-32"], "--valid-until"),
        (["case", "verify", "U1", "--income", "-1", "--assets-ok", "--valid-until", "2023-12-31"], "--income"),
        (["account", "show", "U1", "--on", "30.09.2023"], "--on"),
        (["account", "show", "U1", "--known-at", "soon"], "--known-at"),
        (["account", "show", "U1", "--format", "xml"], "--format"),
        (["case", "list", "--format", "yaml"], "--format"),
        (["case", "list", "--status", "happy"], "--status"),
        (["case", "list", "--programme", "dibao"], "--programme"),
        (["case", "list", "--limit", "0"], "--limit"),
        (["case", "apply", "U9", "--household", "H1", "--programme", "urban-dibao", "--channel", "fax"], "--channel"),
        (["case", "apply", "U9", "--household", "H1", "--programme", "pension", "--channel", "window"], "--programme"),
        (["case", "apply", "U9", "--household", "H1", "--programme", "urban-dibao", "--channel", "window",
          "--single-person", "12345"], "--single-person"),
        (["case", "apply", "U9", "--household", "H1", "--programme", "urban-dibao", "--channel", "window",
          "--single-person", idn(11)[:17] + ("0" if idn(11)[17] != "0" else "1")], "--single-person"),
        (APPROVE + ["--amount", "900", "--cover", "not-an-id"], "--cover"),
        (["household", "remove-member", "H1", "--id-number", LI_MING[:-1], "--reason", "x"], "--id-number"),
        (["household", "record-death", "H1", "--id-number", "14040319800101001"], "--id-number"),
        (["household", "move", "H1", "--area", "suburban"], "--area"),
        (["household", "register", "H9", "--community", "x", "--area", "urban", "--member", "Only Name", "--account", "1"],
         "--member"),
        (["standard", "set", "--programme", "temporary", "--area", "urban", "--amount", "1", "--from", "2023-01"],
         "--programme"),
        (["standard", "set", "--programme", "tekun", "--area", "urban", "--amount", "1,5.5.5", "--from", "2023-01"],
         "--amount"),
        (["report", "statistics", "--from", "2023-09", "--to", "2023-01"], "--to"),
        (["report", "statistics", "--from", "2023-01", "--to", "2023-02", "--lang", "fr"], "--lang"),
    ],
)
def test_malformed_input_exits_2_naming_the_option(district: str, args: list[str], option: str) -> None:
    before = head(district)
    out = refused(district, *args, code=2, operator=DECIDER)
    assert f"'{option}'" in out, out
    assert out.rstrip().splitlines()[-1].startswith("Error: ")
    assert head(district) == before


def test_missing_option_and_unknown_command(district: str) -> None:
    out = refused(district, "payment", "issue", "U1", code=2)
    assert "Missing option '--month'" in out
    out = refused(district, "case", "frobnicate", code=2)
    assert "No such command 'frobnicate'" in out
    out = refused(district, "account", "show", code=2)
    assert "Missing argument 'CASE'" in out


def test_import_of_missing_file_exits_2(district: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = refused(district, "import", str(tmp_path / "nowhere.jsonl"), code=2)
    assert "No such file or directory" in out


# --------------------------------------------------------------------------- the operator


def test_missing_operator_is_refused(district: str) -> None:
    before = head(district)
    out = refused(district, "payment", "issue", "U1", "--month", "2023-08", code=2, operator=None)
    assert "Missing option '--operator'" in out
    assert head(district) == before


def test_operator_falls_back_to_environment(district: str) -> None:
    r = invoke(district, ["payment", "issue", "U1", "--month", "2023-08", "--date", "2023-08-02"],
               env={"LEDGER_OPERATOR": "wu.jie"})
    assert r.exit_code == 0, r.output
    assert r.output == "P-U1-202308-1\n"
    timeline = as_json(district, "account", "show", "U1", "--on", "2023-09-30")["timeline"]
    assert (timeline[-1]["event"], timeline[-1]["operator"]) == ("Payment.Issued", "wu.jie")
    assert ok(district, "account", "show", "U1", "--on", "2023-09-30", operator=None).count("wu.jie") == 1


# --------------------------------------------------------------------------- an unreachable database

UNREACHABLE = "postgresql+psycopg2://u:secret@127.0.0.1:1/x"


@pytest.mark.parametrize(
    "args",
    [
        ["case", "list"],
        ["projections", "status"],
        ["account", "show", "U1"],
        ["standard", "set", "--programme", "tekun", "--area", "urban", "--amount", "1", "--from", "2023-01"],
        ["case", "apply", "U1", "--household", "H1", "--programme", "tekun", "--channel", "window"],
        ["payment", "issue", "U1", "--month", "2023-02"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_unreachable_database_is_one_line_without_password(args: list[str]) -> None:
    out = refused(UNREACHABLE, *args)
    _one_line_error(out)
    assert "secret" not in out
    assert out.startswith("Error: database error on postgresql+psycopg2://u:***@127.0.0.1:1/x")


def test_unreachable_database_from_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = refused(None, "case", "list", env={"LEDGER_DATABASE_URL": UNREACHABLE})
    _one_line_error(out)
    assert "secret" not in out


def test_import_into_unreachable_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "one.jsonl"
    f.write_text('{"action": "case.reject", "operator": "li.na", "date": "2023-01-01", "case": "U1", "reason": "r"}\n')
    out = refused(UNREACHABLE, "import", str(f))
    _one_line_error(out)
    assert "secret" not in out


# --------------------------------------------------------------------------- bugs found


def test_known_at_before_anything_was_recorded(district: str) -> None:
    out = refused(district, "account", "show", "U1", "--known-at", "1990-01-01T00:00:00+01:00")
    assert out.splitlines()[-1] == "Error: no case U1"


def test_known_at_outside_the_calendar_names_the_option(district: str) -> None:
    out = refused(district, "account", "show", "U1", "--known-at", "0001-01-01T00:00:00+01:00", code=2)
    assert "'--known-at'" in out


def test_extreme_known_at_is_a_clean_error(district: str) -> None:
    out = refused(district, "account", "show", "U1", "--known-at", "9999-12-31T23:59:59-01:00", code=2)
    assert "'--known-at'" in out


def test_extreme_known_at_in_statistics(district: str) -> None:
    refused(district, "report", "statistics", "--from", "2023-01", "--to", "2023-02",
            "--known-at", "0001-01-01T00:00:00+01:00", code=2)


def test_huge_limit_is_a_clean_error(district: str) -> None:
    out = refused(district, "case", "list", "--limit", "99999999999999999999", code=2)
    assert "'--limit'" in out


@pytest.mark.parametrize(
    "args",
    [
        ["account", "show", "U\udcff"],
        ["case", "list", "--household", "H\udcff"],
        ["case", "apply", "U\udcff", "--household", "H1", "--programme", "urban-dibao", "--channel", "window"],
        ["household", "set-account", "H1", "--payee", "Wang\udcff", "--account", "6222020000000009"],
    ],
    ids=["account-show", "case-list", "case-apply", "set-account"],
)
def test_undecodable_argument_is_a_clean_error(district: str, args: list[str]) -> None:
    before = head(district)
    out = refused(district, *args, code=2)
    assert "is not valid UTF-8 text" in out
    assert head(district) == before


def test_absurd_amount_is_refused_and_reads_keep_working(district: str) -> None:
    r = invoke(district, ["standard", "set", "--programme", "tekun", "--area", "urban", "--amount", "1" + "0" * 20,
                          "--from", "2023-01"], env={"LEDGER_OPERATOR": DECIDER}, catch=True)
    assert r.exit_code == 2, r.output
    assert "'--amount'" in r.output
    ok(district, "case", "list", operator=None)


def test_amount_beyond_decimal_precision_is_refused(district: str) -> None:
    refused(district, "standard", "set", "--programme", "tekun", "--area", "urban",
            "--amount", "1234567890123456789012345678.91", "--from", "2023-01", code=2, operator=DECIDER)


def test_date_out_of_the_ledger_range_names_the_option(district: str) -> None:
    out = refused(district, "account", "show", "U1", "--on", "0001-01-01", code=2)
    assert "'--on'" in out


def test_error_message_stays_on_one_line(district: str) -> None:
    out = refused(district, "account", "show", "U\n1")
    _one_line_error(out)
