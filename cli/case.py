"""``ledger case``: the life of a case, from application to termination, and the case list."""

from __future__ import annotations

from datetime import date, datetime

import click

from cli.context import Ledger, date_option, operator_option, pass_ledger
from cli.output import emit_csv, emit_json, format_option, table
from cli.types import DATE, ID_NUMBER, MONEY, MONTH, TIMESTAMP, EnumChoice, MoneyType
from ledger.values import Channel, Month, Programme, yuan, yuan_plain

STATUSES = ["applied", "active", "suspended", "terminated", "rejected", "granted", "paid", "approved, not yet started"]

covered_option = click.option(
    "--cover", "covered", type=ID_NUMBER, multiple=True,
    help="Identity number of a person covered; repeat for each. Default: every living member "
    "(or the single person of a single-person inclusion).",
)
add_on_options = [
    click.option("--add-on", "add_on", type=MONEY, default=None, help="A documented classified add-on above the standard, in yuan."),
    click.option("--add-on-reason", default="", help="Why the add-on is paid (required with --add-on)."),
]


def _with(options: list) -> callable:  # type: ignore[type-arg]
    def wrap(f):  # type: ignore[no-untyped-def]
        for o in reversed(options):
            f = o(f)
        return f
    return wrap


@click.group()
def case() -> None:
    """Cases: apply, verify, approve, reject, adjust, suspend, resume, terminate, list."""


@case.command("apply")
@click.argument("case_no", metavar="CASE")
@click.option("--household", required=True, help="Household number.")
@click.option("--programme", type=EnumChoice(Programme), required=True,
              help="urban-dibao, rural-dibao, tekun, or temporary (a temporary assistance grant).")
@click.option("--channel", type=EnumChoice(Channel), required=True,
              help="window (at the office), outreach (opened at the household's door) or referral.")
@click.option("--single-person", type=ID_NUMBER, default=None,
              help="Single-person inclusion: the seriously ill or severely disabled member applying alone.")
@operator_option
@date_option
@pass_ledger
def apply(ledger: Ledger, case_no: str, household: str, programme: Programme, channel: Channel,
          single_person: str | None, operator: str, effective: date) -> None:
    """Record application CASE of a household for a programme.

    \b
    Example:
      ledger case apply U0001 --household H0001 --programme urban-dibao --channel outreach \\
        --operator zhang.wei --date 2023-01-05
    """
    ledger.app.apply(case_no=case_no, household_no=household, programme=programme, channel=channel,
                     single_person=single_person, operator=operator, effective=effective)
    click.echo(f"case {case_no} applied for {programme.value} via {channel.value}")


@case.command("verify")
@click.argument("case_no", metavar="CASE")
@click.option("--income", type=MoneyType(allow_zero=True), required=True, help="Per-capita monthly income found, in yuan.")
@click.option("--assets-ok/--assets-exceed", required=True, help="Whether the household's assets are within the limits.")
@click.option("--valid-until", type=DATE, required=True, help="Last date this verification can support a decision.")
@click.option("--verifier", default=None, help="Who carried out the verification (default: the operator).")
@operator_option
@date_option
@pass_ledger
def verify(ledger: Ledger, case_no: str, income: int, assets_ok: bool, valid_until: date, verifier: str | None,
           operator: str, effective: date) -> None:
    """Record a means-test verification of CASE (verify before every grant).

    \b
    Example:
      ledger case verify U0001 --income 310 --assets-ok --valid-until 2023-12-31 \\
        --operator zhang.wei --date 2023-01-10
    """
    no = ledger.app.verify(case_no, income_fen=income, assets_ok=assets_ok, verifier=verifier or operator,
                           valid_until=valid_until, operator=operator, effective=effective)
    v = ledger.app.get_case(case_no).verifications[no - 1]
    click.echo(f"case {case_no}: verification no. {no} {'passed' if v.passed else 'did NOT pass'}")


@case.command("approve")
@click.argument("case_no", metavar="CASE")
@click.option("--amount", type=MONEY, required=True, help="Monthly amount in yuan.")
@click.option("--first-month", type=MONTH, required=True, help="First benefit month (may be in the past: arrears).")
@covered_option
@_with(add_on_options)
@operator_option
@date_option
@pass_ledger
def approve(ledger: Ledger, case_no: str, amount: int, first_month: Month, covered: tuple[str, ...],
            add_on: int | None, add_on_reason: str, operator: str, effective: date) -> None:
    """Approve CASE: monthly amount, persons covered, first benefit month.

    Needs a passing verification, still valid, by another operator.

    \b
    Example:
      ledger case approve U0001 --amount 900 --first-month 2023-02 --operator li.na --date 2023-01-20
    """
    ledger.app.approve(case_no, amount_fen=amount, first_month=first_month, covered=list(covered) or None,
                       add_on_fen=add_on or 0, add_on_reason=add_on_reason, operator=operator, effective=effective)
    c = ledger.app.get_case(case_no)
    click.echo(f"case {case_no} approved: {yuan(amount)} yuan a month for {len(c.covered)} persons from {first_month}")


@case.command("reject")
@click.argument("case_no", metavar="CASE")
@click.option("--reason", required=True, help="Why the application is rejected.")
@operator_option
@date_option
@pass_ledger
def reject(ledger: Ledger, case_no: str, reason: str, operator: str, effective: date) -> None:
    """Reject application CASE with a reason.

    \b
    Example:
      ledger case reject U0002 --reason "income above the standard" --operator li.na
    """
    ledger.app.reject(case_no, reason, operator=operator, effective=effective)
    click.echo(f"case {case_no} rejected")


@case.command("adjust")
@click.argument("case_no", metavar="CASE")
@click.option("--amount", type=MONEY, required=True, help="New monthly amount in yuan.")
@click.option("--from", "from_month", type=MONTH, required=True, help="First benefit month of the new amount.")
@covered_option
@_with(add_on_options)
@operator_option
@date_option
@pass_ledger
def adjust(ledger: Ledger, case_no: str, amount: int, from_month: Month, covered: tuple[str, ...],
           add_on: int | None, add_on_reason: str, operator: str, effective: date) -> None:
    """Change the monthly amount of CASE from a month on, on a new verification.

    \b
    Example:
      ledger case adjust U0001 --amount 750 --from 2023-06 --operator li.na
    """
    ledger.app.adjust(case_no, amount_fen=amount, from_month=from_month, covered=list(covered) or None,
                      add_on_fen=add_on or 0, add_on_reason=add_on_reason, operator=operator, effective=effective)
    click.echo(f"case {case_no}: {yuan(amount)} yuan a month from {from_month}")


@case.command("suspend")
@click.argument("case_no", metavar="CASE")
@click.option("--reason", required=True, help="Reason code or text, kept on record.")
@click.option("--from", "from_month", type=MONTH, required=True, help="First benefit month not paid.")
@operator_option
@date_option
@pass_ledger
def suspend(ledger: Ledger, case_no: str, reason: str, from_month: Month, operator: str, effective: date) -> None:
    """Suspend CASE from a month on.

    \b
    Example:
      ledger case suspend U0001 --reason review-overdue --from 2023-07 --operator li.na
    """
    ledger.app.suspend(case_no, reason, from_month, operator=operator, effective=effective)
    click.echo(f"case {case_no} suspended from {from_month}")


@case.command("resume")
@click.argument("case_no", metavar="CASE")
@click.option("--from", "from_month", type=MONTH, required=True, help="First benefit month paid again.")
@operator_option
@date_option
@pass_ledger
def resume(ledger: Ledger, case_no: str, from_month: Month, operator: str, effective: date) -> None:
    """Resume suspended CASE from a month on.

    \b
    Example:
      ledger case resume U0001 --from 2023-09 --operator li.na
    """
    ledger.app.resume(case_no, from_month, operator=operator, effective=effective)
    click.echo(f"case {case_no} resumed from {from_month}")


@case.command("terminate")
@click.argument("case_no", metavar="CASE")
@click.option("--reason", required=True, help="Reason code or text, kept on record.")
@click.option("--from", "from_month", type=MONTH, required=True, help="First benefit month no longer due.")
@operator_option
@date_option
@pass_ledger
def terminate(ledger: Ledger, case_no: str, reason: str, from_month: Month, operator: str, effective: date) -> None:
    """Terminate CASE from a month on.

    \b
    Example:
      ledger case terminate U0001 --reason income-above-standard --from 2023-10 --operator li.na
    """
    ledger.app.terminate(case_no, reason, from_month, operator=operator, effective=effective)
    click.echo(f"case {case_no} terminated from {from_month}")


@case.command("list")
@click.option("--programme", type=click.Choice([p.value for p in Programme]), default=None, help="Only this programme.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only cases with this status.")
@click.option("--household", default=None, help="Only this household's cases.")
@click.option("--community", default=None, help="Only cases of households in this community or village.")
@click.option("--limit", type=click.IntRange(min=1, max=10**9), default=None, help="At most this many cases.")
@click.option("--on", "on", type=DATE, default=None, help="Status and amount in force on this date (effective time).")
@click.option("--known-at", type=TIMESTAMP, default=None, help="As the record stood at this moment (recorded time).")
@format_option()
@pass_ledger
def list_(ledger: Ledger, programme: str | None, status: str | None, household: str | None, community: str | None,
          limit: int | None, on: date | None, known_at: datetime | None, fmt: str) -> None:
    """List cases with their status and current monthly amount.

    \b
    Example:
      ledger case list --programme urban-dibao --status suspended
      ledger case list --community Dongjie --format csv
    """
    from projections.queries import case_list

    with ledger.read() as conn:
        rows = case_list(conn, programme=programme, status=status, household=household, community=community, limit=limit,
                         on=on, known_at=known_at)
    headers = ["case", "household", "community", "programme", "channel", "status", "amount", "persons", "first_month", "applied_on"]
    if fmt == "json":
        emit_json([dict(r, amount=yuan_plain(r.pop("amount_fen"))) for r in rows])
    elif fmt == "csv":
        emit_csv(headers, [[r["case_no"], r["household"], r["community"], r["programme"], r["channel"], r["status"],
                            yuan_plain(r["amount_fen"]), r["persons"], r["first_month"] or "", r["applied_on"]] for r in rows])
    else:
        click.echo(table(headers, [[r["case_no"], r["household"], r["community"], r["programme"], r["channel"], r["status"],
                                    yuan(r["amount_fen"]), r["persons"], r["first_month"] or "", r["applied_on"]] for r in rows],
                         right=[6, 7]))
        click.echo(f"{len(rows)} cases", err=True)
