"""The HTTP API keys table: secrets only as argon2 hashes and keyed digests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class ApiKey(Base):
    """An HTTP API key: the secret is stored only as an argon2 hash, found by its prefix."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("prefix"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(Text)
    #: HMAC-SHA256 of the secret (keyed by the prefix): a cheap first check, so a wrong
    #: secret never costs an argon2 verification. NULL for keys made before 0005.
    secret_digest: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    #: Requests per second allowed (token bucket); None means the server default.
    rate_limit: Mapped[float | None] = mapped_column()
    #: The agency a `law-enforcement` key acts for: it sees only reports made available
    #: to this agency (`ridgeline.routing.access`). None for every other role.
    agency: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
