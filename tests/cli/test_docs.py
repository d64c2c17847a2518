"""Every command is documented: a docstring with an example, help on every option, ``-h`` works."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from cli.main import ledger


def walk(cmd: click.Command, path: tuple[str, ...] = ("ledger",)) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from walk(cmd.commands[name], path + (name,))


ALL = list(walk(ledger))
LEAVES = [(p, c) for p, c in ALL if not isinstance(c, click.Group)]
GROUPS = [(p, c) for p, c in ALL if isinstance(c, click.Group)]


def _id(item: tuple[tuple[str, ...], click.Command]) -> str:
    return " ".join(item[0])


def test_the_tree_is_complete() -> None:
    names = {" ".join(p) for p, _ in ALL}
    for expected in (
        "ledger household register", "ledger household show", "ledger standard set", "ledger standard list",
        "ledger case apply", "ledger case verify", "ledger case approve", "ledger case list", "ledger grant approve",
        "ledger grant pay", "ledger payment issue", "ledger payment return", "ledger account show", "ledger import",
        "ledger projections status", "ledger projections catch-up", "ledger projections rebuild",
        "ledger report statistics", "ledger demo",
    ):
        assert expected in names
    assert len(LEAVES) >= 30


@pytest.mark.parametrize("item", LEAVES + [(("ledger",), ledger)], ids=_id)
def test_command_docstring_has_an_example(item: tuple[tuple[str, ...], click.Command]) -> None:
    path, cmd = item
    doc = cmd.help or ""
    assert doc.strip(), f"{' '.join(path)} has no docstring"
    assert "Example" in doc, f"{' '.join(path)}: no example in its docstring"
    # The example is runnable text: it names the command it documents.
    example = doc.split("Example", 1)[1]
    assert "ledger " + " ".join(path[1:]) in example, f"{' '.join(path)}: the example does not show the command"


@pytest.mark.parametrize("item", GROUPS, ids=_id)
def test_group_has_a_docstring(item: tuple[tuple[str, ...], click.Command]) -> None:
    path, cmd = item
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no docstring"
    assert cmd.get_short_help_str(), path


@pytest.mark.parametrize("item", ALL, ids=_id)
def test_every_option_has_help(item: tuple[tuple[str, ...], click.Command]) -> None:
    path, cmd = item
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help text"


@pytest.mark.parametrize("item", ALL, ids=_id)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_flag(item: tuple[tuple[str, ...], click.Command], flag: str) -> None:
    path, cmd = item
    r = CliRunner().invoke(ledger, list(path[1:]) + [flag], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Usage: ledger"), r.output
    if not isinstance(cmd, click.Group):
        assert "Example" in r.output
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[0] in r.output
