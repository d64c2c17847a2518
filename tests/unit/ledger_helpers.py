"""Small builders shared by the unit tests (not a test module).

They drive the ledger only through :class:`ledger.application.LedgerApp`, the way a
clerk's command would, so every test exercises the real validation path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from ledger.application import LedgerApp
from ledger.values import Area, Channel, Month, Programme
from tests.conftest import idn

#: The caseworker who records verifications (the verifier) and the officer who decides.
VERIFIER = "zhang.wei"
APPROVER = "li.na"
FINANCE = "wang.fang"

D = date(2023, 1, 5)
JAN = Month(2023, 1)
VALID_UNTIL = date(2023, 12, 31)
URBAN_STD = 76000  # 760.00 yuan per person and month, from 2022-01


def m(text: str) -> Month:
    return Month.parse(text)


def written(app: LedgerApp) -> int:
    """The position of the last stored event (0 when nothing is stored yet)."""
    return app.recorder.max_notification_id() or 0


@contextmanager
def nothing_written(app: LedgerApp) -> Iterator[None]:
    """Assert that the block adds no event to the store (use outside ``pytest.raises``)."""
    before = written(app)
    yield
    assert written(app) == before, "a refused command must not write anything"


def set_standard(
    app: LedgerApp,
    fen: int = URBAN_STD,
    from_month: Month = Month(2022, 1),
    programme: Programme = Programme.URBAN_DIBAO,
    area: Area = Area.URBAN,
) -> None:
    app.set_standard(programme, area, fen, from_month, operator=APPROVER, effective=date(2022, 1, 1))


def register(
    app: LedgerApp,
    number: str = "H1",
    persons: int = 2,
    first_person: int = 1,
    area: Area = Area.URBAN,
    head_flags: tuple[str, ...] = (),
    other_flags: tuple[str, ...] = (),
) -> list[str]:
    """Register a household of ``persons`` members; returns their identity numbers (head first)."""
    ids = [idn(first_person + i) for i in range(persons)]
    members = [
        {
            "id_number": ids[i],
            "name": f"Person {first_person + i}",
            "relation": "head" if i == 0 else "child",
            "flags": list(head_flags if i == 0 else other_flags),
        }
        for i in range(persons)
    ]
    app.register_household(
        number=number, community="Dongjie", area=area, members=members,
        payee_account="6222020000000001", operator=VERIFIER, effective=D,
    )
    return ids


def open_case(
    app: LedgerApp,
    case_no: str = "U1",
    household: str = "H1",
    programme: Programme = Programme.URBAN_DIBAO,
    single_person: str | None = None,
    effective: date = D,
) -> None:
    app.apply(case_no=case_no, household_no=household, programme=programme, channel=Channel.OUTREACH,
              single_person=single_person, operator=VERIFIER, effective=effective)


def verify(
    app: LedgerApp,
    case_no: str = "U1",
    income_fen: int = 20000,
    assets_ok: bool = True,
    verifier: str = VERIFIER,
    valid_until: date = VALID_UNTIL,
    effective: date = D,
) -> int:
    return app.verify(case_no, income_fen=income_fen, assets_ok=assets_ok, verifier=verifier,
                      valid_until=valid_until, operator=verifier, effective=effective)


def approve(app: LedgerApp, case_no: str = "U1", amount_fen: int = 120000, first_month: Month = JAN,
            effective: date = D, operator: str = APPROVER, **kw: object) -> None:
    app.approve(case_no, amount_fen=amount_fen, first_month=first_month, operator=operator, effective=effective, **kw)


def active_case(app: LedgerApp, case_no: str = "U1", household: str = "H1", persons: int = 2,
                amount_fen: int = 120000, first_month: Month = JAN, first_person: int = 1) -> list[str]:
    """Standard (if missing), household, application, passing verification and approval."""
    from ledger.domain import standard_id

    if app.unit_of_work().find(standard_id(Programme.URBAN_DIBAO, Area.URBAN)) is None:
        set_standard(app)
    ids = register(app, household, persons, first_person=first_person)
    open_case(app, case_no, household)
    verify(app, case_no)
    approve(app, case_no, amount_fen=amount_fen, first_month=first_month)
    return ids


def issue(app: LedgerApp, case_no: str, month: Month, effective: date = date(2023, 2, 1)) -> str:
    return app.issue_payment(case_no, month, operator=FINANCE, effective=effective)
