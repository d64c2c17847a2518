"""``ledger account show``: the state of a case's account (DOMAIN §4)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click

from cli.context import Ledger, pass_ledger
from cli.output import emit_json, format_option, table
from cli.types import DATE, TIMESTAMP
from ledger.values import yuan, yuan_plain


@click.group()
def account() -> None:
    """Accounts: what a case was entitled to, what was paid, and what is owed."""


def _money_fields(data: Any) -> Any:
    """For JSON: every ``*_fen`` integer also as exact yuan text."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            out[k] = _money_fields(v)
            if k.endswith("_fen") and isinstance(v, int):
                out[k[:-4] + "_yuan"] = yuan_plain(v)
        return out
    if isinstance(data, list):
        return [_money_fields(v) for v in data]
    return data


def render_account(s: dict[str, Any]) -> str:
    h = s["household"]
    lines = [
        f"Case {s['case_no']}  {s['programme']} ({s['area']}), applied {s['applied_on']} via {s['channel']}"
        + ("  [single-person inclusion]" if s["single_person"] else ""),
        f"Household {h['household']}  {h['community']}  payee {h['payee_name']} {h['payee_account']}",
        f"Status on {s['on']}: {s['status']}"
        + (f"  monthly {yuan(s['monthly_amount_fen'])} yuan for {s['persons']} persons" if s.get("monthly_amount_fen") else ""),
    ]
    if s.get("grant"):
        g = s["grant"]
        lines.append(f"Grant: {g['type'] or '-'}  {yuan(g['amount_fen'])} yuan  paid on {g['paid_on'] or '-'}")
    if s["covered"]:
        lines.append("Covered persons:")
        lines.append(table(["name", "identity number", "relation", "status"],
                           [[p["name"], p["id_number"], p["relation"], p["status"]] for p in s["covered"]]))
    if s["months"]:
        lines.append("")
        lines.append(table(
            ["month", "entitled", "issued", "returned", "offset", "owed", "overpaid", "payments"],
            [[m["month"], yuan(m["entitled_fen"]), yuan(m["issued_fen"]), yuan(m["returned_fen"]), yuan(m["offset_fen"]),
              yuan(m["owed_fen"]), yuan(m["overpaid_fen"]), ", ".join(m["payments"])] for m in s["months"]],
            right=[1, 2, 3, 4, 5, 6],
        ))
    t = s["totals"]
    lines.append("")
    lines.append(
        f"Entitlement accrued {yuan(t['entitled_fen'])}   issued {yuan(t['issued_fen'])}   returned {yuan(t['returned_fen'])}   "
        f"refunded {yuan(t['refunded_fen'])}   net paid {yuan(t['net_paid_fen'])}   offset {yuan(t['offset_fen'])}"
    )
    lines.append(
        f"Arrears owed {yuan(t['arrears_fen'])}   overpayment established {yuan(t['overpayment_established_fen'])}   "
        f"recovered {yuan(t['recovered_fen'])}   debt {yuan(t['debt_fen'])}   "
        f"balance {yuan(abs(t['balance_fen']))} {t['balance']}"
    )
    lines.append("")
    lines.append("History:")
    lines.append(table(["effective", "recorded", "operator", "what"],
                       [[e["effective"], e["recorded_at"][:19].replace("T", " "), e["operator"], e["summary"]] for e in s["timeline"]]))
    return "\n".join(lines)


@account.command("show")
@click.argument("case_no", metavar="CASE")
@click.option("--on", "on", type=DATE, default=None,
              help="State on this date (effective time). Default: today, or the date of --known-at.")
@click.option("--known-at", type=TIMESTAMP, default=None, help="Only events recorded by this moment (recorded time).")
@format_option(("table", "json"))
@pass_ledger
def show(ledger: Ledger, case_no: str, on: date | None, known_at: datetime | None, fmt: str) -> None:
    """Show the account of CASE: household, covered persons, status, amount, history and balances.

    The balance compares the entitlement accrued up to the --on month with what was
    paid net of bank returns: a positive balance is arrears owed, a negative one overpaid.

    \b
    Example:
      ledger account show U0001 --on 2023-09-30
      ledger account show U0001 --format json
    """
    from projections.queries import account_state

    if known_at is not None:
        click.echo(f"as the record stood at {known_at.isoformat()}", err=True)
    with ledger.read() as conn:
        state = account_state(conn, case_no, on or (known_at.date() if known_at else date.today()), known_at)
    if fmt == "json":
        emit_json(_money_fields(state))
    else:
        click.echo(render_account(state))
