"""Tables of lists and their entries: the list, its counts, entries with their hashes,
history and the change feed the index follows. Only `ridgeline.lists` writes them."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow

#: Bytes of an entry hash's key that the lookup index holds (`ix_entry_signals_key`).
KEY_PREFIX = 8


def entry_key(value: str) -> bytes:
    """The stored key of a canonical hash: the raw bytes of lowercase hex (md5, sha1,
    sha256, PDQ: half the size of the text), else the sha256 digest of the text."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if raw and raw.hex() == value:
        return raw
    return hashlib.sha256(value.encode()).digest()


def needs_text(value: str, key: bytes) -> bool:
    """Whether `value` must be stored beside its key (it is not the key's hex)."""
    return len(key) * 2 != len(value) or key.hex() != value


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


class ImportBatch(Base):
    """One import into a list: when, by whom, from which format, with what status.

    Imported entries point here (`Entry.batch_id`) instead of each carrying the batch
    name, times and an `import` history event of its own: their history's `import`
    event and their created/updated times are read from this row (migration 0012).
    """

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The import's name as reports and the tamper-evident log give it.
    #: (An import writes a second row of the same name for its `reference` entries.)
    batch: Mapped[str] = mapped_column(String(64))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    #: The status the batch's new entries were given.
    status: Mapped[str] = mapped_column(String(16))
    entries: Mapped[int] = mapped_column(BigInteger, default=0)


class ImportRange(Base):
    """Where in the file each entry of a run of one import's new entries was read.

    `positions` holds runs `[first_entry_id, count, prefix, number, suffix]`: entry
    `first_entry_id + i` was read at `f"{prefix}{number + i}{suffix}"` (a txt file's
    lines are one run per flush), so a position costs bytes per run, not per entry.
    """

    __tablename__ = "import_ranges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(
        ForeignKey("import_batches.id", ondelete="CASCADE"), index=True
    )
    first_entry_id: Mapped[int] = mapped_column(Integer)
    last_entry_id: Mapped[int] = mapped_column(Integer)
    positions: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Entry(Base):
    """One item on a list: its hashes, provenance, classifications and review state."""

    __tablename__ = "entries"
    __table_args__ = (
        Index("ix_entries_list_id", "list_id"),
        #: A source's re-sent records, by origin id (imports look each part's up).
        Index(
            "ix_entries_origin",
            "list_id",
            "origin_entry_id",
            sqlite_where=text("origin_entry_id IS NOT NULL"),
            postgresql_where=text("origin_entry_id IS NOT NULL"),
        ),
        #: Entries waiting for review (or otherwise not confirmed), by list: most of a
        #: large list is confirmed, so this index stays small. Queries add the term
        #: `status != 'confirmed'` so SQLite sees they may use it.
        Index(
            "ix_entries_unconfirmed",
            "list_id",
            "status",
            sqlite_where=text("status <> 'confirmed'"),
            postgresql_where=text("status <> 'confirmed'"),
        ),
    )

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
    #: The batch name of an entry imported one by one (`add_entry`); bulk-imported
    #: entries name their batch through `batch_id` (read `batch_name`).
    import_batch: Mapped[str | None] = mapped_column(String(64))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))
    #: [{"scheme": "industry", "label": "A1"}, ...] — never a bare code.
    classifications: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    #: NULL for a bulk-imported entry: its batch's time (`created`, `updated`).
    created_at: Mapped[dt.datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
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
    batch: Mapped[ImportBatch | None] = relationship()

    @property
    def batch_name(self) -> str | None:
        """The import batch that brought the entry in, however it was written."""
        if self.import_batch is not None:
            return self.import_batch
        return self.batch.batch if self.batch is not None else None

    @property
    def submitter(self) -> str | None:
        """Who submitted the entry (the importing actor for a bulk-imported one)."""
        if self.submitted_by is not None:
            return self.submitted_by
        return self.batch.actor if self.batch is not None else None

    @property
    def created(self) -> dt.datetime | None:
        """When the entry was made (its batch's time for a bulk-imported one)."""
        if self.created_at is not None:
            return self.created_at
        return self.batch.at if self.batch is not None else None

    @property
    def updated(self) -> dt.datetime | None:
        """When the entry last changed (its batch's time if never since the import)."""
        return self.updated_at if self.updated_at is not None else self.created


class EntrySignal(Base):
    """A hash belonging to an entry (an entry may carry md5, sha1, pdq, photodna, ...).

    Stored compactly (migration 0012): `key` is `entry_key(value)` (32 raw bytes for
    a PDQ hash, not 64 hex characters), the text is kept only when it is not the key's
    hex, and the lookup index holds the key's first `KEY_PREFIX` bytes (lookups
    compare the whole key too). Read the canonical text as `value`.
    """

    __tablename__ = "entry_signals"
    __table_args__ = (
        Index("ix_entry_signals_key", text(f"substr(key, 1, {KEY_PREFIX})")),
        #: Joins to entries (duplicate checks of imports) and the delete cascade.
        Index("ix_entry_signals_entry_id", "entry_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    signal: Mapped[str] = mapped_column(String(32))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The canonical text when it is not `key.hex()`; NULL otherwise.
    text_value: Mapped[str | None] = mapped_column("value", Text)
    quality: Mapped[int | None] = mapped_column(Integer)

    entry: Mapped[Entry] = relationship(back_populates="signals")

    @property
    def value(self) -> str:
        """The canonical hash text."""
        return stored_value(self.key, self.text_value)

    @value.setter
    def value(self, value: str) -> None:
        self.key = entry_key(value)
        self.text_value = value if needs_text(value, self.key) else None


def stored_value(key: bytes, text_value: str | None) -> str:
    """The canonical text of a stored hash (`EntrySignal.key`, `EntrySignal.text_value`)."""
    return text_value if text_value is not None else bytes(key).hex()


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
    #: With `entry_id`, a range: every entry of the list with an id from `entry_id` to
    #: this one (one row per bulk insert, not one per entry). NULL: one entry.
    last_entry_id: Mapped[int | None] = mapped_column(Integer)
    #: "add", "update" or "remove" (disable, reject, retire, delete).
    op: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
