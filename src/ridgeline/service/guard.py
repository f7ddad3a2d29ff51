"""The request guard: the key is checked and the body capped before any route reads it.

FastAPI reads (and parses) a request's body before it runs a route's dependencies,
so a check in a dependency comes too late: a chunked body without a key was read in
full first (1 GB of JSON added 3 GB to a worker; a 1 GB multipart upload was spooled
to the temp folder before its 401). This plain-ASGI middleware runs first instead:

* Every `/v1` request must carry a key that verifies (cached, or argon2 off the event
  loop) before one byte of its body is read; otherwise 401 at once, and the
  connection is closed when a body was announced, so it is never read.
* A body is counted as it streams, `Content-Length` or not: the request gets its 413
  as soon as the cap is passed (declared lengths are refused up front) and nothing
  beyond the cap is buffered or spooled. Multipart uploads may be
  `max_upload_bytes` plus 64 KiB of form overhead; other bodies `max_json_bytes`.
* Paths under a capped prefix (`capped`: the public self-submission calls) take JSON
  only, at most their own cap: no key protects them, so no upload is read at all.
* Reading the body has a deadline (`body_timeout_s` for the whole body): a slow
  client (slowloris) gets 408 and its connection closed.
* Values no database column can hold are refused with 400 `invalid_request` before
  any route or query sees them (they used to be 500s on PostgreSQL, or on SQLite for
  ids of 2^63 and more): NUL characters in the path, the query or a JSON body
  (`\u0000`), and integer path or query parameters outside the 32-bit range of the
  id columns.

The route's own dependency (`auth.requires`) then finds the verified principal in
the request state and applies the rate limit and the role check as before.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ridgeline.errors import (
    BodyTimeout,
    InvalidKey,
    InvalidRequest,
    RidgelineError,
    TooLarge,
    Unauthenticated,
    UnsupportedType,
)
from ridgeline.service.keys import Principal

#: Paths under this prefix need a key; everything else is public (health, metrics, docs).
PROTECTED_PREFIX = "/v1/"
#: Form overhead (boundaries, part headers, small fields) allowed beyond the upload cap.
MULTIPART_SLACK = 64 << 10
#: Integer parameters must fit the id columns (INTEGER on PostgreSQL).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_INT = re.compile(r"[+-]?\d+")
#: A JSON escape of NUL that is not itself an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


class _BodyRejected(Exception):
    """Raised into the app from `receive` after the guard has answered (413 or 408)."""


def token_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """`Authorization: Bearer <key>` first, else `X-API-Key` (as `auth.token_from`)."""
    auth = api_key = None
    for name, value in headers:
        if name == b"authorization" and auth is None:
            auth = value
        elif name == b"x-api-key" and api_key is None:
            api_key = value
    if auth:
        scheme, _, rest = auth.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            return rest.strip()
    if api_key is not None:
        key = api_key.decode("latin-1").strip()
        return key or None
    return None


async def _answer(send: Send, error: RidgelineError, *, close: bool) -> None:
    """Answer `error` as the app's error handler would (its status, body and headers)."""
    body = json.dumps(error.to_json()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()),
    ]
    if close:  # uvicorn closes the connection after this answer: the body is never read
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_int(param: Any) -> bool:
    annotation = getattr(getattr(param, "field_info", None), "annotation", None)
    return annotation is int or annotation == (int | None)


class RequestGuard:
    """Authenticates `/v1` requests and caps and times their bodies (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        state: Any,
        max_upload_bytes: int,
        max_json_bytes: int,
        body_timeout_s: float,
        routes: Callable[[], Iterable[Any]] = list,
        capped: Iterable[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        #: (path prefix, body cap) of public routes with a stricter cap than the rest.
        self.capped = tuple(capped)
        self.state = state
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes
        self.body_timeout_s = body_timeout_s
        self._routes = routes
        #: (path regex, int path params, int query params) of routes with int parameters
        self._int_params: list[tuple[re.Pattern[str], list[str], list[str]]] | None = None

    def _int_routes(self) -> list[tuple[re.Pattern[str], list[str], list[str]]]:
        if self._int_params is None:
            found = []
            for route in self._routes():
                dependant = getattr(route, "dependant", None)
                if dependant is None:
                    continue
                path = [p.name for p in dependant.path_params if _is_int(p)]
                query = [p.alias for p in dependant.query_params if _is_int(p)]
                if path or query:
                    found.append((route.path_regex, path, query))
            self._int_params = found
        return self._int_params

    def _bad_value(self, scope: Scope) -> str | None:
        """Why the path or query cannot be stored or looked up, or None."""
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            return "NUL characters are not accepted"
        for regex, path_ints, query_ints in self._int_routes():
            match = regex.match(path)
            if match is None:
                continue
            values = [(name, match.group(name)) for name in path_ints]
            if query_ints and query:
                wanted = set(query_ints)
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                values += [(n, v) for n, v in pairs if n in wanted]
            for name, value in values:
                if _INT.fullmatch(value) and not INT_MIN <= int(value) <= INT_MAX:
                    return f"{name} must be between {INT_MIN} and {INT_MAX}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        declared: int | None = None
        chunked = multipart = False
        for name, value in headers:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else declared
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-type":
                multipart = value.lower().startswith(b"multipart/form-data")
        has_body = chunked or bool(declared)
        if scope["path"].startswith(PROTECTED_PREFIX):
            principal = await self._authenticate(headers)
            if isinstance(principal, RidgelineError):
                await _answer(send, principal, close=has_body)
                return
            scope.setdefault("state", {})["principal"] = principal
            problem = self._bad_value(scope)
            if problem is not None:
                await _answer(send, InvalidRequest(problem), close=has_body)
                return
        limit = self.max_upload_bytes + MULTIPART_SLACK if multipart else self.max_json_bytes
        for prefix, cap in self.capped:
            if scope["path"].startswith(prefix):
                if multipart:
                    await _answer(
                        send, UnsupportedType("this endpoint takes JSON, not files"), close=True
                    )
                    return
                limit = min(limit, cap)
        if declared is not None and declared > limit:
            await _answer(send, TooLarge(f"request body exceeds {limit} bytes"), close=True)
            return
        if not has_body:  # whatever the method: a GET with a body is counted too
            await self.app(scope, receive, send)
            return
        await self._guarded(scope, receive, send, limit, json_body=not multipart)

    async def _authenticate(self, headers: list[tuple[bytes, bytes]]) -> Principal | RidgelineError:
        """The verified principal, or the 401 to answer."""
        token = token_from_headers(headers)
        if not token:
            return Unauthenticated(
                "an API key is required (Authorization: Bearer <key> or X-API-Key)"
            )
        verifier = self.state.verifier
        principal: Principal | None = verifier.cached(token)
        if principal is None:  # argon2 + database: off the event loop
            principal = await run_in_threadpool(verifier.verify, self.state.store.session, token)
        if principal is None:
            return InvalidKey("unknown, wrong or revoked API key")
        return principal

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, limit: int, *, json_body: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        total = 0
        tail = b""  # the end of the previous chunk (a NUL escape may span two)
        done = False
        started = answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the guard has answered; whatever the app says after is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def reject(error: RidgelineError) -> NoReturn:
            nonlocal answered
            if not started:
                await _answer(send, error, close=True)
            answered = True
            raise _BodyRejected(str(error))

        async def guarded_receive() -> Message:
            nonlocal total, done, tail
            if done or answered:
                return await receive()  # after the body: disconnect notices, unbounded
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                await reject(
                    BodyTimeout(f"the request body did not arrive within {self.body_timeout_s:g}s")
                )
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                total += len(chunk)
                if total > limit:
                    await reject(TooLarge(f"request body exceeds {limit} bytes"))
                if json_body and chunk:
                    if _JSON_NUL.search(tail + chunk):
                        await reject(InvalidRequest("NUL characters are not accepted"))
                    tail = chunk[-16:]
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not answered:
                raise
