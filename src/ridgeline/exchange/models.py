"""Tables for exchange formats, signed releases, pulled releases and provider feedback.

Kept apart from the core models so the exchange area migrates on its own branch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
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
