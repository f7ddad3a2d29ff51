"""The neutral record every exchange format parses into and exports from.

A format module turns bytes into a `ParseResult` (good records plus bad ones with
their position) and turns `ExportItem`s back into bytes; `ridgeline.exchange.apply`
is the only code that writes parsed records to the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ridgeline.errors import BadInput


@dataclass
class ExchangeRecord:
    """One hash set from a partner's file, with where in the file it was found."""

    position: str
    signals: dict[str, str] = field(default_factory=dict)
    classifications: list[dict[str, str]] = field(default_factory=list)
    source: str | None = None
    origin_list: str | None = None
    origin_member: str | None = None
    origin_entry_id: str | None = None
    note: str | None = None
    #: A deletion (NCMEC deleted entry, StopNCII Withdrawn/Deleted): tombstone it.
    deleted: bool = False
    timestamp: dt.datetime | None = None
    qualities: dict[str, int] = field(default_factory=dict)
    #: Format-specific facts kept so an export can write them back (original category).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParseResult:
    """Everything read from one file: records, rejected records, and file-level facts."""

    format: str
    records: list[ExchangeRecord] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    max_timestamp: dt.datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def reject(self, position: str, message: str) -> None:
        """Record a bad record; the rest of the file is still read."""
        self.errors.append({"position": position, "error": message})

    def add(self, record: ExchangeRecord) -> None:
        self.records.append(record)
        if record.timestamp is not None and (
            self.max_timestamp is None or record.timestamp > self.max_timestamp
        ):
            self.max_timestamp = record.timestamp


@dataclass
class ExportItem:
    """An entry as exporters see it: hashes, labels, provenance and kept format facts."""

    entry_id: int
    signals: dict[str, str]
    classifications: list[dict[str, str]]
    source: str | None
    origin_list: str | None
    origin_member: str | None
    origin_entry_id: str | None
    note: str | None
    deleted: bool
    updated_at: dt.datetime
    qualities: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 text (BOM allowed) or a clear error naming the byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
