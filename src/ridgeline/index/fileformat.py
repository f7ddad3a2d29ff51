"""The on-disk index format (version 1): a JSON header plus page-aligned raw arrays.

Layout (all integers little-endian):

    0   8 bytes   magic b"RIDGEIDX"
    8   uint32    format version (1)
    12  uint32    header length H (bytes of UTF-8 JSON)
    16  uint64    RLC64 checksum of the JSON header
    24  H bytes   JSON header: signal, kind, rows, seq, file_size, params, sections
    ... sections, each starting on a 4096-byte boundary

Every section is described in the header by name, offset, nbytes, dtype, shape and
checksum (16 hex digits): RLC64 of its bytes when it is at most 64 MiB, otherwise RLC64
(seeded with nbytes) of the little-endian uint64 RLC64s of its 64 MiB chunks, so all
cores verify a big file at once. Files are written to a temporary name, fsync'd and
renamed into place, so readers see either the old or the new file (a writer killed
before the rename leaves a temporary named with its pid, removed by the next write).
Opening maps the
file read-only (processes share the pages) and checks magic, version, header checksum,
file size and every section checksum; any mismatch raises `CorruptIndex` and the
caller rebuilds. No pickle anywhere.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ridgeline import crashpoint
from ridgeline.errors import RidgelineError
from ridgeline.index import _kernels

MAGIC = b"RIDGEIDX"
FORMAT_VERSION = 1
ALIGN = 4096
_PREFIX = struct.Struct("<8sIIQ")


class CorruptIndex(RidgelineError):
    """An index file that is truncated, damaged or from another format version."""

    code = "corrupt_index"
    http_status = 500


CHUNK = 64 << 20


def checksum(data: Any) -> str:
    """RLC64 of a buffer as 16 hex digits (see `_kernels.c`)."""
    return f"{_kernels.checksum(data):016x}"


def section_checksum(data: np.ndarray, pool: ThreadPoolExecutor | None = None) -> str:
    """A section's checksum: chunked above 64 MiB so chunks can be checked in parallel."""
    flat = data.reshape(-1).view(np.uint8)
    n = int(flat.shape[0])
    if n <= CHUNK:
        return checksum(flat)
    starts = range(0, n, CHUNK)
    if pool is None:
        parts = [_kernels.checksum(flat[i : i + CHUNK]) for i in starts]
    else:
        parts = list(pool.map(lambda i: _kernels.checksum(flat[i : i + CHUNK]), starts))
    return f"{_kernels.checksum(np.array(parts, dtype='<u8').tobytes(), n):016x}"


@dataclass
class Pieces:
    """A section given as consecutive byte pieces (each `CHUNK` bytes but the last), so
    a writer that filled them one by one never holds the section twice."""

    parts: list[np.ndarray]
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return sum(int(p.nbytes) for p in self.parts)

    def checksum(self) -> str:
        """Equal to `section_checksum` of the joined bytes."""
        if any(p.nbytes != CHUNK for p in self.parts[:-1]):
            raise ValueError("every piece but the last must be CHUNK bytes")
        if self.nbytes <= CHUNK:
            return checksum(self.parts[0] if self.parts else np.zeros(0, dtype=np.uint8))
        sums = [_kernels.checksum(p) for p in self.parts]
        return f"{_kernels.checksum(np.array(sums, dtype='<u8').tobytes(), self.nbytes):016x}"


def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)))


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's live process
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files left by writers that died (kill -9) before the rename.

    A temporary name carries its writer's pid; a live writer's file is left alone.
    """
    for tmp in path.parent.glob(path.name + ".*.tmp"):
        pid = tmp.name[len(path.name) + 1 :].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def write_index_file(
    path: Path, header: Mapping[str, Any], sections: Mapping[str, np.ndarray | Pieces]
) -> int:
    """Write `sections` with `header` atomically to `path`; returns the file size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        name: a if isinstance(a, Pieces) else np.ascontiguousarray(a)
        for name, a in sections.items()
    }
    described: list[dict[str, Any]] = []
    with _pool() as pool:
        for name, a in arrays.items():
            described.append(
                {
                    "name": name,
                    "dtype": a.dtype.str,
                    "shape": list(a.shape),
                    "nbytes": int(a.nbytes),
                    "checksum": a.checksum()
                    if isinstance(a, Pieces)
                    else section_checksum(a, pool),
                }
            )
    # The header's size decides where sections start; offsets make the header grow a
    # little, so lay out twice with room to spare.
    meta = dict(header)
    data_start = 0
    for _ in range(2):
        offset = data_start
        for d in described:
            d["offset"] = offset
            offset = _align(offset + d["nbytes"])
        meta["sections"] = described
        meta["file_size"] = offset
        meta["format_version"] = FORMAT_VERSION
        text = json.dumps(meta, sort_keys=True).encode()
        data_start = _align(_PREFIX.size + len(text) + 256)
    offset = data_start
    for d in described:
        d["offset"] = offset
        offset = _align(offset + d["nbytes"])
    meta["sections"] = described
    meta["file_size"] = offset
    text = json.dumps(meta, sort_keys=True).encode()
    if _PREFIX.size + len(text) > data_start:  # pragma: no cover - layout loop above
        raise RuntimeError("index header outgrew its space")
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(text), _kernels.checksum(text)))
            fh.write(text)
            for d, a in zip(described, arrays.values(), strict=True):
                fh.seek(d["offset"])
                if isinstance(a, Pieces):
                    for part in a.parts:
                        fh.write(part.data)
                    continue
                fh.write(a.reshape(-1).view(np.uint8).tobytes() if a.nbytes < (1 << 20) else a.data)
            fh.truncate(offset)
            fh.flush()
            os.fsync(fh.fileno())
        crashpoint.reached("index.write.renaming")
        os.replace(tmp, path)
        crashpoint.reached("index.write.renamed")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return offset


@dataclass
class IndexFile:
    """An open, verified index file: its header and read-only array views."""

    path: Path
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]
    identity: tuple[int, int, int]
    _map: mmap.mmap | None

    @classmethod
    def open(cls, path: Path, *, verify: bool = True) -> IndexFile:
        """Map `path` and check it; raises `CorruptIndex` (or `FileNotFoundError`)."""
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            prefix = fh.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                raise CorruptIndex(f"{path}: truncated header")
            magic, version, hlen, hsum = _PREFIX.unpack(prefix)
            if magic != MAGIC:
                raise CorruptIndex(f"{path}: not a Ridgeline index file")
            if version != FORMAT_VERSION:
                raise CorruptIndex(f"{path}: format version {version}, expected {FORMAT_VERSION}")
            text = fh.read(hlen)
            if len(text) != hlen or _kernels.checksum(text) != hsum:
                raise CorruptIndex(f"{path}: header checksum mismatch")
            try:
                header = json.loads(text)
            except ValueError:
                raise CorruptIndex(f"{path}: header is not JSON") from None
            if header.get("file_size") != st.st_size:
                raise CorruptIndex(
                    f"{path}: size {st.st_size} bytes, header says {header.get('file_size')}"
                )
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if st.st_size else None
        arrays: dict[str, np.ndarray] = {}
        pool = _pool() if verify else None
        try:
            for d in header["sections"]:
                offset, nbytes = int(d["offset"]), int(d["nbytes"])
                if offset < 0 or offset + nbytes > st.st_size:
                    raise CorruptIndex(f"{path}: section {d['name']} lies outside the file")
                dtype = np.dtype(d["dtype"])
                if dtype.hasobject:
                    raise CorruptIndex(f"{path}: section {d['name']} has an object dtype")
                shape = tuple(int(x) for x in d["shape"])
                count = int(np.prod(shape)) if shape else 1
                if count * dtype.itemsize != nbytes:
                    raise CorruptIndex(f"{path}: section {d['name']} has the wrong size")
                raw = (
                    np.frombuffer(mapped, dtype=np.uint8, count=nbytes, offset=offset)
                    if nbytes and mapped is not None
                    else np.zeros(0, dtype=np.uint8)
                )
                if pool is not None and section_checksum(raw, pool) != d["checksum"]:
                    raise CorruptIndex(f"{path}: section {d['name']} checksum mismatch")
                arrays[d["name"]] = raw.view(dtype).reshape(shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptIndex(f"{path}: malformed header ({exc})") from None
        finally:
            if pool is not None:
                pool.shutdown()
        return cls(path, header, arrays, (st.st_dev, st.st_ino, st.st_mtime_ns), mapped)
