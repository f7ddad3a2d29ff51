"""Roles and permissions for the HTTP API (rate limits: `ridgeline.service.ratelimit`).

Every endpoint names one permission; `POLICY` says which roles hold it. Routes
declare their permission in their OpenAPI extras too, so a test can walk the app's
routes and prove that no endpoint is left without a policy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ridgeline.errors import Forbidden, InvalidKey, RateLimited, Unauthenticated
from ridgeline.service.keys import Principal

PERMISSION_KEY = "x-ridgeline-permission"
#: Endpoints anyone may call (health, metrics, the API description).
PUBLIC = "public"

#: permission -> roles holding it. Providers can only hash, match and look up:
#: they never read list contents, review items or audits.
POLICY: dict[str, frozenset[str]] = {
    "hash": frozenset({"admin", "curator", "provider", "analyst", "law-enforcement"}),
    "match": frozenset({"admin", "curator", "provider", "analyst", "law-enforcement"}),
    "lists:read": frozenset({"admin", "curator", "auditor", "analyst", "law-enforcement"}),
    "lists:write": frozenset({"admin", "curator"}),
    "review": frozenset({"admin", "reviewer"}),
    "audit": frozenset({"admin", "auditor"}),
    "flood": frozenset({"admin", "curator"}),
    "scans": frozenset({"admin", "curator"}),
    "keys": frozenset({"admin"}),
    # CyberTipline reports: providers only create drafts; reporters and curators file.
    "reports:draft": frozenset({"admin", "curator", "reporter", "provider"}),
    "reports:read": frozenset({"admin", "curator", "reporter"}),
    "reports:edit": frozenset({"admin", "curator", "reporter"}),
    "reports:file": frozenset({"admin", "curator", "reporter"}),
    # Received reports (clearinghouse): analysts triage; law enforcement sees only what
    # was made available to its key's agency (routes_triage.py).
    "triage:read": frozenset({"admin", "analyst"}),
    "triage:override": frozenset({"admin", "analyst"}),
    "routing:read": frozenset({"admin", "analyst"}),
    "stats": frozenset({"admin", "analyst", "auditor"}),
    "le:read": frozenset({"law-enforcement"}),
    "le:legal-process": frozenset({"law-enforcement"}),
    # Intake: the `intake` role (a provider's reporting system) may only send reports.
    "intake": frozenset({"admin", "intake"}),
    "intake:read": frozenset({"admin", "analyst"}),
    "cases:read": frozenset({"admin", "analyst"}),
    "cases:write": frozenset({"admin", "analyst"}),
}


def token_from(request: Request) -> str | None:
    """The presented key: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


def rate_limited(principal: Principal, wait: float) -> RateLimited:
    """The answer to a key over its rate limit (the fast path gives the same)."""
    return RateLimited(
        f"rate limit exceeded for key {principal.name!r}; retry in {wait:.2f}s", wait
    )


def forbidden(principal: Principal, permission: str) -> Forbidden:
    """The answer to a key whose role lacks `permission` (the fast path gives the same)."""
    return Forbidden(f"role {principal.role!r} may not use this endpoint (needs {permission})")


def requires(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks `permission`."""
    if permission not in POLICY:
        raise KeyError(f"no policy for permission {permission!r}")
    roles = POLICY[permission]

    async def dependency(request: Request) -> Principal:
        state: Any = request.app.state
        # Normally the request guard has verified the key before the body was read.
        principal: Principal | None = getattr(request.state, "principal", None)
        token = token_from(request) if principal is None else "verified"
        if not token:
            raise Unauthenticated(
                "an API key is required (Authorization: Bearer <key> or X-API-Key)"
            )
        if principal is None:
            principal = state.verifier.cached(token)
        if principal is None:  # argon2 + database: off the event loop
            principal = await run_in_threadpool(state.verifier.verify, state.store.session, token)
        if principal is None:
            raise InvalidKey("unknown, wrong or revoked API key")
        wait = state.limiter.allow(principal.key_id, principal.rate_limit)
        if wait > 0:
            raise rate_limited(principal, wait)
        if principal.role not in roles:
            raise forbidden(principal, permission)
        request.state.principal = principal
        return principal

    return dependency
