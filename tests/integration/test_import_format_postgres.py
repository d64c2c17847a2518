"""Imported events are stored byte for byte as recorded (tests/unit/test_import_format.py), on PostgreSQL."""

from __future__ import annotations

import pytest

from ledger.application import LedgerApp
from tests.unit.test_import_format import TODAY, assert_stored_as_recorded

pytestmark = pytest.mark.postgres


def test_imported_events_are_stored_byte_for_byte_on_postgresql(postgres_url: str) -> None:
    app = LedgerApp(postgres_url, clock=lambda: TODAY)
    try:
        assert_stored_as_recorded(app)
    finally:
        app.close()
