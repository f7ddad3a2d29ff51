"""Tables for cases: which case each received report is in, the links that put it there
(each with the identifier that made it), viral-file bundles, and analysts' decisions.

A case is a connected component of the link graph; `case_reports` keeps each report's
current case so a lookup is one indexed read, and linking is incremental (union by case
id, the oldest case survives).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class Case(Base):
    """One case; `merged_into` is set when it was folded into another."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: open, merged (into `merged_into`), empty (every report moved out).
    state: Mapped[str] = mapped_column(String(16), default="open")
    merged_into: Mapped[int | None] = mapped_column(Integer)
    report_count: Mapped[int] = mapped_column(Integer, default=0)


class CaseReport(Base):
    """A received report's current case (every received report is in exactly one)."""

    __tablename__ = "case_reports"
    __table_args__ = (Index("ix_case_reports_case", "case_id"),)

    report_id: Mapped[int] = mapped_column(
        ForeignKey("received_reports.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))


class CaseLink(Base):
    """Two reports linked, and the identifier that did it (`kind` "analyst" for a merge)."""

    __tablename__ = "case_links"
    __table_args__ = (
        Index("ix_case_links_report_a", "report_a"),
        Index("ix_case_links_report_b", "report_b"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_a: Mapped[int] = mapped_column(ForeignKey("received_reports.id", ondelete="CASCADE"))
    report_b: Mapped[int] = mapped_column(ForeignKey("received_reports.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Cut by an analyst's split (kept for the record, no longer joins the reports).
    cut: Mapped[bool] = mapped_column(default=False)


class FileBundle(Base):
    """A file seen in more than the viral threshold of reports: those reports are bundled
    under it instead of being linked into one case by it."""

    __tablename__ = "file_bundles"
    __table_args__ = (Index("ix_file_bundles_kind_value", "kind", "value", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    report_count: Mapped[int] = mapped_column(Integer, default=0)


class FileBundleReport(Base):
    """A report in a viral-file bundle."""

    __tablename__ = "file_bundle_reports"
    __table_args__ = (Index("ix_file_bundle_reports_report", "report_id"),)

    bundle_id: Mapped[int] = mapped_column(
        ForeignKey("file_bundles.id", ondelete="CASCADE"), primary_key=True
    )
    report_id: Mapped[int] = mapped_column(
        ForeignKey("received_reports.id", ondelete="CASCADE"), primary_key=True
    )


class CaseEvent(Base):
    """An analyst's split or merge, with the reason (also in the tamper-evident log)."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    #: split, merge.
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
