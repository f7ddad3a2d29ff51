"""Provider feedback on matched entries (false positives, confirmations)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import ridgeline.lists.models  # noqa: F401  (entries and lists, which these rows reference)
from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


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
