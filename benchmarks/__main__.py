"""``python -m benchmarks``: the ledger's benchmarks at district, city or province scale.

Example::

    python -m benchmarks --scale district --db both --out docs/performance.md
    python -m benchmarks --scale city --db sqlite --months 3 --out docs/performance.md
    python -m benchmarks --scale district --db sqlite --months 2 --profile none   # the CI smoke run

Each (scale, database) pair runs on a fresh database (a temporary SQLite file, or a new
PostgreSQL database that is dropped afterwards). The results are printed as markdown;
with ``--out`` they are also stored in ``<out>.json`` (replacing the same scale and
database) and the page ``--out`` is written from every stored run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from benchmarks import machine, report

ROOT = Path(__file__).resolve().parents[1]
PG_ENV = "LEDGER_TEST_POSTGRES_URL"
PG_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def fresh_database(db: str, scale: str, workdir: Path, server: str, keep: bool) -> Iterator[str]:
    """A new, empty database for one run; removed (dropped) afterwards unless ``keep``."""
    if db == "sqlite":
        path = workdir / f"ledger-{scale}.sqlite"
        for p in workdir.glob(f"{path.name}*"):
            p.unlink()
        try:
            yield f"sqlite:///{path}"
        finally:
            if not keep:
                for p in workdir.glob(f"{path.name}*"):
                    p.unlink()
        return
    from sqlalchemy import create_engine, text

    name = f"ledger_bench_{scale}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            log(f"kept database {name}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Runner:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.counter = 0

    def step(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Run one step in a fresh Python process; returns its result."""
        self.counter += 1
        spec = dict(spec, tracemalloc=self.args.tracemalloc)
        spec_path = self.workdir / f"step-{self.counter:03d}.json"
        result_path = self.workdir / f"step-{self.counter:03d}.result.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        code = machine.code_version()  # the product code may change between steps (others commit meanwhile)
        done = subprocess.run([sys.executable, "-m", "benchmarks.steps", str(spec_path), str(result_path)], cwd=ROOT, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"step {spec['step']} failed with exit status {done.returncode} (see above)")
        result = json.loads(result_path.read_text(encoding="utf-8"))
        result["code"] = code
        return result

    def run(self, scale: str, db: str, url: str, pg_version: str | None,
            pg_settings: dict[str, str] | None = None) -> dict[str, Any]:
        args = self.args
        households = report.SCALES[scale]
        if args.households:
            households = args.households
        tag = f"[{scale}/{db}]"
        run: dict[str, Any] = {
            "scale": scale,
            "db": db,
            "households": households,
            "months": args.months,
            "started": report.now(),
            "load_start": os.getloadavg()[0],
            "machine": machine.describe(pg_version, pg_settings),
            "options": {"lines_per_file": args.lines_per_file, "samples": args.samples, "seed": args.seed,
                        "tracemalloc": args.tracemalloc},
            "steps": {},
        }
        t0 = time.perf_counter()
        base = {"url": url, "workdir": str(self.workdir), "households": households, "seed": args.seed, "raw": True}

        s = self.step(dict(base, step="import", first=0, count=households, lines_per_file=args.lines_per_file))
        run["steps"]["import"] = s
        log(f"{tag} import: {s['events']:,} events in {s['meter']['seconds']:.1f} s "
            f"({s['events'] / s['meter']['seconds']:,.0f}/s; raw {s['raw_insert']['rate']:,.0f}/s) "
            f"load {s['meter']['load_start']:.2f}")
        s = self.step(dict(base, step="catchup"))
        run["steps"]["catchup"] = s
        log(f"{tag} catch-up after import: {s['events']:,} events in {s['meter']['seconds']:.1f} s")
        run["steps"]["payroll"] = []
        for m in range(1, args.months + 1):
            s = self.step(dict(base, step="payroll", month=f"2024-{m:02d}"))
            run["steps"]["payroll"].append(s)
            sec = s["meter"]["seconds"]
            log(f"{tag} payroll {s['month']}: {s['payments']:,} payments in {sec:.1f} s ({s['payments'] / sec:,.0f}/s; "
                f"raw {s['payments'] / s['raw_insert']['seconds']:,.0f}/s) rss +{s['meter']['maxrss_delta'] / report.MB:.0f} MB "
                f"load {s['meter']['load_start']:.2f}")
        s = self.step(dict(base, step="rebuild"))
        run["steps"]["rebuild"] = s
        log(f"{tag} rebuild: {s['events']:,} events in {s['meter']['seconds']:.1f} s ({s['events'] / s['meter']['seconds']:,.0f}/s; "
            f"raw read {s['raw_read']['rate']:,.0f}/s)")
        s = self.step(dict(base, step="account", samples=args.samples))
        run["steps"]["account"] = s
        log(f"{tag} account show: p50 {s['latency']['p50'] * 1000:.1f} ms, p95 {s['latency']['p95'] * 1000:.1f} ms "
            f"(CLI once {s['cli']['seconds']:.2f} s)")
        if s["cli"]["returncode"] != 0:
            raise RuntimeError(f"ledger account show failed: {s['cli']['stderr']}")
        s = self.step(dict(base, step="statistics"))
        run["steps"]["statistics"] = s
        log(f"{tag} report statistics: median {s['median']:.3f} s, first {s['first']:.3f} s (CLI once {s['cli']['seconds']:.2f} s)")
        if s["cli"]["returncode"] != 0:
            raise RuntimeError(f"ledger report statistics failed: {s['cli']['stderr']}")
        s = self.step(dict(base, step="verify"))
        run["steps"]["verify"] = s
        log(f"{tag} audit verify: {s['events']:,} events in {s['meter']['seconds']:.1f} s "
            f"({s['events'] / s['meter']['seconds']:,.0f}/s; raw read+hash {s['raw_hash']['rate']:,.0f}/s) ok={s['ok']}")
        if not s["ok"]:
            raise RuntimeError(f"audit verify found problems: {s['problems']}")
        run["wall"] = time.perf_counter() - t0
        run["log_events"] = run["steps"]["rebuild"]["events"]
        run["persons"] = self._persons(households)
        run["load_end"] = os.getloadavg()[0]

        t1 = time.perf_counter()
        run["profiles"] = self.profile(run, base, households)
        run["profile_wall"] = time.perf_counter() - t1
        return run

    @staticmethod
    def _persons(households: int) -> int:
        from benchmarks.caseload import household_plan

        return sum(household_plan(h)[3] for h in range(households))

    def profile(self, run: dict[str, Any], base: dict[str, Any], households: int) -> dict[str, Any]:
        """cProfile the steps short of their target (or all, or none), without repeating anything measured."""
        mode = self.args.profile
        if mode == "none":
            return {}
        wanted = [k for k in ("import", "payroll", "rebuild", "account", "statistics", "verify")
                  if mode == "all" or k in report.short_of_target(run)]
        out: dict[str, Any] = {}
        tag = f"[{run['scale']}/{run['db']}]"
        # Read-only steps first, then the payroll of the next month, then an import of new households.
        order = [k for k in ("rebuild", "account", "statistics", "verify", "payroll", "import") if k in wanted]
        months = self.args.months
        for key in order:
            spec = dict(base, step=key, raw=False, profile=str(self.workdir / f"{key}.prof"))
            if key == "payroll":
                spec["month"] = f"{2024 + months // 12}-{months % 12 + 1:02d}"
                what = f"payroll of {spec['month']}"
            elif key == "import":
                count = min(max(1, self.args.lines_per_file // 4), households)
                spec.update(first=households, count=count, lines_per_file=self.args.lines_per_file, standards=False)
                what = f"import of {count:,} more households ({count * 4:,} lines, one file)"
            elif key == "account":
                spec["samples"] = self.args.samples
                what = f"account_state over {self.args.samples} random cases"
            else:
                what = {"rebuild": "Projections.rebuild of the whole log", "statistics": "statistics, five calls",
                        "verify": "verify_log of the whole log"}[key]
            log(f"{tag} profiling {what} ...")
            s = self.step(spec)
            out[key] = {"what": what, "seconds": s["meter"]["seconds"], "profile": s["profile"]}
        return out


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of the ledger through its own paths, each figure beside the raw limit of the same database.",
    )
    p.add_argument("--scale", nargs="+", choices=list(report.SCALES), default=["district"],
                   help="district (5,000 households), city (100,000 cases), province (1,000,000 cases); several may be given")
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite", help="the database(s) to run on")
    p.add_argument("--months", type=int, default=12, help="monthly payrolls to run, from 2024-01 (1-12; default 12)")
    p.add_argument("--out", type=Path, default=None,
                   help="write the markdown page here (results kept beside it, same name with .json)")
    p.add_argument("--samples", type=int, default=200, help="random cases for account show (default 200)")
    p.add_argument("--profile", choices=["short", "all", "none"], default="short",
                   help="cProfile the steps short of their target (default), all of them, or none")
    p.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slows every step)")
    p.add_argument("--lines-per-file", type=int, default=50_000, help="import lines per file (one transaction each)")
    p.add_argument("--households", type=int, default=None, help="override the scale's number of households (testing)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random account sample")
    p.add_argument("--pg-url", default=None,
                   help=f"PostgreSQL server URL where a database may be created (default ${PG_ENV} or {PG_DEFAULT})")
    p.add_argument("--workdir", type=Path, default=None, help="where the SQLite file and import files go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the databases and the work directory")
    p.add_argument("--render", action="store_true", help="only write --out again from the stored results")
    args = p.parse_args(argv)
    if not 1 <= args.months <= 12:
        p.error("--months must be between 1 and 12 (the payroll months of 2024)")
    if args.render and not args.out:
        p.error("--render needs --out")
    return args


def command_line(argv: list[str]) -> str:
    return "python -m benchmarks " + " ".join(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    store_path = args.out.with_suffix(".json") if args.out else None
    default_command = "python -m benchmarks --scale district --db both --out docs/performance.md"
    if args.render:
        store = report.load_store(store_path)
        args.out.write_text(report.render(store, store.get("command", default_command)), encoding="utf-8")
        return 0
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    server = args.pg_url or os.environ.get(PG_ENV) or PG_DEFAULT
    created = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    try:
        runner = Runner(args, workdir)
        for scale in args.scale:
            for db in dbs:
                log(f"[{scale}/{db}] starting: {args.households or report.SCALES[scale]:,} households, {args.months} months, "
                    f"load {os.getloadavg()[0]:.2f}")
                with fresh_database(db, scale, workdir, server, args.keep) as url:
                    pg_version = pg_settings = None
                    if db == "postgres":
                        from sqlalchemy import create_engine

                        engine = create_engine(url)
                        pg_version = machine.postgres_version(engine)
                        pg_settings = machine.postgres_settings(engine)
                        engine.dispose()
                    run = runner.run(scale, db, url, pg_version, pg_settings)
                    run["database"] = make_url(url).database if db == "postgres" else "a temporary SQLite file"
                run["command"] = command_line(argv)
                runs.append(run)
                log(f"[{scale}/{db}] done in {run['wall']:.0f} s (+{run['profile_wall']:.0f} s profiling)")
    finally:
        if created and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not args.keep:
            for p in [*workdir.glob("step-*.json"), *workdir.glob("*.prof"), *workdir.glob("caseload-*.jsonl")]:
                p.unlink()
    if store_path:
        store = report.load_store(store_path)
        for run in runs:
            store["runs"][f"{run['scale']}/{run['db']}"] = run
        store["command"] = default_command
        report.save_store(store_path, store)
        args.out.write_text(report.render(store, default_command), encoding="utf-8")
        log(f"wrote {args.out} and {store_path}")
    # The results of this invocation, on standard output.
    print(report.render({"runs": {f"{r['scale']}/{r['db']}": r for r in runs}}, command_line(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
