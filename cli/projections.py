"""``ledger projections``: status, catch-up and rebuild of the read models."""

from __future__ import annotations

import click

from cli.context import Ledger, pass_ledger
from cli.output import emit_json, format_option, progress_printer, table


@click.group()
def projections() -> None:
    """Read models: status, catch-up, rebuild."""


@projections.command("status")
@format_option(("table", "json"))
@pass_ledger
def status(ledger: Ledger, fmt: str) -> None:
    """Show each read model's position against the head of the event log.

    \b
    Example:
      ledger projections status
    """
    rows = ledger.projections.status()
    if fmt == "json":
        emit_json([{"name": s.name, "position": s.position, "head": s.head, "behind": s.behind} for s in rows])
    else:
        click.echo(table(["read model", "position", "head", "behind"], [[s.name, s.position, s.head, s.behind] for s in rows], right=[1, 2, 3]))


@projections.command("catch-up")
@pass_ledger
def catch_up(ledger: Ledger) -> None:
    """Apply every event recorded since the read models' position.

    \b
    Example:
      ledger projections catch-up
    """
    n = ledger.projections.catch_up(progress_printer("catch-up"))
    click.echo(f"applied {n:,} events")


@projections.command("rebuild")
@pass_ledger
def rebuild(ledger: Ledger) -> None:
    """Empty the read models and replay the whole event log into them.

    \b
    Example:
      ledger projections rebuild
    """
    n = ledger.projections.rebuild(progress_printer("rebuild"))
    click.echo(f"rebuilt from {n:,} events")
