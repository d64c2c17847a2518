"""The stored events' JSON codec: the library's JSON format, written faster.

Stored events are a contract (see :mod:`ledger.transcodings`): a value of a registered
type is written as ``{"_type_": NAME, "_data_": DATA}`` inside compact JSON. The
library's :class:`~eventsourcing.persistence.JSONTranscoder` builds that object through
a Python hook for every such value of every event; this one writes an event's fields
one by one and keeps the JSON of the values that repeat across thousands of events
(benefit months, dates, enumeration members) once. Reading is the library's own
(measured: its hook costs little beside the JSON scanner). The bytes written are the
same as the library's; a test compares both on every kind of event.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _encode_str  # type: ignore[attr-defined]
from datetime import date, datetime
from enum import Enum
from typing import Any

from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding

from ledger.values import Month

#: Most distinct values kept per cache (months, dates and enumeration members repeat; nothing else is cached).
CACHE_LIMIT = 1 << 16

_CACHED_TYPES = (date, Enum, Month)


class LedgerTranscoder(JSONTranscoder):
    """A :class:`JSONTranscoder` with the same stored format and a faster encode."""

    def __init__(self) -> None:
        super().__init__()
        self._encoded: dict[Any, dict[str, Any]] = {}
        self.encoder = json.JSONEncoder(default=self._encode_fast, separators=(",", ":"), ensure_ascii=False)
        self._fragments: dict[Any, str] = {}
        self._keys: dict[Any, str] = {}
        self._datetime_iso = False

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        self._encoded.clear()
        self._fragments.clear()
        dt = self.types.get(datetime)
        self._datetime_iso = dt is not None and type(dt) is DatetimeAsISO and dt.name == "datetime_iso"

    # ------------------------------------------------------------------ encode
    def encode(self, obj: Any) -> bytes:
        """Compact JSON of an event's state, as the library writes it.

        A top-level object is written field by field: text and numbers directly, values
        of the registered types from their cached JSON, anything else (lists, objects)
        through the library's encoder. The result is the library's, byte for byte.
        """
        if type(obj) is not dict:
            return self.encoder.encode(obj).encode("utf8")
        parts = []
        keys, fragments = self._keys, self._fragments
        iso = self._datetime_iso
        for k, v in obj.items():
            key = keys.get(k)
            if key is None:
                if type(k) is not str:  # JSON would write it as text: leave it to the library's encoder
                    return self.encoder.encode(obj).encode("utf8")
                if len(keys) >= CACHE_LIMIT:
                    keys.clear()
                key = keys[k] = _encode_str(k) + ":"
            t = type(v)
            if t is str:
                parts.append(key + _encode_str(v))
            elif t is int:
                parts.append(key + int.__repr__(v))
            elif t is datetime and iso:
                parts.append(key + '{"_type_":"datetime_iso","_data_":"' + v.isoformat() + '"}')
            elif v is None:
                parts.append(key + "null")
            elif v is True:
                parts.append(key + "true")
            elif v is False:
                parts.append(key + "false")
            else:
                try:
                    text = fragments[v]
                except (KeyError, TypeError):
                    text = self.encoder.encode(v)
                    if t is not datetime and isinstance(v, _CACHED_TYPES):
                        if len(fragments) >= CACHE_LIMIT:
                            fragments.clear()
                        fragments[v] = text
                parts.append(key + text)
        return ("{" + ",".join(parts) + "}").encode("utf8")

    def _encode_fast(self, o: Any) -> dict[str, Any]:
        # Months, dates and enumeration members are immutable and few: their JSON form is built once.
        try:
            return self._encoded[o]
        except (KeyError, TypeError):
            pass
        encoded = self._encode_obj(o)
        if type(o) is not datetime and isinstance(o, _CACHED_TYPES):
            if len(self._encoded) >= CACHE_LIMIT:
                self._encoded.clear()
            self._encoded[o] = encoded
        return encoded
