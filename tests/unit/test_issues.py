"""The payroll's writer of first issues writes what the event store's mapper writes, byte for byte."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import Mapper

from ledger.application import LedgerApp
from ledger.domain import Payment
from ledger.errors import InvalidInput
from ledger.issues import STATE_FIELDS, FirstIssues
from ledger.values import MAX_FEN, Area, Month, Programme

APP = LedgerApp("memory:")
MONTHLY = [p for p in Programme if p.is_monthly]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)  # any text JSON can hold


def _both(writer: FirstIssues, when: datetime, **facts: object) -> tuple[bytes, bytes]:
    mine, ref = writer.written_at(when, **facts)  # type: ignore[arg-type]
    e = Payment.first_issue_event(  # type: ignore[arg-type]
        batch=writer.batch, operator=writer.operator, effective=writer.effective, **facts)
    object.__setattr__(e, "__dict__", {**vars(e), "timestamp": when})
    theirs = APP.mapper.to_stored_event(e)
    assert (mine.originator_id, mine.originator_version, mine.topic) == (
        theirs.originator_id, theirs.originator_version, theirs.topic)
    assert ref == e.ref
    return mine.state, theirs.state


@settings(max_examples=300, deadline=None)
@given(
    case_no=text, household_no=text, payee_name=text, payee_account=text, operator=text, batch=text,
    programme=st.sampled_from(MONTHLY), area=st.sampled_from(list(Area)),
    month=st.builds(Month, st.integers(2000, 2099), st.integers(1, 12)),
    amount_fen=st.integers(1, MAX_FEN), persons=st.integers(1, 30),
    effective=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    when=st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)),
)
def test_the_writer_writes_the_mappers_bytes(
    case_no: str, household_no: str, payee_name: str, payee_account: str, operator: str, batch: str,
    programme: Programme, area: Area, month: Month, amount_fen: int, persons: int, effective: date, when: datetime,
) -> None:
    writer = FirstIssues(APP.mapper, batch=batch, operator=operator, effective=effective)
    mine, theirs = _both(
        writer, when.replace(tzinfo=timezone.utc), case_no=case_no, household_no=household_no, programme=programme,
        area=area, month=month, amount_fen=amount_fen, persons=persons, payee_name=payee_name,
        payee_account=payee_account,
    )
    assert mine == theirs


def test_a_run_of_payments_and_its_totals() -> None:
    writer = FirstIssues(APP.mapper, batch="B-202403-all-1", operator="zhao.min", effective=date(2024, 3, 15))
    written = []
    for n in range(5):
        stored, ref = writer.stored(
            case_no=f"U{n}", household_no=f"H{n}", programme=Programme.URBAN_DIBAO if n % 2 else Programme.RURAL_DIBAO,
            area=Area.URBAN if n % 2 else Area.RURAL, month=Month(2024, 3), amount_fen=10_000 * (n + 1), persons=n + 1,
            payee_name="周敏 \"Zhou\"", payee_account="6222",
        )
        e = APP.mapper.to_domain_event(stored)
        assert isinstance(e, Payment.Issued)
        assert (e.ref, e.case_no, e.amount_fen, e.gross_fen, e.offset_fen, e.persons, e.issue_no, e.kind) == (
            ref, f"U{n}", 10_000 * (n + 1), 10_000 * (n + 1), 0, n + 1, 1, "regular")
        assert e.timestamp.tzinfo is not None and abs(e.timestamp - datetime.now(timezone.utc)) < timedelta(minutes=1)
        assert list(json.loads(stored.state)) == list(STATE_FIELDS)
        written.append(stored)
    assert writer.totals == {
        "rural-dibao/rural": {"payments": 3, "gross_fen": 90_000, "offset_fen": 0, "amount_fen": 90_000, "persons": 9},
        "urban-dibao/urban": {"payments": 2, "gross_fen": 60_000, "offset_fen": 0, "amount_fen": 60_000, "persons": 6},
    }


def test_the_writer_refuses_to_go_on_when_it_disagrees_with_the_mapper() -> None:
    writer = FirstIssues(APP.mapper, batch="B-202403-all-1", operator="zhao.min", effective=date(2024, 3, 15))
    writer._tail = ',"batch":"another"}'  # a template out of step with the event class
    with pytest.raises(RuntimeError, match="does not write what the event store's mapper writes"):
        writer.stored(case_no="U1", household_no="H1", programme=Programme.URBAN_DIBAO, area=Area.URBAN,
                      month=Month(2024, 3), amount_fen=1000, persons=1, payee_name="a", payee_account="1")
    assert writer.totals == {}


def test_a_mapper_that_compresses_writes_every_payment() -> None:
    mapper = Mapper(transcoder=APP.mapper.transcoder, compressor=ZlibCompressor())
    writer = FirstIssues(mapper, batch="B-202403-all-1", operator="zhao.min", effective=date(2024, 3, 15))
    for n in range(3):
        stored, ref = writer.stored(case_no=f"U{n}", household_no="H1", programme=Programme.URBAN_DIBAO,
                                    area=Area.URBAN, month=Month(2024, 3), amount_fen=1000, persons=1,
                                    payee_name="a", payee_account="1")
        e = mapper.to_domain_event(stored)
        assert isinstance(e, Payment.Issued) and e.ref == ref == f"P-U{n}-202403-1"
    assert writer.totals["urban-dibao/urban"]["payments"] == 3


@pytest.mark.parametrize("facts, message", [
    (dict(programme=Programme.TEMPORARY), "not paid monthly"),
    (dict(amount_fen=0), "must be"),
    (dict(amount_fen=MAX_FEN + 1), "must be"),
    (dict(persons=0), "covers no person"),
])
def test_the_writer_keeps_the_rules_of_a_first_issue(facts: dict[str, object], message: str) -> None:
    writer = FirstIssues(APP.mapper, batch="B-202403-all-1", operator="zhao.min", effective=date(2024, 3, 15))
    base: dict[str, object] = dict(case_no="U1", household_no="H1", programme=Programme.URBAN_DIBAO, area=Area.URBAN,
                                   month=Month(2024, 3), amount_fen=1000, persons=1, payee_name="a", payee_account="1")
    for _ in range(2):  # the first payment (through the mapper) and the later ones (the template)
        with pytest.raises(InvalidInput, match=message):
            writer.stored(**{**base, **facts})  # type: ignore[arg-type]
        writer.stored(**base)  # type: ignore[arg-type]
