"""``ledger payment``: issue one case's payment for a month, record the bank's answer, re-issue."""

from __future__ import annotations

from datetime import date

import click

from cli.context import Ledger, date_option, operator_option, pass_ledger
from cli.types import MONTH
from ledger.values import Month


@click.group()
def payment() -> None:
    """Payments: issue, settle, return (by the bank), and issue again after a return."""


@payment.command("issue")
@click.argument("case_no", metavar="CASE")
@click.option("--month", type=MONTH, required=True, help="The benefit month paid.")
@operator_option
@date_option
@pass_ledger
def issue(ledger: Ledger, case_no: str, month: Month, operator: str, effective: date) -> None:
    """Issue CASE's payment for a benefit month; after a bank return, issue it again.

    Prints the payment reference. A second payment for the same case and month is
    refused unless the bank returned the first.

    \b
    Example:
      ledger payment issue U0001 --month 2023-02 --operator zhao.min
    """
    ref = ledger.app.issue_payment(case_no, month, operator=operator, effective=effective)
    click.echo(ref)


@payment.command("settle")
@click.argument("ref")
@operator_option
@date_option
@pass_ledger
def settle(ledger: Ledger, ref: str, operator: str, effective: date) -> None:
    """Record that the bank paid payment REF.

    \b
    Example:
      ledger payment settle P-U0001-202302-1 --operator zhao.min
    """
    ledger.app.settle_payment(ref, operator=operator, effective=effective)
    click.echo(f"{ref} settled")


@payment.command("return")
@click.argument("ref")
@click.option("--reason", required=True, help="The bank's reason, e.g. account closed.")
@operator_option
@date_option
@pass_ledger
def return_(ledger: Ledger, ref: str, reason: str, operator: str, effective: date) -> None:
    """Record that the bank returned payment REF; the month is then owed again.

    \b
    Example:
      ledger payment return P-U0001-202302-1 --reason "account closed" --operator zhao.min
    """
    ledger.app.return_payment(ref, reason, operator=operator, effective=effective)
    click.echo(f"{ref} returned: {reason}")
