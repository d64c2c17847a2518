"""The counts behind the statistics, kept by the projection so a report reads a few rows.

Both figures count *distinct households*, which a plain running total cannot do; each
household's contribution is therefore computed from all of its cases, and when a page
of events changes a household, its old contribution is taken away and its new one added.

**Caseload** (DOMAIN §5: cases in force in a benefit month, distinct households and
persons, per programme and for urban and rural dibao together). Kept as *steps*: for a
group ``g`` (a monthly programme, or ``dibao``) and a status ``s``, the count on month M
is the sum of the steps ``(g, s, idx)`` with ``idx <= M``. A case period in force over
months ``[from, to)`` steps persons and cases up at ``from`` and down at ``to``; a
household steps up by one where a run of months begins in which it has at least one
such period, and down where the run ends, so it counts once however many cases overlap.

**Newly added** (cases whose first benefit month falls in a period ``[a, b]``; distinct
households, persons covered at approval). For one household and programme, sort the
first months of its cases: ``f1 <= f2 <= ... <= fk``. The cases inside ``[a, b]`` are a
consecutive run of that list, so the household counts once when
``#{i: a <= fi <= b} - #{i: a <= f(i-1) and fi <= b}`` is one, and zero otherwise. Each
case is kept as a row ``(lo=fi, hi=fi)`` of +1 household and its persons, each
consecutive pair as ``(lo=f(i-1), hi=fi)`` of -1 household; the period's figure is the
sum over rows with ``a <= lo`` and ``hi <= b``. Exact for any period, a few rows per month.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

MONTHLY = ("urban-dibao", "rural-dibao", "tekun")
DIBAO = ("urban-dibao", "rural-dibao")
IN_FORCE = ("active", "suspended")

#: (programme, status, from_idx, to_idx, persons) of one case period as the ledger holds it now.
PeriodShape = tuple[str, str, int, int, int]
#: (programme, first_idx, persons_at_approval) of one approved case.
FirstMonth = tuple[str, int, int]

Steps = dict[tuple[str, str, int], list[int]]  # (grp, status, idx) -> [households, persons, cases]
NewCounts = dict[tuple[str, int, int], list[int]]  # (programme, lo, hi) -> [households, persons]


def _groups(programme: str) -> tuple[str, ...]:
    return (programme, "dibao") if programme in DIBAO else (programme,)


def add_caseload(steps: Steps, periods: Iterable[PeriodShape], sign: int = 1) -> None:
    """Add (``sign=-1``: take away) one household's periods to ``steps``."""
    runs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for programme, status, start, end, persons in periods:
        if programme not in MONTHLY or status not in IN_FORCE or start >= end:
            continue
        for g in _groups(programme):
            for idx, dp, dc in ((start, persons, 1), (end, -persons, -1)):
                row = steps.setdefault((g, status, idx), [0, 0, 0])
                row[1] += sign * dp
                row[2] += sign * dc
            runs[(g, status)].append((start, end))
    for (g, status), spans in runs.items():
        spans.sort()
        run_start, run_end = spans[0]
        for start, end in spans[1:] + [(None, None)]:  # type: ignore[list-item]
            if start is not None and start <= run_end:
                run_end = max(run_end, end)
                continue
            steps.setdefault((g, status, run_start), [0, 0, 0])[0] += sign
            steps.setdefault((g, status, run_end), [0, 0, 0])[0] -= sign
            if start is not None:
                run_start, run_end = start, end


def add_new(counts: NewCounts, cases: Iterable[FirstMonth], sign: int = 1) -> None:
    """Add (``sign=-1``: take away) one household's approved cases to ``counts``."""
    firsts: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for programme, first_idx, persons in cases:
        firsts[programme].append((first_idx, persons))
    for programme, months in firsts.items():
        months.sort()
        previous = None
        for first_idx, persons in months:
            row = counts.setdefault((programme, first_idx, first_idx), [0, 0])
            row[0] += sign
            row[1] += sign * persons
            if previous is not None:
                counts.setdefault((programme, previous, first_idx), [0, 0])[0] -= sign
            previous = first_idx
