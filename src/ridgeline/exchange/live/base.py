"""The one interface every live exchange client implements.

A client turns a source's saved cursor into `Page`s: each page's records (parsed into
the same `ParseResult` as a file of that format) with the cursor to save once those
records are stored. The fetch loop (`ridgeline.exchange.live.fetch_source`) commits
each page's records and its cursor in one transaction, so a crash between pages
loses nothing and applies nothing twice: the next run starts from the last committed
cursor, and the page it re-reads is re-applied idempotently (same origin ids).

A cursor is the client's own small JSON object. Its time watermark only moves past a
range once every page of that range is stored (feeds are not in time order, so a
watermark taken mid-range could skip an unseen entry). A paging cursor the partner
no longer accepts, or one older than `cursor_max_age_s`, restarts its range.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from ridgeline.errors import BadInput
from ridgeline.exchange.live.credentials import Credentials
from ridgeline.exchange.live.http import Http, RetryPolicy
from ridgeline.exchange.records import ParseResult

Cursor = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One page of a feed and the cursor that follows it."""

    parsed: ParseResult
    cursor: Cursor
    #: The page ends the range it belongs to (the cursor's watermark moved on).
    done: bool = False


@dataclass(frozen=True)
class FeedbackItem:
    """Our opinion of one partner entry, as an exchange takes it."""

    origin_member: str | None
    origin_entry_id: str
    signals: Mapping[str, str]
    affirmative: bool
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedbackSent:
    """What one feedback call sent (no credentials)."""

    method: str
    path: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"method": self.method, "path": self.path, "detail": self.detail}


class Client(ABC):
    """A live exchange: pages of records from a cursor, and feedback on entries."""

    kind: ClassVar[str]
    #: The import format its pages parse as (`ImportReport.format`).
    format: ClassVar[str]
    required_credentials: ClassVar[tuple[str, ...]]
    optional_credentials: ClassVar[tuple[str, ...]] = ()
    #: Settings `exchange add` accepts for this kind (besides the retry policy's).
    settings_keys: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str | None] = None
    #: Paging cursors older than this are not used (the range restarts).
    default_cursor_max_age_s: ClassVar[float] = 12 * 3600.0

    def __init__(
        self,
        name: str,
        settings: Mapping[str, Any],
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.settings = self.prepare(dict(settings))
        self.credentials = credentials
        self.clock = clock
        base = self.settings.get("base_url") or self.default_base_url
        if not base:
            raise BadInput(f"source {name!r} ({self.kind}) needs a base_url")
        self.base_url = str(base).rstrip("/")
        self.cursor_max_age_s = float(
            self.settings.get("cursor_max_age_s", self.default_cursor_max_age_s)
        )
        self.http = Http(
            self.base_url,
            policy=RetryPolicy.from_settings(self.settings),
            transport=transport,
            stop=stop,
            **self.http_options(),
        )

    @classmethod
    def prepare(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Settings with defaults derived from others (an environment's base URL)."""
        return settings

    def http_options(self) -> dict[str, Any]:
        """Headers or auth every call carries."""
        return {}

    def close(self) -> None:
        self.http.close()

    def fresh(self, cursor: Cursor, key: str = "next", at: str = "next_at") -> bool:
        """Whether the paging cursor in `cursor[key]` may still be used."""
        if not cursor.get(key):
            return False
        taken = cursor.get(at)
        return isinstance(taken, int | float) and self.clock() - taken <= self.cursor_max_age_s

    @abstractmethod
    def pages(self, cursor: Cursor) -> Iterator[Page]:
        """Pages from `cursor` (an empty dict: from the start, or the `since` setting)."""

    @abstractmethod
    def send_feedback(self, item: FeedbackItem) -> list[FeedbackSent]:
        """Tell the partner what we think of one of its entries."""
