"""Proof that the record is unaltered: tampering done directly in the database is found.

An attacker with file access (SQLite) or DBA rights (PostgreSQL) first gets rid of the
append-only triggers and then changes, deletes, inserts or reorders stored events.
``verify_log`` (and ``ledger audit verify --against DIGEST``) must name the first position
that was tampered with, fail, and report the seal that no longer matches when the
tampering is before the sealed position. Audit packs are checked the same way, without
the database.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from cli.main import ledger
from ledger.application import LedgerApp
from ledger.audit import export_pack, verify_log, verify_pack
from ledger.domain import case_id
from ledger.errors import RuleViolation
from ledger.values import Month
from tests.history import build_history

AUDITOR = "audit.chen"
EVENTS = "ledger_events"
CHAIN = "ledger_events_chain"


# --------------------------------------------------------------------------- helpers


def cli(db: str, *args: str, operator: str | None = None) -> Result:
    env: dict[str, str | None] = {"LEDGER_DATABASE_URL": None, "LEDGER_OPERATOR": operator}
    r = CliRunner().invoke(ledger, ["--db", db, *args], env=env)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


class Raw:
    """Direct SQL on the ledger's database, as an attacker with file or DBA access would type it.

    Parameters are named (``:name``): both sqlite3 and SQLAlchemy ``text()`` accept them.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")

    @contextmanager
    def session(self, drop_triggers: bool = True) -> Iterator[Any]:
        if self.sqlite:
            with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as conn:
                if drop_triggers:
                    for table in (EVENTS, CHAIN):
                        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
                yield _SqliteSession(conn)
                conn.commit()
        else:
            engine = create_engine(self.url)
            try:
                with engine.begin() as conn:
                    if drop_triggers:
                        conn.execute(text(f"ALTER TABLE {EVENTS} DISABLE TRIGGER USER"))
                        conn.execute(text(f"ALTER TABLE {CHAIN} DISABLE TRIGGER USER"))
                    yield _PgSession(conn)
            finally:
                engine.dispose()

    def rows(self) -> list[dict[str, Any]]:
        with self.session(drop_triggers=False) as s:
            return s.all(f"SELECT id, originator_id, originator_version, topic, state FROM {EVENTS} ORDER BY id")


class _SqliteSession:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def run(self, sql: str, **params: Any) -> None:
        self.conn.execute(sql, params)

    def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    @staticmethod
    def new_uuid() -> Any:
        return uuid.uuid4().bytes


class _PgSession:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def run(self, sql: str, **params: Any) -> None:
        self.conn.execute(text(sql), params)

    def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        out = []
        for r in self.conn.execute(text(sql), params).mappings():
            d = dict(r)
            if isinstance(d.get("state"), memoryview):
                d["state"] = bytes(d["state"])
            out.append(d)
        return out

    @staticmethod
    def new_uuid() -> Any:
        return str(uuid.uuid4())


def row(s: Any, position: int) -> dict[str, Any]:
    found = s.all(f"SELECT id, originator_id, originator_version, topic, state FROM {EVENTS} WHERE id = :id", id=position)
    assert len(found) == 1, position
    return found[0]


def positions(raw: Raw, topic_suffix: str) -> list[int]:
    return [r["id"] for r in raw.rows() if r["topic"].endswith(topic_suffix)]


class Ledger:
    """A small history, sealed, with a few events recorded after the seal."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.app = LedgerApp(url, clock=lambda: date(2023, 3, 10))
        build_history(self.app, cases=4, months=2)
        self.sealed, self.digest = self.app.seal(operator=AUDITOR, effective=date(2023, 3, 1))
        # After the seal: March is paid.
        for i in range(4):
            if self.app.get_case(f"U{i:05d}").status_at(Month(2023, 3)) == "active":
                self.app.issue_payment(f"U{i:05d}", Month(2023, 3), operator="zhao.min", effective=date(2023, 3, 1))
        self.head = self.app.recorder.max_notification_id()
        self.raw = Raw(url)
        assert self.head > self.sealed + 2


@pytest.fixture
def sealed(db_url: str) -> Ledger:
    return Ledger(db_url)


def assert_tampered(lg: Ledger, first_bad: int, phrase: str, seal_at: int | None = None) -> None:
    """verify_log and ``ledger audit verify --against`` both report the tampering at ``first_bad``.

    ``seal_at``: where the seal event now stands (it moves if events before it were shifted).
    """
    seal_at = seal_at or lg.sealed + 1
    report = verify_log(lg.app, against=lg.digest)
    assert not report.ok
    assert report.first_bad == first_bad, report.problems
    first = [why for p, why in report.problems if p == first_bad]
    assert any(phrase in why for why in first), report.problems
    seal_problems = [(p, why) for p, why in report.problems if "does not match the events up to" in why]
    if first_bad <= lg.sealed:
        # The record the auditor sealed was altered: the seal and the kept digest no longer match.
        assert seal_problems == [(lg.sealed, f"the seal recorded at {seal_at} does not match the events up to {lg.sealed}")]
        assert report.against_position is None
        assert report.seals == [{"seal_position": seal_at, "position": lg.sealed, "digest": lg.digest, "ok": False}]
    else:
        assert seal_problems == []
        assert report.against_position == lg.sealed
        assert [s["ok"] for s in report.seals] == [True]

    r = cli(lg.url, "audit", "verify", "--against", lg.digest)
    assert r.exit_code == 1, r.output
    assert f"first bad position {first_bad}" in r.output
    assert re.search(rf"^position {first_bad}: .*{re.escape(phrase)}", r.output, re.M), r.output
    if first_bad <= lg.sealed:
        assert f"digest {lg.digest} is not in the recomputed chain" in r.output
    else:
        assert f"digest {lg.digest} matches the record up to position {lg.sealed}" in r.output
    # Nothing can be sealed or exported on top of an altered record.
    with pytest.raises(RuleViolation, match=f"position {first_bad}"):
        lg.app.seal(operator=AUDITOR, effective=date(2023, 3, 2))


# --------------------------------------------------------------------------- the untampered record


def test_an_untampered_log_verifies_with_its_seal_and_the_kept_digest(sealed: Ledger) -> None:
    lg = sealed
    report = verify_log(lg.app, against=lg.digest)
    assert report.ok and report.problems == []
    assert report.events == lg.head and report.head_position == lg.head
    assert report.against_position == lg.sealed
    assert report.seals == [{"seal_position": lg.sealed + 1, "position": lg.sealed, "digest": lg.digest, "ok": True}]
    # The digest is case-insensitive.
    assert verify_log(lg.app, against=lg.digest.upper()).against_position == lg.sealed
    # A digest that never was: not ok, though nothing is wrong with the log itself.
    other = verify_log(lg.app, against="0" * 64)
    assert other.problems == [] and other.against_position is None and not other.ok

    r = cli(lg.url, "audit", "verify", "--against", lg.digest)
    assert r.exit_code == 0, r.output
    assert f"digest {lg.digest} matches the record up to position {lg.sealed}" in r.output
    assert f"the event log: {lg.head:,} events verified, 1 seals match; head {lg.head} digest {report.head_digest}" in r.output
    r = cli(lg.url, "audit", "verify", "--against", "0" * 64)
    assert r.exit_code == 1 and "is not in the recomputed chain" in r.output

    # A second seal covers the events recorded after the first.
    r = cli(lg.url, "audit", "seal", operator=AUDITOR)
    assert r.exit_code == 0, r.output
    m = re.fullmatch(r"sealed position (\d+): ([0-9a-f]{64})\n", r.output)
    assert m is not None, r.output
    assert int(m.group(1)) == lg.head and m.group(2) == report.head_digest
    assert [s["ok"] for s in verify_log(lg.app).seals] == [True, True]


# --------------------------------------------------------------------------- four ways of tampering


def test_a_changed_event_is_found_at_its_position(sealed: Ledger) -> None:
    lg = sealed
    target = positions(lg.raw, "Payment.Issued")[1]
    assert target < lg.sealed
    with lg.raw.session() as s:
        old = row(s, target)["state"]
        new = re.sub(rb'"amount_fen":(\d+)', lambda m: b'"amount_fen":' + str(int(m.group(1)) + 100000).encode(), old)
        assert new != old
        s.run(f"UPDATE {EVENTS} SET state = :state WHERE id = :id", state=new, id=target)
    assert_tampered(lg, target, "the event differs from the one chained when it was recorded")
    # Only the changed event is named (each link is also checked on its own), besides the seal.
    report = verify_log(lg.app)
    assert [p for p, _ in report.problems] == [target, lg.sealed]


def test_a_changed_event_after_the_seal_leaves_the_seal_intact(sealed: Ledger) -> None:
    lg = sealed
    target = lg.head - 1
    with lg.raw.session() as s:
        old = row(s, target)["state"]
        s.run(f"UPDATE {EVENTS} SET state = :state WHERE id = :id", state=old.replace(b"zhao.min", b"zhao.max"), id=target)
    assert_tampered(lg, target, "changed or moved")


def test_a_deleted_event_is_found_at_its_position(sealed: Ledger) -> None:
    lg = sealed
    target = positions(lg.raw, "Case.Verified")[2]
    assert target < lg.sealed
    with lg.raw.session() as s:
        s.run(f"DELETE FROM {EVENTS} WHERE id = :id", id=target)
    assert_tampered(lg, target, "in the chain but missing from the log (an event was deleted)")
    assert [p for p, _ in verify_log(lg.app).problems] == [target, lg.sealed]


def test_the_deleted_last_event_is_found(sealed: Ledger) -> None:
    lg = sealed
    with lg.raw.session() as s:
        s.run(f"DELETE FROM {EVENTS} WHERE id = :id", id=lg.head)
    assert_tampered(lg, lg.head, "an event was deleted")


def test_an_event_deleted_with_its_chain_link_is_found(sealed: Ledger) -> None:
    """The attacker also deletes the kept link: the recomputed chain still differs from the seal."""
    lg = sealed
    target = positions(lg.raw, "Payment.Issued")[0]
    with lg.raw.session() as s:
        s.run(f"DELETE FROM {EVENTS} WHERE id = :id", id=target)
        s.run(f"DELETE FROM {CHAIN} WHERE position = :id", id=target)
    report = verify_log(lg.app, against=lg.digest)
    assert not report.ok
    assert report.first_bad is not None and report.first_bad <= lg.sealed
    # Every later link was computed over the deleted event: the next one already differs.
    assert report.first_bad == target + 1, report.problems
    assert report.against_position is None
    r = cli(lg.url, "audit", "verify", "--against", lg.digest)
    assert r.exit_code == 1 and f"first bad position {target + 1}" in r.output


def _forged_payment(s: Any, source: int) -> dict[str, Any]:
    """A copy of a stored payment issue under a new aggregate id: a payment nobody made."""
    src = row(s, source)
    assert src["topic"].endswith("Payment.Issued")
    return {"oid": s.new_uuid(), "topic": src["topic"], "state": src["state"].replace(b"-1\"", b"-7\"")}


def test_a_forged_event_appended_after_the_seal_is_found(sealed: Ledger) -> None:
    lg = sealed
    forged_at = lg.head + 1
    with lg.raw.session() as s:
        f = _forged_payment(s, positions(lg.raw, "Payment.Issued")[0])
        s.run(f"INSERT INTO {EVENTS} (id, originator_id, originator_version, topic, state) VALUES (:id, :oid, 1, :topic, :state)",
              id=forged_at, **f)
    assert_tampered(lg, forged_at, "an event that is not in the chain (inserted outside the ledger)")


def test_a_forged_event_inserted_before_the_seal_is_found(sealed: Ledger) -> None:
    """Room is made by moving every later event one position up, then the forged event goes in."""
    lg = sealed
    after = positions(lg.raw, "Payment.Issued")[2]
    assert after + 1 < lg.sealed
    with lg.raw.session() as s:
        f = _forged_payment(s, after)
        s.run(f"UPDATE {EVENTS} SET id = -(id + 1) WHERE id > :k", k=after)
        s.run(f"UPDATE {EVENTS} SET id = -id WHERE id < 0")
        s.run(f"INSERT INTO {EVENTS} (id, originator_id, originator_version, topic, state) VALUES (:id, :oid, 1, :topic, :state)",
              id=after + 1, **f)
    # The seal event itself moved one position up with the others.
    assert_tampered(lg, after + 1, "the event differs from the one chained when it was recorded", seal_at=lg.sealed + 2)
    report = verify_log(lg.app)
    # The last event now sits where the chain has no link.
    assert (lg.head + 1, "an event that is not in the chain (inserted outside the ledger)") in report.problems


@pytest.mark.postgres
def test_a_forged_event_in_a_gap_of_the_positions_is_found(postgres_url: str) -> None:
    """On PostgreSQL a write that failed leaves a gap in the positions; a forged event put there
    is the only one not in the chain, and the seal over it no longer matches."""
    from eventsourcing.persistence import IntegrityError

    app = LedgerApp(postgres_url, clock=lambda: date(2023, 3, 10))
    build_history(app, cases=3, months=1)
    stale = app.unit_of_work()
    case = stale.find(case_id("U00001"))
    app.suspend("U00001", "moved away", Month(2023, 2), operator="li.na", effective=date(2023, 1, 20))
    case.suspend("review overdue", Month(2023, 2), operator="li.na", effective=date(2023, 1, 20))
    before = app.recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        stale.commit()  # a concurrent change: rolled back, its position is never used
    app.issue_payment("U00002", Month(2023, 2), operator="zhao.min", effective=date(2023, 2, 1))
    ids = [r["id"] for r in Raw(postgres_url).rows()]
    gaps = sorted(set(range(1, ids[-1] + 1)) - set(ids))
    assert gaps and gaps[0] > before, (before, ids[-3:])
    sealed, digest = app.seal(operator=AUDITOR, effective=date(2023, 2, 2))
    raw = Raw(postgres_url)
    with raw.session() as s:
        f = _forged_payment(s, positions(raw, "Payment.Issued")[0])
        s.run(f"INSERT INTO {EVENTS} (id, originator_id, originator_version, topic, state) VALUES (:id, :oid, 1, :topic, :state)",
              id=gaps[0], **f)
    report = verify_log(app, against=digest)
    assert not report.ok and report.against_position is None
    assert report.problems == [
        (gaps[0], "an event that is not in the chain (inserted outside the ledger)"),
        (sealed, f"the seal recorded at {sealed + 1} does not match the events up to {sealed}"),
    ]
    r = cli(postgres_url, "audit", "verify", "--against", digest)
    assert r.exit_code == 1 and f"first bad position {gaps[0]}" in r.output


def test_two_swapped_events_are_found_at_the_first_of_them(sealed: Ledger) -> None:
    lg = sealed
    a, b = positions(lg.raw, "Household.Registered")[1], positions(lg.raw, "Case.Approved")[2]
    assert a < b < lg.sealed
    with lg.raw.session() as s:
        ra, rb = row(s, a), row(s, b)
        cols = "originator_id = :oid, originator_version = :v, topic = :topic, state = :state"
        s.run(f"UPDATE {EVENTS} SET originator_id = :oid WHERE id = :id", oid=s.new_uuid(), id=a)  # out of the way
        s.run(f"UPDATE {EVENTS} SET {cols} WHERE id = :id",
              oid=ra["originator_id"], v=ra["originator_version"], topic=ra["topic"], state=ra["state"], id=b)
        s.run(f"UPDATE {EVENTS} SET {cols} WHERE id = :id",
              oid=rb["originator_id"], v=rb["originator_version"], topic=rb["topic"], state=rb["state"], id=a)
    # Every aggregate still loads as before: only the order of the log changed.
    assert lg.app.get_case("U00002").status == "active"
    assert_tampered(lg, a, "changed or moved")
    report = verify_log(lg.app)
    assert [p for p, _ in report.problems] == [a, b, lg.sealed]


def test_a_changed_chain_link_is_found(sealed: Ledger) -> None:
    """The kept chain is never trusted: changing a link (and not the event) is named too."""
    lg = sealed
    target = lg.sealed - 3
    with lg.raw.session() as s:
        s.run(f"UPDATE {CHAIN} SET link = :link WHERE position = :p", link="f" * 64, p=target)
    report = verify_log(lg.app, against=lg.digest)
    assert not report.ok
    assert report.first_bad == target
    # The events themselves are intact: the seal and the kept digest still match.
    assert report.against_position == lg.sealed and [s["ok"] for s in report.seals] == [True]


# --------------------------------------------------------------------------- the database refuses changes


def test_the_database_refuses_to_change_the_log_while_its_triggers_are_in_place(db_url: str) -> None:
    app = LedgerApp(db_url, clock=lambda: date(2023, 3, 10))
    build_history(app, cases=2, months=1)
    raw = Raw(db_url)
    before = raw.rows()
    target = before[3]["id"]
    statements = [
        f"UPDATE {EVENTS} SET state = state WHERE id = {target}",
        f"UPDATE {EVENTS} SET originator_version = originator_version + 100 WHERE id = {target}",
        f"DELETE FROM {EVENTS} WHERE id = {target}",
        f"DELETE FROM {EVENTS}",
        f"UPDATE {CHAIN} SET link = link WHERE position = {target}",
        f"DELETE FROM {CHAIN} WHERE position = {target}",
        f"DELETE FROM {CHAIN}",
    ]
    if not raw.sqlite:
        statements += [f"TRUNCATE {EVENTS}", f"TRUNCATE {CHAIN}", f"TRUNCATE {EVENTS}, {CHAIN}"]
    for sql in statements:
        with pytest.raises(Exception, match="append-only") as caught:
            with raw.session(drop_triggers=False) as s:
                s.run(sql)
        assert "refused" in str(caught.value), sql
    assert raw.rows() == before
    assert verify_log(app).ok
    # Appends still work.
    app.issue_payment("U00001", Month(2023, 2), operator="zhao.min", effective=date(2023, 2, 1))
    assert verify_log(app).ok


@pytest.mark.postgres
def test_postgresql_names_the_table_and_the_operation_refused(postgres_url: str) -> None:
    import sqlalchemy.exc

    app = LedgerApp(postgres_url)
    build_history(app, cases=1, months=1)
    engine = create_engine(postgres_url)
    try:
        for sql, table, op in [
            (f"UPDATE {EVENTS} SET topic = topic", EVENTS, "UPDATE"),
            (f"DELETE FROM {EVENTS} WHERE id = 1", EVENTS, "DELETE"),
            (f"TRUNCATE {EVENTS}", EVENTS, "TRUNCATE"),
            (f"UPDATE {CHAIN} SET link = link", CHAIN, "UPDATE"),
            (f"DELETE FROM {CHAIN}", CHAIN, "DELETE"),
            (f"TRUNCATE {CHAIN}", CHAIN, "TRUNCATE"),
        ]:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
                with engine.begin() as conn:
                    conn.execute(text(sql))
            assert f"the ledger's {table} table is append-only: {op} refused" in str(caught.value.orig), sql
    finally:
        engine.dispose()
    assert verify_log(app).ok


# --------------------------------------------------------------------------- audit packs


def _lines(pack: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (pack / "events.jsonl").read_text(encoding="utf-8").splitlines()]


def _write_lines(pack: Path, lines: list[dict[str, Any]]) -> None:
    (pack / "events.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")


def test_an_audit_pack_verifies_on_its_own_and_edits_to_it_are_found(sealed: Ledger, tmp_path: Path) -> None:
    import shutil

    lg = sealed
    pack = tmp_path / "pack"
    manifest = export_pack(lg.app, pack)
    head = verify_log(lg.app)
    assert manifest["events"] == lg.head and manifest["head_position"] == lg.head
    assert manifest["head_digest"] == head.head_digest
    assert json.loads((pack / "seals.json").read_text()) == [
        {"seal_position": lg.sealed + 1, "position": lg.sealed, "digest": lg.digest}
    ]
    report = verify_pack(pack, against=lg.digest)
    assert report.ok and report.problems == [] and report.events == lg.head
    assert report.against_position == lg.sealed and [s["ok"] for s in report.seals] == [True]

    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(pack, dst)
        return dst

    # 1. One event's state edited in events.jsonl.
    edited = copy("edited")
    lines = _lines(edited)
    target = next(x for x in lines if x["topic"].endswith("Payment.Issued") and x["position"] < lg.sealed)
    target["state"] = target["state"].replace('"gross_fen":', '"gross_fen":1')
    _write_lines(edited, lines)
    report = verify_pack(edited, against=lg.digest)
    assert not report.ok
    assert (0, "events.jsonl differs from the manifest's digest") in report.problems
    assert (target["position"], "the event differs from its recorded link") in report.problems
    assert any(p == lg.sealed and "does not match the events up to" in why for p, why in report.problems)
    assert report.against_position is None

    # 2. The same edit with every link recomputed and the manifest's file digest fixed:
    #    still found by the seal, the head digest and the kept digest.
    from ledger.audit import _sha256
    from ledger.chain import GENESIS, next_link

    forged = copy("forged")
    previous = GENESIS
    for x in lines:
        previous = next_link(previous, x["position"], x["originator_id"], x["originator_version"], x["topic"],
                             x["state"].encode("utf-8"))
        x["link"] = previous.hex()
    _write_lines(forged, lines)
    m = json.loads((forged / "manifest.json").read_text())
    m["files"]["events.jsonl"] = _sha256(forged / "events.jsonl")
    (forged / "manifest.json").write_text(json.dumps(m))
    report = verify_pack(forged, against=lg.digest)
    assert not report.ok and report.against_position is None
    assert (lg.sealed, f"the seal recorded at {lg.sealed + 1} does not match the events up to {lg.sealed}") in report.problems
    assert (lg.head, "the events do not end where the manifest says") in report.problems

    # 3. The manifest edited (a different head digest).
    manifested = copy("manifest")
    m = json.loads((manifested / "manifest.json").read_text())
    m["head_digest"] = "0" * 64
    (manifested / "manifest.json").write_text(json.dumps(m))
    report = verify_pack(manifested)
    assert report.problems == [(lg.head, "the events do not end where the manifest says")]
    assert not report.ok

    # 4. A seal edited in seals.json.
    resealed = copy("seal")
    (resealed / "seals.json").write_text(json.dumps([{"seal_position": lg.sealed + 1, "position": lg.sealed, "digest": "ab" * 32}]))
    report = verify_pack(resealed)
    assert not report.ok
    assert (0, "seals.json differs from the manifest's digest") in report.problems
    assert (lg.sealed, f"the seal recorded at {lg.sealed + 1} does not match the events up to {lg.sealed}") in report.problems

    # 5. An event left out of the pack.
    shortened = copy("short")
    _write_lines(shortened, [x for x in _lines(pack) if x["position"] != 5])
    report = verify_pack(shortened)
    assert not report.ok and (6, "the event differs from its recorded link") in report.problems

    # 6. A missing manifest.
    (copy("incomplete") / "manifest.json").unlink()
    report = verify_pack(tmp_path / "incomplete")
    assert not report.ok and report.first_bad == 0
    assert "the pack is incomplete or unreadable" in report.problems[0][1]


def test_audit_export_and_verify_pack_through_the_cli(sealed: Ledger, tmp_path: Path) -> None:
    lg = sealed
    out = tmp_path / "audit-2023q1"
    r = cli(lg.url, "audit", "export", "--out", str(out))
    assert r.exit_code == 0, r.output
    head = verify_log(lg.app)
    assert f"{out}: {lg.head:,} events, head {lg.head} digest {head.head_digest}" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "manifest.json", "seals.json"]

    r = cli(lg.url, "audit", "verify", "--pack", str(out), "--against", lg.digest)
    assert r.exit_code == 0, r.output
    assert f"digest {lg.digest} matches the record up to position {lg.sealed}" in r.output
    assert f"audit pack {out}: {lg.head:,} events verified, 1 seals match; head {lg.head} digest {head.head_digest}" in r.output

    lines = _lines(out)
    lines[6]["state"] = lines[6]["state"].replace('"operator":"', '"operator":"x')
    _write_lines(out, lines)
    r = cli(lg.url, "audit", "verify", "--pack", str(out))
    assert r.exit_code == 1, r.output
    assert f"position {lines[6]['position']}: the event differs from its recorded link" in r.output
    assert "first bad position 0" in r.output  # the file digest of events.jsonl, reported at 0

    # No pack is written from a record that does not verify.
    with lg.raw.session() as s:
        s.run(f"DELETE FROM {EVENTS} WHERE id = :id", id=4)
    r = cli(lg.url, "audit", "export", "--out", str(tmp_path / "second"))
    assert r.exit_code == 1, r.output
    assert "the record does not verify (position 4: in the chain but missing from the log" in r.output
    assert not (tmp_path / "second" / "manifest.json").exists()
