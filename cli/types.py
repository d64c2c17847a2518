"""Click parameter types: values are parsed at the edge, so commands get months, fen and dates."""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import Enum
from typing import Any

import click

from ledger.errors import InvalidInput
from ledger.values import Month, parse_date, parse_id_number, parse_money


class MonthType(click.ParamType):
    name = "YYYY-MM"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Month:
        if isinstance(value, Month):
            return value
        try:
            return Month.parse(value)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)


class MoneyType(click.ParamType):
    """An amount in yuan with at most two decimals, converted to integer fen."""

    name = "YUAN"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if self.allow_zero and str(value).strip() in ("0", "0.0", "0.00"):
            return 0
        try:
            return parse_money(str(value))
        except InvalidInput as e:
            self.fail(str(e), param, ctx)


class DateType(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return parse_date(value)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)


class TimestampType(click.ParamType):
    """A moment in recorded time: ISO date-time (``2023-09-30T18:00:00+08:00``); naive means UTC."""

    name = "TIMESTAMP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).strip())
            moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
            moment.astimezone(timezone.utc)
        except (ValueError, OverflowError):
            self.fail(f"invalid timestamp {value!r}: expected e.g. 2023-09-30T18:00:00+08:00", param, ctx)
        if not 1900 <= moment.year <= 9998:
            self.fail(f"invalid timestamp {value!r}: expected a year between 1900 and 9998", param, ctx)
        return moment


class IdNumberType(click.ParamType):
    name = "ID-NUMBER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return parse_id_number(value)
        except InvalidInput as e:
            self.fail(str(e), param, ctx)


class EnumChoice(click.Choice):
    """A choice among an enumeration's values, converted to the enumeration member."""

    def __init__(self, enum: type[Enum]) -> None:
        self.enum = enum
        super().__init__([e.value for e in enum])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.enum):
            return value
        return self.enum(super().convert(value, param, ctx))


MONTH = MonthType()
MONEY = MoneyType()
DATE = DateType()
TIMESTAMP = TimestampType()
ID_NUMBER = IdNumberType()
