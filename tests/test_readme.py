"""The README's examples are run, in order, against a fresh database, and their output compared.

Every ```console block is a transcript: ``$ command`` lines and the output that follows
them. The blocks after ``<!-- readme-test: demo -->`` run on a database where
``ledger demo`` was built first. Recorded times (which differ on every run) are
compared as placeholders. ``README_UPDATE=1`` rewrites the transcripts from a real run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMES = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00)?")
DEMO_TIME = re.compile(r"built in \d+\.\d s")
DIGEST = re.compile(r"\b[0-9a-f]{64}\b")

pytestmark = pytest.mark.slow


def normalise(text: str) -> str:
    # Recorded times, and so the chain digests, differ on every run.
    return DIGEST.sub("<digest>", DEMO_TIME.sub("built in N s", TIMES.sub("<recorded>", text))).rstrip()


def blocks(text: str) -> list[tuple[int, int, list[str]]]:
    """(start, end) line spans of console blocks after the demo marker, with their lines."""
    lines = text.split("\n")
    out, i, armed = [], 0, False
    while i < len(lines):
        if lines[i].strip() == "<!-- readme-test: demo -->":
            armed = True
        if armed and lines[i].strip() == "```console":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            out.append((i + 1, j, lines[i + 1 : j]))
            i = j
        i += 1
    return out


def commands(block: list[str]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in block:
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return out


def test_readme_examples_run_as_shown(tmp_path: Path) -> None:
    ledger = shutil.which("ledger")
    assert ledger, "the ledger command is installed with the project"
    env = dict(os.environ)
    env.pop("LEDGER_OPERATOR", None)
    env["LEDGER_DATABASE_URL"] = f"sqlite:///{tmp_path}/readme.sqlite"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    demo = subprocess.run(["ledger", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr

    text = README.read_text(encoding="utf-8")
    lines = text.split("\n")
    update = os.environ.get("README_UPDATE") == "1"
    exports: list[str] = []
    replacements = []
    for start, end, block in blocks(text):
        new_block = []
        for command, expected in commands(block):
            if command.startswith("export "):
                exports.append(command)
                new_block.append(f"$ {command}")
                continue
            script = "\n".join(["set -e", *exports, command])
            run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            actual = run.stdout.rstrip("\n")
            new_block.append(f"$ {command}")
            new_block.extend(actual.split("\n") if actual else [])
            # A command is expected to fail only where its transcript shows the error.
            expected_failure = any(line.startswith("Error:") for line in expected)
            if not update or not expected_failure:
                assert run.returncode == 0 or expected_failure, f"README line {start}: $ {command}\n{run.stderr}"
            if not update:
                assert "Traceback" not in run.stderr + run.stdout, f"{command}\n{run.stderr}"
                assert normalise(actual) == normalise("\n".join(expected)), f"README line {start}: $ {command}"
        replacements.append((start, end, new_block))
    if update:
        for start, end, new_block in reversed(replacements):
            lines[start:end] = new_block
        README.write_text("\n".join(lines), encoding="utf-8")


def test_ci_runs_the_readme_test_command() -> None:
    """CI runs exactly the test command the README gives."""
    text = README.read_text(encoding="utf-8")
    block = text.split("The tests (", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert block == "python -m pytest"
    assert "\n" + block + "\n" in ci
