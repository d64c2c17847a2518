"""A payroll's plain first issues, written straight to stored events.

A payroll pays most of a caseload a plain month: the first issue of the month, no offset,
the amount and persons the read models hold (:class:`projections.payroll.ReadModelPayroll`
decides which). :meth:`ledger.domain.Payment.first_issue_event` builds that event as a
domain event, which the mapper then turns into a stored event field by field. At a
province's million payments a month that was a quarter of the payroll's time, so
:class:`FirstIssues` writes the stored event directly: the parts every payment of a run
shares (operator, effective date, batch, kind) are encoded once, the rest is put into
that template.

The stored bytes must be exactly what the mapper writes for the domain event (they are
chained and hashed, and read back by the library). So every writer checks itself: the
first payment it writes is also built as a domain event and stored through the mapper,
and the two must be byte for byte the same, or the writer refuses to go on
(``tests/unit/test_issues.py`` compares them over many generated payments too).
"""

from __future__ import annotations

from datetime import date, datetime
from json.encoder import encode_basestring as _encode_str  # type: ignore[attr-defined]
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from ledger.domain import Payment, check_first_issue, payment_id, payment_ref
from ledger.values import Area, Month, Programme

ISSUED_TOPIC = get_topic(Payment.Issued)

#: The fields of a first issue's stored state, in the order the mapper writes them.
STATE_FIELDS = (
    "timestamp", "originator_topic", "operator", "effective", "ref", "case_no", "programme", "area", "household_no",
    "month", "issue_no", "kind", "gross_fen", "offset_fen", "amount_fen", "persons", "payee_name", "payee_account",
    "batch",
)


class FirstIssues:
    """Writes the stored events of one payroll run's plain first issues (see the module).

    ``stored`` returns the stored event and the payment's reference; ``totals`` holds the
    run's totals by programme and area, as :func:`ledger.finance.add_payment_totals` counts them.
    """

    def __init__(self, mapper: Mapper[Any], *, batch: str, operator: str, effective: date) -> None:
        self.mapper = mapper
        self.batch, self.operator, self.effective = batch, operator, effective
        encode = mapper.transcoder.encoder.encode  # type: ignore[attr-defined]
        self._encode = encode
        topic = get_topic(Payment)
        self._after_time = (
            f'"}},"originator_topic":{_encode_str(topic)},"operator":{_encode_str(operator)},'
            f'"effective":{encode(effective)},"ref":'
        )
        self._tail = f',"batch":{_encode_str(batch)}}}'
        self._programmes: dict[Programme, str] = {}
        self._areas: dict[Area, str] = {}
        self._months: dict[Month, str] = {}
        # A mapper that compresses or encrypts writes other bytes: then every payment goes through it.
        self._checked = False
        self._template = mapper.compressor is None and mapper.cipher is None
        self.totals: dict[str, dict[str, int]] = {}

    def _month(self, month: Month) -> str:
        found = self._months.get(month)
        if found is None:
            found = self._months[month] = self._encode(month)
        return found

    def stored(
        self, *, case_no: str, household_no: str, programme: Programme, area: Area, month: Month, amount_fen: int,
        persons: int, payee_name: str, payee_account: str,
    ) -> tuple[StoredEvent, str]:
        """The stored event of the month's first issue to a case, and its reference (``P-case-yyyymm-1``)."""
        facts = dict(case_no=case_no, household_no=household_no, programme=programme, area=area, month=month,
                     amount_fen=amount_fen, persons=persons, payee_name=payee_name, payee_account=payee_account)
        if not self._checked or not self._template or not _plain_text(case_no, household_no, payee_name, payee_account):
            return self._through_mapper(**facts)
        return self.written_at(Payment.Issued.create_timestamp(), **facts)

    def written_at(
        self, timestamp: datetime, *, case_no: str, household_no: str, programme: Programme, area: Area, month: Month,
        amount_fen: int, persons: int, payee_name: str, payee_account: str,
    ) -> tuple[StoredEvent, str]:
        """:meth:`stored` with the recorded time given, always through the template (the self-check and the tests)."""
        check_first_issue(case_no, programme, month, amount_fen, persons)
        month_json = self._month(month)
        prog = self._programmes.get(programme)
        if prog is None:
            prog = self._programmes[programme] = self._encode(programme)
        area_json = self._areas.get(area)
        if area_json is None:
            area_json = self._areas[area] = self._encode(area)
        ref = payment_ref(case_no, month, 1)
        amount = int.__repr__(amount_fen)
        state = "".join((
            '{"timestamp":{"_type_":"datetime_iso","_data_":"', timestamp.isoformat(),
            self._after_time, _encode_str(ref), ',"case_no":', _encode_str(case_no), ',"programme":', prog,
            ',"area":', area_json, ',"household_no":', _encode_str(household_no), ',"month":', month_json,
            ',"issue_no":1,"kind":"regular","gross_fen":', amount, ',"offset_fen":0,"amount_fen":', amount,
            ',"persons":', int.__repr__(persons), ',"payee_name":', _encode_str(payee_name),
            ',"payee_account":', _encode_str(payee_account), self._tail,
        ))
        self._count(programme, area, amount_fen, persons)
        return StoredEvent(
            originator_id=payment_id(case_no, month, 1), originator_version=Payment.INITIAL_VERSION, topic=ISSUED_TOPIC,
            state=state.encode("utf8"),
        ), ref

    def _through_mapper(self, **facts: Any) -> tuple[StoredEvent, str]:
        """Through the domain event and the mapper. The first payment is also written by the template,
        and the two must agree byte for byte (else the writer refuses to go on)."""
        e = Payment.first_issue_event(batch=self.batch, operator=self.operator, effective=self.effective, **facts)
        stored = self.mapper.to_stored_event(e)
        if not self._checked and self._template:
            before = {k: dict(v) for k, v in self.totals.items()}
            mine, _ = self.written_at(e.timestamp, **facts)
            self.totals = before
            if (mine.state, mine.originator_id, mine.originator_version, mine.topic) != (
                stored.state, stored.originator_id, stored.originator_version, stored.topic
            ):
                raise RuntimeError(
                    "the payroll's writer of first issues does not write what the event store's mapper writes:\n"
                    f"  mapper: {stored.state!r}\n  writer: {mine.state!r}"
                )
            self._checked = True
        self._count(e.programme, e.area, e.amount_fen, e.persons)
        return stored, e.ref

    def _count(self, programme: Programme, area: Area, amount_fen: int, persons: int) -> None:
        key = f"{programme.value}/{area.value}"
        mine = self.totals.get(key)
        if mine is None:
            mine = self.totals[key] = {"payments": 0, "gross_fen": 0, "offset_fen": 0, "amount_fen": 0, "persons": 0}
        mine["payments"] += 1
        mine["gross_fen"] += amount_fen
        mine["amount_fen"] += amount_fen
        mine["persons"] += persons


def _plain_text(*values: Any) -> bool:
    return all(type(v) is str for v in values)
