"""A file's independent households checked in several processes store what one process would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from typing import Any

import pytest

from ledger import parallel
from ledger.application import LedgerApp
from ledger.importer import ImportError_, _parse_line, import_lines
from tests.conftest import fresh_postgres, idn
from tests.unit.ledger_helpers import written


def line(action: str, operator: str = "zhang.wei", day: str = "2023-01-05", **fields: Any) -> str:
    return json.dumps({"action": action, "operator": operator, "date": day, **fields}, ensure_ascii=False)


STANDARDS = [
    line("standard.set", "li.na", "2022-01-01", programme="urban-dibao", area="urban", amount="760", **{"from": "2022-01"}),
    line("standard.set", "li.na", "2022-01-01", programme="rural-dibao", area="rural", amount="680", **{"from": "2022-01"}),
]


def verified(case: str, day: str) -> str:
    return line("case.verify", day=day, case=case, income="100", assets_ok=True, verifier="zhang.wei", valid_until="2023-12-31")


def household(h: int) -> list[list[str]]:
    """A household's lines in steps: every household's step k comes before any step k + 1 in a file."""
    urban = h % 3 != 0
    area, programme = ("urban", "urban-dibao") if urban else ("rural", "rural-dibao")
    number, case, temp = f"H{h:03d}", f"C{h:03d}", f"T{h:03d}"
    members = [{"id_number": idn(10 * h + i), "name": f"成员{i}", "relation": "head" if i == 0 else "child"}
               for i in range(1 + h % 3)]
    steps = [
        [line("household.register", number=number, community="东街", area=area, payee_account=f"6222{h:012d}",
              members=members)],
        [line("case.apply", case=case, household=number, programme=programme, channel="window")],
        [line("case.verify", case=case, income="100", assets_ok=True, verifier="zhang.wei", valid_until="2023-12-31")],
        [line("case.approve", "li.na", case=case, amount=str(300 + h % 200), first_month="2023-01")],
        [line("payment.issue", "wang.fang", "2023-01-25", case=case, month="2023-01"),
         line("payment.issue", "wang.fang", "2023-01-25", case=case, month="2023-02")],
    ]
    if h % 4 == 0:
        steps.append([line("payment.return", "wang.fang", "2023-01-28", ref=f"P-{case}-202301-1", reason="account closed"),
                      line("household.set-account", household=number, payee_name="成员0", payee_account=f"6223{h:012d}"),
                      line("payment.issue", "wang.fang", "2023-02-01", case=case, month="2023-01")])
    else:
        steps.append([line("payment.settle", "wang.fang", "2023-01-28", ref=f"P-{case}-202301-1")])
    if h % 5 == 1:
        steps.append([line("household.add-member", household=number,
                           member={"id_number": idn(10 * h + 7), "name": "新生", "relation": "child"}),
                      verified(case, "2023-02-10"),
                      line("case.adjust", "li.na", "2023-02-10", case=case, amount=str(500 + h % 100), **{"from": "2023-01"}),
                      line("payment.issue", "wang.fang", "2023-02-11", case=case, month="2023-01")])
    if h % 7 == 2:
        steps.append([line("case.apply", case=temp, household=number, programme="temporary", channel="referral"),
                      line("case.verify", case=temp, income=0, assets_ok=True, verifier="zhang.wei", valid_until="2023-03-31"),
                      line("grant.approve", "li.na", "2023-01-10", case=temp, type="fire", amount=800, reason="kitchen fire"),
                      line("grant.pay", "wang.fang", "2023-01-11", case=temp)])
    if h % 6 == 5:
        steps.append([verified(case, "2023-02-20"),
                      line("case.adjust", "li.na", "2023-02-20", case=case, amount="100", **{"from": "2023-01"}),
                      line("case.suspend", "li.na", "2023-03-02", case=case, reason="review missed", **{"from": "2023-03"})])
    return steps


def interleaved(households: range) -> list[str]:
    """The households' lines step by step, so that every share's lines are spread over the whole file."""
    plans = [household(h) for h in households]
    out: list[str] = []
    for k in range(max(len(p) for p in plans)):
        for p in plans:
            if k < len(p):
                out.extend(p[k])
    return out


def later_lines(households: range) -> list[str]:
    """Lines for cases stored before this file: each is grouped with its stored household."""
    out = []
    for h in households:
        case = f"C{h:03d}"
        if h % 6 != 5:  # suspended from March
            out.append(line("payment.issue", "wang.fang", "2023-02-25", case=case, month="2023-03"))
        if h % 2:
            out.append(verified(case, "2023-03-01"))
            out.append(line("case.adjust", "li.na", "2023-03-01", case=case, amount=str(200 + h), **{"from": "2023-02"}))
            out.append(line("household.move", household=f"H{h:03d}", area="rural" if h % 3 else "urban"))
    return out


FIRST = STANDARDS + interleaved(range(0, 20))
SECOND = interleaved(range(20, 60)) + later_lines(range(0, 20))


def log(app: LedgerApp) -> list[tuple[str, int, str, dict[str, Any]]]:
    """Every stored event in log order, without the time it was recorded."""
    out = []
    for n in app.recorder.select_notifications(1, 1_000_000):
        state = json.loads(n.state)
        state.pop("timestamp")
        out.append((n.originator_id.hex, n.originator_version, n.topic, state))
    return out


def apps(db_url: str, stack: ExitStack) -> Iterator[LedgerApp]:
    """Ledgers on fresh databases of the same kind as ``db_url``, with the same clock."""
    if db_url.startswith("sqlite:///"):
        base = db_url.removesuffix(".sqlite")
        urls: Iterator[str] = (f"{base}-{k}.sqlite" for k in range(100))
    else:
        urls = (stack.enter_context(_entered(fresh_postgres())) for _ in range(100))
    for url in urls:
        yield LedgerApp(url, clock=lambda: date(2023, 3, 15))


class _entered:
    def __init__(self, gen: Iterator[str]) -> None:
        self.gen = gen

    def __enter__(self) -> str:
        return next(self.gen)

    def __exit__(self, *exc: Any) -> None:
        for _ in self.gen:
            pass


def imported(app: LedgerApp, lines: list[str], workers: int) -> Any:
    return import_lines(app, [text + "\n" for text in lines], workers=workers)


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Files this small are checked in several processes; records how many shares each had."""
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 1)
    shares: list[int] = []
    run = parallel.run

    def spy(app: Any, uow: Any, parts: list[Any], progress: Any) -> Any:
        shares.append(len(parts))
        return run(app, uow, parts, progress)

    monkeypatch.setattr(parallel, "run", spy)
    return shares


def test_a_parallel_import_stores_exactly_what_one_process_stores(db_url: str, spied: list[int]) -> None:
    with ExitStack() as stack:
        made = apps(db_url, stack)
        one, three = next(made), next(made)
        for app, workers in ((one, 1), (three, 3)):
            first = imported(app, FIRST, workers)
            second = imported(app, SECOND, workers)
            assert written(app) == first.events + second.events
        assert spied == [3]  # the first file sets standards: one process; the second in three
        assert first.actions["standard.set"] == 2
        expected = log(one)
        assert len(expected) > 400
        assert log(three) == expected


def shares_of(app: LedgerApp, lines: list[str], workers: int) -> list[list[int]]:
    parsed = [_parse_line(n, text) for n, text in enumerate(lines, start=1)]
    uow = app.unit_of_work()
    uow.preload([])
    shares = parallel.plan(parsed, uow, workers)
    assert shares is not None
    return [[p[0] for p in share] for share in shares]


def test_the_lowest_failing_line_of_any_share_is_reported_and_nothing_is_written(sqlite_url: str, spied: list[int]) -> None:
    app = LedgerApp(sqlite_url, clock=lambda: date(2023, 3, 15))
    imported(app, FIRST, 1)
    before = written(app)
    lines = interleaved(range(20, 40))
    shares = shares_of(app, lines, 2)
    # A late line of the first share (this process's) and an early one of the second, each made to break a rule.
    late = max(n for n in shares[0] if "case" in json.loads(lines[n - 1]))
    early = min(n for n in shares[1] if "case" in json.loads(lines[n - 1]))
    assert early < late
    broken = list(lines)
    for n in (early, late):
        case = json.loads(lines[n - 1])["case"]
        broken[n - 1] = line("case.verify", case=case, income="100", assets_ok=True, verifier="zhang.wei", valid_until="2022-01-01")
    with pytest.raises(ImportError_, match=rf"^line {early} \(case.verify\): "):
        imported(app, broken, 2)
    assert written(app) == before
    # Only the late line broken: that is the error; one process reports the same.
    broken[early - 1] = lines[early - 1]
    with pytest.raises(ImportError_) as in_parallel:
        imported(app, broken, 2)
    with pytest.raises(ImportError_) as in_one:
        imported(app, broken, 1)
    assert str(in_parallel.value) == str(in_one.value)
    assert str(in_one.value).startswith(f"line {late} (case.verify): ")
    assert written(app) == before
    assert spied == [2, 2]


def test_lines_are_grouped_by_household_with_their_cases_and_payments(sqlite_url: str, spied: list[int]) -> None:
    app = LedgerApp(sqlite_url, clock=lambda: date(2023, 3, 15))
    imported(app, FIRST, 1)
    lines = interleaved(range(20, 30)) + later_lines(range(0, 10))
    parsed = [_parse_line(n, text) for n, text in enumerate(lines, start=1)]
    uow = app.unit_of_work()
    from ledger.importer import _named_aggregates

    uow.preload(_named_aggregates(parsed))
    shares = parallel.plan(parsed, uow, 3)
    assert shares is not None and len(shares) == 3
    where: dict[str, int] = {}
    for k, share in enumerate(shares):
        numbers = [p[0] for p in share]
        assert numbers == sorted(numbers)  # each share in file order
        for p in share:
            fields = p[3]
            name = fields.get("household") or fields.get("number") or fields.get("case") or fields["ref"].split("-")[1]
            where.setdefault("H" + name[1:], k)
            assert where["H" + name[1:]] == k, p  # a household, its cases and payments in one share
    assert sorted(n for share in shares for n in (p[0] for p in share)) == list(range(1, len(lines) + 1))
    # A file that sets a standard, or a small one, runs in one process.
    assert parallel.plan([_parse_line(1, STANDARDS[0])] + parsed, uow, 3) is None
    assert parallel.plan(parsed, uow, 1) is None
