"""``ledger demo``: build the demonstration district and show what the ledger reports."""

from __future__ import annotations

import time

import click

from cli.context import Ledger, pass_ledger
from cli.output import progress_printer, table
from ledger.values import Month


@click.command("demo")
@click.option("--force", is_flag=True, help="Build even if the database already holds events.")
@pass_ledger
def demo(ledger: Ledger, force: bool) -> None:
    """Build a demonstration district (January to September 2023) and show its figures.

    Households, applications (window and outreach), single-person inclusions,
    verifications, approvals, monthly payments with bank returns and re-issues,
    suspensions, terminations, tekun cases and temporary grants are all recorded
    through the ledger's own commands. Then the statistics report and a few
    account states are printed.

    \b
    Example:
      ledger demo
      ledger report statistics --from 2023-01 --to 2023-09 --on 2023-09-30
    """
    from cli.account import render_account
    from cli.report import LABELS, statistics_rows
    from ledger.demo import build_demo
    from projections.queries import account_state, statistics

    if ledger.projections.head() and not force:
        raise click.ClickException(
            f"{ledger.describe_db()} already holds events; the demo needs an empty database "
            "(use --db sqlite:///demo.sqlite, or --force to add to this one)"
        )
    started = time.monotonic()
    stages: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in stages:
            stages[stage] = progress_printer(f"demo: {stage}")
        stages[stage](done, total)  # type: ignore[operator]

    summary = build_demo(ledger.app, progress)
    ledger.projections.catch_up(progress_printer("read models"))
    click.echo(f"demo district built in {time.monotonic() - started:.1f} s: {summary.describe()}", err=True)

    first, last = Month(2023, 1), Month(2023, 9)
    with ledger.read() as conn:
        s = statistics(conn, first, last, last.last_day())
        click.echo(LABELS["en"]["title"].format(first=first, last=last, on=last.last_day()))
        click.echo(table(LABELS["en"]["headers"], statistics_rows(s, "en"), right=list(range(1, 9))))
        for label, case_no in summary.showcase.items():
            click.echo("")
            click.echo(f"=== {label}: ledger account show {case_no} --on 2023-09-30")
            click.echo(render_account(account_state(conn, case_no, last.last_day())))
