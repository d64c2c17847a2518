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


def canonical(position: int, originator_id: UUID | str, version: int, topic: str, state: bytes | str) -> bytes:
    """The bytes of one stored event that its link covers."""
    oid = originator_id.hex if isinstance(originator_id, UUID) else UUID(str(originator_id)).hex
    body = state.encode("utf-8", "surrogatepass") if isinstance(state, str) else bytes(state)
    return f"{position}|{oid}|{version}|{topic}|".encode() + body


def next_link(previous: bytes, position: int, originator_id: UUID | str, version: int, topic: str, state: bytes | str) -> bytes:
    return hashlib.sha256(previous + canonical(position, originator_id, version, topic, state)).digest()


def links(records: Iterable[Any], previous: bytes = GENESIS) -> Iterator[tuple[int, bytes]]:
    """(position, link) for stored records in log order (``id``, ``originator_id``, ``originator_version``, ``topic``, ``state``)."""
    for r in records:
        previous = next_link(previous, r.id, r.originator_id, r.originator_version, r.topic, r.state)
        yield r.id, previous
