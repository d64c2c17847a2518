"""``ledger grant``: temporary assistance grants (a case of programme ``temporary``)."""

from __future__ import annotations

from datetime import date

import click

from cli.context import Ledger, date_option, operator_option, pass_ledger
from cli.types import MONEY
from ledger.values import yuan


@click.group()
def grant() -> None:
    """Temporary assistance: approve a grant on a verified temporary case, then pay it."""


@grant.command("approve")
@click.argument("case_no", metavar="CASE")
@click.option("--type", "grant_type", required=True, help="Kind of emergency, e.g. illness, accident, disaster, fire.")
@click.option("--amount", type=MONEY, required=True, help="Grant amount in yuan.")
@click.option("--reason", required=True, help="What the grant is for.")
@click.option("--override-reason", default="", help="Required above 10 times the monthly dibao standard.")
@operator_option
@date_option
@pass_ledger
def approve(ledger: Ledger, case_no: str, grant_type: str, amount: int, reason: str, override_reason: str,
            operator: str, effective: date) -> None:
    """Approve a temporary grant on CASE (applied with --programme temporary and verified).

    \b
    Example:
      ledger grant approve T0001 --type illness --amount 1500 --reason "hospital bill" --operator li.na
    """
    ledger.app.approve_grant(case_no, grant_type=grant_type, amount_fen=amount, reason=reason,
                             override_reason=override_reason, operator=operator, effective=effective)
    click.echo(f"grant of {yuan(amount)} yuan approved on case {case_no}")


@grant.command("pay")
@click.argument("case_no", metavar="CASE")
@operator_option
@date_option
@pass_ledger
def pay(ledger: Ledger, case_no: str, operator: str, effective: date) -> None:
    """Pay the approved grant of CASE into the household's account.

    \b
    Example:
      ledger grant pay T0001 --operator zhao.min
    """
    ledger.app.pay_grant(case_no, operator=operator, effective=effective)
    click.echo(f"grant of case {case_no} paid")
