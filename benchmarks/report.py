"""Figures, targets and the markdown report (``docs/performance.md``) from the stored results."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCALES = {"district": 5_000, "city": 100_000, "province": 1_000_000}
PROVINCE_MONTHS = 12

#: The hand-written reading of the results, placed before the profiles.
ANALYSIS = Path(__file__).with_name("analysis.md")
DB_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
MB = 1024 * 1024
GB = 1024 * MB

#: Targets on 2 cores. (key, what, comparison, value, unit, province_only)
PAYROLL_TARGET = {"sqlite": 15_000, "postgres": 10_000}
TARGETS: dict[str, tuple[str, float, str, bool]] = {
    "import": (">=", 20_000, "events/s", False),
    "rebuild": (">=", 40_000, "events/s", False),
    "account": ("<", 0.050, "s p95", True),
    "statistics": ("<", 1.0, "s", True),
    "verify": (">=", 200_000, "events/s", False),
    "memory": ("<", 1 * GB, "rebuild peak", True),
}

ORDER = ["import", "catchup", "payroll", "rebuild", "account", "statistics", "verify", "memory"]
LABELS = {
    "import": "import (`import_lines`, JSONL files)",
    "catchup": "read models after the import (`Projections.catch_up`)",
    "payroll": "payroll, one month (candidates + `run_payroll` + `catch_up`)",
    "rebuild": "projection rebuild (`Projections.rebuild`)",
    "account": "`account show` (`account_state`), p50 / p95",
    "statistics": "`report statistics`, nine months (`statistics`)",
    "verify": "`audit verify` (`verify_log`)",
    "memory": "peak memory (RSS growth of the step's process)",
}
SHORT = {
    "import": "import",
    "catchup": "read models after the import",
    "payroll": "payroll",
    "rebuild": "projection rebuild",
    "account": "account show",
    "statistics": "report statistics",
    "verify": "audit verify",
}
RAW_LABELS = {
    "import": "bulk insert of the same event rows",
    "catchup": "ordered read of the events table",
    "payroll": "bulk insert of the payroll's event rows",
    "rebuild": "ordered read of the events table",
    "account": "indexed read of the case's stored events",
    "statistics": "one GROUP BY over the period's payment rows",
    "verify": "ordered read + SHA-256 of every state",
}


# --------------------------------------------------------------------------- number formats


def n0(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def secs(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 3600:
        return f"{v / 3600:.1f} h"
    if v >= 120:
        return f"{v / 60:.1f} min"
    if v >= 10:
        return f"{v:.0f} s"
    if v >= 1:
        return f"{v:.1f} s"
    return f"{v * 1000:.0f} ms" if v >= 0.01 else f"{v * 1000:.2f} ms"


def ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.1f}" if v >= 0.001 else f"{v * 1000:.3f}"


def mb(v: float | None) -> str:
    return "-" if v is None else f"{v / MB:,.0f} MB"


def ratio(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 10:
        return f"{v:,.0f}×"
    return f"{v:.1f}×" if v >= 0.1 else f"{v:.2g}×"  # below the raw limit: a kept total read instead of a scan


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    key: str
    figure: str
    value: float | None
    raw: str
    raw_value: float | None
    ratio: float | None  # the application's time over the raw time for the same work
    target: str
    met: bool | None
    seconds: float | None
    memory: float | None
    cpu: float | None
    load: float | None
    province_only: bool = False


def _rate(n: float, s: float) -> float | None:
    return n / s if s else None


def _met(key: str, value: float | None) -> bool | None:
    if value is None:
        return None
    op, target, _, _ = TARGETS[key]
    return value >= target if op == ">=" else value < target


def _cpu_share(m: dict[str, Any]) -> float | None:
    return m["cpu"] / m["wall"] if m.get("wall") else None


def payroll_months(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in run["steps"].get("payroll", [])]


def figures(run: dict[str, Any]) -> list[Figure]:
    steps = run["steps"]
    out: list[Figure] = []
    db = run["db"]
    if "import" in steps:
        s = steps["import"]
        m = s["meter"]
        v = _rate(s["events"], m["seconds"])
        r = s.get("raw_insert", {})
        out.append(Figure("import", f"{n0(v)} events/s", v, f"{n0(r.get('rate'))} rows/s ({r.get('method', '-')})", r.get("rate"),
                          (r["rate"] / v) if v and r.get("rate") else None, f"≥ {n0(TARGETS['import'][1])} events/s",
                          _met("import", v), m["seconds"], m["maxrss_delta"], _cpu_share(m), m["load_start"]))
    if "catchup" in steps:
        s = steps["catchup"]
        m = s["meter"]
        v = _rate(s["events"], m["seconds"])
        r = s.get("raw_read", {})
        out.append(Figure("catchup", f"{n0(v)} events/s", v, f"{n0(r.get('rate'))} rows/s", r.get("rate"),
                          (r["rate"] / v) if v and r.get("rate") else None, "-", None, m["seconds"], m["maxrss_delta"],
                          _cpu_share(m), m["load_start"]))
    months = payroll_months(run)
    if months:
        rates = [_rate(s["payments"], s["meter"]["seconds"]) or 0 for s in months]
        raws = [_rate(s["payments"], s["raw_insert"]["seconds"]) for s in months if s.get("raw_insert")]
        v = statistics.median(rates)
        rv = statistics.median([r for r in raws if r]) if any(raws) else None
        target = PAYROLL_TARGET[db]
        out.append(Figure("payroll", f"{n0(v)} payments/s", v, f"{n0(rv)} payments/s", rv, (rv / v) if v and rv else None,
                          f"≥ {n0(target)} payments/s", v >= target if v else None,
                          sum(s["meter"]["seconds"] for s in months), max(s["meter"]["maxrss_delta"] for s in months),
                          statistics.fmean([_cpu_share(s["meter"]) or 0 for s in months]),
                          statistics.fmean([s["meter"]["load_start"] for s in months])))
    if "rebuild" in steps:
        s = steps["rebuild"]
        m = s["meter"]
        v = _rate(s["events"], m["seconds"])
        r = s.get("raw_read", {})
        out.append(Figure("rebuild", f"{n0(v)} events/s", v, f"{n0(r.get('rate'))} rows/s", r.get("rate"),
                          (r["rate"] / v) if v and r.get("rate") else None, f"≥ {n0(TARGETS['rebuild'][1])} events/s",
                          _met("rebuild", v), m["seconds"], m["maxrss_delta"], _cpu_share(m), m["load_start"]))
    if "account" in steps:
        s = steps["account"]
        m = s["meter"]
        lat = s["latency"]
        r = s.get("raw_point", {})
        out.append(Figure("account", f"{ms(lat['p50'])} / {ms(lat['p95'])} ms", lat["p95"],
                          f"{ms(r.get('p50'))} / {ms(r.get('p95'))} ms", r.get("p95"),
                          (lat["p95"] / r["p95"]) if r.get("p95") else None, "p95 < 50 ms (province)",
                          _met("account", lat["p95"]), m["seconds"], m["maxrss_delta"], _cpu_share(m), m["load_start"],
                          province_only=True))
    if "statistics" in steps:
        s = steps["statistics"]
        m = s["meter"]
        r = s.get("raw_aggregate", {})
        out.append(Figure("statistics", f"{secs(s['median'])} (first call {secs(s['first'])})", s["median"],
                          f"{secs(r.get('seconds'))} over {n0(r.get('rows'))} rows", r.get("seconds"),
                          (s["median"] / r["seconds"]) if r.get("seconds") else None, "< 1 s (province)",
                          _met("statistics", s["median"]), m["seconds"], m["maxrss_delta"], _cpu_share(m), m["load_start"],
                          province_only=True))
    if "verify" in steps:
        s = steps["verify"]
        m = s["meter"]
        v = _rate(s["events"], m["seconds"])
        r = s.get("raw_hash", {})
        how = f" ({r['method']})" if r.get("method") else ""
        out.append(Figure("verify", f"{n0(v)} events/s", v, f"{n0(r.get('rate'))} rows/s{how}", r.get("rate"),
                          (r["rate"] / v) if v and r.get("rate") else None, f"≥ {n0(TARGETS['verify'][1])} events/s",
                          _met("verify", v), m["seconds"], m["maxrss_delta"], _cpu_share(m), m["load_start"]))
    mem = memory(run)
    if mem is not None:
        out.append(mem)
    return out


def memory(run: dict[str, Any]) -> Figure | None:
    """Peak memory: rebuild's RSS growth against 1 GB, and whether payroll memory stays flat as the log grows."""
    steps = run["steps"]
    if "rebuild" not in steps:
        return None
    rebuild = steps["rebuild"]["meter"]["maxrss_delta"]
    months = payroll_months(run)
    flat = None
    text = f"rebuild {mb(rebuild)}"
    if len(months) >= 2:
        first = months[0]["meter"]["maxrss_delta"]
        last = months[-1]["meter"]["maxrss_delta"]
        flat = last <= first * 1.25 + 32 * MB
        text += f"; payroll {mb(first)} (month 1) → {mb(last)} (month {len(months)})"
    met = _met("memory", rebuild)
    if flat is not None:
        met = bool(met and flat)
    peak = max(s["meter"]["maxrss"] for s in _all_steps(run))
    return Figure("memory", text, rebuild, f"largest process {mb(peak)}", None, None, "flat as the log grows; rebuild < 1 GB (province)",
                  met, None, rebuild, None, None, province_only=True)


def _all_steps(run: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for v in run["steps"].values():
        out.extend(v if isinstance(v, list) else [v])
    return out


def short_of_target(run: dict[str, Any]) -> list[str]:
    """Steps short of their target, counting a province-only target as short when the province estimate misses it."""
    short = [f.key for f in figures(run) if f.met is False and f.key != "memory"]
    e = extrapolate(run)
    if e is not None and "statistics" not in short:
        est = next((r["seconds"] for r in e["rows"] if r["step"] == "statistics"), None)
        if est is not None and not _met("statistics", est):
            short.append("statistics")
    return short


# --------------------------------------------------------------------------- extrapolation


def extrapolate(run: dict[str, Any]) -> dict[str, Any] | None:
    """Province (1,000,000 cases, twelve payrolls) from a smaller run, assuming its rates stay flat."""
    if run["scale"] == "province":
        return None
    steps = run["steps"]
    months = payroll_months(run)
    if not months or "import" not in steps:
        return None
    k = SCALES["province"] / run["households"]
    figs = {f.key: f for f in figures(run)}
    import_events = steps["import"]["events"] * k
    per_month_payments = statistics.fmean(s["payments"] for s in months) * k
    per_month_events = statistics.fmean(s["events"] for s in months) * k
    log = import_events + PROVINCE_MONTHS * per_month_events
    rows = []

    def add(step: str, work: str, seconds: float | None) -> None:
        rows.append({"step": step, "work": work, "seconds": seconds})

    add("import", f"{n0(import_events)} events", import_events / figs["import"].value if figs["import"].value else None)
    if "catchup" in figs and figs["catchup"].value:
        add("catchup", f"{n0(import_events)} events", import_events / figs["catchup"].value)
    add("payroll", f"{PROVINCE_MONTHS} × {n0(per_month_payments)} payments",
        PROVINCE_MONTHS * per_month_payments / figs["payroll"].value if figs["payroll"].value else None)
    if "rebuild" in figs and figs["rebuild"].value:
        add("rebuild", f"{n0(log)} events", log / figs["rebuild"].value)
    if "verify" in figs and figs["verify"].value:
        add("verify", f"{n0(log)} events", log / figs["verify"].value)
    if "statistics" in steps:
        s = steps["statistics"]
        scanned = (s.get("raw_aggregate") or {}).get("rows") or s.get("payments") or 0
        province_rows = 9 * per_month_payments
        if scanned:
            # The report reads kept totals and counts (a few rows per month), not the payment rows.
            add("statistics", f"{n0(province_rows)} payments in nine months, read as kept monthly totals",
                s["median"])
    memory_rebuild = steps.get("rebuild", {}).get("meter", {}).get("maxrss_delta")
    total = sum(r["seconds"] for r in rows if r["seconds"] and r["step"] != "statistics")
    return {"from": f"{run['scale']} on {DB_NAMES[run['db']]}", "factor": k, "rows": rows, "total": total, "log": log,
            "memory_rebuild": memory_rebuild}


# --------------------------------------------------------------------------- store


def load_store(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"format": 1, "runs": {}}


def save_store(path: Path, store: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(store, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def ordered_runs(store: dict[str, Any]) -> list[dict[str, Any]]:
    runs = list(store["runs"].values())
    return sorted(runs, key=lambda r: (list(SCALES).index(r["scale"]), list(DB_NAMES).index(r["db"])))


# --------------------------------------------------------------------------- markdown


def _table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _met_text(f: Figure, scale: str) -> str:
    if f.met is None:
        return "-"
    text = "yes" if f.met else "**no**"
    if f.province_only and scale != "province":
        text += f" (at {scale})"
    return text


def title(run: dict[str, Any]) -> str:
    return f"{run['scale']} on {DB_NAMES[run['db']]}"


def run_table(run: dict[str, Any]) -> str:
    rows = []
    for f in figures(run):
        rows.append([LABELS[f.key], f.figure, f"{f.raw}" if f.key == "memory" else f"{RAW_LABELS[f.key]}: {f.raw}",
                     ratio(f.ratio), f.target, _met_text(f, run["scale"]), secs(f.seconds), mb(f.memory),
                     "-" if f.cpu is None else f"{f.cpu:.0%}", "-" if f.load is None else f"{f.load:.2f}"])
    return _table(["step", "figure", "raw limit of the same database, same run", "app ÷ raw", "target (2 cores)", "met",
                   "time", "peak memory", "CPU", "load"], rows, right={3, 6, 7, 8, 9})


def payroll_table(run: dict[str, Any]) -> str:
    rows = []
    for s in payroll_months(run):
        m = s["meter"]
        seg = m.get("segments", {})
        rate = _rate(s["payments"], m["seconds"])
        raw_rate = _rate(s["payments"], s["raw_insert"]["seconds"]) if s.get("raw_insert") else None
        rows.append([s["month"], n0(s["cases"]), n0(s["payments"]), n0(s["events"]), secs(m["seconds"]),
                     secs(seg.get("candidates")), secs(seg.get("run_payroll")), secs(seg.get("catch_up")), n0(rate),
                     n0(raw_rate), ratio(raw_rate / rate if rate and raw_rate else None), _peak_where(m),
                     n0(s["log_after"]), f"{m['load_start']:.2f}"])
    return _table(["month", "cases", "payments", "events", "time", "candidates", "run_payroll", "catch_up", "payments/s",
                   "raw payments/s", "app ÷ raw", "peak memory", "log after", "load"], rows,
                  right=set(range(1, 14)))


def _peak_where(m: dict[str, Any]) -> str:
    """The RSS peak growth of a step and the segment in which it was reached (when the step recorded segments)."""
    text = mb(m["maxrss_delta"])
    seg = m.get("segment_memory") or {}
    if seg:
        top = max(seg.values())
        where = next((k for k, v in seg.items() if v >= top), None)
        if where and top > 0:
            text += f" ({where})"
    return text


def import_table(run: dict[str, Any]) -> str | None:
    files = run["steps"].get("import", {}).get("files", [])
    if len(files) < 2:
        return None
    shown = list(enumerate(files, start=1))
    if len(shown) > 16:
        step = len(shown) / 15
        keep = sorted({int(i * step) for i in range(15)} | {len(shown) - 1})
        shown = [shown[i] for i in keep]
    rows = [[str(i), n0(f["lines"]), n0(f["events"]), secs(f["seconds"]), n0(_rate(f["events"], f["seconds"])),
             n0(f["log_before"])] for i, f in shown]
    return _table(["file", "lines", "events", "time", "events/s", "log before"], rows, right={0, 1, 2, 3, 4, 5})


def _machine(m: dict[str, Any]) -> str:
    pk = m.get("packages", {})
    rows = [
        ["CPU", m["cpu"]],
        ["cores", f"{m['cores']} ({m['cores_usable']} usable by the benchmark)"],
        ["memory", f"{(m['memory_bytes'] or 0) / GB:.1f} GB"],
        ["OS", m["os"]],
        ["Python", m["python"]],
        ["SQLite", m["sqlite"]],
        ["PostgreSQL", m.get("postgresql") or "-"],
        ["libraries", ", ".join(f"{k} {v}" for k, v in pk.items())],
    ]
    return _table(["", ""], rows)


def _run_header(run: dict[str, Any]) -> str:
    g = run["machine"]["git"]
    changed = g.get("product_files_changed") or []
    code = f"commit {g.get('commit') or '?'}" + (f" with local changes in {', '.join(changed)}" if changed else "")
    log = run.get("log_events")
    versions = list(dict.fromkeys(s["code"] for s in _all_steps(run) if s.get("code")))
    if len(versions) > 1:
        code += f" (**the product code changed during the run**: {' → '.join(versions)}; each step ran the code of its start)"
    pg = run["machine"].get("postgresql_settings")
    server = ""
    if run.get("db") == "postgres":
        server = (" Server settings: " + ", ".join(f"`{k}` {v}" for k, v in pg.items()) + "." if pg
                  else " Server settings: not recorded by this run; the server then ran its stock settings (`shared_buffers` 128MB, `work_mem` 4MB, `maintenance_work_mem` 64MB, `max_wal_size` 1GB, `checkpoint_timeout` 5min).")
    return (
        f"{n0(run['households'])} households (one case each, {n0(run.get('persons'))} persons), "
        f"{run['months']} monthly payroll{'s' if run['months'] != 1 else ''} (2024-01 to 2024-{run['months']:02d}); "
        f"{n0(log)} events in the log at the end. Run {run['started'][:16].replace('T', ' ')} UTC, "
        f"took {secs(run['wall'])} in all (profiling {secs(run.get('profile_wall'))} more); "
        f"load average (1 min) {run['load_start']:.2f} at the start, {run['load_end']:.2f} at the end; {code}. "
        f"Command: `{run.get('command', '-')}`.{server}"
    )


def profile_section(run: dict[str, Any]) -> str:
    parts = []
    figs = {f.key: f for f in figures(run)}
    for key, p in run.get("profiles", {}).items():
        prof = p["profile"]
        total = prof["total"] or 1e-9
        f = figs.get(key)
        status = ""
        if f is not None:
            status = f"; figure {f.figure} against the target {f.target}" + (" (short)" if f.met is False else "")
        parts.append(f"#### {key}: {p['what']} — {secs(p['seconds'])} under the profiler{status}")
        parts.append("")
        parts.append(headline(prof))
        parts.append("")
        parts.append("Own time by layer:")
        parts.append("")
        parts.append(_table(["layer", "own time", "share"],
                            [[k, secs(v), f"{v / total:.0%}"] for k, v in prof["layers"] if v / total >= 0.005],
                            right={1, 2}))
        parts.append("")
        parts.append("Top functions by cumulative time:")
        parts.append("")
        parts.append(_table(["cumulative", "share", "own", "calls", "function"],
                            [[secs(r["cumtime"]), f"{r['cumtime'] / total:.0%}", secs(r["tottime"]), n0(r["ncalls"]),
                              f"`{r['where']}`"] for r in prof["cumulative"][:15]], right={0, 1, 2, 3}))
        parts.append("")
        parts.append("Top functions by own time:")
        parts.append("")
        parts.append(_table(["own", "share", "calls", "function"],
                            [[secs(r["tottime"]), f"{r['tottime'] / total:.0%}", n0(r["ncalls"]), f"`{r['where']}`"]
                             for r in prof["own"]], right={0, 1, 2}))
        parts.append("")
    return "\n".join(parts)


def headline(prof: dict[str, Any]) -> str:
    """One line: the largest layers by own time, and the heaviest calls of the ledger's own code below the entry point."""
    total = prof["total"] or 1e-9
    layers = ", ".join(f"{k} {v / total:.0%}" for k, v in prof["layers"][:3])
    own_code = [r for r in prof["cumulative"]
                if r["where"].startswith(("ledger/", "projections/")) and r["cumtime"] / total < 0.9
                and "<lambda>" not in r["where"]]
    calls = ", ".join(f"`{r['where']}` {r['cumtime'] / total:.0%}" for r in own_code[:5])
    return f"Most own time: {layers}. Heaviest calls of the ledger's code (cumulative): {calls or '-'}."


def summary_table(runs: list[dict[str, Any]]) -> str:
    keys = [k for k in ORDER if k != "catchup"]
    by_run = [{f.key: f for f in figures(r)} for r in runs]
    rows = []
    for k in keys:
        target = next((b[k].target for b in by_run if k in b), "-")
        row = [LABELS[k], target]
        for run, b in zip(runs, by_run):
            f = b.get(k)
            if f is None:
                row.append("-")
                continue
            cell = f.figure
            if f.ratio is not None:
                cell += f" ({ratio(f.ratio)} raw)"
            at = f" (at {run['scale']})" if f.province_only and run["scale"] != "province" else ""
            cell += f"; met{at}" if f.met else (f"; **short**{at}" if f.met is False else "")
            row.append(cell)
        rows.append(row)
    return _table(["figure", "target (2 cores)"] + [title(r) for r in runs], rows)


def render(store: dict[str, Any], command: str) -> str:
    runs = ordered_runs(store)
    out: list[str] = []
    out.append("# Performance")
    out.append("")
    out.append(
        "Benchmarks of the ledger at district, city and province scale, each figure beside the raw limit of the same "
        "database measured in the same run. The synthetic caseload is built through the application's own paths: "
        "JSONL files of `household.register`, `case.apply`, `case.verify` and `case.approve` lines (the verifier is "
        "never the approver), imported with `ledger.importer.import_lines` one file per transaction, after the "
        "standards for 2023 and 2024. Then a payroll per month of 2024 (`projections.payroll.candidates`, "
        "`LedgerApp.run_payroll` with `projections.payroll.ReadModelPayroll`, which keeps the read models in each "
        "chunk's transaction, then `Projections.catch_up` for anything left), a rebuild of the read models, "
        "`account show` over "
        "random cases, the statistics for January to September 2024 and `audit verify`. The application's clock is "
        "fixed at 2024-12-31."
    )
    out.append("")
    out.append(
        "Each step runs in a fresh process (so its peak memory is its own); its figure is timed around the "
        "application's calls only, and its raw limit is measured right after it by the same process through the "
        "database driver alone: the same event rows bulk-inserted again into a scratch table with the same columns "
        "and keys in one transaction (`executemany` on SQLite, `COPY` on PostgreSQL), the events table read in log "
        "order (streamed), the same read with a SHA-256 over every stored state, one indexed read of a case's "
        "stored events, one GROUP BY over the period's payment rows. **app ÷ raw** is how many times longer the "
        "application takes than the database for the same work; that ratio is the figure that matters, since "
        "it does not depend on the machine. (The statistics read totals and counts the projection keeps, so "
        "they take less than the scan of the payment rows that is their raw limit: a ratio below 1.) *Peak memory* is the growth of the step process's peak RSS "
        "(`ru_maxrss`) over its size before the step; *CPU* is the step process's CPU time over its wall time "
        "(near 100 % means Python-bound in that process); *load* is the 1-minute load average when the step "
        "started (the machine runs other work: figures taken under load are pessimistic)."
    )
    out.append("")
    out.append("Regenerate with (each run replaces its scale and database in `docs/performance.json`, then this page is "
               "written from every stored run):")
    out.append("")
    out.append("```sh")
    out.append(command)
    out.append("```")
    out.append("")
    if not runs:
        out.append("No results yet.")
        return "\n".join(out) + "\n"
    latest = max(runs, key=lambda r: r["started"])
    out.append("## Machine")
    out.append("")
    machine = dict(latest["machine"])
    with_server = [r for r in runs if r["machine"].get("postgresql")]
    if not machine.get("postgresql") and with_server:  # a run on SQLite only: the latest server version known
        machine["postgresql"] = max(with_server, key=lambda r: r["started"])["machine"]["postgresql"]
    out.append(_machine(machine))
    out.append("")
    out.append("## Summary")
    out.append("")
    out.append(summary_table(runs))
    out.append("")
    out.append("*(at district)* / *(at city)*: the target is set for province; the figure is shown against it at the "
               "scale that ran. *(× raw)*: how many times longer the application takes than the raw limit of the same "
               "database for the same work (see each run's table for what the raw limit is).")
    out.append("")
    for run in runs:
        out.append(f"## {title(run)}")
        out.append("")
        out.append(_run_header(run))
        out.append("")
        out.append(run_table(run))
        out.append("")
        out.append("Payroll month by month (the log grows by one month each time: the rate and memory should stay flat):")
        out.append("")
        out.append(payroll_table(run))
        out.append("")
        t = import_table(run)
        if t:
            out.append("Import file by file (one transaction each):")
            out.append("")
            out.append(t)
            out.append("")
        notes = run_notes(run)
        if notes:
            out.extend(notes)
            out.append("")
    out.append("## Province")
    out.append("")
    province = [r for r in runs if r["scale"] == "province"]
    ran = {r["db"] for r in province}
    if ran:
        out.append(f"Province ran on {' and '.join(DB_NAMES[d] for d in DB_NAMES if d in ran)}; see its section above.")
        out.append("")
        for run in province:
            note = province_remaining(run)
            if note:
                out.append(note)
                out.append("")
    missing = [d for d in DB_NAMES if d not in ran and any(r["db"] == d for r in runs)]
    if missing:
        out.append(
            f"Province (1,000,000 cases, twelve monthly payrolls) was **not run** on "
            f"{' and '.join(DB_NAMES[d] for d in missing)} (it would take hours on this machine, while other work "
            "shares the two cores). The command supports it (`--scale province`). The estimate below extrapolates "
            "linearly from the largest run of that database (its rates times the province's work); the month-by-month "
            "payroll tables show whether the rates stay flat as the log grows, which the extrapolation assumes."
        )
        out.append("")
    for db in DB_NAMES:
        candidates = [r for r in runs if r["db"] == db]
        if not candidates:
            continue
        if db in ran:
            scaling = rates_by_scale(candidates)
            if scaling:
                out.append(scaling)
                out.append("")
            continue
        base = max(candidates, key=lambda r: (r["households"], r["months"]))
        e = extrapolate(base)
        if e is None:
            continue
        out.append(f"From {e['from']} (×{e['factor']:,.0f} the cases, {base['months']} months measured):")
        out.append("")
        rows = [[SHORT[r["step"]], r["work"], secs(r["seconds"])] for r in e["rows"]]
        rows.append(["**total** (without the report)", f"log of {n0(e['log'])} events", f"**{secs(e['total'])}**"])
        out.append(_table(["step", "province work", "estimated time"], rows, right={2}))
        out.append("")
        scaling = rates_by_scale(candidates)
        if scaling:
            out.append(scaling)
            out.append("")
    if ANALYSIS.exists():  # written by hand from the runs and profiles below: what the short figures are short of
        out.append(ANALYSIS.read_text(encoding="utf-8").rstrip())
        out.append("")
    out.append("## Where the time goes")
    out.append("")
    out.append(
        "cProfile of the steps short of their target, in a separate pass after the measured run (the profiler slows "
        "Python code down, so these times are longer than the figures above). The payroll is profiled on the month "
        "after the last one measured and the import on one more file of new households, so that nothing measured "
        "is repeated. *Own time by layer* adds up each function's own time by where the function lives; the "
        "database driver's share is the time spent inside `sqlite3` or `psycopg2` calls (for PostgreSQL, the "
        "server's own work is not in this process)."
    )
    out.append("")
    for run in runs:
        if run.get("profiles"):
            out.append(f"### {title(run)}")
            out.append("")
            out.append(profile_section(run))
    return "\n".join(out).rstrip() + "\n"


def province_remaining(run: dict[str, Any]) -> str | None:
    """For a province run of fewer than twelve payrolls: the rest at the rates it measured."""
    months = payroll_months(run)
    if not months or run["months"] >= PROVINCE_MONTHS:
        return None
    rest = PROVINCE_MONTHS - run["months"]
    last = months[-1]
    per_month = last["meter"]["seconds"]
    events_per_month = statistics.fmean(m["events"] for m in months)
    log = last["log_after"] + rest * events_per_month
    rebuild = {f.key: f for f in figures(run)}.get("rebuild")
    text = (f"Province on {DB_NAMES[run['db']]} ran {run['months']} of its {PROVINCE_MONTHS} monthly payrolls (each "
            f"month takes minutes here; the month-by-month table shows whether the rate holds as the log grows). The "
            f"other {rest} months at the last month's time ({secs(per_month)}) would take at least {secs(rest * per_month)} "
            f"more (at least: the twelve-month runs at smaller scales show each month a little slower than the one "
            f"before), and the log would reach about {n0(log)} events")
    if rebuild and rebuild.value:
        text += f", which a rebuild at the measured {n0(rebuild.value)} events/s reads in about {secs(log / rebuild.value)}"
    return text + "."


def rates_by_scale(runs: list[dict[str, Any]]) -> str | None:
    """The same figures at each scale that ran on one database: a linear extrapolation holds only if they stay flat."""
    runs = sorted(runs, key=lambda r: r["households"])
    if len(runs) < 2:
        return None
    figs = [{f.key: f for f in figures(r)} for r in runs]
    rows = []
    for key in ("import", "catchup", "payroll", "rebuild", "verify"):
        if all(key in f for f in figs):
            cells = [f[key].figure for f in figs]
            first, last = figs[0][key].value, figs[-1][key].value
            change = "-"
            if first and last:
                better = last / first if key not in ("account", "statistics") else first / last
                change = f"{better:.2f}×"
            rows.append([SHORT[key], *cells, change])
    head = ["step", *[f"{r['scale']} ({n0(r['households'])}, {r['months']} months)" for r in runs],
            f"{runs[-1]['scale']} ÷ {runs[0]['scale']} (1.00× = flat, below = slower)"]
    return (f"The same figures at each scale on {DB_NAMES[runs[0]['db']]} (a linear estimate holds only where they stay "
            "flat; where they fall with the caseload, province will be slower than estimated):\n\n" + _table(head, rows))


def run_notes(run: dict[str, Any]) -> list[str]:
    notes = []
    steps = run["steps"]
    a = steps.get("account", {})
    if a.get("cli"):
        notes.append(f"- `ledger account show` as a command (new process, catch-up check, rendering): {secs(a['cli']['seconds'])} "
                     f"once; on average {a.get('months_per_account', 0):.1f} months per account.")
    s = steps.get("statistics", {})
    if s.get("cli"):
        notes.append(f"- `ledger report statistics` as a command: {secs(s['cli']['seconds'])} once.")
    rows = (s.get("raw_aggregate") or {}).get("rows")
    if s and run["months"] < 9 and rows:
        nine = rows * 9 / run["months"]
        notes.append(f"- `report statistics` covers 2024-01 to 2024-09, but only {run['months']} of those months were paid in "
                     f"this run ({n0(rows)} payment rows); it reads the totals and counts the projection keeps (a few rows "
                     f"per month), so seven more paid months add a few rows to its reads. A scan of all nine months' "
                     f"payments ({n0(nine)} rows) would take the raw GROUP BY alone about "
                     f"{secs(s['raw_aggregate']['seconds'] * 9 / run['months'])}.")
    v = steps.get("verify", {})
    if v.get("raw_read"):
        notes.append(f"- `audit verify`: the record verified: {v.get('ok')}; the ordered read alone runs at "
                     f"{n0(v['raw_read'].get('rate'))} rows/s, with SHA-256 of the states at {n0(v.get('raw_hash', {}).get('rate'))} rows/s.")
    months = payroll_months(run)
    skipped = sum(m.get("skipped", 0) for m in months)
    if skipped:
        notes.append(f"- payroll: {n0(skipped)} (case, month) candidates skipped in all.")
    for s in _all_steps(run):
        if s.get("meter", {}).get("tracemalloc_peak"):
            notes.append("- tracemalloc was on (`--tracemalloc`): Python allocation peaks are in `docs/performance.json`; the "
                         "timings of this run are slower than without it.")
            break
    return notes


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
