"""Tables of the victims registry (migration 0005).

A `VictimRecord` is one database's record of a victim, as imported; records that are
the same child are merged into one `MergedVictim` (recomputed on every import), and
`VictimMerge` says why two records were put together. Sighting times are stored as
UTC seconds since the epoch: there are tens of millions of them. The times of records
and merged victims are integer UTC microseconds (`UtcMicros`, migration 0023), read
back as datetimes: there are millions of rows of them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base, UtcMicros
from ridgeline.timeutil import utcnow


class Series(Base):
    """Media of the same victim(s) or event, under its id in one database."""

    __tablename__ = "victim_series"
    __table_args__ = (
        #: an index, not a table constraint, so a big import can rebuild it by one sort
        Index("ux_victim_series_key", "database", "series_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    database: Mapped[str] = mapped_column(String(64))
    series_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcMicros, default=utcnow)


class VictimRecord(Base):
    """One database's record of a victim: status, first seen, identification, attributes."""

    __tablename__ = "victim_records"
    __table_args__ = (
        #: an index, not a table constraint, so a big import can rebuild it by one sort
        Index("ux_victim_records_key", "database", "victim_key", unique=True),
        Index("ix_victim_records_merged", "merged_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    database: Mapped[str] = mapped_column(String(64))
    victim_key: Mapped[str] = mapped_column(String(200))
    #: the database's own first sighting (the record's source is its `database`)
    first_seen: Mapped[dt.datetime] = mapped_column(UtcMicros)
    #: identified exactly when set (`status`)
    identified_at: Mapped[dt.datetime | None] = mapped_column(UtcMicros)
    identifying_agency: Mapped[str | None] = mapped_column(String(200))
    age_band: Mapped[str] = mapped_column(String(16), default="unknown")
    gender: Mapped[str] = mapped_column(String(8), default="unknown")
    region: Mapped[str] = mapped_column(String(8), default="unknown")
    merged_id: Mapped[int | None] = mapped_column(Integer)
    imported_at: Mapped[dt.datetime] = mapped_column(UtcMicros, default=utcnow)

    @property
    def status(self) -> str:
        """identified | unidentified (a column until migration 0023)."""
        return "identified" if self.identified_at is not None else "unidentified"


class VictimSeries(Base):
    """A record belongs to a series (many to many)."""

    __tablename__ = "victim_record_series"

    record_id: Mapped[int] = mapped_column(
        ForeignKey("victim_records.id", ondelete="CASCADE"), primary_key=True
    )
    series_id: Mapped[int] = mapped_column(
        ForeignKey("victim_series.id", ondelete="CASCADE"), primary_key=True
    )


class VictimHash(Base):
    """A media hash of a record: how another database's record is recognised."""

    __tablename__ = "victim_hashes"
    __table_args__ = (
        #: `key` groups equal values (an integer index, not one on 64-character text)
        Index("ix_victim_hashes_key", "key"),
        #: replacing a record deletes its hashes (and PostgreSQL checks the foreign key)
        Index("ix_victim_hashes_record", "record_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("victim_records.id", ondelete="CASCADE"))
    signal: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    #: `feed.hash_key(value)`: equal values have equal keys (the converse is checked)
    key: Mapped[int] = mapped_column(BigInteger, server_default="0")


class VictimLink(Base):
    """An analyst's `same_as`: this record is that database's victim (its id there)."""

    __tablename__ = "victim_links"
    __table_args__ = (Index("ix_victim_links_record", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("victim_records.id", ondelete="CASCADE"))
    database: Mapped[str] = mapped_column(String(64))
    victim_key: Mapped[str] = mapped_column(String(200))


class SightingPack(Base):
    """A record's own sightings as its database sent them (migration 0019): one row per
    record, the times packed as little-endian int64 UTC seconds in the file's order.

    Ten million sightings are ten million rows otherwise; a pack is written with its
    record and replaced with it, and read back as one array.
    """

    __tablename__ = "victim_sighting_packs"

    record_id: Mapped[int] = mapped_column(
        ForeignKey("victim_records.id", ondelete="CASCADE"), primary_key=True
    )
    count: Mapped[int] = mapped_column(Integer)
    times: Mapped[bytes] = mapped_column(LargeBinary)


class Sighting(Base):
    """A match or report of a series seen again (`source`: match, scan, service...); a
    database's own sightings are in `SightingPack`."""

    __tablename__ = "victim_sightings"
    __table_args__ = (Index("ix_victim_sightings_record", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("victim_records.id", ondelete="CASCADE"))
    #: UTC seconds since 1970-01-01
    seen_at: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(String(64))


class MergedVictim(Base):
    """One child after merging every record that is the same victim."""

    __tablename__ = "merged_victims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    records: Mapped[int] = mapped_column(Integer)
    #: the databases holding the victim, comma-separated and sorted
    databases: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[dt.datetime] = mapped_column(UtcMicros)
    #: the database of the record seen first
    first_seen_source: Mapped[str] = mapped_column(String(64))
    identified_at: Mapped[dt.datetime | None] = mapped_column(UtcMicros)
    identifying_agency: Mapped[str | None] = mapped_column(String(200))
    age_band: Mapped[str] = mapped_column(String(16))
    gender: Mapped[str] = mapped_column(String(8))
    region: Mapped[str] = mapped_column(String(8))
    #: distinct occasions (first_seen and sighting times of all records)
    occasions: Mapped[int] = mapped_column(Integer)
    #: the fifth distinct occasion: actively traded from then on (NCMEC's definition)
    traded_since: Mapped[dt.datetime | None] = mapped_column(UtcMicros)


class VictimColumn(Base):
    """The merged victims column by column (one numpy array a row, `.npy` bytes), written
    by every merge in its transaction: what the indicator reads instead of a million rows."""

    __tablename__ = "victim_columns"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TradedUpdate(Base):
    """A merged victim whose occasions changed after the last merge (a match's sighting):
    the indicator applies these over `VictimColumn`'s `traded_since`; a merge clears them."""

    __tablename__ = "victim_traded_updates"

    merged_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: UTC seconds of the fifth occasion, -1 if fewer than five
    traded_since: Mapped[int] = mapped_column(BigInteger)


class VictimMerge(Base):
    """Why two records were merged: a shared hash or an analyst's `same_as`."""

    __tablename__ = "victim_merges"
    __table_args__ = (
        Index("ix_victim_merges_merged", "merged_id"),
        Index("ix_victim_merges_a", "record_a"),
        Index("ix_victim_merges_b", "record_b"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merged_id: Mapped[int] = mapped_column(Integer)
    record_a: Mapped[int] = mapped_column(ForeignKey("victim_records.id", ondelete="CASCADE"))
    record_b: Mapped[int] = mapped_column(ForeignKey("victim_records.id", ondelete="CASCADE"))
    #: `hash` or `same_as`
    reason: Mapped[str] = mapped_column(String(16))
    #: the shared hash (`signal:value`) or the link as `database/victim_id`
    detail: Mapped[str] = mapped_column(Text)


class SeriesLink(Base):
    """A list entry or a reported file belongs to a series (from VICS, NCMEC, an analyst)."""

    __tablename__ = "series_links"
    __table_args__ = (
        Index("ix_series_links_entry", "entry_id"),
        Index("ix_series_links_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("victim_series.id", ondelete="CASCADE"))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    report_draft_id: Mapped[int | None] = mapped_column(
        ForeignKey("report_drafts.id", ondelete="CASCADE")
    )
    #: the reported file's sha256, for files that are in no list
    sha256: Mapped[str | None] = mapped_column(String(64))
    linked_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
