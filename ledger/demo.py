"""The demonstration district: Luzhou district (潞州区), January to September 2023.

:func:`build_demo` records, only through :class:`~ledger.application.LedgerApp`'s
command methods, a deterministic district whose events reproduce exactly the figures
the bureau published for January-September 2023 (DOMAIN.md section 6) under the
definitions of section 5:

* urban dibao 51,800 person-times and 30,703,124.00 yuan; 149 households / 223
  persons newly added; rural dibao 16,747 person-times and 10,009,148.00 yuan;
  64 households / 108 persons newly added;
* caseload on 2023-09-30, urban and rural dibao together: 4,878 households,
  7,328 persons;
* tekun paid: 5,212,599.00 yuan;
* temporary assistance: 2,056 grants paid, 2,493,300.00 yuan.

How it is built. The ledger starts with the roll as re-verified at the annual review of
autumn 2022: every case already on the roll in January 2023 was re-registered,
re-verified and approved in October-November 2022 with first benefit month 2022-12,
and is paid for December 2022 too, so its account is whole and it is not "newly added"
in 2023. During 2023 the district lives: new households apply at the window, through
outreach at their door or by referral; some members apply alone (single-person
inclusion of a seriously ill or severely disabled member); cases are suspended and
resumed, terminated (income above the standard, moved away, deceased), their amounts
adjusted on new verifications (income changes, a member's death, a birth); the bank
returns some payments, most of which are re-issued to a corrected account; extreme-
poverty (tekun) persons are paid the basic standard plus, for many, a care allowance;
temporary grants are applied for, verified, approved and paid.

The calibration is solved on a plan made of plain data (:func:`plan_demo`) before
anything is recorded: household sizes are chosen to meet the caseload and newly-added
counts, terminations during the year to meet the person-times, and amounts (whole
yuan, each within the standard times the persons covered) are tuned a yuan at a time
on ordinary cases, the last few yuan on a case paid for one month only. The plan's
figures are checked against the targets; the ledger then replays the plan.

Deliberate exceptions, reported in :class:`DemoSummary`: a few payments returned by
the bank in August/September are not yet re-issued on 2023-09-30 (their cases are
owed that month), a few temporary grants approved in late September are not yet paid,
and a few applications are still undecided.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from ledger.application import LedgerApp
from ledger.domain import Change, case_id, fold_periods, household_id, payment_id, payment_ref, standard_id
from ledger.errors import AlreadyExists
from ledger.values import Area, Channel, Month, Programme, id_check_char

Progress = Callable[[str, int, int], None]

# --------------------------------------------------------------------------- the published figures

#: The figures of DOMAIN.md section 6, in fen where they are amounts.
TARGETS: dict[str, int] = {
    "urban-dibao.person_times": 51_800,
    "urban-dibao.paid_fen": 3_070_312_400,
    "urban-dibao.new_households": 149,
    "urban-dibao.new_persons": 223,
    "rural-dibao.person_times": 16_747,
    "rural-dibao.paid_fen": 1_000_914_800,
    "rural-dibao.new_households": 64,
    "rural-dibao.new_persons": 108,
    "dibao.caseload_households": 4_878,
    "dibao.caseload_persons": 7_328,
    "tekun.paid_fen": 521_259_900,
    "temporary.grants": 2_056,
    "temporary.paid_fen": 249_330_000,
}

PERIOD_FIRST = Month(2023, 1)
PERIOD_LAST = Month(2023, 9)
#: The first benefit month of the roll as re-verified in autumn 2022.
ROLL_START = Month(2022, 12)
_MONTHS = list(ROLL_START.until(PERIOD_LAST))
#: The day the demonstration district stands at.
AS_OF = date(2023, 9, 30)

# Operators: the verifier never approves (four eyes).
STANDARDS_OFFICER = "guo.qiang"
CASEWORKER = {Area.URBAN: "chen.jing", Area.RURAL: "liu.yang"}
OUTREACH_WORKER = "sun.hao"
VERIFIER = {Area.URBAN: "zhang.wei", Area.RURAL: "zhou.lei"}
APPROVER = {Area.URBAN: "li.na", Area.RURAL: "wang.fang"}
FINANCE = "zhao.min"

# Local standards, yuan per person and month: (from month, amount) history.
STANDARDS: dict[tuple[Programme, Area], list[tuple[Month, int]]] = {
    (Programme.URBAN_DIBAO, Area.URBAN): [(Month(2021, 1), 700), (Month(2022, 1), 760)],
    (Programme.RURAL_DIBAO, Area.RURAL): [(Month(2021, 1), 620), (Month(2022, 1), 680)],
    (Programme.TEKUN, Area.URBAN): [(Month(2021, 1), 910), (Month(2022, 1), 990)],
    (Programme.TEKUN, Area.RURAL): [(Month(2021, 1), 806), (Month(2022, 1), 885)],
}
DIBAO_STD = {Area.URBAN: 760, Area.RURAL: 680}
TEKUN_STD = {Area.URBAN: 990, Area.RURAL: 885}

#: Payroll day of every month; a supplementary payroll pays late September approvals.
PAYDAY = 15
SUPPLEMENTARY = date(2023, 9, 28)

#: How each area's roll is made up. ``active``/``persons``: the caseload in 2023-09;
#: the other counts are numbers of continuing cases with that story.
AREA_PLAN: dict[Area, dict[str, int]] = {
    Area.URBAN: dict(
        active=3_690, persons=5_538, suspended_end=14, suspended_mid=26, adjusted=60, deaths=16,
        births=6, returned=40, unreturned=2, single=150, add_on=24, rejected=25, pending=5,
    ),
    Area.RURAL: dict(
        active=1_188, persons=1_790, suspended_end=5, suspended_mid=9, adjusted=20, deaths=8,
        births=2, returned=12, unreturned=1, single=45, add_on=8, rejected=10, pending=3,
    ),
}
TEKUN_URBAN_SHARE = 0.22
TEKUN_DEATHS = 28
TEKUN_NEW = 12

SIZE_WEIGHTS = {1: 66, 2: 22, 3: 8, 4: 3, 5: 1}
#: The smallest monthly gap top-up per person (yuan) the tuning leaves a case.
MIN_GAP = 40

TEMP_AMOUNTS = {300: 8, 500: 14, 800: 18, 1000: 22, 1200: 10, 1500: 12, 2000: 8, 3000: 5, 5000: 2.5, 6000: 0.5}
TEMP_TYPES = [
    ("medical", "hospital bills after a serious illness"),
    ("accident", "injury in a traffic accident"),
    ("disaster", "house damaged by fire"),
    ("education", "school costs the household cannot meet"),
    ("living", "sudden loss of income; basic living at risk"),
]

SURNAMES = "王李张刘陈杨赵黄周吴郭申牛秦郝任武冯韩段宋崔程马苗常路贾"
GIVEN = "建国军华明伟芳娟秀英玉兰红霞平丽强磊洋勇艳杰涛斌静敏燕鹏志刚海霞晓东春梅桂兰宝林小凤"
STREETS = [
    "东街街道", "西街街道", "南街街道", "北街街道", "英雄南路街道", "英雄中路街道", "太行东街街道",
    "太行西街街道", "延安南路街道", "紫金街街道", "常青街道", "长北街道",
]
COMMUNITIES = ["府后", "东关", "西关", "南关", "北关", "英雄台", "太行", "紫金", "长兴", "常青", "建设", "和平", "惠丰", "光明"]
TOWNS = ["大辛庄镇", "马厂镇", "黄碾镇", "堠北庄镇", "老顶山镇", "西白兔乡"]
VILLAGES = ["南垂", "北董", "西长井", "东掌", "故县", "关村", "史家庄", "漳村", "西沟", "安昌", "苗圃", "杨暴"]

CHUNK_HOUSEHOLDS = 250

#: The examples :attr:`DemoSummary.showcase` picks, in this order.
SHOWCASE = (
    "single-person inclusion",
    "returned and re-issued",
    "amount adjusted on a new verification",
    "suspended on 2023-09-30",
    "terminated: income above the standard",
    "tekun with care allowance",
    "temporary grant paid",
)


# --------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`build_demo` recorded, as plain data."""

    seed: int
    households: int
    persons: int
    cases: dict[str, int]
    payments: int
    returns: int
    reissues: int
    grants_paid: int
    events: int
    #: The published figures the district reproduces (same keys as :data:`TARGETS`).
    figures: dict[str, int]
    #: Interesting case numbers to show, by what they show.
    examples: dict[str, str]
    #: Deliberate non-zero balances on 2023-09-30: case number -> fen still owed to it.
    balances: dict[str, int]
    #: Temporary grants approved but not yet paid on 2023-09-30: case number -> fen.
    pending_grants: dict[str, int]
    #: Applications not yet decided on 2023-09-30.
    pending_applications: list[str]

    @property
    def showcase(self) -> dict[str, str]:
        """A handful of :attr:`examples` worth opening first, by what they show."""
        return {label: self.examples[label] for label in SHOWCASE if label in self.examples}

    def describe(self) -> str:
        """One line for a terminal."""
        cases = ", ".join(f"{n:,} {p}" for p, n in self.cases.items())
        return (
            f"{self.households:,} households, {self.persons:,} persons, cases: {cases}; "
            f"{self.payments:,} payments ({self.returns} returned by the bank, {self.reissues} re-issued), "
            f"{self.grants_paid:,} temporary grants paid; {self.events:,} events"
        )


# --------------------------------------------------------------------------- the plan (plain data)


@dataclass
class PlanMember:
    id_number: str
    name: str
    relation: str
    flags: list[str]
    born: date

    def record(self) -> dict[str, Any]:
        return {"id_number": self.id_number, "name": self.name, "relation": self.relation, "flags": list(self.flags)}


@dataclass
class PlanDecision:
    """A decision taking effect from a benefit month; ``verify_on`` records a verification first."""

    kind: str  # approved / adjusted / suspended / resumed / terminated
    from_month: Month
    on: date
    amount: int = 0  # yuan a month
    covered: tuple[str, ...] = ()
    add_on: int = 0
    add_on_reason: str = ""
    reason: str = ""
    verify_on: date | None = None
    verify_income: int | None = None  # yuan per person; None = derived from the amount
    verify_passes: bool = True


@dataclass
class PlanGrant:
    grant_type: str
    reason: str
    amount: int  # yuan
    verify_on: date
    approve_on: date
    pay_on: date | None
    assets_ok: bool = True


@dataclass
class PlanCase:
    key: int
    programme: Programme
    household: PlanHousehold
    channel: Channel
    applied: date
    story: str
    single_person: str | None = None
    decisions: list[PlanDecision] = field(default_factory=list)
    #: Bank returns: month -> (reason, re-issued?).
    returns: dict[Month, tuple[str, bool]] = field(default_factory=dict)
    grant: PlanGrant | None = None
    rejection: tuple[date, date, int, str] | None = None  # verified on, rejected on, income, reason
    pending_verify: date | None = None
    tunable: bool = False
    fine: bool = False
    case_no: str = ""
    _folded: tuple[Any, dict[Month, tuple[str, int, int]]] | None = field(default=None, repr=False, compare=False)

    @property
    def area(self) -> Area:
        return self.household.area

    @property
    def first_month(self) -> Month | None:
        return self.decisions[0].from_month if self.decisions else None

    def periods(self):  # noqa: ANN201 - list of ledger.domain.Period
        return fold_periods(
            [Change(d.from_month, i, d.kind, d.amount * 100, d.covered) for i, d in enumerate(self.decisions)]
        )

    def month_status(self) -> dict[Month, tuple[str, int, int]]:
        """Benefit month -> (status, amount in yuan, persons) from the roll start to September 2023.

        Folded with the ledger's own :func:`~ledger.domain.fold_periods`, so the plan pays
        exactly what the ledger will find payable.
        """
        key = tuple((d.kind, d.from_month, d.amount, d.covered) for d in self.decisions)
        if self._folded is not None and self._folded[0] == key:
            return self._folded[1]
        out: dict[Month, tuple[str, int, int]] = {}
        periods = self.periods()
        for m in _MONTHS:
            for p in periods:
                if p.from_month <= m and (p.to_month is None or m < p.to_month):
                    out[m] = (p.status, p.amount_fen // 100, len(p.covered))
        self._folded = (key, out)
        return out

    def net_payments(self) -> list[tuple[Month, int, int]]:
        """(month, yuan, persons) of the payments standing on 2023-09-30, returns not re-issued left out."""
        return [
            (m, amount, persons)
            for m, (status, amount, persons) in self.month_status().items()
            if status == "active" and (m not in self.returns or self.returns[m][1])
        ]

    def paid_months_in_period(self) -> int:
        return sum(1 for m, _, _ in self.net_payments() if m >= PERIOD_FIRST)


@dataclass
class PlanHousehold:
    key: int
    area: Area
    community: str
    members: list[PlanMember]
    registered: date
    account: str
    cases: list[PlanCase] = field(default_factory=list)
    #: Household events: (date, kind, data) with kind death / birth / account.
    events: list[tuple[date, str, Any]] = field(default_factory=list)
    number: str = ""

    @property
    def head(self) -> PlanMember:
        return next(m for m in self.members if m.relation == "head")


@dataclass
class Plan:
    seed: int
    households: list[PlanHousehold]
    cases: list[PlanCase]

    def figures(self) -> dict[str, int]:
        """The section 5 figures of the plan (same keys as :data:`TARGETS`)."""
        f: dict[str, int] = Counter()  # type: ignore[assignment]
        new_households: dict[str, set[int]] = {"urban-dibao": set(), "rural-dibao": set()}
        load_households: set[int] = set()
        for c in self.cases:
            p = c.programme.value
            if c.programme.is_monthly and c.decisions:
                for m, amount, persons in c.net_payments():
                    if PERIOD_FIRST <= m <= PERIOD_LAST:
                        f[f"{p}.person_times"] += persons
                        f[f"{p}.paid_fen"] += amount * 100
                if c.programme.is_dibao:
                    first = c.decisions[0]
                    if PERIOD_FIRST <= first.from_month <= PERIOD_LAST:
                        new_households[p].add(c.household.key)
                        f[f"{p}.new_persons"] += len(first.covered)
                    status = c.month_status().get(PERIOD_LAST)
                    if status and status[0] == "active":
                        load_households.add(c.household.key)
                        f["dibao.caseload_persons"] += status[2]
            elif c.grant and c.grant.pay_on and date(2023, 1, 1) <= c.grant.pay_on <= AS_OF:
                f["temporary.grants"] += 1
                f["temporary.paid_fen"] += c.grant.amount * 100
        for p, hh in new_households.items():
            f[f"{p}.new_households"] = len(hh)
        f["dibao.caseload_households"] = len(load_households)
        return {k: f.get(k, 0) for k in TARGETS}


def _day(month: Month, day: int) -> date:
    return date(month.year, month.month, min(day, month.last_day().day))


def payday(month: Month) -> date:
    return _day(month, PAYDAY)


class _Planner:
    """Builds a :class:`Plan` deterministically from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.households: list[PlanHousehold] = []
        self.cases: list[PlanCase] = []
        self.ids: set[str] = set()
        self.accounts = 0

    # ------------------------------------------------------------------ people
    def id_number(self, born: date, male: bool) -> str:
        while True:
            seq = self.rng.randrange(0, 500) * 2 + (1 if male else 0)
            first17 = f"140403{born:%Y%m%d}{seq:03d}"
            n = first17 + id_check_char(first17)
            if n not in self.ids:
                self.ids.add(n)
                return n

    def birth(self, age_min: int, age_max: int, on: date = date(2023, 1, 1)) -> date:
        days = self.rng.randint(age_min * 365 + 1, age_max * 365 + 300)
        return on - timedelta(days=days)

    def name(self, surname: str | None = None) -> str:
        s = surname or self.rng.choice(SURNAMES)
        return s + "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2, 2))))

    def member(self, relation: str, born: date, male: bool, surname: str | None, flags: set[str]) -> PlanMember:
        age = (date(2023, 1, 1) - born).days // 365
        flags = set(flags)
        if age < 18:
            flags.add("minor")
        if age >= 60:
            flags.add("elderly")
        return PlanMember(self.id_number(born, male), self.name(surname), relation, sorted(flags), born)

    def sick(self, p_ill: float = 0.14, p_dis: float = 0.12) -> set[str]:
        flags = set()
        if self.rng.random() < p_ill:
            flags.add("ill")
        if self.rng.random() < p_dis:
            flags.add("disabled")
        return flags

    def members(self, n: int, *, elderly_alone: bool = False, needy: str | None = None) -> list[PlanMember]:
        """A household of ``n`` members; ``needy`` ('ill'/'disabled') flags one member who may apply alone."""
        rng = self.rng
        surname = rng.choice(SURNAMES)
        male = rng.random() < 0.55
        if n == 1:
            born = self.birth(45, 88) if elderly_alone or rng.random() < 0.6 else self.birth(25, 59)
        else:
            born = self.birth(28, 72)
        head_flags = self.sick()
        out = [self.member("head", born, male, surname, head_flags)]
        head_age = (date(2023, 1, 1) - born).days // 365
        for i in range(1, n):
            r = rng.random()
            if i == 1 and r < 0.65:
                out.append(self.member("spouse", self.birth(max(20, head_age - 6), head_age + 4), not male, None, self.sick()))
            elif head_age >= 38 and r < 0.85:
                out.append(self.member("child", self.birth(0, min(26, head_age - 20)), rng.random() < 0.5, surname, self.sick(0.05, 0.06)))
            elif head_age <= 62:
                out.append(self.member("parent", self.birth(head_age + 20, min(95, head_age + 38)), rng.random() < 0.45, surname, self.sick(0.3, 0.15)))
            else:
                out.append(self.member("grandchild", self.birth(0, 17), rng.random() < 0.5, surname, self.sick(0.03, 0.03)))
        if needy:
            target = rng.choice(out)
            target.flags = sorted(set(target.flags) | {needy})
        return out

    def household(self, area: Area, members: list[PlanMember], registered: date) -> PlanHousehold:
        if area is Area.URBAN:
            community = f"{self.rng.choice(STREETS)}{self.rng.choice(COMMUNITIES)}社区"
        else:
            community = f"{self.rng.choice(TOWNS)}{self.rng.choice(VILLAGES)}村"
        self.accounts += 1
        account = f"621799{self.rng.randrange(10**6):06d}{self.accounts:07d}"
        h = PlanHousehold(len(self.households), area, community, members, registered, account)
        self.households.append(h)
        return h

    def case(self, programme: Programme, h: PlanHousehold, channel: Channel, applied: date, story: str, **kw: Any) -> PlanCase:
        c = PlanCase(len(self.cases), programme, h, channel, applied, story, **kw)
        h.cases.append(c)
        self.cases.append(c)
        return c

    def channel(self, outreach: float, referral: float) -> Channel:
        r = self.rng.random()
        return Channel.OUTREACH if r < outreach else Channel.REFERRAL if r < outreach + referral else Channel.WINDOW

    def size(self) -> int:
        return self.rng.choices(list(SIZE_WEIGHTS), weights=list(SIZE_WEIGHTS.values()))[0]

    def sizes(self, n: int, total: int, fixed_ones: int = 0) -> list[int]:
        """``n`` household sizes summing to ``total``; the first ``fixed_ones`` stay 1."""
        sizes = [1] * fixed_ones + [self.size() for _ in range(n - fixed_ones)]
        s = sum(sizes)
        free = range(fixed_ones, n)
        while s != total:
            i = self.rng.choice(free)
            if s > total and sizes[i] > 1:
                sizes[i] -= 1
                s -= 1
            elif s < total and sizes[i] < 5:
                sizes[i] += 1
                s += 1
        return sizes

    def income(self, area: Area) -> int:
        """Per-capita monthly income of a dibao household, yuan."""
        if area is Area.URBAN:
            return 0 if self.rng.random() < 0.14 else self.rng.randint(60, 330)
        return 0 if self.rng.random() < 0.20 else self.rng.randint(30, 176)

    # ------------------------------------------------------------------ dates
    def roll_dates(self) -> tuple[date, date, date]:
        """Application, verification and approval at the 2022 annual review."""
        applied = date(2022, 10, 8) + timedelta(days=self.rng.randrange(42))
        verified = applied + timedelta(days=self.rng.randint(2, 7))
        approved = verified + timedelta(days=self.rng.randint(1, 5))
        return applied, verified, approved

    def new_dates(self, first: Month) -> tuple[date, date, date]:
        last_day = 14 if first == PERIOD_LAST else 25
        applied = _day(first, self.rng.randint(1, last_day))
        verified = applied + timedelta(days=self.rng.randint(2, 6))
        approved = verified + timedelta(days=self.rng.randint(1, 5))
        return applied, verified, approved

    def decision_day(self, from_month: Month, lo: int = 20, hi: int = 27) -> date:
        """A decision taking effect from ``from_month``: after the previous payroll, before the next."""
        return _day(from_month.add(-1), self.rng.randint(lo, hi))

    # ------------------------------------------------------------------ dibao
    def dibao(self, area: Area) -> None:
        plan = AREA_PLAN[area]
        programme = Programme.URBAN_DIBAO if area is Area.URBAN else Programme.RURAL_DIBAO
        std = DIBAO_STD[area]
        new_hh = TARGETS[f"{programme.value}.new_households"]
        new_persons = TARGETS[f"{programme.value}.new_persons"]
        rng = self.rng

        # Continuing cases: on the roll since 2022-12 and active in 2023-09.
        n_cont = plan["active"] - new_hh
        sizes = self.sizes(n_cont, plan["persons"] - new_persons, fixed_ones=plan["single"])
        stories = ["single"] * plan["single"] + ["plain"] * (n_cont - plan["single"])
        plain = [i for i in range(n_cont) if stories[i] == "plain"]
        rng.shuffle(plain)
        for story in ("suspended_mid", "adjusted", "deaths", "births", "returned", "unreturned", "add_on"):
            k = plan[story]
            chosen = set([i for i in plain if story != "births" or sizes[i] >= 2][:k])
            for i in chosen:
                stories[i] = story
            plain = [i for i in plain if i not in chosen]
        for size, story in zip(sizes, stories):
            self.continuing(area, programme, std, size, story)

        # Newly added in 2023.
        new_sizes = self.sizes(new_hh, new_persons, fixed_ones=max(1, new_hh // 12))
        firsts = [PERIOD_FIRST.add(i % 9) for i in range(new_hh)]
        rng.shuffle(firsts)
        fine_done = False
        for i, size in enumerate(new_sizes):
            single = i < max(1, new_hh // 12)
            first = firsts[i]
            fine = not fine_done and not single and first == PERIOD_LAST
            fine_done = fine_done or fine
            self.new_case(area, programme, std, size, first, single, fine)
        if not fine_done:  # pragma: no cover - the month spread above always has September
            raise RuntimeError("no new case to take the last yuan")

        # Suspended at the end of September (reported beside the caseload).
        for _ in range(plan["suspended_end"]):
            c = self.roll_case(area, programme, std, self.size(), "suspended_end")
            s = Month(2023, rng.randint(4, 9))
            c.decisions.append(
                PlanDecision("suspended", s, self.decision_day(s), reason=rng.choice(SUSPEND_REASONS))
            )

        # Applications refused, and applications still open on 2023-09-30.
        for _ in range(plan["rejected"]):
            m = Month(2023, rng.randint(1, 9))
            applied = _day(m, rng.randint(1, 14))
            h = self.household(area, self.members(self.size()), applied)
            c = self.case(programme, h, self.channel(0.4, 0.05), applied, "rejected")
            verified = applied + timedelta(days=rng.randint(3, 8))
            c.rejection = (
                verified,
                verified + timedelta(days=rng.randint(1, 4)),
                std + rng.randint(20, 400),
                "per-capita income above the local dibao standard",
            )
        for _ in range(plan["pending"]):
            applied = date(2023, 9, rng.randint(18, 28))
            h = self.household(area, self.members(self.size()), applied)
            c = self.case(programme, h, self.channel(0.5, 0.05), applied, "pending")
            if rng.random() < 0.5 and applied.day <= 26:
                c.pending_verify = applied + timedelta(days=2)

        # Terminations during the year make up the remaining person-times.
        self.terminations(area, programme, std)

    def roll_case(self, area: Area, programme: Programme, std: int, size: int, story: str, *,
                  members: list[PlanMember] | None = None, covered: list[PlanMember] | None = None,
                  single: PlanMember | None = None, income: int | None = None, add_on: int = 0,
                  add_on_reason: str = "") -> PlanCase:
        applied, verified, approved = self.roll_dates()
        members = members or self.members(size)
        h = self.household(area, members, applied)
        covered = covered or members
        income = self.income(area) if income is None else income
        amount = len(covered) * (std - income) + add_on
        c = self.case(programme, h, self.channel(0.27, 0.03), applied, story,
                      single_person=single.id_number if single else None)
        c.decisions.append(
            PlanDecision("approved", ROLL_START, approved, amount, tuple(m.id_number for m in covered),
                         add_on=add_on, add_on_reason=add_on_reason, verify_on=verified)
        )
        return c

    def continuing(self, area: Area, programme: Programme, std: int, size: int, story: str) -> None:
        rng = self.rng
        if story == "single":
            needy = rng.choice(("ill", "disabled"))
            members = self.members(rng.randint(2, 4), needy=needy)
            applicant = next(m for m in members if needy in m.flags)
            c = self.roll_case(area, programme, std, 1, story, members=members, covered=[applicant], single=applicant)
            c.tunable = True
            return
        if story == "add_on":
            needy = rng.choice(("ill", "disabled"))
            members = self.members(size, needy=needy)
            flagged = sum(1 for m in members if {"ill", "disabled"} & set(m.flags))
            add_on = flagged * round(std * rng.choice((0.1, 0.15, 0.2)))
            reason = "classified add-on: seriously ill or severely disabled member(s)"
            self.roll_case(area, programme, std, size, story, members=members, income=0, add_on=add_on, add_on_reason=reason)
            return
        if story == "deaths":
            members = self.members(size + 1)
            if len(members) == 1:  # pragma: no cover - size + 1 >= 2
                raise RuntimeError
            c = self.roll_case(area, programme, std, size + 1, story, members=members)
            t = Month(2023, rng.randint(2, 9))
            dead = rng.choice([m for m in members if m.relation != "head"])
            died = _day(t.add(-1), rng.randint(16, 18))
            c.household.events.append((died, "death", dead.id_number))
            rest = tuple(m.id_number for m in members if m is not dead)
            gap = std - self.income_of(c, 0, std)
            c.decisions.append(
                PlanDecision("adjusted", t, self.decision_day(t, 22, 27), len(rest) * gap, rest,
                             verify_on=_day(t.add(-1), rng.randint(19, 21)))
            )
            return
        if story == "births":
            members = self.members(size - 1)
            c = self.roll_case(area, programme, std, size - 1, story, members=members)
            t = Month(2023, rng.randint(2, 9))
            head = c.household.head
            born = _day(t.add(-1), rng.randint(1, 4))
            has_spouse = any(m.relation == "spouse" for m in members)
            relation = "child" if has_spouse or (date(2023, 1, 1) - head.born).days < 45 * 365 else "grandchild"
            baby = self.member(relation, born, rng.random() < 0.5, head.name[0], set())
            baby.flags = ["minor"]
            c.household.events.append((_day(t.add(-1), rng.randint(8, 14)), "birth", baby))
            covered = c.decisions[0].covered + (baby.id_number,)
            gap = std - self.income_of(c, 0, std)
            income_after = max(0, (std - gap) * (len(covered) - 1) // len(covered))
            c.decisions.append(
                PlanDecision("adjusted", t, self.decision_day(t, 22, 27), len(covered) * (std - income_after), covered,
                             verify_on=_day(t.add(-1), rng.randint(19, 21)))
            )
            return
        c = self.roll_case(area, programme, std, size, story)
        if story == "plain":
            c.tunable = True
        elif story == "suspended_mid":
            s = Month(2023, rng.randint(2, 7))
            r = s.add(rng.randint(1, 2))
            c.decisions.append(PlanDecision("suspended", s, self.decision_day(s), reason=rng.choice(SUSPEND_REASONS)))
            c.decisions.append(PlanDecision("resumed", r, self.decision_day(r), verify_on=_day(r.add(-1), rng.randint(16, 19)),
                                            verify_income=self.income_of(c, 0, std)))
        elif story == "adjusted":
            t = Month(2023, rng.randint(3, 9))
            old = self.income_of(c, 0, std)
            new = max(0, min(std - 2 * MIN_GAP, old + rng.choice((-1, 1)) * rng.randint(30, 150)))
            if new == old:
                new = old + 10
            persons = len(c.decisions[0].covered)
            c.decisions.append(
                PlanDecision("adjusted", t, self.decision_day(t, 22, 27), persons * (std - new), c.decisions[0].covered,
                             verify_on=_day(t.add(-1), rng.randint(18, 21)))
            )
        elif story in ("returned", "unreturned"):
            if story == "returned":
                m = Month(2023, rng.randint(1, 9))
                c.returns[m] = (rng.choice(RETURN_REASONS), True)
                c.tunable = True
            else:
                m = Month(2023, rng.randint(8, 9))
                c.returns[m] = ("account frozen by a court order; payee to open a new account", False)

    @staticmethod
    def income_of(c: PlanCase, i: int, std: int) -> int:
        d = c.decisions[i]
        return std - (d.amount - d.add_on) // len(d.covered)

    def new_case(self, area: Area, programme: Programme, std: int, size: int, first: Month, single: bool, fine: bool) -> PlanCase:
        rng = self.rng
        applied, verified, approved = self.new_dates(first)
        if single:
            needy = rng.choice(("ill", "disabled"))
            members = self.members(rng.randint(2, 4), needy=needy)
            applicant = next(m for m in members if needy in m.flags)
            covered = [applicant]
        else:
            members = self.members(size)
            applicant, covered = None, members
        h = self.household(area, members, applied)
        income = self.income(area)
        if fine:
            income = max(income, 20)  # room for the last few yuan
        c = self.case(programme, h, self.channel(0.45, 0.08), applied, "new",
                      single_person=applicant.id_number if applicant else None, fine=fine)
        c.decisions.append(
            PlanDecision("approved", first, approved, len(covered) * (std - income), tuple(m.id_number for m in covered),
                         verify_on=verified)
        )
        return c

    def terminations(self, area: Area, programme: Programme, std: int) -> None:
        rng = self.rng
        key = f"{programme.value}.person_times"
        have = sum(
            persons for c in self.cases if c.programme is programme and c.decisions
            for m, _, persons in c.net_payments() if m >= PERIOD_FIRST
        )
        need = TARGETS[key] - have
        if need < 0:  # pragma: no cover - the plan constants leave room
            raise RuntimeError(f"{programme.value}: the roll already exceeds the person-times")
        ends: list[PlanCase] = []
        while True:
            size = self.size()
            t = Month(2023, rng.choice((1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9)))
            suspended_first = rng.random() < 0.1 and t.month >= 3
            contribution = size * (t.month - 1)
            s = None
            if suspended_first:
                s = Month(2023, rng.randint(2, t.month - 1))
                contribution = size * (s.month - 1)
            if contribution > need:
                break
            need -= contribution
            c = self.roll_case(area, programme, std, size, "terminated")
            if s is not None:
                c.decisions.append(PlanDecision("suspended", s, self.decision_day(s), reason=rng.choice(SUSPEND_REASONS)))
            c.decisions.append(PlanDecision("terminated", t, self.decision_day(t)))
            ends.append(c)
        # The last person-times: move single-person terminations a month later.
        singles = [c for c in ends if len(c.decisions) == 2 and len(c.decisions[0].covered) == 1]
        rng.shuffle(singles)
        for c in singles:
            if need == 0:
                break
            end = c.decisions[-1]
            if end.from_month < PERIOD_LAST:
                end.from_month = end.from_month.add(1)
                end.on = self.decision_day(end.from_month)
                need -= 1
        if need:  # pragma: no cover
            raise RuntimeError(f"{programme.value}: person-times off by {need}")
        for c in ends:
            self.termination_story(c)

    def termination_story(self, c: PlanCase) -> None:
        rng = self.rng
        end = c.decisions[-1]
        t = end.from_month
        h = c.household
        members = h.members
        if len(members) == 1 and "elderly" in members[0].flags and rng.random() < 0.5:
            died = _day(t.add(-1), rng.randint(16, 19))
            end.on = max(end.on, died + timedelta(days=2))
            h.events.append((died, "death", members[0].id_number))
            end.reason = "the only person covered has died"
        else:
            r = rng.random()
            if r < 0.55:
                end.reason = "per-capita income above the local standard after employment"
                end.verify_on = end.on - timedelta(days=2)
                end.verify_income = DIBAO_STD[c.area] + rng.randint(30, 600)
                end.verify_passes = False
            elif r < 0.8:
                end.reason = "household moved out of Luzhou district"
            else:
                end.reason = "household asked to leave the roll"

    # ------------------------------------------------------------------ tekun
    def tekun(self) -> None:
        rng = self.rng
        cases: list[PlanCase] = []

        def person(area: Area, registered: date) -> PlanHousehold:
            if rng.random() < 0.7:
                born, flags = self.birth(60, 94), self.sick(0.25, 0.2)
            else:
                born, flags = self.birth(18, 59), {"disabled"} | self.sick(0.2, 0.0)
            m = self.member("head", born, rng.random() < 0.6, None, flags)
            return self.household(area, [m], registered)

        def care() -> tuple[int, str]:
            if rng.random() < 0.4:
                add_on = rng.randint(100, 500)
                return add_on, ("care allowance: unable to look after oneself" if add_on >= 300
                                else "care allowance: partly unable to look after oneself")
            return 0, ""

        def make(story: str, first: Month) -> PlanCase:
            area = Area.URBAN if rng.random() < TEKUN_URBAN_SHARE else Area.RURAL
            if first == ROLL_START:
                applied, verified, approved = self.roll_dates()
            else:
                applied, verified, approved = self.new_dates(first)
            h = person(area, applied)
            add_on, why = care()
            if story == "fine":
                add_on, why = 150, "care allowance: partly unable to look after oneself"
            c = self.case(Programme.TEKUN, h, self.channel(0.35, 0.15), applied, "tekun", fine=story == "fine")
            c.decisions.append(
                PlanDecision("approved", first, approved, TEKUN_STD[area] + add_on, (h.members[0].id_number,),
                             add_on=add_on, add_on_reason=why, verify_on=verified, verify_income=rng.choice((0, 0, 120, 260)))
            )
            cases.append(c)
            return c

        for _ in range(TEKUN_DEATHS):
            c = make("died", ROLL_START)
            t = Month(2023, rng.randint(2, 9))
            died = _day(t.add(-1), rng.randint(16, 24))
            c.household.events.append((died, "death", c.household.members[0].id_number))
            c.decisions.append(PlanDecision("terminated", t, died + timedelta(days=rng.randint(2, 4)),
                                            reason="the person supported has died"))
            c.story = "tekun-died"
        for i in range(TEKUN_NEW):
            make("new", PERIOD_FIRST.add(i % 8))
        make("fine", PERIOD_LAST)

        def paid(c: PlanCase) -> int:
            return sum(a for m, a, _ in c.net_payments() if m >= PERIOD_FIRST)

        need = TARGETS["tekun.paid_fen"] // 100 - sum(paid(c) for c in cases)
        while True:
            c = make("roll", ROLL_START)
            if paid(c) > need:
                self.drop(c)
                cases.pop()
                break
            c.tunable = c.decisions[0].add_on > 0
            need -= paid(c)
        # Tune the care allowances a yuan at a time (9 yuan per full-year case), the rest on the fine case.
        tunable = [c for c in cases if c.tunable]
        k, r = divmod(need, 9)
        for i in range(k):
            d = tunable[i % len(tunable)].decisions[0]
            d.add_on += 1
            d.amount += 1
        fine = next(c for c in cases if c.fine)
        fine.decisions[0].add_on += r
        fine.decisions[0].amount += r

    def drop(self, c: PlanCase) -> None:
        """Forget the last case made (and its household)."""
        assert self.cases[-1] is c and self.households[-1] is c.household
        self.cases.pop()
        self.households.pop()
        for m in c.household.members:
            self.ids.discard(m.id_number)

    # ------------------------------------------------------------------ amounts
    def tune_dibao(self, programme: Programme) -> None:
        """Tune whole-yuan amounts so the programme's paid total hits the target exactly."""
        std = DIBAO_STD[Area.URBAN if programme is Programme.URBAN_DIBAO else Area.RURAL]
        cases = [c for c in self.cases if c.programme is programme and c.decisions]
        target = TARGETS[f"{programme.value}.paid_fen"] // 100

        def total() -> int:
            return sum(a for c in cases for m, a, _ in c.net_payments() if m >= PERIOD_FIRST)

        tunable = [c for c in cases if c.tunable and c.paid_months_in_period() == 9 and len(c.decisions) == 1]
        fine = next(c for c in cases if c.fine)

        def set_gap(c: PlanCase, gap: int) -> None:
            d = c.decisions[0]
            d.amount = len(d.covered) * max(MIN_GAP, min(std, gap))

        # 1. Shift every tunable case's gap (per person) by the same number of yuan.
        person_months = sum(9 * len(c.decisions[0].covered) for c in tunable)
        shift = round((target - total()) / person_months)
        for c in tunable:
            set_gap(c, c.decisions[0].amount // len(c.decisions[0].covered) + shift)
        # 2. A yuan a month on one case after another (nine yuan each), both ways.
        need = target - total()
        i = 0
        while need >= 9 or need < 0:
            c = tunable[i % len(tunable)]
            i += 1
            d = c.decisions[0]
            step = 1 if need > 0 else -1
            if MIN_GAP * len(d.covered) <= d.amount + step <= std * len(d.covered):
                d.amount += step
                need -= 9 * step
            if i > 50 * len(tunable):  # pragma: no cover
                raise RuntimeError(f"{programme.value}: cannot tune the amounts")
        # 3. The last 0-8 yuan on a case paid for one month (new in September).
        fine.decisions[0].amount += need
        if fine.decisions[0].amount > std * len(fine.decisions[0].covered):  # pragma: no cover
            raise RuntimeError("the fine case went above the standard")

    # ------------------------------------------------------------------ temporary assistance
    def temporary(self) -> None:
        rng = self.rng
        counted = TARGETS["temporary.grants"]
        existing = [
            h for h in self.households
            if any(c.programme is not Programme.TEMPORARY for c in h.cases) and not any(k == "death" for _, k, _ in h.events)
        ]
        grants: list[PlanCase] = []

        def grant(pay_on: date | None, approve_on: date, *, assets_ok: bool = True) -> PlanCase:
            applied = approve_on - timedelta(days=rng.randint(3, 9))
            if rng.random() < 0.45:
                h = rng.choice(existing)
                if h.registered > applied:
                    h = self.household(h.area, self.members(self.size() + 1), applied)
            else:
                area = Area.URBAN if rng.random() < 0.62 else Area.RURAL
                h = self.household(area, self.members(rng.choice((1, 2, 2, 3, 3, 4, 5))), applied)
            amount = rng.choices(list(TEMP_AMOUNTS), weights=list(TEMP_AMOUNTS.values()))[0]
            kind, reason = rng.choice(TEMP_TYPES)
            c = self.case(Programme.TEMPORARY, h, self.channel(0.4, 0.2), applied, "temporary")
            verify_on = applied + timedelta(days=rng.randint(1, (approve_on - applied).days - 1))
            c.grant = PlanGrant(kind, reason, amount, verify_on, approve_on, pay_on, assets_ok)
            grants.append(c)
            return c

        # Before the period (December 2022), inside it, and approved but unpaid on 2023-09-30.
        for _ in range(6):
            approve = date(2022, 12, rng.randint(5, 20))
            grant(approve + timedelta(days=rng.randint(1, 5)), approve)
        first, last = date(2023, 1, 4).toordinal(), date(2023, 9, 26).toordinal()
        days = sorted(rng.randint(first, last) for _ in range(counted))
        for d in days:
            approve = date.fromordinal(d)
            pay = min(approve + timedelta(days=rng.randint(1, 6)), AS_OF)
            grant(pay, approve).tunable = True
        for _ in range(4):
            grant(None, date(2023, 9, rng.randint(27, 29)))
        for _ in range(5):
            approve = date(2023, rng.randint(2, 9), rng.randint(5, 20))
            c = grant(None, approve, assets_ok=False)
            c.story = "temporary-rejected"

        # Tune by a hundred yuan at a time to the exact total.
        tunable = [c for c in grants if c.tunable]
        need = TARGETS["temporary.paid_fen"] // 100 - sum(c.grant.amount for c in tunable if c.grant)
        if need % 100:  # pragma: no cover
            raise RuntimeError("temporary total is not in hundreds")
        i = 0
        while need:
            c = tunable[rng.randrange(len(tunable))]
            assert c.grant is not None
            step = 100 if need > 0 else -100
            if 300 <= c.grant.amount + step <= 6000:
                c.grant.amount += step
                need -= step
            i += 1
            if i > 100 * len(tunable):  # pragma: no cover
                raise RuntimeError("cannot tune the temporary grants")

    # ------------------------------------------------------------------ numbering
    def number(self) -> None:
        """Number households and cases in the order they were registered/applied."""
        order = sorted(self.households, key=lambda h: (h.registered, h.key))
        for i, h in enumerate(order, 1):
            h.number = f"H{i:06d}"
        self.households = order
        prefix = {Programme.URBAN_DIBAO: "U", Programme.RURAL_DIBAO: "R", Programme.TEKUN: "TK", Programme.TEMPORARY: "TA"}
        counters: Counter[Programme] = Counter()
        for c in sorted(self.cases, key=lambda c: (c.applied, c.key)):
            counters[c.programme] += 1
            c.case_no = f"{prefix[c.programme]}{counters[c.programme]:05d}"


SUSPEND_REASONS = [
    "annual review documents not submitted",
    "household could not be reached at the review visit",
    "income under re-verification after a tip-off",
    "member's employment to be checked",
]
RETURN_REASONS = [
    "account closed",
    "account number does not match the payee name",
    "account dormant",
]


def plan_demo(seed: int = 2023) -> Plan:
    """The demonstration district as plain data; its :meth:`Plan.figures` equal :data:`TARGETS`."""
    p = _Planner(seed)
    p.dibao(Area.URBAN)
    p.dibao(Area.RURAL)
    p.tekun()
    p.tune_dibao(Programme.URBAN_DIBAO)
    p.tune_dibao(Programme.RURAL_DIBAO)
    p.temporary()
    p.number()
    plan = Plan(seed, p.households, p.cases)
    figures = plan.figures()
    wrong = {k: (v, TARGETS[k]) for k, v in figures.items() if v != TARGETS[k]}
    if wrong:  # pragma: no cover - a planning bug
        raise RuntimeError(f"the demo plan misses the published figures: {wrong}")
    return plan


# --------------------------------------------------------------------------- from plan to commands

# Priority of commands recorded on the same day.
_PRIO = {
    "register": 0, "birth": 1, "death": 1, "apply": 2, "verify": 3, "approve": 4, "reject": 4, "adjust": 4,
    "suspend": 5, "resume": 5, "terminate": 5, "grant": 6, "pay": 7, "return": 8, "account": 9,
    "reissue": 10, "pay_grant": 11,
}


def _payroll_dates() -> list[tuple[date, str]]:
    out = [(payday(m), str(m)) for m in ROLL_START.until(PERIOD_LAST)]
    out.append((SUPPLEMENTARY, f"{PERIOD_LAST}-S"))
    return sorted(out)


PAYROLLS = _payroll_dates()


def _issue_date(month: Month, approved_on: date) -> tuple[date, str]:
    """The payroll that pays ``month``: its own, or the first after a late approval (arrears)."""
    for d, batch in PAYROLLS:
        if d >= payday(month) and d >= approved_on:
            return d, batch
    raise RuntimeError(f"no payroll pays {month} approved on {approved_on}")  # pragma: no cover


def _verify_income_fen(std: int, d: PlanDecision) -> int:
    if d.verify_income is not None:
        return d.verify_income * 100
    gap_fen = (d.amount - d.add_on) * 100 // len(d.covered)
    return max(0, std * 100 - gap_fen)


def _actions(h: PlanHousehold) -> Iterator[tuple[date, int, str, dict[str, Any]]]:
    """Every command recorded for one household, as (date, priority, method, arguments)."""
    worker = CASEWORKER[h.area]
    yield h.registered, _PRIO["register"], "register_household", dict(
        number=h.number, community=h.community, area=h.area,
        members=[m.record() for m in h.members],
        payee_account=h.account, operator=worker,
    )
    for on, kind, data in h.events:
        if kind == "death":
            yield on, _PRIO["death"], "record_death", dict(number=h.number, id_number=data, operator=worker)
        elif kind == "birth":
            yield on, _PRIO["birth"], "add_member", dict(number=h.number, member=data.record(), operator=worker)
    accounts = 0
    for c in h.cases:
        verifier, approver = VERIFIER[c.area], APPROVER[c.area]
        yield c.applied, _PRIO["apply"], "apply", dict(
            case_no=c.case_no, household_no=h.number, programme=c.programme, channel=c.channel,
            single_person=c.single_person,
            operator=OUTREACH_WORKER if c.channel is Channel.OUTREACH else worker,
        )
        if c.rejection:
            verified, rejected, income, reason = c.rejection
            yield verified, _PRIO["verify"], "verify", dict(
                case_no=c.case_no, income_fen=income * 100, assets_ok=True, verifier=verifier,
                valid_until=verified + timedelta(days=90), operator=verifier)
            yield rejected, _PRIO["reject"], "reject", dict(case_no=c.case_no, reason=reason, operator=approver)
        if c.pending_verify:
            yield c.pending_verify, _PRIO["verify"], "verify", dict(
                case_no=c.case_no, income_fen=DIBAO_STD[c.area] * 50, assets_ok=True, verifier=verifier,
                valid_until=c.pending_verify + timedelta(days=365), operator=verifier)
        if c.grant:
            g = c.grant
            yield g.verify_on, _PRIO["verify"], "verify", dict(
                case_no=c.case_no, income_fen=(c.key * 7919 % 600 + 150) * 100, assets_ok=g.assets_ok,
                verifier=verifier, valid_until=g.verify_on + timedelta(days=60), operator=verifier)
            if not g.assets_ok:
                yield g.approve_on, _PRIO["reject"], "reject", dict(
                    case_no=c.case_no, reason="assets above the limits at verification", operator=approver)
                continue
            yield g.approve_on, _PRIO["grant"], "approve_grant", dict(
                case_no=c.case_no, grant_type=g.grant_type, amount_fen=g.amount * 100, reason=g.reason,
                operator=approver)
            if g.pay_on:
                yield g.pay_on, _PRIO["pay_grant"], "pay_grant", dict(case_no=c.case_no, operator=FINANCE)
            continue
        if not c.decisions:
            continue
        std = (TEKUN_STD if c.programme is Programme.TEKUN else DIBAO_STD)[c.area]
        approved_on = c.decisions[0].on
        for d in c.decisions:
            if d.verify_on:
                yield d.verify_on, _PRIO["verify"], "verify", dict(
                    case_no=c.case_no, income_fen=_verify_income_fen(std, d), assets_ok=True, verifier=verifier,
                    valid_until=d.verify_on + timedelta(days=365), operator=verifier)
            if d.kind == "approved":
                yield d.on, _PRIO["approve"], "approve", dict(
                    case_no=c.case_no, amount_fen=d.amount * 100, first_month=d.from_month, covered=list(d.covered),
                    add_on_fen=d.add_on * 100, add_on_reason=d.add_on_reason, operator=approver)
            elif d.kind == "adjusted":
                yield d.on, _PRIO["adjust"], "adjust", dict(
                    case_no=c.case_no, amount_fen=d.amount * 100, from_month=d.from_month, covered=list(d.covered),
                    add_on_fen=d.add_on * 100, add_on_reason=d.add_on_reason, operator=approver)
            elif d.kind == "suspended":
                yield d.on, _PRIO["suspend"], "suspend", dict(
                    case_no=c.case_no, reason=d.reason, from_month=d.from_month, operator=approver)
            elif d.kind == "resumed":
                yield d.on, _PRIO["resume"], "resume", dict(case_no=c.case_no, from_month=d.from_month, operator=approver)
            elif d.kind == "terminated":
                yield d.on, _PRIO["terminate"], "terminate", dict(
                    case_no=c.case_no, reason=d.reason, from_month=d.from_month, operator=approver)
        for m, (status, _amount, _persons) in c.month_status().items():
            if status != "active":
                continue
            on, batch = _issue_date(m, approved_on)
            yield on, _PRIO["pay"], "issue_payment", dict(case_no=c.case_no, month=m, batch=batch, operator=FINANCE)
            if m in c.returns:
                reason, reissued = c.returns[m]
                ref = payment_ref(c.case_no, m, 1)
                yield on + timedelta(days=3), _PRIO["return"], "return_payment", dict(ref=ref, reason=reason, operator=FINANCE)
                if reissued:
                    accounts += 1
                    new_account = h.account[:-2] + f"{(int(h.account[-2:]) + 37 * accounts) % 100:02d}"
                    yield on + timedelta(days=5), _PRIO["account"], "change_account", dict(
                        number=h.number, payee_name=h.head.name, payee_account=new_account, operator=worker)
                    yield on + timedelta(days=7), _PRIO["reissue"], "issue_payment", dict(
                        case_no=c.case_no, month=m, batch=f"{batch}-R", operator=FINANCE)


# --------------------------------------------------------------------------- building


def build_demo(app: LedgerApp, progress: Progress | None = None, seed: int = 2023) -> DemoSummary:
    """Record the demonstration district into the ledger and return what was recorded.

    Every event is recorded through a :class:`LedgerApp` command, so every rule is
    checked as it would be for a clerk. Work is written in chunks of households, each
    chunk in one transaction (one unit of work, committed, then forgotten); each chunk
    is self-contained (a household's whole history is in the chunk), and the aggregates
    its commands will look up are preloaded in a few queries.

    The district's household and case numbers (``H000001``, ``U00001``...) must not be
    in use yet: a second build into the same ledger is refused with
    :class:`~ledger.errors.AlreadyExists` before anything is written.
    """
    before = app.recorder.max_notification_id() or 0
    report = progress or (lambda _stage, _done, _total: None)
    report("plan", 0, 1)
    plan = plan_demo(seed)
    report("plan", 1, 1)
    first = plan.households[0].number
    if app.unit_of_work().find(household_id(first)) is not None:
        raise AlreadyExists(f"household {first} is already recorded: the demonstration district is already built here")

    uow = app.unit_of_work()
    for (programme, area), history in STANDARDS.items():
        for from_month, amount in history:
            app.set_standard(programme, area, amount * 100, from_month, operator=STANDARDS_OFFICER,
                             effective=from_month.add(-1).first_day() + timedelta(days=19), uow=uow)
    uow.commit()
    uow.forget()
    report("standards", 1, 1)

    total = len(plan.households)
    for start in range(0, total, CHUNK_HOUSEHOLDS):
        chunk = plan.households[start:start + CHUNK_HOUSEHOLDS]
        actions = sorted(
            ((on, prio, i, method, kwargs) for h in chunk for i, (on, prio, method, kwargs) in enumerate(_actions(h))),
            key=lambda a: (a[0], a[1], a[2]),
        )
        uow = app.unit_of_work()
        uow.preload(_chunk_ids(chunk))
        for on, _prio, _i, method, kwargs in actions:
            getattr(app, method)(effective=on, uow=uow, **kwargs)
        uow.commit()
        uow.forget()
        report("households", min(start + CHUNK_HOUSEHOLDS, total), total)

    events = (app.recorder.max_notification_id() or 0) - before
    return _summary(plan, events)


def _chunk_ids(chunk: list[PlanHousehold]) -> Iterator[UUID]:
    """Ids of every aggregate the chunk's commands look up (most do not exist yet)."""
    for programme, area in STANDARDS:
        yield standard_id(programme, area)
    for h in chunk:
        yield household_id(h.number)
        for c in h.cases:
            yield case_id(c.case_no)
            if c.programme.is_monthly and c.decisions:
                for m, (status, _a, _p) in c.month_status().items():
                    if status == "active":
                        yield payment_id(c.case_no, m, 1)
                        if m in c.returns:
                            yield payment_id(c.case_no, m, 2)


def _summary(plan: Plan, events: int) -> DemoSummary:
    cases = Counter(c.programme.value for c in plan.cases)
    payments = returns = reissues = 0
    balances: dict[str, int] = {}
    examples: dict[str, str] = {}

    def example(label: str, c: PlanCase) -> None:
        examples.setdefault(label, c.case_no)

    programme_order = {Programme.URBAN_DIBAO: 0, Programme.RURAL_DIBAO: 1, Programme.TEKUN: 2, Programme.TEMPORARY: 3}
    for c in sorted(plan.cases, key=lambda c: (programme_order[c.programme], c.case_no)):
        if c.programme.is_monthly and c.decisions:
            status = c.month_status()
            payments += sum(1 for s, _, _ in status.values() if s == "active")
            for m, (_reason, reissued) in c.returns.items():
                returns += 1
                if reissued:
                    reissues += 1
                    payments += 1
                    example("returned and re-issued", c)
                else:
                    balances[c.case_no] = status[m][1] * 100
                    example("returned, not yet re-issued (owed)", c)
        if c.single_person and c.story == "single" and c.single_person != c.household.head.id_number:
            example("single-person inclusion", c)
        if c.story == "new":
            if c.channel is Channel.OUTREACH:
                example("newly added through outreach", c)
            first = c.decisions[0]
            if _issue_date(first.from_month, first.on)[0] > payday(first.from_month):
                example("approved late, arrears paid by the next payroll", c)
        labels = {
            "suspended_end": "suspended on 2023-09-30",
            "suspended_mid": "suspended and resumed",
            "adjusted": "amount adjusted on a new verification",
            "deaths": "member died, amount and persons adjusted",
            "births": "child born, amount and persons adjusted",
            "add_on": "classified add-on",
            "rejected": "application rejected",
            "pending": "application not yet decided",
            "tekun-died": "tekun, terminated on death",
            "temporary-rejected": "temporary assistance refused (assets)",
        }
        if c.story in labels:
            example(labels[c.story], c)
        if c.story == "terminated" and c.decisions[-1].verify_on:
            example("terminated: income above the standard", c)
        if c.story == "tekun" and c.decisions[0].add_on and c.first_month == ROLL_START:
            example("tekun with care allowance", c)
        if c.story == "temporary" and c.grant and c.grant.pay_on and c.grant.pay_on.year == 2023:
            example("temporary grant paid", c)
    pending_grants = {c.case_no: c.grant.amount * 100 for c in plan.cases if c.grant and c.grant.assets_ok and not c.grant.pay_on}
    grants_paid = sum(1 for c in plan.cases if c.grant and c.grant.pay_on)
    return DemoSummary(
        seed=plan.seed,
        households=len(plan.households),
        persons=sum(len(h.members) + sum(1 for _, k, _ in h.events if k == "birth") for h in plan.households),
        cases=dict(sorted(cases.items())),
        payments=payments,
        returns=returns,
        reissues=reissues,
        grants_paid=grants_paid,
        events=events,
        figures=plan.figures(),
        examples=examples,
        balances=balances,
        pending_grants=pending_grants,
        pending_applications=sorted(c.case_no for c in plan.cases if c.story == "pending"),
    )
