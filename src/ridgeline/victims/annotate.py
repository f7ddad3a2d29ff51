"""Series and identification status on every match, and every match a sighting.

`SeriesAnnotator` is the `ridgeline.matching.Annotator` the front ends (CLI, service,
demo, scan's recorder) give their matcher. Per lookup it asks the registry once
(`series_status`, batched over every matched entry and sha256) for what its cache does
not hold yet; the cache is re-read at least every `ttl_s` seconds, so an import or an
identification shows within that time. Each match of a series is a sighting of its
victims: sightings are buffered and written in one transaction at most every
`flush_s` seconds by a background thread (and on `flush`/`close`), never one write
per lookup on the request path.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from ridgeline.matching import ExplainedMatch
from ridgeline.store import Store
from ridgeline.victims.registry import (
    SeriesStatus,
    entry_series_status,
    record_sightings,
    series_status,
)

#: Series statuses are re-read at least this often (seconds).
TTL_S = 30.0
#: Buffered sightings are written at least this often (seconds) ...
FLUSH_S = 1.0
#: ... or as soon as this many are waiting.
MAX_BUFFER = 50_000

_NONE: tuple[SeriesStatus, ...] = ()


def describe(statuses: Sequence[SeriesStatus]) -> tuple[tuple[str, ...], str]:
    """(series names, the sentence a match shows) for the series of one match."""
    names = tuple(dict.fromkeys(f"{s.database}/{s.series}" for s in statuses))
    return names, "; ".join(dict.fromkeys(s.text for s in statuses))


class SeriesAnnotator:
    """Fills `ExplainedMatch.series` and `.identification`; records sightings."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = TTL_S,
        flush_s: float = FLUSH_S,
        record_sightings: bool = True,
        background: bool = True,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.flush_s = flush_s
        self.record_sightings = record_sightings
        self.background = background
        self.queries = 0  # series_status calls made (one per lookup at most)
        self._cache: dict[int | str, tuple[SeriesStatus, ...]] = {}
        self._cleared = time.monotonic()
        self._buffer: list[tuple[int, dt.datetime, str]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- annotation -----------------------------------------------------------

    def _statuses(
        self, entry_ids: set[int], shas: set[str]
    ) -> dict[int | str, tuple[SeriesStatus, ...]]:
        now = time.monotonic()
        cache = self._cache
        if now - self._cleared > self.ttl_s:
            cache = self._cache = {}  # a new dict: other threads keep the one they have
            self._cleared = now
        missing_e = [e for e in entry_ids if e not in cache]
        missing_s = [h for h in shas if h not in cache]
        if missing_e or missing_s:
            found = series_status(self.store, entry_ids=missing_e, sha256s=missing_s)
            self.queries += 1
            unlinked = [e for e in missing_e if e not in found]
            if unlinked:  # a partner's series on the entry (VICS), not linked yet
                for entry_id, statuses in entry_series_status(self.store, unlinked).items():
                    found[entry_id] = statuses
            keys: list[int | str] = [*missing_e, *missing_s]
            for key in keys:
                cache[key] = tuple(found.get(key, _NONE))
        return cache

    def annotate(
        self, groups: Sequence[Sequence[ExplainedMatch]], source: str
    ) -> list[list[ExplainedMatch]]:
        """Each match of a series says its status; each group is a sighting of its series."""
        entry_ids = {m.entry_id for g in groups for m in g}
        if not entry_ids:
            return [list(g) for g in groups]
        shas = {m.value for g in groups for m in g if m.signal == "sha256"}
        cache = self._statuses(entry_ids, shas)
        out: list[list[ExplainedMatch]] = []
        seen: list[tuple[int, dt.datetime, str]] = []
        now = dt.datetime.now(dt.UTC)
        for group in groups:
            row: list[ExplainedMatch] = []
            sighted: set[int] = set()
            for m in group:
                statuses = cache.get(m.entry_id, _NONE)
                if m.signal == "sha256":
                    statuses = statuses + cache.get(m.value, _NONE)
                if not statuses:
                    row.append(m)
                    continue
                names, text = describe(statuses)
                row.append(replace(m, series=names, identification=text))
                if m.purpose != "allow":
                    sighted.update(s.series_id for s in statuses if s.series_id)
            seen += [(sid, now, source) for sid in sorted(sighted)]
            out.append(row)
        if seen and self.record_sightings:
            self._queue(seen)
        return out

    # --- sightings --------------------------------------------------------------

    def _queue(self, items: list[tuple[int, dt.datetime, str]]) -> None:
        with self._lock:
            self._buffer += items
            full = len(self._buffer) >= MAX_BUFFER
            if self.background and self._thread is None and not self._stop:
                self._thread = threading.Thread(
                    target=self._run, name="ridgeline-sightings", daemon=True
                )
                self._thread.start()
        if full or not self.background:
            if self.background:
                self._wake.set()
            else:
                self.flush()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the store is down: keep the buffer, try again later
                time.sleep(self.flush_s)

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def flush(self) -> int:
        """Write the buffered sightings now (one transaction); returns the rows written."""
        with self._lock:
            items, self._buffer = self._buffer, []
        if not items:
            return 0
        try:
            written, traded = record_sightings(self.store, items)
        except Exception:
            with self._lock:  # nothing is lost: back in front of the queue
                self._buffer[:0] = items
            raise
        if traded:  # a victim's fifth occasion: re-read statuses on the next lookup
            self._cache = {}
            self._cleared = time.monotonic()
        return written

    def close(self) -> None:
        """Stop the background writer and write what is left."""
        self._stop = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        self.flush()
