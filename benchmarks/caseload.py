"""A synthetic, deterministic caseload written as import lines (the format of ``ledger import``).

Every household is one case: urban or rural dibao (1-4 members) or extreme-poverty
support (tekun, one member). Each household gives four import lines, so four events:
``household.register``, ``case.apply``, ``case.verify`` (by a caseworker) and
``case.approve`` (by another operator: the four-eyes rule holds). Most cases start in
January 2024; one in twenty starts between February and June 2024 (the "newly added"
of the statistics). Standards for 2023 and 2024 are set by the first lines of the first
file.

Household ``h`` always gets the same lines whatever the chunking, so a run can be
repeated, and households beyond the caseload (``h >= households``) can be generated
for a profiling import without colliding with it.

Identity numbers are unique across the whole caseload: adults are born 1940-1999 and
minors 2006-2017, and within each range person ``n`` gets the birth day
``(n * STRIDE) mod days`` and the sequence number ``n // days`` (a bijection while the
sequence stays below 1000, i.e. up to about 21 million adults and 4.3 million minor slots).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from math import gcd
from pathlib import Path

from ledger.values import Month, id_check_char

REGION = "140403"
ADULTS = (date(1940, 1, 1), date(1999, 12, 31))
MINORS = (date(2006, 1, 1), date(2017, 12, 31))
STRIDE = 7919  # a prime; the birth-day permutation needs gcd(STRIDE, days) == 1

#: Local standards in yuan per person and month: (programme, area) -> {from month: yuan}.
STANDARDS: dict[tuple[str, str], dict[str, int]] = {
    ("urban-dibao", "urban"): {"2023-01": 760, "2024-01": 800},
    ("rural-dibao", "rural"): {"2023-01": 680, "2024-01": 720},
    ("tekun", "urban"): {"2023-01": 990, "2024-01": 1040},
    ("tekun", "rural"): {"2023-01": 885, "2024-01": 936},
}

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌宇浩凯欣怡婷雪琳晨阳丹梅兵亮"

CASEWORKERS = 24
APPROVERS = 8
IMPORTER = "bench.import"


def _person_id(index: int, span: tuple[date, date], seq_offset: int = 0) -> str:
    days = (span[1] - span[0]).days + 1
    assert gcd(STRIDE, days) == 1
    seq = index // days + seq_offset
    if seq >= 1000:
        raise ValueError("the caseload is too large for unique identity numbers in this scheme")
    born = span[0] + timedelta(days=(index * STRIDE) % days)
    first17 = f"{REGION}{born:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


@dataclass(frozen=True)
class Household:
    index: int
    number: str
    case_no: str
    programme: str
    area: str
    lines: list[dict]

    @property
    def events(self) -> int:
        return len(self.lines)


def case_number(index: int) -> str:
    """The case number of household ``index`` (the programme letter comes first, as in the demo)."""
    return household_plan(index)[0]


def household_plan(index: int) -> tuple[str, str, str, int]:
    """(case number, programme, area, members) of household ``index``, without building its lines."""
    rnd = random.Random(index * 1_000_003 + 17)
    r = rnd.random()
    if r < 0.08:
        programme, area, members = "tekun", ("urban" if rnd.random() < 0.4 else "rural"), 1
    else:
        area = "urban" if rnd.random() < 0.65 else "rural"
        programme = f"{area}-dibao"
        members = rnd.choices((1, 2, 3, 4), weights=(30, 30, 25, 15))[0]
    prefix = {"urban-dibao": "U", "rural-dibao": "R", "tekun": "T"}[programme]
    return f"{prefix}{index:07d}", programme, area, members


def _name(rnd: random.Random) -> str:
    return rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2))))


def household(index: int) -> Household:
    """The four import lines of household ``index``."""
    case_no, programme, area, n_members = household_plan(index)
    rnd = random.Random(index * 7_368_787 + 3)
    # Persons: every household has 4 person slots (adult ids 4*index.., minor ids 4*index..) so
    # numbering never depends on the other households; unused slots are simply skipped.
    members = []
    surname = rnd.choice(SURNAMES)
    for k in range(n_members):
        if k == 0:
            relation = "head"
        elif k == 1:
            relation = rnd.choices(("spouse", "child", "parent"), weights=(60, 30, 10))[0]
        else:
            relation = rnd.choices(("child", "grandchild", "parent", "sibling"), weights=(70, 10, 10, 10))[0]
        minor = relation in ("child", "grandchild") and rnd.random() < 0.7
        idn = _person_id(4 * index + k, MINORS if minor else ADULTS)
        born = int(idn[6:10])
        flags = []
        if minor:
            flags.append("minor")
        elif born < 1964:
            flags.append("elderly")
        if programme == "tekun" or rnd.random() < 0.08:
            flags.append(rnd.choice(("ill", "disabled")) if programme != "tekun" else "disabled")
        members.append({"name": surname + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2)))),
                        "id_number": idn, "relation": relation, "flags": sorted(set(flags))})
    number = f"H{index:07d}"
    communities = ("东街", "西关", "南门", "北苑", "新村", "河畔", "城南", "城北", "桥头", "园区")
    community = f"{communities[index % len(communities)]}{(index // len(communities)) % 40 + 1:02d}社区"
    # Most cases start in January 2024 (decided in December 2023); one in twenty later in 2024.
    if rnd.random() < 0.95:
        first = Month(2024, 1)
        applied = date(2023, 10, 2) + timedelta(days=rnd.randrange(45))
        approved = date(2023, 12, 1) + timedelta(days=rnd.randrange(20))
    else:
        first = Month(2024, rnd.randint(2, 6))
        applied = first.add(-1).first_day() + timedelta(days=rnd.randrange(10))
        approved = applied + timedelta(days=12)
    verified = applied + timedelta(days=3 + rnd.randrange(7))
    caseworker = f"cw.{rnd.randrange(CASEWORKERS):02d}"
    approver = f"ap.{rnd.randrange(APPROVERS):02d}"
    std_2023 = STANDARDS[(programme, area)]["2023-01"]
    std_2024 = STANDARDS[(programme, area)]["2024-01"]
    if programme == "tekun":
        income = rnd.randrange(0, 300)
        amount = std_2024
    else:
        dibao_2023 = STANDARDS[(f"{area}-dibao", area)]["2023-01"]
        income = rnd.randrange(0, min(std_2023, dibao_2023) - 50)
        amount = (std_2024 - income) * n_members
    lines = [
        {"action": "household.register", "operator": caseworker, "date": applied.isoformat(), "number": number,
         "community": community, "area": area, "payee_account": f"6217{index:015d}", "payee_name": members[0]["name"],
         "members": members},
        {"action": "case.apply", "operator": caseworker, "date": applied.isoformat(), "case": case_no, "household": number,
         "programme": programme, "channel": rnd.choices(("window", "outreach", "referral"), weights=(70, 20, 10))[0]},
        {"action": "case.verify", "operator": caseworker, "date": verified.isoformat(), "case": case_no,
         "income": str(income), "assets_ok": True, "verifier": caseworker, "valid_until": "2025-06-30"},
        {"action": "case.approve", "operator": approver, "date": approved.isoformat(), "case": case_no,
         "amount": str(amount), "first_month": str(first)},
    ]
    return Household(index, number, case_no, programme, area, lines)


def standard_lines() -> list[dict]:
    out = []
    for (programme, area), by_month in STANDARDS.items():
        for month, yuan in by_month.items():
            out.append({"action": "standard.set", "operator": "std.guo", "date": f"{int(month[:4]) - 1}-12-20",
                        "programme": programme, "area": area, "amount": str(yuan), "from": month})
    return out


def lines(first: int, count: int, with_standards: bool) -> Iterator[str]:
    """The import lines of households ``first .. first+count-1`` (JSON text, one action each)."""
    if with_standards:
        for d in standard_lines():
            yield json.dumps(d, ensure_ascii=False)
    for h in range(first, first + count):
        for d in household(h).lines:
            yield json.dumps(d, ensure_ascii=False)


def write_file(path: Path, first: int, count: int, with_standards: bool) -> int:
    """Write one import file; returns its number of lines."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for text in lines(first, count, with_standards):
            f.write(text + "\n")
            n += 1
    return n


def chunks(households: int, lines_per_file: int) -> list[tuple[int, int]]:
    """(first household, count) of each import file, about ``lines_per_file`` lines each."""
    per = max(1, lines_per_file // 4)
    return [(i, min(per, households - i)) for i in range(0, households, per)]
