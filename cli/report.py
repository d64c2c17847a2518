"""``ledger report statistics``: the monthly civil-affairs statistics (DOMAIN §5)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click

from cli.context import Ledger, pass_ledger
from cli.output import emit_csv, emit_json, format_option, table
from cli.types import DATE, MONTH, TIMESTAMP
from ledger.values import Month, yuan, yuan_plain

LABELS = {
    "en": {
        "title": "Social assistance statistics, benefit months {first} to {last}; caseload on {on}",
        "known": "as the record stood at {known}",
        "urban-dibao": "urban dibao",
        "rural-dibao": "rural dibao",
        "dibao": "urban and rural dibao",
        "tekun": "extreme-poverty support",
        "temporary": "temporary assistance",
        "headers": ["programme", "person-times", "paid (yuan)", "new households", "new persons",
                    "caseload households", "caseload persons", "suspended households", "suspended persons"],
    },
    "zh": {
        "title": "社会救助统计 {first} 至 {last}(在保截至 {on})",
        "known": "按 {known} 时的记录",
        "urban-dibao": "城市低保",
        "rural-dibao": "农村低保",
        "dibao": "城乡低保合计",
        "tekun": "特困供养",
        "temporary": "临时救助",
        "headers": ["项目", "人次", "发放金额(元)", "新增(户)", "新增(人)", "在保(户)", "在保(人)", "停发(户)", "停发(人)"],
    },
}


def _count(n: int) -> str:
    return f"{n:,}"


def statistics_rows(s: dict[str, Any], lang: str, money: Any = yuan, count: Any = _count) -> list[list[Any]]:
    """The report's rows; ``money`` and ``count`` format amounts and counts (for people or machines)."""
    L = LABELS[lang]
    p = s["programmes"]

    def row(label: str, times: int, paid: int, new_h: int, new_p: int, load: dict[str, int], susp: dict[str, int]) -> list[Any]:
        return [label, count(times), money(paid), count(new_h), count(new_p), count(load["households"]),
                count(load["persons"]), count(susp["households"]), count(susp["persons"])]

    rows = []
    for prog in ("urban-dibao", "rural-dibao"):
        r = p[prog]
        rows.append(row(L[prog], r["person_times"], r["paid_fen"], r["new_households"], r["new_persons"], r["caseload"], r["suspended"]))
    u, ru, tot = p["urban-dibao"], p["rural-dibao"], s["dibao_total"]
    rows.append(row(L["dibao"], u["person_times"] + ru["person_times"], u["paid_fen"] + ru["paid_fen"],
                    u["new_households"] + ru["new_households"], u["new_persons"] + ru["new_persons"], tot["caseload"], tot["suspended"]))
    t = p["tekun"]
    rows.append(row(L["tekun"], t["person_times"], t["paid_fen"], t["new_households"], t["new_persons"], t["caseload"], t["suspended"]))
    tmp = p["temporary"]
    rows.append([L["temporary"], count(tmp["person_times"]), money(tmp["paid_fen"]), "", "", "", "", "", ""])
    return rows


def _with_yuan(s: dict[str, Any]) -> dict[str, Any]:
    out = dict(s)
    out["programmes"] = {k: dict(v, paid_yuan=yuan_plain(v["paid_fen"])) for k, v in s["programmes"].items()}
    return out


@click.group()
def report() -> None:
    """Reports computed from the read models."""


@report.command("statistics")
@click.option("--from", "first", type=MONTH, required=True, help="First benefit month of the period.")
@click.option("--to", "last", type=MONTH, required=True, help="Last benefit month of the period.")
@click.option("--on", "on", type=DATE, default=None, help="Date of the caseload (default: the last day of --to).")
@click.option("--known-at", type=TIMESTAMP, default=None, help="As the record stood at this moment (recorded time).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True, help="Labels: English or the civil-affairs Chinese.")
@format_option()
@pass_ledger
def statistics(ledger: Ledger, first: Month, last: Month, on: date | None, known_at: datetime | None, lang: str, fmt: str) -> None:
    """Person-times, amount paid, newly added and caseload per programme.

    \b
    Example:
      ledger report statistics --from 2023-01 --to 2023-09 --on 2023-09-30
      ledger report statistics --from 2023-01 --to 2023-09 --lang zh --format csv
    """
    from projections.queries import statistics as query

    if last < first:
        raise click.BadParameter(f"--to {last} is before --from {first}", param_hint="'--to'")
    on = on or last.last_day()
    if known_at is not None:
        click.echo(LABELS[lang]["known"].format(known=known_at.isoformat()), err=True)
    with ledger.read() as conn:
        s = query(conn, first, last, on, known_at)
    L = LABELS[lang]
    if fmt == "json":
        emit_json(_with_yuan(s))
    elif fmt == "csv":
        emit_csv(L["headers"], statistics_rows(s, lang, yuan_plain, str))
    else:
        click.echo(L["title"].format(first=first, last=last, on=on.isoformat()))
        click.echo(table(L["headers"], statistics_rows(s, lang), right=list(range(1, 9))))
