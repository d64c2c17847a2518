"""``ledger audit``: trails, chains of authority, seals, verification, audit packs and standing checks."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from cli.context import Ledger, date_option, operator_option, pass_ledger
from cli.output import emit_csv, emit_json, format_option, progress_printer, table
from cli.types import TIMESTAMP
from ledger.values import yuan, yuan_plain


@click.group()
def audit() -> None:
    """Audit: trail, explain, seal, verify, export, check."""


@audit.command("trail")
@click.argument("case_no", metavar="CASE")
@click.option("--known-at", type=TIMESTAMP, default=None, help="Only events recorded by this moment.")
@format_option()
@pass_ledger
def trail(ledger: Ledger, case_no: str, known_at: datetime | None, fmt: str) -> None:
    """Every event of CASE and its payments in log order: both times, the operator, what happened.

    \b
    Example:
      ledger audit trail U0001
      ledger audit trail U0001 --format csv > U0001-trail.csv
    """
    from projections.audit import trail as query

    with ledger.read() as conn:
        rows = query(conn, case_no, known_at)
    headers = ["position", "effective", "recorded_at", "operator", "event", "subject", "what"]
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        emit_csv(headers, [[r[h] for h in headers] for r in rows])
    else:
        click.echo(table(["pos", "effective", "recorded", "operator", "what"],
                         [[r["position"], r["effective"], r["recorded_at"][:19].replace("T", " "), r["operator"], r["what"]]
                          for r in rows], right=[0]))


@audit.command("explain")
@click.argument("ref", metavar="PAYMENT")
@format_option(("table", "json"))
@pass_ledger
def explain(ledger: Ledger, ref: str, fmt: str) -> None:
    """The chain of authority of PAYMENT: decision in force, its verification, the standard, the operators.

    Exits 1 if any link is missing or broken.

    \b
    Example:
      ledger audit explain P-U0001-202303-1
    """
    from ledger.audit import explain_payment

    chain = explain_payment(ledger.app, ref)
    if fmt == "json":
        emit_json(chain)
    else:
        p = chain["payment"]
        click.echo(f"Payment {p['ref']} ({p['kind']}) for {p['month']}: {yuan(p['gross_fen'])} yuan, {p['persons']} persons, "
                   f"{p['status']}; issued by {p['operator']} on {p['effective']} (recorded {p['recorded_at'][:19]})")
        if "decision" in chain:
            d = chain["decision"]
            click.echo(f"  authorised by {d['event']} of {d['effective']}: {yuan(d['amount_fen'])} yuan a month for "
                       f"{d['persons']} persons, approved by {d['approver']} (recorded {d['recorded_at'][:19]})")
        if "verification" in chain:
            v = chain["verification"]
            click.echo(f"  on verification no. {v['no']} by {v['verifier']} of {v['effective']}: "
                       f"{'passed' if v['passed'] else 'DID NOT PASS'}, income {yuan(v['income_fen'])}, valid until {v['valid_until']}")
        if "standard" in chain:
            s = chain["standard"]
            setter = f", set by {s['operator']} from {s['from_month']}" if "operator" in s else ""
            click.echo(f"  under the {s['programme']} standard for {s['area']} areas: {yuan(s['amount_fen'])} yuan per person{setter}")
        for f in chain["flags"]:
            click.echo(f"  ! {f}")
        if not chain["flags"]:
            click.echo("  every link is in place")
    if chain["flags"]:
        raise click.ClickException(f"{len(chain['flags'])} broken or missing links behind {ref}")


@audit.command("seal")
@operator_option
@date_option
@pass_ledger
def seal(ledger: Ledger, operator: str, effective: date) -> None:
    """Verify the whole record, then seal it: record the chain digest at the head and print it.

    Keep the printed digest outside the system; `ledger audit verify --against DIGEST`
    later proves that nothing up to that position was altered.

    \b
    Example:
      ledger audit seal --operator audit.chen
    """
    position, digest = ledger.app.seal(operator=operator, effective=effective)
    click.echo(f"sealed position {position}: {digest}")


def _print_report(report: object, what: str) -> None:
    r = report  # ChainReport
    for position, why in r.problems[:50]:  # type: ignore[attr-defined]
        click.echo(f"position {position}: {why}")
    if len(r.problems) > 50:  # type: ignore[attr-defined]
        click.echo(f"... and {len(r.problems) - 50} more")  # type: ignore[attr-defined]
    if r.against is not None:  # type: ignore[attr-defined]
        if r.against_position is None:  # type: ignore[attr-defined]
            click.echo(f"digest {r.against} is not in the recomputed chain: the record it sealed was altered")  # type: ignore[attr-defined]
        else:
            click.echo(f"digest {r.against} matches the record up to position {r.against_position}")  # type: ignore[attr-defined]
    if r.ok:  # type: ignore[attr-defined]
        click.echo(f"{what}: {r.events:,} events verified, {len(r.seals)} seals match; "  # type: ignore[attr-defined]
                   f"head {r.head_position} digest {r.head_digest}")  # type: ignore[attr-defined]
    else:
        first = r.first_bad  # type: ignore[attr-defined]
        where = f"; first bad position {first}" if first is not None else ""
        raise click.ClickException(f"{what} does not verify{where}")


@audit.command("verify")
@click.option("--against", default=None, metavar="DIGEST", help="A digest kept from an earlier seal.")
@click.option("--pack", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Check an audit pack directory instead of the database.")
@pass_ledger
def verify(ledger: Ledger, against: str | None, pack: Path | None) -> None:
    """Recompute the hash chain from the stored events and check it against the kept chain,
    every seal, and a digest you kept. Any changed, deleted, inserted or reordered event is
    reported with the first bad position; exit 1.

    \b
    Example:
      ledger audit verify
      ledger audit verify --against 3f5c...e9
      ledger audit verify --pack audit-2023q3
    """
    from ledger.audit import verify_log, verify_pack

    if pack is not None:
        _print_report(verify_pack(pack, against), f"audit pack {pack}")
        return
    report = verify_log(ledger.app, against, progress_printer("verified events"))
    _print_report(report, "the event log")


@audit.command("export")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write the pack into.")
@pass_ledger
def export(ledger: Ledger, out: Path) -> None:
    """Write an audit pack: the events as JSON Lines in log order with their chain links, the seals
    and a manifest, for `ledger audit verify --pack DIR` without the database.

    \b
    Example:
      ledger audit export --out audit-2023q3
    """
    from ledger.audit import export_pack

    try:
        manifest = export_pack(ledger.app, out, progress_printer("exported events"))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{out}: {manifest['events']:,} events, head {manifest['head_position']} digest {manifest['head_digest']}")


@audit.command("check")
@format_option()
@pass_ledger
def check(ledger: Ledger, fmt: str) -> None:
    """Standing anomaly checks over the whole record; exit 1 when there are findings.

    Payments for months now suspended or terminated and not recovered; decisions without a
    valid verification; verifier and approver the same; amounts above the standard in
    force; payments for a person recorded as deceased; one person covered by two cases in
    the same month; bank-result exceptions left unresolved.

    \b
    Example:
      ledger audit check
      ledger audit check --format csv > findings.csv
    """
    from projections.audit import check as run

    with ledger.read() as conn:
        findings = run(conn)
    headers = ["rule", "case", "month", "amount", "detail"]
    rows = [[f["rule"], f["case"], f["month"], "" if f["amount_fen"] is None else yuan_plain(f["amount_fen"]), f["detail"]]
            for f in findings]
    if fmt == "json":
        emit_json(findings)
    elif fmt == "csv":
        emit_csv(headers, rows)
    else:
        click.echo(table(headers, rows, right=[3]) if rows else "no findings")
    if findings:
        raise click.ClickException(f"{len(findings)} findings")
