"""What a match answer may tell a caller who may not read the lists (providers).

Lists are confidential (a perceptual hash can be partly inverted into a thumbnail),
yet a near-match answer is an oracle on a listed hash. Three leaks are closed here
for callers without `lists:read`; list-managing roles see everything as before.

* **Exact distances.** With the distance of each near match, 257 lookups rebuild a
  listed PDQ hash exactly from a near-duplicate: flip one bit at a time and watch
  the distance go up or down. Near matches (threshold above 0) are answered with
  `distance: null`; an exact match still says 0 (it reveals nothing the caller did
  not send).
* **A sharp threshold.** Without distances, walking a query to the edge of the
  threshold and flipping bits there (match or not) leaks the same bits. The edge is
  blurred: in the outer `jitter` share of the threshold a hit is reported only if it
  also passes a per-query threshold drawn from an HMAC of (key, entry, query) with a
  server secret. Asking again gives the same answer, so repeating a query teaches
  nothing; hits deeper than the band are always reported.
* **Probing one entry.** Such walks ask about values a bit or two apart near one
  entry. Hits on an entry whose query lies within `probe_radius` of an earlier hit's
  query by the same key (but is not the same value) are counted; past
  `probe_budget` of them in `probe_window_s`, such probe hits on that entry are no
  longer reported to that key (fresh near-duplicates, far from what it asked before,
  still are) and the server logs a warning. The count is per worker process.
* **Which lists exist.** `list=` naming a list that does not exist answers like a
  list that exists and holds no match, never 404.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ridgeline.service.auth import POLICY
from ridgeline.service.keys import Principal
from ridgeline.signals import get_signal

if TYPE_CHECKING:
    from ridgeline.matching import ExplainedMatch, Matcher
    from ridgeline.signals.base import Query

log = logging.getLogger(__name__)

#: Roles that see exact distances and are told when a named list does not exist.
LIST_READERS = POLICY["lists:read"]
#: (key, entry, signal) records kept per process (oldest dropped first).
MAX_TRACKED = 50_000
#: Earlier hit queries remembered per (key, entry, signal).
RECENT = 32


@dataclass
class _Probes:
    start: float
    count: int = 0
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))


class Disclosure:
    """Applies the rules above to explained matches (see the module doc)."""

    def __init__(
        self,
        secret: bytes,
        *,
        jitter: float = 0.25,
        probe_radius: float = 0.15,
        probe_budget: int = 16,
        probe_window_s: float = 86_400.0,
    ) -> None:
        self.secret = secret
        #: Share of a list's threshold (its outer band) where the edge is blurred.
        self.jitter = jitter
        #: Share of the threshold within which two queries count as one probe walk.
        self.probe_radius = probe_radius
        self.probe_budget = probe_budget
        self.probe_window_s = probe_window_s
        self._probes: OrderedDict[tuple[int, int, str], _Probes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def sees_everything(principal: Principal | None) -> bool:
        """True for callers that may read the lists anyway (or no caller: library use)."""
        return principal is None or principal.role in LIST_READERS

    def filter(self, principal: Principal | None, matches: list[dict[str, Any]]) -> None:
        """Drop or redact, in place, what `principal` may not learn from `matches`."""
        if self.sees_everything(principal) or not matches:
            return
        assert principal is not None
        kept = []
        for m in matches:
            threshold = float(m["threshold"])
            distance = float(m["distance"])
            if threshold <= 0 or distance <= 0:
                kept.append(m)
                continue
            if self._probing(principal, m, threshold) or self._past_edge(
                principal, m, threshold, distance
            ):
                continue
            m["distance"] = None
            kept.append(m)
        matches[:] = kept

    def _past_edge(
        self, principal: Principal, m: dict[str, Any], threshold: float, distance: float
    ) -> bool:
        band = math.ceil(threshold * self.jitter)
        if band <= 0 or distance <= threshold - band:
            return False
        message = f"{principal.key_id}|{m['entry_id']}|{m['signal']}|{m['value']}".encode()
        draw = int.from_bytes(hmac.new(self.secret, message, hashlib.sha256).digest()[:8], "big")
        return distance > threshold - draw % band

    def _probing(self, principal: Principal, m: dict[str, Any], threshold: float) -> bool:
        """Count a hit that walks near earlier ones; True once this key is past its budget."""
        signal = get_signal(str(m["signal"]))
        value = str(m["value"])
        radius = threshold * self.probe_radius
        key = (principal.key_id, int(m["entry_id"]), signal.name)
        now = time.monotonic()
        with self._lock:
            record = self._probes.get(key)
            if record is None or now - record.start > self.probe_window_s:
                record = self._probes[key] = _Probes(now)
                if len(self._probes) > MAX_TRACKED:
                    self._probes.popitem(last=False)
            else:
                self._probes.move_to_end(key)
            if value in record.recent:
                return record.count > self.probe_budget and self._near(signal, value, record)
            probe = self._near(signal, value, record, radius)
            record.recent.append(value)
            if not probe:
                return False
            record.count += 1
            if record.count == self.probe_budget + 1:
                log.warning(
                    "key %r probes entry %s near its %s threshold: %d hits a few bits "
                    "apart; further ones are not reported to it",
                    principal.name,
                    m["entry_id"],
                    signal.name,
                    record.count,
                )
            return record.count > self.probe_budget

    @staticmethod
    def _near(signal: Any, value: str, record: _Probes, radius: float = math.inf) -> bool:
        return any(
            0 < signal.distance(value, seen) <= radius for seen in record.recent if seen != value
        )


def match_hiding_lists(
    matcher: Matcher, queries: list[Query], lists: Sequence[str] | None, principal: Principal | None
) -> list[ExplainedMatch]:
    """`matcher.match`, except that for a caller who may not learn which lists exist a
    name that is no list is dropped silently: the answer is that of a list that exists
    and holds no match (only allow lists left, if no named list exists)."""
    from ridgeline.errors import NotFound

    try:
        return list(matcher.match(queries, lists or None))
    except NotFound:
        if not lists or Disclosure.sees_everything(principal):
            raise
    from ridgeline.lists.models import HashList

    with matcher.store.session() as s:
        known = set(s.scalars(select(HashList.name).where(HashList.name.in_(list(lists)))))
    remaining = [n for n in lists if n in known]
    matches = list(matcher.match(queries, remaining or None))
    return matches if remaining else [m for m in matches if m.purpose == "allow"]
