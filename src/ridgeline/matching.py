"""One match type and one matcher: what `match`, `scan`, the service and report drafts use.

`Matcher.match(queries)` looks the queries up in the shared memory-mapped
`ridgeline.index.MatchIndex` and explains every hit from the store (classifications,
provenance), giving `ExplainedMatch` values with one JSON form. Computed signals
become queries through their signal type (`queries_for`), so nothing here knows a
signal by name. Refresh timing belongs to the index; the matcher only drops its
explanation cache when the index reports changes.

Layering: signals < index < lists < matching < review/audit/exchange < scan <
service/cli (the store's `Entry` is read directly, as the index reads it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ridgeline.errors import UnknownSignal
from ridgeline.index import Match, MatchIndex
from ridgeline.lists.core import SELF_SUBMITTED
from ridgeline.lists.models import Entry
from ridgeline.signals import all_signals, get_signal
from ridgeline.signals.base import Query, SignalValue
from ridgeline.store import Store

__all__ = [
    "Annotator",
    "Classification",
    "ExplainedMatch",
    "Matcher",
    "Provenance",
    "Query",
    "queries_for",
]

#: Explanations (classification, provenance) are re-read at least this often.
EXPLAIN_TTL_S = 30.0


@dataclass(frozen=True)
class Classification:
    """A label with its scheme (CONVENTIONS: never a bare code)."""

    scheme: str
    label: str

    def to_json(self) -> dict[str, str]:
        return {"scheme": self.scheme, "label": self.label}


@dataclass(frozen=True)
class Provenance:
    """Where a matched entry came from."""

    source: str | None = None
    origin_list: str | None = None
    origin_member: str | None = None
    origin_entry_id: str | None = None
    import_batch: str | None = None
    submitted_by: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return dict(self._json)

    @cached_property
    def _json(self) -> dict[str, str | None]:
        # built once per entry explanation: every match of the entry shares it
        return {
            "source": self.source,
            "origin_list": self.origin_list,
            "origin_member": self.origin_member,
            "origin_entry_id": self.origin_entry_id,
            "import_batch": self.import_batch,
            "submitted_by": self.submitted_by,
        }


@dataclass(frozen=True)
class ExplainedMatch:
    """One match, explained: which list and entry, by which query, how far, and why it counts.

    The one match type of Ridgeline; `to_json` is its only wire form (CLI rows, scan
    records and report drafts, the HTTP API). `series` and `identification` are left
    None until an `Annotator` that knows them (the victims registry) fills them in.
    """

    list_name: str
    list_id: int
    entry_id: int
    signal: str
    #: The canonical query value that matched, and its variant ("" as given; a
    #: dihedral variant name or frame label otherwise).
    value: str
    variant: str
    distance: float
    threshold: float
    purpose: str
    classifications: tuple[Classification, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)
    #: True while flood control holds the entry (its matches fire no actions).
    held: bool = False
    series: tuple[str, ...] | None = None
    identification: str | None = None

    @property
    def review(self) -> bool:
        """Only a person may act on this match: the entry is a self-submitted hash
        (`ridgeline.submit`), which came with no media and was never reviewed."""
        return self.purpose == SELF_SUBMITTED

    def to_json(self) -> dict[str, Any]:
        distance, threshold = self.distance, self.threshold
        out: dict[str, Any] = {
            "list": self.list_name,
            "list_id": self.list_id,
            "purpose": self.purpose,
            "entry_id": self.entry_id,
            "signal": self.signal,
            "value": self.value,
            "variant": self.variant,
            "distance": int(distance) if distance.is_integer() else distance,
            "threshold": int(threshold) if threshold.is_integer() else threshold,
            "classifications": [
                {"scheme": c.scheme, "label": c.label} for c in self.classifications
            ],
            "provenance": self.provenance.to_json(),
            "held": self.held,
        }
        if self.series is not None:
            out["series"] = list(self.series)
        if self.identification is not None:
            out["identification"] = self.identification
        if self.review:
            out["review"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExplainedMatch:
        """Read `to_json` output back (scan records, report drafts)."""
        series = data.get("series")
        return cls(
            list_name=str(data["list"]),
            list_id=int(data["list_id"]),
            entry_id=int(data["entry_id"]),
            signal=str(data["signal"]),
            value=str(data.get("value", "")),
            variant=str(data.get("variant", "")),
            distance=float(data["distance"]),
            threshold=float(data["threshold"]),
            purpose=str(data["purpose"]),
            classifications=tuple(
                Classification(c["scheme"], c["label"]) for c in data.get("classifications") or []
            ),
            provenance=Provenance(**(data.get("provenance") or {})),
            held=bool(data.get("held", False)),
            series=tuple(series) if series is not None else None,
            identification=data.get("identification"),
        )

    def with_held(self, held: bool) -> ExplainedMatch:
        return self if held == self.held else replace(self, held=held)


_UNEXPLAINED: tuple[tuple[Classification, ...], Provenance] = ((), Provenance())


def queries_for(signals: Mapping[str, SignalValue], *, dihedral: bool = False) -> list[Query]:
    """Turn computed values (`HashResult.signals`) into lookups, as each signal says."""
    out: list[Query] = []
    for name, value in signals.items():
        try:
            signal = get_signal(name)
        except UnknownSignal:
            continue
        out.extend(signal.queries(value, dihedral=dihedral))
    return out


class Annotator(Protocol):
    """Adds what a higher layer knows to explained matches (e.g. series, identification).

    The front ends (CLI, service, demo) hand the matcher one; lower layers never import
    its implementation. `annotate` gets every group of one lookup at once (so it can
    answer them in one batched query) and returns them, each match replaced or kept.
    `source` says who matched (e.g. `match`, `scan`, `service`), for what it records.
    """

    def annotate(
        self, groups: Sequence[Sequence[ExplainedMatch]], source: str
    ) -> list[list[ExplainedMatch]]: ...


@dataclass
class Matcher:
    """Looks queries up in the index and explains every hit from the store."""

    store: Store
    index: MatchIndex
    #: Entries held by flood control (set by whoever reads the holds: service, CLI).
    held: frozenset[int] = frozenset()
    #: Called once per lookup that found anything (see `Annotator`); None: no annotation.
    annotator: Annotator | None = None
    #: What `annotator` is told matched (`match`, `service`, ...).
    source: str = "match"
    _explain_cache: dict[int, tuple[tuple[Classification, ...], Provenance]] = field(
        default_factory=dict, init=False
    )
    _explain_cleared: float = field(default_factory=time.monotonic, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.index.add_listener(self._changed)

    @classmethod
    def open(cls, store: Store, index_dir: str | None = None, **index_options: Any) -> Matcher:
        """A matcher over the shared index of `store` (options go to `MatchIndex.open`)."""
        return cls(store, MatchIndex.open(store, index_dir, **index_options))

    def _changed(self, changes: int) -> None:
        """Index listener: entries changed, so their explanations may have too."""
        now = time.monotonic()
        if changes or now - self._explain_cleared > EXPLAIN_TTL_S:
            with self._lock:  # a new dict: a lookup in another thread keeps the one it has
                self._explain_cache = {}
                self._explain_cleared = now

    def refresh(self) -> int:
        """Bring the index up to date now (after a write that must match at once)."""
        return self.index.refresh()

    def age(self) -> float:
        """Seconds since the index was last brought up to date."""
        return self.index.age()

    def preload(self, signals: Iterable[str] | None = None) -> list[str]:
        """Open (or build) each signal's index now, not on a request.

        Returns the signals that could not be loaded (they load on first use instead).
        """
        failed = []
        for name in signals if signals is not None else list(all_signals()):
            try:
                self.index.load([name])
            except Exception:  # an optional plug-in's index must not keep the server down
                failed.append(name)
        return failed

    def match(
        self, queries: Iterable[Query], lists: Sequence[str] | None = None
    ) -> list[ExplainedMatch]:
        """Explained matches for all queries, the closest per entry and signal, best first."""
        return self.match_each([list(queries)], lists)[0]

    def match_each(
        self, groups: Sequence[Sequence[Query]], lists: Sequence[str] | None = None
    ) -> list[list[ExplainedMatch]]:
        """`match` for each group of queries (one content each), in one lookup per signal."""
        by_signal: dict[str, list[tuple[int, Query]]] = {}
        for g, group in enumerate(groups):
            for q in group:
                by_signal.setdefault(q.signal, []).append((g, q))
        found: list[list[tuple[Query, Match]]] = [[] for _ in groups]
        for signal, pairs in by_signal.items():
            hits = self.index.match(
                signal,
                [q.value for _, q in pairs],
                lists=list(lists) if lists else None,
                qualities=[q.quality for _, q in pairs],
            )
            for (g, q), row in zip(pairs, hits, strict=True):
                found[g].extend((q, h) for h in row)
        if not any(found):
            return [[] for _ in groups]
        explained = self._explain({h.entry_id for group in found for _, h in group})
        out = [self._explained(group, explained) for group in found]
        annotator = self.annotator
        return out if annotator is None else annotator.annotate(out, self.source)

    def _explained(
        self,
        found: list[tuple[Query, Match]],
        explained: dict[int, tuple[tuple[Classification, ...], Provenance]],
    ) -> list[ExplainedMatch]:
        held = self.held
        best: dict[tuple[int, str], ExplainedMatch] = {}
        for q, h in found:
            key = (h.entry_id, h.signal)
            old = best.get(key)
            if old is not None and old.distance <= h.distance:
                continue
            classes, provenance = explained.get(h.entry_id, _UNEXPLAINED)
            best[key] = ExplainedMatch(
                h.list_name,
                h.list_id,
                h.entry_id,
                h.signal,
                q.value,
                q.variant,
                h.distance,
                h.threshold,
                h.purpose,
                classes,
                provenance,
                h.entry_id in held,
            )
        return sorted(best.values(), key=lambda m: (m.distance, m.list_name, m.entry_id))

    def _explain(
        self, entry_ids: set[int]
    ) -> dict[int, tuple[tuple[Classification, ...], Provenance]]:
        cache = self._explain_cache
        missing = [i for i in entry_ids if i not in cache]
        if missing:
            with self.store.session() as s:
                for entry in s.scalars(
                    select(Entry).options(selectinload(Entry.batch)).where(Entry.id.in_(missing))
                ):
                    cache[entry.id] = (
                        tuple(
                            Classification(c["scheme"], c["label"])
                            for c in entry.classifications or []
                        ),
                        Provenance(
                            source=entry.source,
                            origin_list=entry.origin_list,
                            origin_member=entry.origin_member,
                            origin_entry_id=entry.origin_entry_id,
                            import_batch=entry.batch_name,
                            submitted_by=entry.submitter,
                        ),
                    )
        return {i: cache[i] for i in entry_ids if i in cache}

    def close(self) -> None:
        self.index.close()
