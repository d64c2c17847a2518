"""Fuzzing the command line: hostile import files and random option values never crash it.

Whatever the input, ``ledger`` exits 0, 1 or 2 with a message, never a traceback, and a
refused command or import leaves the event log exactly as it was (nothing half-written).

Known crashes are pinned by strict ``xfail`` tests in ``test_import.py`` and ``test_errors.py``
and kept out of these strategies so the fuzz stays green until they are fixed:
member ``flags`` that are not text or a list, an ``action`` that is a list or an object,
integers over 4300 digits, nesting deeper than the recursion limit, bytes that are not UTF-8,
lone surrogates, ``--known-at`` and ``--limit`` (see those tests).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.importer import ACTIONS
from tests.cli.conftest import CASHIER, DECIDER, LI_MING, WANG_FANG, copy_database, head, invoke, url_of
from tests.cli.test_import import VALID, write_jsonl
from tests.conftest import idn

FUZZ = settings(
    deadline=None,
    database=None,  # no .hypothesis directory in the working tree
    derandomize=False,  # the same examples on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SEEDED = 10  # VALID[:SEEDED] (standards and households) is in the database before each import
CONTINUATION = VALID[SEEDED:]  # lines that are valid on top of it, in this order

_counter = itertools.count()


@pytest.fixture(scope="module")
def import_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("import-template")
    path = d / "l.sqlite"
    r = invoke(url_of(path), ["import", str(write_jsonl(d / "seed.jsonl", VALID[:SEEDED]))])
    assert r.exit_code == 0, r.output
    return path


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


_heads: dict[Path, int] = {}


def _fresh_copy(template: Path, directory: Path) -> tuple[str, Path, int]:
    """A copy of ``template`` in a file of its own, a file name for the import, and the head of the copy."""
    if template not in _heads:
        _heads[template] = head(url_of(template))
    n = next(_counter)
    path = directory / f"l{n}.sqlite"
    copy_database(template, path)
    return url_of(path), directory / f"f{n}.jsonl", _heads[template]


# --------------------------------------------------------------------------- strategies: import lines

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)

ids = st.sampled_from([idn(101), idn(102), idn(104), idn(106), idn(999), "12345", idn(101).lower(), ""])
members = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), json_values),
        "id_number": st.one_of(ids, json_values),
        "relation": st.one_of(st.sampled_from(["head", "spouse", "child", "boss", ""]), json_values),
        # Only text, a list of text or nothing: other types are a known crash (test_import_member_flags_of_wrong_type).
        "flags": st.one_of(st.none(), st.text(max_size=12), st.lists(st.sampled_from(["ill", "minor", "x", ""]), max_size=3)),
        "extra": json_values,
    },
)

PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "operator": st.sampled_from(["zhang.wei", "li.na", "zhao.min", " ", ""]),
    "date": st.sampled_from(["2023-01-15", "2023-03-25", "2023-07-01", "2023-02-30", "2023-1-1", "9999-12-31",
                             "0001-01-01", "20230115"]),
    "case": st.sampled_from(["U1", "R1", "T1", "X9", " U1 ", ""]),
    "household": st.sampled_from(["H1", "H2", "H3", "H9", ""]),
    "number": st.sampled_from(["H1", "H4", "H5", " ", "汉字"]),
    "programme": st.sampled_from(["urban-dibao", "rural-dibao", "tekun", "temporary", "URBAN-DIBAO", "x"]),
    "area": st.sampled_from(["urban", "rural", "suburban"]),
    "channel": st.sampled_from(["window", "outreach", "referral", "fax"]),
    "amount": st.one_of(st.sampled_from(["900", "900.00", "1,200.50", "0", "0.001", "-5", "1e3", "760", 900, 0, -1]),
                        st.integers(min_value=-(10**40), max_value=10**40), st.floats()),
    "income": st.sampled_from(["0", 0, "310", "-1", "0.00", 310, 1.5]),
    "add_on": st.sampled_from([None, "", 0, "50", "-1", 1.5]),
    "from": st.sampled_from(["2023-04", "2023-13", "2023-4", "1899-12", "9999-12", ""]),
    "first_month": st.sampled_from(["2023-02", "2022-12", "2023-00", "9999-12"]),
    "month": st.sampled_from(["2023-02", "2023-03", "2023-07", "2023-99"]),
    "valid_until": st.sampled_from(["2023-12-31", "2022-01-01", "2023-02-29"]),
    "assets_ok": st.sampled_from([True, False, "true", 1, None]),
    "covered": st.one_of(st.none(), st.lists(ids, max_size=3), json_values),
    "members": st.one_of(st.lists(members, max_size=3), json_values),
    "member": st.one_of(members, json_values),
    "ref": st.sampled_from(["P-U1-202302-1", "P-U1-202303-1", "P-X-1", "P-U1-202313-1", ""]),
    "id_number": ids,
    "single_person": st.one_of(st.none(), ids),
}


@st.composite
def action_lines(draw: st.DrawFn) -> str:
    """An action line whose fields are plausible, missing, of the wrong type, or extra."""
    name = draw(st.one_of(st.sampled_from(sorted(ACTIONS)), st.sampled_from(["", "case.fly"]), scalars))
    fields = ["operator", "date"] + (list(ACTIONS[name].fields) if isinstance(name, str) and name in ACTIONS else [])
    obj: dict[str, Any] = {"action": name}
    for field in fields:
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # missing
        if choice == 1 and field not in ("members", "member"):
            obj[field] = draw(json_values)  # any JSON value, any type
        else:
            obj[field] = draw(PLAUSIBLE.get(field, st.text(max_size=15)))
    if draw(st.integers(0, 9)) == 0:
        obj[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return json.dumps(obj, ensure_ascii=draw(st.booleans()))


@st.composite
def truncated_lines(draw: st.DrawFn) -> str:
    text = json.dumps(draw(st.sampled_from(VALID)), ensure_ascii=False)
    return text[: draw(st.integers(1, len(text) - 1))]


hostile_lines = st.one_of(
    action_lines(),
    truncated_lines(),
    json_values.map(json.dumps),
    st.text(max_size=40).map(lambda s: s.replace("\n", " ").replace("\r", " ")),
)


@st.composite
def hostile_files(draw: st.DrawFn) -> str:
    """Valid lines (in order), then hostile ones, then perhaps more valid lines."""
    k = draw(st.integers(0, len(CONTINUATION)))
    head_lines = [json.dumps(x, ensure_ascii=False) for x in CONTINUATION[:k]]
    bad = draw(st.lists(hostile_lines, min_size=1, max_size=3))
    rest = [json.dumps(x) for x in CONTINUATION[k : k + draw(st.integers(0, 3))]]
    ending = draw(st.sampled_from(["\n", "", "\r\n"]))
    return "\n".join(head_lines + bad + rest) + ending


@settings(FUZZ, max_examples=1500)
@given(content=hostile_files())
def test_hostile_import_files(import_template: Path, fuzz_dir: Path, content: str) -> None:
    db, f, before = _fresh_copy(import_template, fuzz_dir)
    f.write_text(content, encoding="utf-8")
    r = invoke(db, ["import", str(f)], catch=True)
    assert "Traceback" not in r.output
    assert r.exit_code in (0, 1), (r.exit_code, r.output, r.exception)
    if r.exit_code == 0:
        assert r.exception is None
        m = re.search(r"imported (\d+) actions \((\d+) events\)", r.output)
        assert m, r.output
        assert head(db) == before + int(m.group(2))
    else:
        assert isinstance(r.exception, SystemExit), repr(r.exception)
        assert "Error: line " in r.output, r.output
        assert head(db) == before, "a refused import wrote events"


# --------------------------------------------------------------------------- strategies: option values

values = st.one_of(
    st.text(max_size=25),
    st.from_regex(r"\A-?\d{1,25}([.,]\d{0,3})?\Z"),
    st.from_regex(r"\A\d{4}-\d{1,2}(-\d{1,2})?\Z"),
    st.from_regex(r"\A\d{17}[\dXx]\Z"),
    st.integers(0, 10**6).map(idn),
    st.sampled_from(["", " ", "0", "0.00", "00", "1,000", "2023-02-29", "2024-02-29", "9999-12", "9999-12-31",
                     "1900-01", "1900-01-01", "0001-01-01", "2023-W01-1", "20230101", WANG_FANG, WANG_FANG.lower(),
                     LI_MING + " ", "\x00", "-", "--help", "２０２３-０１"]),
)

COMMANDS: list[tuple[str, list[str], list[str]]] = [
    # (operator, command with X for the fuzzed value, after the value)
    (CASHIER, ["payment", "issue", "U1", "--month"], []),
    (DECIDER, ["case", "approve", "U1", "--first-month", "2023-02", "--amount"], []),
    (DECIDER, ["case", "adjust", "U1", "--amount", "800", "--from"], []),
    (DECIDER, ["case", "suspend", "U1", "--reason", "r", "--from"], []),
    (DECIDER, ["case", "terminate", "U1", "--reason", "r", "--date", "2023-08-25", "--from"], []),
    ("zhang.wei", ["case", "apply", "U9", "--household", "H1", "--programme", "tekun", "--channel", "window", "--date"], []),
    ("zhang.wei", ["case", "apply", "U9", "--household", "H1", "--programme", "urban-dibao", "--channel", "window",
                   "--single-person"], []),
    ("zhang.wei", ["case", "verify", "U1", "--assets-ok", "--valid-until", "2023-12-31", "--income"], []),
    ("zhang.wei", ["case", "verify", "U1", "--income", "100", "--assets-ok", "--valid-until"], []),
    ("zhang.wei", ["household", "remove-member", "H1", "--reason", "moved", "--id-number"], []),
    ("zhang.wei", ["household", "record-death", "H1", "--id-number"], ["--date", "2023-09-01"]),
    (DECIDER, ["standard", "set", "--programme", "tekun", "--area", "urban", "--from", "2023-01", "--amount"], []),
    (DECIDER, ["standard", "set", "--programme", "tekun", "--area", "urban", "--amount", "700", "--from"], []),
    (DECIDER, ["grant", "approve", "T1", "--type", "fire", "--reason", "r", "--amount"], []),
    ("", ["account", "show", "U1", "--on"], []),
    ("", ["report", "statistics", "--to", "2023-09", "--from"], []),
    ("", ["report", "statistics", "--from", "2023-01", "--to"], []),
]


@settings(FUZZ, max_examples=1500)
@given(which=st.integers(0, len(COMMANDS) - 1), value=values)
def test_random_option_values(district_template: Path, fuzz_dir: Path, which: int, value: str) -> None:
    operator, args, after = COMMANDS[which]
    db, _, before = _fresh_copy(district_template, fuzz_dir)
    r = invoke(db, args + [value] + after, env={"LEDGER_OPERATOR": operator or None}, catch=True)
    assert "Traceback" not in r.output
    assert r.exit_code in (0, 1, 2), (r.exit_code, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code != 0:
        assert "Error: " in r.output, r.output
        assert head(db) == before, "a refused command wrote events"
