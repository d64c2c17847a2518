"""The ledger's read models and the projection that keeps them up to date.

:class:`LedgerView` is a tracking recorder: it writes the read-model rows of a page
of events and its tracking position in one transaction, so a page is applied exactly
once even if the process dies part-way (the transaction then rolls back whole).

A page is applied in memory first (rows touched by the page are loaded once, changed
by each event in log order, and written back with a few set-based statements), which
keeps a rebuild fast without giving up the per-event history that "as known at"
queries need: every change of a case's periods is recorded with the recorded time of
the event that caused it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.recorders import SQLAlchemyTrackingRecorder
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, DropIndex

from ledger.domain import BankFile, Case, Change, Household, Payment, PayrollBatch, Seal, Standard, fold_periods
from ledger.persistence import copy_text
from ledger.values import Month
from projections import counts
from projections import tables as t

UPSTREAM = "Ledger"


def _sqlite_datetime(v: Any) -> Any:
    # Stored exactly as SQLAlchemy's SQLite DateTime stores it: the UTC wall time as text.
    if v is None or isinstance(v, str):
        return v
    if v.tzinfo is timezone.utc and v.microsecond:  # the recorded times of events: the common case
        return v.isoformat(" ")[:-6]
    if v.tzinfo is not None:
        v = v.astimezone(timezone.utc).replace(tzinfo=None)
    text = v.isoformat(" ")
    return text if v.microsecond else text + ".000000"


def _sqlite_date(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v


def _sqlite_bool(v: Any) -> Any:
    return int(v) if isinstance(v, bool) else v


def _converters(table: Any) -> list[tuple[str, Callable[[Any], Any]]]:
    out = []
    for c in table.columns:
        kind = type(c.type).__name__
        if kind == "DateTime":
            out.append((c.name, _sqlite_datetime))
        elif kind == "Date":
            out.append((c.name, _sqlite_date))
        elif kind == "Boolean":
            out.append((c.name, _sqlite_bool))
    return out


_CONVERTERS: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}


def _copy_value(v: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if v is None:
        return "\\N"
    t = type(v)
    if t is str:
        return copy_text(v)
    if t is int:
        return int.__repr__(v)
    if t is bool:
        return "t" if v else "f"
    if t is datetime or t is date:
        return v.isoformat()
    return copy_text(str(v))


def _copy_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: the rows in one COPY, many times faster than INSERTs for a page of events."""
    cols = [c.name for c in table.columns if c.name in rows[0]]
    lines = ["\t".join([_copy_value(r[c]) for c in cols]) for r in rows]
    lines.append("")
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f'COPY "{table.name}" ({", ".join(cols)}) FROM STDIN', io.StringIO("\n".join(lines)))
    finally:
        cursor.close()


def insert_many(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows straight through the driver (COPY on PostgreSQL), the hot path of a rebuild."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        _copy_rows(session, table, rows)
        return
    if conn.dialect.name != "sqlite":
        session.execute(insert(table), rows)
        return
    convs = _CONVERTERS.get(table.name)
    if convs is None:
        convs = _CONVERTERS[table.name] = _converters(table)
    cols = [c.name for c in table.columns if c.name in rows[0]]
    convs = [(c, f) for c, f in convs if c in rows[0]]
    sql = f'INSERT INTO "{table.name}" ({", ".join(cols)}) VALUES ({", ".join(":" + c for c in cols)})'
    if convs:
        data = []
        for r in rows:
            r = r.copy()
            for c, f in convs:
                r[c] = f(r[c])
            data.append(r)
    else:
        data = rows
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(sql, data)
    cursor.close()


class _Rows:
    """Rows of one table touched by a page: loaded once, changed in memory, written back together."""

    def __init__(
        self, session: Session, table: Any, key: Sequence[str], id_column: str | None = None,
        by_ids: Callable[[list[UUID]], Any] | None = None,
    ) -> None:
        """``by_ids`` selects the rows of many aggregate ids, where the id column has no index of its own."""
        self.session = session
        self.table = table
        self.key = tuple(key)
        self.id_column = id_column
        self.by_ids = by_ids or (lambda ids: select(table).where(table.c[id_column].in_([i.hex for i in ids])))
        self.by_id: dict[str, tuple[Any, ...]] = {}
        self.rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.in_db: set[tuple[Any, ...]] = set()
        self.dirty: set[tuple[Any, ...]] = set()
        self._all_loaded = False

    def get(self, *key: Any) -> dict[str, Any] | None:
        if key in self.rows:
            return self.rows[key]
        cond = [self.table.c[k] == v for k, v in zip(self.key, key)]
        found = self.session.execute(select(self.table).where(*cond)).mappings().first()
        if found is None:
            return None
        return self._loaded(dict(found))

    def _loaded(self, row: dict[str, Any]) -> dict[str, Any]:
        key = tuple(row[k] for k in self.key)
        self.rows[key] = row
        self.in_db.add(key)
        if self.id_column:
            self.by_id[row[self.id_column]] = key
        return row

    def load_all(self) -> None:
        """Load every row of a small table (once per page): its keys are then known without a query each."""
        if self._all_loaded:
            return
        for found in self.session.execute(select(self.table)).mappings():
            key = tuple(found[k] for k in self.key)
            if key not in self.rows:
                self._loaded(dict(found))
        self._all_loaded = True

    def prefetch_ids(self, ids: list[UUID]) -> None:
        """Load the rows of many aggregates with one query per 500 ids."""
        assert self.id_column is not None
        wanted = [i for i in dict.fromkeys(ids) if i.hex not in self.by_id]
        for i in range(0, len(wanted), 500):
            for found in self.session.execute(self.by_ids(wanted[i : i + 500])).mappings():
                self._loaded(dict(found))

    def touch_id(self, aggregate_id: Any) -> dict[str, Any]:
        """The row of an aggregate, found by its id, marked as changed."""
        hexid = aggregate_id.hex
        key = self.by_id.get(hexid)
        if key is None:
            assert self.id_column is not None
            found = self.session.execute(self.by_ids([aggregate_id])).mappings().first()
            if found is None:
                raise KeyError(f"{self.table.name}: no row for {hexid}")
            key = tuple(self._loaded(dict(found))[k] for k in self.key)
        self.dirty.add(key)
        return self.rows[key]

    def put(self, row: dict[str, Any]) -> dict[str, Any]:
        key = (row[self.key[0]],) if len(self.key) == 1 else tuple(row[k] for k in self.key)
        self.rows[key] = row
        self.dirty.add(key)
        if self.id_column:
            self.by_id[row[self.id_column]] = key
        return row

    def touch(self, *key: Any) -> dict[str, Any]:
        row = self.get(*key)
        if row is None:
            raise KeyError(f"{self.table.name}: no row {key}")
        self.dirty.add(key)
        return row

    def flush(self) -> None:
        if not self.dirty:
            return
        existing = [k for k in self.dirty if k in self.in_db]
        if existing:
            if len(self.key) == 1:
                self.session.execute(
                    delete(self.table).where(self.table.c[self.key[0]].in_([k[0] for k in existing]))
                )
            else:
                stmt = delete(self.table).where(
                    *[self.table.c[k] == bindparam(f"k_{k}") for k in self.key]
                )
                self.session.execute(stmt, [{f"k_{n}": v for n, v in zip(self.key, k)} for k in existing])
        insert_many(self.session, self.table, [self.rows[k] for k in self.dirty])
        self.in_db |= self.dirty
        self.dirty.clear()


class _Page:
    """The state of one page of events being applied inside one transaction."""

    def __init__(self, session: Session, keep_delivered: bool = True) -> None:
        self.session = session
        #: Per case, the change of its delivered total in this page (None: not kept, see rm_delivered).
        self.delivered: dict[str, int] | None = {} if keep_delivered else None
        self.households = _Rows(session, t.households, ["household_no"], "household_id")
        self.members = _Rows(session, t.members, ["household_no", "id_number"])
        self.cases = _Rows(session, t.cases, ["case_no"], "case_id")
        self.payments = _Rows(session, t.payments, ["issue_position"], "payment_id", t.payments_by_id)
        self.batches = _Rows(session, t.batches, ["ref"], "batch_id")
        self.paid_months = _Rows(session, t.paid_months, ["programme", "area", "month_idx"])
        self.bank_lines = _Rows(session, t.bank_lines, ["file_id", "line"])
        self.caseload_steps = _Rows(session, t.caseload_steps, ["grp", "status", "month_idx"])
        self.new_counts = _Rows(session, t.new_counts, ["programme", "lo_idx", "hi_idx"])
        self.period_households: set[str] = set()  # households whose case periods changed in this page
        self.approved_households: set[str] = set()  # households with a case approved in this page
        self.changes: dict[str, list[Change]] = {}
        self.open_periods: dict[str, list[dict[str, Any]]] = {}
        self.new_changes: list[dict[str, Any]] = []
        self.new_periods: list[dict[str, Any]] = []
        self.closed_periods: list[dict[str, Any]] = []
        self.verifications: list[dict[str, Any]] = []
        self.overpayments: list[dict[str, Any]] = []
        self.recoveries: list[dict[str, Any]] = []
        self.standards: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ case periods
    def prefetch(self, case_nos: list[str]) -> None:
        """Load the decisions and open periods of many cases with two queries."""
        wanted = [c for c in dict.fromkeys(case_nos) if c not in self.changes and (c,) in self.cases.in_db]
        for c in dict.fromkeys(case_nos):
            if c not in self.changes and (c,) not in self.cases.in_db:
                self.changes[c], self.open_periods[c] = [], []  # a case new in this page
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            for c in part:
                self.changes[c], self.open_periods[c] = [], []
            for r in self.session.execute(
                select(t.changes).where(t.changes.c.case_no.in_(part)).order_by(t.changes.c.case_no, t.changes.c.seq)
            ).mappings():
                self.changes[r["case_no"]].append(
                    Change(Month.from_index(r["from_idx"]), r["seq"], r["kind"], r["amount_fen"], tuple(json.loads(r["covered"])))
                )
            for r in self.session.execute(
                select(t.periods).where(t.periods.c.case_no.in_(part), t.periods.c.known_to.is_(None))
            ).mappings():
                self.open_periods[r["case_no"]].append(dict(r))

    def _load_changes(self, case_no: str) -> list[Change]:
        if case_no not in self.changes and (case_no,) not in self.cases.in_db:
            self.changes[case_no], self.open_periods[case_no] = [], []  # applied in this page
        if case_no not in self.changes:
            rows = self.session.execute(
                select(t.changes).where(t.changes.c.case_no == case_no).order_by(t.changes.c.seq)
            ).mappings()
            self.changes[case_no] = [
                Change(Month.from_index(r["from_idx"]), r["seq"], r["kind"], r["amount_fen"], tuple(json.loads(r["covered"])))
                for r in rows
            ]
            self.open_periods[case_no] = [
                dict(r)
                for r in self.session.execute(
                    select(t.periods).where(t.periods.c.case_no == case_no, t.periods.c.known_to.is_(None))
                ).mappings()
            ]
        return self.changes[case_no]

    def add_change(self, case: dict[str, Any], change: Change, when: datetime) -> None:
        case_no = case["case_no"]
        changes = self._load_changes(case_no)
        changes.append(change)
        self.period_households.add(case["household_no"])
        if change.kind == "approved":
            self.approved_households.add(case["household_no"])
        self.new_changes.append(
            {
                "case_no": case_no,
                "seq": change.seq,
                "from_idx": change.from_month.index,
                "kind": change.kind,
                "amount_fen": change.amount_fen,
                "covered": json.dumps(list(change.covered)),
            }
        )
        wanted = {
            (p.from_month.index, p.to_month.index if p.to_month else t.OPEN_END, p.status, p.amount_fen, len(p.covered))
            for p in fold_periods(changes)
        }

        def shape(r: dict[str, Any]) -> tuple[Any, ...]:
            return (r["from_idx"], r["to_idx"], r["status"], r["amount_fen"], r["persons"])

        keep = []
        for r in self.open_periods[case_no]:
            if shape(r) in wanted:
                keep.append(r)
                wanted.discard(shape(r))
            else:
                r["known_to"] = when
                if "id" in r:
                    self.closed_periods.append({"p_id": r["id"], "p_known_to": when})
        for from_idx, to_idx, status, amount, persons in sorted(wanted):
            row = {
                "case_no": case_no,
                "household_no": case["household_no"],
                "programme": case["programme"],
                "area": case["area"],
                "from_idx": from_idx,
                "to_idx": to_idx,
                "status": status,
                "amount_fen": amount,
                "persons": persons,
                "known_from": when,
                "known_to": None,
            }
            self.new_periods.append(row)
            keep.append(row)
        self.open_periods[case_no] = keep

    def _existing(self, households: set[str]) -> list[str]:
        """The households that may have rows in the database already (not registered in this page)."""
        return [h for h in households if (h,) in self.households.in_db or (h,) not in self.households.rows]

    def _count(self) -> None:
        """Replace the touched households' part of the kept counts (read the database before the page is written)."""
        if self.period_households:
            self._add(self.caseload_steps, self._caseload_steps(), ("households", "persons", "cases"))
        if self.approved_households:
            self._add(self.new_counts, self._new_counts(), ("households", "persons"))

    def _caseload_steps(self) -> counts.Steps:
        """The change to the caseload steps: each touched household's open periods before and after this page."""
        p, c = t.periods, t.cases
        before: dict[str, list[tuple[int, counts.PeriodShape]]] = {}
        existing = self._existing(self.period_households)
        for i in range(0, len(existing), 500):
            for h, pid, *shape in self.session.execute(  # through the cases' index by household
                select(c.c.household_no, p.c.id, p.c.programme, p.c.status, p.c.from_idx, p.c.to_idx, p.c.persons)
                .join(p, p.c.case_no == c.c.case_no)
                .where(c.c.household_no.in_(existing[i : i + 500]), p.c.known_to.is_(None))
            ):
                before.setdefault(h, []).append((pid, tuple(shape)))  # type: ignore[arg-type]
        closed = {row["p_id"] for row in self.closed_periods}
        after: dict[str, list[counts.PeriodShape]] = {
            h: [shape for pid, shape in rows if pid not in closed] for h, rows in before.items()
        }
        for r in self.new_periods:
            if r["known_to"] is None:
                after.setdefault(r["household_no"], []).append(
                    (r["programme"], r["status"], r["from_idx"], r["to_idx"], r["persons"])
                )
        steps: counts.Steps = {}
        for h in self.period_households:
            counts.add_caseload(steps, [shape for _, shape in before.get(h, [])], -1)
            counts.add_caseload(steps, after.get(h, []))
        return steps

    def _new_counts(self) -> counts.NewCounts:
        """The change to the newly-added counts: each household with an approval, its approved cases before and after."""
        c = t.cases
        before: dict[str, dict[str, counts.FirstMonth]] = {}
        existing = self._existing(self.approved_households)
        for i in range(0, len(existing), 500):
            for h, case_no, *first in self.session.execute(
                select(c.c.household_no, c.c.case_no, c.c.programme, c.c.first_idx, c.c.persons_at_approval)
                .where(c.c.household_no.in_(existing[i : i + 500]), c.c.first_idx.is_not(None))
            ):
                before.setdefault(h, {})[case_no] = tuple(first)  # type: ignore[assignment]
        after = {h: dict(rows) for h, rows in before.items()}
        for row in self.cases.rows.values():
            h = row["household_no"]
            if h in self.approved_households:
                mine = after.setdefault(h, {})
                if row["first_idx"] is None:
                    mine.pop(row["case_no"], None)
                else:
                    mine[row["case_no"]] = (row["programme"], row["first_idx"], row["persons_at_approval"])
        news: counts.NewCounts = {}
        for h in self.approved_households:
            counts.add_new(news, before.get(h, {}).values(), -1)
            counts.add_new(news, after.get(h, {}).values())
        return news

    @staticmethod
    def _add(rows: "_Rows", deltas: dict[tuple[Any, ...], list[int]], fields: tuple[str, ...]) -> None:
        if not any(any(v) for v in deltas.values()):
            return
        rows.load_all()  # a few rows per month: one query instead of one per key
        for key, values in deltas.items():
            if not any(values):
                continue
            row = rows.rows.get(key)
            if row is None:
                row = rows.put({**dict(zip(rows.key, key)), **dict.fromkeys(fields, 0)})
            else:
                rows.touch(*key)
            for f, v in zip(fields, values):
                row[f] += v

    def flush(self) -> None:
        self._count()
        for rows in (self.caseload_steps, self.new_counts, self.households, self.members, self.cases, self.payments, self.batches, self.bank_lines, self.paid_months):
            rows.flush()
        if self.delivered:
            conn = self.session.connection()
            mark = "%s" if conn.dialect.name == "postgresql" else "?"
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(t.ADD_DELIVERED.format(mark=mark), [(k, v) for k, v in self.delivered.items() if v])
            cursor.close()
        insert_many(self.session, t.changes, self.new_changes)
        if self.closed_periods:
            self.session.execute(
                update(t.periods).where(t.periods.c.id == bindparam("p_id")).values(known_to=bindparam("p_known_to")),
                self.closed_periods,
            )
        insert_many(self.session, t.periods, self.new_periods)
        for table, rows in (
            (t.verifications, self.verifications),
            (t.overpayments, self.overpayments),
            (t.recoveries, self.recoveries),
            (t.standards, self.standards),
            (t.timeline, self.timeline),
        ):
            insert_many(self.session, table, rows)


Handler = Callable[[_Page, Any, int], None]


def _count_paid(page: _Page, payment: dict[str, Any], sign: int) -> None:
    """Keep the month's totals of net payments (the statistics read these, not every payment)."""
    key = (payment["programme"], payment["area"], payment["month_idx"])
    row = page.paid_months.get(*key)
    if row is None:
        row = page.paid_months.put(
            {"programme": key[0], "area": key[1], "month_idx": key[2], "amount_fen": 0, "persons": 0, "payments": 0}
        )
    else:
        page.paid_months.touch(*key)
    row["amount_fen"] += sign * payment["amount_fen"]
    row["persons"] += sign * payment["persons"]
    row["payments"] += sign


def _delivered(page: _Page, payment: dict[str, Any], before: int) -> None:
    """Keep the case's delivered total: ``before`` was this payment's part in it before the event."""
    if page.delivered is not None:
        page.delivered[payment["case_no"]] = page.delivered.get(payment["case_no"], 0) + _part(payment) - before


def _part(payment: dict[str, Any]) -> int:
    """A payment's part in its case's delivered total."""
    return payment["gross_fen"] if payment["status"] != "returned" else 0


class LedgerView(SQLAlchemyTrackingRecorder):
    """Read models of households, cases, periods, payments, standards and the event timeline."""

    def __init__(self, datastore: SQLAlchemyDatastore, tracking_table_name: str = "rm_tracking") -> None:
        super().__init__(datastore=datastore, tracking_table_name=tracking_table_name)
        self._handlers: dict[type, Handler] = {
            Household.Registered: _household_registered,
            Household.MemberAdded: _member_added,
            Household.MemberRemoved: _member_left,
            Household.MemberDeceased: _member_left,
            Household.AreaChanged: _area_changed,
            Household.AccountChanged: _account_changed,
            Standard.Created: _standard_created,
            Standard.Set: _standard_set,
            Case.Applied: _case_applied,
            Case.Verified: _case_verified,
            Case.Approved: _case_decided,
            Case.LegacyApproved: _case_decided,
            Case.AmountAdjusted: _case_decided,
            Case.Suspended: _case_decided,
            Case.Resumed: _case_decided,
            Case.Terminated: _case_decided,
            Case.Rejected: _case_rejected,
            Case.GrantApproved: _grant_approved,
            Case.GrantPaid: _grant_paid,
            Case.OverpaymentEstablished: _overpayment,
            Case.OverpaymentCancelled: _overpayment,
            Case.OverpaymentRecovered: _recovery,
            Case.RecoveryReversed: _recovery,
            PayrollBatch.Started: _batch_started,
            PayrollBatch.PaymentsAdded: _batch_changed,
            PayrollBatch.Completed: _batch_changed,
            PayrollBatch.Approved: _batch_changed,
            PayrollBatch.Exported: _batch_changed,
            BankFile.Loaded: _bank_file_loaded,
            BankFile.ExceptionResolved: _bank_exception_resolved,
            Seal.Recorded: _seal_recorded,
            Payment.Issued: _payment_issued,
            Payment.Settled: _payment_settled,
            Payment.Returned: _payment_returned,
            Payment.OffsetReleased: _offset_released,
        }

    def create_table(self) -> None:
        """Create the read models; if their shape changed since they were built, start them afresh.

        The read models are derived data: a new version of the ledger that changes a
        table drops them all (and their position), and the next catch-up rebuilds them.
        """
        engine = self.datastore.engine
        assert engine is not None
        version = t.schema_version()
        with engine.begin() as conn:
            t.schema.create(conn, checkfirst=True)
            stored = conn.execute(select(t.schema.c.version)).scalar()
            if stored != version:
                t.metadata.drop_all(conn, checkfirst=True)
                self.tracking_table.drop(conn, checkfirst=True)
                conn.execute(delete(t.schema))
                conn.execute(insert(t.schema).values(version=version))
        super().create_table()
        t.metadata.create_all(engine, checkfirst=True)

    def clear(self, session: Session) -> None:
        """Empty every read model and reset the position, inside the caller's transaction.

        Deleting rows (not dropping tables) keeps a rebuild atomic on both databases:
        killed before it commits, the old read models and their position stay as they were.
        """
        self.lock(session)
        for table in reversed(t.metadata.sorted_tables):
            session.execute(delete(table))
        tt = self.tracking_table
        session.execute(update(tt).where(tt.c.application_name == UPSTREAM).values(notification_id=0))

    def drop_deferred_indexes(self, session: Session) -> None:
        """Drop the indexes no catch-up reads (:func:`projections.tables.deferred_indexes`), in the caller's transaction.

        For a catch-up that fills the read models from empty: each index is then built once,
        from its finished table, by :meth:`build_missing_indexes`.
        """
        for index in t.deferred_indexes():
            session.execute(DropIndex(index, if_exists=True))

    def build_missing_indexes(self, session: Session) -> list[str]:
        """Build every deferred index that is missing, in the caller's transaction; returns their names.

        If any was missing, a fill from empty ends here: ``rm_delivered`` is then filled from the payments.

        Also repairs a catch-up from empty that stopped before its end: the next catch-up builds them.
        """
        conn = session.connection()
        indexes = t.deferred_indexes()
        if conn.dialect.name == "sqlite":
            present = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
        else:
            present = {r[0] for r in conn.exec_driver_sql(
                "SELECT name FROM unnest(%(names)s) AS name WHERE to_regclass(quote_ident(name)) IS NOT NULL",
                {"names": [i.name for i in indexes]})}
        missing = [i for i in indexes if i.name not in present]
        for index in missing:
            session.execute(CreateIndex(index))
        if missing:  # a fill from empty ends here: the cases' delivered totals too, from the payments
            session.execute(delete(t.delivered))
            conn.exec_driver_sql(t.FILL_DELIVERED)
        return [str(i.name) for i in missing]

    def move_to(self, session: Session, position: int) -> None:
        """Set the read models' position in the caller's transaction (after applying up to it)."""
        tt = self.tracking_table
        session.execute(update(tt).where(tt.c.application_name == UPSTREAM).values(notification_id=position))

    def position(self) -> int:
        """The last event position the read models include (0 = none)."""
        return self.max_tracking_id(UPSTREAM) or 0

    def lock(self, session: Session) -> int:
        """Take the projection's write lock for this transaction and return the position.

        An UPDATE of the tracking row is the first statement: on SQLite it takes the
        database write lock before any read, on PostgreSQL it locks the row, so two
        processes catching up at once apply each page once, one after the other.
        """
        tt = self.tracking_table
        done = session.execute(
            update(tt).where(tt.c.application_name == UPSTREAM).values(notification_id=tt.c.notification_id)
        )
        if done.rowcount == 0:  # type: ignore[attr-defined]
            session.execute(insert(tt).values(application_name=UPSTREAM, notification_id=0))
        return session.execute(select(tt.c.notification_id).where(tt.c.application_name == UPSTREAM)).scalar_one()

    def apply_decoded(self, session: Session, decoded: Sequence[tuple[Notification, Any]], keep_delivered: bool = True) -> int:
        """Apply decoded events, (notification, domain event) pairs in log order, and move the tracking position.

        The caller commits. ``keep_delivered=False`` (a fill from empty) leaves ``rm_delivered`` to
        :meth:`build_missing_indexes`.
        """
        if not decoded:
            return 0
        page = _Page(session, keep_delivered)
        by_kind: dict[type, list[str]] = {}
        for _, e in decoded:
            if e.originator_version > 1:  # an aggregate's first event makes its row: there is none to load
                by_kind.setdefault(type(e).__qualname__.split(".")[0], []).append(e.originator_id)
        page.cases.prefetch_ids(by_kind.get("Case", []))
        page.payments.prefetch_ids(by_kind.get("Payment", []))
        page.households.prefetch_ids(by_kind.get("Household", []))
        page.prefetch([row["case_no"] for key, row in page.cases.rows.items()])
        last = 0
        for n, domain_event in decoded:
            self._handlers[type(domain_event)](page, domain_event, n.id)
            last = n.id
        page.flush()
        tt = self.tracking_table
        session.execute(update(tt).where(tt.c.application_name == UPSTREAM).values(notification_id=last))
        return last


# --------------------------------------------------------------------------- handlers


def _timeline(page: _Page, e: Any, pos: int, subject: str, key: str, case_no: str | None, household_no: str | None) -> None:
    page.timeline.append(
        {
            "position": pos,
            "kind": type(e).__qualname__,
            "subject": subject,
            "subject_key": key,
            "case_no": case_no,
            "household_no": household_no,
            "effective": e.effective,
            "recorded_at": e.timestamp,
            "operator": e.operator,
        }
    )


def _household_registered(page: _Page, e: Household.Registered, pos: int) -> None:
    page.households.put(
        {
            "household_no": e.number,
            "household_id": e.originator_id.hex,
            "community": e.community,
            "area": e.area.value,
            "payee_name": e.payee_name,
            "payee_account": e.payee_account,
            "registered_on": e.effective,
            "recorded_at": e.timestamp,
        }
    )
    for m in e.members:
        _put_member(page, e.number, m, e.effective, e.timestamp)
    _timeline(page, e, pos, "household", e.number, None, e.number)


def _put_member(page: _Page, household_no: str, m: dict[str, Any], since: date, when: datetime) -> None:
    page.members.put(
        {
            "household_no": household_no,
            "id_number": m["id_number"],
            "name": m["name"],
            "relation": m["relation"],
            "flags": ",".join(m.get("flags", [])),
            "status": "present",
            "since": since,
            "until": None,
            "recorded_at": when,
        }
    )


def _member_added(page: _Page, e: Household.MemberAdded, pos: int) -> None:
    no = page.households.touch_id(e.originator_id)["household_no"]
    _put_member(page, no, e.member, e.effective, e.timestamp)
    _timeline(page, e, pos, "household", no, None, no)


def _member_left(page: _Page, e: Any, pos: int) -> None:
    no = page.households.touch_id(e.originator_id)["household_no"]
    row = page.members.touch(no, e.id_number)
    row["status"] = "deceased" if isinstance(e, Household.MemberDeceased) else "removed"
    row["until"] = e.effective
    row["recorded_at"] = e.timestamp
    _timeline(page, e, pos, "household", no, None, no)


def _area_changed(page: _Page, e: Household.AreaChanged, pos: int) -> None:
    row = page.households.touch_id(e.originator_id)
    row["area"] = e.area.value
    _timeline(page, e, pos, "household", row["household_no"], None, row["household_no"])


def _account_changed(page: _Page, e: Household.AccountChanged, pos: int) -> None:
    row = page.households.touch_id(e.originator_id)
    row["payee_name"], row["payee_account"] = e.payee_name, e.payee_account
    _timeline(page, e, pos, "household", row["household_no"], None, row["household_no"])


def _standard_created(page: _Page, e: Standard.Created, pos: int) -> None:
    _timeline(page, e, pos, "standard", f"{e.programme.value}/{e.area.value}", None, None)


def _standard_set(page: _Page, e: Standard.Set, pos: int) -> None:
    page.standards.append(
        {
            "standard_id": e.originator_id.hex,
            "programme": e.programme.value,
            "area": e.area.value,
            "from_idx": e.from_month.index,
            "position": pos,
            "amount_fen": e.amount_fen,
            "recorded_at": e.timestamp,
        }
    )
    _timeline(page, e, pos, "standard", f"{e.programme.value}/{e.area.value}", None, None)


def _case(page: _Page, e: Any, pos: int) -> dict[str, Any]:
    row = page.cases.touch_id(e.originator_id)
    row["updated_at"] = e.timestamp
    _timeline(page, e, pos, "case", row["case_no"], row["case_no"], row["household_no"])
    return row


def _case_applied(page: _Page, e: Case.Applied, pos: int) -> None:
    h = page.households.get(e.household_no)
    page.cases.put(
        {
            "case_no": e.case_no,
            "case_id": e.originator_id.hex,
            "household_no": e.household_no,
            "community": h["community"] if h else "",
            "programme": e.programme.value,
            "area": e.area.value,
            "channel": e.channel.value,
            "single_person": e.single_person,
            "status": "applied",
            "reason": "",
            "applied_on": e.effective,
            "applied_at": e.timestamp,
            "first_idx": None,
            "amount_fen": 0,
            "persons": 0,
            "persons_at_approval": 0,
            "covered": "[]",
            "verifications": 0,
            "approved_at": None,
            "grant_type": None,
            "grant_paid_on": None,
            "grant_paid_at": None,
            "updated_at": e.timestamp,
        }
    )
    _timeline(page, e, pos, "case", e.case_no, e.case_no, e.household_no)


def _case_verified(page: _Page, e: Case.Verified, pos: int) -> None:
    row = _case(page, e, pos)
    row["verifications"] += 1
    page.verifications.append(
        {
            "case_no": row["case_no"],
            "no": row["verifications"],
            "income_fen": e.income_fen,
            "assets_ok": e.assets_ok,
            "passed": e.passed,
            "verifier": e.verifier,
            "recorded_by": e.operator,
            "verified_on": e.effective,
            "valid_until": e.valid_until,
            "recorded_at": e.timestamp,
        }
    )


_KINDS = {
    Case.Approved: "approved",
    Case.LegacyApproved: "approved",
    Case.AmountAdjusted: "adjusted",
    Case.Suspended: "suspended",
    Case.Resumed: "resumed",
    Case.Terminated: "terminated",
}


def _case_decided(page: _Page, e: Any, pos: int) -> None:
    row = _case(page, e, pos)
    kind = _KINDS[type(e)]
    if kind == "approved":
        month, amount, covered = e.first_month, e.amount_fen, tuple(e.covered)
        row.update(
            status="active",
            first_idx=month.index,
            persons_at_approval=len(covered),
            approved_at=e.timestamp,
        )
    elif kind == "adjusted":
        month, amount, covered = e.from_month, e.amount_fen, tuple(e.covered)
    else:
        month, amount, covered = e.from_month, 0, ()
        row["status"] = {"suspended": "suspended", "resumed": "active", "terminated": "terminated"}[kind]
        row["reason"] = getattr(e, "reason", "")
    if kind in ("approved", "adjusted"):
        row.update(amount_fen=amount, persons=len(covered), covered=json.dumps(list(covered)))
    page.add_change(row, Change(month, e.originator_version, kind, amount, covered), e.timestamp)


def _case_rejected(page: _Page, e: Case.Rejected, pos: int) -> None:
    row = _case(page, e, pos)
    row.update(status="rejected", reason=e.reason)


def _grant_approved(page: _Page, e: Case.GrantApproved, pos: int) -> None:
    row = _case(page, e, pos)
    row.update(status="granted", grant_type=e.grant_type, amount_fen=e.amount_fen, approved_at=e.timestamp, reason=e.reason)


def _grant_paid(page: _Page, e: Case.GrantPaid, pos: int) -> None:
    row = _case(page, e, pos)
    row.update(status="paid", grant_paid_on=e.effective, grant_paid_at=e.timestamp)


def _payment_issued(page: _Page, e: Payment.Issued, pos: int) -> None:
    row = page.payments.put(
        {
            "ref": e.ref,
            "payment_id": e.originator_id.hex,
            "case_no": e.case_no,
            "household_no": e.household_no,
            "programme": e.programme.value,
            "area": e.area.value,
            "month_idx": e.month.index,
            "issue_no": e.issue_no,
            "kind": e.kind,
            "gross_fen": e.gross_fen,
            "offset_fen": e.offset_fen,
            "amount_fen": e.amount_fen,
            "released_fen": 0,
            "persons": e.persons,
            "status": "issued" if e.amount_fen else "settled",
            "payee_name": e.payee_name,
            "payee_account": e.payee_account,
            "batch": e.batch,
            "issued_on": e.effective,
            "issued_at": e.timestamp,
            "issue_position": pos,
            "issued_by": e.operator,
            "settled_at": None if e.amount_fen else e.timestamp,
            "returned_at": None,
            "return_reason": None,
        }
    )
    _count_paid(page, row, +1)  # its timeline line is this row
    _delivered(page, row, 0)


def _payment_settled(page: _Page, e: Payment.Settled, pos: int) -> None:
    row = page.payments.touch_id(e.originator_id)
    row.update(status="settled", settled_at=e.timestamp)
    _timeline(page, e, pos, "payment", row["ref"], row["case_no"], row["household_no"])


def _payment_returned(page: _Page, e: Payment.Returned, pos: int) -> None:
    row = page.payments.touch_id(e.originator_id)
    before = _part(row)
    row.update(status="returned", returned_at=e.timestamp, return_reason=e.reason)
    _delivered(page, row, before)
    _count_paid(page, row, -1)
    _timeline(page, e, pos, "payment", row["ref"], row["case_no"], row["household_no"])


def _overpayment(page: _Page, e: Any, pos: int) -> None:
    row = _case(page, e, pos)
    sign = 1 if isinstance(e, Case.OverpaymentEstablished) else -1
    page.overpayments.append(
        {
            "position": pos,
            "case_no": row["case_no"],
            "month_idx": e.month.index,
            "amount_fen": sign * e.amount_fen,
            "cause": e.cause,
            "effective": e.effective,
            "recorded_at": e.timestamp,
        }
    )


def _recovery(page: _Page, e: Any, pos: int) -> None:
    row = _case(page, e, pos)
    reversed_ = isinstance(e, Case.RecoveryReversed)
    page.recoveries.append(
        {
            "position": pos,
            "case_no": row["case_no"],
            "amount_fen": -e.amount_fen if reversed_ else e.amount_fen,
            "method": "reversal" if reversed_ else e.method,
            "reference": e.reference,
            "effective": e.effective,
            "recorded_at": e.timestamp,
        }
    )


def _batch_started(page: _Page, e: PayrollBatch.Started, pos: int) -> None:
    page.batches.put(
        {
            "ref": e.ref,
            "batch_id": e.originator_id.hex,
            "month_idx": e.month.index,
            "programme": e.programme.value if e.programme else None,
            "run_no": e.run_no,
            "status": "open",
            "started_by": e.operator,
            "approved_by": None,
            "payments": 0,
            "totals": "{}",
            "exports": 0,
            "started_at": e.timestamp,
            "updated_at": e.timestamp,
        }
    )
    _timeline(page, e, pos, "batch", e.ref, None, None)


def _batch_changed(page: _Page, e: Any, pos: int) -> None:
    row = page.batches.touch_id(e.originator_id)
    row["updated_at"] = e.timestamp
    if isinstance(e, PayrollBatch.PaymentsAdded):
        row["payments"] += len(e.refs)
        totals = json.loads(row["totals"])
        for key, more in e.totals.items():
            mine = totals.setdefault(key, {})
            for k, v in more.items():
                mine[k] = mine.get(k, 0) + v
        row["totals"] = json.dumps(totals, sort_keys=True)
    elif isinstance(e, PayrollBatch.Completed):
        row["status"] = "completed"
    elif isinstance(e, PayrollBatch.Approved):
        row["status"], row["approved_by"] = "approved", e.operator
    elif isinstance(e, PayrollBatch.Exported):
        row["exports"] += 1
    _timeline(page, e, pos, "batch", row["ref"], None, None)


def _bank_file_loaded(page: _Page, e: BankFile.Loaded, pos: int) -> None:
    for line in e.lines:
        page.bank_lines.put(
            {
                "file_id": e.originator_id.hex,
                "line": line["line"],
                "file_name": e.file_name,
                "sha256": e.sha256,
                "ref": line["ref"],
                "amount_fen": line["amount_fen"],
                "result": line["result"],
                "reason": line["reason"],
                "outcome": line["outcome"],
                "problem": line["problem"],
                "resolved": None,
                "resolved_at": None,
                "loaded_at": e.timestamp,
            }
        )
    _timeline(page, e, pos, "bank-file", e.sha256[:12], None, None)


def _bank_exception_resolved(page: _Page, e: BankFile.ExceptionResolved, pos: int) -> None:
    row = page.bank_lines.touch(e.originator_id.hex, e.line)
    row["resolved"], row["resolved_at"] = e.note, e.timestamp
    _timeline(page, e, pos, "bank-file", row["sha256"][:12], None, None)


def _seal_recorded(page: _Page, e: Seal.Recorded, pos: int) -> None:
    _timeline(page, e, pos, "seal", str(e.position), None, None)


def _offset_released(page: _Page, e: Payment.OffsetReleased, pos: int) -> None:
    row = page.payments.touch_id(e.originator_id)
    before = _part(row)
    row["gross_fen"] -= e.amount_fen
    row["offset_fen"] -= e.amount_fen
    row["released_fen"] += e.amount_fen
    _delivered(page, row, before)
    _timeline(page, e, pos, "payment", row["ref"], row["case_no"], row["household_no"])
