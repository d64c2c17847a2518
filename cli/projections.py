"""``ledger projections``: status, catch-up and rebuild of the read models."""

from __future__ import annotations

import click

from cli.context import Ledger, pass_ledger
from cli.output import emit_json, format_option, progress_printer, table
from projections.runner import PAGE_SIZE


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


page_option = click.option(
    "--page-size", type=click.IntRange(min=1), default=PAGE_SIZE, show_default=True,
    help="Log positions (events) applied per transaction.",
)


@projections.command("catch-up")
@page_option
@pass_ledger
def catch_up(ledger: Ledger, page_size: int) -> None:
    """Apply every event recorded since the read models' position.

    \b
    Example:
      ledger projections catch-up
    """
    n = ledger.projections.catch_up(progress_printer("catch-up"), page_size)
    click.echo(f"applied {n:,} events")


@projections.command("rebuild")
@page_option
@pass_ledger
def rebuild(ledger: Ledger, page_size: int) -> None:
    """Empty the read models and replay the whole event log into them.

    \b
    Example:
      ledger projections rebuild
    """
    n = ledger.projections.rebuild(progress_printer("rebuild"), page_size)
    click.echo(f"rebuilt from {n:,} events")


@projections.command("verify")
@pass_ledger
def verify(ledger: Ledger) -> None:
    """Recompute every read model from a fresh replay of the log and compare; exit 1 on any difference.

    \b
    Example:
      ledger projections verify
    """
    from projections.verify import verify as check

    with ledger.read() as conn:
        head = ledger.projections.view.position()
        problems = check(ledger.app, conn, head, progress_printer("replayed aggregates") if head > 20000 else None)
    for p in problems:
        click.echo(p)
    if problems:
        raise click.ClickException(f"{len(problems)} differences between the read models and the event log")
    click.echo(f"read models match a replay of all {head:,} events")
