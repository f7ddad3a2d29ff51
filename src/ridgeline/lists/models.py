"""Tables of lists and their entries: the list, its counts, entries with their hashes,
history and the change feed the index follows. Only `ridgeline.lists` writes them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ridgeline.store.models import LOOKUP_KEY_MAX, Base
from ridgeline.timeutil import utcnow


class HashList(Base):
    """A named list of hashes: a block list (matches act) or an allow list (suppresses)."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    #: "block", "allow" or "self-submitted" (`ridgeline.lists.core.SELF_SUBMITTED`).
    purpose: Mapped[str] = mapped_column(String(16), default="block")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Signal names the list accepts; empty means any installed signal.
    signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Per-signal match thresholds overriding the signal's default.
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Independent agreeing verdicts needed before an entry is matchable; 0 means
    #: no review policy (imported entries are confirmed and matchable at once).
    review_quorum: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    entries: Mapped[list[Entry]] = relationship(back_populates="hash_list")

    def threshold_for(self, signal: str, default: float) -> float:
        """The list's threshold for `signal`, falling back to the signal's default."""
        value = (self.thresholds or {}).get(signal)
        return default if value is None else float(value)


class ListCount(Base):
    """Live (not deleted) entries per list, kept by database triggers (migration 0007).

    Triggers, not application code, so every writer (the ORM, bulk executemany, a
    restore) keeps it true, and `lists ls` reads a count instead of scanning entries.
    """

    __tablename__ = "list_counts"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    entries: Mapped[int] = mapped_column(BigInteger, default=0)


class Entry(Base):
    """One item on a list: its hashes, provenance, classifications and review state."""

    __tablename__ = "entries"
    __table_args__ = (Index("ix_entries_list_status", "list_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    #: pending -> confirmed | rejected | disputed -> retired
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: A disable with an expiry: the entry is matchable again after this time.
    disabled_until: Mapped[dt.datetime | None] = mapped_column()
    source: Mapped[str | None] = mapped_column(String(200))
    origin_list: Mapped[str | None] = mapped_column(String(200))
    origin_member: Mapped[str | None] = mapped_column(String(200))
    origin_entry_id: Mapped[str | None] = mapped_column(String(200))
    import_batch: Mapped[str | None] = mapped_column(String(64))
    #: [{"scheme": "industry", "label": "A1"}, ...] — never a bare code.
    classifications: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Tombstone: set when the entry is deleted; the row stays for history and sync.
    deleted_at: Mapped[dt.datetime | None] = mapped_column()
    #: What partners say about the content (VICS `Series`, `VictimIdentified`, case
    #: numbers of VICS and StopNCII) and the sharing member's name (NCMEC), as read.
    series: Mapped[str | None] = mapped_column(String(200))
    victim_identified: Mapped[bool | None] = mapped_column(Boolean)
    case_numbers: Mapped[list[str] | None] = mapped_column(JSON)
    origin_member_name: Mapped[str | None] = mapped_column(String(200))

    hash_list: Mapped[HashList] = relationship(back_populates="entries")
    signals: Mapped[list[EntrySignal]] = relationship(
        back_populates="entry", cascade="all, delete-orphan"
    )


class EntrySignal(Base):
    """A hash belonging to an entry (an entry may carry md5, sha1, pdq, photodna, ...)."""

    __tablename__ = "entry_signals"
    __table_args__ = (
        Index("ix_entry_signals_lookup", "signal", "lookup_key"),
        #: Joins to entries (duplicate checks of imports) and the delete cascade.
        Index("ix_entry_signals_entry_id", "entry_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    signal: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    lookup_key: Mapped[str] = mapped_column(String(LOOKUP_KEY_MAX + 8))
    quality: Mapped[int | None] = mapped_column(Integer)

    entry: Mapped[Entry] = relationship(back_populates="signals")


class EntryEvent(Base):
    """Full history of an entry: who did what, when, with details."""

    __tablename__ = "entry_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Change(Base):
    """Append-only feed of list/entry changes; indexes poll it to update in place.

    `seq` only grows, so a reader remembers the last `seq` it applied.
    """

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    list_id: Mapped[int] = mapped_column(Integer, index=True)
    #: None for a change to the whole list (enabled flag, thresholds).
    entry_id: Mapped[int | None] = mapped_column(Integer)
    #: "add", "update" or "remove" (disable, reject, retire, delete).
    op: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
