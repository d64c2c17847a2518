"""Value types: benefit months, exact money, enumerations and identity numbers.

Money is always an integer number of fen (1 yuan = 100 fen). It is parsed from
text through :class:`decimal.Decimal` and formatted without ever passing through
a binary float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Iterator

from ledger.errors import InvalidInput

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A benefit month (``YYYY-MM``): the month a monthly payment is for."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1900 <= self.year <= 9999:
            raise InvalidInput(f"invalid month {self.year:04d}-{self.month:02d}")

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse ``YYYY-MM``; raise :class:`InvalidInput` naming the bad text."""
        m = _MONTH_RE.match(str(text).strip())
        if not m:
            raise InvalidInput(f"invalid month {text!r}: expected YYYY-MM")
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12 or not 1900 <= year <= 9998:
            raise InvalidInput(f"invalid month {text!r}: expected YYYY-MM between 1900-01 and 9998-12")
        return cls(year, month)

    @classmethod
    def of(cls, day: date) -> Month:
        """The benefit month that contains ``day``."""
        return cls(day.year, day.month)

    @property
    def index(self) -> int:
        """Months since year 0: makes arithmetic and SQL comparisons simple."""
        return self.year * 12 + self.month - 1

    @classmethod
    def from_index(cls, index: int) -> Month:
        return cls(index // 12, index % 12 + 1)

    def add(self, months: int) -> Month:
        return Month.from_index(self.index + months)

    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def last_day(self) -> date:
        return date.fromordinal(self.add(1).first_day().toordinal() - 1)

    def until(self, last: Month) -> Iterator[Month]:
        """Every month from this one to ``last`` inclusive."""
        for i in range(self.index, last.index + 1):
            yield Month.from_index(i)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def parse_date(text: str) -> date:
    """Parse an ISO date ``YYYY-MM-DD``."""
    try:
        day = date.fromisoformat(str(text).strip())
    except ValueError:
        raise InvalidInput(f"invalid date {text!r}: expected YYYY-MM-DD") from None
    if not 1900 <= day.year <= 9998:
        raise InvalidInput(f"invalid date {text!r}: expected a year between 1900 and 9998")
    return day


_MONEY_RE = re.compile(r"^(\d{1,3}(,\d{3})+|\d+)(\.\d{1,2})?$")

#: The largest amount the ledger accepts: 9,999,999,999.99 yuan, far above any benefit or
#: standard, and small enough for a 64-bit integer column in every database.
MAX_FEN = 10**12 - 1


def parse_money(text: object) -> int:
    """Parse an amount in yuan (``"593"``, ``"593.5"``, ``"593.50"``) into positive fen.

    Floats are refused on purpose: ``0.1 + 0.2`` is not an amount of money.
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise InvalidInput(f"invalid amount {text!r}: give yuan as text or an integer, never a float")
    if isinstance(text, int):
        text = str(text)
    if isinstance(text, Decimal):
        text = format(text, "f")
    s = str(text).strip()
    if not _MONEY_RE.match(s):
        raise InvalidInput(f"invalid amount {text!r}: expected yuan with at most two decimals, e.g. 593.50")
    whole, _, cents = s.replace(",", "").partition(".")
    if len(whole.lstrip("0")) > 10:
        raise InvalidInput(f"invalid amount {text!r}: more than the largest amount, {yuan(MAX_FEN)} yuan")
    fen = int(whole) * 100 + int(cents.ljust(2, "0"))
    if fen <= 0:
        raise InvalidInput(f"invalid amount {text!r}: must be positive")
    return fen


def yuan(fen: int) -> str:
    """Format fen as yuan with two decimals and thousands separators: ``1,234.50``."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def yuan_plain(fen: int) -> str:
    """Format fen as yuan for machines: ``1234.50`` (exact, no separators)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


class Programme(Enum):
    """Assistance programmes. Monthly ones are paid per case and benefit month."""

    URBAN_DIBAO = "urban-dibao"
    RURAL_DIBAO = "rural-dibao"
    TEKUN = "tekun"
    TEMPORARY = "temporary"

    @property
    def is_monthly(self) -> bool:
        return self is not Programme.TEMPORARY

    @property
    def is_dibao(self) -> bool:
        return self in (Programme.URBAN_DIBAO, Programme.RURAL_DIBAO)


class Area(Enum):
    URBAN = "urban"
    RURAL = "rural"


def dibao_for(area: Area) -> Programme:
    """The dibao programme of an area."""
    return Programme.URBAN_DIBAO if area is Area.URBAN else Programme.RURAL_DIBAO


class Channel(Enum):
    """How an application reached the bureau (outreach = opened at the household's door)."""

    WINDOW = "window"
    OUTREACH = "outreach"
    REFERRAL = "referral"


class MemberFlag(Enum):
    SERIOUSLY_ILL = "ill"
    SEVERELY_DISABLED = "disabled"
    ELDERLY = "elderly"
    MINOR = "minor"


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) of an identity number's first 17 digits."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS)) % 11]


def parse_id_number(text: str) -> str:
    """Validate an 18-character resident identity number, including its check character."""
    s = str(text).strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", s):
        raise InvalidInput(f"invalid identity number {text!r}: expected 17 digits and a check digit")
    if id_check_char(s[:17]) != s[17]:
        raise InvalidInput(f"invalid identity number {text!r}: check digit does not match")
    return s


def mask_id(id_number: str) -> str:
    """Mask an identity number for display: the region and the last four stay visible."""
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


def parse_enum(enum: type[Enum], text: str, what: str) -> Enum:
    try:
        return enum(str(text).strip())
    except ValueError:
        choices = ", ".join(e.value for e in enum)  # type: ignore[attr-defined]
        raise InvalidInput(f"invalid {what} {text!r}: choose one of {choices}") from None
