"""One benchmark step, run in a fresh process: ``python -m benchmarks.steps SPEC.json RESULT.json``.

A fresh process per step gives each step a clean peak RSS (``ru_maxrss``) and a cold
application (the aggregates cache, SQLAlchemy's compiled-statement cache, the page
cache of the database excepted). The step's figure is timed around the application's
own calls only; generating import files, reading back rows for the raw insert and the
raw measurements themselves happen outside that clock and after the memory reading.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks import caseload, raw

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2024, 12, 31)
PAYROLL_OPERATOR = "fin.zhao"
ACCOUNT_ON = date(2024, 12, 31)
STATS_FIRST, STATS_LAST, STATS_ON = "2024-01", "2024-09", date(2024, 9, 30)


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Meter:
    """Wall time of the measured segments, CPU time of this process, peak memory, load average."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.seconds = 0.0
        self.profile = cProfile.Profile() if spec.get("profile") else None
        self.trace = bool(spec.get("tracemalloc"))
        self.segments: dict[str, float] = {}
        self.segment_memory: dict[str, int] = {}  # RSS peak growth reached by the end of each named segment
        self.segment_traced: dict[str, int] = {}  # tracemalloc peak within each named segment

    def start(self) -> None:
        gc.collect()
        self.rss0 = _maxrss()
        self.cpu0 = _cpu()
        self.load0 = os.getloadavg()
        self.wall0 = time.perf_counter()
        if self.trace:
            tracemalloc.start()

    @contextmanager
    def segment(self, name: str = "") -> Iterator[None]:
        if self.trace:
            tracemalloc.reset_peak()
        if self.profile:
            self.profile.enable()
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            if self.profile:
                self.profile.disable()
            self.seconds += dt
            if name:
                self.segments[name] = self.segments.get(name, 0.0) + dt
                self.segment_memory[name] = _maxrss() - self.rss0
                if self.trace:
                    self.segment_traced[name] = max(self.segment_traced.get(name, 0), tracemalloc.get_traced_memory()[1])

    def stop(self) -> dict[str, Any]:
        peak = None
        if self.trace:
            peak = max([tracemalloc.get_traced_memory()[1], *self.segment_traced.values()])
            tracemalloc.stop()
        rss1 = _maxrss()
        return {
            "seconds": self.seconds,
            "segments": self.segments,
            "segment_memory": self.segment_memory,
            "segment_traced": self.segment_traced,
            "wall": time.perf_counter() - self.wall0,
            "cpu": _cpu() - self.cpu0,
            "maxrss": rss1,
            "maxrss_delta": rss1 - self.rss0,
            "maxrss_before": self.rss0,
            "tracemalloc_peak": peak,
            "load_start": self.load0[0],
            "load_end": os.getloadavg()[0],
        }


def _app(url: str) -> Any:
    from ledger.application import LedgerApp

    return LedgerApp(url, clock=lambda: TODAY)


def _head(app: Any) -> int:
    return app.recorder.max_notification_id() or 0


def _engine(app: Any) -> Any:
    return app.factory.datastore.engine


def _events_table(app: Any) -> Any:
    return app.recorder.events_record_cls.__table__


# --------------------------------------------------------------------------- steps


def step_import(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Import the caseload through ``ledger.importer.import_lines``, one JSONL file per chunk."""
    from ledger.importer import import_lines

    app = _app(spec["url"])
    workdir = Path(spec["workdir"])
    first, count = spec["first"], spec["count"]
    plan = [(first + a, n) for a, n in caseload.chunks(count, spec["lines_per_file"])]
    head0 = _head(app)
    files = []
    meter.start()
    for k, (a, n) in enumerate(plan):
        path = workdir / f"caseload-{a:07d}.jsonl"
        lines = caseload.write_file(path, a, n, with_standards=spec.get("standards", True) and k == 0)
        before = _head(app)
        t = time.perf_counter()
        with meter.segment("import_lines"), path.open(encoding="utf-8") as f:
            result = import_lines(app, f)
        dt = time.perf_counter() - t
        files.append({"lines": lines, "events": result.events, "seconds": dt, "log_before": before})
        path.unlink()
    m = meter.stop()
    head1 = _head(app)
    out = {"events": head1 - head0, "lines": sum(f["lines"] for f in files), "files": files, "households": count,
           "range": [head0, head1], "meter": m}
    if spec.get("raw"):
        out["raw_insert"] = raw.bulk_insert(_engine(app), _events_table(app), head0, head1)
    return out


def step_catchup(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Bring the read models up to the head of the log (after the import)."""
    from projections.runner import Projections

    app = _app(spec["url"])
    proj = Projections(app)
    position = proj.view.position()
    head = _head(app)
    meter.start()
    with meter.segment("catch_up"):
        applied = proj.catch_up()
    out = {"events": applied, "range": [position, head], "meter": meter.stop()}
    if spec.get("raw"):
        out["raw_read"] = raw.ordered_read(_engine(app), _events_table(app))
    return out


def step_payroll(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """One month's payroll with its read models: candidates + run_payroll + catch_up."""
    from ledger.values import Month
    from projections.payroll import CHUNK as PAYROLL_CHUNK
    from projections.payroll import ReadModelPayroll, candidates
    from projections.runner import Projections

    app = _app(spec["url"])
    proj = Projections(app)
    before = proj.catch_up()  # nothing normally: the previous step left the read models current
    month = Month.parse(spec["month"])
    engine = _engine(app)
    head0 = _head(app)
    meter.start()
    with meter.segment("candidates"), engine.connect() as conn:
        items = candidates(conn, month)
    with meter.segment("run_payroll"):
        result = app.run_payroll(month, None, items, operator=PAYROLL_OPERATOR, effective=month.first_day(),
                                 chunk=PAYROLL_CHUNK, pay_chunk=ReadModelPayroll(app, proj))
    head1 = _head(app)
    with meter.segment("catch_up"):
        applied = proj.catch_up()
    m = meter.stop()
    out = {
        "month": str(month),
        "cases": len(items),
        "payments": len(result.issued),
        "skipped": len(result.skipped),
        "skipped_examples": result.skipped[:3],
        "batch": result.batch,
        "events": head1 - head0,
        "applied": applied,
        "caught_up_before": before,
        "range": [head0, head1],
        "log_after": head1,
        "meter": m,
    }
    if spec.get("raw"):
        out["raw_insert"] = raw.bulk_insert(engine, _events_table(app), head0, head1)
    return out


def step_rebuild(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Drop the read models and replay the whole log into them."""
    from projections.runner import Projections

    app = _app(spec["url"])
    proj = Projections(app)
    meter.start()
    with meter.segment("rebuild"):
        applied = proj.rebuild()
    out = {"events": applied, "log": _head(app), "meter": meter.stop()}
    if spec.get("raw"):
        out["raw_read"] = raw.ordered_read(_engine(app), _events_table(app))
    return out


def sample_cases(spec: dict[str, Any]) -> list[str]:
    """The random cases of the ``account`` step (also those of :mod:`benchmarks.account_probe`)."""
    rnd = random.Random(spec.get("seed", 1))
    n = spec["households"]
    picks = rnd.sample(range(n), min(spec["samples"], n))
    return [caseload.case_number(h) for h in picks]


def _cli(url: str, *args: str) -> dict[str, Any]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli", "--db", url, *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.perf_counter() - t
    return {"args": list(args), "seconds": seconds, "returncode": done.returncode,
            "stdout_lines": len(done.stdout.splitlines()), "stderr": done.stderr[-500:]}


def step_account(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """``account show`` over random cases: ``projections.queries.account_state`` on one connection."""
    from ledger.domain import case_id
    from projections.queries import account_state
    from projections.runner import Projections

    app = _app(spec["url"])
    Projections(app).catch_up()
    cases = sample_cases(spec)
    times: list[float] = []
    months = 0
    with _engine(app).connect() as conn:
        for c in cases[:3]:  # warm the connection and the statement cache (not counted)
            account_state(conn, c, ACCOUNT_ON)
        meter.start()
        for c in cases:
            t = time.perf_counter()
            with meter.segment():
                state = account_state(conn, c, ACCOUNT_ON)
            times.append(time.perf_counter() - t)
            months += len(state.get("months", []))
    out = {"cases": len(cases), "latency": raw.latencies(times), "months_per_account": months / max(len(cases), 1),
           "meter": meter.stop()}
    out["cli"] = _cli(spec["url"], "account", "show", cases[0], "--on", ACCOUNT_ON.isoformat())
    if spec.get("raw"):
        out["raw_point"] = raw.point_reads(_engine(app), _events_table(app), [case_id(c) for c in cases])
    return out


def step_statistics(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """``report statistics`` for nine months (January to September 2024): the first call and the median of five."""
    from ledger.values import Month
    from projections.queries import statistics
    from projections.runner import Projections

    app = _app(spec["url"])
    Projections(app).catch_up()
    first, last = Month.parse(STATS_FIRST), Month.parse(STATS_LAST)
    times: list[float] = []
    meter.start()
    with _engine(app).connect() as conn:
        for _ in range(spec.get("repeat", 5)):
            t = time.perf_counter()
            with meter.segment():
                s = statistics(conn, first, last, STATS_ON)
            times.append(time.perf_counter() - t)
    m = meter.stop()
    person_times = sum(p.get("person_times", 0) for p in s["programmes"].values())
    out = {"first": times[0], "median": sorted(times)[len(times) // 2], "times": times, "person_times": person_times,
           "payments": sum(p.get("payments", 0) for p in s["programmes"].values()), "meter": m}
    out["cli"] = _cli(spec["url"], "report", "statistics", "--from", STATS_FIRST, "--to", STATS_LAST,
                      "--on", STATS_ON.isoformat())
    if spec.get("raw"):
        out["raw_aggregate"] = raw.aggregate(_engine(app), first.index, last.index)
    return out


def step_verify(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """``audit verify``: recompute the hash chain from the stored events (``ledger.audit.verify_log``)."""
    from ledger.audit import verify_log

    app = _app(spec["url"])
    meter.start()
    with meter.segment("verify_log"):
        report = verify_log(app)
    out = {"events": report.events, "ok": report.ok, "problems": report.problems[:3], "meter": meter.stop()}
    if spec.get("raw"):
        out["raw_read"] = raw.ordered_read(_engine(app), _events_table(app))
        out["raw_hash"] = raw.ordered_read(_engine(app), _events_table(app), hash_state=True)
        if _engine(app).dialect.name == "postgresql":
            # The fastest way out of PostgreSQL is a binary COPY; it is the limit the verify is held to.
            out["raw_hash_cursor"] = out["raw_hash"]
            out["raw_hash"] = dict(raw.ordered_read(_engine(app), _events_table(app), hash_state=True, method="copy"),
                                   method="binary COPY")
    return out


STEPS = {
    "import": step_import,
    "catchup": step_catchup,
    "payroll": step_payroll,
    "rebuild": step_rebuild,
    "account": step_account,
    "statistics": step_statistics,
    "verify": step_verify,
}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    meter = Meter(spec)
    out = STEPS[spec["step"]](spec, meter)
    if meter.profile is not None:
        from benchmarks.profiles import summarise

        path = spec["profile"]
        meter.profile.dump_stats(path)
        out["profile"] = summarise(path)
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = run(spec)
    Path(argv[2]).write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
