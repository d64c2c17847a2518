"""Check the read models against a fresh replay of the whole event log.

The expected rows are recomputed from the aggregates themselves (every aggregate in
the log is reconstructed by the event store's repository, through the domain's own
mutators), not by the projection's handlers, and compared field by field with the
tables. Any difference is listed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ledger.application import LedgerApp
from ledger.domain import Case, Household, Payment, Standard
from projections import counts
from projections import tables as t

Progress = Callable[[int, int], None]


def _aggregate_ids(app: LedgerApp, head: int, page: int = 5000) -> Iterator[UUID]:
    """Each aggregate's id once, in log order of its first event (streamed, page by page)."""
    position = 0
    while position < head:
        notes = app.recorder.select_notifications(start=position, limit=page, stop=head, inclusive_of_start=False)
        if not notes:
            return
        for n in notes:
            if n.originator_version == 1:
                yield n.originator_id  # type: ignore[misc]
        position = notes[-1].id


def _aggregates(app: LedgerApp, head: int, chunk: int = 1000) -> Iterator[Any]:
    """Every aggregate of the log, rebuilt by the repository's projector, a chunk at a time."""
    batch: list[UUID] = []
    for aggregate_id in _aggregate_ids(app, head):
        batch.append(aggregate_id)
        if len(batch) == chunk:
            yield from _load(app, batch)
            batch = []
    yield from _load(app, batch)


def _load(app: LedgerApp, ids: list[UUID]) -> Iterator[Any]:
    uow = app.unit_of_work()
    uow.preload(ids)
    for i in ids:
        yield uow.find(i)


def _expected(app: LedgerApp, head: int, progress: Progress | None) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    exp: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {
        "households": {}, "members": {}, "cases": {}, "periods": {}, "payments": {}, "standards": {}, "verifications": {},
        "overpayments": {}, "recoveries": {}, "paid_months": {}, "delivered": {},
    }
    periods_by_household: dict[str, list[counts.PeriodShape]] = {}
    firsts_by_household: dict[str, list[counts.FirstMonth]] = {}
    done = 0
    for agg in _aggregates(app, head):
        if isinstance(agg, Household):
            exp["households"][(agg.number,)] = {
                "community": agg.community, "area": agg.area.value, "payee_name": agg.payee_name,
                "payee_account": agg.payee_account,
            }
            for idn, m in agg.members.items():
                exp["members"][(agg.number, idn)] = {
                    "name": m["name"], "relation": m["relation"], "flags": ",".join(m.get("flags", [])), "status": m["status"],
                }
        elif isinstance(agg, Case):
            exp["cases"][(agg.case_no,)] = {
                "household_no": agg.household_no, "programme": agg.programme.value, "area": agg.area.value,
                "channel": agg.channel.value, "status": agg.status,
                "first_idx": agg.first_month.index if agg.first_month else None,
                "amount_fen": agg.amount_fen,
                "persons": len(agg.covered) if agg.is_monthly else 0,
                "persons_at_approval": agg.persons_at_approval,
                "verifications": len(agg.verifications),
            }
            if agg.first_month is not None:
                firsts_by_household.setdefault(agg.household_no, []).append(
                    (agg.programme.value, agg.first_month.index, agg.persons_at_approval)
                )
            for p in agg.periods():
                periods_by_household.setdefault(agg.household_no, []).append(
                    (agg.programme.value, p.status, p.from_month.index,
                     p.to_month.index if p.to_month else t.OPEN_END, len(p.covered))
                )
                key = (agg.case_no, p.from_month.index)
                exp["periods"][key] = {
                    "to_idx": p.to_month.index if p.to_month else t.OPEN_END, "status": p.status,
                    "amount_fen": p.amount_fen, "persons": len(p.covered),
                }
            for m, amount in agg.overpaid.items():
                exp["overpayments"][(agg.case_no, m.index)] = {"amount_fen": amount}
            if agg.recovered_fen:
                exp["recoveries"][(agg.case_no,)] = {"recovered_fen": agg.recovered_fen}
            for v in agg.verifications:
                exp["verifications"][(agg.case_no, v.no)] = {
                    "income_fen": v.income_fen, "passed": v.passed, "verifier": v.verifier, "valid_until": v.valid_until,
                }
        elif isinstance(agg, Payment):
            if agg.is_net:
                key = (agg.programme.value, agg.area.value, agg.month.index)
                row = exp["paid_months"].setdefault(key, {"amount_fen": 0, "persons": 0, "payments": 0})
                row["amount_fen"] += agg.amount_fen
                row["persons"] += agg.persons
                row["payments"] += 1
            if agg.status != "returned" and agg.gross_fen:
                row = exp["delivered"].setdefault((agg.case_no,), {"gross_fen": 0})
                row["gross_fen"] += agg.gross_fen
            exp["payments"][(agg.ref,)] = {
                "case_no": agg.case_no, "programme": agg.programme.value, "month_idx": agg.month.index,
                "issue_no": agg.issue_no, "kind": agg.kind, "gross_fen": agg.gross_fen, "offset_fen": agg.offset_fen,
                "amount_fen": agg.amount_fen, "released_fen": agg.released_fen, "persons": agg.persons, "status": agg.status,
            }
        elif isinstance(agg, Standard):
            for month, amount in agg.history:
                exp["standards"][(agg.programme.value, agg.area.value, month.index)] = {"amount_fen": amount}
        done += 1
        if progress and done % 1000 == 0:
            progress(done, 0)
    # The statistics' kept counts, from every household's cases at once (not page by page).
    steps: counts.Steps = {}
    for shapes in periods_by_household.values():
        counts.add_caseload(steps, shapes)
    exp["caseload_steps"] = {k: dict(zip(("households", "persons", "cases"), v)) for k, v in steps.items() if any(v)}
    news: counts.NewCounts = {}
    for firsts in firsts_by_household.values():
        counts.add_new(news, firsts)
    exp["new_counts"] = {k: dict(zip(("households", "persons"), v)) for k, v in news.items() if any(v)}
    return exp


def _actual(conn: Connection) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    act: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    act["households"] = {(r["household_no"],): dict(r) for r in conn.execute(select(t.households)).mappings()}
    act["members"] = {(r["household_no"], r["id_number"]): dict(r) for r in conn.execute(select(t.members)).mappings()}
    act["cases"] = {(r["case_no"],): dict(r) for r in conn.execute(select(t.cases)).mappings()}
    act["periods"] = {
        (r["case_no"], r["from_idx"]): dict(r)
        for r in conn.execute(select(t.periods).where(t.periods.c.known_to.is_(None))).mappings()
    }
    act["payments"] = {(r["ref"],): dict(r) for r in conn.execute(select(t.payments)).mappings()}
    # The latest setting per programme, area and month is the one in force.
    act["standards"] = {}
    for r in conn.execute(select(t.standards).order_by(t.standards.c.position)).mappings():
        act["standards"][(r["programme"], r["area"], r["from_idx"])] = dict(r)
    act["verifications"] = {(r["case_no"], r["no"]): dict(r) for r in conn.execute(select(t.verifications)).mappings()}
    act["paid_months"] = {
        (r["programme"], r["area"], r["month_idx"]): dict(r)
        for r in conn.execute(select(t.paid_months)).mappings()
        if r["payments"]
    }
    act["delivered"] = {
        (r["case_no"],): dict(r) for r in conn.execute(select(t.delivered)).mappings() if r["gross_fen"]
    }
    act["caseload_steps"] = {
        (r["grp"], r["status"], r["month_idx"]): dict(r)
        for r in conn.execute(select(t.caseload_steps)).mappings()
        if r["households"] or r["persons"] or r["cases"]
    }
    act["new_counts"] = {
        (r["programme"], r["lo_idx"], r["hi_idx"]): dict(r)
        for r in conn.execute(select(t.new_counts)).mappings()
        if r["households"] or r["persons"]
    }
    act["overpayments"] = {}
    for r in conn.execute(select(t.overpayments)).mappings():
        row = act["overpayments"].setdefault((r["case_no"], r["month_idx"]), {"amount_fen": 0})
        row["amount_fen"] += r["amount_fen"]
    act["overpayments"] = {k: v for k, v in act["overpayments"].items() if v["amount_fen"]}
    act["recoveries"] = {}
    for r in conn.execute(select(t.recoveries)).mappings():
        row = act["recoveries"].setdefault((r["case_no"],), {"recovered_fen": 0})
        row["recovered_fen"] += r["amount_fen"]
    act["recoveries"] = {k: v for k, v in act["recoveries"].items() if v["recovered_fen"]}
    return act


def verify(app: LedgerApp, conn: Connection, head: int, progress: Progress | None = None) -> list[str]:
    """Differences between the read models (up to ``head``) and a replay of the log; empty if none."""
    expected = _expected(app, head, progress)
    actual = _actual(conn)
    problems: list[str] = []
    for name, rows in expected.items():
        got = actual[name]
        for key, want in rows.items():
            have = got.get(key)
            if have is None:
                problems.append(f"{name} {'/'.join(map(str, key))}: missing from the read model")
                continue
            for field, value in want.items():
                if have.get(field) != value:
                    problems.append(
                        f"{name} {'/'.join(map(str, key))}: {field} is {have.get(field)!r} in the read model, "
                        f"{value!r} by replay"
                    )
        for key in got.keys() - rows.keys():
            problems.append(f"{name} {'/'.join(map(str, key))}: in the read model but not in the log")
    return problems


def dump(conn: Connection) -> dict[str, list[str]]:
    """Every read-model row as sorted JSON text (surrogate ids left out): for comparing two databases."""
    out = {}
    for table in t.metadata.sorted_tables:
        rows = []
        for r in conn.execute(select(table)).mappings():
            d = {k: v for k, v in r.items() if k != "id"}
            rows.append(json.dumps(d, sort_keys=True, default=str))
        out[table.name] = sorted(rows)
    return out
