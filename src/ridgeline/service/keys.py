"""API keys: random secrets stored only as argon2 hashes, found by a public prefix.

A key reads `rl_<prefix>_<secret>`. The prefix selects one row; the secret is
checked against its argon2 hash. Verified keys are cached briefly in memory (by a
SHA-256 of the whole key) so the slow, deliberately costly argon2 check runs once
per key per process, not once per request.

Prefixes are not secret (`keys list` prints them), so a flood of wrong secrets for a
real prefix must not cost an argon2 check each (about 60 a second filled both cores).
Beside the argon2 hash each key stores an HMAC-SHA256 of its secret keyed by its
prefix: a wrong secret fails that comparison in microseconds and argon2 runs only
for the right one. The secrets are 256 random bits, so the fast digest gives a
thief of the table nothing to guess with; argon2 stays as the stored hash. Keys
made before the digest existed get it on their first successful check; until then
wrong secrets for them are limited per prefix (`FAILURES_PER_WINDOW`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput, NotFound
from ridgeline.service.models import ApiKey
from ridgeline.timeutil import isoformat, utcnow

#: Roles, as named in the issue. `provider` may hash, match and look up only.
ROLES = (
    "admin",
    "curator",
    "reviewer",
    "auditor",
    "provider",
    "analyst",
    "law-enforcement",
    "reporter",
    "intake",
)
KEY_PREFIX = "rl_"
CACHE_SECONDS = 5.0
#: Keys without a digest (made before it existed): argon2 checks that fail for one
#: prefix within `FAILURE_WINDOW_S` before further ones are refused unchecked.
FAILURES_PER_WINDOW = 5
FAILURE_WINDOW_S = 60.0

#: argon2id with the OWASP-recommended minimum (19 MiB, 2 passes): key secrets are
#: 256-bit random, so the hash guards a leaked table, not guessable passwords.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


def secret_digest(prefix: str, secret: str) -> str:
    """The fast check stored beside the argon2 hash (hex HMAC-SHA256 keyed by the prefix)."""
    return hmac.new(f"ridgeline-key:{prefix}".encode(), secret.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name, role, rate limit and (law enforcement) agency."""

    key_id: int
    name: str
    role: str
    rate_limit: float | None
    agency: str | None = None


def create_key(
    session: Session,
    name: str,
    role: str,
    *,
    rate_limit: float | None = None,
    agency: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never stored or shown again.

    A `law-enforcement` key must name the agency it acts for (it sees only the reports
    made available to that agency); no other role takes one."""
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not name.strip():
        raise BadInput("a key needs a name")
    agency = agency.strip() if agency else None
    if role == "law-enforcement" and not agency:
        raise BadInput("a law-enforcement key needs --agency (the agency it acts for)")
    if role != "law-enforcement" and agency:
        raise BadInput(f"only law-enforcement keys are bound to an agency, not {role!r} keys")
    if agency and len(agency) > 200:
        raise BadInput("the agency name is longer than 200 characters")
    if rate_limit is not None and rate_limit <= 0:
        raise BadInput("rate limit must be a positive number of requests per second")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        prefix=prefix,
        secret_hash=_hasher.hash(secret),
        secret_digest=secret_digest(prefix, secret),
        name=name.strip(),
        role=role,
        rate_limit=rate_limit,
        agency=agency,
    )
    session.add(key)
    session.flush()
    return key, f"{KEY_PREFIX}{prefix}_{secret}"


def revoke_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def key_to_json(key: ApiKey) -> dict[str, Any]:
    """Public view of a key: never the secret or its hash."""
    return {
        "id": key.id,
        "prefix": f"{KEY_PREFIX}{key.prefix}",
        "name": key.name,
        "role": key.role,
        "rate_limit": key.rate_limit,
        "agency": key.agency,
        "created_at": isoformat(key.created_at),
        "revoked_at": isoformat(key.revoked_at),
    }


def parse_token(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    token = token.strip()
    if not token.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 12 or not secret:
        return None
    return prefix, secret


class KeyVerifier:
    """Checks presented keys against the store, caching recent successes.

    argon2 runs once per key per process: a cached key is re-checked in the
    background (`revalidate`, one cheap query for all cached keys: still there, not
    revoked, same secret hash, current role and limit), so requests never wait on
    argon2 or the database once their key is known. An entry nobody revalidates
    expires after `cache_seconds` and the next request verifies it in full; only
    one thread verifies a given key at a time (no stampede of argon2 checks).
    """

    def __init__(self, cache_seconds: float = CACHE_SECONDS) -> None:
        self.cache_seconds = cache_seconds
        #: sha256(key) -> (expires, principal, secret hash it was verified against)
        self._cache: dict[str, tuple[float, Principal, str]] = {}
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Lock] = {}
        #: prefix -> (window start, failed argon2 checks, last check) for digest-less keys
        self._failures: dict[str, tuple[float, int, float]] = {}
        #: argon2 verifications run by this process (tests and benchmarks read it)
        self.argon2_checks = 0

    def cached(self, token: str) -> Principal | None:
        """The principal if this exact key was verified recently (no I/O, no argon2)."""
        hit = self._cache.get(hashlib.sha256(token.encode()).hexdigest())
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def verify(self, session_factory: Any, token: str) -> Principal | None:
        """The caller's principal, or None for an unknown, wrong or revoked key."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            gate = self._inflight.setdefault(digest, threading.Lock())
        with gate:  # concurrent first requests with one key share a single argon2 check
            principal = self.cached(token)
            if principal is not None:
                return principal
            principal = self._verify(session_factory, digest, *parsed)
        with self._lock:
            self._inflight.pop(digest, None)
        return principal

    def _verify(
        self, session_factory: Any, digest: str, prefix: str, secret: str
    ) -> Principal | None:
        with session_factory() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if key is None or key.revoked_at is not None:
                return None
            fast = secret_digest(prefix, secret)
            if key.secret_digest is not None:
                if not hmac.compare_digest(key.secret_digest, fast):
                    return None  # wrong secret: no argon2
            elif self._backing_off(prefix):
                return None
            self.argon2_checks += 1
            try:
                _hasher.verify(key.secret_hash, secret)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                if key.secret_digest is None:
                    self._failed(prefix)
                return None
            if key.secret_digest is None:  # a key from before 0005: store its digest now
                key.secret_digest = fast
            principal = Principal(key.id, key.name, key.role, key.rate_limit, key.agency)
            secret_hash = key.secret_hash
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic() + self.cache_seconds, principal, secret_hash)
        return principal

    def _backing_off(self, prefix: str) -> bool:
        """Whether to refuse an argon2 check for this digest-less prefix unchecked: after
        `FAILURES_PER_WINDOW` failures, one check a second still runs (its owner gets in)."""
        now = time.monotonic()
        with self._lock:
            start, count, last = self._failures.get(prefix, (0.0, 0, 0.0))
            if now - start > FAILURE_WINDOW_S:
                self._failures.pop(prefix, None)
                return False
            if count < FAILURES_PER_WINDOW:
                return False
            if now - last < 1.0:
                return True
            self._failures[prefix] = (start, count, now)
            return False

    def _failed(self, prefix: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            start, count, _ = self._failures.get(prefix, (now, 0, now))
            if now - start > FAILURE_WINDOW_S:
                start, count = now, 0
            self._failures[prefix] = (start, count + 1, now)

    def revalidate(self, session_factory: Any) -> None:
        """Re-check every cached key in one query: drop revoked or changed ones, extend the rest."""
        with self._lock:
            snapshot = dict(self._cache)
        if not snapshot:
            return
        ids = {p.key_id for _, p, _ in snapshot.values()}
        with session_factory() as session:
            rows = {
                k.id: (k.revoked_at is None, k.secret_hash, k.name, k.role, k.rate_limit, k.agency)
                for k in session.scalars(select(ApiKey).where(ApiKey.id.in_(ids)))
            }
        expires = time.monotonic() + self.cache_seconds
        with self._lock:
            for digest, (_, principal, secret_hash) in snapshot.items():
                row = rows.get(principal.key_id)
                if row is None or not row[0] or row[1] != secret_hash:
                    self._cache.pop(digest, None)
                elif digest in self._cache:
                    fresh = Principal(principal.key_id, row[2], row[3], row[4], row[5])
                    self._cache[digest] = (expires, fresh, secret_hash)
