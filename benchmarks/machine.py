"""The machine and software a benchmark ran on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "ledger", "projections", "cli").splitlines()]
    # The last commit that changed the product code: committing documents or results meanwhile changes nothing.
    commit = git("log", "-1", "--format=%h", "--", "ledger", "projections", "cli") or git("rev-parse", "--short", "HEAD")
    return {"commit": commit, "product_files_changed": changed}


def code_version() -> str:
    """The commit, and a digest of the product code's uncommitted changes if any (``abc1234`` or ``abc1234+d41d8``)."""
    g = _git()
    if not g["product_files_changed"]:
        return g["commit"]
    import hashlib

    try:
        diff = subprocess.run(["git", "diff", "HEAD", "--", "ledger", "projections", "cli"], cwd=ROOT, capture_output=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        diff = b""
    return f"{g['commit']}+{hashlib.sha256(diff).hexdigest()[:6]}"


def describe(pg_version: str | None = None, pg_settings: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "packages": {p: _pkg(p) for p in ("eventsourcing", "eventsourcing-sqlalchemy", "sqlalchemy", "psycopg2-binary")},
        "git": _git(),
    }


#: The server settings that decide how much of a large log's indexes stays in memory and how often
#: the server checkpoints; a run on PostgreSQL records them beside its figures.
PG_SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem", "max_wal_size",
               "checkpoint_timeout", "synchronous_commit")


def postgres_version(engine: Any) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW server_version").scalar())


def postgres_settings(engine: Any) -> dict[str, str]:
    with engine.connect() as conn:
        return {name: str(conn.exec_driver_sql(f"SHOW {name}").scalar()) for name in PG_SETTINGS}
