"""Tables of triage: the current priority of each received report and its reasons.

One row per received report, written in bulk at intake and replaced on re-assessment;
an analyst's override keeps the computed priority beside it, and every override is also
a tamper-evident log record. `received_at` is copied from intake so the queue (priority,
then age) is one indexed query without a join.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class TriagePriority(Base):
    """The priority of one received report: computed by the rules, maybe overridden."""

    __tablename__ = "triage_priorities"
    __table_args__ = (Index("ix_triage_priorities_queue", "priority", "received_at"),)

    #: the received report (intake's row id)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("received_reports.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    #: the priority in force (the override's when there is one)
    priority: Mapped[int] = mapped_column(Integer)
    #: what the rules gave
    computed_priority: Mapped[int] = mapped_column(Integer)
    #: [{"rule", "priority", "detail"}] of every rule that fired
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: which rules file (or "defaults")
    rules: Mapped[str] = mapped_column(String(500), default="defaults")
    received_at: Mapped[dt.datetime] = mapped_column()
    assessed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    overridden_by: Mapped[str | None] = mapped_column(String(200))
    overridden_at: Mapped[dt.datetime | None] = mapped_column()
    override_reason: Mapped[str | None] = mapped_column(Text)
