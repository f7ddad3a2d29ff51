"""Search engines for the non-PDQ signals, with the same small interface as `HammingIndex`.

- `ExactIndex`: equality on fixed-width digests (md5/sha1/sha256 bytes, or the sha256
  of a plug-in signal's canonical string), a sorted array searched with binary search.
- `EuclideanIndex`: Euclidean range search on 144-byte PhotoDNA vectors by a threaded
  compiled scan (squared integer distances, so the threshold test is exact).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ridgeline.index import _kernels
from ridgeline.index.hamming import SearchResult


class ExactIndex:
    """Sorted fixed-width keys; `perm[i]` is the original row of sorted key i."""

    kind = "exact"

    def __init__(self, keys: np.ndarray, perm: np.ndarray) -> None:
        if keys.ndim != 2 or keys.dtype != np.uint8:
            raise ValueError("keys must be an (n, width) uint8 array")
        self.keys = keys
        self.perm = perm
        self.width = int(keys.shape[1])
        self._sorted = np.ascontiguousarray(keys).view(f"S{self.width}").reshape(-1)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    def build(cls, rows: np.ndarray, **_: Any) -> ExactIndex:
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        if rows.ndim != 2 or rows.shape[1] == 0:
            raise ValueError("rows must be an (n, width) uint8 array")
        width = rows.shape[1]
        order = np.argsort(rows.view(f"S{width}").reshape(-1), kind="stable").astype(np.uint32)
        return cls(np.ascontiguousarray(rows[order]), order)

    def rows(self) -> np.ndarray:
        """Keys in original row order (for rebuilding)."""
        out = np.empty_like(self.keys)
        out[self.perm] = self.keys
        return out

    def search(
        self, queries: np.ndarray, radius: float = 0, *, threads: int = 1, sort: bool = True
    ) -> SearchResult:
        """Rows whose key equals a query (the radius is ignored: equality only)."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, self.width)
        if len(self) == 0 or queries.shape[0] == 0:
            return SearchResult.empty()
        qk = queries.view(f"S{self.width}").reshape(-1)
        lo = np.searchsorted(self._sorted, qk, side="left")
        hi = np.searchsorted(self._sorted, qk, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return SearchResult.empty()
        qidx = np.repeat(np.arange(len(qk), dtype=np.uint32), counts)
        pos = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True) if b > a])
        rows = self.perm[pos].astype(np.uint32)
        return SearchResult(qidx, rows, np.zeros(total, dtype=np.uint32))

    def sections(self) -> dict[str, np.ndarray]:
        return {"keys": self.keys, "perm": self.perm}

    def params(self) -> dict[str, Any]:
        return {"width": self.width}

    @classmethod
    def from_sections(cls, sections: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Any:
        width = int(params["width"])
        keys = sections["keys"].reshape(-1, width)
        if sections["perm"].shape[0] != keys.shape[0]:
            raise ValueError("exact index sections disagree on the row count")
        return cls(keys, sections["perm"])


class EuclideanIndex:
    """Vectors of `dim` unsigned bytes; distances are squared integers internally."""

    kind = "l2"

    def __init__(self, vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or vectors.dtype != np.uint8:
            raise ValueError("vectors must be an (n, dim) uint8 array")
        self.vectors = np.ascontiguousarray(vectors)
        self.dim = int(vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def build(cls, rows: np.ndarray, **_: Any) -> EuclideanIndex:
        return cls(np.ascontiguousarray(rows, dtype=np.uint8))

    def rows(self) -> np.ndarray:
        return self.vectors

    def search(
        self, queries: np.ndarray, radius: float, *, threads: int = 1, sort: bool = True
    ) -> SearchResult:
        """Rows within Euclidean `radius`; `distance` holds squared distances."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, self.dim)
        if len(self) == 0 or queries.shape[0] == 0 or radius < 0:
            return SearchResult.empty()
        max_sq = math.floor(float(radius) ** 2 + 1e-9)
        raw = _kernels.l2_scan(self.vectors, queries, self.dim, max_sq, threads)
        return SearchResult.from_kernel(raw, sort=sort)

    def sections(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors}

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @classmethod
    def from_sections(cls, sections: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Any:
        return cls(sections["vectors"].reshape(-1, int(params["dim"])))
