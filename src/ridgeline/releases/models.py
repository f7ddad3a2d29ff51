"""Signed list releases we publish and the ones we pulled."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

import ridgeline.lists.models  # noqa: F401  (entries and lists, which these rows reference)
from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class Release(Base):
    """A signed, versioned release of a list that this database published."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("list_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    key_id: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: uid -> sha256 of the released record; the next delta is computed against it.
    digests: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PulledRelease(Base):
    """A release applied from a publisher: which list, version and key."""

    __tablename__ = "pulled_releases"
    __table_args__ = (Index("ix_pulled_releases_list", "list_id", "source_list"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    source_list: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # snapshot or delta
    key_id: Mapped[str] = mapped_column(String(64))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
