"""The raw limits of a database: what the same database does with the same rows and no application.

Everything here goes straight through the DB-API driver of the application's own engine
(same file, same pragmas, same server), so the ratio between an application figure and
its raw limit is the application's own overhead:

- :func:`bulk_insert`: the event rows a step wrote, inserted again into a scratch table
  with the same columns and keys (one ``executemany`` on SQLite, ``COPY`` on PostgreSQL),
  in one transaction; the rows are read and encoded before the clock starts.
- :func:`ordered_read`: the events table read in log order (``ORDER BY id``), streamed
  through the driver's cursor, every value decoded to a Python object.
- :func:`ordered_read` with ``hash_state``: the same read with a SHA-256 over each row's
  stored state bytes.
- :func:`ordered_read` with ``method="copy"`` (PostgreSQL): the same rows in the same order
  as ``COPY (SELECT ...) TO STDOUT (FORMAT binary)``, each row taken as it arrives and only
  its state cut out of it (to be hashed): the way ``audit verify`` reads on PostgreSQL.
- :func:`point_reads`: one indexed read of an aggregate's stored events by originator id.
- :func:`aggregate`: one GROUP BY over the payment rows of a period (the bulk of the
  statistics report's work, without the report).
"""

from __future__ import annotations

import hashlib
import io
import statistics
import struct
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Index, MetaData, Table
from sqlalchemy.engine import Engine

READ_BATCH = 10_000
INSERT_BATCH = 50_000
SCRATCH = "bench_scratch"


def _dialect(engine: Engine) -> str:
    return engine.dialect.name


def _scratch_table(events: Table) -> Table:
    """A table with the events table's columns, primary key and unique (originator_id, originator_version)."""
    table = Table(SCRATCH, MetaData(), *[c._copy() for c in events.columns])
    Index(f"{SCRATCH}_aggregate_idx", table.c.originator_id, table.c.originator_version, unique=True)
    return table


def _rows(cursor: Any, name: str, lo: int, hi: int, pg: bool) -> Iterator[list[tuple]]:
    """Stored event rows with lo < id <= hi, in batches, as the driver returns them."""
    mark = "%s" if pg else "?"
    position = lo
    while position < hi:
        top = min(position + INSERT_BATCH, hi)
        cursor.execute(
            f'SELECT originator_id, originator_version, topic, state FROM "{name}" '
            f"WHERE id > {mark} AND id <= {mark} ORDER BY id",
            (position, top),
        )
        batch = cursor.fetchall()
        if batch:
            yield batch
        position = top


def _copy_text(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def bulk_insert(engine: Engine, events: Table, lo: int, hi: int) -> dict[str, Any]:
    """Insert the event rows lo < id <= hi again into a scratch table in one transaction; time the writes only."""
    scratch = _scratch_table(events)
    scratch.drop(engine, checkfirst=True)
    scratch.create(engine)
    raw = engine.raw_connection()
    seconds = 0.0
    rows = 0
    try:
        conn = raw.driver_connection
        read = conn.cursor()
        write = conn.cursor()
        pg = _dialect(engine) == "postgresql"
        for batch in _rows(read, events.name, lo, hi, pg):
            if pg:
                buf = io.StringIO()
                for oid, version, topic, state in batch:
                    buf.write(f"{oid}\t{version}\t{_copy_text(topic)}\t\\\\x{bytes(state).hex()}\n")
                buf.seek(0)
                t = time.perf_counter()
                write.copy_expert(
                    f'COPY "{SCRATCH}" (originator_id, originator_version, topic, state) FROM STDIN', buf, size=1 << 20
                )
                seconds += time.perf_counter() - t
            else:
                t = time.perf_counter()
                write.executemany(
                    f'INSERT INTO "{SCRATCH}" (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)', batch
                )
                seconds += time.perf_counter() - t
            rows += len(batch)
        t = time.perf_counter()
        conn.commit()
        seconds += time.perf_counter() - t
        read.close()
        write.close()
    finally:
        raw.close()
        scratch.drop(engine, checkfirst=True)
    method = "COPY" if _dialect(engine) == "postgresql" else "executemany"
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds if seconds else None, "method": method}


# A binary COPY row of the events table up to the topic's length: field count, then (length,
# value) of id (bigint), originator id (uuid) and version (bigint).
_COPY_ROW = struct.Struct(">hiqi16siqi")


def _copy_read(engine: Engine, events: Table, hash_state: bool) -> dict[str, Any]:
    """The events table in id order through a binary COPY (PostgreSQL); every state hashed if asked."""
    raw = engine.raw_connection()
    rows = 0
    digest_bytes = 0
    unpack, size, sha256 = _COPY_ROW.unpack_from, _COPY_ROW.size, hashlib.sha256
    first = True  # the first row also carries the file header, whose length it gives

    def write(data: bytes) -> None:
        nonlocal rows, digest_bytes, first
        if first:
            first = False
            data = data[19 + int.from_bytes(data[15:19], "big"):]
        if len(data) <= 2:  # the trailer
            return
        rows += 1
        if hash_state:
            state_at = size + unpack(data)[-1] + 4
            sha256(memoryview(data)[state_at:]).digest()
            digest_bytes += len(data) - state_at

    class Sink:
        pass

    sink = Sink()
    sink.write = write  # type: ignore[attr-defined]
    try:
        conn = raw.driver_connection
        cursor = conn.cursor()
        t = time.perf_counter()
        cursor.copy_expert(
            f'COPY (SELECT id, originator_id, originator_version, topic, state FROM "{events.name}" ORDER BY id) '
            "TO STDOUT (FORMAT binary)",
            sink,
        )
        seconds = time.perf_counter() - t
        cursor.close()
        conn.rollback()
    finally:
        raw.close()
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds if seconds else None, "bytes_hashed": digest_bytes,
            "method": "COPY binary"}


def ordered_read(engine: Engine, events: Table, hash_state: bool = False, method: str = "cursor") -> dict[str, Any]:
    """Stream the whole events table in id order (optionally hashing every state); rows per second.

    ``method``: ``"cursor"`` fetches decoded rows through the driver's cursor (a named,
    server-side cursor on PostgreSQL); ``"copy"`` (PostgreSQL only) reads a binary COPY.
    """
    if method == "copy":
        if _dialect(engine) != "postgresql":
            raise ValueError("a COPY read needs PostgreSQL")
        return _copy_read(engine, events, hash_state)
    raw = engine.raw_connection()
    rows = 0
    digest_bytes = 0
    try:
        conn = raw.driver_connection
        pg = _dialect(engine) == "postgresql"
        sql = f'SELECT id, originator_id, originator_version, topic, state FROM "{events.name}" ORDER BY id'
        t = time.perf_counter()
        if pg:
            cursor = conn.cursor(name=f"bench_read_{uuid.uuid4().hex[:8]}")
            cursor.itersize = READ_BATCH
            cursor.execute(sql)
        else:
            cursor = conn.cursor()
            cursor.execute(sql)
        sha256 = hashlib.sha256
        while True:
            batch = cursor.fetchmany(READ_BATCH)
            if not batch:
                break
            rows += len(batch)
            if hash_state:
                for r in batch:
                    sha256(r[4]).digest()
                    digest_bytes += len(r[4])
        seconds = time.perf_counter() - t
        cursor.close()
        conn.rollback()
    finally:
        raw.close()
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds if seconds else None, "bytes_hashed": digest_bytes,
            "method": "cursor"}


def _percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    f = int(k)
    c = min(f + 1, len(ordered) - 1)
    return ordered[f] + (ordered[c] - ordered[f]) * (k - f)


def latencies(values: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _percentile(values, 0.50),
        "p95": _percentile(values, 0.95),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
    }


def point_reads(engine: Engine, events: Table, ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    """One indexed read of each aggregate's stored events (by originator id, in version order)."""
    raw = engine.raw_connection()
    out: list[float] = []
    try:
        conn = raw.driver_connection
        cursor = conn.cursor()
        pg = _dialect(engine) == "postgresql"
        sql = (
            f'SELECT originator_version, topic, state FROM "{events.name}" WHERE originator_id = %s ORDER BY originator_version'
            if pg
            else f'SELECT originator_version, topic, state FROM "{events.name}" WHERE originator_id = ? ORDER BY originator_version'
        )
        for i in ids:
            t = time.perf_counter()
            cursor.execute(sql, (str(i) if pg else i.bytes,))
            cursor.fetchall()
            out.append(time.perf_counter() - t)
        cursor.close()
        conn.rollback()
    finally:
        raw.close()
    return latencies(out)


def aggregate(engine: Engine, first_idx: int, last_idx: int, repeat: int = 5) -> dict[str, Any]:
    """One GROUP BY over the read model's payment rows of a period (median of ``repeat`` runs)."""
    from projections import tables as t

    name = t.payments.name
    raw = engine.raw_connection()
    times: list[float] = []
    rows = 0
    try:
        conn = raw.driver_connection
        cursor = conn.cursor()
        pg = _dialect(engine) == "postgresql"
        mark = "%s" if pg else "?"
        sql = (f'SELECT programme, SUM(amount_fen), SUM(persons), COUNT(*) FROM "{name}" '
               f"WHERE month_idx >= {mark} AND month_idx <= {mark} AND status <> 'returned' GROUP BY programme")
        for _ in range(repeat):
            t0 = time.perf_counter()
            cursor.execute(sql, (first_idx, last_idx))
            result = cursor.fetchall()
            times.append(time.perf_counter() - t0)
        rows = sum(int(r[3]) for r in result)
        cursor.close()
        conn.rollback()
    finally:
        raw.close()
    return {"seconds": statistics.median(times), "first": times[0], "rows": rows}
