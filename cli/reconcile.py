"""``ledger reconcile``: every fen issued accounted for, line by line and in total."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import click

from cli.context import Ledger, pass_ledger
from cli.output import emit_csv, emit_json, format_option, table
from cli.types import MONTH, TIMESTAMP
from ledger.values import Month, yuan, yuan_plain

COLUMNS = ["ref", "case", "month", "amount", "events", "read_model", "bank", "class", "note"]


@click.command("reconcile")
@click.option("--month", type=MONTH, default=None, help="Reconcile the payments for this benefit month.")
@click.option("--batch", default=None, help="Reconcile the payments of this payroll batch.")
@click.option("--all", "show_all", is_flag=True, help="List every line in the table, not only the exceptions.")
@click.option("--known-at", type=TIMESTAMP, default=None, help="As the record stood at this moment (recorded time).")
@format_option()
@pass_ledger
def reconcile(ledger: Ledger, month: Month | None, batch: str | None, show_all: bool, known_at: datetime | None, fmt: str) -> None:
    """Three-way reconciliation: what the events say was issued, settled and returned, what the
    read models count as paid, and what the bank's results say.

    Lines are matched, outstanding (no result yet), returned, or exceptions. Exits 1 when
    anything is unexplained or the totals of the events and the read models differ.
    json and csv give the whole working list.

    \b
    Example:
      ledger reconcile --month 2023-10
      ledger reconcile --batch B-202310-all-1 --format csv > working-list.csv
    """
    from projections.reconcile import reconcile as run

    if (month is None) == (batch is None):
        raise click.UsageError("give exactly one of --month and --batch")
    with ledger.read() as conn:
        rec = run(ledger.app, conn, month, batch, known_at)
    rows = [[x["ref"], x["case"], x["month"], "" if x["amount_fen"] is None else yuan_plain(x["amount_fen"]), x["events"],
             x["read_model"], x["bank"], x["class"], x["note"]] for x in rec.lines]
    if fmt == "json":
        emit_json({"scope": rec.scope, "balanced": rec.balanced, "totals": rec.totals, "lines": rec.lines})
    elif fmt == "csv":
        emit_csv(COLUMNS, rows)
    else:
        counts = Counter(x["class"] for x in rec.lines)
        click.echo(f"Reconciliation of {rec.scope}: {len(rec.lines):,} lines, "
                   + ", ".join(f"{counts[k]:,} {k}" for k in ("matched", "outstanding", "returned", "exception")))
        click.echo(table(
            ["side", "issued", "settled", "returned", "outstanding", "offset"],
            [[name, yuan(s["issued_fen"]), yuan(s["settled_fen"]), yuan(s["returned_fen"]), yuan(s["outstanding_fen"]),
              yuan(s["offset_fen"])] for name, s in rec.totals.items()],
            right=[1, 2, 3, 4, 5],
        ))
        shown = rows if show_all else [r for r in rows if r[7] == "exception"]
        if shown:
            click.echo("")
            click.echo(table(COLUMNS, shown, right=[3]))
    if not rec.balanced:
        raise click.ClickException(f"{len(rec.exceptions)} unexplained lines in {rec.scope}")
