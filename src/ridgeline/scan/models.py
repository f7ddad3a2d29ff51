"""Tables for scans (runs, per-file results, resume state), list actions,
quarantine, report drafts, flood-control holds and HTTP API keys.

All of them live in migration 0004 (branch `scan`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


def path_key(path: str) -> str:
    """Fixed-width index key for a path (paths may exceed B-tree row limits)."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


class ScanRun(Base):
    """One `ridgeline scan` invocation: what was asked and how it went."""

    __tablename__ = "scan_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    engine: Mapped[str] = mapped_column(String(16), default="local")
    paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    lists: Mapped[list[str]] = mapped_column(JSON, default=list)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: files, skipped, matched, errors, held
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ScanFile(Base):
    """The result of scanning one file or archive member in a run."""

    __tablename__ = "scan_files"
    __table_args__ = (Index("ix_scan_files_run", "run_id"), Index("ix_scan_files_sha256", "sha256"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("scan_runs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(16))
    media_type: Mapped[str | None] = mapped_column(String(100))
    signals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    scanned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScanState(Base):
    """Resume state: the last time a path was scanned, keyed by path + size + mtime."""

    __tablename__ = "scan_state"
    __table_args__ = (
        UniqueConstraint("path_key"),
        Index("ix_scan_state_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path_key: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(default=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    scanned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ListAction(Base):
    """Which actions a block list's matches fire (`flag`, `quarantine`, `report`)."""

    __tablename__ = "list_actions"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuarantineItem(Base):
    """A file moved out of the way because it matched; reversible by `restore`."""

    __tablename__ = "quarantine_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_path: Mapped[str] = mapped_column(Text)
    quarantine_path: Mapped[str] = mapped_column(Text)
    manifest_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    restored_at: Mapped[dt.datetime | None] = mapped_column()


class ReportDraft(Base):
    """A report in waiting: hashes, matches and context, for CyberTipline reporting later."""

    __tablename__ = "report_drafts"
    __table_args__ = (Index("ix_report_drafts_sha256", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    path: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    signals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FloodCounter(Base):
    """Matches per entry per fixed time window (flood control)."""

    __tablename__ = "flood_counters"
    __table_args__ = (UniqueConstraint("entry_id", "window_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[int] = mapped_column(BigInteger)  # unix seconds
    count: Mapped[int] = mapped_column(Integer, default=0)


class FloodHold(Base):
    """An entry whose matches spiked: its matches stop firing actions until reviewed."""

    __tablename__ = "flood_holds"
    __table_args__ = (Index("ix_flood_holds_entry", "entry_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(Integer)
    list_id: Mapped[int | None] = mapped_column(Integer)
    #: held -> released
    status: Mapped[str] = mapped_column(String(16), default="held")
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_s: Mapped[int] = mapped_column(Integer, default=60)
    held_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    released_at: Mapped[dt.datetime | None] = mapped_column()
    released_by: Mapped[str | None] = mapped_column(String(200))
