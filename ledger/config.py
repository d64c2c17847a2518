"""Where the ledger's database is: one URL, from ``--db``, ``LEDGER_DATABASE_URL`` or the default.

The default is an embedded SQLite file in the user's data directory
(``$XDG_DATA_HOME/ledger/ledger.sqlite``, usually ``~/.local/share/ledger/ledger.sqlite``),
so a new user needs nothing else. PostgreSQL is given as a
``postgresql+psycopg2://user:password@host/dbname`` URL.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV_URL = "LEDGER_DATABASE_URL"


def default_database_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ledger" / "ledger.sqlite"


def default_url() -> str:
    return f"sqlite:///{default_database_path()}"


def resolve_url(url: str | None) -> str:
    """The database URL to use: the one given, else the environment, else the embedded default."""
    return url or os.environ.get(ENV_URL) or default_url()


SUPPORTED = ("sqlite:///", "postgresql://", "postgresql+psycopg2://")


def check_url(url: str) -> str:
    """Refuse a URL of a database the ledger does not run on, before anything connects."""
    if not url.startswith(SUPPORTED) or url in SUPPORTED:
        raise ValueError(
            f"unsupported database URL {mask_url(url)!r}: use sqlite:///PATH or postgresql+psycopg2://USER:PASSWORD@HOST/DB"
        )
    return url


def mask_url(url: str) -> str:
    """Hide a password in a database URL before it is printed."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
