"""Proof that nobody altered the record: the hash chain recomputed from the stored events.

The chain kept beside the events (written in the same transaction as each append) is
never trusted: :func:`verify_log` recomputes every link from the events themselves and
compares it with the kept chain (to name the first position that differs), with every
seal recorded in the log, and with a digest an auditor kept outside the system. While
the log is intact that takes one read of the events joined with their kept links (on
PostgreSQL a binary COPY); from the first difference on, the two chains are merged
position by position so that every changed, deleted, inserted or moved event is named. An
audit pack (:func:`export_pack`) carries the events and their links to files that
:func:`verify_pack` checks without the database.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventsourcing.utils import get_topic
from sqlalchemy import select

from ledger.chain import GENESIS, HEAD, next_link, oid_hex
from ledger.domain import Seal

if TYPE_CHECKING:
    from ledger.application import LedgerApp

SEAL_TOPIC = get_topic(Seal.Recorded)
PACK_FORMAT = "ledger-audit-pack/1"
PAGE = 10_000
PROGRESS_EVERY = 100_000

Progress = Callable[[int, int], None]


@dataclass
class ChainReport:
    """What a verification found."""

    events: int = 0
    head_position: int = 0
    head_digest: str = GENESIS.hex()
    seals: list[dict[str, Any]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    against: str | None = None
    against_position: int | None = None

    @property
    def first_bad(self) -> int | None:
        return min((p for p, _ in self.problems), default=None)

    @property
    def ok(self) -> bool:
        return not self.problems and (self.against is None or self.against_position is not None)


@dataclass(frozen=True)
class _Row:
    id: int
    originator_id: Any
    originator_version: int
    topic: str
    state: bytes


def _stream(app: LedgerApp, sql: str, params: tuple[int, ...]) -> Iterator[tuple[Any, ...]]:
    """Rows of a query in order, streamed through the driver (a server-side cursor on PostgreSQL)."""
    engine = app.recorder.datastore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        if conn.dialect.name == "postgresql":
            cursor = dbapi.cursor(name="ledger_audit_stream")
            cursor.itersize = PAGE
            cursor.execute(sql.replace("?", "%s"), params)
        else:
            cursor = dbapi.cursor()
            cursor.execute(sql, params)
        while rows := cursor.fetchmany(PAGE):
            yield from rows
        cursor.close()


def _events(app: LedgerApp, head: int, after: int | None = None) -> Iterator[Any]:
    """The stored events up to ``head`` (and after ``after``, if given) in log order."""
    table = app.recorder.events_table_name  # type: ignore[attr-defined]
    since, params = ("AND id > ? ", (head, after)) if after is not None else ("", (head,))
    sql = f"SELECT id, originator_id, originator_version, topic, state FROM {table} WHERE id <= ? {since}ORDER BY id"
    for r in _stream(app, sql, params):
        yield _Row(r[0], r[1], r[2], r[3], bytes(r[4]) if isinstance(r[4], memoryview) else r[4])


def _kept_chain(app: LedgerApp, head: int, after: int | None = None) -> Iterator[tuple[int, str]]:
    """The kept links up to ``head`` (and after ``after``, if given) in position order."""
    chain = app.recorder.chain_table.name  # type: ignore[attr-defined]
    since, params = ("AND position > ? ", (head, after)) if after is not None else ("", (head,))
    yield from _stream(app, f"SELECT position, link FROM {chain} WHERE position <= ? {since}ORDER BY position", params)


def _seal(position: int, state: bytes | str, report: ChainReport) -> dict[str, Any] | None:
    """The seal a stored ``Seal.Recorded`` event holds (None, and a problem, if it cannot be read)."""
    try:
        found = json.loads(state)
        return {"seal_position": position, "position": int(found["position"]), "digest": str(found["digest"])}
    except (ValueError, KeyError, TypeError):
        report.problems.append((position, "a seal that cannot be read (its stored event was altered)"))
        return None


def _by_position(seals: Iterable[dict[str, Any] | None]) -> dict[int, list[dict[str, Any]]]:
    """Seals by the position they seal (several seals may seal the same position)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for seal in seals:
        if seal is not None:
            out.setdefault(seal["position"], []).append(seal)
    return out


def _seals(app: LedgerApp, report: ChainReport) -> dict[int, list[dict[str, Any]]]:
    """The seals recorded in the log, by the position they seal."""
    found: list[dict[str, Any] | None] = []
    position = 0
    while True:
        notes = app.recorder.select_notifications(start=position, limit=PAGE, topics=[SEAL_TOPIC], inclusive_of_start=False)
        if not notes:
            return _by_position(found)
        found.extend(_seal(n.id, n.state, report) for n in notes)
        position = notes[-1].id


# --------------------------------------------------------------------------- the intact prefix
#
# Recomputing the chain is one SHA-256 per event, but merging it with the kept chain read
# as a second stream costs more than the hashing. While the log is intact, each event's
# kept link is the link recomputed over it, so one ordered read of the events joined with
# their kept links, checked row by row, proves the record up to the first row that is not
# so; counting the kept links then shows that the chain holds no link among them but
# those. That prefix is exactly what the merge (:func:`_walk`) would have found, so the
# merge takes over after it, only where something differs.


class _Sink:
    """The file COPY ... TO STDOUT writes to: each row goes to ``write`` as it arrives."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write


class _Stop(Exception):
    """A row the fast reading leaves to the merge (raised inside the PostgreSQL COPY)."""


@dataclass
class _Prefix:
    """The start of the log found intact: every event up to ``last`` chained as kept, in order.

    ``seal_events`` are the seal events among it (position, stored state); ``complete``
    says that the prefix is the whole log up to the head read.
    """

    events: int = 0
    last: int = 0
    link: bytes = GENESIS
    complete: bool = False
    against_at: int | None = None
    seal_events: list[tuple[int, bytes]] = field(default_factory=list)


_LINK_HEAD = b"%b" + HEAD  # the previous link, then the event's bytes before its state
_BAD_SQLITE_ROW = (TypeError, AttributeError, ValueError)


def _against_bytes(against: str | None) -> bytes | None:
    """The digest to look for as raw bytes, when it can be a link at all (64 lowercase hex digits)."""
    if against is not None and re.fullmatch("[0-9a-f]{64}", against):
        return bytes.fromhex(against)
    return None


def _prefix_sqlite(dbapi: Any, events: str, chain: str, total: int, against: bytes | None,
                   progress: Progress | None) -> _Prefix:
    """The intact prefix on SQLite: the events joined with their kept links, in one read.

    A row whose values are not of the stored types (text where bytes belong, say) ends
    the prefix: the merge formats it through :func:`ledger.chain.canonical`.
    """
    cursor = dbapi.cursor()
    cursor.execute(
        f"SELECT e.id, e.originator_id, e.originator_version, e.topic, e.state, c.link FROM {events} e "
        f"LEFT JOIN {chain} c ON c.position = e.id WHERE e.id <= ? ORDER BY e.id",
        (total,),
    )
    out = _Prefix()
    sha256, hexlify, head, seal_topic, seal_events = hashlib.sha256, binascii.hexlify, _LINK_HEAD, SEAL_TOPIC, out.seal_events
    previous, last, count, against_at, tick = GENESIS, 0, 0, None, PROGRESS_EVERY
    try:
        for position, oid, version, topic, state, kept in cursor:
            h = sha256(head % (previous, position, hexlify(oid), version, topic.encode()))
            h.update(state)
            link = h.digest()
            if kept != link.hex():
                break
            previous, last = link, position
            count += 1
            if link == against:
                against_at = position
            if topic == seal_topic:
                seal_events.append((position, bytes(state)))
            if count == tick:
                tick += PROGRESS_EVERY
                if progress:
                    progress(position, total)
        else:
            out.complete = True
    except _BAD_SQLITE_ROW:
        pass
    finally:
        cursor.close()
    out.events, out.last, out.link, out.against_at = count, last, previous, against_at
    return out


# The stored types the PostgreSQL reader decodes from COPY's binary rows (type oid: struct code).
_PG_INTEGERS = {20: "q", 23: "i"}  # bigint, integer
_PG_TEXT = {25, 1043}  # text, character varying
_PG_UUID, _PG_BYTEA = 2950, 17
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _pg_row_struct(cursor: Any, events: str, chain: str) -> struct.Struct | None:
    """The fixed start of a binary COPY row of the joined read, if the tables are as the ledger made them.

    The row is (id, originator id, version, kept link, topic, state). Every event column
    must be NOT NULL and of the stored type, so that only the kept link can be absent
    (its length is checked on every row) and the state is the rest of the row.
    """
    cursor.execute(
        "SELECT attrelid = to_regclass(%s), attname, atttypid::int, attnotnull FROM pg_attribute "
        "WHERE attrelid IN (to_regclass(%s), to_regclass(%s)) AND attnum > 0 AND NOT attisdropped",
        (events, events, chain),
    )
    types: dict[tuple[bool, str], int | None] = {}
    for is_events, name, type_oid, notnull in cursor.fetchall():
        types[(is_events, name)] = type_oid if notnull or not is_events else None

    def of(name: str) -> int | None:
        return types.get((True, name))

    id_code, version_code = _PG_INTEGERS.get(of("id") or 0), _PG_INTEGERS.get(of("originator_version") or 0)
    if (id_code is None or version_code is None or of("originator_id") != _PG_UUID or of("topic") not in _PG_TEXT
            or of("state") != _PG_BYTEA or types.get((False, "link")) not in _PG_TEXT):
        return None
    # The field count, then (length, value) of id, originator id, version and kept link, then the topic's length.
    return struct.Struct(f">hi{id_code}i16si{version_code}i64si")


def _prefix_postgres(dbapi: Any, events: str, chain: str, total: int, against: bytes | None,
                     progress: Progress | None) -> _Prefix | None:
    """The intact prefix on PostgreSQL: the events joined with their kept links, in one binary COPY.

    psycopg2's row-by-row decoding (a UUID object per row, bytea sent as hex) costs more
    than the hashing; COPY in binary sends the stored bytes as they are, and each row is
    checked as it arrives. The join is a merge of the two primary keys in order (the
    planner is told to use nothing else, for this transaction only). None when the tables
    or the client encoding are not those the rows are decoded for.
    """
    if getattr(dbapi, "encoding", None) != "UTF8":
        return None
    cursor = dbapi.cursor()
    try:
        row = _pg_row_struct(cursor, events, chain) if hasattr(cursor, "copy_expert") else None
        if row is None:
            return None
        for setting in ("enable_hashjoin", "enable_nestloop", "enable_sort"):
            cursor.execute(f"SET LOCAL {setting} = off")
        out = _Prefix()
        unpack, size = row.unpack_from, row.size
        sha256, hexlify, head, seal_events = hashlib.sha256, binascii.hexlify, _LINK_HEAD, out.seal_events
        seal_topic = SEAL_TOPIC.encode()
        previous, last, count, against_at, tick = GENESIS, 0, 0, None, PROGRESS_EVERY
        started = ended = False

        def write(data: bytes) -> None:
            # One row of the COPY (the first also carries the file header, the last is the trailer).
            nonlocal previous, last, count, against_at, tick, started, ended
            if not started:
                started = True
                if data[:11] != _COPY_SIGNATURE:
                    raise _Stop
                data = data[19 + int.from_bytes(data[15:19], "big"):]
                if not data:
                    return
            try:
                _, _, position, _, oid, _, version, kept_size, kept, topic_size = unpack(data)
            except struct.error:
                if data == b"\xff\xff":
                    ended = True
                    return
                raise _Stop from None
            if kept_size != 64:
                raise _Stop
            state_at = size + topic_size
            topic = data[size:state_at]
            h = sha256(head % (previous, position, hexlify(oid), version, topic))
            h.update(memoryview(data)[state_at + 4:])
            link = h.digest()
            if hexlify(link) != kept:
                raise _Stop
            previous, last = link, position
            count += 1
            if link == against:
                against_at = position
            if topic == seal_topic:
                seal_events.append((position, data[state_at + 4:]))
            if count == tick:
                tick += PROGRESS_EVERY
                if progress:
                    progress(position, total)

        query = (
            f"SELECT e.id, e.originator_id, e.originator_version, c.link, e.topic, e.state FROM {events} e "
            f"LEFT JOIN {chain} c ON c.position = e.id AND c.position <= {int(total)} "
            f"WHERE e.id <= {int(total)} ORDER BY e.id"
        )
        try:
            cursor.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", _Sink(write))
        except _Stop:
            ended = False
        out.complete = ended
        out.events, out.last, out.link, out.against_at = count, last, previous, against_at
        return out
    finally:
        cursor.close()
        dbapi.rollback()


_PREFIX_READERS: dict[str, Callable[[Any, str, str, int, bytes | None, Progress | None], _Prefix | None]] = {
    "sqlite": _prefix_sqlite,
    "postgresql": _prefix_postgres,
}


def _intact_prefix(app: LedgerApp, total: int, against: str | None, progress: Progress | None) -> _Prefix | None:
    """The start of the log proven intact, with no kept link among it but those of its events.

    None when nothing could be proven so: no fast reader for the database, the first row
    already differs, or the kept chain holds a link that no event of the prefix has. A
    prefix is ``complete`` only if the kept chain also holds nothing after it.
    """
    engine = app.recorder.datastore.engine  # type: ignore[attr-defined]
    reader = _PREFIX_READERS.get(engine.dialect.name)
    if reader is None:
        return None
    events = app.recorder.events_table_name  # type: ignore[attr-defined]
    chain = app.recorder.chain_table.name  # type: ignore[attr-defined]
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        prefix = reader(dbapi, events, chain, total, _against_bytes(against), progress)
        if prefix is None or not prefix.events:
            return None
        mark = "%s" if engine.dialect.name == "postgresql" else "?"
        cursor = dbapi.cursor()
        cursor.execute(
            f"SELECT COUNT(CASE WHEN position <= {mark} THEN 1 END), COUNT(*) FROM {chain} WHERE position <= {mark}",
            (prefix.last, total),
        )
        up_to_last, up_to_total = cursor.fetchone()
        cursor.close()
        dbapi.rollback()
    if up_to_last != prefix.events:
        return None  # a kept link without its event among the prefix: the merge names it
    if up_to_total != up_to_last:
        prefix.complete = False  # kept links after the last event: the merge names them
    return prefix


def _kept_links(app: LedgerApp, positions: list[int]) -> dict[int, str]:
    """The kept links at some positions (those that have one)."""
    chain = app.recorder.chain_table  # type: ignore[attr-defined]
    out: dict[int, str] = {}
    for i in range(0, len(positions), 500):
        q = select(chain.c.position, chain.c.link).where(chain.c.position.in_(positions[i : i + 500]))
        out.update((int(p), str(link)) for p, link in app.recorder._read(q))  # type: ignore[attr-defined]
    return out


# --------------------------------------------------------------------------- the merge


def _head(app: LedgerApp) -> int:
    """The last position of the log or of the kept chain, whichever is further on."""
    engine = app.recorder.datastore.engine  # type: ignore[attr-defined]
    events = app.recorder.events_table_name  # type: ignore[attr-defined]
    chain = app.recorder.chain_table.name  # type: ignore[attr-defined]
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        cursor = dbapi.cursor()
        cursor.execute(f"SELECT (SELECT MAX(id) FROM {events}), (SELECT MAX(position) FROM {chain})")
        last_event, last_link = cursor.fetchone()
        cursor.close()
        dbapi.rollback()
    return max(last_event or 0, last_link or 0)


def _link_bytes(kept: Any) -> bytes | None:
    """A kept link as bytes (None if it is not hex text: the chain table was altered)."""
    try:
        return bytes.fromhex(kept)
    except (TypeError, ValueError):
        return None


def _walk(app: LedgerApp, report: ChainReport, seals: dict[int, list[dict[str, Any]]], total: int,
          after: int | None, previous: bytes, progress: Progress | None) -> None:
    """Recompute the chain after position ``after`` (from the start if None) and merge it with the kept chain.

    ``previous`` is the link at ``after``, where the recomputed and the kept chain agree.
    Every difference is named by its position in ``report``.
    """
    kept = _kept_chain(app, total, after)
    kept_next = next(kept, None)
    kept_previous = previous
    for n in _events(app, total, after):
        while kept_next is not None and kept_next[0] < n.id:
            report.problems.append((kept_next[0], "in the chain but missing from the log (an event was deleted)"))
            if (found := _link_bytes(kept_next[1])) is not None:
                kept_previous = found
            kept_next = next(kept, None)
        in_step = previous == kept_previous
        previous = next_link(previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
        link = previous.hex()
        if kept_next is None or kept_next[0] != n.id:
            report.problems.append((n.id, "an event that is not in the chain (inserted outside the ledger)"))
        elif (kept_link := _link_bytes(kept_next[1])) is None:
            report.problems.append((n.id, "the kept link cannot be read (the chain was altered)"))
            # The next event is checked on its own against the link this one should have had.
            kept_previous = next_link(kept_previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
            kept_next = next(kept, None)
        else:
            # Each event is also checked on its own against the kept chain, so that one
            # altered event is named once instead of every link after it. While the
            # recomputed chain agrees with the kept one, that is the same computation.
            local = link if in_step else next_link(
                kept_previous, n.id, n.originator_id, n.originator_version, n.topic, n.state
            ).hex()
            if kept_next[1] != local:
                report.problems.append((n.id, "the event differs from the one chained when it was recorded (changed or moved)"))
            kept_previous = kept_link
            kept_next = next(kept, None)
        for seal in seals.get(n.id, []):
            seal["ok"] = seal["digest"] == link
        if report.against == link:
            report.against_position = n.id
        report.events += 1
        report.head_position, report.head_digest = n.id, link
        if progress and report.events % PROGRESS_EVERY == 0:
            progress(n.id, total)
    while kept_next is not None:
        report.problems.append((kept_next[0], "in the chain but missing from the log (an event was deleted)"))
        kept_next = next(kept, None)


def verify_log(app: LedgerApp, against: str | None = None, progress: Progress | None = None) -> ChainReport:
    """Recompute the chain from the stored events and check it against the kept chain, the seals and ``against``.

    The intact start of the log is proven in one joined read (:func:`_intact_prefix`);
    from the first event that is not, the recomputed and the kept chain are merged
    position by position (:func:`_walk`), so that each changed, deleted, inserted or moved
    event is named.
    """
    report = ChainReport(against=against.lower() if against else None)
    # Everything is read up to the head as it is now, so appends made meanwhile are left out.
    total = _head(app)
    prefix = _intact_prefix(app, total, report.against, progress)
    if prefix is None:
        seals = _seals(app, report)
        _walk(app, report, seals, total, None, GENESIS, progress)
    else:
        if prefix.complete:
            # The whole log was read: its seals are the seal events among it.
            seals = _by_position([_seal(position, state, report) for position, state in prefix.seal_events])
        else:
            seals = _seals(app, report)
        report.events, report.head_position, report.head_digest = prefix.events, prefix.last, prefix.link.hex()
        report.against_position = prefix.against_at
        # In the prefix every event's kept link is its recomputed link, and no other position has one.
        covered = sorted(p for p in seals if p <= prefix.last)
        for position, link in _kept_links(app, covered).items():
            for seal in seals[position]:
                seal["ok"] = seal["digest"] == link
        if not prefix.complete:
            _walk(app, report, seals, total, prefix.last, prefix.link, progress)
    for position, found in sorted(seals.items()):
        for seal in found:
            seal.setdefault("ok", False)
            report.seals.append(seal)
            if not seal["ok"]:
                report.problems.append(
                    (position, f"the seal recorded at {seal['seal_position']} does not match the events up to {position}")
                )
    report.problems.sort()
    if progress:
        progress(total, total)
    return report


# --------------------------------------------------------------------------- audit packs


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_pack(app: LedgerApp, out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Write events (JSON Lines, log order, with their links), seals and a manifest to ``out``."""
    report = verify_log(app)
    if report.problems:
        position, why = report.problems[0]
        raise ValueError(f"the record does not verify (position {position}: {why}); no pack written")
    out.mkdir(parents=True, exist_ok=True)
    previous = GENESIS
    count = 0
    total = app.recorder.max_notification_id() or 0
    with (out / "events.jsonl").open("w", encoding="utf-8") as f:
        for n in _events(app, report.head_position):
            previous = next_link(previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
            f.write(json.dumps({
                "position": n.id,
                "originator_id": oid_hex(n.originator_id),
                "originator_version": n.originator_version,
                "topic": n.topic,
                "state": bytes(n.state).decode("utf-8"),
                "link": previous.hex(),
            }, ensure_ascii=False) + "\n")
            count += 1
            if progress and count % 100_000 == 0:
                progress(n.id, total)
    seals = [{k: s[k] for k in ("seal_position", "position", "digest")} for s in report.seals]
    (out / "seals.json").write_text(json.dumps(seals, indent=2) + "\n", encoding="utf-8")
    manifest = {
        "format": PACK_FORMAT,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "events": count,
        "head_position": report.head_position,
        "head_digest": report.head_digest,
        "files": {name: _sha256(out / name) for name in ("events.jsonl", "seals.json")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def verify_pack(pack: Path, against: str | None = None) -> ChainReport:
    """Check an audit pack on its own: file digests, every link, the seals and the head."""
    report = ChainReport(against=against.lower() if against else None)
    try:
        manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
        seals = json.loads((pack / "seals.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        report.problems.append((0, f"the pack is incomplete or unreadable: {e}"))
        return report
    if manifest.get("format") != PACK_FORMAT:
        report.problems.append((0, f"not an audit pack of this ledger (format {manifest.get('format')!r})"))
        return report
    for name, digest in manifest.get("files", {}).items():
        if _sha256(pack / name) != digest:
            report.problems.append((0, f"{name} differs from the manifest's digest"))
    wanted: dict[int, list[dict[str, Any]]] = {}
    for s in seals:
        wanted.setdefault(int(s["position"]), []).append(dict(s))
    previous = GENESIS
    with (pack / "events.jsonl").open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            try:
                e = json.loads(line)
                previous = next_link(previous, e["position"], e["originator_id"], e["originator_version"], e["topic"],
                                     e["state"].encode("utf-8"))
            except (ValueError, KeyError, TypeError):
                report.problems.append((0, f"events.jsonl line {line_no} cannot be read"))
                continue
            link = previous.hex()
            if e.get("link") != link:
                report.problems.append((e["position"], "the event differs from its recorded link"))
            for s in wanted.get(e["position"], []):
                s["ok"] = s["digest"] == link
            if report.against == link:
                report.against_position = e["position"]
            report.events += 1
            report.head_position, report.head_digest = e["position"], link
    for position, found in sorted(wanted.items()):
        for s in found:
            s.setdefault("ok", False)
            report.seals.append(s)
            if not s["ok"]:
                report.problems.append((position, f"the seal recorded at {s['seal_position']} does not match the events up to {position}"))
    if report.events != manifest.get("events") or report.head_digest != manifest.get("head_digest"):
        report.problems.append((report.head_position, "the events do not end where the manifest says"))
    report.problems.sort()
    return report


# --------------------------------------------------------------------------- chain of authority


def explain_payment(app: LedgerApp, ref: str) -> dict[str, Any]:
    """The chain of authority behind one payment, read from the stored events themselves.

    Payment -> the approval or adjustment in force for its month -> the verification that
    decision relied on -> the standard in force, with the operator and both times of
    every step. Every missing or broken link is listed under ``flags``.
    """
    from ledger.application import parse_payment_ref
    from ledger.domain import Case, Payment, Standard, case_id, household_id, payment_id, standard_id
    from ledger.errors import NotFound
    from ledger.values import Month, dibao_for, yuan

    case_no, month, issue_no = parse_payment_ref(ref)
    pay_events = list(app.events.get(payment_id(case_no, month, issue_no)))
    if not pay_events:
        raise NotFound(f"no payment {ref}")
    w = app.unit_of_work()
    payment: Payment = w.find(payment_id(case_no, month, issue_no))
    case: Case = w.find(case_id(case_no))
    household = w.find(household_id(case.household_no))
    case_events = list(app.events.get(case_id(case_no)))
    flags: list[str] = []

    def step(e: Any, **more: Any) -> dict[str, Any]:
        return {"event": type(e).__qualname__, "operator": e.operator, "effective": e.effective.isoformat(),
                "recorded_at": e.timestamp.isoformat(), **more}

    issued = pay_events[0]
    chain: dict[str, Any] = {
        "payment": step(issued, ref=payment.ref, month=str(payment.month), kind=payment.kind, gross_fen=payment.gross_fen,
                        offset_fen=payment.offset_fen, amount_fen=payment.amount_fen, persons=payment.persons,
                        status=payment.status, payee_account_ending=payment.payee_account[-4:]),
    }
    if not case.is_monthly:
        flags.append("the case is not a monthly programme")
    decisions = [e for e in case_events if isinstance(e, (Case.Approved, Case.AmountAdjusted, Case.LegacyApproved))
                 and e.timestamp <= issued.timestamp]
    in_force = [e for e in decisions if getattr(e, "first_month", None) or getattr(e, "from_month", None)]
    in_force = [e for e in in_force if (getattr(e, "first_month", None) or e.from_month) <= month]
    decision = in_force[-1] if in_force else None
    if decision is None:
        flags.append(f"no approval or adjustment in force for {month} when the payment was issued")
    else:
        legacy = isinstance(decision, Case.LegacyApproved)
        approver = decision.approver if legacy else decision.operator
        chain["decision"] = step(decision, approver=approver, amount_fen=decision.amount_fen, persons=len(decision.covered),
                                 add_on_fen=getattr(decision, "add_on_fen", 0), verification_no=decision.verification_no,
                                 legacy_reference=getattr(decision, "legacy_reference", None))
        if legacy:
            flags.append(f"the approval was carried over from a legacy system ({decision.legacy_reference}) without the ledger's checks")
        verifications = [e for e in case_events if isinstance(e, Case.Verified)]
        v = verifications[decision.verification_no - 1] if 0 < decision.verification_no <= len(verifications) else None
        if v is None:
            flags.append("no verification behind the decision")
        else:
            chain["verification"] = step(v, no=decision.verification_no, verifier=v.verifier, income_fen=v.income_fen,
                                         assets_ok=v.assets_ok, passed=v.passed, valid_until=v.valid_until.isoformat())
            if not v.passed:
                flags.append(f"verification no. {decision.verification_no} did not pass")
            if v.valid_until < decision.effective:
                flags.append(f"verification no. {decision.verification_no} had expired ({v.valid_until}) when the decision was made")
            if v.effective > decision.effective:
                flags.append(f"verification no. {decision.verification_no} is dated after the decision ({v.effective})")
            if v.timestamp > decision.timestamp:
                flags.append("the verification was recorded after the decision")
            if approver in (v.verifier, v.operator):
                flags.append(f"{approver} both verified and approved (four eyes)")
    programme = case.programme if case.is_monthly else dibao_for(case.area)
    std: Standard | None = w.find(standard_id(programme, case.area))
    amount_std = std.in_force(month) if std else None
    set_events = [e for e in app.events.get(standard_id(programme, case.area)) if isinstance(e, Standard.Set)] if std else []
    setting = [e for e in set_events if e.from_month <= month]
    if amount_std is None:
        flags.append(f"no {programme.value} standard in force in {month}")
    else:
        last = setting[-1] if setting else None
        chain["standard"] = {"programme": programme.value, "area": case.area.value, "amount_fen": amount_std,
                             **(step(last, from_month=str(last.from_month)) if last else {})}
        if decision is not None:
            ceiling = amount_std * len(decision.covered) + getattr(decision, "add_on_fen", 0)
            if payment.gross_fen > ceiling and payment.kind != "top-up":
                flags.append(f"the amount is above the standard in force ({yuan(amount_std)} yuan x {len(decision.covered)} persons)")
    period = case.period_at(month)
    if period is None or period.status != "active":
        flags.append(f"the case is not active in {month} as the record stands now")
    if household is not None and decision is not None:
        for idn in decision.covered:
            m = household.members.get(idn, {})
            if m.get("status") == "deceased" and m.get("until") and Month.of(date_from_iso(m["until"])) < month:
                flags.append(f"a covered person ({idn[:4]}...{idn[-4:]}) died before {month}")
    chain["flags"] = flags
    return chain


def date_from_iso(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)
