"""Rule 4 (amounts are exact) and the other value types: months, identity numbers, masking."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger.errors import InvalidInput
from ledger.values import (
    Channel,
    Month,
    Programme,
    id_check_char,
    mask_id,
    parse_date,
    parse_enum,
    parse_id_number,
    parse_money,
    yuan,
    yuan_plain,
)
from tests.conftest import idn

# ---------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("given", "fen"),
    [
        ("593", 59300),
        ("593.5", 59350),
        ("593.50", 59350),
        ("0.01", 1),
        (" 12.30 ", 1230),
        ("1,234.50", 123450),
        (593, 59300),
        (Decimal("1.10"), 110),
        (Decimal("593.5"), 59350),
    ],
)
def test_parse_money_accepts_exact_yuan(given: object, fen: int) -> None:
    result = parse_money(given)
    assert result == fen
    assert type(result) is int


def test_parse_money_is_exact_where_floats_are_not() -> None:
    # 0.1 + 0.2 != 0.3 in binary floating point; the ledger's fen never drift.
    assert parse_money("0.1") + parse_money("0.2") == parse_money("0.3") == 30
    assert sum(parse_money("0.01") for _ in range(1000)) == parse_money("10") == 1000


@pytest.mark.parametrize("given", [593.5, 593.0, 0.1, float("nan")])
def test_parse_money_refuses_floats(given: float) -> None:
    with pytest.raises(InvalidInput, match="never a float"):
        parse_money(given)


@pytest.mark.parametrize("given", [True, False])
def test_parse_money_refuses_booleans(given: bool) -> None:
    with pytest.raises(InvalidInput, match="invalid amount"):
        parse_money(given)


@pytest.mark.parametrize("given", ["-5", "-0.01", -5, Decimal("-1.10")])
def test_parse_money_refuses_negative(given: object) -> None:
    with pytest.raises(InvalidInput, match="invalid amount"):
        parse_money(given)


@pytest.mark.parametrize("given", ["0", "0.00", "0.0", 0, Decimal("0")])
def test_parse_money_refuses_zero(given: object) -> None:
    with pytest.raises(InvalidInput, match="must be positive"):
        parse_money(given)


@pytest.mark.parametrize("given", ["593.505", "0.001", Decimal("1.105")])
def test_parse_money_refuses_three_decimals(given: object) -> None:
    with pytest.raises(InvalidInput, match="at most two decimals"):
        parse_money(given)


@pytest.mark.parametrize("given", ["", "abc", "12a", "1.2.3", "1e3", "NaN", "¥5", ".5", "5.", "1 000", None, Decimal("NaN")])
def test_parse_money_refuses_garbage(given: object) -> None:
    with pytest.raises(InvalidInput, match="invalid amount"):
        parse_money(given)


@pytest.mark.parametrize("given", ["12,34", "1,2,3", ",593", "59,3.50"])
def test_parse_money_refuses_misplaced_thousands_separators(given: str) -> None:
    with pytest.raises(InvalidInput, match="invalid amount"):
        parse_money(given)


@pytest.mark.parametrize(
    ("fen", "text", "plain"),
    [
        (0, "0.00", "0.00"),
        (5, "0.05", "0.05"),
        (59350, "593.50", "593.50"),
        (123450, "1,234.50", "1234.50"),
        (3070312400, "30,703,124.00", "30703124.00"),
        (-5, "-0.05", "-0.05"),
        (-123456, "-1,234.56", "-1234.56"),
        (-100000000, "-1,000,000.00", "-1000000.00"),
    ],
)
def test_yuan_formatting(fen: int, text: str, plain: str) -> None:
    assert yuan(fen) == text
    assert yuan_plain(fen) == plain


@pytest.mark.parametrize("fen", [1, 99, 100, 59350, 123456789, 3070312400])
def test_yuan_plain_round_trips_through_parse_money(fen: int) -> None:
    assert parse_money(yuan_plain(fen)) == fen
    assert parse_money(yuan(fen)) == fen


# ---------------------------------------------------------------- months


def test_month_parse_and_str() -> None:
    assert Month.parse("2023-01") == Month(2023, 1)
    assert Month.parse(" 2023-12 ") == Month(2023, 12)
    assert str(Month(2023, 3)) == "2023-03"
    assert str(Month.parse("1999-07")) == "1999-07"


@pytest.mark.parametrize("text", ["2023-13", "2023-00", "2023-1", "23-01", "2023/01", "202301", "", "2023-01-05", "1899-12"])
def test_month_parse_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid month"):
        Month.parse(text)


@pytest.mark.parametrize(("year", "month"), [(2023, 0), (2023, 13), (1899, 5)])
def test_month_constructor_validates(year: int, month: int) -> None:
    with pytest.raises(InvalidInput, match="invalid month"):
        Month(year, month)


def test_month_arithmetic_crosses_years() -> None:
    jan = Month(2023, 1)
    assert jan.add(1) == Month(2023, 2)
    assert jan.add(-1) == Month(2022, 12)
    assert jan.add(12) == Month(2024, 1)
    assert jan.add(23) == Month(2024, 12)
    assert Month(2023, 12).add(1) == Month(2024, 1)
    assert Month.from_index(jan.index) == jan
    assert Month(2024, 1).index - Month(2023, 1).index == 12


def test_month_ordering_and_ranges() -> None:
    assert Month(2022, 12) < Month(2023, 1) < Month(2023, 2)
    assert sorted([Month(2023, 5), Month(2022, 11), Month(2023, 1)]) == [Month(2022, 11), Month(2023, 1), Month(2023, 5)]
    assert [str(x) for x in Month(2022, 11).until(Month(2023, 2))] == ["2022-11", "2022-12", "2023-01", "2023-02"]
    assert list(Month(2023, 3).until(Month(2023, 2))) == []


def test_month_days() -> None:
    assert Month.of(date(2023, 7, 31)) == Month(2023, 7)
    assert Month(2023, 2).first_day() == date(2023, 2, 1)
    assert Month(2023, 2).last_day() == date(2023, 2, 28)
    assert Month(2024, 2).last_day() == date(2024, 2, 29)
    assert Month(2023, 12).last_day() == date(2023, 12, 31)


def test_parse_date() -> None:
    assert parse_date("2023-01-05") == date(2023, 1, 5)
    with pytest.raises(InvalidInput, match="invalid date '2023-02-30'"):
        parse_date("2023-02-30")


# ---------------------------------------------------------------- identity numbers


def test_id_check_char_known_value() -> None:
    # The classic GB 11643 example number 11010519491231002X.
    assert id_check_char("11010519491231002") == "X"
    assert parse_id_number("11010519491231002X") == "11010519491231002X"


def test_parse_id_number_accepts_valid_and_normalises_x() -> None:
    assert parse_id_number(idn(1)) == idn(1)
    with_x = next(idn(n) for n in range(1, 100) if idn(n).endswith("X"))
    assert parse_id_number(with_x.lower()) == with_x
    assert parse_id_number(f"  {with_x}  ") == with_x


def test_parse_id_number_refuses_wrong_check_digit() -> None:
    good = idn(1)
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(InvalidInput, match="check digit does not match"):
        parse_id_number(wrong)


@pytest.mark.parametrize("text", ["", "1404031980010100", "14040319800101001", "1404031980010100155", "14040319800101001A", "X40403198001010015"])
def test_parse_id_number_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidInput, match="expected 17 digits and a check digit"):
        parse_id_number(text)


def test_mask_id_keeps_region_and_last_four() -> None:
    number = idn(1)
    masked = mask_id(number)
    assert masked == number[:4] + "*" * 10 + number[-4:]
    assert len(masked) == 18
    assert number[4:14] not in masked  # the birth date is hidden


def test_parse_enum() -> None:
    assert parse_enum(Programme, "rural-dibao", "programme") is Programme.RURAL_DIBAO
    with pytest.raises(InvalidInput, match="invalid channel 'phone': choose one of window, outreach, referral"):
        parse_enum(Channel, "phone", "channel")
