"""``python -m benchmarks.account_probe URL``: ``account show`` over random cases, timed statement by statement.

For a database a benchmark run kept (``--keep``): the same random sample as the
benchmark's ``account`` step (``--seed 1``, the default) or another, each account timed
whole and each SQL statement it runs timed on its own, to see which read a slow
account waits for. Prints the latencies (p50, p95, max) and one line per statement
shape (the table it reads first), the largest total first.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event

from benchmarks.raw import latencies
from benchmarks.report import SCALES
from benchmarks.steps import ACCOUNT_ON, sample_cases


def _shape(statement: str) -> str:
    """A statement's shape: what follows its first FROM (its first table), in one line."""
    after = statement.split("FROM", 1)[1] if "FROM" in statement else statement
    return " ".join(after.split())[:70]


def probe(url: str, households: int, samples: int, seed: int) -> dict[str, Any]:
    """Time ``account_state`` of ``samples`` random cases of a benchmark caseload of ``households``."""
    from projections.queries import account_state

    engine = create_engine(url)
    started: list[float] = []
    by_shape: dict[str, list[float]] = defaultdict(list)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(*_: Any) -> None:
        started.append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        by_shape[_shape(statement)].append(time.perf_counter() - started.pop())

    cases = sample_cases({"seed": seed, "households": households, "samples": samples})
    times: list[float] = []
    try:
        with engine.connect() as conn:
            for case_no in cases:
                t = time.perf_counter()
                account_state(conn, case_no, ACCOUNT_ON)
                times.append(time.perf_counter() - t)
    finally:
        engine.dispose()
    return {
        "cases": len(cases),
        **latencies(times),
        "statements": sorted(
            ({"shape": s, "count": len(v), "total": sum(v), **latencies(v)} for s, v in by_shape.items()),
            key=lambda r: -r["total"],
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.account_probe", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the kept database (a SQLAlchemy URL: sqlite:///... or postgresql+psycopg2://...)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="province", help="the scale the database was built at")
    parser.add_argument("--households", type=int, help="override the scale's number of households")
    parser.add_argument("--samples", type=int, default=200, help="random cases (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sample (1: the benchmark's own)")
    args = parser.parse_args(argv)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from ledger.errors import LedgerError

    try:
        url = make_url(args.url)
        if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
            print(f"error: no SQLite file at {url.database or '(none given)'}", file=sys.stderr)
            return 1
        r = probe(args.url, args.households or SCALES[args.scale], args.samples, args.seed)
    except LedgerError as e:
        print(f"error: {e} (is this a database the benchmark built at this scale?)", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        print(f"error: cannot read the database: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    ms = 1000
    print(f"{r['cases']} accounts: p50 {r['p50'] * ms:.1f} ms, p95 {r['p95'] * ms:.1f} ms, max {r['max'] * ms:.1f} ms")
    print("| statements | total ms | p50 ms | p95 ms | max ms | reads from |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for s in r["statements"]:
        print(f"| {s['count']} | {s['total'] * ms:.1f} | {s['p50'] * ms:.2f} | {s['p95'] * ms:.2f} | {s['max'] * ms:.2f} | `{s['shape']}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
