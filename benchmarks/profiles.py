"""cProfile results as plain data: the top functions by cumulative and by own time, and where the time goes by layer."""

from __future__ import annotations

import pstats
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Layers a function's own time is attributed to (first match wins), for "where the time goes".
LAYERS: list[tuple[str, re.Pattern[str]]] = [
    ("database driver (sqlite3 / psycopg2 calls)", re.compile(r"sqlite3|psycopg2|_psycopg")),
    ("SHA-256 (hashlib)", re.compile(r"_hashlib|hashlib|sha256")),
    ("JSON encode/decode (stdlib json)", re.compile(r"^stdlib/json/|_json\.|'_json")),
    ("UUIDs (stdlib uuid)", re.compile(r"^stdlib/uuid")),
    ("SQLAlchemy", re.compile(r"^sqlalchemy/")),
    ("eventsourcing library", re.compile(r"^eventsourcing(_sqlalchemy)?/")),
    ("ledger (domain, application, persistence)", re.compile(r"^ledger/")),
    ("projections (read models, queries)", re.compile(r"^projections/")),
    ("benchmark harness", re.compile(r"^benchmarks/")),
]


def _where(key: tuple[str, int, str]) -> str:
    path, line, name = key
    if path == "~":
        return name  # a builtin: "{method 'execute' of 'sqlite3.Cursor' objects}"
    p = path
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in p:
            p = p.split(marker, 1)[1]
            if marker == "/lib/python3.":
                p = "stdlib/" + p.split("/", 1)[1]
            break
    else:
        try:
            p = str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            pass
    return f"{p}:{line}({name})"


def _layer(where: str) -> str:
    for name, pattern in LAYERS:
        if pattern.search(where):
            return name
    return "other (Python stdlib, builtins)"


def summarise(stats_path: str, top: int = 40, own: int = 10) -> dict[str, Any]:
    """Top functions by cumulative time and by own time, and own time per layer, from a cProfile dump."""
    st = pstats.Stats(stats_path, stream=sys.stderr)
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = st.total_tt  # type: ignore[attr-defined]
    rows = []
    for key, (cc, nc, tt, ct, _callers) in raw.items():
        rows.append({"where": _where(key), "ncalls": nc, "primitive": cc, "tottime": tt, "cumtime": ct})
    by_cum = sorted(rows, key=lambda r: r["cumtime"], reverse=True)
    by_own = sorted(rows, key=lambda r: r["tottime"], reverse=True)
    layers: dict[str, float] = {}
    for r in rows:
        layer = _layer(r["where"])
        layers[layer] = layers.get(layer, 0.0) + r["tottime"]
    return {
        "total": total,
        "cumulative": by_cum[:top],
        "own": by_own[:own],
        "layers": sorted(([k, v] for k, v in layers.items()), key=lambda kv: kv[1], reverse=True),
    }
