"""The account invariant of tests/unit/test_invariant.py, on a real PostgreSQL database.

Each example gets a database of its own, so fewer examples run here than in memory.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from projections.runner import Projections
from tests.conftest import PG_ENV
from tests.unit.test_invariant import History, check_read_models, histories, new_ledger

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_the_account_balances_on_postgresql(ops: list[tuple[Any, ...]]) -> None:
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"set {PG_ENV} to run PostgreSQL tests")
    name = f"ledger_inv_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        app = new_ledger(make_url(server).set(database=name).render_as_string(hide_password=False))
        history = History(app, Projections(app))
        for op in ops:
            history.play(op)
        check_read_models(history)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
