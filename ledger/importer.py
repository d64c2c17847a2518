"""Import of a JSON Lines file: one action per line, validated and applied all-or-nothing.

Each line is an object with ``action``, ``operator``, ``date`` (the effective or decision
date, ``YYYY-MM-DD``) and the action's own fields (see :data:`ACTIONS` and the README).
Amounts are yuan given as text (``"593.50"``) or whole numbers; JSON floats are refused.

The whole file runs through the same application commands a clerk uses, in one unit
of work, and is written in one transaction only if every line passed. An error names
the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.application import LedgerApp, UnitOfWork
from ledger.errors import InvalidInput, LedgerError
from ledger.values import Area, Channel, Month, Programme, parse_date, parse_enum, parse_id_number, parse_money


def _utf8(v: str) -> str:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("text that is not valid Unicode (a lone surrogate)") from None
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise InvalidInput("expected non-empty text")
    return _utf8(v.strip())


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


def _money(v: Any) -> int:
    return parse_money(v)


def _opt_money(v: Any) -> int:
    if v is None or v == "" or (type(v) is int and v == 0):
        return 0
    return parse_money(v)


def _month(v: Any) -> Month:
    return Month.parse(_text(v))


def _date(v: Any) -> date:
    return parse_date(_text(v))


def _ids(v: Any) -> list[str] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
        raise InvalidInput("expected a list of identity numbers")
    return [parse_id_number(i) for i in v]


def _members(v: Any) -> list[dict[str, Any]]:
    if not isinstance(v, list) or not v or not all(isinstance(m, dict) for m in v):
        raise InvalidInput("expected a non-empty list of member objects")
    for i, m in enumerate(v, start=1):
        _member(m, f"member {i}: ")
    return v


def _member(v: Any, where: str = "") -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidInput("expected a member object")
    for key in ("id_number", "name", "relation"):
        if key not in v:
            raise InvalidInput(f"{where}field {key!r} is missing")
        if not isinstance(v[key], str):
            raise InvalidInput(f"{where}field {key!r}: expected text")
        try:
            _utf8(v[key])
        except InvalidInput as e:
            raise InvalidInput(f"{where}field {key!r}: {e}") from None
    flags = v.get("flags", [])
    if flags is not None and not isinstance(flags, str) and not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
        raise InvalidInput(f"{where}field 'flags': expected a list of flags")
    try:
        parse_id_number(str(v["id_number"]))
    except InvalidInput as e:
        raise InvalidInput(f"{where}field 'id_number': {e}") from None
    return v


def _enum(enum: type, what: str) -> Callable[[Any], Any]:
    return lambda v: parse_enum(enum, _text(v), what)


@dataclass(frozen=True)
class Action:
    """An importable action: its fields (name -> (parser, required)) and how it runs."""

    fields: dict[str, tuple[Callable[[Any], Any], bool]]
    run: Callable[..., Any]


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
    return parse_money(v)


ACTIONS = _actions()


class ImportError_(LedgerError):
    """A line of an import file is malformed or breaks a rule; nothing was written."""


@dataclass(frozen=True)
class ImportResult:
    lines: int
    events: int
    actions: dict[str, int]


def _parse_line(number: int, text: str) -> tuple[Action, str, dict[str, Any], dict[str, Any]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ImportError_(f"line {number}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError):  # huge integers, nesting too deep
        raise ImportError_(f"line {number}: not valid JSON (a number too long or nesting too deep)") from None
    if not isinstance(obj, dict):
        raise ImportError_(f"line {number}: expected a JSON object")
    name = obj.get("action")
    if not isinstance(name, str) or name not in ACTIONS:
        raise ImportError_(f"line {number}: field 'action': unknown action {name!r} (see the README for the list)")
    action = ACTIONS[name]
    common: dict[str, Any] = {}
    for field, parser in (("operator", _text), ("date", _date)):
        if field not in obj:
            raise ImportError_(f"line {number}: field {field!r} is missing")
        try:
            common[field] = parser(obj[field])
        except InvalidInput as e:
            raise ImportError_(f"line {number}: field {field!r}: {e}") from None
    unknown = set(obj) - set(action.fields) - {"action", "operator", "date"}
    if unknown:
        raise ImportError_(f"line {number}: field {sorted(unknown)[0]!r} is not a field of {name}")
    fields: dict[str, Any] = {}
    for field, (parser, required) in action.fields.items():
        if field not in obj:
            if required:
                raise ImportError_(f"line {number}: field {field!r} is missing for {name}")
            continue
        try:
            fields[field] = parser(obj[field])
        except InvalidInput as e:
            raise ImportError_(f"line {number}: field {field!r}: {e}") from None
    return action, name, fields, common


def _named_aggregates(parsed: list[tuple[Any, ...]]) -> Iterable[Any]:
    """The ids of the households and cases a file names, to load (or know missing) in bulk."""
    from ledger.domain import case_id, household_id

    for _n, _action, _name, fields, _common in parsed:
        for key, to_id in (("household", household_id), ("number", household_id), ("case", case_id)):
            value = fields.get(key)
            if isinstance(value, str):
                yield to_id(value)


def import_lines(
    app: LedgerApp,
    lines: Iterable[str],
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Validate and apply every line, then write all of them in one transaction (or nothing).

    Every line is parsed first (a malformed file fails before any rule is checked), then
    the households and cases the file names are loaded with a few queries, then the
    actions run in order through the application's commands.
    """
    uow: UnitOfWork = app.unit_of_work()
    counts: dict[str, int] = {}
    parsed = []
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
        if not text or text.startswith("#"):
            continue
        parsed.append((n, *_parse_line(n, text)))
    uow.preload(_named_aggregates(parsed))
    for n, action, name, fields, common in parsed:
        try:
            action.run(app, fields, operator=common["operator"], effective=common["date"], uow=uow)
        except LedgerError as e:
            raise ImportError_(f"line {n} ({name}): {e}") from None
        except KeyError as e:  # a member object without a field
            raise ImportError_(f"line {n} ({name}): field {e.args[0]!r} is missing") from None
        counts[name] = counts.get(name, 0) + 1
        if progress and n % 1000 == 0:
            progress(n)
    events = uow.pending()
    uow.commit()
    if progress:
        progress(n)
    return ImportResult(lines=sum(counts.values()), events=events, actions=counts)
