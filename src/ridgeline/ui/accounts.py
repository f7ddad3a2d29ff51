"""UI users (name + argon2id password) and server-side sessions.

A session is created by a successful login (a password or an API key) and found again
by the SHA-256 of its cookie token. Every request re-reads it, so logout, expiry, a
revoked API key or a disabled user take effect at once in every worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.service.keys import ROLES, Principal
from ridgeline.service.models import ApiKey
from ridgeline.timeutil import as_utc, isoformat, utcnow
from ridgeline.ui.models import UiLoginFailure, UiSession, UiUser

#: argon2id, RFC 9106's second recommended option (64 MiB, 3 passes): people choose
#: passwords, so the hash must make guessing expensive (API keys are random instead).
_hasher = PasswordHasher(time_cost=3, memory_cost=65_536, parallelism=1)
#: A hash to verify against when the name is unknown, so timing does not tell names.
_DUMMY = _hasher.hash("ridgeline-no-such-user")
MIN_PASSWORD = 12
#: How long a session lasts from login.
DEFAULT_SESSION_MINUTES = 480.0


@dataclass(frozen=True)
class UserView:
    """A user as listed: never the password hash."""

    id: int
    name: str
    role: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    agency: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "agency": self.agency,
            "created_at": isoformat(self.created_at),
            "disabled_at": isoformat(self.disabled_at),
        }


def _view(user: UiUser) -> UserView:
    disabled = as_utc(user.disabled_at) if user.disabled_at is not None else None
    return UserView(user.id, user.name, user.role, as_utc(user.created_at), disabled, user.agency)


def add_user(
    session: Session, name: str, role: str, password: str, *, agency: str | None = None
) -> UserView:
    """Create a UI user; the password is kept only as an argon2id hash. A
    `law-enforcement` user must name the agency they act for (as a key must): they see
    only the reports made available to it."""
    name = name.strip()
    if not name:
        raise BadInput("a user needs a name")
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    agency = agency.strip() if agency else None
    if role == "law-enforcement" and not agency:
        raise BadInput("a law-enforcement user needs --agency (the agency they act for)")
    if role != "law-enforcement" and agency:
        raise BadInput(f"only law-enforcement users are bound to an agency, not {role!r} users")
    if agency and len(agency) > 200:
        raise BadInput("the agency name is longer than 200 characters")
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"a password needs at least {MIN_PASSWORD} characters")
    if session.scalar(select(UiUser).where(UiUser.name == name)) is not None:
        raise Conflict(f"a UI user named {name!r} exists already")
    user = UiUser(name=name, role=role, password_hash=_hasher.hash(password), agency=agency)
    session.add(user)
    session.flush()
    return _view(user)


def list_users(session: Session, *, include_disabled: bool = True) -> list[UserView]:
    query = select(UiUser).order_by(UiUser.id)
    if not include_disabled:
        query = query.where(UiUser.disabled_at.is_(None))
    return [_view(u) for u in session.scalars(query)]


def disable_user(session: Session, name: str, *, now: dt.datetime | None = None) -> UserView:
    """Disable a user and end their sessions (in every worker: sessions are rows)."""
    user = session.scalar(select(UiUser).where(UiUser.name == name.strip()))
    if user is None:
        raise NotFound(f"no UI user named {name!r}")
    now = as_utc(now or utcnow())
    if user.disabled_at is None:
        user.disabled_at = now
    for row in session.scalars(
        select(UiSession).where(UiSession.user_id == user.id, UiSession.revoked_at.is_(None))
    ):
        row.revoked_at = now
    session.flush()
    return _view(user)


def check_password(session: Session, name: str, password: str) -> UserView | None:
    """The user if `password` is theirs and they are not disabled, else None."""
    user = session.scalar(select(UiUser).where(UiUser.name == name.strip()))
    stored = user.password_hash if user is not None else _DUMMY
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.flush()
    return _view(user)


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LiveSession:
    """A valid session as a request sees it."""

    id: str
    kind: str
    name: str
    role: str
    csrf: str
    expires_at: dt.datetime
    unblur_entry_id: int | None
    #: The agency a law-enforcement user or key acts for (read afresh each request).
    agency: str | None = None

    @property
    def actor(self) -> str:
        """How library history records this person (`key:NAME` as the API does)."""
        return f"{'key' if self.kind == 'key' else 'user'}:{self.name}"


def start_session(
    session: Session,
    *,
    user: UserView | None = None,
    principal: Principal | None = None,
    minutes: float = DEFAULT_SESSION_MINUTES,
    now: dt.datetime | None = None,
) -> str:
    """A new session for a password user or an API key; returns the cookie token."""
    if (user is None) == (principal is None):
        raise ValueError("a session is for a user or for an API key")
    now = as_utc(now or utcnow())
    token = secrets.token_urlsafe(32)
    row = UiSession(
        id=token_id(token),
        kind="password" if user is not None else "key",
        user_id=user.id if user is not None else None,
        key_id=principal.key_id if principal is not None else None,
        name=user.name if user is not None else principal.name,  # type: ignore[union-attr]
        role=user.role if user is not None else principal.role,  # type: ignore[union-attr]
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + dt.timedelta(minutes=minutes),
    )
    session.add(row)
    session.flush()
    return token


def load_session(
    session: Session, token: str, *, now: dt.datetime | None = None
) -> LiveSession | None:
    """The session behind a cookie token, or None when unknown, expired or revoked
    (a revoked key or a disabled user revokes it here, for every worker)."""
    if not token or len(token) > 200:
        return None
    now = as_utc(now or utcnow())
    row = session.get(UiSession, token_id(token))
    if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
        return None
    if row.kind == "key":
        key = session.get(ApiKey, row.key_id)
        if key is None or key.revoked_at is not None:
            return None
        role, name, agency = key.role, key.name, key.agency
    else:
        user = session.get(UiUser, row.user_id)
        if user is None or user.disabled_at is not None:
            return None
        role, name, agency = user.role, user.name, user.agency
    return LiveSession(
        row.id,
        row.kind,
        name,
        role,
        row.csrf,
        as_utc(row.expires_at),
        row.unblur_entry_id,
        agency,
    )


def end_session(session: Session, session_id: str, *, now: dt.datetime | None = None) -> None:
    """Log out: the session is revoked (kept for the record)."""
    row = session.get(UiSession, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = as_utc(now or utcnow())
        session.flush()


def revoke_sessions(session: Session, name: str) -> int:
    """End every live session of a user or key name; returns how many."""
    now = utcnow()
    count = 0
    for row in session.scalars(
        select(UiSession).where(UiSession.name == name, UiSession.revoked_at.is_(None))
    ):
        row.revoked_at = now
        count += 1
    session.flush()
    return count


def set_unblur(session: Session, session_id: str, entry_id: int | None) -> None:
    """Remember (or forget) the entry this session explicitly asked to unblur."""
    row = session.get(UiSession, session_id)
    if row is not None:
        row.unblur_entry_id = entry_id
        session.flush()


class LoginThrottle:
    """Failed password logins per name, counted in the database so that every worker
    sees the same failures: after `failures` within `window_s`, further attempts for
    the name are refused without running argon2 (64 MiB each) until the window has
    passed, so guessing is slow and cheap to refuse. Times are Unix seconds."""

    def __init__(self, failures: int = 5, window_s: float = 60.0) -> None:
        self.failures = failures
        self.window_s = window_s

    def wait(self, session: Session, name: str, *, now: float | None = None) -> float:
        """Seconds until `name` may try again (0: now)."""
        now = time.time() if now is None else now
        times = session.scalars(
            select(UiLoginFailure.at)
            .where(UiLoginFailure.name == _fold(name), UiLoginFailure.at > now - self.window_s)
            .order_by(UiLoginFailure.at)
        ).all()
        if len(times) < self.failures:
            return 0.0
        return self.window_s - (now - times[0])

    def failed(self, session: Session, name: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        # failures older than the window count for nothing: drop them (every name)
        session.execute(delete(UiLoginFailure).where(UiLoginFailure.at <= now - self.window_s))
        session.add(UiLoginFailure(name=_fold(name), at=now))
        session.flush()

    def succeeded(self, session: Session, name: str) -> None:
        session.execute(delete(UiLoginFailure).where(UiLoginFailure.name == _fold(name)))
        session.flush()


def _fold(name: str) -> str:
    """Names compare case-folded and stripped (as people type them)."""
    return name.strip().lower()[:200]
