"""The bytes and links of the hash chain never change: stored chains and seals depend on them.

The digests below were computed once and are kept here as they are; any change to how a
link is formatted or hashed would make every existing database fail to verify.
"""

from __future__ import annotations

import hashlib
import uuid

from ledger.chain import GENESIS, HEAD, canonical, links, next_link

OID = uuid.UUID("47c35c31-899d-528c-a253-3200f788f2d7")
LINK_1 = "418945c25ed56b9ea5a999c8b9f2dddd3dc1ad937460bcf1df733b72588170ce"
LINK_2 = "3c9ae7ede83bf549c69257ebefd41299974cc2e7dcb32545a3f9057f9d709361"
LINK_3 = "b6fde703a4fcdff71bb60b694e6dde1fcd2cee2f707add42b0beada24f6495e8"


def test_links_are_those_kept_by_existing_databases() -> None:
    l1 = next_link(GENESIS, 1, OID, 1, "ledger.domain:Standard.Created", b'{"a":1}')
    l2 = next_link(l1, 2, OID.bytes, 2, "ledger.domain:Standard.Set", '{"b":"\u00e9"}')
    l3 = next_link(l2, 3, str(OID).upper(), 3, "ledger.domain:Standard.Set", memoryview(b"x"))
    assert [l1.hex(), l2.hex(), l3.hex()] == [LINK_1, LINK_2, LINK_3]


def test_the_canonical_bytes_of_an_event() -> None:
    assert canonical(7, OID, 2, "t", "s\udcff") == b"7|47c35c31899d528ca2533200f788f2d7|2|t|s\xed\xb3\xbf"
    # Whichever way the driver returns the originator id, the bytes are the same.
    assert canonical(7, OID.bytes, 2, "t", b"s") == canonical(7, str(OID), 2, "t", b"s") == canonical(7, OID, 2, "t", b"s")


def test_a_row_formatted_with_head_gives_the_same_link() -> None:
    """The fast readers of ``audit verify`` hash ``previous + HEAD % (...)`` and then the state."""
    state = b'{"amount_fen":70000}'
    h = hashlib.sha256(b"%b" % GENESIS + HEAD % (5, OID.bytes.hex().encode(), 3, "ledger.domain:Payment.Issued".encode()))
    h.update(state)
    assert h.digest() == next_link(GENESIS, 5, OID, 3, "ledger.domain:Payment.Issued", state)


def test_links_run_over_records_in_order() -> None:
    class R:
        def __init__(self, id: int, version: int, state: bytes) -> None:
            self.id, self.originator_id, self.originator_version, self.topic, self.state = id, OID, version, "t", state

    out = list(links([R(1, 1, b"a"), R(2, 2, b"b")]))
    assert out[0] == (1, next_link(GENESIS, 1, OID, 1, "t", b"a"))
    assert out[1] == (2, next_link(out[0][1], 2, OID, 2, "t", b"b"))
