"""``ledger standard``: the local monthly standards per person, with their history."""

from __future__ import annotations

from datetime import date

import click
from sqlalchemy import select

from cli.context import Ledger, date_option, operator_option, pass_ledger
from cli.output import emit_csv, emit_json, format_option, table
from cli.types import MONEY, MONTH, EnumChoice
from ledger.values import Area, Month, Programme, yuan, yuan_plain

MONTHLY = [p for p in Programme if p.is_monthly]


@click.group()
def standard() -> None:
    """Local standards: set from a month on, list with history."""


@standard.command("set")
@click.option("--programme", type=click.Choice([p.value for p in MONTHLY]), required=True, help="The programme.")
@click.option("--area", type=EnumChoice(Area), required=True, help="Urban or rural.")
@click.option("--amount", type=MONEY, required=True, help="Monthly standard per person, in yuan.")
@click.option("--from", "from_month", type=MONTH, required=True, help="First benefit month it applies to.")
@operator_option
@date_option
@pass_ledger
def set_(ledger: Ledger, programme: str, area: Area, amount: int, from_month: Month, operator: str, effective: date) -> None:
    """Set the monthly standard of a programme in an area from a month on (earlier ones stay on record).

    \b
    Example:
      ledger standard set --programme urban-dibao --area urban --amount 760 --from 2023-01 --operator li.na
    """
    ledger.app.set_standard(Programme(programme), area, amount, from_month, operator=operator, effective=effective)
    click.echo(f"{programme} standard for {area.value} areas: {yuan(amount)} yuan per person from {from_month}")


@standard.command("list")
@format_option()
@pass_ledger
def list_(ledger: Ledger, fmt: str) -> None:
    """List every standard ever set, oldest first.

    \b
    Example:
      ledger standard list --format csv
    """
    from projections import tables as t

    with ledger.read() as conn:
        rows = conn.execute(
            select(t.standards).order_by(t.standards.c.programme, t.standards.c.area, t.standards.c.from_idx, t.standards.c.position)
        ).mappings().all()
    data = [
        {"programme": r["programme"], "area": r["area"], "from": str(Month.from_index(r["from_idx"])),
         "amount": yuan_plain(r["amount_fen"]), "recorded_at": str(r["recorded_at"])}
        for r in rows
    ]
    if fmt == "json":
        emit_json(data)
    elif fmt == "csv":
        emit_csv(list(data[0]) if data else ["programme", "area", "from", "amount", "recorded_at"], [list(d.values()) for d in data])
    else:
        click.echo(table(["programme", "area", "from", "yuan/person", "recorded at"],
                         [[d["programme"], d["area"], d["from"], yuan(r["amount_fen"]), d["recorded_at"][:19]] for d, r in zip(data, rows)],
                         right=[3]))
