"""Tables of the exchange: format facts of imported entries, per-source watermarks,
live sources with their checkpoints, and deletions waiting for their entry.

Kept apart from the core models so the exchange area migrates on its own branch.
Credentials of live sources are never stored here (`ridgeline.exchange.live.credentials`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import LOOKUP_KEY_MAX, Base
from ridgeline.timeutil import utcnow


class ExchangeMeta(Base):
    """Format-specific facts about an imported entry that the core row has no column for.

    For example the original VICS category value and profile, or the NCMEC entry type,
    so that an export writes back what was read.
    """

    __tablename__ = "exchange_meta"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SyncState(Base):
    """High-water mark of an incremental source (NCMEC, StopNCII) per list."""

    __tablename__ = "exchange_sync"
    __table_args__ = (UniqueConstraint("list_id", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    max_timestamp: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExchangeSource(Base):
    """A live exchange (NCMEC hash sharing, StopNCII, ThreatExchange) feeding one list.

    `settings` holds what is not secret (base URL, environment, privacy group, page
    size, retry policy); credentials come from the environment or a credentials file.
    """

    __tablename__ = "exchange_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Seconds between scheduled fetches (`ridgeline serve`).
    interval_s: Mapped[float] = mapped_column(Float, default=3600.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExchangeCheckpoint(Base):
    """Where a source's fetch stands: its cursor (committed with each page's records),
    counters, the last outcome, and the lease of the process fetching it now."""

    __tablename__ = "exchange_checkpoints"

    source_id: Mapped[int] = mapped_column(
        ForeignKey("exchange_sources.id", ondelete="CASCADE"), primary_key=True
    )
    cursor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    records: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[dt.datetime | None] = mapped_column()
    last_success_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column()
    lease_holder: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WaitingTombstone(Base):
    """A deletion that named an entry the list does not have (yet).

    Files and feed pages are not in order: when the entry arrives later, the deletion
    wins if it is not older than the entry's own time, and the row is dropped either
    way. An entry is named by its origin (member and id) or, without one, by a hash.
    """

    __tablename__ = "exchange_tombstones"
    __table_args__ = (
        Index("ix_exchange_tombstones_origin", "list_id", "origin_entry_id"),
        Index("ix_exchange_tombstones_key", "list_id", "signal", "lookup_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    origin_member: Mapped[str | None] = mapped_column(String(200))
    origin_entry_id: Mapped[str | None] = mapped_column(String(200))
    signal: Mapped[str | None] = mapped_column(String(32))
    lookup_key: Mapped[str | None] = mapped_column(String(LOOKUP_KEY_MAX + 8))
    #: The partner's time of the deletion (None: unknown, the deletion wins).
    deleted_time: Mapped[dt.datetime | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
