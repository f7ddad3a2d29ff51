"""Exact Hamming range search over 256-bit hashes (PDQ and vPDQ frames).

Multi-index hashing (Norouzi et al.): the 256 bits are cut into `m` substrings of
about log2(N) bits, each with a counting-sort table (bucket offsets + row ids). For
radius r = m*q + a, any row within r of the query agrees with it to within q bits on
at least one of the first a+1 substrings or to within q-1 bits on one of the others
(pigeonhole), so probing those balls finds every match; candidates are then verified
on the full 256 bits. When the probe would touch more memory than a straight scan
(large radius, small N), a blocked popcount scan answers instead. Both are exact.
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ridgeline.index import _kernels

HASH_BYTES = 32
HASH_BITS = 256
#: Relative cost of one sequential row in a scan versus one random memory access.
SCAN_ROW_COST = 0.04
#: Tables are never built wider than this many bits (2^26 offsets = 256 MiB).
MAX_TABLE_BITS = 26
#: The radius the table layout is tuned for when nothing else is known.
DEFAULT_BUILD_RADIUS = 31


def hex_to_rows(values: Sequence[str]) -> np.ndarray:
    """Canonical 64-hex-digit hashes as an (n, 32) uint8 array (byte i = hex pair i)."""
    if not values:
        return np.zeros((0, HASH_BYTES), dtype=np.uint8)
    if any(len(v) != 2 * HASH_BYTES for v in values):
        raise ValueError("every hash must be 64 hexadecimal characters")
    raw = bytes.fromhex("".join(values))
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, HASH_BYTES).copy()


#: Arrays of at least this many bytes get their own mapping (`mapped_empty`).
MAPPED_MIN_BYTES = 1 << 20


def mapped_empty(shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zero-filled array; one of `MAPPED_MIN_BYTES` or more in its own anonymous
    mapping, unmapped when the array is freed.

    An index that is rebuilt as it grows (intake's PDQ neighbours) frees arrays of tens
    of MB each time. From the heap, once glibc has raised its mapping threshold past
    their size, they leave holes it keeps: resident memory that grew with the largest
    index ever built rather than with the one in use.
    """
    dt = np.dtype(dtype)
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = math.prod(dims) * dt.itemsize
    if nbytes < MAPPED_MIN_BYTES:
        return np.zeros(dims, dtype=dt)
    # private: a forked process gets its own copy on write, as with heap memory
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE), dtype=dt).reshape(dims)


def rows_to_hex(rows: np.ndarray) -> list[str]:
    """Inverse of `hex_to_rows`."""
    return [bytes(r).hex() for r in rows]


def default_threads() -> int:
    """Threads for big batches: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def split_bits(m: int) -> list[tuple[int, int]]:
    """(start, length) of m nearly equal substrings covering 256 bits."""
    base, extra = divmod(HASH_BITS, m)
    out: list[tuple[int, int]] = []
    start = 0
    for j in range(m):
        length = base + (1 if j < extra else 0)
        out.append((start, length))
        start += length
    return out


def _ball(bits: int, radius: int) -> int:
    return sum(math.comb(bits, d) for d in range(min(radius, bits) + 1))


def mih_cost(n: int, lengths: Sequence[int], radius: int) -> float:
    """Expected random memory accesses of one MIH query (buckets + candidates)."""
    m = len(lengths)
    q, extra = divmod(radius, m)
    cost = 0.0
    for j, bits in enumerate(lengths):
        rj = q if j <= extra else q - 1
        if rj < 0:
            continue
        buckets = _ball(bits, rj)
        cost += buckets * (1.0 + n / 2.0**bits)
    return cost


def scan_cost(n: int) -> float:
    """Cost of a scan, in the same units as `mih_cost`."""
    return n * SCAN_ROW_COST


def table_bytes(n: int, lengths: Sequence[int]) -> int:
    """Memory for the MIH tables: offsets (uint32, 2^b + 1 each) and row ids (uint32)."""
    return sum(4 * ((1 << b) + 1) for b in lengths) + 4 * n * len(lengths)


def choose_layout(n: int, radius: int = DEFAULT_BUILD_RADIUS) -> list[tuple[int, int]]:
    """The substring layout with the lowest expected query cost, or [] to scan.

    Tables may take up to ~100 bytes per row (plus 64 MiB), which keeps a 10M index
    near 1 GB in all and still leaves 100M within a 24 GiB machine.
    """
    budget = 100 * n + (64 << 20)
    best: tuple[float, list[tuple[int, int]]] = (scan_cost(n), [])
    for m in range(8, 65):
        parts = split_bits(m)
        lengths = [b for _, b in parts]
        if max(lengths) > MAX_TABLE_BITS or table_bytes(n, lengths) > budget:
            continue
        cost = mih_cost(n, lengths, radius)
        if cost < best[0]:
            best = (cost, parts)
    return best[1]


def _layout_array(parts: Sequence[tuple[int, int]]) -> np.ndarray:
    out = np.zeros((len(parts), 3), dtype=np.int64)
    base = 0
    for j, (start, bits) in enumerate(parts):
        out[j] = (start, bits, base)
        base += (1 << bits) + 1
    return out


@dataclass
class SearchResult:
    """Hits of a batch: parallel arrays, sorted by query then row."""

    query: np.ndarray  # uint32 query index
    row: np.ndarray  # uint32 row number
    distance: np.ndarray  # uint32 distance (Hamming) or squared distance (Euclidean)

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @classmethod
    def from_kernel(cls, raw: tuple[bytes, bytes, bytes], sort: bool = True) -> SearchResult:
        q = np.frombuffer(raw[0], dtype=np.uint32)
        r = np.frombuffer(raw[1], dtype=np.uint32)
        d = np.frombuffer(raw[2], dtype=np.uint32)
        if sort and q.shape[0] > 1:
            order = np.lexsort((r, q))
            q, r, d = q[order], r[order], d[order]
        return cls(q, r, d)

    @classmethod
    def empty(cls) -> SearchResult:
        z = np.zeros(0, dtype=np.uint32)
        return cls(z, z, z)


class HammingIndex:
    """Rows of 32-byte hashes plus optional MIH tables; answers exact range queries.

    Arrays may be memory-mapped (read-only) from an index file: nothing here copies
    them, so worker processes that open the same file share one copy.
    """

    kind = "hamming256"

    def __init__(
        self,
        hashes: np.ndarray,
        layout: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
        ids: np.ndarray | None = None,
    ) -> None:
        if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES or hashes.dtype != np.uint8:
            raise ValueError("hashes must be an (n, 32) uint8 array")
        self.hashes = np.ascontiguousarray(hashes)
        self.layout = layout if layout is not None else np.zeros((0, 3), dtype=np.int64)
        self.offsets = offsets if offsets is not None else np.zeros(0, dtype=np.uint32)
        self.ids = ids if ids is not None else np.zeros(0, dtype=np.uint32)
        self._plan: dict[int, bool] = {}

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @property
    def m(self) -> int:
        """Number of MIH substrings (0: scan only)."""
        return int(self.layout.shape[0])

    @classmethod
    def build(
        cls,
        hashes: np.ndarray,
        *,
        radius: int = DEFAULT_BUILD_RADIUS,
        m: int | None = None,
        threads: int | None = None,
        **_: Any,
    ) -> HammingIndex:
        """Build tables for `hashes`, tuned for `radius` (`m=0` forces scan-only)."""
        hashes = np.ascontiguousarray(hashes, dtype=np.uint8).reshape(-1, HASH_BYTES)
        n = hashes.shape[0]
        if n >= 2**32 - 1:
            raise ValueError("one index holds at most 2^32 - 2 rows")
        parts = choose_layout(n, radius) if m is None else (split_bits(m) if m else [])
        if any(b > MAX_TABLE_BITS for _, b in parts):
            raise ValueError(f"substrings must be at most {MAX_TABLE_BITS} bits (m >= 10)")
        if not parts:
            return cls(hashes)
        layout = _layout_array(parts)
        total = int(layout[-1, 2]) + (1 << int(layout[-1, 1])) + 1
        offsets = mapped_empty(total, np.uint32)
        ids = mapped_empty(len(parts) * n, np.uint32)
        _kernels.mih_build(hashes, layout, offsets, ids, threads or default_threads())
        return cls(hashes, layout, offsets, ids)

    def uses_tables(self, radius: int) -> bool:
        """Whether a query at `radius` goes through the tables (else a scan)."""
        plan = self._plan.get(radius)
        if plan is None:
            lengths = [int(b) for b in self.layout[:, 1]]
            plan = bool(self.m) and mih_cost(len(self), lengths, radius) < scan_cost(len(self))
            self._plan[radius] = plan
        return plan

    def search(
        self,
        queries: np.ndarray,
        radius: float,
        *,
        threads: int = 1,
        sort: bool = True,
        method: str = "auto",
    ) -> SearchResult:
        """Every (query, row) within `radius` bits: exact, deduplicated.

        `method` is "auto" (tables or scan, whichever the cost model says is cheaper),
        "tables" or "scan"; all three give the same answer.
        """
        if not (
            queries.dtype == np.uint8
            and queries.ndim == 2
            and queries.shape[1] == HASH_BYTES
            and queries.flags.c_contiguous
        ):
            queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, HASH_BYTES)
        radius = math.floor(radius)
        nq = queries.shape[0]
        if radius < 0 or len(self) == 0 or nq == 0:
            return SearchResult.empty()
        radius = min(radius, HASH_BITS)
        if method not in ("auto", "tables", "scan"):
            raise ValueError(f"method must be auto, tables or scan, not {method!r}")
        if method == "tables" and not self.m:
            raise ValueError("this index has no tables (built with m=0)")
        if method == "tables" or (method == "auto" and self.uses_tables(radius)):
            raw = _kernels.mih_search(
                self.hashes, self.offsets, self.ids, self.layout, queries, radius, threads
            )
        else:
            raw = _kernels.hamming_scan(self.hashes, queries, radius, threads)
        # one query on one thread comes back sorted by row already
        return SearchResult.from_kernel(raw, sort=sort and (nq > 1 or threads > 1))

    def rows(self) -> np.ndarray:
        """The hashes in row order (for rebuilding)."""
        return self.hashes

    def sections(self) -> dict[str, np.ndarray]:
        """Arrays to store in an index file."""
        return {
            "hashes": self.hashes,
            "mih_layout": self.layout,
            "mih_offsets": self.offsets,
            "mih_ids": self.ids,
        }

    def params(self) -> dict[str, Any]:
        return {"m": self.m}

    @classmethod
    def from_sections(cls, sections: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Any:
        layout = sections["mih_layout"].reshape(-1, 3)
        hashes = sections["hashes"].reshape(-1, HASH_BYTES)
        index = cls(hashes, layout, sections["mih_offsets"], sections["mih_ids"])
        if index.m:
            need = int(layout[-1, 2]) + (1 << int(layout[-1, 1])) + 1
            if index.offsets.shape[0] < need or index.ids.shape[0] != index.m * len(index):
                raise ValueError("MIH tables do not match the layout")
        return index


def brute_force(rows: np.ndarray, queries: np.ndarray, radius: int) -> list[set[int]]:
    """Reference answer in numpy (for tests and recall checks): rows within radius per query."""
    out: list[set[int]] = []
    lut = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)
    for q in np.asarray(queries, dtype=np.uint8).reshape(-1, HASH_BYTES):
        d = lut[np.bitwise_xor(rows, q)].sum(axis=1) if len(rows) else np.zeros(0)
        out.append(set(np.nonzero(d <= radius)[0].tolist()))
    return out
