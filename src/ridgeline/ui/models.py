"""The UI's tables: people who log in with a password, and server-side sessions.

Sessions live in the database, not in a signed cookie, so a logout, a revoked API key
or a disabled user ends the session in every worker at once: each request looks its
session up (by a SHA-256 of the cookie's token; the token itself is never stored).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class UiUser(Base):
    """A person who logs in to the UI with a name and a password (argon2id hash)."""

    __tablename__ = "ui_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column()
    #: The agency a law-enforcement user acts for (no other role has one), as for keys.
    agency: Mapped[str | None] = mapped_column(String(200))


class UiSession(Base):
    """A logged-in browser: who (a user or an API key), its CSRF token, its expiry."""

    __tablename__ = "ui_sessions"

    #: SHA-256 (hex) of the cookie's token.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: "password" (a `ui_users` row) or "key" (an `api_keys` row).
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(Integer)
    key_id: Mapped[int | None] = mapped_column(Integer)
    #: The identity actions are recorded under (user name or key name) and its role.
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    csrf: Mapped[str] = mapped_column(String(64))
    #: The entry this session explicitly asked to see unblurred (the next media fetch).
    unblur_entry_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class UiLoginFailure(Base):
    """One failed password login for a (case-folded) name, in Unix seconds: kept in the
    database so that every worker counts the same failures (`accounts.LoginThrottle`)."""

    __tablename__ = "ui_login_failures"
    __table_args__ = (Index("ix_ui_login_failures_name_at", "name", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)
