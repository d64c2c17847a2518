"""The benchmark harness: its synthetic caseload is valid, and a short district run reports every figure."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import caseload
from ledger.application import LedgerApp
from ledger.importer import import_lines
from ledger.values import parse_id_number
from tests.conftest import PG_ENV

ROOT = Path(__file__).resolve().parents[1]


def test_caseload_identity_numbers_are_valid_and_unique() -> None:
    seen: set[str] = set()
    programmes: Counter[str] = Counter()
    for h in range(3000):
        hh = caseload.household(h)
        members = hh.lines[0]["members"]
        assert 1 <= len(members) <= 4
        assert [m["relation"] for m in members].count("head") == 1
        for m in members:
            assert parse_id_number(m["id_number"]) == m["id_number"]
            assert m["id_number"] not in seen
            seen.add(m["id_number"])
        programmes[hh.programme] += 1
        verify, approve = hh.lines[2], hh.lines[3]
        assert verify["verifier"] == verify["operator"] != approve["operator"]
        assert hh.case_no == caseload.case_number(h)
    assert set(programmes) == {"urban-dibao", "rural-dibao", "tekun"}
    # Households far apart (a province and its profiling extra) never share a person either.
    for h in (999_999, 1_000_000, 1_012_499):
        for m in caseload.household(h).lines[0]["members"]:
            assert m["id_number"] not in seen
            seen.add(m["id_number"])


def test_caseload_imports_through_the_importer() -> None:
    app = LedgerApp("memory:")
    result = import_lines(app, caseload.lines(0, 60, with_standards=True))
    assert result.actions["case.approve"] == 60
    assert result.events - 60 * 4 >= len(caseload.standard_lines())  # four events per household
    assert sum(n for _, n in caseload.chunks(5000, 50_000)) == 5000
    assert caseload.chunks(5000, 8000)[1] == (2000, 2000)


FIGURES = [
    "import (`import_lines`, JSONL files)",
    "payroll, one month (candidates + `run_payroll` + `catch_up`)",
    "projection rebuild (`Projections.rebuild`)",
    "`account show` (`account_state`), p50 / p95",
    "`report statistics`, nine months (`statistics`)",
    "`audit verify` (`verify_log`)",
    "peak memory (RSS growth of the step's process)",
]


def _run(tmp_path: Path, *args: str) -> tuple[str, dict]:
    out = tmp_path / "performance.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args, "--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return out.read_text(encoding="utf-8"), json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))


def _row(text: str, label: str, section: str) -> list[str]:
    body = text.split(f"## {section}", 1)[1]
    line = next(line for line in body.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


@pytest.mark.slow
def test_district_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    text, store = _run(tmp_path, "--scale", "district", "--db", "sqlite", "--months", "2", "--samples", "50",
                       "--profile", "none")
    run = store["runs"]["district/sqlite"]
    assert run["households"] == 5000 and len(run["steps"]["payroll"]) == 2
    for key in ("CPU", "cores", "memory", "Python", "SQLite"):
        assert re.search(rf"^\| {key} \| \S", text, re.M), key
    for label in FIGURES:
        cells = _row(text, label, "district on SQLite")
        step, figure, raw, ratio, target, met, seconds, memory, cpu, load = cells
        assert re.search(r"\d", figure), (label, figure)
        assert re.search(r"\d", raw), (label, raw)
        assert target != "-", (label, target)
        assert met.startswith(("yes", "**no**")), (label, met)
        assert re.search(r"\d+ MB", memory), (label, memory)
        if label != FIGURES[-1]:
            assert re.search(r"\d", ratio) and re.search(r"\d", seconds) and re.search(r"\d\.\d\d", load), cells
    # Units of the figures, the payroll month by month, and the province estimate.
    assert re.search(r"\| [\d,]+ events/s \|", text)
    assert re.search(r"\| [\d,]+ payments/s \|", text)
    assert re.search(r"\| [\d.]+ / [\d.]+ ms \|", text)
    assert "| 2024-01 |" in text and "| 2024-02 |" in text
    assert "## Province" in text and "not run" in text and "estimated time" in text
    assert run["steps"]["verify"]["ok"] is True
    assert run["steps"]["account"]["cli"]["returncode"] == 0
    assert run["steps"]["statistics"]["cli"]["returncode"] == 0
    assert all(m["payments"] > 4000 for m in run["steps"]["payroll"])


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_path_of_the_harness(tmp_path: Path) -> None:
    """A very small run on PostgreSQL: fresh database, COPY and streamed reads, profiling, database dropped."""
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"set {PG_ENV} to run PostgreSQL tests")
    text, store = _run(tmp_path, "--scale", "district", "--households", "300", "--db", "postgres", "--months", "1",
                       "--samples", "20", "--profile", "all", "--pg-url", server)
    run = store["runs"]["district/postgres"]
    assert run["steps"]["import"]["raw_insert"]["method"] == "COPY"
    assert run["steps"]["import"]["raw_insert"]["rows"] == run["steps"]["import"]["events"]
    assert set(run["profiles"]) == {"import", "payroll", "rebuild", "account", "statistics", "verify"}
    assert "### district on PostgreSQL" in text and "Top functions by cumulative time" in text
    from sqlalchemy import create_engine, text as sql

    assert run["database"].startswith("ledger_bench_district_")
    engine = create_engine(server)
    with engine.connect() as conn:
        left = conn.execute(sql("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": run["database"]}).scalar()
    engine.dispose()
    assert left == 0


def test_account_probe_times_each_account_and_statement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import account_probe
    from projections.runner import Projections

    url = f"sqlite:///{tmp_path / 'kept.db'}"
    app = LedgerApp(url)
    import_lines(app, caseload.lines(0, 60, with_standards=True))
    Projections(app).catch_up()
    assert account_probe.main([url, "--households", "60", "--samples", "20", "--seed", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"20 accounts: p50 [\d.]+ ms, p95 [\d.]+ ms, max [\d.]+ ms", out[0]), out[0]
    rows = [line.strip("|").split(" | ") for line in out[3:]]
    by_case = [r for r in rows if r[-1].strip(" `|").startswith("rm_case WHERE rm_case.case_no")]
    assert len(by_case) == 1 and int(by_case[0][0]) == 20  # one look-up of the case row per account
    totals = [float(r[1]) for r in rows]
    assert totals == sorted(totals, reverse=True) and all(t > 0 for t in totals)


def test_account_probe_refuses_a_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import account_probe

    assert account_probe.main([f"sqlite:///{tmp_path / 'none.db'}", "--scale", "district"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no SQLite file at ") and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()
