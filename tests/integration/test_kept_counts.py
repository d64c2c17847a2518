"""The statistics' kept counts (projections.counts) against the figures computed from every row.

A household here can hold several cases at once (dibao and extreme-poverty support), a
second case of the same programme after the first ended, suspensions, resumptions,
adjustments and retroactive terminations; pages are small so a household's cases are
changed in different pages. For every period and date the report reads from the kept
counts, the same figures computed by scanning every case and period must agree.
"""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import select

from ledger.application import LedgerApp
from ledger.values import Area, Channel, Month, Programme
from projections import counts
from projections import tables as t
from projections.queries import statistics
from projections.runner import Projections
from projections.verify import verify
from tests.conftest import idn

MONTHS = [Month(2023, 1).add(i) for i in range(15)]


def _brute_caseload(households: list[list[counts.PeriodShape]], month: int) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for periods in households:
        seen: set[tuple[str, str]] = set()
        for programme, status, start, end, persons in periods:
            if programme not in counts.MONTHLY or status not in counts.IN_FORCE or not start <= month < end:
                continue
            for g in (programme, "dibao") if programme in counts.DIBAO else (programme,):
                row = out.setdefault((g, status), [0, 0, 0])
                row[0] += (g, status) not in seen
                row[1] += persons
                row[2] += 1
                seen.add((g, status))
    return out


def _sum_steps(steps: counts.Steps, month: int) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for (g, status, idx), values in steps.items():
        if idx <= month:
            row = out.setdefault((g, status), [0, 0, 0])
            for i, v in enumerate(values):
                row[i] += v
    return {k: v for k, v in out.items() if any(v)}


def test_caseload_steps_count_each_household_once_in_every_month() -> None:
    rnd = random.Random(11)
    households = []
    for _ in range(400):
        periods = []
        for _ in range(rnd.randint(0, 4)):
            start = rnd.randint(0, 20)
            end = rnd.choice([start + rnd.randint(0, 8), 10**7])
            periods.append((rnd.choice(["urban-dibao", "rural-dibao", "tekun", "temporary"]),
                            rnd.choice(["active", "suspended", "terminated"]), start, end, rnd.randint(1, 5)))
        households.append(periods)
    steps: counts.Steps = {}
    for periods in households:
        counts.add_caseload(steps, periods)
    for month in range(-1, 32):
        want = {k: v for k, v in _brute_caseload(households, month).items() if any(v)}
        assert _sum_steps(steps, month) == want, month
    # Taking every household away again leaves nothing.
    for periods in households:
        counts.add_caseload(steps, periods, -1)
    assert not any(any(v) for v in steps.values())


def test_new_counts_give_distinct_households_for_any_period() -> None:
    rnd = random.Random(5)
    households = [
        [(rnd.choice(["urban-dibao", "tekun"]), rnd.randint(0, 11), rnd.randint(1, 4)) for _ in range(rnd.randint(1, 4))]
        for _ in range(300)
    ]
    kept: counts.NewCounts = {}
    for cases in households:
        counts.add_new(kept, cases)
    for a in range(12):
        for b in range(a, 12):
            for programme in ("urban-dibao", "tekun"):
                want_h = sum(any(p == programme and a <= f <= b for p, f, _ in cases) for cases in households)
                want_p = sum(n for cases in households for p, f, n in cases if p == programme and a <= f <= b)
                got = [sum(v[i] for (p, lo, hi), v in kept.items() if p == programme and a <= lo and hi <= b) for i in (0, 1)]
                assert got == [want_h, want_p], (programme, a, b)


def _history(app: LedgerApp, households: int, seed: int) -> None:
    """Households with overlapping and successive cases, and every kind of decision."""
    rnd = random.Random(seed)
    d0 = date(2022, 12, 1)
    for programme, area, fen in ((Programme.URBAN_DIBAO, Area.URBAN, 80000), (Programme.RURAL_DIBAO, Area.RURAL, 60000),
                                 (Programme.TEKUN, Area.URBAN, 100000), (Programme.TEKUN, Area.RURAL, 90000)):
        app.set_standard(programme, area, fen, Month(2022, 1), operator="li.na", effective=date(2022, 1, 1))
    seq = 0

    def open_case(h: str, area: Area, programme: Programme, first: Month, persons: int) -> str:
        nonlocal seq
        seq += 1
        c = f"C{seq:05d}"
        on = first.add(-1).first_day()
        app.apply(case_no=c, household_no=h, programme=programme, channel=rnd.choice(list(Channel)), operator="zhang.wei",
                  effective=on)
        app.verify(c, income_fen=10000, assets_ok=True, verifier="zhang.wei", valid_until=date(2025, 12, 31),
                   operator="zhang.wei", effective=on)
        standard = {Programme.URBAN_DIBAO: 80000, Programme.RURAL_DIBAO: 60000}.get(programme, 90000)
        app.approve(c, amount_fen=standard * persons // 2, first_month=first, operator="li.na", effective=on)
        return c

    for i in range(households):
        h = f"H{i:04d}"
        area = rnd.choice([Area.URBAN, Area.RURAL])
        persons = rnd.randint(1, 4)
        members = [{"id_number": idn(i * 5 + k, born="19600101"), "name": f"P{i}-{k}", "relation": "head" if k == 0 else "child"}
                   for k in range(persons)]
        app.register_household(number=h, community=f"C{i % 5}", area=area, members=members, payee_account=f"6222{i:012d}",
                               operator="zhang.wei", effective=d0)
        dibao = Programme.URBAN_DIBAO if area is Area.URBAN else Programme.RURAL_DIBAO
        first = MONTHS[rnd.randint(0, 5)]
        c = open_case(h, area, dibao, first, persons)
        if rnd.random() < 0.3:
            open_case(h, area, Programme.TEKUN, MONTHS[rnd.randint(0, 8)], 1)
        roll = rnd.random()
        late = date(2024, 1, 15)
        if roll < 0.2:
            stop = first.add(rnd.randint(1, 4))
            app.suspend(c, "review overdue", stop, operator="li.na", effective=late)
            if rnd.random() < 0.6:
                app.resume(c, stop.add(rnd.randint(1, 3)), operator="li.na", effective=late)
        elif roll < 0.35:
            end = first.add(rnd.randint(0, 5))  # retroactive: recorded after the months it ends
            app.terminate(c, "income above standard", end, operator="li.na", effective=late)
            if rnd.random() < 0.6:  # the household applies again later: a second case of the same programme
                open_case(h, area, dibao, MONTHS[min(14, MONTHS.index(end) + rnd.randint(0, 3))], persons)
        elif roll < 0.5:
            app.verify(c, income_fen=5000, assets_ok=True, verifier="zhang.wei", valid_until=date(2025, 12, 31),
                       operator="zhang.wei", effective=late)
            app.adjust(c, amount_fen=35000, from_month=first.add(rnd.randint(0, 4)), covered=[members[0]["id_number"]],
                       operator="li.na", effective=late)


def _assert_kept_equals_scanned(app: LedgerApp) -> int:
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    compared = 0
    with engine.connect() as conn:
        for first in MONTHS[::2]:
            for last in (first, first.add(2), MONTHS[-1]):
                on = last.last_day()
                kept = statistics(conn, first, last, on)
                scanned = statistics(conn, first, last, on, kept=False)
                assert kept == scanned, (first, last)
                compared += 1
    return compared


def test_kept_counts_equal_the_scan_after_catch_up_in_small_pages_and_a_rebuild(db_url: str) -> None:
    app = LedgerApp(db_url)
    projections = Projections(app)
    _history(app, households=60, seed=3)
    projections.catch_up(page_size=23)
    assert _assert_kept_equals_scanned(app) == 24
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        figures = statistics(conn, MONTHS[0], MONTHS[8], MONTHS[8].last_day())
        assert verify(app, conn, projections.view.position()) == []
    # The history is not trivial: several households are counted in more than one group.
    assert figures["programmes"]["tekun"]["caseload"]["households"] > 0
    assert figures["dibao_total"]["caseload"]["households"] > 0
    # Decisions recorded after the catch-up (one more page) change the kept counts the same way.
    with engine.connect() as conn:
        active = [r[0] for r in conn.execute(
            select(t.cases.c.case_no).where(t.cases.c.status == "active").order_by(t.cases.c.case_no).limit(2))]
    app.terminate(active[0], "moved away", MONTHS[8], operator="li.na", effective=date(2024, 2, 1))
    app.suspend(active[1], "review overdue", MONTHS[8], operator="li.na", effective=date(2024, 2, 1))
    projections.catch_up()
    _assert_kept_equals_scanned(app)
    projections.rebuild(page_size=1000)
    _assert_kept_equals_scanned(app)
    with engine.connect() as conn:
        assert statistics(conn, MONTHS[0], MONTHS[8], MONTHS[8].last_day()) != figures


def test_verify_lists_a_kept_count_that_disagrees_with_the_log(sqlite_url: str) -> None:
    from sqlalchemy import text

    app = LedgerApp(sqlite_url)
    projections = Projections(app)
    _history(app, households=8, seed=1)
    projections.catch_up()
    engine = app.factory.datastore.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        assert verify(app, conn, projections.view.position()) == []
        conn.execute(text("UPDATE rm_caseload_step SET households = households + 1 WHERE grp = 'dibao' AND status = 'active'"))
        conn.execute(text("UPDATE rm_new_count SET persons = persons + 2"))
        problems = verify(app, conn, projections.view.position())
    assert any(p.startswith("caseload_steps dibao/active/") and "households" in p for p in problems)
    assert any(p.startswith("new_counts ") and "persons" in p for p in problems)
