"""The ``ledger`` root group: database selection, error handling, and the noun groups."""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

import psycopg2

import click
import sqlalchemy.exc
from eventsourcing.persistence import IntegrityError, PersistenceError

from cli.context import Ledger
from ledger.config import ENV_URL, check_url, default_database_path, default_url, mask_url, resolve_url
from ledger.errors import LedgerError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _one_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e.__cause__ or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _line(text: str) -> str:
    """An error stays on one line, whatever the input it quotes."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class LedgerGroup(click.Group):
    """Turns the ledger's known failures into one-line errors with exit status 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for a in args:
            try:
                a.encode("utf-8")
            except UnicodeEncodeError:
                raise click.UsageError(f"argument {a.encode('utf-8', 'replace').decode()!r} is not valid UTF-8 text", ctx) from None
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as e:
            raise click.ClickException(_line(str(e))) from None
        except IntegrityError:
            raise click.ClickException("the record changed meanwhile, try again") from None
        except (sqlalchemy.exc.SQLAlchemyError, PersistenceError, sqlite3.Error, psycopg2.Error) as e:
            url = ctx.obj.describe_db() if isinstance(ctx.obj, Ledger) else "the database"
            raise click.ClickException(f"database error on {url}: {_one_line(e)}") from None
        except OSError as e:
            raise click.ClickException(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)) from None


@click.group(cls=LedgerGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--db",
    "db",
    envvar=ENV_URL,
    default=None,
    metavar="URL",
    help=f"Database URL (sqlite:///path or postgresql+psycopg2://user:pw@host/db). Env: {ENV_URL}. "
    f"Default: an embedded SQLite file at {default_database_path()}.",
)
@click.version_option(package_name="assistance-ledger", prog_name="ledger")
@click.pass_context
def ledger(ctx: click.Context, db: str | None) -> None:
    """An event-sourced ledger for social-assistance benefits.

    Every application, verification, decision and payment is an immutable event;
    accounts, case lists and statistics are computed from those events.

    \b
    Example:
      ledger demo
      ledger account show U0001 --on 2023-09-30
    """
    url = resolve_url(db)
    try:
        check_url(url)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--db' / LEDGER_DATABASE_URL") from None
    ctx.obj = Ledger(url, create_parent=url == default_url())


def _register() -> None:
    from cli import account, audit, case, demo, grant, household, importing, payment, payroll, projections, reconcile, report, standard

    for group in (
        household.household,
        standard.standard,
        case.case,
        grant.grant,
        payment.payment,
        payroll.payroll,
        reconcile.reconcile,
        account.account,
        audit.audit,
        importing.import_file,
        demo.demo,
        projections.projections,
        report.report,
    ):
        ledger.add_command(group)


_register()


def main() -> None:
    """Console entry point."""
    try:
        ledger.main(prog_name="ledger")
    except KeyboardInterrupt:
        click.echo("interrupted; nothing half-written (each write is one transaction)", err=True)
        sys.exit(130)


__all__ = ["ledger", "main", "mask_url"]
