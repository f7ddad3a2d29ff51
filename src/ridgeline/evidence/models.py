"""Encrypted evidence blobs (media kept for review, audits and reports)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

import ridgeline.auditlog
import ridgeline.lists.models  # noqa: F401  (entries and lists, which these rows reference)
from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class EvidenceBlob(Base):
    """Media kept for review, AES-GCM ciphertext only; the key never enters the database."""

    __tablename__ = "evidence_blobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    #: Random id bound into the associated data with the entry id.
    blob_uuid: Mapped[str] = mapped_column(String(32), unique=True)
    #: Short fingerprint of the key that encrypted it, to tell "wrong key" from "altered".
    key_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str | None] = mapped_column(String(100))
    stored_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    added_by: Mapped[str | None] = mapped_column(String(200))

    def to_json(self) -> dict[str, Any]:
        from ridgeline.timeutil import isoformat

        return {
            "id": self.id,
            "entry_id": self.entry_id,
            "size": self.size,
            "media_type": self.media_type,
            "stored_at": isoformat(self.stored_at),
            "key_id": self.key_id,
        }
