"""Two clerks acting on the same case at the same moment, from two real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.domain import payment_id
from ledger.values import Month
from tests.conftest import seed_case

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def race(url: str, *jobs: tuple[str, str, str]) -> list[dict]:
    """Start one worker process per job; all act at the same wall-clock moment."""
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.worker", url, str(start_at), *job],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for job in jobs
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Traceback" not in err, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_processes_paying_the_same_case_and_month_pay_once(db_url: str) -> None:
    app = LedgerApp(db_url)
    seed_case(app, "U1")
    months = [Month(2023, m) for m in (1, 2)]
    for month in months:
        results = race(db_url, ("pay", "U1", str(month)), ("pay", "U1", str(month)))
        winners = [r for r in results if r["ok"]]
        losers = [r for r in results if not r["ok"]]
        assert len(winners) == 1, results
        assert winners[0]["result"] == f"P-U1-{month.year}{month.month:02d}-1"
        assert losers[0]["error"] in ("DuplicatePayment", "ConcurrentChange"), losers
        if losers[0]["error"] == "DuplicatePayment":
            assert "already paid" in losers[0]["message"]
    fresh = LedgerApp(db_url)
    for month in months:
        uow = fresh.unit_of_work()
        assert uow.find(payment_id("U1", month, 1)) is not None
        assert uow.find(payment_id("U1", month, 2)) is None


def test_two_clerks_recording_on_one_case_at_once_lose_no_event(db_url: str) -> None:
    app = LedgerApp(db_url)
    seed_case(app, "U1", approve=False)
    done = 0
    for _ in range(2):
        results = race(db_url, ("verify", "U1", "zhang.wei"), ("verify", "U1", "sun.li"))
        for r in results:
            assert r["ok"] or r["message"] == "the case changed meanwhile, try again", r
        done += sum(r["ok"] for r in results)
    case = LedgerApp(db_url).get_case("U1")
    # Every verification a worker reported as recorded is in the log, and no other:
    # the loser of each collision retried on fresh state instead of overwriting.
    assert len(case.verifications) == 1 + done  # seed_case recorded one
    assert done >= 3, "a collision is retried on fresh state, so nearly every attempt goes through"
    assert [v.no for v in case.verifications] == list(range(1, len(case.verifications) + 1))
