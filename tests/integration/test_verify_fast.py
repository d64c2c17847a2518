"""The fast reading of ``verify_log`` finds exactly what the position-by-position merge finds.

``verify_log`` proves the intact start of the log in one joined read (on PostgreSQL a
binary COPY) and hands the rest to the merge of the recomputed and the kept chain. Here
every report, on every kind of tampering (including those that only the merge can name:
kept links without events, values of other types, links that are missing or not in
lowercase, altered column definitions), is compared with the report of the merge alone,
field by field, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ledger.audit as audit
from ledger.audit import ChainReport, verify_log
from ledger.chain import GENESIS, next_link
from tests.integration.test_tamper import CHAIN, EVENTS, Ledger, positions, row

Tamper = Callable[[Ledger, Any], None]


@pytest.fixture
def sealed(db_url: str) -> Ledger:
    return Ledger(db_url)


def merge_only(lg: Ledger, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> ChainReport:
    """The report of the merge alone, from the first position (no fast reader for any database)."""
    with monkeypatch.context() as m:
        m.setattr(audit, "_PREFIX_READERS", {})
        return verify_log(lg.app, **kwargs)


def as_dict(report: ChainReport) -> dict[str, Any]:
    return {
        "events": report.events,
        "head_position": report.head_position,
        "head_digest": report.head_digest,
        "seals": report.seals,
        "problems": report.problems,
        "against_position": report.against_position,
        "ok": report.ok,
    }


def assert_same_as_merge(lg: Ledger, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> ChainReport:
    fast = verify_log(lg.app, **kwargs)
    assert as_dict(fast) == as_dict(merge_only(lg, monkeypatch, **kwargs))
    return fast


# --------------------------------------------------------------------------- tamperings


def _change_state(lg: Ledger, s: Any, target: int) -> None:
    s.run(f"UPDATE {EVENTS} SET state = :state WHERE id = :id", state=row(s, target)["state"] + b" ", id=target)


def changed_before_the_seal(lg: Ledger, s: Any) -> None:
    _change_state(lg, s, positions(lg.raw, "Payment.Issued")[1])


def changed_after_the_seal(lg: Ledger, s: Any) -> None:
    _change_state(lg, s, lg.head - 1)


def changed_first(lg: Ledger, s: Any) -> None:
    _change_state(lg, s, 1)


def deleted(lg: Ledger, s: Any) -> None:
    s.run(f"DELETE FROM {EVENTS} WHERE id = :id", id=positions(lg.raw, "Case.Verified")[2])


def deleted_last(lg: Ledger, s: Any) -> None:
    s.run(f"DELETE FROM {EVENTS} WHERE id = :id", id=lg.head)


def deleted_with_its_link(lg: Ledger, s: Any) -> None:
    target = positions(lg.raw, "Payment.Issued")[0]
    s.run(f"DELETE FROM {EVENTS} WHERE id = :id", id=target)
    s.run(f"DELETE FROM {CHAIN} WHERE position = :id", id=target)


def appended(lg: Ledger, s: Any) -> None:
    src = row(s, positions(lg.raw, "Payment.Issued")[0])
    s.run(f"INSERT INTO {EVENTS} (id, originator_id, originator_version, topic, state) VALUES (:id, :oid, 1, :topic, :state)",
          id=lg.head + 1, oid=s.new_uuid(), topic=src["topic"], state=src["state"])


def swapped(lg: Ledger, s: Any) -> None:
    a, b = positions(lg.raw, "Household.Registered")[1], positions(lg.raw, "Case.Approved")[2]
    ra, rb = row(s, a), row(s, b)
    cols = "originator_id = :oid, originator_version = :v, topic = :topic, state = :state"
    s.run(f"UPDATE {EVENTS} SET originator_id = :oid WHERE id = :id", oid=s.new_uuid(), id=a)
    s.run(f"UPDATE {EVENTS} SET {cols} WHERE id = :id",
          oid=ra["originator_id"], v=ra["originator_version"], topic=ra["topic"], state=ra["state"], id=b)
    s.run(f"UPDATE {EVENTS} SET {cols} WHERE id = :id",
          oid=rb["originator_id"], v=rb["originator_version"], topic=rb["topic"], state=rb["state"], id=a)


def link_changed(lg: Ledger, s: Any) -> None:
    s.run(f"UPDATE {CHAIN} SET link = :link WHERE position = :p", link="f" * 64, p=lg.sealed - 3)


def link_in_capitals(lg: Ledger, s: Any) -> None:
    """The same digest in upper case: the kept link is compared as it is stored."""
    s.run(f"UPDATE {CHAIN} SET link = UPPER(link) WHERE position = :p", p=lg.sealed - 3)


def link_without_event_at_the_end(lg: Ledger, s: Any) -> None:
    s.run(f"INSERT INTO {CHAIN} (position, link) VALUES (:p, :link)", p=lg.head + 3, link="a" * 64)


def link_without_event_at_the_start(lg: Ledger, s: Any) -> None:
    s.run(f"INSERT INTO {CHAIN} (position, link) VALUES (0, :link)", link="b" * 64)


def link_without_event_between(lg: Ledger, s: Any) -> None:
    """Room is made in the positions, and a link with no event goes in: the events still chain on their own."""
    after = lg.sealed - 5
    s.run(f"UPDATE {EVENTS} SET id = -(id + 1) WHERE id > :k", k=after)
    s.run(f"UPDATE {EVENTS} SET id = -id WHERE id < 0")
    s.run(f"UPDATE {CHAIN} SET position = -(position + 1) WHERE position > :k", k=after)
    s.run(f"UPDATE {CHAIN} SET position = -position WHERE position < 0")
    previous = bytes.fromhex(s.all(f"SELECT link FROM {CHAIN} WHERE position = :p", p=after)[0]["link"])
    s.run(f"INSERT INTO {CHAIN} (position, link) VALUES (:p, :link)", p=after + 1, link=previous.hex())
    # Every later link recomputed over the moved events, as if the chain had always had the gap.
    for r in s.all(f"SELECT id, originator_id, originator_version, topic, state FROM {EVENTS} WHERE id > :k ORDER BY id",
                   k=after + 1):
        previous = next_link(previous, r["id"], r["originator_id"], r["originator_version"], r["topic"], r["state"])
        s.run(f"UPDATE {CHAIN} SET link = :link WHERE position = :p", link=previous.hex(), p=r["id"])


def seal_altered(lg: Ledger, s: Any) -> None:
    s.run(f"UPDATE {EVENTS} SET state = :state WHERE id = :id", state=b"{not json", id=lg.sealed + 1)


TAMPERINGS: list[Tamper] = [
    changed_before_the_seal, changed_after_the_seal, changed_first, deleted, deleted_last, deleted_with_its_link,
    appended, swapped, link_changed, link_in_capitals, link_without_event_at_the_end, link_without_event_at_the_start,
    link_without_event_between, seal_altered,
]


# --------------------------------------------------------------------------- the tests


def test_an_intact_log_is_verified_by_the_fast_reading_alone(sealed: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    lg = sealed
    expected = merge_only(lg, monkeypatch, against=lg.digest)

    def no_merge(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the merge was needed on an intact log")

    monkeypatch.setattr(audit, "_walk", no_merge)
    monkeypatch.setattr(audit, "_seals", no_merge)
    report = verify_log(lg.app, against=lg.digest)
    assert as_dict(report) == as_dict(expected)
    assert report.ok and report.events == lg.head and report.against_position == lg.sealed
    assert [s["ok"] for s in report.seals] == [True]
    # The head digest is the chain of ledger.chain over every event, from the genesis link.
    previous = GENESIS
    for r in lg.raw.rows():
        previous = next_link(previous, r["id"], r["originator_id"], r["originator_version"], r["topic"], r["state"])
    assert report.head_digest == previous.hex()


@pytest.mark.parametrize("against", [None, "upper", "0" * 64, "spaced", "short"])
def test_the_digest_looked_for_is_matched_as_by_the_merge(sealed: Ledger, monkeypatch: pytest.MonkeyPatch,
                                                          against: str | None) -> None:
    lg = sealed
    given = {"upper": lg.digest.upper(), "spaced": " ".join(lg.digest[i:i + 2] for i in range(0, 64, 2)),
             "short": lg.digest[:60]}.get(against or "", against)
    report = assert_same_as_merge(lg, monkeypatch, against=given)
    assert (report.against_position == lg.sealed) == (against == "upper")


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__ for t in TAMPERINGS])
def test_every_tampering_is_reported_as_by_the_merge(sealed: Ledger, monkeypatch: pytest.MonkeyPatch, tamper: Tamper) -> None:
    lg = sealed
    with lg.raw.session() as s:
        tamper(lg, s)
    report = assert_same_as_merge(lg, monkeypatch, against=lg.digest)
    assert not report.ok
    # The kept chain and the log are read again, from a connection that a stopped COPY left usable.
    assert as_dict(verify_log(lg.app, against=lg.digest)) == as_dict(report)


def test_progress_is_reported_as_by_the_merge(sealed: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    lg = sealed
    monkeypatch.setattr(audit, "PROGRESS_EVERY", 7)
    with lg.raw.session() as s:
        changed_after_the_seal(lg, s)  # the fast reading hands over to the merge before the end
    fast: list[tuple[int, int]] = []
    merged: list[tuple[int, int]] = []
    verify_log(lg.app, progress=lambda p, t: fast.append((p, t)))
    with monkeypatch.context() as m:
        m.setattr(audit, "_PREFIX_READERS", {})
        verify_log(lg.app, progress=lambda p, t: merged.append((p, t)))
    assert fast == merged and len(fast) > 3


def test_values_of_other_types_are_left_to_the_merge(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite keeps whatever type a value is given: text where the ledger wrote bytes chains the same bytes."""
    lg = Ledger(sqlite_url)
    with lg.raw.session() as s:
        s.run(f"UPDATE {EVENTS} SET state = CAST(state AS TEXT) WHERE id = :id", id=lg.sealed - 2)
        s.run(f"UPDATE {EVENTS} SET originator_id = lower(hex(originator_id)) WHERE id = :id", id=lg.sealed - 1)
    assert [type(r["state"]) for r in lg.raw.rows()][lg.sealed - 3] is str
    report = assert_same_as_merge(lg, monkeypatch, against=lg.digest)
    assert report.ok, report.problems


@pytest.mark.postgres
@pytest.mark.parametrize("alter", ["missing_link", "nullable_state", "text_originator"])
def test_postgresql_tables_not_as_made_are_read_by_the_merge(postgres_url: str, monkeypatch: pytest.MonkeyPatch,
                                                            alter: str) -> None:
    """A link set to NULL ends the binary reading at its row; altered columns are never decoded from COPY."""
    lg = Ledger(postgres_url)
    with lg.raw.session() as s:
        if alter == "missing_link":
            s.run(f"ALTER TABLE {CHAIN} ALTER COLUMN link DROP NOT NULL")
            s.run(f"UPDATE {CHAIN} SET link = NULL WHERE position = :p", p=lg.sealed - 2)
        elif alter == "nullable_state":
            s.run(f"ALTER TABLE {EVENTS} ALTER COLUMN state DROP NOT NULL")
        else:
            s.run(f"ALTER TABLE {EVENTS} ALTER COLUMN originator_id TYPE text")
    report = assert_same_as_merge(lg, monkeypatch, against=lg.digest)
    assert report.ok == (alter != "missing_link"), report.problems
    if alter == "missing_link":
        assert report.first_bad == lg.sealed - 2


@pytest.mark.postgres
def test_the_raw_copy_read_reads_what_the_cursor_reads(postgres_url: str) -> None:
    """The raw limit measured with a binary COPY covers the same rows and state bytes as the cursor's."""
    from benchmarks import raw

    lg = Ledger(postgres_url)
    engine = lg.app.factory.datastore.engine
    table = lg.app.recorder.events_record_cls.__table__
    by_cursor = raw.ordered_read(engine, table, hash_state=True)
    by_copy = raw.ordered_read(engine, table, hash_state=True, method="copy")
    assert by_copy["rows"] == by_cursor["rows"] == lg.raw.rows()[-1]["id"]
    assert by_copy["bytes_hashed"] == by_cursor["bytes_hashed"] == sum(len(r["state"]) for r in lg.raw.rows())
    assert raw.ordered_read(engine, table, method="copy")["rows"] == by_cursor["rows"]
