"""Tables for exchange formats, signed releases, pulled releases and provider feedback.

Kept apart from the core models so the exchange area migrates on its own branch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
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


class Release(Base):
    """A signed, versioned release of a list that this database published."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("list_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    key_id: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: uid -> sha256 of the released record; the next delta is computed against it.
    digests: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PulledRelease(Base):
    """A release applied from a publisher: which list, version and key."""

    __tablename__ = "pulled_releases"
    __table_args__ = (Index("ix_pulled_releases_list", "list_id", "source_list"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    source_list: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # snapshot or delta
    key_id: Mapped[str] = mapped_column(String(64))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Feedback(Base):
    """A provider's affirmative or negative feedback on an entry, with its reason."""

    __tablename__ = "entry_feedback"
    __table_args__ = (Index("ix_entry_feedback_entry", "entry_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(200))
    #: "affirmative" or "negative"
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Where the feedback came from: "local" or the feedback file it was imported from.
    origin: Mapped[str] = mapped_column(String(200), default="local")
    #: Identity of the feedback across files, so re-importing a file adds nothing twice.
    uid: Mapped[str] = mapped_column(String(64), unique=True)
