"""Tables for reviewers, verdicts, review exposure, evidence blobs and the tamper-evident log.

The log's table lives in `ridgeline.auditlog`; importing it here registers it with
`Base.metadata` through the single import in `schema.py`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import ridgeline.auditlog  # noqa: F401  (registers log_records)
from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class Reviewer(Base):
    """A person who reviews entries, with role flags and wellness settings."""

    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: May give first-stage verdicts.
    is_reviewer: Mapped[bool] = mapped_column(Boolean, default=True)
    #: May decide disputed entries.
    is_senior: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Categories (`scheme:label`, `list:NAME`, `unclassified`) this reviewer may see;
    #: empty means all.
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Items viewed per UTC day; None uses the global policy.
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    #: Cumulative review minutes before a break is enforced; None uses the global policy.
    break_after_minutes: Mapped[int | None] = mapped_column(Integer)
    #: Length of the enforced break; None uses the global policy.
    break_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Verdict(Base):
    """One reviewer's decision on one entry (at most one per reviewer and entry)."""

    __tablename__ = "verdicts"
    __table_args__ = (Index("ux_verdicts_entry_reviewer", "entry_id", "reviewer", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(ForeignKey("reviewers.name"))
    #: "review" (first stage) or "senior" (deciding a dispute).
    stage: Mapped[str] = mapped_column(String(16), default="review")
    #: A `ridgeline` scheme label: csam, exploitative, not-csam, unknown.
    decision: Mapped[str] = mapped_column(String(16))
    #: [{"scheme": "industry", "label": "A1"}, ...]
    classifications: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    dwell_seconds: Mapped[float | None] = mapped_column(Float)


class ReviewView(Base):
    """An item served to a reviewer: the unit of exposure and review-time tracking."""

    __tablename__ = "review_views"
    __table_args__ = (Index("ix_review_views_reviewer_started", "reviewer", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reviewer: Mapped[str] = mapped_column(ForeignKey("reviewers.name"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column()
    #: Set when the reviewer submits a verdict or releases the item.
    ended_at: Mapped[dt.datetime | None] = mapped_column()
    unblurred: Mapped[bool] = mapped_column(Boolean, default=False)
