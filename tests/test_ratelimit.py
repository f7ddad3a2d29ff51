"""Per-key token buckets: exact arithmetic, slot reuse, and one budget across processes."""

from __future__ import annotations

import multiprocessing

import pytest

from ridgeline.service.ratelimit import BucketTable, RateLimiter


def test_bucket_allows_a_burst_then_the_rate() -> None:
    table = BucketTable.local()
    allowed = [table.take(7, 5.0, now=100.0) for _ in range(12)]
    assert allowed[:10] == [0.0] * 10  # bursts of two seconds' worth
    assert allowed[10] == pytest.approx(0.2)  # then one every 1/5 s
    assert table.take(7, 5.0, now=100.2) == 0.0
    assert table.take(7, 5.0, now=100.2) > 0
    assert table.take(8, 5.0, now=100.2) == 0.0, "another key has its own bucket"


def test_slow_rates_still_allow_one_request() -> None:
    table = BucketTable.local()
    assert table.take(1, 0.1, now=0.0) == 0.0
    assert table.take(1, 0.1, now=1.0) == pytest.approx(9.0)


def test_refilled_slots_are_reused_and_busy_ones_kept() -> None:
    """A new key takes a slot whose bucket has refilled, never one still counting."""
    table = BucketTable.local(slots=3)
    assert table.take(1, 1.0, now=0.0) == table.take(1, 1.0, now=0.0) == 0.0  # 1: drained
    assert table.take(2, 1.0, now=0.0) == 0.0  # key 2 keeps one of its two tokens
    # at t=1 key 2 is full again (forgettable) but key 1 holds one token only
    assert table.take(4, 1.0, now=1.0) == 0.0
    assert sorted(table.cells[i * 4] for i in range(3)) == [0.0, 1.0, 4.0]
    assert table.take(1, 1.0, now=1.0) == 0.0
    assert table.take(1, 1.0, now=1.0) > 0, "key 1's bucket was kept, not reset to full"


def test_a_full_table_shares_the_least_recently_used_slot() -> None:
    table = BucketTable.local(slots=2)
    table.take(1, 1.0, now=0.0)
    table.take(2, 1.0, now=0.5)
    assert table.take(3, 1.0, now=0.6) == 0.0  # nothing refilled: key 1's slot is oldest
    assert sorted(table.cells[i * 4] for i in range(2)) == [2.0, 3.0]


def _spend(table: BucketTable, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(sum(table.take(42, 5.0, now=1000.0) == 0.0 for _ in range(10)))


def test_shared_table_is_one_budget_across_processes() -> None:
    """Two processes spending one key's burst of 10 get 10 in all, not 10 each."""
    ctx = multiprocessing.get_context("spawn")
    table = BucketTable.shared(ctx)
    out = ctx.Queue()
    procs = [ctx.Process(target=_spend, args=(table, out)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(got) == 10


def test_limiter_uses_the_default_rate() -> None:
    limiter = RateLimiter(default_rate=1.0)
    assert [limiter.allow(3, None) for _ in range(2)] == [0.0, 0.0]
    assert limiter.allow(3, None) > 0
    assert all(limiter.allow(4, 1000.0) == 0.0 for _ in range(1000))  # its own rate wins
