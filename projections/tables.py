"""The read-model tables, in the same database as the events.

Months are stored as integer indexes (``year * 12 + month - 1``) so that periods can
be compared in SQL; recorded times are stored beside effective times so that every
figure can also be asked "as known at" a past moment.

Case periods are bitemporal: a row says "from month A to month B the case was S,
paid X for N persons", and ``known_from``/``known_to`` say when the ledger held that
view. A retroactive decision closes the rows it changes and opens new ones.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    event,
    select,
)
from sqlalchemy_utils.types.uuid import UUIDType

metadata = MetaData()

#: The ``info`` of an index that no catch-up reads (only the queries do): a catch-up that fills the
#: read models from empty drops these and builds each once at its end, sorted, instead of inserting
#: every row's entry at a random place (see :func:`deferred_indexes`, docs/decisions/0018).
DEFERRED = {"deferred": True}

#: One row: the shape of the read models it holds (see :func:`schema_version`).
schema = Table("rm_schema", MetaData(), Column("version", String(64), primary_key=True))

BIG = BigInteger().with_variant(Integer(), "sqlite")
#: ``to_idx`` of a period that has no end.
OPEN_END = 10**7

households = Table(
    "rm_household",
    metadata,
    Column("household_no", String(64), primary_key=True),
    Column("household_id", String(32), nullable=False, unique=True),
    Column("community", String(200), nullable=False),
    Column("area", String(16), nullable=False),
    Column("payee_name", String(200), nullable=False),
    Column("payee_account", String(64), nullable=False),
    Column("registered_on", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

members = Table(
    "rm_member",
    metadata,
    Column("household_no", String(64), primary_key=True),
    Column("id_number", String(18), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("flags", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("since", Date, nullable=False),
    Column("until", Date),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("rm_member_by_id", members.c.id_number, info=DEFERRED)

cases = Table(
    "rm_case",
    metadata,
    Column("case_no", String(64), primary_key=True),
    Column("case_id", String(32), nullable=False, unique=True),
    Column("household_no", String(64), nullable=False),
    Column("community", String(200), nullable=False),
    Column("programme", String(16), nullable=False),
    Column("area", String(16), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("single_person", String(18)),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("applied_on", Date, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    Column("first_idx", Integer),
    Column("amount_fen", BIG, nullable=False),
    Column("persons", Integer, nullable=False),
    Column("persons_at_approval", Integer, nullable=False),
    Column("covered", Text, nullable=False),
    Column("verifications", Integer, nullable=False),
    Column("approved_at", DateTime(timezone=True)),
    Column("grant_type", String(64)),
    Column("grant_paid_on", Date),
    Column("grant_paid_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("rm_case_by_household", cases.c.household_no)
Index("rm_case_by_first", cases.c.programme, cases.c.first_idx, info=DEFERRED)

changes = Table(
    "rm_case_change",
    metadata,
    Column("case_no", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("from_idx", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_fen", BIG, nullable=False),
    Column("covered", Text, nullable=False),
)

periods = Table(
    "rm_case_period",
    metadata,
    Column("id", BIG, primary_key=True, autoincrement=True),
    Column("case_no", String(64), nullable=False),
    Column("household_no", String(64), nullable=False),
    Column("programme", String(16), nullable=False),
    Column("area", String(16), nullable=False),
    Column("from_idx", Integer, nullable=False),
    Column("to_idx", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount_fen", BIG, nullable=False),
    Column("persons", Integer, nullable=False),
    Column("known_from", DateTime(timezone=True), nullable=False),
    Column("known_to", DateTime(timezone=True)),
)
Index("rm_period_by_case", periods.c.case_no)
Index("rm_period_by_month", periods.c.from_idx, periods.c.to_idx, info=DEFERRED)

verifications = Table(
    "rm_verification",
    metadata,
    Column("case_no", String(64), primary_key=True),
    Column("no", Integer, primary_key=True),
    Column("income_fen", BIG, nullable=False),
    Column("assets_ok", Boolean, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("verifier", String(64), nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("verified_on", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

payments = Table(
    "rm_payment",
    metadata,
    # Keyed by the issue's log position, so that a month's payments are appended to the table, not
    # scattered through it by reference (on SQLite the key orders the rows themselves).
    Column("issue_position", BIG, primary_key=True, autoincrement=False),
    Column("ref", String(100), nullable=False),  # unique: it is made of the three columns of rm_payment_by_case
    Column("payment_id", String(32), nullable=False),  # found through the events table: see payments_by_id
    Column("case_no", String(64), nullable=False),
    Column("household_no", String(64), nullable=False),
    Column("programme", String(16), nullable=False),
    Column("area", String(16), nullable=False),
    Column("month_idx", Integer, nullable=False),
    Column("issue_no", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("gross_fen", BIG, nullable=False),
    Column("offset_fen", BIG, nullable=False),
    Column("amount_fen", BIG, nullable=False),
    # Offset released since the issue (Payment.OffsetReleased): the issue's own gross and offset are
    # gross_fen + released_fen and offset_fen + released_fen, so the row alone is the issue's line.
    Column("released_fen", BIG, nullable=False),
    Column("persons", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("payee_name", String(200), nullable=False),
    Column("payee_account", String(64), nullable=False),
    Column("batch", String(64), nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # With issue_position, the issue's line in a case's timeline (see queries.case_timeline).
    Column("issued_by", String(64), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
    Column("returned_at", DateTime(timezone=True)),
    Column("return_reason", Text),
)
# A reference is P-{case}-{month}-{issue}: this one index keeps references unique and serves a case's payments.
Index("rm_payment_by_case", payments.c.case_no, payments.c.month_idx, payments.c.issue_no, unique=True, info=DEFERRED)
Index("rm_payment_by_month", payments.c.month_idx, payments.c.programme, info=DEFERRED)

#: Per case, the gross of its payments not returned, of every month: the payroll's arrears check
#: reads this instead of summing every payment the case ever had (:func:`projections.payroll.candidates`).
#: A catch-up that fills the read models from empty leaves it, and fills it at its end from
#: ``rm_payment`` with one GROUP BY, when it builds the deferred indexes (docs/decisions/0019).
delivered = Table(
    "rm_delivered",
    metadata,
    Column("case_no", String(64), primary_key=True),
    Column("gross_fen", BIG, nullable=False),
    sqlite_with_rowid=False,
)
# Each payroll rewrites most rows: room in every page lets PostgreSQL keep the new version beside the
# old one (a heap-only update, no new index entry).
event.listen(delivered, "after_create", DDL("ALTER TABLE rm_delivered SET (fillfactor = 50)").execute_if(dialect="postgresql"))

#: Add ``delta`` to each case's delivered total (both databases' upsert).
ADD_DELIVERED = (
    "INSERT INTO rm_delivered (case_no, gross_fen) VALUES ({mark}, {mark}) "
    "ON CONFLICT (case_no) DO UPDATE SET gross_fen = rm_delivered.gross_fen + excluded.gross_fen"
)
#: Fill ``rm_delivered`` from the payments (after a fill from empty): a row for every case paid at all,
#: as the upserts leave it.
FILL_DELIVERED = (
    "INSERT INTO rm_delivered (case_no, gross_fen) "
    "SELECT case_no, SUM(CASE WHEN status <> 'returned' THEN gross_fen ELSE 0 END) FROM rm_payment GROUP BY case_no"
)

paid_months = Table(
    "rm_paid_month",
    metadata,
    Column("programme", String(16), primary_key=True),
    Column("area", String(16), primary_key=True),
    Column("month_idx", Integer, primary_key=True),
    Column("amount_fen", BIG, nullable=False),  # cash of the net payments for the month
    Column("persons", BIG, nullable=False),
    Column("payments", BIG, nullable=False),
)

#: The caseload kept as steps: a group's count on month M is the sum of its steps up to M
#: (see :mod:`projections.counts`). ``grp`` is a monthly programme or ``dibao`` (urban and
#: rural together, a household counted once).
caseload_steps = Table(
    "rm_caseload_step",
    metadata,
    Column("grp", String(16), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("month_idx", Integer, primary_key=True),
    Column("households", BIG, nullable=False),
    Column("persons", BIG, nullable=False),
    Column("cases", BIG, nullable=False),
)

#: Newly added cases kept as counts over (lo, hi) month pairs: the new households of a
#: period [a, b] are the sum over rows with a <= lo and hi <= b (see :mod:`projections.counts`).
new_counts = Table(
    "rm_new_count",
    metadata,
    Column("programme", String(16), primary_key=True),
    Column("lo_idx", Integer, primary_key=True),
    Column("hi_idx", Integer, primary_key=True),
    Column("households", BIG, nullable=False),
    Column("persons", BIG, nullable=False),
)

overpayments = Table(
    "rm_overpayment",
    metadata,
    Column("position", BIG, primary_key=True, autoincrement=False),
    Column("case_no", String(64), nullable=False),
    Column("month_idx", Integer, nullable=False),
    Column("amount_fen", BIG, nullable=False),  # established > 0, cancelled < 0
    Column("cause", Text, nullable=False),
    Column("effective", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("rm_overpayment_by_case", overpayments.c.case_no)

recoveries = Table(
    "rm_recovery",
    metadata,
    Column("position", BIG, primary_key=True, autoincrement=False),
    Column("case_no", String(64), nullable=False),
    Column("amount_fen", BIG, nullable=False),  # recovered > 0, reversed < 0
    Column("method", String(16), nullable=False),
    Column("reference", String(100), nullable=False),
    Column("effective", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("rm_recovery_by_case", recoveries.c.case_no)

batches = Table(
    "rm_batch",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("batch_id", String(32), nullable=False, unique=True),
    Column("month_idx", Integer, nullable=False),
    Column("programme", String(16)),
    Column("run_no", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_by", String(64), nullable=False),
    Column("approved_by", String(64)),
    Column("payments", Integer, nullable=False),
    Column("totals", Text, nullable=False),
    Column("exports", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

bank_lines = Table(
    "rm_bank_line",
    metadata,
    Column("file_id", String(32), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("file_name", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("ref", String(100), nullable=False),
    Column("amount_fen", BIG, nullable=False),
    Column("result", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("problem", Text, nullable=False),
    Column("resolved", Text),
    Column("resolved_at", DateTime(timezone=True)),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
)
Index("rm_bank_line_by_ref", bank_lines.c.ref)

standards = Table(
    "rm_standard",
    metadata,
    Column("standard_id", String(32), nullable=False),
    Column("programme", String(16), primary_key=True),
    Column("area", String(16), primary_key=True),
    Column("from_idx", Integer, primary_key=True),
    Column("position", BIG, primary_key=True),
    Column("amount_fen", BIG, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

#: Every event but a payment's issue has a line here; an issue's line is its row of ``rm_payment``
#: (a mature ledger's log is mostly issues: one copy of each is enough).
timeline = Table(
    "rm_event",
    metadata,
    Column("position", BIG, primary_key=True, autoincrement=False),
    Column("kind", String(64), nullable=False),
    Column("subject", String(16), nullable=False),
    Column("subject_key", String(100), nullable=False),
    Column("case_no", String(64)),
    Column("household_no", String(64)),
    Column("effective", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("operator", String(64), nullable=False),
)
Index("rm_event_by_case", timeline.c.case_no, info=DEFERRED)
Index("rm_event_by_household", timeline.c.household_no, info=DEFERRED)

#: The ledger's events table, only read here: a timeline line's business fields are those of the
#: event stored at its position (not a copy of them), see :func:`with_detail`. Its name is the
#: recorder's (checked when the read models are opened: projections.runner.Projections).
stored_events = Table(
    "ledger_events",
    MetaData(),
    Column("id", BIG, primary_key=True),
    Column("originator_id", UUIDType(), nullable=False),
    Column("originator_version", BIG, nullable=False),
    Column("state", LargeBinary, nullable=False),
)


def payments_by_id(payment_ids: list[UUID]) -> Select[Any]:
    """The payment rows of these payment aggregates, found by their issue (each payment's first event)
    through the events table's own index, so that the payments need no index of their random ids."""
    ev = stored_events
    return (
        select(payments)
        .join(ev, ev.c.id == payments.c.issue_position)
        .where(ev.c.originator_id.in_(payment_ids), ev.c.originator_version == 1)
    )


def with_detail(*columns: Any) -> Select[Any]:
    """SELECT the given columns of the timeline and, as ``detail``, the stored JSON of each line's event."""
    return select(*columns, stored_events.c.state.label("detail")).select_from(
        timeline.join(stored_events, stored_events.c.id == timeline.c.position)
    )


def deferred_indexes() -> list[Index]:
    """The indexes a catch-up from empty builds at its end (marked :data:`DEFERRED`)."""
    return [i for table in metadata.sorted_tables for i in sorted(table.indexes, key=lambda i: i.name or "")
            if i.info.get("deferred")]


def schema_version() -> str:
    """A digest of every read-model table's columns and indexes: changes when their shape does."""
    import hashlib

    parts = []
    for table in metadata.sorted_tables:
        cols = ",".join(f"{c.name}:{c.type!r}:{c.nullable}:{c.primary_key}" for c in table.columns)
        idx = ",".join(sorted(f"{i.name}({','.join(c.name for c in i.columns)})" for i in table.indexes))
        parts.append(f"{table.name}[{cols}][{idx}]")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
