"""The ledger's JSON codec reads and writes exactly what the library's transcoder does."""

from __future__ import annotations

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Mapper

from ledger.application import LedgerApp
from ledger.codec import LedgerTranscoder
from ledger.transcodings import register_all
from tests.history import build_history


def _stock() -> Mapper:
    transcoder = JSONTranscoder()
    Application.register_transcodings(None, transcoder)  # type: ignore[arg-type]
    register_all(transcoder)
    return Mapper(transcoder=transcoder)


def test_every_event_of_a_history_reads_and_writes_as_the_library_does() -> None:
    app = LedgerApp("memory:")
    build_history(app, cases=40, months=12)
    assert isinstance(app.mapper.transcoder, LedgerTranscoder)
    stock = _stock()
    notes = app.recorder.select_notifications(start=1, limit=100_000)
    topics = {n.topic for n in notes}
    assert {"ledger.domain:Payment.Issued", "ledger.domain:Payment.Returned", "ledger.domain:Case.Suspended",
            "ledger.domain:Household.Registered", "ledger.domain:Standard.Set"} <= topics
    for n in notes:
        ours, theirs = app.mapper.to_domain_event(n), stock.to_domain_event(n)
        assert type(ours) is type(theirs)
        assert vars(ours) == vars(theirs)
        assert [type(v) for v in vars(ours).values()] == [type(v) for v in vars(theirs).values()]
        assert app.mapper.to_stored_event(ours).state == stock.to_stored_event(theirs).state == n.state


def test_nested_values_and_text_that_needs_escaping() -> None:
    ours, theirs = LedgerTranscoder(), JSONTranscoder()
    for t in (ours, theirs):
        Application.register_transcodings(None, t)  # type: ignore[arg-type]
        register_all(t)
    from datetime import date, datetime, timezone

    from ledger.values import Area, Month

    state = {
        "text": 'quote " backslash \\ newline \n 中文 \u2028 tab \t',
        "none": None, "yes": True, "no": False, "n": -12, "big": 10**20,
        "month": Month(2024, 2), "day": date(2024, 2, 29), "area": Area.RURAL,
        "when": datetime(2024, 2, 29, 1, 2, 3, 4, tzinfo=timezone.utc),
        "nested": {"months": [Month(2024, 1), {"day": date(2023, 1, 1)}], "empty": {}},
        "list": [1, "a", None, [Area.URBAN]],
    }
    assert ours.encode(state) == theirs.encode(state)
    assert ours.decode(ours.encode(state)) == theirs.decode(theirs.encode(state)) == state
    # The same value written twice comes back equal, and cached values are immutable ones.
    assert ours.decode(ours.encode(state)) == state


def test_copy_text_escapes_what_postgresql_copy_reads_specially() -> None:
    from ledger.persistence import copy_text

    assert copy_text("plain 中文 text") == "plain 中文 text"
    assert copy_text('a\\b\tc\nd\re "q"') == 'a\\\\b\\tc\\nd\\re "q"'
