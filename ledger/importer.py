"""Import of a JSON Lines file: one action per line, validated and applied all-or-nothing.

Each line is an object with ``action``, ``operator``, ``date`` (the effective or decision
date, ``YYYY-MM-DD``) and the action's own fields (see :data:`ACTIONS` and the README).
Amounts are yuan given as text (``"593.50"``) or whole numbers; JSON floats are refused.

The whole file runs through the same application commands a clerk uses, in one unit
of work, and is written in one transaction only if every line passed. An error names
the line and the field.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from ledger import parallel
from ledger.application import LedgerApp, UnitOfWork, checked_id_number
from ledger.domain import case_id, household_id
from ledger.errors import InvalidInput, LedgerError
from ledger.values import Area, Channel, Month, Programme, parse_date, parse_enum, parse_money

#: Most distinct texts each value parser remembers (dates, months, amounts and choices repeat across a file).
PARSE_CACHE_LIMIT = 1 << 14


def _utf8(v: str) -> str:
    if v.isascii():
        return v
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("text that is not valid Unicode (a lone surrogate)") from None
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise InvalidInput("expected non-empty text")
    s = v.strip()
    if not s:
        raise InvalidInput("expected non-empty text")
    return _utf8(s)


def _opt_text(v: Any) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise InvalidInput("expected text")
    return _utf8(v.strip())


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise InvalidInput("expected true or false")
    return v


def _remembered(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse`` with its results for texts remembered.

    For parsers whose results are immutable values (dates, months, enumeration
    members, amounts in fen): a file repeats a few hundred of them over thousands of
    lines. Only successful results are kept, so a bad value is refused (with the same
    message) every time it occurs; values that are not text are parsed every time.
    """
    seen: dict[str, Any] = {}

    def remembered(v: Any) -> Any:
        if type(v) is not str:
            return parse(v)
        try:
            return seen[v]
        except KeyError:
            pass
        value = parse(v)
        if len(seen) >= PARSE_CACHE_LIMIT:
            seen.clear()
        seen[v] = value
        return value

    return remembered


def _parse_month(v: Any) -> Month:
    return Month.parse(_text(v))


def _parse_date(v: Any) -> date:
    return parse_date(_text(v))


_month = _remembered(_parse_month)
_date = _remembered(_parse_date)
_money = _remembered(parse_money)


def _opt_money(v: Any) -> int:
    if v is None or v == "" or (type(v) is int and v == 0):
        return 0
    return _money(v)


def _ids(v: Any) -> list[str] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
        raise InvalidInput("expected a list of identity numbers")
    return [checked_id_number(i) for i in v]


def _members(v: Any) -> list[dict[str, Any]]:
    if not isinstance(v, list) or not v or not all(isinstance(m, dict) for m in v):
        raise InvalidInput("expected a non-empty list of member objects")
    for i, m in enumerate(v, start=1):
        try:
            _member(m)
        except InvalidInput as e:
            raise InvalidInput(f"member {i}: {e}") from None
    return v


_MEMBER_TEXT_FIELDS = ("id_number", "name", "relation")


def _member(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidInput("expected a member object")
    for key in _MEMBER_TEXT_FIELDS:
        if key not in v:
            raise InvalidInput(f"field {key!r} is missing")
        value = v[key]
        if not isinstance(value, str):
            raise InvalidInput(f"field {key!r}: expected text")
        try:
            _utf8(value)
        except InvalidInput as e:
            raise InvalidInput(f"field {key!r}: {e}") from None
    flags = v.get("flags", [])
    if flags is not None and not isinstance(flags, str) and not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
        raise InvalidInput("field 'flags': expected a list of flags")
    try:
        checked_id_number(v["id_number"])
    except InvalidInput as e:
        raise InvalidInput(f"field 'id_number': {e}") from None
    return v


def _enum(enum: type, what: str) -> Callable[[Any], Any]:
    return _remembered(lambda v: parse_enum(enum, _text(v), what))


#: The fields every line has besides its action's own.
COMMON_FIELDS = frozenset({"action", "operator", "date"})

#: Fields that name a household or a case, and how each becomes the aggregate's id.
_NAMING_FIELDS: tuple[tuple[str, Callable[[str], UUID]], ...] = (
    ("household", household_id),
    ("number", household_id),
    ("case", case_id),
)


@dataclass(frozen=True)
class Action:
    """An importable action: its fields (name -> (parser, required)) and how it runs."""

    fields: dict[str, tuple[Callable[[Any], Any], bool]]
    run: Callable[..., Any]
    #: Every field a line of this action may have.
    allowed: frozenset[str] = field(init=False, repr=False, compare=False)
    #: (field, parser, required), in the order the fields are checked.
    checks: tuple[tuple[str, Callable[[Any], Any], bool], ...] = field(init=False, repr=False, compare=False)
    #: The fields of this action that name a household or a case (see :data:`_NAMING_FIELDS`).
    naming: tuple[tuple[str, Callable[[str], UUID]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived once per action rather than on every line of a file.
        object.__setattr__(self, "allowed", frozenset(self.fields) | COMMON_FIELDS)
        object.__setattr__(self, "checks", tuple((k, parser, required) for k, (parser, required) in self.fields.items()))
        object.__setattr__(self, "naming", tuple((k, to_id) for k, to_id in _NAMING_FIELDS if k in self.fields))


def _actions() -> dict[str, Action]:
    R, O = True, False  # required / optional
    return {
        "standard.set": Action(
            {"programme": (_enum(Programme, "programme"), R), "area": (_enum(Area, "area"), R), "amount": (_money, R), "from": (_month, R)},
            lambda app, f, **kw: app.set_standard(f["programme"], f["area"], f["amount"], f["from"], **kw),
        ),
        "household.register": Action(
            {
                "number": (_text, R),
                "community": (_text, R),
                "area": (_enum(Area, "area"), R),
                "payee_account": (_text, R),
                "payee_name": (_opt_text, O),
                "members": (_members, R),
            },
            lambda app, f, **kw: app.register_household(
                number=f["number"],
                community=f["community"],
                area=f["area"],
                members=f["members"],
                payee_account=f["payee_account"],
                payee_name=f.get("payee_name") or None,
                **kw,
            ),
        ),
        "household.add-member": Action(
            {"household": (_text, R), "member": (_member, R)},
            lambda app, f, **kw: app.add_member(f["household"], f["member"], **kw),
        ),
        "household.remove-member": Action(
            {"household": (_text, R), "id_number": (_text, R), "reason": (_text, R)},
            lambda app, f, **kw: app.remove_member(f["household"], f["id_number"], f["reason"], **kw),
        ),
        "household.record-death": Action(
            {"household": (_text, R), "id_number": (_text, R)},
            lambda app, f, **kw: app.record_death(f["household"], f["id_number"], **kw),
        ),
        "household.move": Action(
            {"household": (_text, R), "area": (_enum(Area, "area"), R)},
            lambda app, f, **kw: app.move_household(f["household"], f["area"], **kw),
        ),
        "household.set-account": Action(
            {"household": (_text, R), "payee_name": (_text, R), "payee_account": (_text, R)},
            lambda app, f, **kw: app.change_account(f["household"], f["payee_name"], f["payee_account"], **kw),
        ),
        "case.apply": Action(
            {
                "case": (_text, R),
                "household": (_text, R),
                "programme": (_enum(Programme, "programme"), R),
                "channel": (_enum(Channel, "channel"), R),
                "single_person": (_opt_text, O),
            },
            lambda app, f, **kw: app.apply(
                case_no=f["case"],
                household_no=f["household"],
                programme=f["programme"],
                channel=f["channel"],
                single_person=f.get("single_person") or None,
                **kw,
            ),
        ),
        "case.verify": Action(
            {"case": (_text, R), "income": (_income, R), "assets_ok": (_bool, R), "verifier": (_text, R), "valid_until": (_date, R)},
            lambda app, f, **kw: app.verify(
                f["case"], income_fen=f["income"], assets_ok=f["assets_ok"], verifier=f["verifier"], valid_until=f["valid_until"], **kw
            ),
        ),
        "case.approve": Action(
            {
                "case": (_text, R),
                "amount": (_money, R),
                "first_month": (_month, R),
                "covered": (_ids, O),
                "add_on": (_opt_money, O),
                "add_on_reason": (_opt_text, O),
            },
            lambda app, f, **kw: app.approve(
                f["case"],
                amount_fen=f["amount"],
                first_month=f["first_month"],
                covered=f.get("covered"),
                add_on_fen=f.get("add_on", 0),
                add_on_reason=f.get("add_on_reason", ""),
                **kw,
            ),
        ),
        "case.approve-legacy": Action(
            {
                "case": (_text, R),
                "amount": (_money, R),
                "first_month": (_month, R),
                "approver": (_text, R),
                "legacy_reference": (_text, R),
                "covered": (_ids, O),
            },
            lambda app, f, **kw: app.approve_legacy(
                f["case"],
                amount_fen=f["amount"],
                first_month=f["first_month"],
                approver=f["approver"],
                legacy_reference=f["legacy_reference"],
                covered=f.get("covered"),
                **kw,
            ),
        ),
        "case.reject": Action(
            {"case": (_text, R), "reason": (_text, R)},
            lambda app, f, **kw: app.reject(f["case"], f["reason"], **kw),
        ),
        "case.adjust": Action(
            {
                "case": (_text, R),
                "amount": (_money, R),
                "from": (_month, R),
                "covered": (_ids, O),
                "add_on": (_opt_money, O),
                "add_on_reason": (_opt_text, O),
            },
            lambda app, f, **kw: app.adjust(
                f["case"],
                amount_fen=f["amount"],
                from_month=f["from"],
                covered=f.get("covered"),
                add_on_fen=f.get("add_on", 0),
                add_on_reason=f.get("add_on_reason", ""),
                **kw,
            ),
        ),
        "case.suspend": Action(
            {"case": (_text, R), "reason": (_text, R), "from": (_month, R)},
            lambda app, f, **kw: app.suspend(f["case"], f["reason"], f["from"], **kw),
        ),
        "case.resume": Action(
            {"case": (_text, R), "from": (_month, R)},
            lambda app, f, **kw: app.resume(f["case"], f["from"], **kw),
        ),
        "case.terminate": Action(
            {"case": (_text, R), "reason": (_text, R), "from": (_month, R)},
            lambda app, f, **kw: app.terminate(f["case"], f["reason"], f["from"], **kw),
        ),
        "grant.approve": Action(
            {"case": (_text, R), "type": (_text, R), "amount": (_money, R), "reason": (_text, R), "override_reason": (_opt_text, O)},
            lambda app, f, **kw: app.approve_grant(
                f["case"], grant_type=f["type"], amount_fen=f["amount"], reason=f["reason"], override_reason=f.get("override_reason", ""), **kw
            ),
        ),
        "grant.pay": Action({"case": (_text, R)}, lambda app, f, **kw: app.pay_grant(f["case"], **kw)),
        "payment.issue": Action(
            {"case": (_text, R), "month": (_month, R)},
            lambda app, f, **kw: app.issue_payment(f["case"], f["month"], **kw),
        ),
        "payment.settle": Action({"ref": (_text, R)}, lambda app, f, **kw: app.settle_payment(f["ref"], **kw)),
        "payment.return": Action(
            {"ref": (_text, R), "reason": (_text, R)},
            lambda app, f, **kw: app.return_payment(f["ref"], f["reason"], **kw),
        ),
    }


def _income(v: Any) -> int:
    """Per-capita income may be zero, unlike an amount paid."""
    if (type(v) is int and v == 0) or v in ("0", "0.0", "0.00"):
        return 0
    return _money(v)


ACTIONS = _actions()


class ImportError_(LedgerError):
    """A line of an import file is malformed or breaks a rule; nothing was written."""


@dataclass(frozen=True)
class ImportResult:
    lines: int
    events: int
    actions: dict[str, int]


#: One parsed line: its number, action, action name, fields, operator and date.
Parsed = tuple[int, Action, str, dict[str, Any], str, date]


_raw_decode = json.JSONDecoder().raw_decode


def _loads(text: str) -> Any:
    """``json.loads`` of a line already stripped of surrounding whitespace, with the same errors.

    Such a line has no JSON whitespace to skip at either end, so the decoder's own
    ``raw_decode`` reads it directly; what would follow the value is "extra data".
    """
    if text[:1] == "\ufeff":
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    obj, end = _raw_decode(text)
    if end != len(text):
        rest = text[end:]
        raise json.JSONDecodeError("Extra data", text, end + len(rest) - len(rest.lstrip(" \t\n\r")))
    return obj


def _parse_line(number: int, text: str) -> Parsed:
    try:
        obj = _loads(text)
    except json.JSONDecodeError as e:
        raise ImportError_(f"line {number}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError):  # huge integers, nesting too deep
        raise ImportError_(f"line {number}: not valid JSON (a number too long or nesting too deep)") from None
    if not isinstance(obj, dict):
        raise ImportError_(f"line {number}: expected a JSON object")
    name = obj.get("action")
    action = ACTIONS.get(name) if isinstance(name, str) else None
    if action is None:
        raise ImportError_(f"line {number}: field 'action': unknown action {name!r} (see the README for the list)")
    if "operator" not in obj:
        raise ImportError_(f"line {number}: field 'operator' is missing")
    try:
        operator = _text(obj["operator"])
    except InvalidInput as e:
        raise ImportError_(f"line {number}: field 'operator': {e}") from None
    if "date" not in obj:
        raise ImportError_(f"line {number}: field 'date' is missing")
    try:
        day = _date(obj["date"])
    except InvalidInput as e:
        raise ImportError_(f"line {number}: field 'date': {e}") from None
    if not action.allowed.issuperset(obj):
        unknown = sorted(set(obj) - action.allowed)
        raise ImportError_(f"line {number}: field {unknown[0]!r} is not a field of {name}")
    fields: dict[str, Any] = {}
    for key, parser, required in action.checks:
        if key in obj:
            try:
                fields[key] = parser(obj[key])
            except InvalidInput as e:
                raise ImportError_(f"line {number}: field {key!r}: {e}") from None
        elif required:
            raise ImportError_(f"line {number}: field {key!r} is missing for {name}")
    return number, action, name, fields, operator, day


def _named_aggregates(parsed: list[Parsed]) -> Iterator[UUID]:
    """The ids of the households and cases a file names, to load (or know missing) in bulk."""
    for _n, action, _name, fields, _operator, _day in parsed:
        for key, to_id in action.naming:
            value = fields.get(key)
            if isinstance(value, str):
                yield to_id(value)


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a file is imported.

    Until its one transaction commits, an import holds every parsed line and every
    aggregate and event the file makes: hundreds of thousands of objects that stay
    alive and form no reference cycles. As they accumulate, the collector would walk
    all of them again and again, a large share of the time of a big file, and free
    nothing. Reference counting still frees everything else at once; the collector
    runs again (if it was on) as soon as the import returns or fails.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_lines(
    app: LedgerApp,
    lines: Iterable[str],
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> ImportResult:
    """Validate and apply every line, then write all of them in one transaction (or nothing).

    Every line is parsed first (a malformed file fails before any rule is checked), then
    the households and cases the file names are loaded with a few queries, then the
    actions run in order through the application's commands: a large file's independent
    households in up to ``workers`` processes at once (default: the cores, see
    :mod:`ledger.parallel`; 1 runs every line in this process), with the same result.
    """
    with _cycle_collection_paused():
        return _import(app, lines, progress, parallel.default_workers() if workers is None else workers)


def apply_lines(
    app: LedgerApp,
    uow: UnitOfWork,
    parsed: Iterable[Parsed],
    progress: Callable[[int], None] | None,
    added: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, int], tuple[int, str] | None]:
    """Run parsed lines in order in ``uow`` up to the first that fails; the counts by action and that (line, message).

    ``added(line, k)``: told after each line that brought ``k`` aggregates into the unit of work.
    Progress is told at each thousand lines of the file passed.
    """
    counts: dict[str, int] = {}
    size = uow.size()
    reported = 0
    for n, action, name, fields, operator, day in parsed:
        failure = None
        try:
            action.run(app, fields, operator=operator, effective=day, uow=uow)
        except LedgerError as e:
            failure = (n, f"line {n} ({name}): {e}")
        except KeyError as e:  # a member object without a field
            failure = (n, f"line {n} ({name}): field {e.args[0]!r} is missing")
        if added is not None and uow.size() > size:
            added(n, uow.size() - size)
        size = uow.size()
        if failure is not None:
            return counts, failure
        counts[name] = counts.get(name, 0) + 1
        if progress and n // 1000 > reported:
            reported = n // 1000
            progress(reported * 1000)
    return counts, None


def _forkable(app: LedgerApp, uow: UnitOfWork) -> bool:
    """Whether worker processes can check a file: a database they can open too, fork, and saving that only stores."""
    return app.url != "memory:" and hasattr(os, "fork") and uow.batch_writable()


def _import(app: LedgerApp, lines: Iterable[str], progress: Callable[[int], None] | None, workers: int) -> ImportResult:
    """The import itself (see :func:`import_lines`, which runs it with the cyclic collector paused)."""
    uow: UnitOfWork = app.unit_of_work()
    parsed: list[Parsed] = []
    n = 0
    numbered = enumerate(lines, start=1)
    while True:
        try:
            n, raw = next(numbered)
        except StopIteration:
            break
        except UnicodeDecodeError:
            raise ImportError_(f"line {n + 1}: not valid UTF-8 text") from None
        text = raw.strip()
        if not text or text[0] == "#":
            continue
        parsed.append(_parse_line(n, text))
    uow.preload(_named_aggregates(parsed))
    shares = parallel.plan(parsed, uow, workers) if workers > 1 and _forkable(app, uow) else None
    if shares is not None:
        counts, stored = parallel.run(app, uow, shares, progress)
        if stored:
            app.recorder.insert_events(stored)
        if progress:
            progress(n)
        return ImportResult(lines=sum(counts.values()), events=len(stored), actions=counts)
    counts, failure = apply_lines(app, uow, parsed, progress)
    if failure is not None:
        raise ImportError_(failure[1])
    events = uow.commit_batch()
    if progress:
        progress(n)
    return ImportResult(lines=sum(counts.values()), events=events, actions=counts)
