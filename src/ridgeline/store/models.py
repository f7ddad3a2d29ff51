"""The declarative base every table shares, and the tables of content seen.

Later concepts (review, audit, reports, ...) add their own model modules and
Alembic migrations; they all share `Base`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ridgeline.timeutil import utcnow

#: Values longer than this (vPDQ frame lists) are indexed by digest, not by text,
#: because PostgreSQL B-tree rows are limited to about 2.7 kB.
LOOKUP_KEY_MAX = 200


def lookup_key(value: str) -> str:
    """Indexable key of a canonical hash string: itself, or `sha256:` + digest if long."""
    if len(value) <= LOOKUP_KEY_MAX:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)


def utc_micros(when: dt.datetime) -> int:
    """`when` as `UtcMicros` stores it: integer microseconds since 1970-01-01 UTC (a
    naive datetime taken as UTC); for bulk writers that bind the integers themselves."""
    aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return (aware - _EPOCH) // _MICRO


class UtcMicros(TypeDecorator[dt.datetime]):
    """A UTC time stored as integer microseconds since 1970-01-01 (a BIGINT), read back
    as an aware UTC datetime.

    For tables of millions of rows written in bulk (the victims registry): 8 bytes
    instead of 26 characters of text on SQLite, and the bulk writer binds the integers
    it already has. A naive datetime is taken as UTC, as everywhere in Ridgeline.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, int):
            return value
        return utc_micros(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return _EPOCH + dt.timedelta(microseconds=int(value))


class Base(DeclarativeBase):
    """Declarative base shared by every Ridgeline table."""

    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Content(Base):
    """A file Ridgeline has seen, identified by its sha256."""

    __tablename__ = "content"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # image, video or file
    media_type: Mapped[str | None] = mapped_column(String(100))
    last_path: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    signals: Mapped[list[ContentSignal]] = relationship(
        back_populates="content", cascade="all, delete-orphan"
    )


class ContentSignal(Base):
    """One computed hash of a content item (PDQ of a frame, md5 of the file, ...)."""

    __tablename__ = "content_signals"
    __table_args__ = (
        UniqueConstraint("content_id", "signal", "lookup_key", "variant"),
        Index("ix_content_signals_lookup", "signal", "lookup_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"))
    signal: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    lookup_key: Mapped[str] = mapped_column(String(LOOKUP_KEY_MAX + 8))
    quality: Mapped[int | None] = mapped_column(Integer)
    #: "" for the image as given; a dihedral variant or frame label otherwise.
    variant: Mapped[str] = mapped_column(String(32), default="")
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    content: Mapped[Content] = relationship(back_populates="signals")
