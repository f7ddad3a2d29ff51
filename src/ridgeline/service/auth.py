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
    "keys": frozenset({"admin"}),
}


class ApiError(Exception):
    """An error answered as JSON `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def token_from(request: Request) -> str | None:
    """The presented key: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


def requires(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks `permission`."""
    if permission not in POLICY:
        raise KeyError(f"no policy for permission {permission!r}")
    roles = POLICY[permission]

    async def dependency(request: Request) -> Principal:
        state: Any = request.app.state
        token = token_from(request)
        if not token:
            raise ApiError(
                401,
                "unauthenticated",
                "an API key is required (Authorization: Bearer <key> or X-API-Key)",
                {"WWW-Authenticate": "Bearer"},
            )
        principal = state.verifier.cached(token)
        if principal is None:  # argon2 + database: off the event loop
            principal = await run_in_threadpool(state.verifier.verify, state.store.session, token)
        if principal is None:
            raise ApiError(
                401,
                "invalid_key",
                "unknown, wrong or revoked API key",
                {"WWW-Authenticate": "Bearer"},
            )
        wait = state.limiter.allow(principal.key_id, principal.rate_limit)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit exceeded for key {principal.name!r}; retry in {wait:.2f}s",
                {"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        if principal.role not in roles:
            raise ApiError(
                403,
                "forbidden",
                f"role {principal.role!r} may not use this endpoint (needs {permission})",
            )
        request.state.principal = principal
        return principal

    return dependency
