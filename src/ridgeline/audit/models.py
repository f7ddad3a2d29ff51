"""Tables for list audits: the audit, its sampled items and the auditors' verdicts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class Audit(Base):
    """An audit of one list: how the sample was drawn and with which parameters."""

    __tablename__ = "audits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    strata: Mapped[str | None] = mapped_column(String(32))
    margin: Mapped[float] = mapped_column()
    confidence: Mapped[float] = mapped_column()
    expected_p: Mapped[float] = mapped_column()
    seed: Mapped[int] = mapped_column(Integer)
    auditors_per_item: Mapped[int] = mapped_column(Integer)
    population: Mapped[int] = mapped_column(Integer)
    sample_size: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: open or closed
    state: Mapped[str] = mapped_column(String(16), default="open")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditItem(Base):
    """One sampled entry, with the stratum it was drawn from."""

    __tablename__ = "audit_items"
    __table_args__ = (UniqueConstraint("audit_id", "entry_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    stratum: Mapped[str] = mapped_column(String(200), default="")


class AuditVerdict(Base):
    """One auditor's blind verdict on one item: verified, or an exception with a reason."""

    __tablename__ = "audit_verdicts"
    __table_args__ = (
        UniqueConstraint("item_id", "auditor"),
        Index("ix_audit_verdicts_audit", "audit_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("audit_items.id", ondelete="CASCADE"))
    auditor: Mapped[str] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
