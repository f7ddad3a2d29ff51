"""The structured access log: one JSON line per request on stderr.

Fields: `time` (UTC), `worker`, `key` (the key's public prefix, `rl_<12 hex>`, never
the secret), `role`, `method`, `route` (the route template, such as
`/v1/lookup` or `/v1/entries/{entry_id}`: never the raw path or query, which can carry
hashes), `status` and `latency_ms`. Nothing from the body: no uploads, no media, no
hashes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ridgeline.service.fastpath import PATH as FAST_PATH
from ridgeline.service.fastpath import ROUTE_LABEL as FAST_ROUTE
from ridgeline.service.guard import token_from_headers
from ridgeline.service.keys import KEY_PREFIX, parse_token
from ridgeline.service.workers import ENV_WORKER


def key_prefix(token: str | None) -> str | None:
    """The public part of a presented key (`rl_<prefix>`), None when there is none."""
    parsed = parse_token(token) if token else None
    return f"{KEY_PREFIX}{parsed[0]}" if parsed else None


def route_template(scope: Scope, routes: Sequence[Any], root_path: str | None = None) -> str:
    """The route template a path reached or would have reached (never the raw path, so
    labels stay few): a mount (the UI's and the docs' static files) is named by its
    prefix; a path no route takes is `unmatched`. `root_path`: the scope's before the
    request ran (a mount moves its own prefix into it)."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    if root_path is not None:
        scope = {**scope, "root_path": root_path}
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is not Match.NONE:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


class AccessLog:
    """Wraps the whole app (the lookup fast path included) and logs every request."""

    def __init__(
        self,
        app: ASGIApp,
        state: Any,
        stream: IO[str] | None = None,
        routes: Callable[[], Sequence[Any]] | None = None,
    ) -> None:
        self.app = app
        self.state = state
        #: The app's routes, to name the route of a request the guard refused before
        #: any routing (401, 413, 408).
        self.routes = routes
        self.stream = stream or sys.stderr
        self.worker = int(os.environ.get(ENV_WORKER, "0"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.write(scope, status["code"], time.perf_counter() - start)

    def _template(self, scope: Scope) -> str:
        return route_template(scope, self.routes() if self.routes is not None else ())

    def write(self, scope: Scope, status: int, seconds: float) -> None:
        token = token_from_headers(scope.get("headers") or [])
        principal = (scope.get("state") or {}).get("principal")
        if principal is None and token:
            principal = self.state.verifier.cached(token)  # known key, refused (403/429)
        route = getattr(scope.get("route"), "path", None)
        if route is None:  # the lookup fast path and the guard answer before routing
            route = FAST_ROUTE if scope.get("path") == FAST_PATH else self._template(scope)
        record = {
            "time": dt.datetime.now(dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "worker": self.worker,
            "key": key_prefix(token),
            "role": getattr(principal, "role", None),
            "method": scope.get("method"),
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
        }
        try:
            self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr must not fail the request
            pass
