"""Scan workers: hash and match one batch of items, in a local process pool or as a
Ray task. Shared by `scan.pipeline` (which drives and records) and `scan.ray_engine`,
so neither imports the other both ways."""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from sqlalchemy import select

from ridgeline.errors import RidgelineError
from ridgeline.hashing import hash_file, tune_malloc
from ridgeline.matching import ExplainedMatch, Matcher, queries_for
from ridgeline.scan.archives import ScanItem
from ridgeline.scan.models import ScanState
from ridgeline.signals import HashOptions
from ridgeline.store import Store

#: Items handed to a worker at once (amortises inter-process overhead).
BATCH = 4


def _sha256_done(store: Store, digest: str) -> bool:
    with store.session() as s:
        return (
            s.scalar(select(ScanState.id).where(ScanState.sha256 == digest, ScanState.ok).limit(1))
            is not None
        )


class Worker:
    """Hashes and matches items; one per process, opened once and reused."""

    def __init__(self, config: dict[str, Any]) -> None:
        tune_malloc()  # as `hash_many` does: image buffers stay in the heap
        self.config = config
        self.store = Store(config["db_url"], migrate=False)
        self.matcher = Matcher.open(self.store, config.get("index_dir"))
        self.options = HashOptions(**config["hash_options"])
        self.signals = config.get("signals")
        self.lists = config.get("lists") or None

    def process(self, item: ScanItem) -> dict[str, Any]:
        out: dict[str, Any] = {
            "item": item.to_json(),
            "sha256": None,
            "kind": None,
            "media_type": None,
            "signals": {},
            "matches": [],
            "error": item.error,
        }
        if item.error or item.skipped:
            return out
        if self.config.get("resume_sha256") and not item.member:
            from ridgeline.scan.actions import file_sha256

            try:
                digest = file_sha256(item.path)
            except OSError as exc:
                out["error"] = f"unreadable: {exc.strerror or exc}"
                return out
            if _sha256_done(self.store, digest):
                out["sha256"] = digest
                out["item"]["skipped"] = True
                return out
        result = hash_file(item.path, self.signals, self.options)
        out["kind"] = result.kind
        out["media_type"] = result.media_type
        out["signals"] = result.signals
        out["error"] = result.error
        sha = result.signals.get("sha256")
        out["sha256"] = sha if isinstance(sha, str) else None
        if result.signals:  # every signal it has, even when another failed
            queries = queries_for(result.signals, dihedral=self.options.dihedral)
            try:
                out["matches"] = self.matcher.match(queries, self.lists)
            except RidgelineError as exc:
                out["error"] = f"match failed: {exc}"
        return out

    def process_batch(self, items: Sequence[ScanItem]) -> list[dict[str, Any]]:
        return [self.process(item) for item in items]

    def close(self) -> None:
        self.store.close()


def outcome_to_json(outcome: dict[str, Any]) -> dict[str, Any]:
    """A worker's outcome as plain JSON (for engines that ship results as text)."""
    return {**outcome, "matches": [m.to_json() for m in outcome["matches"]]}


def outcome_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `outcome_to_json`."""
    return {**data, "matches": [ExplainedMatch.from_json(m) for m in data["matches"]]}


def _init_worker(config: dict[str, Any]) -> None:
    global _WORKER
    _end_with_parent()
    _WORKER = Worker(config)


def _end_with_parent() -> None:
    """Ask Linux to kill this pool worker when the scan process dies.

    A scan killed outright (SIGKILL, OOM killer) otherwise left its workers running,
    each holding a database connection (issue 17 item 6).
    """
    import ctypes
    import ctypes.util
    import signal

    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() == 1:  # the scan died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _work(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.process_batch([ScanItem.from_json(i) for i in items])


def batched(items: Iterable[ScanItem], size: int = BATCH) -> Iterator[list[ScanItem]]:
    batch: list[ScanItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_local(
    items: Iterable[ScanItem], config: dict[str, Any], jobs: int
) -> Iterator[dict[str, Any]]:
    """Process items in order, in this process or across `jobs` worker processes."""
    if jobs <= 1:
        worker = Worker(config)
        try:
            for item in items:
                yield worker.process(item)
        finally:
            worker.close()
        return
    window: deque[Future[list[dict[str, Any]]]] = deque()
    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(config,)
    ) as pool:
        for batch in batched(items):
            window.append(pool.submit(_work, [i.to_json() for i in batch]))
            if len(window) >= jobs * 8:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()


_WORKER: Worker | None = None
