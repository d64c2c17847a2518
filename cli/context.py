"""The context object built by the root group: the database URL, opened on first use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import click
import eventsourcing.persistence
import sqlalchemy.exc
from sqlalchemy.engine import Connection

from ledger.application import LedgerApp
from ledger.config import mask_url
from projections.runner import Projections


class Ledger:
    """What a command needs: the application, the read models, and how to print progress."""

    def __init__(self, url: str, quiet: bool = False, create_parent: bool = False) -> None:
        self.url = url
        self.quiet = quiet
        self.create_parent = create_parent

    @cached_property
    def app(self) -> LedgerApp:
        if self.create_parent:
            # The embedded default lives in the user's data directory; make it on first use.
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return LedgerApp(self.url)

    @cached_property
    def projections(self) -> Projections:
        return Projections(self.app)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Catch the read models up with the log, then give a connection to query them."""
        from cli.output import progress_printer

        behind = self.projections.head() - self.projections.view.position()
        progress = progress_printer("catching up read models") if behind > 5000 and not self.quiet else None
        try:
            self.projections.catch_up(progress)
        except (sqlalchemy.exc.ProgrammingError, eventsourcing.persistence.ProgrammingError) as e:
            # A read-only role (an auditor's) cannot move the read models; read them as they stand.
            if "permission denied" not in str(e):
                raise
            click.echo(f"warning: read-only access; the read models are {behind:,} events behind the log", err=True)
        engine = self.app.factory.datastore.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            yield conn

    def describe_db(self) -> str:
        return mask_url(self.url)


pass_ledger = click.make_pass_decorator(Ledger)


def operator_option(f: Any) -> Any:
    return click.option(
        "--operator",
        envvar="LEDGER_OPERATOR",
        required=True,
        help="Who records this (stored in the event). Env: LEDGER_OPERATOR.",
    )(f)


def date_option(f: Any) -> Any:
    from cli.types import DATE

    return click.option(
        "--date",
        "effective",
        type=DATE,
        default=lambda: date.today().isoformat(),
        show_default="today",
        help="The date this takes effect or was decided (YYYY-MM-DD).",
    )(f)
