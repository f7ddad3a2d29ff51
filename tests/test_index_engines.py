"""Exact-digest and Euclidean engines answer exactly what brute force does."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ridgeline.index import EuclideanIndex, ExactIndex


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), width=st.sampled_from([16, 20, 32]))
def test_exact_index_finds_every_equal_key(seed: int, n: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    # few distinct keys, many duplicates, some with trailing zero bytes
    pool = rng.integers(0, 256, (max(1, n // 5), width), dtype=np.uint8)
    pool[0, -3:] = 0
    rows = pool[rng.integers(0, len(pool), n)] if n else np.zeros((0, width), dtype=np.uint8)
    queries = np.concatenate([pool, rng.integers(0, 256, (3, width), dtype=np.uint8)])
    index = ExactIndex.build(rows)
    res = index.search(queries)
    got = {(int(q), int(r)) for q, r in zip(res.query, res.row, strict=True)}
    expected = {
        (qi, ri)
        for qi, q in enumerate(queries)
        for ri, r in enumerate(rows)
        if bytes(q) == bytes(r)
    }
    assert got == expected
    np.testing.assert_array_equal(index.rows(), rows)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    radius=st.floats(0, 400, allow_nan=False),
)
def test_euclidean_index_equals_brute_force(seed: int, n: int, radius: float) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (n, 144), dtype=np.uint8)
    queries = rng.integers(0, 256, (4, 144), dtype=np.uint8)
    if n:  # queries near stored vectors
        noise = rng.integers(-20, 21, (2, 144))
        queries[:2] = np.clip(rows[rng.integers(0, n, 2)].astype(int) + noise, 0, 255)
    index = EuclideanIndex.build(rows)
    res = index.search(queries, radius, threads=2)
    got = {
        (int(q), int(r)): int(d) for q, r, d in zip(res.query, res.row, res.distance, strict=True)
    }
    expected = {}
    for qi, q in enumerate(queries):
        sq = ((rows.astype(np.int64) - q.astype(np.int64)) ** 2).sum(axis=1)
        for ri in np.flatnonzero(np.sqrt(sq) <= radius):
            expected[(qi, int(ri))] = int(sq[ri])
    assert got == expected
