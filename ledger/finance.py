"""Finance use cases: the monthly payroll, its approval and bank file, and the bank's results.

These are methods of the application service (:class:`ledger.application.LedgerApp`
inherits :class:`FinanceCommands`); they use the same aggregates and rules as a
clerk's single payment, a chunk of cases per transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from ledger.domain import (
    BankFile,
    PayrollBatch,
    Payment,
    bank_file_id,
    batch_id,
    batch_ref,
    case_id,
    household_id,
    payment_id,
)
from ledger.errors import AlreadyExists, CaseNotActive, DuplicatePayment, InvalidInput, NotFound
from ledger.values import Month, Programme, parse_money, yuan_plain

if TYPE_CHECKING:
    from ledger.application import LedgerApp, UnitOfWork

#: Cases per transaction in a payroll run.
CHUNK = 500

BANK_FILE_HEADER = ["reference", "payee_name", "account", "amount", "benefit_month"]
RESULTS_HEADER = ["reference", "amount", "result", "reason"]


#: Pays one chunk of (case, months) pairs for a batch in its own transaction:
#: ``(batch ref, pairs, operator, effective) -> (payment refs, skipped, totals)``.
ChunkPayer = Callable[
    [str, Sequence[tuple[str, Sequence[Month]]], str, date],
    tuple[list[str], list[tuple[str, str, str]], dict[str, dict[str, int]]],
]


@dataclass
class PayrollResult:
    """What a payroll run did."""

    batch: str | None
    resumed: bool = False
    issued: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # case, month, why
    totals: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class BankResultLine:
    line: int
    ref: str
    amount_fen: int
    result: str
    reason: str


@dataclass
class ResultsLoaded:
    file_name: str
    sha256: str
    already_loaded: bool
    settled: int = 0
    returned: int = 0
    exceptions: list[dict[str, Any]] = field(default_factory=list)


def parse_batch_ref(ref: str) -> tuple[Month, Programme | None, int]:
    """Split ``B-<YYYYMM>-<programme|all>-<n>``."""
    parts = ref.strip().split("-")
    try:
        if parts[0] != "B" or len(parts) < 4:
            raise ValueError
        ym = parts[1]
        month = Month(int(ym[:4]), int(ym[4:6])) if len(ym) == 6 else None
        scope = "-".join(parts[2:-1])
        run_no = int(parts[-1])
        if month is None or run_no < 1:
            raise ValueError
        programme = None if scope == "all" else Programme(scope)
    except (ValueError, InvalidInput):
        raise InvalidInput(f"invalid batch reference {ref!r}: expected B-<YYYYMM>-<programme|all>-<n>") from None
    return month, programme, run_no


def parse_results(content: bytes) -> list[BankResultLine]:
    """Parse a bank results file (CSV, header ``reference,amount,result,reason``); refuse it whole if malformed."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the results file is not UTF-8 text") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise InvalidInput("the results file is empty")
    header = [h.strip().lower() for h in rows[0]]
    if header != RESULTS_HEADER:
        raise InvalidInput(f"line 1: expected the header {','.join(RESULTS_HEADER)}, found {','.join(rows[0])}")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 4:
            raise InvalidInput(f"line {n}: expected 4 fields (reference,amount,result,reason), found {len(row)}")
        ref, amount, result, reason = (c.strip() for c in row)
        if not ref:
            raise InvalidInput(f"line {n}: field 'reference' is empty")
        try:
            fen = parse_money(amount)
        except InvalidInput as e:
            raise InvalidInput(f"line {n}: field 'amount': {e}") from None
        if result not in ("settled", "returned"):
            raise InvalidInput(f"line {n}: field 'result': expected settled or returned, found {result!r}")
        if result == "returned" and not reason:
            raise InvalidInput(f"line {n}: field 'reason': a returned payment needs the bank's reason")
        out.append(BankResultLine(n, ref, fen, result, reason))
    return out


class FinanceCommands:
    """Payroll, bank files and bank results (mixed into the application service)."""

    # ------------------------------------------------------------------ payroll
    def _batch(self: LedgerApp, w: UnitOfWork, ref: str) -> PayrollBatch:  # type: ignore[misc]
        month, programme, run_no = parse_batch_ref(ref)
        b = w.find(batch_id(month, programme, run_no))
        if b is None:
            raise NotFound(f"no batch {ref}")
        return b

    def batches(self: LedgerApp, month: Month, programme: Programme | None) -> list[PayrollBatch]:  # type: ignore[misc]
        """Every payroll batch of a month and scope, in run order."""
        w = self.unit_of_work()
        out = []
        n = 1
        while (b := w.find(batch_id(month, programme, n))) is not None:
            out.append(b)
            n += 1
        return out

    def run_payroll(
        self: LedgerApp,  # type: ignore[misc]
        month: Month,
        programme: Programme | None,
        candidates: Sequence[tuple[str, Sequence[Month]]],
        *,
        operator: str,
        effective: date,
        chunk: int = CHUNK,
        progress: Callable[[int, int], None] | None = None,
        pay_chunk: ChunkPayer | None = None,
    ) -> PayrollResult:
        """Pay every candidate case what it is owed for the given months, a chunk per transaction.

        ``candidates`` are (case, months) pairs, usually selected from the read models;
        each payment is decided again inside the chunk's transaction, so a stale
        candidate is simply skipped and nothing is ever paid twice. An open batch of the
        month (a run killed part-way) is resumed; with nothing to pay and no open batch,
        no batch is made.

        ``pay_chunk`` pays one chunk in its own transaction (see
        :class:`projections.payroll.ReadModelPayroll`, which decides the plain months of a
        whole caseload from the read models kept in that same transaction); without it,
        every payment is decided on the aggregates.
        """
        runs = self.batches(month, programme)
        open_batch = next((b for b in runs if b.status == "open"), None)
        result = PayrollResult(batch=None)
        if open_batch is not None:
            result.batch, result.resumed = open_batch.ref, True
        # A new batch is made by the first chunk that issues a payment, in the same
        # transaction: a run with nothing to pay leaves no empty batch behind.
        ref = result.batch or batch_ref(month, programme, len(runs) + 1)
        done = 0
        for i in range(0, len(candidates), chunk):
            part = candidates[i : i + chunk]
            if pay_chunk is not None:
                refs, skipped, totals = pay_chunk(ref, part, operator, effective)
            else:
                refs, skipped, totals = self.run(lambda w, part=part: self._pay_chunk(w, ref, part, operator, effective))
            if refs:
                result.batch = ref
            result.issued.extend(refs)
            result.skipped.extend(skipped)
            add_totals(result.totals, totals)
            done += len(part)
            if progress:
                progress(done, len(candidates))
        if result.batch is not None:
            def complete(w: UnitOfWork) -> None:
                b = self._batch(w, ref)
                if b.status == "open":  # another run may have completed it meanwhile
                    b.complete(operator=operator, effective=effective)

            self.run(complete)
        return result

    def _pay_chunk(
        self: LedgerApp,  # type: ignore[misc]
        w: UnitOfWork,
        ref: str,
        part: Sequence[tuple[str, Sequence[Month]]],
        operator: str,
        effective: date,
    ) -> tuple[list[str], list[tuple[str, str, str]], dict[str, dict[str, int]]]:
        refs, skipped, totals = self.issue_through_aggregates(w, ref, part, operator, effective)
        self.add_to_batch(w, ref, refs, totals, operator, effective)
        return refs, skipped, totals

    def issue_through_aggregates(
        self: LedgerApp,  # type: ignore[misc]
        w: UnitOfWork,
        ref: str,
        part: Sequence[tuple[str, Sequence[Month]]],
        operator: str,
        effective: date,
    ) -> tuple[list[str], list[tuple[str, str, str]], dict[str, dict[str, int]]]:
        """Issue what each (case, months) pair is owed, deciding on the aggregates; the refused are skipped with why."""
        w.preload(case_id(c) for c, _ in part)
        cases = {c: w.find(case_id(c)) for c, _ in part}
        w.preload(household_id(c.household_no) for c in cases.values() if c is not None)
        w.preload(payment_id(c, m, n) for c, months in part for m in months for n in (1, 2, 3))
        refs: list[str] = []
        skipped: list[tuple[str, str, str]] = []
        totals: dict[str, dict[str, int]] = {}
        for case_no, months in part:
            case = cases[case_no]
            if case is None:
                skipped.extend((case_no, str(m), f"no case {case_no}") for m in months)
                continue
            for m in months:
                try:
                    p = self._issue(w, case, m, ref, operator, effective)
                except (DuplicatePayment, CaseNotActive, InvalidInput) as e:
                    skipped.append((case_no, str(m), str(e)))
                    continue
                refs.append(p.ref)
                add_payment_totals(totals, p)
        return refs, skipped, totals

    def add_to_batch(
        self: LedgerApp,  # type: ignore[misc]
        w: UnitOfWork,
        ref: str,
        refs: list[str],
        totals: dict[str, dict[str, int]],
        operator: str,
        effective: date,
    ) -> None:
        """Record payments in the run's batch, starting the batch with its first payments."""
        month, programme, run_no = parse_batch_ref(ref)
        batch: PayrollBatch | None = w.find(batch_id(month, programme, run_no))
        if refs:
            if batch is None:
                batch = w.add(PayrollBatch(ref=ref, month=month, programme=programme, run_no=run_no,
                                           operator=operator, effective=effective), f"batch {ref}")
            batch.add(refs, totals, operator=operator, effective=effective)

    def approve_batch(self: LedgerApp, ref: str, *, operator: str, effective: date) -> None:  # type: ignore[misc]
        """Approve a completed batch (four eyes: not by the operator who ran it)."""
        self.run(lambda w: self._batch(w, ref).approve(operator=operator, effective=effective))

    def batch_payments(self: LedgerApp, ref: str) -> tuple[PayrollBatch, list[Payment]]:  # type: ignore[misc]
        """A batch and its payments, as the events record them."""
        w = self.unit_of_work()
        b = self._batch(w, ref)
        ids = []
        from ledger.application import parse_payment_ref

        for r in b.refs:
            c, m, n = parse_payment_ref(r)
            ids.append(payment_id(c, m, n))
        w.preload(ids)
        return b, [w.find(i) for i in ids]

    def bank_file(self: LedgerApp, ref: str) -> tuple[list[list[str]], int]:  # type: ignore[misc]
        """The disbursement lines of an approved batch: payments with cash to send, by reference."""
        b, payments = self.batch_payments(ref)
        if b.status not in ("approved",):
            raise InvalidInput(
                f"batch {ref} is {b.status}; its bank file can be exported only after another operator approves it"
            )
        # Only what is still to be paid: not payments the bank already settled or returned
        # (a returned one is re-issued under its own reference), nor ones fully offset.
        due = [p for p in sorted(payments, key=lambda p: p.ref) if p.status == "issued" and p.amount_fen > 0]
        lines = [[p.ref, p.payee_name, p.payee_account, yuan_plain(p.amount_fen), str(p.month)] for p in due]
        return lines, sum(p.amount_fen for p in due)

    def record_export(self: LedgerApp, ref: str, file_name: str, content: bytes, lines: int, amount_fen: int, *, operator: str, effective: date) -> None:  # type: ignore[misc]
        sha = hashlib.sha256(content).hexdigest()
        self.run(lambda w: self._batch(w, ref).record_export(file_name, sha, lines, amount_fen, operator=operator, effective=effective))

    # ------------------------------------------------------------------ bank results
    def load_bank_results(self: LedgerApp, file_name: str, content: bytes, *, operator: str, effective: date) -> ResultsLoaded:  # type: ignore[misc]
        """Apply a bank results file: each line that matches exactly one issued payment by
        reference and amount settles or returns it; every other line is recorded as an
        exception. All in one transaction; the same file loaded again changes nothing."""
        sha = hashlib.sha256(content).hexdigest()
        lines = parse_results(content)

        def command(w: UnitOfWork) -> ResultsLoaded:
            existing = w.find(bank_file_id(sha))
            if existing is not None:
                return ResultsLoaded(file_name, sha, True, exceptions=existing.exceptions())
            from ledger.application import parse_payment_ref

            ids: dict[str, Any] = {}
            for line in lines:
                try:
                    ids[line.ref] = payment_id(*parse_payment_ref(line.ref))
                except InvalidInput:
                    ids[line.ref] = None
            w.preload(i for i in ids.values() if i is not None)
            recorded: list[dict[str, Any]] = []
            seen: dict[str, int] = {}
            res = ResultsLoaded(file_name, sha, False)
            for line in lines:
                entry = {"line": line.line, "ref": line.ref, "amount_fen": line.amount_fen, "result": line.result,
                         "reason": line.reason, "outcome": "applied", "problem": ""}
                pid = ids[line.ref]
                payment = w.find(pid) if pid is not None else None
                problem = ""
                if line.ref in seen:
                    problem = f"duplicate line: the same reference is on line {seen[line.ref]}"
                elif payment is None:
                    problem = "unknown payment reference"
                elif payment.amount_fen != line.amount_fen:
                    problem = f"amount {yuan_plain(line.amount_fen)} does not match the payment's {yuan_plain(payment.amount_fen)}"
                elif payment.status != "issued":
                    problem = f"payment is already {payment.status}"
                seen.setdefault(line.ref, line.line)
                if problem:
                    entry.update(outcome="exception", problem=problem)
                    res.exceptions.append(entry)
                elif line.result == "settled":
                    payment.settle(operator=operator, effective=effective)
                    res.settled += 1
                else:
                    self.return_payment(line.ref, line.reason, operator=operator, effective=effective, uow=w)
                    res.returned += 1
                recorded.append(entry)
            w.add(BankFile(file_name=file_name, sha256=sha, lines=recorded, operator=operator, effective=effective),
                  f"bank file {file_name}")
            return res

        try:
            return self.run(command)
        except AlreadyExists:  # loaded by another process at the same moment
            return ResultsLoaded(file_name, sha, True)

    def resolve_bank_exception(self: LedgerApp, content: bytes, line: int, note: str, *, operator: str, effective: date) -> None:  # type: ignore[misc]
        """Record how an exception line of a loaded results file was resolved."""
        sha = hashlib.sha256(content).hexdigest()

        def command(w: UnitOfWork) -> None:
            f = w.find(bank_file_id(sha))
            if f is None:
                raise NotFound("this results file was never loaded")
            f.resolve(line, note, operator=operator, effective=effective)

        self.run(command)


def _payment_totals(p: Payment | Payment.Issued) -> dict[str, int]:
    return {"payments": 1, "gross_fen": p.gross_fen, "offset_fen": p.offset_fen, "amount_fen": p.amount_fen, "persons": p.persons}


def add_payment_totals(into: dict[str, dict[str, int]], p: Payment | Payment.Issued) -> None:
    """Count one payment in a run's totals by programme and area."""
    add_totals(into, {f"{p.programme.value}/{p.area.value}": _payment_totals(p)})


def add_totals(into: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> None:
    for key, t in more.items():
        mine = into.setdefault(key, {})
        for k, v in t.items():
            mine[k] = mine.get(k, 0) + v
