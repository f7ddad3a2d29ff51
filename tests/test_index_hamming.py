"""Exactness of the Hamming engine: MIH and scan answer exactly what brute force does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ridgeline.index import HammingIndex, hex_to_rows
from ridgeline.index.hamming import choose_layout, rows_to_hex, split_bits
from ridgeline.signals.pdq import hamming

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(rows: np.ndarray, queries: np.ndarray, radius: int) -> list[dict[int, int]]:
    """Brute force in numpy (independent of the compiled kernels)."""
    out = []
    for q in queries:
        d = np.unpackbits(np.bitwise_xor(rows, q), axis=1).sum(axis=1) if len(rows) else []
        out.append({int(i): int(d[i]) for i in np.flatnonzero(np.asarray(d) <= radius)})
    return out


def test_numpy_reference_agrees_with_python_integers() -> None:
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    q = rows[:3] ^ np.uint8(1)
    expected = [
        {i: hamming(h, qh) for i, h in enumerate(rows_to_hex(rows)) if hamming(h, qh) <= 120}
        for qh in rows_to_hex(q)
    ]
    assert reference(rows, q, 120) == expected


def answer(
    index: HammingIndex, queries: np.ndarray, radius: int, method: str = "auto"
) -> list[dict[int, int]]:
    res = index.search(queries, radius, method=method)
    out: list[dict[int, int]] = [{} for _ in range(len(queries))]
    for q, r, d in zip(res.query.tolist(), res.row.tolist(), res.distance.tolist(), strict=True):
        assert r not in out[q], "a row was returned twice for one query"
        out[q][r] = d
    return out


def flip_bits(rng: np.random.Generator, base: np.ndarray, nbits: int) -> np.ndarray:
    out = base.copy()
    bits = np.unpackbits(out)
    pos = rng.choice(256, size=nbits, replace=False)
    bits[pos] ^= 1
    return np.packbits(bits)


@st.composite
def datasets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Random, clustered, skewed and near-duplicate rows, with queries near them."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["random", "clustered", "skewed", "duplicates", "tiny"]))
    n = draw(st.integers(0, 1500)) if kind != "tiny" else draw(st.integers(0, 2))
    if kind == "skewed":  # most bits zero: buckets are very uneven
        rows = np.packbits(rng.random((n, 256)) < 0.05, axis=1)
    elif kind == "clustered":
        centers = rng.integers(0, 256, (max(1, n // 100), 32), dtype=np.uint8)
        rows = np.array(
            [
                flip_bits(rng, centers[rng.integers(len(centers))], int(rng.integers(0, 40)))
                for _ in range(n)
            ],
            dtype=np.uint8,
        ).reshape(-1, 32)
    elif kind == "duplicates":  # many exact and near duplicates of one hash
        base = rng.integers(0, 256, 32, dtype=np.uint8)
        rows = np.array(
            [flip_bits(rng, base, int(rng.integers(0, 4))) for _ in range(n)], dtype=np.uint8
        ).reshape(-1, 32)
    else:
        rows = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    nq = draw(st.integers(1, 6))
    queries = rng.integers(0, 256, (nq, 32), dtype=np.uint8)
    for i in range(nq):
        if n and rng.random() < 0.7:
            queries[i] = flip_bits(rng, rows[rng.integers(n)], int(rng.integers(0, 70)))
    radius = draw(st.integers(0, 64))
    return rows.astype(np.uint8), queries, radius


@SETTINGS
@given(data=datasets(), m=st.sampled_from([None, 0, 13, 16, 20, 24, 32]))
def test_range_search_equals_brute_force(
    data: tuple[np.ndarray, np.ndarray, int], m: int | None
) -> None:
    rows, queries, radius = data
    index = HammingIndex.build(rows, m=m, threads=2)
    expected = reference(rows, queries, radius)
    for method in ["auto", "scan", *(["tables"] if index.m else [])]:
        assert answer(index, queries, radius, method) == expected, method


@SETTINGS
@given(data=datasets())
def test_batch_equals_single_queries(data: tuple[np.ndarray, np.ndarray, int]) -> None:
    rows, queries, radius = data
    index = HammingIndex.build(rows, m=16)
    batch = answer(index, queries, radius, "tables")
    singles = [answer(index, queries[i : i + 1], radius, "tables")[0] for i in range(len(queries))]
    assert batch == singles
    threaded = index.search(queries, radius, threads=2, method="tables")
    assert len(threaded) == sum(len(b) for b in batch)


@pytest.mark.parametrize(
    ("m", "radius"),
    [(14, 0), (14, 1), (14, 31), (14, 32), (14, 63), (14, 64), (12, 31), (32, 100), (64, 256)],
)
def test_tables_and_scan_agree_on_every_radius(m: int, radius: int) -> None:
    rng = np.random.default_rng(radius)
    rows = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    queries = np.stack([flip_bits(rng, rows[i], i * 3 % 80) for i in range(20)])
    mih = HammingIndex.build(rows, m=m)
    scan = HammingIndex.build(rows, m=0)
    assert mih.m == m and scan.m == 0
    got = answer(mih, queries, radius, "tables")
    assert got == answer(scan, queries, radius, "scan")
    assert got == reference(rows, queries, radius)


def test_empty_and_single_entry_indexes() -> None:
    empty = HammingIndex.build(np.zeros((0, 32), dtype=np.uint8))
    assert len(empty.search(np.zeros((1, 32), dtype=np.uint8), 64)) == 0
    one = HammingIndex.build(hex_to_rows(["f" * 64]), m=16)
    res = one.search(hex_to_rows(["f" * 63 + "0", "0" * 64]), 31)
    assert res.query.tolist() == [0] and res.row.tolist() == [0]
    assert res.distance.tolist() == [4]


def test_layout_choice_scales_with_size() -> None:
    assert choose_layout(1000) == []  # small: a scan is cheaper than tables
    parts = choose_layout(10_000_000)
    assert 10 <= len(parts) <= 12
    assert sum(b for _, b in parts) == 256
    assert split_bits(11)[0] == (0, 24) and split_bits(11)[-1] == (233, 23)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        hex_to_rows(["abc"])
    with pytest.raises(ValueError, match="at most"):
        HammingIndex.build(np.zeros((4, 32), dtype=np.uint8), m=8)
    with pytest.raises(ValueError, match="no tables"):
        HammingIndex.build(np.zeros((4, 32), dtype=np.uint8), m=0).search(
            np.zeros((1, 32), dtype=np.uint8), 3, method="tables"
        )


def test_large_arrays_get_their_own_mapping() -> None:
    """`mapped_empty`: zero-filled and writable either way; from `MAPPED_MIN_BYTES` up in
    an anonymous mapping (unmapped when freed, never a hole left in the heap), and an
    index built on such tables answers as brute force does."""
    import mmap

    from ridgeline.index.hamming import MAPPED_MIN_BYTES, mapped_empty

    def mapped(a: np.ndarray) -> bool:
        base: object = a
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)

    small = mapped_empty(16, np.uint32)
    big = mapped_empty((MAPPED_MIN_BYTES // 32, 32), np.uint8)
    assert not mapped(small) and mapped(big)
    for a in (small, big):
        assert a.flags.writeable and a.flags.c_contiguous and not a.any()
    big[-1] = 7
    assert int(big.sum()) == 7 * 32
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    index = HammingIndex.build(rows, m=16)  # 16 tables of 2^16 offsets: mapped
    assert mapped(index.offsets)
    queries = rows[:20] ^ np.uint8(3)
    got = index.search(queries, 40, method="tables")
    want = reference(rows, queries, 40)
    found = [{int(r) for r in got.row[got.query == q]} for q in range(len(queries))]
    assert found == [set(w) for w in want]
