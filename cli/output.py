"""Output: tables for people, JSON and CSV for machines. Money is printed from fen, never via float."""

from __future__ import annotations

import csv
import io
import json
import sys
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import click

FORMATS = ("table", "json", "csv")


def format_option(choices: Sequence[str] = FORMATS) -> Callable[[Any], Any]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default="table",
        show_default=True,
        help="Output format: a table for people, json or csv for machines.",
    )


def width(text: str) -> int:
    """Display width in a terminal: CJK characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad(text: str, n: int, right: bool = False) -> str:
    gap = " " * max(n - width(text), 0)
    return gap + text if right else text + gap


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(width(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(pad(c, widths[i], i in right) for i, c in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def emit_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(headers)
    w.writerows(rows)
    click.echo(buf.getvalue(), nl=False)


def progress_printer(label: str) -> Callable[[int, int], None]:
    """Progress on stderr (data stays on stdout): a line that updates in place on a terminal."""
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = 100 if total == 0 else done * 100 // total
        if pct == last[0] and done != total:
            return
        last[0] = pct
        end = "\r" if tty and done < total else "\n"
        if tty or done == total or pct % 10 == 0:
            click.echo(f"{label}: {done:,}/{total:,} ({pct}%)", err=True, nl=False)
            click.echo(end, err=True, nl=False)

    return show
