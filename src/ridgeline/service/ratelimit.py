"""Per-key rate limits: one token bucket per key, shared by every worker process.

A key's limit is what the key may do against the whole server, not against each
worker: with `--workers N` the buckets live in one shared-memory table that the
supervisor creates and hands to its workers, guarded by one inter-process lock
(an uncontended POSIX semaphore: well under a microsecond). A single worker keeps
the same table in its own memory.

The table has a fixed number of slots, addressed by key id with linear probing. A
slot whose bucket has refilled completely holds no information and may be taken by
another key, so the table never fills up with keys that were used once.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import threading
import time
from collections.abc import MutableSequence
from contextlib import AbstractContextManager
from typing import Any, cast

#: Slots in the shared table (distinct keys active within one refill period).
SLOTS = 4096
#: Doubles per slot: key id (0 = free), tokens, time of the last update, rate.
_FIELDS = 4
#: A bucket holds up to this many seconds' worth of requests (bursts).
BURST_SECONDS = 2.0


class BucketTable:
    """Fixed-size token buckets in a flat array of doubles (shared memory or local)."""

    def __init__(
        self, cells: MutableSequence[float], lock: AbstractContextManager[Any], slots: int
    ) -> None:
        if len(cells) != slots * _FIELDS:
            raise ValueError("the table must hold 4 doubles per slot")
        self.cells = cells
        self.lock = lock
        self.slots = slots

    @classmethod
    def local(cls, slots: int = SLOTS) -> BucketTable:
        """A table for one process (its threads share it)."""
        return cls([0.0] * (slots * _FIELDS), threading.Lock(), slots)

    @classmethod
    def shared(cls, context: Any = None, slots: int = SLOTS) -> BucketTable:
        """A table in shared memory, for worker processes started from `context`."""
        ctx = context or multiprocessing.get_context("spawn")
        cells = cast(MutableSequence[float], ctx.RawArray(ctypes.c_double, slots * _FIELDS))
        return cls(cells, ctx.Lock(), slots)

    def take(self, key_id: int, rate: float, now: float) -> float:
        """Take one token from `key_id`'s bucket: 0 when allowed, else seconds to wait."""
        burst = max(rate * BURST_SECONDS, 1.0)
        cells = self.cells
        with self.lock:
            base = self._slot(key_id, now)
            if cells[base] != key_id:  # a new bucket starts full
                cells[base], cells[base + 1], cells[base + 2] = key_id, burst, now
            tokens = min(burst, cells[base + 1] + (now - cells[base + 2]) * rate)
            cells[base + 2], cells[base + 3] = now, rate
            if tokens >= 1:
                cells[base + 1] = tokens - 1
                return 0.0
            cells[base + 1] = tokens
            return (1 - tokens) / rate

    def _slot(self, key_id: int, now: float) -> int:
        """Offset of `key_id`'s slot, or of a free or reusable one (lock held)."""
        cells, slots = self.cells, self.slots
        reusable = -1
        for probe in range(slots):
            base = ((key_id + probe) % slots) * _FIELDS
            held = cells[base]
            if held == key_id:
                return base
            if held == 0:
                return base if reusable < 0 else reusable
            if reusable < 0:
                tokens, last, rate = cells[base + 1], cells[base + 2], cells[base + 3]
                if tokens + (now - last) * rate >= max(rate * BURST_SECONDS, 1.0):
                    reusable = base  # refilled: forgetting it changes nothing
        if reusable >= 0:
            return reusable
        # every slot busy: share the least recently used one (rare: SLOTS active keys)
        return min(range(slots), key=lambda i: cells[i * _FIELDS + 2]) * _FIELDS


class RateLimiter:
    """A token bucket per key: `rate` requests per second, bursts up to 2 seconds' worth."""

    def __init__(self, default_rate: float, table: BucketTable | None = None) -> None:
        self.default_rate = default_rate
        self.table = table or BucketTable.local()

    def allow(self, key_id: int, rate: float | None) -> float:
        """0 when allowed, else seconds to wait before the next request may pass."""
        return self.table.take(key_id, rate or self.default_rate, time.monotonic())


_shared: BucketTable | None = None


def use_shared_table(table: BucketTable) -> None:
    """Make this process's limiters use `table` (set by the worker before its app starts)."""
    global _shared
    _shared = table


def process_table() -> BucketTable | None:
    """The shared table this worker was given, if any."""
    return _shared
