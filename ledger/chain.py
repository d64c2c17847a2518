"""The hash chain over the event log: each link covers one stored event's bytes and the link before it.

``link(n) = sha256(link(n-1) || position || originator id || version || topic || state)``,
starting from 32 zero bytes. A change to any stored event, a deleted, inserted or
reordered event changes every link from there on, so a digest kept outside the system
(a seal) proves the record up to its position unaltered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

GENESIS = bytes(32)

#: The bytes of a stored event before its state: ``position|originator id|version|topic|``,
#: with the originator id as 32 lowercase hex digits and the topic in UTF-8. Fast readers
#: that take the fields straight from a database row format them with this same pattern.
HEAD = b"%d|%b|%d|%b|"


def oid_hex(originator_id: UUID | str | bytes) -> str:
    """An originator id as 32 hex digits, whichever way the database driver returned it."""
    if type(originator_id) is bytes:
        return originator_id.hex()
    if isinstance(originator_id, UUID):
        return originator_id.hex
    if isinstance(originator_id, (bytearray, memoryview)):
        return bytes(originator_id).hex()
    return str(originator_id).replace("-", "").lower()


def canonical(position: int, originator_id: UUID | str | bytes, version: int, topic: str, state: bytes | str) -> bytes:
    """The bytes of one stored event that its link covers."""
    body = state if type(state) is bytes else (
        state.encode("utf-8", "surrogatepass") if isinstance(state, str) else bytes(state)
    )
    return HEAD % (position, oid_hex(originator_id).encode(), version, topic.encode()) + body


def next_link(previous: bytes, position: int, originator_id: UUID | str | bytes, version: int, topic: str, state: bytes | str) -> bytes:
    """The link after ``previous`` for one stored event."""
    return hashlib.sha256(previous + canonical(position, originator_id, version, topic, state)).digest()


def links(records: Iterable[Any], previous: bytes = GENESIS) -> Iterator[tuple[int, bytes]]:
    """(position, link) for stored records in log order (``id``, ``originator_id``, ``originator_version``, ``topic``, ``state``)."""
    for r in records:
        previous = next_link(previous, r.id, r.originator_id, r.originator_version, r.topic, r.state)
        yield r.id, previous
