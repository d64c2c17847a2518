"""Shared fixtures: an in-memory ledger, a SQLite file, and a fresh PostgreSQL database.

PostgreSQL tests run when ``LEDGER_TEST_POSTGRES_URL`` holds a server URL (any
database on it; each test gets a database of its own, created and dropped here).
With ``LEDGER_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) a missing URL fails the run
instead of skipping those tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger.application import LedgerApp
from ledger.values import Area, Channel, Month, Programme, id_check_char

PG_ENV = "LEDGER_TEST_POSTGRES_URL"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LEDGER_REQUIRE_POSTGRES") == "1" and not os.environ.get(PG_ENV):
        raise pytest.UsageError(f"LEDGER_REQUIRE_POSTGRES=1 but {PG_ENV} is not set: PostgreSQL tests would be skipped")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    yield from fresh_postgres()


def fresh_postgres() -> Iterator[str]:
    """Yield the URL of a new, empty PostgreSQL database, and drop it afterwards (skips without a server)."""
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"set {PG_ENV} to run PostgreSQL tests")
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path}/ledger.sqlite"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each integration test runs on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def app() -> LedgerApp:
    """A ledger whose events live in this process only (unit tests)."""
    return LedgerApp("memory:")


def idn(n: int, born: str = "19800101") -> str:
    """A valid identity number (Luzhou district region code) for test person ``n``."""
    day = date(int(born[:4]), int(born[4:6]), int(born[6:])) + timedelta(days=n // 1000)
    first17 = f"140403{day:%Y%m%d}{n % 1000:03d}"
    return first17 + id_check_char(first17)


D = date(2023, 1, 5)
JAN = Month(2023, 1)


def seed_case(
    app: LedgerApp,
    case_no: str = "U1",
    household: str = "H1",
    persons: int = 2,
    amount_fen: int = 120000,
    first: Month = JAN,
    approve: bool = True,
    standard_fen: int = 76000,
) -> None:
    """A standard, a household and (optionally approved) urban dibao case: the common test setup."""
    from ledger.domain import standard_id

    uow = app.unit_of_work()
    if uow.find(standard_id(Programme.URBAN_DIBAO, Area.URBAN)) is None:
        app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, standard_fen, Month(2022, 1), operator="li.na", effective=date(2022, 1, 1))
    base = sum(map(ord, household)) * 7 % 900
    members = [
        {"id_number": idn(base + i), "name": f"Person {i}", "relation": "head" if i == 0 else "child", "flags": ["ill"] if i == 0 else []}
        for i in range(persons)
    ]
    app.register_household(number=household, community="Dongjie", area=Area.URBAN, members=members,
                           payee_account="6222020000000001", operator="zhang.wei", effective=D)
    app.apply(case_no=case_no, household_no=household, programme=Programme.URBAN_DIBAO, channel=Channel.WINDOW,
              operator="zhang.wei", effective=D)
    app.verify(case_no, income_fen=20000, assets_ok=True, verifier="zhang.wei", valid_until=date(2023, 12, 31),
               operator="zhang.wei", effective=D)
    if approve:
        app.approve(case_no, amount_fen=amount_fen, first_month=first, operator="li.na", effective=D)
