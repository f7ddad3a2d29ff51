"""HTTP with retries for the live exchange clients.

One `httpx.Client` per source, over an injectable transport (`httpx.HTTPTransport` in
production, anything speaking httpx's transport interface in tests; the tests use a
real local server). A 429 waits as long as `Retry-After` says (seconds or an HTTP
date, capped); a 5xx or a connection failure waits with exponential back-off and
jitter; after `attempts` tries the call fails with `ExchangeUnavailable`. Waiting
stops at once when the fetch is asked to stop. Error messages name the method and
path only: query strings can carry credentials (ThreatExchange's `access_token`).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ridgeline.exchange.live.errors import (
    ExchangeAuthFailed,
    ExchangeError,
    ExchangeUnavailable,
    FetchStopped,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failing call."""

    attempts: int = 6
    base_s: float = 0.5
    max_s: float = 60.0
    #: A longer Retry-After than this is capped to it.
    max_retry_after_s: float = 300.0
    timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetryPolicy:
        """The policy of a source's `settings` (`retry_attempts`, `retry_base_s`, ...)."""
        default = cls()
        return cls(
            attempts=int(settings.get("retry_attempts", default.attempts)),
            base_s=float(settings.get("retry_base_s", default.base_s)),
            max_s=float(settings.get("retry_max_s", default.max_s)),
            max_retry_after_s=float(settings.get("retry_after_max_s", default.max_retry_after_s)),
            timeout_s=float(settings.get("timeout_s", default.timeout_s)),
        )

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (0-based): exponential, with jitter."""
        delay: float = min(self.max_s, self.base_s * (2**attempt))
        return delay * (0.5 + random.random() / 2)


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Http:
    """Calls to one partner base URL, retried by `policy`."""

    def __init__(
        self,
        base_url: str,
        *,
        policy: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.stop = stop or threading.Event()
        self.retries = 0
        self.client = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            transport=transport,
            timeout=self.policy.timeout_s,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def wait(self, seconds: float) -> None:
        """Sleep, unless asked to stop (then raise `FetchStopped`)."""
        if self.stop.wait(max(0.0, seconds)):
            raise FetchStopped()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The partner's answer (any status below 500 but 429), after retrying 429s,
        5xx and connection failures. 401/403 raise `ExchangeAuthFailed`."""
        what = f"{method} {httpx.URL(url).path or url}"
        problem = "no attempt made"
        for attempt in range(self.policy.attempts):
            if self.stop.is_set():
                raise FetchStopped()
            delay: float | None = None
            try:
                response = self.client.request(
                    method,
                    url,
                    params={k: v for k, v in (params or {}).items() if v is not None} or None,
                    content=content,
                    json=json,
                    data=data,
                    headers=headers,
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise ExchangeAuthFailed(f"{what}: HTTP {status} (credentials refused)")
                if status == 429:
                    problem = "HTTP 429 (rate limited)"
                    delay = retry_after(response)
                    if delay is not None:
                        delay = min(delay, self.policy.max_retry_after_s)
                elif status >= 500:
                    problem = f"HTTP {status}"
                else:
                    return response
            if attempt + 1 < self.policy.attempts:
                self.retries += 1
                self.wait(self.policy.backoff(attempt) if delay is None else delay)
        raise ExchangeUnavailable(f"{what}: {problem} after {self.policy.attempts} attempts")


def expect_ok(response: httpx.Response, what: str) -> httpx.Response:
    """`response` if it is a 2xx, else an `ExchangeError` naming its status."""
    if not response.is_success:
        raise ExchangeError(f"{what}: HTTP {response.status_code}")
    return response
