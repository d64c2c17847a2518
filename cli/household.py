"""``ledger household``: register households and keep their members and bank account current."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from cli.context import Ledger, date_option, operator_option, pass_ledger
from cli.output import emit_json, format_option, table
from cli.types import ID_NUMBER, EnumChoice
from ledger.values import Area

MEMBER_HELP = (
    "A member as NAME:ID-NUMBER:RELATION[:FLAGS], FLAGS joined by '+' from ill, disabled, elderly, minor; "
    "RELATION is head, spouse, child, parent, grandchild, grandparent, sibling or other. Repeat for each member."
)


def parse_member(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise click.BadParameter(f"{text!r}: expected NAME:ID-NUMBER:RELATION[:FLAGS]", param_hint="'--member'")
    name, idn, relation = (p.strip() for p in parts[:3])
    flags = [f for f in (parts[3].split("+") if len(parts) == 4 else []) if f]
    return {"name": name, "id_number": idn, "relation": relation, "flags": flags}


def _members(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[dict[str, Any]]:
    return [parse_member(v) for v in values]


@click.group()
def household() -> None:
    """Households: register, members, death, move, bank account, show."""


@household.command("register")
@click.argument("number")
@click.option("--community", required=True, help="Community (urban) or village (rural) of the household.")
@click.option("--area", type=EnumChoice(Area), required=True, help="Urban or rural household registration.")
@click.option("--member", "members", multiple=True, required=True, callback=_members, help=MEMBER_HELP)
@click.option("--account", "payee_account", required=True, help="Bank account that benefits are paid into.")
@click.option("--payee", "payee_name", default=None, help="Account holder's name (default: the head of household).")
@operator_option
@date_option
@pass_ledger
def register(ledger: Ledger, number: str, community: str, area: Area, members: list[dict[str, Any]], payee_account: str, payee_name: str | None, operator: str, effective: date) -> None:
    """Register household NUMBER with its members.

    \b
    Example:
      ledger household register H0001 --community Dongjie --area urban \\
        --member "Wang Fang:140403198001010014:head:ill" \\
        --member "Li Ming:140403198203040022:spouse" \\
        --account 6222020000000001 --operator zhang.wei --date 2023-01-05
    """
    ledger.app.register_household(
        number=number, community=community, area=area, members=members,
        payee_account=payee_account, payee_name=payee_name, operator=operator, effective=effective,
    )
    click.echo(f"household {number} registered with {len(members)} members")


@household.command("add-member")
@click.argument("number")
@click.option("--member", "member", required=True, help=MEMBER_HELP.replace(" Repeat for each member.", ""))
@operator_option
@date_option
@pass_ledger
def add_member(ledger: Ledger, number: str, member: str, operator: str, effective: date) -> None:
    """Add a member to household NUMBER.

    \b
    Example:
      ledger household add-member H0001 --member "Wang Xiao:140403201501010016:child:minor" --operator zhang.wei
    """
    ledger.app.add_member(number, parse_member(member), operator=operator, effective=effective)
    click.echo(f"member added to household {number}")


@household.command("remove-member")
@click.argument("number")
@click.option("--id-number", type=ID_NUMBER, required=True, help="Identity number of the member.")
@click.option("--reason", required=True, help="Why the member leaves the household.")
@operator_option
@date_option
@pass_ledger
def remove_member(ledger: Ledger, number: str, id_number: str, reason: str, operator: str, effective: date) -> None:
    """Remove a member from household NUMBER (moved out, married out...).

    \b
    Example:
      ledger household remove-member H0001 --id-number 140403201501010016 --reason "moved out" --operator zhang.wei
    """
    ledger.app.remove_member(number, id_number, reason, operator=operator, effective=effective)
    click.echo(f"member removed from household {number}")


@household.command("record-death")
@click.argument("number")
@click.option("--id-number", type=ID_NUMBER, required=True, help="Identity number of the member.")
@operator_option
@date_option
@pass_ledger
def record_death(ledger: Ledger, number: str, id_number: str, operator: str, effective: date) -> None:
    """Record the death of a member of household NUMBER (--date is the date of death).

    \b
    Example:
      ledger household record-death H0001 --id-number 140403198001010014 --date 2023-06-02 --operator zhang.wei
    """
    ledger.app.record_death(number, id_number, operator=operator, effective=effective)
    click.echo(f"death recorded in household {number}")


@household.command("move")
@click.argument("number")
@click.option("--area", type=EnumChoice(Area), required=True, help="The new area of registration.")
@operator_option
@date_option
@pass_ledger
def move(ledger: Ledger, number: str, area: Area, operator: str, effective: date) -> None:
    """Move household NUMBER between urban and rural registration.

    \b
    Example:
      ledger household move H0001 --area rural --operator zhang.wei
    """
    ledger.app.move_household(number, area, operator=operator, effective=effective)
    click.echo(f"household {number} is now {area.value}")


@household.command("set-account")
@click.argument("number")
@click.option("--payee", "payee_name", required=True, help="Account holder's name.")
@click.option("--account", "payee_account", required=True, help="The new bank account.")
@operator_option
@date_option
@pass_ledger
def set_account(ledger: Ledger, number: str, payee_name: str, payee_account: str, operator: str, effective: date) -> None:
    """Change the bank account household NUMBER is paid into.

    \b
    Example:
      ledger household set-account H0001 --payee "Wang Fang" --account 6222020000000099 --operator zhao.min
    """
    ledger.app.change_account(number, payee_name, payee_account, operator=operator, effective=effective)
    click.echo(f"household {number} will be paid into the account ending {payee_account[-4:]}")


@household.command("show")
@click.argument("number")
@format_option(("table", "json"))
@pass_ledger
def show(ledger: Ledger, number: str, fmt: str) -> None:
    """Show household NUMBER, its members (identity numbers masked) and its cases.

    \b
    Example:
      ledger household show H0001
    """
    from projections.queries import household as query

    with ledger.read() as conn:
        h = query(conn, number)
    if fmt == "json":
        emit_json(h)
        return
    click.echo(f"Household {h['household']}  {h['community']} ({h['area']})  payee {h['payee_name']} {h['payee_account']}")
    click.echo(table(
        ["name", "identity number", "relation", "flags", "status"],
        [[m["name"], m["id_number"], m["relation"], ",".join(m["flags"]), m["status"]] for m in h["members"]],
    ))
    if h["cases"]:
        click.echo("cases: " + ", ".join(f"{c['case_no']} ({c['programme']}, {c['status']})" for c in h["cases"]))
