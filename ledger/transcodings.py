"""How the ledger's value types are written into stored events (JSON).

Stored events are a contract: these names are part of it and must not change.
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from ledger.values import Area, Channel, Month, Programme


class MonthAsStr(Transcoding):
    type = Month
    name = "month"

    def encode(self, obj: Month) -> str:
        return str(obj)

    def decode(self, data: str) -> Month:
        return Month.parse(data)


class DateAsISO(Transcoding):
    type = date
    name = "date"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def enum_transcoding(enum: type[Enum], name: str) -> Transcoding:
    """A transcoding that stores an enumeration member by its value."""

    class EnumAsValue(Transcoding):
        type = enum

        def encode(self, obj: Any) -> str:
            return obj.value

        def decode(self, data: str) -> Any:
            return enum(data)

    EnumAsValue.name = name
    return EnumAsValue()


def register_all(transcoder: JSONTranscoder) -> None:
    transcoder.register(MonthAsStr())
    transcoder.register(DateAsISO())
    transcoder.register(enum_transcoding(Programme, "programme"))
    transcoder.register(enum_transcoding(Area, "area"))
    transcoder.register(enum_transcoding(Channel, "channel"))
