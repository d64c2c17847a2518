"""``ledger import``: load a JSON Lines file of actions, all or nothing."""

from __future__ import annotations

import click

from cli.context import Ledger, pass_ledger
from ledger.importer import import_lines


@click.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes that check a large file's households at once (default: one per core, at most 4).")
@pass_ledger
def import_file(ledger: Ledger, file: click.utils.LazyFile, workers: int | None) -> None:
    """Import FILE (JSON Lines, one action per line; '-' reads standard input).

    The whole file is validated and applied through the same rules as the commands,
    and written in one transaction: if any line is wrong, nothing is written and the
    error names the line and the field. The format is in the README.

    A file of 4,000 lines or more without standard.set lines is checked in several
    processes, each taking whole households with their cases and payments; the
    result is the same as in one process.

    \b
    Example:
      ledger import caseload.jsonl
    """
    def progress(n: int) -> None:
        click.echo(f"import: {n:,} lines checked", err=True)

    result = import_lines(ledger.app, file, progress=progress, workers=workers)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(result.actions.items()))
    click.echo(f"imported {result.lines} actions ({result.events} events): {detail}")
