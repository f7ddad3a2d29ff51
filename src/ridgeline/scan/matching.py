"""Matching computed signals against lists, with an explanation for every match.

The scan pipeline and the HTTP API both go through `Matcher`, which looks hashes up
in the shared memory-mapped `ridgeline.index.MatchIndex` and then explains each
match from the store: list, entry, classification, provenance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from ridgeline.signals import get_signal
from ridgeline.store import Store
from ridgeline.store.models import Entry

#: Explanations (classification, provenance) are re-read at least this often.
EXPLAIN_TTL_S = 30.0


@dataclass(frozen=True)
class Query:
    """One hash to look up: signal, canonical value, optional quality and variant label."""

    signal: str
    value: str
    quality: int | None = None
    #: "" for the content as given; a dihedral variant name or frame label otherwise.
    variant: str = ""


@dataclass
class Hit:
    """A raw hit before explanation: which entry, how far, under what threshold."""

    list_id: int
    list_name: str
    entry_id: int
    signal: str
    distance: float
    threshold: float
    purpose: str


class Backend(Protocol):
    """What the matcher needs from an index."""

    def refresh(self) -> bool:
        """Catch up with the change feed; True when anything changed."""
        ...

    def lookup(
        self, signal: str, values: Sequence[str], qualities: Sequence[int | None], lists: Any
    ) -> list[list[Hit]]: ...

    def ready(self) -> bool: ...


def queries_from_signals(signals: Mapping[str, Any], *, dihedral: bool = False) -> list[Query]:
    """Turn `HashResult.signals` (computed values) into lookups, dihedral variants included."""
    out: list[Query] = []
    for name, value in signals.items():
        if name == "pdq":
            frames = value if isinstance(value, list) else [value]
            for i, frame in enumerate(frames):
                if not isinstance(frame, dict) or "hash" not in frame:
                    continue
                label = f"frame{i}" if isinstance(value, list) else ""
                quality = frame.get("quality")
                out.append(Query("pdq", frame["hash"], quality, label))
                if dihedral:
                    out.extend(_dihedral_queries(frame.get("dihedral"), quality, label))
        else:
            try:
                signal = get_signal(name)
            except KeyError:
                continue
            out.extend(Query(signal.name, v) for v in signal.canonical_values(value))
    return out


def _dihedral_queries(variants: Any, quality: int | None, label: str) -> list[Query]:
    """Accept dihedral variants as {name: hash} or [hash, ...] or [{"hash", "name"}...]."""
    out: list[Query] = []
    if isinstance(variants, dict):
        items = list(variants.items())
    elif isinstance(variants, list):
        items = []
        for i, v in enumerate(variants):
            if isinstance(v, dict):
                items.append((str(v.get("name", v.get("variant", f"d{i}"))), v.get("hash")))
            else:
                items.append((f"d{i}", v))
    else:
        return out
    for name, h in items:
        q = quality
        if isinstance(h, dict):
            q = h.get("quality", quality)
            h = h.get("hash")
        if isinstance(h, str) and name not in ("orig", "original", "identity", "d0"):
            out.append(Query("pdq", h, q, f"{label}:{name}" if label else name))
    return out


class IndexBackend:
    """Adapter over the shared memory-mapped `ridgeline.index.MatchIndex`."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self._ready = False

    def ready(self) -> bool:
        return self._ready

    def refresh(self) -> bool:
        changed: bool = self.index.refresh() > 0
        self._ready = True
        return changed

    def lookup(
        self, signal: str, values: Sequence[str], qualities: Sequence[int | None], lists: Any
    ) -> list[list[Hit]]:
        kwargs: dict[str, Any] = {"lists": list(lists) if lists else None}
        if signal == "pdq":
            kwargs["qualities"] = list(qualities)
        found = self.index.match(signal, list(values), **kwargs)
        return [
            [
                Hit(
                    int(m.list_id),
                    str(m.list_name),
                    int(m.entry_id),
                    str(m.signal),
                    float(m.distance),
                    float(m.threshold),
                    str(getattr(m, "purpose", "block")),
                )
                for m in row
            ]
            for row in found
        ]


def open_backend(
    store: Store,
    index_dir: str | None = None,
    *,
    index_refresh_interval: float | None = None,
) -> Backend:
    """The shared memory-mapped index over `store`.

    `index_refresh_interval` sets how often the index polls the change feed from
    within `match` itself; a server that refreshes from a background thread sets it
    long so no request ever waits on that database query.
    """
    from ridgeline.index import MatchIndex

    options: dict[str, Any] = {}
    if index_refresh_interval is not None:
        options["refresh_interval"] = index_refresh_interval
    return IndexBackend(MatchIndex.open(store, directory=index_dir, **options))


@dataclass
class Matcher:
    """Looks up queries and explains every hit from the store.

    `refresh_interval` bounds how stale the index may get: the change feed is polled
    at most that often, so entries added elsewhere match within about that time.
    """

    store: Store
    backend: Backend
    refresh_interval: float = 0.5
    #: Poll the change feed from `match` itself (off when a background thread does it).
    auto_refresh: bool = True
    _last_refresh: float = field(default=0.0, init=False)
    _explain_cache: dict[int, dict[str, Any]] = field(default_factory=dict, init=False)
    _explain_cleared: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @classmethod
    def open(
        cls,
        store: Store,
        index_dir: str | None = None,
        *,
        index_refresh_interval: float | None = None,
    ) -> Matcher:
        backend = open_backend(store, index_dir, index_refresh_interval=index_refresh_interval)
        matcher = cls(store, backend)
        matcher.refresh(force=True)
        return matcher

    def refresh(self, force: bool = False) -> None:
        """Poll the change feed if the refresh interval has passed."""
        now = time.monotonic()
        if not force and now - self._last_refresh < self.refresh_interval:
            return
        with self._lock:
            if not force and now - self._last_refresh < self.refresh_interval:
                return
            if self.backend.refresh():
                self._explain_cache.clear()  # classifications or provenance may have changed
            self._last_refresh = time.monotonic()
            if time.monotonic() - self._explain_cleared > EXPLAIN_TTL_S:
                self._explain_cache.clear()
                self._explain_cleared = time.monotonic()

    def preload(self, signals: Iterable[str] | None = None) -> list[str]:
        """Open (or build) the shared index of each signal now, not on a request.

        Returns the signals that could not be loaded (they load on first use instead).
        """
        index = getattr(self.backend, "index", None)
        if index is None or not hasattr(index, "load"):
            return []
        from ridgeline.signals import all_signals

        failed = []
        for name in signals if signals is not None else list(all_signals()):
            try:
                index.load([name])
            except Exception:  # an optional plug-in's index must not keep the server down
                failed.append(name)
        return failed

    def age(self) -> float:
        """Seconds since the index was last brought up to date."""
        return time.monotonic() - self._last_refresh

    def match(
        self, queries: Iterable[Query], lists: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Explained matches for all queries, best (smallest distance) first."""
        if self.auto_refresh:
            self.refresh()
        by_signal: dict[str, list[Query]] = {}
        for q in queries:
            by_signal.setdefault(q.signal, []).append(q)
        found: list[tuple[Query, Hit]] = []
        for signal, group in by_signal.items():
            hits = self.backend.lookup(
                signal, [q.value for q in group], [q.quality for q in group], lists
            )
            found.extend((q, h) for q, row in zip(group, hits, strict=True) for h in row)
        if not found:
            return []
        explained = self._explain({h.entry_id for _, h in found})
        best: dict[tuple[int, str], dict[str, Any]] = {}
        for q, h in found:
            key = (h.entry_id, h.signal)
            if key in best and best[key]["distance"] <= h.distance:
                continue
            info = explained.get(h.entry_id, {})
            best[key] = {
                "list": h.list_name,
                "list_id": h.list_id,
                "purpose": h.purpose,
                "entry_id": h.entry_id,
                "signal": h.signal,
                "value": q.value,
                "variant": q.variant,
                "distance": h.distance,
                "threshold": h.threshold,
                "classifications": info.get("classifications", []),
                "provenance": info.get("provenance", {}),
            }
        return sorted(best.values(), key=lambda m: (m["distance"], m["list"], m["entry_id"]))

    def _explain(self, entry_ids: set[int]) -> dict[int, dict[str, Any]]:
        missing = [i for i in entry_ids if i not in self._explain_cache]
        if missing:
            with self.store.session() as s:
                for entry in s.scalars(select(Entry).where(Entry.id.in_(missing))):
                    self._explain_cache[entry.id] = {
                        "classifications": entry.classifications or [],
                        "provenance": {
                            "source": entry.source,
                            "origin_list": entry.origin_list,
                            "origin_member": entry.origin_member,
                            "origin_entry_id": entry.origin_entry_id,
                            "import_batch": entry.import_batch,
                            "submitted_by": entry.submitted_by,
                        },
                    }
        return {i: self._explain_cache.get(i, {}) for i in entry_ids}
