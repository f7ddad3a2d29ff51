"""Errors raised at the edges, each with a message a user can act on.

Every error states how the edges answer it, so no layer keeps its own mapping table:
`code` is the stable machine-readable name (HTTP API and JSON output, listed in
docs/service.md), `http_status` the status the API answers with, and `exit_status`
what a CLI command exits with (2 for bad input, 1 for a failed check or operation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class RidgelineError(Exception):
    """Base class: every error Ridgeline raises on purpose derives from it.

    Raised as such it is a failure nobody classified: the API answers 500.
    """

    #: Stable machine-readable code, used by the HTTP API and JSON output.
    code: ClassVar[str] = "internal_error"
    #: HTTP status the API answers this error with.
    http_status: ClassVar[int] = 500
    #: Exit status of a CLI command that fails with this error.
    exit_status: ClassVar[int] = 1
    #: Extra HTTP response headers (`Retry-After`, `WWW-Authenticate`); per instance.
    headers: Mapping[str, str] = {}

    def to_json(self) -> dict[str, dict[str, str]]:
        """The API's error body: `{"error": {"code", "message"}}`."""
        return {"error": {"code": self.code, "message": str(self)}}


# --- bad input: 400 (or a more precise 4xx), exit status 2 ---------------------------


class BadInput(RidgelineError, ValueError):
    """A value or content that cannot be processed: out of range, malformed, corrupt,
    truncated, empty, of the wrong type, too big."""

    code = "bad_input"
    http_status = 400
    exit_status = 2


class InvalidRequest(BadInput):
    """A request whose shape is wrong: missing or repeated parts, bad JSON, bad fields."""

    code = "invalid_request"


class InvalidHash(RidgelineError, ValueError):
    """A hash string that is not valid for its signal type."""

    code = "invalid_hash"
    http_status = 400
    exit_status = 2

    def __init__(self, signal: str, value: str, expected: str) -> None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(f"invalid {signal} hash {shown!r}: expected {expected}")
        self.signal = signal
        self.value = value
        self.expected = expected


class UnknownSignal(RidgelineError, KeyError):
    """A signal name that no installed plug-in provides."""

    code = "unknown_signal"
    http_status = 400
    exit_status = 2

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown signal type {name!r}; installed: {', '.join(sorted(known))}")
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class NotComputable(RidgelineError):
    """The signal cannot be computed from this content (wrong media type, proprietary)."""

    code = "not_computable"
    http_status = 400
    exit_status = 2


class TooManyValues(BadInput):
    """More values in one request than the API takes."""

    code = "too_many_values"


class BadUrl(BadInput):
    """A URL to fetch that is not an http(s) URL."""

    code = "bad_url"


class FetchDisabled(BadInput):
    """A URL to fetch when the server fetches none (no allow-list configured)."""

    code = "url_fetch_disabled"


class TooLarge(BadInput):
    """Content over a configured size limit (bytes of an upload or a fetched URL)."""

    code = "too_large"
    http_status = 413


class DecompressionBomb(TooLarge):
    """An image or archive that expands beyond the configured limit."""

    code = "decompression_bomb"


class UnsupportedType(BadInput):
    """Content of a kind this endpoint does not take (sniffed from the bytes)."""

    code = "unsupported_type"
    http_status = 415


# --- a failed check or operation: exit status 1 --------------------------------------


class NotFound(RidgelineError, LookupError):
    """A named object (list, entry, ...) does not exist."""

    code = "not_found"
    http_status = 404


class DamagedFile(NotFound):
    """An audit item has no evidence to show: recorded as an exception (damaged-file)."""

    code = "damaged_file"


class MethodNotAllowed(RidgelineError):
    """An HTTP method the route does not take."""

    code = "method_not_allowed"
    http_status = 405


class Conflict(RidgelineError):
    """The request conflicts with what is stored (duplicate name, wrong state)."""

    code = "conflict"
    http_status = 409


class Unauthenticated(RidgelineError):
    """No API key was presented."""

    code = "unauthenticated"
    http_status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class InvalidKey(Unauthenticated):
    """An API key that is unknown, wrong or revoked."""

    code = "invalid_key"


class PermissionDenied(RidgelineError):
    """The actor may not do this (review rules, roles)."""

    code = "permission_denied"
    http_status = 403


class Forbidden(PermissionDenied):
    """The API key's role does not hold the endpoint's permission."""

    code = "forbidden"


class UrlNotAllowed(PermissionDenied):
    """A URL to fetch whose host is not on the fetch allow-list."""

    code = "url_not_allowed"


class RateLimited(RidgelineError):
    """The API key made more requests per second than its limit."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(max(1, round(retry_after_s + 0.5)))}


class FetchFailed(RidgelineError):
    """Fetching a URL failed (the remote answered an error or did not answer)."""

    code = "fetch_failed"
    http_status = 502


class Unavailable(RidgelineError):
    """A service this needs is not available now (the database, the index)."""

    code = "unavailable"
    http_status = 503


class NotReady(Unavailable):
    """The API's index is not loaded yet."""

    code = "not_ready"


class IndexStale(Unavailable):
    """The API's index has not been synced with the change feed for too long."""

    code = "index_stale"


class TimedOut(RidgelineError):
    """Work that took longer than its configured time limit."""

    code = "timeout"
    http_status = 504


class BodyTimeout(RidgelineError):
    """A request body that did not arrive within the server's body deadline (slowloris)."""

    code = "body_timeout"
    http_status = 408
