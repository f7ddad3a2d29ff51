"""A plain-ASGI fast path for `GET /v1/lookup`, the endpoint providers call most.

FastAPI's routing, dependency solving and response models cost several times more
than the in-memory index lookup itself. This fast path answers the common case
directly with the same checks in the same order of outcome: the key (only when it
is already verified and cached in this process), the per-key rate limit, the role,
the signal and hash, the matches, the metrics. Anything unusual (no or unknown key,
bad or repeated parameters, an invalid hash, no index yet) is passed on untouched
to the FastAPI route, which then answers exactly as it always does; nothing is
counted twice because the fast path decides before it touches the rate limiter.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope, Send

from ridgeline.errors import RidgelineError
from ridgeline.service.auth import POLICY, forbidden, rate_limited
from ridgeline.service.guard import token_from_headers
from ridgeline.service.routes import match_with_state
from ridgeline.signals import get_signal
from ridgeline.signals.base import Query

PATH = "/v1/lookup"
ROUTE_LABEL = "/v1/lookup"
_ROLES = POLICY["match"]
_JSON_HEADERS = [(b"content-type", b"application/json")]


#: Renders the same bytes as Starlette's JSONResponse (built once, not per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _dumps(body: Any) -> bytes:
    return _ENCODER.encode(body).encode()


def _pairs(query: str) -> list[tuple[str, str]]:
    """`parse_qsl(query, keep_blank_values=True)`, without its cost on plain queries."""
    if "%" in query or "+" in query or ";" in query:
        return parse_qsl(query, keep_blank_values=True)
    return [
        (name, value)
        for name, _, value in (part.partition("=") for part in query.split("&") if part)
    ]


def _parse(query_string: bytes) -> tuple[str, str, list[str] | None, int | None] | None:
    """(signal, value, lists, quality) of a plain well-formed query, else None."""
    signal = value = quality_raw = None
    lists: list[str] = []
    for name, item in _pairs(query_string.decode("latin-1")):
        if name == "signal":
            if signal is not None:
                return None
            signal = item
        elif name == "value":
            if value is not None:
                return None
            value = item
        elif name == "list":
            lists.append(item)
        elif name == "quality":
            if quality_raw is not None:
                return None
            quality_raw = item
    if signal is None or value is None:
        return None
    quality = None
    if quality_raw is not None:
        if not quality_raw.isdigit() or not quality_raw.isascii():
            return None
        quality = int(quality_raw)
        if quality > 100:
            return None
    return signal, value, lists or None, quality


class FastLookup:
    """Answers well-formed, already-authenticated `GET /v1/lookup` calls without FastAPI.

    `ServiceApp` calls `answer` before Starlette's own middleware stack; requests it
    declines go through the whole app unchanged.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self._counters: dict[int, Any] = {}
        self._latency: Any = None

    def handles(self, scope: Scope) -> bool:
        return bool(scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET")

    def _observe(self, status: int, seconds: float) -> None:
        metrics = self.state.metrics
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = metrics.requests.labels(
                ROUTE_LABEL, "GET", str(status)
            )
        counter.inc()
        if self._latency is None:
            self._latency = metrics.latency.labels(ROUTE_LABEL)
        self._latency.observe(seconds)

    async def answer(self, scope: Scope, send: Send) -> bool:
        """True when answered here; False to hand the request to the FastAPI route."""
        start = time.perf_counter()
        state = self.state
        matcher = state.matcher
        parsed = _parse(scope.get("query_string", b""))
        if parsed is None or matcher is None:
            return False
        signal_name, value, lists, quality = parsed
        try:
            signal = get_signal(signal_name)
            canonical = signal.normalize(value)
        except (RidgelineError, KeyError, ValueError):
            return False
        token = token_from_headers(scope["headers"])
        principal = state.verifier.cached(token) if token else None
        if principal is None:
            return False
        status = 200
        headers = _JSON_HEADERS
        error: RidgelineError | None = None
        wait = state.limiter.allow(principal.key_id, principal.rate_limit)
        if wait > 0:
            error = rate_limited(principal, wait)
        elif principal.role not in _ROLES:
            error = forbidden(principal, "match")
        else:
            try:
                explained: list[Any] = []
                matches = match_with_state(
                    state,
                    matcher,
                    [Query(signal.name, canonical, quality)],
                    lists,
                    principal,
                    explained,
                )
                body: Any = {"signal": signal.name, "value": canonical, "matches": matches}
                effects = state.effects
                if effects is not None and effects.wanted(explained, reports=False):
                    # a match on a list with webhooks: stored (in a thread) before the
                    # answer, delivered in the background
                    body["actions"] = await asyncio.to_thread(
                        effects.apply, explained, route=PATH, key_name=principal.name
                    )
            except RidgelineError as exc:  # answered as the app's error handler answers it
                error = exc
            except Exception as exc:
                error = RidgelineError(f"internal error ({type(exc).__name__})")
        if error is not None:
            status = error.http_status
            headers = [
                *headers,
                *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
            ]
            body = error.to_json()
        payload = _dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        self._observe(status, time.perf_counter() - start)
        return True
