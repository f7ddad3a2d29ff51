"""Tables of self-submissions: one row per case, the entries it put on the list, and one
row per batch (the per-submitter limits count them). Only `ridgeline.submit` writes them.

Nothing here identifies the person: the case number is stored only as its SHA-256 (it
is what lets its holder withdraw), and the submitter is a keyed pseudonym of the
network address that the service derives (`ridgeline.submit.core.pseudonym`), kept so
the per-submitter limits hold across workers.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class SelfSubmission(Base):
    """A case: the hashes one person submitted under one case number."""

    __tablename__ = "self_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 hex of the normalised case number (never the number itself).
    case_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: "active" or "withdrawn" (StopNCII's Withdrawn state: every hash removed).
    status: Mapped[str] = mapped_column(String(16), default="active")
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column()


class SelfSubmissionEntry(Base):
    """An entry a case put on the self-submitted list (withdrawal deletes them all)."""

    __tablename__ = "self_submission_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("self_submissions.id", ondelete="CASCADE"), index=True
    )
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))


class SelfSubmissionBatch(Base):
    """One request that submitted hashes: who (pseudonym), when, how many."""

    __tablename__ = "self_submission_batches"
    __table_args__ = (Index("ix_self_submission_batches_submitter_at", "submitter", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("self_submissions.id", ondelete="CASCADE")
    )
    submitter: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Items sent in the batch, and how many of them went on the list.
    items: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
