"""``ledger payroll``: the monthly run, its approval, the bank file and the bank's results."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from datetime import date
from pathlib import Path

import click

from cli.context import Ledger, date_option, operator_option, pass_ledger
from cli.output import emit_csv, emit_json, format_option, progress_printer, table
from cli.types import MONTH
from ledger.finance import BANK_FILE_HEADER
from ledger.values import Month, Programme, yuan, yuan_plain

MONTHLY = [p.value for p in Programme if p.is_monthly]


@click.group()
def payroll() -> None:
    """Payroll: run a month, approve, export the bank file, load the bank's results."""


@payroll.command("run")
@click.option("--month", type=MONTH, required=True, help="The benefit month to pay.")
@click.option("--programme", type=click.Choice(MONTHLY), default=None, help="Only this programme (default: all monthly ones).")
@click.option("--chunk", type=click.IntRange(min=1), default=20000, show_default=True, help="Cases per transaction.")
@operator_option
@date_option
@pass_ledger
def run(ledger: Ledger, month: Month, programme: str | None, chunk: int, operator: str, effective: date) -> None:
    """Pay every case active in the month and not yet paid, with arrears of earlier months.

    Overpayment debt is recovered by offset (never below zero). Running it again for
    the same month issues nothing new; a run that was interrupted is resumed.

    \b
    Example:
      ledger payroll run --month 2023-10 --operator zhao.min
    """
    from projections.payroll import ReadModelPayroll, candidates

    with ledger.read() as conn:
        items = candidates(conn, month, programme)
    click.echo(f"payroll {month}: {len(items):,} cases owed something", err=True)
    result = ledger.app.run_payroll(
        month, Programme(programme) if programme else None, items, operator=operator, effective=effective,
        chunk=chunk, progress=progress_printer("payroll") if items else None,
        pay_chunk=ReadModelPayroll(ledger.app, ledger.projections),
    )
    if result.batch is None:
        click.echo(f"nothing to pay for {month}: every active case is paid")
        return
    verb = "resumed" if result.resumed else "created"
    click.echo(f"batch {result.batch} {verb}: {len(result.issued):,} payments issued")
    rows = [[k, f"{t['payments']:,}", f"{t['persons']:,}", yuan(t["gross_fen"]), yuan(t["offset_fen"]), yuan(t["amount_fen"])]
            for k, t in sorted(result.totals.items())]
    if rows:
        click.echo(table(["programme/area", "payments", "persons", "gross", "offset", "to the bank"], rows, right=[1, 2, 3, 4, 5]))
    for case_no, m, why in result.skipped[:20]:
        click.echo(f"skipped {case_no} {m}: {why}", err=True)
    if len(result.skipped) > 20:
        click.echo(f"... and {len(result.skipped) - 20} more skipped", err=True)


@payroll.command("approve")
@click.argument("batch")
@operator_option
@date_option
@pass_ledger
def approve(ledger: Ledger, batch: str, operator: str, effective: date) -> None:
    """Approve BATCH for the bank (another operator than the one who ran it).

    \b
    Example:
      ledger payroll approve B-202310-all-1 --operator qian.jun
    """
    ledger.app.approve_batch(batch, operator=operator, effective=effective)
    click.echo(f"batch {batch} approved by {operator}")


@payroll.command("export")
@click.argument("batch")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              help="Where to write the bank disbursement file (CSV).")
@operator_option
@date_option
@pass_ledger
def export(ledger: Ledger, batch: str, out: Path, operator: str, effective: date) -> None:
    """Write the bank disbursement file of an approved BATCH.

    Columns: reference, payee_name, account, amount (yuan, two decimals), benefit_month.
    Payments entirely offset against overpayment send nothing and are not in the file.

    \b
    Example:
      ledger payroll export B-202310-all-1 --out bank-202310.csv --operator zhao.min
    """
    lines, total = ledger.app.bank_file(batch)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BANK_FILE_HEADER)
    w.writerows(lines)
    content = buf.getvalue().encode("utf-8")
    # Write beside the target, record the export, then move the file into place.
    fd, tmp = tempfile.mkstemp(prefix=".ledger-", dir=str(out.resolve().parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        ledger.app.record_export(batch, out.name, content, len(lines), total, operator=operator, effective=effective)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    click.echo(f"{out}: {len(lines):,} payments, {yuan(total)} yuan")


@payroll.command("results")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_option
@date_option
@format_option()
@pass_ledger
def results(ledger: Ledger, file: Path, operator: str, effective: date, fmt: str) -> None:
    """Load the bank's results FILE (CSV: reference,amount,result,reason).

    A line is applied only if it matches exactly one issued payment by reference and
    amount; result is settled or returned (returned needs the bank's reason). Other
    lines are recorded as exceptions and listed with their line numbers. A malformed
    file is refused whole; the same file loaded twice changes nothing.

    \b
    Example:
      ledger payroll results bank-results-202310.csv --operator zhao.min
    """
    loaded = ledger.app.load_bank_results(file.name, file.read_bytes(), operator=operator, effective=effective)
    rows = [[x["line"], x["ref"], yuan_plain(x["amount_fen"]), x["result"], x["problem"]] for x in loaded.exceptions]
    if loaded.already_loaded:
        click.echo(f"{file.name} was already loaded (sha256 {loaded.sha256[:12]}); nothing changed", err=True)
    else:
        click.echo(f"{file.name}: {loaded.settled} settled, {loaded.returned} returned, {len(loaded.exceptions)} exceptions", err=True)
    if fmt == "json":
        emit_json({"file": file.name, "sha256": loaded.sha256, "already_loaded": loaded.already_loaded,
                   "settled": loaded.settled, "returned": loaded.returned, "exceptions": loaded.exceptions})
    elif fmt == "csv":
        emit_csv(["line", "reference", "amount", "result", "problem"], rows)
    elif rows:
        click.echo(table(["line", "reference", "amount", "result", "exception"], rows, right=[0, 2]))


@payroll.command("resolve")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--line", type=click.IntRange(min=1), required=True, help="Line number of the exception in FILE.")
@click.option("--note", required=True, help="How it was resolved (kept on record).")
@operator_option
@date_option
@pass_ledger
def resolve(ledger: Ledger, file: Path, line: int, note: str, operator: str, effective: date) -> None:
    """Record how an exception line of a loaded results FILE was resolved.

    \b
    Example:
      ledger payroll resolve bank-results-202310.csv --line 7 --note "bank confirmed a typo; no payment" --operator zhao.min
    """
    ledger.app.resolve_bank_exception(file.read_bytes(), line, note, operator=operator, effective=effective)
    click.echo(f"{file.name} line {line}: resolved")


@payroll.command("list")
@click.option("--month", type=MONTH, default=None, help="Only batches of this benefit month.")
@format_option()
@pass_ledger
def list_(ledger: Ledger, month: Month | None, fmt: str) -> None:
    """List payroll batches with their status and totals.

    \b
    Example:
      ledger payroll list --month 2023-10
    """
    import json

    from sqlalchemy import select

    from projections import tables as t

    with ledger.read() as conn:
        q = select(t.batches).order_by(t.batches.c.month_idx, t.batches.c.ref)
        if month:
            q = q.where(t.batches.c.month_idx == month.index)
        rows = conn.execute(q).mappings().all()
    data = []
    for r in rows:
        totals = json.loads(r["totals"])
        data.append({
            "batch": r["ref"], "month": str(Month.from_index(r["month_idx"])), "status": r["status"],
            "run_by": r["started_by"], "approved_by": r["approved_by"] or "", "payments": r["payments"],
            "amount": yuan_plain(sum(x.get("amount_fen", 0) for x in totals.values())), "exports": r["exports"],
        })
    if fmt == "json":
        emit_json(data)
    elif fmt == "csv":
        emit_csv(list(data[0]) if data else ["batch"], [list(d.values()) for d in data])
    else:
        click.echo(table(["batch", "month", "status", "run by", "approved by", "payments", "to the bank", "exports"],
                         [list(d.values()) for d in data], right=[5, 6, 7]))
