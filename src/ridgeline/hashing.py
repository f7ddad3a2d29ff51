"""Hash files: one streaming read for the cryptographic hashes, plus PDQ for images
and vPDQ for videos. Batches go on past bad files, each with a clear per-file error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ridgeline.errors import BadInput, RidgelineError
from ridgeline.media import Kind, sniff
from ridgeline.signals import HashOptions, StreamingSignal, all_signals, get_signal
from ridgeline.signals.base import SignalValue, stream_digests

#: File name suffixes of image formats. A file whose content is not recognised but whose
#: name says image is still given to the image decoder, so a damaged or mislabelled image
#: in a batch is reported as an error instead of quietly hashed as plain bytes (and
#: formats the sniffer does not know, e.g. TGA, still get PDQ).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp",
                            ".bmp", ".dib", ".tif", ".tiff", ".heic", ".heif", ".avif", ".ico",
                            ".tga", ".pcx", ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".j2k",
                            ".qoi", ".psd", ".dds", ".sgi", ".ras", ".icns"})  # fmt: skip


@dataclass
class HashResult:
    """Signals computed for one file, or why they could not be."""

    path: str
    signals: dict[str, SignalValue] = field(default_factory=dict)
    error: str | None = None
    kind: Kind | None = None
    media_type: str | None = None
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "signals": self.signals, "error": self.error}


def default_signals(kind: Kind) -> list[str]:
    """What `hash` computes when `--signals` is not given: every installed signal that is
    computed by default and can be computed from this kind of content (the built-ins give
    md5, sha1, sha256, plus PDQ for images and vPDQ for videos)."""
    return [s.name for s in all_signals().values() if s.computed_by_default and s.can_compute(kind)]


def hash_file(
    path: str | os.PathLike[str],
    signals: Sequence[str] | None = None,
    options: HashOptions | None = None,
) -> HashResult:
    """Compute `signals` (default: by content kind) for one file; never raises for bad files."""
    options = options or HashOptions()
    result = HashResult(path=os.fspath(path))
    p = Path(path)
    try:
        if p.is_dir():
            os.listdir(p)  # an unreadable folder says so (OSError below)
            raise BadInput("not a file")
        if not p.is_file():
            raise BadInput("not a file" if p.exists() else "no such file")
        result.size = p.stat().st_size
        result.kind, result.media_type = sniff(p)
        if result.kind == "file" and p.suffix.lower() in IMAGE_SUFFIXES:
            result.kind = "image"  # by name: the decoder decides, with a clear error
    except OSError as exc:
        what = "unreadable folder" if p.is_dir() else "unreadable"
        result.error = f"{what}: {exc.strerror or exc}"
        return result
    except BadInput as exc:
        result.error = str(exc)
        return result
    wanted = [get_signal(s) for s in (signals or default_signals(result.kind))]
    errors: list[str] = []
    streaming = [s for s in wanted if isinstance(s, StreamingSignal)]
    if streaming:
        try:
            result.signals.update(stream_digests(p, streaming))
        except OSError as exc:
            result.error = f"unreadable: {exc.strerror or exc}"
            return result
    for signal in wanted:
        if isinstance(signal, StreamingSignal):
            continue
        if result.size == 0:
            errors.append(f"{signal.name}: empty file")
            continue
        if not signal.can_compute(result.kind):
            needs = "/".join(sorted(signal.content_kinds)) or "licensed software"
            errors.append(f"{signal.name}: not computable for this {result.kind} (needs {needs})")
            continue
        try:
            result.signals[signal.name] = signal.compute(p, options)
        except RidgelineError as exc:
            errors.append(f"{signal.name}: {exc}")
        except (OSError, ValueError, MemoryError) as exc:
            errors.append(f"{signal.name}: {type(exc).__name__}: {exc}")
    if errors:
        result.error = "; ".join(errors)
    return result


def iter_files(paths: Iterable[str | os.PathLike[str]], recursive: bool) -> Iterator[str]:
    """Expand folders (when `recursive`) into files, sorted for stable output."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            if not recursive:
                yield os.fspath(p)  # reported as "not a file" by hash_file
                continue
            # An unreadable sub-folder is yielded itself: hash_file reports it as an
            # error row (it was skipped silently, with exit status 0).
            failed: list[OSError] = []
            for root, dirs, files in os.walk(p, onerror=failed.append):
                while failed:
                    yield os.fspath(failed.pop(0).filename)
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
            while failed:
                yield os.fspath(failed.pop(0).filename)
        else:
            yield os.fspath(p)


def tune_malloc() -> bool:
    """Keep freed image-sized buffers in the heap instead of returning them to the OS.

    glibc serves allocations over 128 KiB-32 MiB with fresh mmaps and trims the heap
    eagerly, so every decoded image (a few MiB of pixels) page-faults its memory in
    again: about a quarter of the CPU of an exact 1 MP hash. Raising the mmap and trim
    thresholds (up to 64 MiB kept per process) removes that. Called by hashing worker
    processes, `hash_many` and the HTTP service; a no-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = bool(libc.mallopt(m_mmap_threshold, 32 << 20) == 1)
        return bool(libc.mallopt(m_trim_threshold, 64 << 20) == 1) and ok
    except (OSError, AttributeError):
        return False


def _worker_init() -> None:
    tune_malloc()


def _hash_one(args: tuple[str, Sequence[str] | None, HashOptions]) -> HashResult:
    return hash_file(*args)


def hash_many(
    paths: Iterable[str],
    signals: Sequence[str] | None = None,
    options: HashOptions | None = None,
    jobs: int = 1,
) -> Iterator[HashResult]:
    """Hash files in input order, across `jobs` processes when > 1."""
    options = options or HashOptions()
    if signals:
        for name in signals:
            get_signal(name)  # fail fast on unknown names, before any work
    tasks = ((p, signals, options) for p in paths)
    if jobs <= 1:
        tune_malloc()
        yield from map(_hash_one, tasks)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init) as pool:
        yield from pool.map(_hash_one, tasks, chunksize=4)
