"""`MatchIndex`: the store-backed index every lookup goes through.

Per signal, a main index is memory-mapped from a file (built from the store when the
file is missing, stale or corrupt). Changes reach it through the store's `changes`
feed: a changed entry is tombstoned in the main index and, if still matchable, put in
a small in-memory delta that is searched alongside. A background compaction folds the
delta into a new main file once it grows, and swaps it in atomically. List settings
(enabled, thresholds, purpose) are read at query time, so a disabled list never
matches even before its entries are touched.

Nothing here branches on a signal's name: the signal's `index_kind` picks the engine
(`_ENGINES`), and the signal says how its values become keys (`index_keys`,
`query_keys`, `encode_keys`), which qualities are matched and, for "frames256"
signals such as vPDQ, how a candidate is confirmed. The index alone owns refresh
timing: `match` polls the change feed when it is older than `refresh_interval`, or a
background thread (`start_refresh`) does and tells its listeners.

Matchable is `ridgeline.lists.matchable`'s rule: its entry part
(`entry_matchable_clause`) selects the rows, the list's `enabled` is checked at query
time, and `timed_disables` says when a disabled entry becomes matchable on its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import LargeBinary, Text, and_, cast, false, func, literal, or_, select
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput, NotFound, RidgelineError
from ridgeline.index.engines import EuclideanIndex, ExactIndex
from ridgeline.index.fileformat import CorruptIndex, IndexFile, write_index_file
from ridgeline.index.hamming import HammingIndex, SearchResult, default_threads
from ridgeline.index.pack import Pack, covered_ranges, gaps, packable, valid_packs
from ridgeline.lists.matchable import entry_matchable_clause, timed_disables
from ridgeline.lists.models import Change, Entry, EntrySignal, HashList, stored_value
from ridgeline.signals import SignalType, get_signal
from ridgeline.signals.base import IndexKind
from ridgeline.store import Store
from ridgeline.timeutil import as_utc, isoformat, parse_iso, utcnow

log = logging.getLogger(__name__)

FILE_SUFFIX = ".rlidx"
#: More changed entries than this in one refresh rebuild the index from the store.
BULK_REBUILD = 200_000
_CHUNK = 900  # ids per SQL IN (...) clause
#: The engine for each `SignalType.index_kind`.
_ENGINES: dict[IndexKind, Any] = {
    "hamming256": HammingIndex,
    "frames256": HammingIndex,
    "exact": ExactIndex,
    "l2": EuclideanIndex,
}
#: A background refresher that stalls lets `match` refresh inline after this long.
STALL_S = 2.0


@dataclass(frozen=True)
class Match:
    """One raw hit of the index: which list and entry, how far, under which threshold.

    `ridgeline.matching.Matcher` turns these into `ExplainedMatch`, the one match type
    callers see (with classifications and provenance from the store).
    """

    list_name: str
    list_id: int
    entry_id: int
    signal: str
    distance: float
    threshold: float
    purpose: str
    #: Index of the dihedral variant that matched (`match_dihedral` only).
    query_variant: int | None = None


@dataclass(frozen=True)
class ListInfo:
    """The list settings matching needs, reloaded when the feed says a list changed."""

    id: int
    name: str
    purpose: str
    enabled: bool
    thresholds: dict[str, float]

    def threshold(self, signal: str) -> float:
        value = self.thresholds.get(signal)
        return float(get_signal(signal).default_threshold if value is None else value)


def rows_for(signal: SignalType, keys: Sequence[str]) -> np.ndarray:
    """Index keys as engine rows (2-D uint8, `key_width` bytes each), as the signal encodes them."""
    width = signal.key_width
    if not keys:
        return np.zeros((0, width), dtype=np.uint8)
    raw = signal.encode_keys(keys)
    if len(raw) != width * len(keys):  # a plug-in whose key_width and encode_keys disagree
        raise RidgelineError(
            f"signal {signal.name}: encode_keys gave {len(raw)} bytes for {len(keys)} keys "
            f"of key_width {width}"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(keys), width).copy()


def default_directory(store: Store) -> Path:
    """Next to a SQLite database (`<db>.index/`), else in the user cache directory."""
    url = store.engine.url
    if store.dialect == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        return db.with_name(db.name + ".index")
    import platformdirs

    digest = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("ridgeline")) / "index" / digest


def store_id(store: Store) -> str:
    """Names the database an index file or pack was built from (its URL, hashed)."""
    return hashlib.sha256(
        store.engine.url.render_as_string(hide_password=True).encode()
    ).hexdigest()[:16]


def _chunks(items: Iterable[int], size: int = _CHUNK) -> Iterator[list[int]]:
    batch: list[int] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _RowCollector:
    """Turns (entry, list, value, quality) rows from SQL into engine rows.

    Values are packed into numpy chunks as they arrive, so a 10M-row build never holds
    10M Python strings at once.
    """

    CHUNK_ROWS = 250_000

    def __init__(self, signal: SignalType) -> None:
        self.signal = signal
        #: The default `index_keys` (the value itself, behind the quality gate) is inlined:
        #: a 10M-row build calls `add` 10M times.
        self._one_key = type(signal).index_keys is SignalType.index_keys
        self._min_quality = signal.min_quality
        self.entries: list[int] = []
        self.lists: list[int] = []
        self.values: list[str] = []
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, entry_id: int, list_id: int, value: str, quality: int | None) -> None:
        if self._one_key:
            gate = self._min_quality
            if gate is not None and quality is not None and quality < gate:
                return  # CONVENTIONS: low-quality hashes are not matched
            keys = [value]
        else:
            keys = self.signal.index_keys(value, quality)  # frames; none if unreadable
        if len(keys) == 1:
            self.entries.append(entry_id)
            self.lists.append(list_id)
            self.values.append(keys[0])
        elif keys:
            self.entries.extend([entry_id] * len(keys))
            self.lists.extend([list_id] * len(keys))
            self.values.extend(keys)
        if len(self.values) >= self.CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.values:
            return
        if min(self.entries) < 0 or max(self.entries) >= 2**32:
            raise BadInput("entry ids beyond 32 bits cannot be indexed")
        self._chunks.append(
            (
                rows_for(self.signal, self.values),
                np.asarray(self.entries, dtype=np.uint32),
                np.asarray(self.lists, dtype=np.uint32),
            )
        )
        self.entries, self.lists, self.values = [], [], []

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._flush()
        if not self._chunks:
            empty = np.zeros(0, dtype=np.uint32)
            return rows_for(self.signal, []), empty, empty
        if len(self._chunks) == 1:
            return self._chunks[0]
        rows, entries, lists = zip(*self._chunks, strict=True)
        return np.concatenate(rows), np.concatenate(entries), np.concatenate(lists)


class _PackedRows:
    """The index rows of a `hex_keys` signal read as packed bytes, not row by row.

    A per-row Python loop made a 1M-row build take 23 s (issue 10). For a signal whose
    stored key is its index key, the database concatenates the keys of a range of
    entries into one blob, and their entry and list ids into one text each
    (`group_concat` on SQLite, `string_agg` on PostgreSQL: the aggregates of one query
    see the rows in the same order), which numpy turns into the engine's arrays. Rows
    it cannot take (a key stored with its text, a key of another width) stay with
    `_RowCollector`; the quality gate is the same rule in SQL.
    """

    #: Entry ids per aggregate query (about 45 bytes per row come back): small enough
    #: that the ranges spread over the reading threads, big enough that each query's
    #: setup is noise.
    ID_RANGE = 500_000

    def __init__(self, signal: SignalType) -> None:
        self.signal = signal
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        #: With packs: the entry id ranges (inclusive) no pack holds, read from SQL.
        self.gaps: list[tuple[int, int]] | None = None

    @staticmethod
    def applies(signal: SignalType) -> bool:
        return packable(signal)

    def condition(self) -> Any:
        """The rows this reader takes (the rest go through `_RowCollector`)."""
        width = self.signal.key_width
        cond = and_(EntrySignal.text_value.is_(None), func.length(EntrySignal.key) == width)
        gate = self.signal.min_quality
        if gate is not None:  # below the gate: neither reader indexes it
            cond = and_(cond, or_(EntrySignal.quality.is_(None), EntrySignal.quality >= gate))
        return cond

    def read(
        self,
        session: Session,
        now: dt.datetime,
        sessions: Callable[[], AbstractContextManager[Session]] | None = None,
        threads: int = 1,
        covered: Sequence[tuple[int, int]] = (),
    ) -> None:
        """Read the ranges, on `threads` connections from `sessions` when given.

        Entries in `covered` (id ranges, inclusive, that import packs hold) are not read.

        The database does the work inside one statement per range (the driver lets
        go of the GIL meanwhile), so ranges on two connections use two cores. A range
        read after `session` took the feed's seq is at least as new as that seq; the
        feed re-reads whatever changed after it, as it did with one connection.
        """
        # All signals' bounds: min/max over the indexed column alone is two index
        # lookups, with the signal filter it was a scan of the whole table.
        low, high = session.execute(
            select(func.min(EntrySignal.entry_id), func.max(EntrySignal.entry_id))
        ).one()
        if low is None:
            return
        if low < 0 or high >= 2**32:
            raise BadInput("entry ids beyond 32 bits cannot be indexed")
        ranges = [(int(low), int(high))]
        if covered:
            ranges = self.gaps = gaps(int(low), int(high), covered)
        spans = [
            (start, last + 1) for a, b in ranges for start, last in _split(a, b, self.ID_RANGE)
        ]
        postgres = session.get_bind().dialect.name == "postgresql"
        if sessions is None or threads <= 1 or len(spans) <= 1:
            parts = [self._read_range(session, postgres, now, span) for span in spans]
        else:

            def one(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
                with sessions() as own:
                    return self._read_range(own, postgres, now, span)

            with ThreadPoolExecutor(max_workers=min(threads, len(spans))) as pool:
                parts = list(pool.map(one, spans))
        self.parts.extend(p for p in parts if p is not None)

    def _read_range(
        self, session: Session, postgres: bool, now: dt.datetime, span: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """One aggregate query: the rows of entries [start, end) of `span`."""
        start, end = span
        signal = self.signal.name
        if postgres:
            from sqlalchemy.dialects.postgresql import aggregate_order_by

            def agg(column: Any, sep: Any) -> Any:
                return func.string_agg(column, aggregate_order_by(sep, EntrySignal.id))

            columns = [
                agg(EntrySignal.key, literal(b"", LargeBinary)),
                agg(cast(EntrySignal.entry_id, Text), literal(",")),
                agg(cast(Entry.list_id, Text), literal(",")),
            ]
        else:
            columns = [
                cast(func.group_concat(EntrySignal.key, literal("")), LargeBinary),
                func.group_concat(EntrySignal.entry_id, literal(",")),
                func.group_concat(Entry.list_id, literal(",")),
            ]
        width = self.signal.key_width
        stmt = (
            select(*columns)
            .join(Entry, Entry.id == EntrySignal.entry_id)
            .where(
                EntrySignal.signal == signal,
                EntrySignal.entry_id >= start,
                EntrySignal.entry_id < end,
                entry_matchable_clause(now),
                self.condition(),
            )
        )
        keys, entry_ids, list_ids = session.execute(stmt).one()
        if not entry_ids:
            return None
        entries = np.fromstring(entry_ids, dtype=np.uint32, sep=",")
        lists = np.fromstring(list_ids, dtype=np.uint32, sep=",")
        if len(keys) != width * len(entries) or len(lists) != len(entries):
            raise RidgelineError(
                f"index build of {signal}: {len(keys)} key bytes for {len(entries)} rows"
            )
        rows = np.frombuffer(bytes(keys), dtype=np.uint8).reshape(len(entries), width)
        return rows, entries, lists

    def merge(
        self, rows: np.ndarray, entries: np.ndarray, lists: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """These rows and the collector's, in entry order as the row-by-row build was."""
        if not self.parts:
            return rows, entries, lists
        parts = [*self.parts, (rows, entries, lists)] if len(entries) else self.parts
        all_rows = np.concatenate([p[0] for p in parts])
        all_entries = np.concatenate([p[1] for p in parts])
        all_lists = np.concatenate([p[2] for p in parts])
        if len(all_entries) > 1 and bool(np.any(all_entries[1:] < all_entries[:-1])):
            order = np.argsort(all_entries, kind="stable")
            all_rows, all_entries, all_lists = all_rows[order], all_entries[order], all_lists[order]
        return all_rows, all_entries, all_lists


def _split(a: int, b: int, size: int) -> Iterator[tuple[int, int]]:
    """[a, b] (inclusive) as inclusive pieces of at most `size` ids."""
    for start in range(a, b + 1, size):
        yield start, min(start + size - 1, b)


def _changed_entries(rows: Sequence[Any]) -> set[int]:
    """Entry ids named by change rows `(entry_id, last_entry_id)`: one id, or a range
    of a bulk insert. Stops past `BULK_REBUILD` ids (the caller rebuilds then)."""
    out: set[int] = set()
    for first, last in rows:
        if first is None:
            continue
        if last is None:
            out.add(int(first))
        else:
            room = BULK_REBUILD + 1 - len(out)
            out.update(range(int(first), min(int(last), int(first) + max(room, 0)) + 1))
        if len(out) > BULK_REBUILD:
            break
    return out


def _rows_statement(signal: str, now: dt.datetime, entry_ids: Sequence[int] | None = None) -> Any:
    stmt = (
        select(
            EntrySignal.entry_id,
            Entry.list_id,
            EntrySignal.key,
            EntrySignal.text_value,
            EntrySignal.quality,
        )
        .join(Entry, Entry.id == EntrySignal.entry_id)
        .where(EntrySignal.signal == signal, entry_matchable_clause(now))
    )
    if entry_ids is not None:
        stmt = stmt.where(EntrySignal.entry_id.in_(entry_ids))
    return stmt.order_by(EntrySignal.entry_id, EntrySignal.id)


@dataclass
class _Delta:
    gen: int
    list_id: int
    rows: np.ndarray


@dataclass
class SignalIndex:
    """One signal's main index (usually memory-mapped) plus tombstones and a delta."""

    signal: str
    kind: IndexKind
    main: Any
    entries: np.ndarray
    lists: np.ndarray
    file: IndexFile | None = None
    seq: int = 0
    gen: int = 0
    #: (tombstones: entry -> generation, delta: entry -> rows), replaced as one tuple so
    #: a search in another thread always sees a consistent pair.
    state: tuple[dict[int, int], dict[int, _Delta]] = field(default_factory=lambda: ({}, {}))
    _view: tuple[dict[int, _Delta], Any, np.ndarray, np.ndarray] | None = None

    @property
    def tomb(self) -> dict[int, int]:
        return self.state[0]

    @property
    def delta(self) -> dict[int, _Delta]:
        return self.state[1]

    def delta_rows(self) -> int:
        return sum(len(d.rows) for d in self.delta.values())

    def delta_view(
        self, delta: dict[int, _Delta] | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray] | None:
        """The delta as an engine (rebuilt lazily after changes), or None when empty."""
        if delta is None:
            delta = self.delta
        if not delta:
            return None
        view = self._view
        if view is None or view[0] is not delta:
            parts = list(delta.items())
            rows = np.concatenate([d.rows for _, d in parts])
            entries = np.concatenate([np.full(len(d.rows), e, dtype=np.uint32) for e, d in parts])
            lists = np.concatenate(
                [np.full(len(d.rows), d.list_id, dtype=np.uint32) for _, d in parts]
            )
            view = (delta, _ENGINES[self.kind].build(rows), entries, lists)
            self._view = view
        return view[1], view[2], view[3]

    def search(
        self, queries: np.ndarray, radius: float, threads: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(query, entry, list, raw distance) for main minus tombstones, plus the delta."""
        tomb, delta = self.state
        view = self.delta_view(delta)
        res = self.main.search(queries, radius, threads=threads, sort=False)
        q, e, li, d = res.query, self.entries[res.row], self.lists[res.row], res.distance
        if tomb and len(e):
            keep = np.fromiter((int(x) not in tomb for x in e), dtype=bool, count=len(e))
            q, e, li, d = q[keep], e[keep], li[keep], d[keep]
        if view is not None:
            engine, de, dl = view
            r2: SearchResult = engine.search(queries, radius, threads=1, sort=False)
            if len(r2):
                q = np.concatenate([q, r2.query])
                e = np.concatenate([e, de[r2.row]])
                li = np.concatenate([li, dl[r2.row]])
                d = np.concatenate([d, r2.distance])
        return q, e, li, d


class MatchIndex:
    """Exact matching of hashes against every enabled list, kept current from the store."""

    def __init__(
        self,
        store: Store,
        directory: Path,
        *,
        refresh_interval: float = 0.25,
        background_refresh: bool = False,
        compact_rows: int = 50_000,
        threads: int | None = None,
        auto_compact: bool = True,
    ) -> None:
        self.store = store
        self.directory = Path(directory)
        #: How stale results may get: the change feed is read at least this often.
        self.refresh_interval = refresh_interval
        #: A thread (`start_refresh`) reads the feed; `match` does only if it stalls.
        self.background_refresh = background_refresh
        #: Called with the number of changes read after every refresh.
        self._listeners: list[Callable[[int], None]] = []
        self._refresh_stop = threading.Event()
        self._refresh_thread: threading.Thread | None = None
        #: The background refresher's last failure (None once a refresh succeeds).
        self.refresh_error: str | None = None
        self.compact_rows = compact_rows
        self.threads = threads or default_threads()
        self.auto_compact = auto_compact
        self._lock = threading.RLock()
        self._compact_lock = threading.Lock()
        self._signals: dict[str, SignalIndex] = {}
        self._lists: dict[int, ListInfo] = {}
        self._seq = 0
        self._gaps: dict[int, float] = {}
        self._pending_until: dict[int, dt.datetime] = {}
        #: Time up to which expired disables have been applied (open or last refresh).
        self._as_of = utcnow()
        self._last_refresh = 0.0
        self._last_file_check = 0.0
        self._compactor: threading.Thread | None = None
        #: Why a signal's file was rebuilt instead of used, by signal.
        self.rebuilt: dict[str, str] = {}
        #: Rows the last build of each signal took from import packs instead of SQL.
        self.from_packs: dict[str, int] = {}
        #: Names the database a file was built from (its URL, without password, hashed).
        self._store_id = store_id(store)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, store: Store, directory: Path | str | None = None, **options: Any) -> MatchIndex:
        """Open the index for `store`; signals load (or build) on first use."""
        index = cls(store, Path(directory) if directory else default_directory(store), **options)
        with store.session() as session:
            index._seq = int(session.scalar(select(func.coalesce(func.max(Change.seq), 0))) or 0)
            index._load_lists(session)
            index._load_pending(session)
        index._last_refresh = time.monotonic()
        return index

    def path_for(self, signal: str) -> Path:
        return self.directory / f"{signal}{FILE_SUFFIX}"

    def load(self, signals: Iterable[str]) -> None:
        """Load (or build) the named signals now rather than on first query."""
        for name in signals:
            self._signal_index(get_signal(name).name)

    def _signal_index(self, signal: str) -> SignalIndex:
        with self._lock:
            si = self._signals.get(signal)
            if si is None:
                si = self._load_signal(signal)
                self._signals[signal] = si
            return si

    def _load_signal(self, signal: str) -> SignalIndex:
        path = self.path_for(signal)
        try:
            si = self._from_file(signal, IndexFile.open(path))
        except FileNotFoundError:
            return self._build_signal(signal)
        except CorruptIndex as exc:
            log.warning("rebuilding %s index: %s", signal, exc)
            self.rebuilt[signal] = str(exc)
            return self._build_signal(signal)
        return si

    def _from_file(self, signal: str, f: IndexFile) -> SignalIndex:
        """A verified file as a SignalIndex, caught up with the feed since its seq."""
        h = f.header
        kind = get_signal(signal).index_kind
        if h.get("signal") != signal or h.get("kind") != kind:
            raise CorruptIndex(f"{f.path}: holds {h.get('signal')}/{h.get('kind')}")
        if h.get("store") != self._store_id:
            raise CorruptIndex(f"{f.path}: built from another database")
        try:
            main = _ENGINES[kind].from_sections(f.arrays, h.get("params", {}))
            entries, lists = f.arrays["entries"], f.arrays["lists"]
        except (KeyError, ValueError) as exc:
            raise CorruptIndex(f"{f.path}: {exc}") from None
        if len(entries) != len(main) or len(lists) != len(main):
            raise CorruptIndex(f"{f.path}: row arrays disagree with the index")
        seq = int(h.get("seq", 0))
        with self.store.session() as session:
            if seq:
                at = session.scalar(select(Change.at).where(Change.seq == seq))
                if at is None or isoformat(at) != h.get("seq_at"):
                    raise CorruptIndex(f"{f.path}: built from another database (seq {seq})")
            si = SignalIndex(signal, kind, main, entries, lists, f, seq)
            changed = _changed_entries(
                session.execute(
                    select(Change.entry_id, Change.last_entry_id).where(
                        Change.seq > seq, Change.entry_id.is_not(None)
                    )
                ).all()
            )
            now = utcnow()
            built_at = h.get("built_at")
            if isinstance(built_at, str):  # disables that expired since the file was built
                ended = timed_disables(ending_after=parse_iso(built_at), ending_by=now)
                changed.update(int(e) for e, _ in session.execute(ended))
            if len(changed) > BULK_REBUILD:
                raise CorruptIndex(f"{f.path}: {len(changed)} changes behind; rebuilding")
            if changed:
                self._apply(si, session, changed, now)
        return si

    def _build_signal(self, signal: str) -> SignalIndex:
        """Read every matchable row of `signal` from the store, build, write the file."""
        sig = get_signal(signal)
        kind = sig.index_kind
        now = utcnow()
        collector = _RowCollector(sig)
        packed = _PackedRows(sig) if _PackedRows.applies(sig) else None
        packs: list[Pack] = []
        with self.store.session() as session:
            seq = int(session.scalar(select(func.coalesce(func.max(Change.seq), 0))) or 0)
            seq_at = session.scalar(select(Change.at).where(Change.seq == seq)) if seq else None
            stmt = _rows_statement(signal, now)
            if packed is not None:
                # Read in the session that took `seq`: a pack checked here is as new as it.
                packs = valid_packs(session, default_directory(self.store), sig, self._store_id)
                covered = covered_ranges(packs)
                packed.read(session, now, self._sessions_for_threads(), self.threads, covered)
                stmt = stmt.where(~packed.condition())  # only the rows it cannot take
                if packed.gaps is not None:  # and only where no pack holds the entries
                    stmt = stmt.where(
                        or_(*(EntrySignal.entry_id.between(a, b) for a, b in packed.gaps), false())
                    )
                packed.parts.extend((p.rows, p.entries, p.lists()) for p in packs)
            self.from_packs[signal] = sum(len(p.entries) for p in packs)
            if packed is None or packed.gaps != []:  # [] : the packs hold every entry
                result = session.execute(stmt.execution_options(yield_per=50_000))
                for entry_id, list_id, key, text, quality in result:
                    collector.add(entry_id, list_id, stored_value(key, text), quality)
        rows, entries, lists = collector.arrays()
        if packed is not None:
            rows, entries, lists = packed.merge(rows, entries, lists)
        si = self._write_and_open(
            signal, kind, rows, entries, lists, seq, isoformat(seq_at), built_at=now
        )
        if si.file is not None:  # the index file holds the packs' rows now
            for p in packs:
                p.path.unlink(missing_ok=True)
        return si

    def _sessions_for_threads(self) -> Callable[[], AbstractContextManager[Session]] | None:
        """`store.session` when other threads' connections see this database (not an
        in-memory SQLite one, which is each connection's own)."""
        url = self.store.engine.url
        if url.get_backend_name() == "sqlite":
            db = url.database or ""
            if db in ("", ":memory:") or "mode=memory" in str(url):
                return None
        return self.store.session

    def _write_and_open(
        self,
        signal: str,
        kind: IndexKind,
        rows: np.ndarray,
        entries: np.ndarray,
        lists: np.ndarray,
        seq: int,
        seq_at: str | None,
        *,
        built_at: dt.datetime,
    ) -> SignalIndex:
        main = _ENGINES[kind].build(rows, threads=self.threads)
        header = {
            "signal": signal,
            "kind": kind,
            "store": self._store_id,
            "rows": len(main),
            "seq": seq,
            "seq_at": seq_at,
            "built_at": isoformat(built_at),
            "params": main.params(),
            "created_at": isoformat(utcnow()),
        }
        sections = {**main.sections(), "entries": entries, "lists": lists}
        path = self.path_for(signal)
        try:
            write_index_file(path, header, sections)
            f = IndexFile.open(path, verify=False)  # just written: share it via the mmap
            main = _ENGINES[kind].from_sections(f.arrays, f.header["params"])
            return SignalIndex(signal, kind, main, f.arrays["entries"], f.arrays["lists"], f, seq)
        except OSError as exc:
            log.warning("cannot write %s (%s); keeping the index in memory only", path, exc)
            return SignalIndex(signal, kind, main, entries, lists, None, seq)

    # ------------------------------------------------------------------ lists

    def _load_lists(self, session: Session) -> None:
        self._lists = {
            hl.id: ListInfo(
                hl.id,
                hl.name,
                hl.purpose,
                bool(hl.enabled),
                {k: float(v) for k, v in (hl.thresholds or {}).items() if v is not None},
            )
            for hl in session.scalars(select(HashList))
        }

    def _load_pending(self, session: Session) -> None:
        """Entries disabled until a future time: they become matchable without a change row."""
        now = self._as_of = utcnow()
        stmt = timed_disables(ending_after=now)
        self._pending_until = {int(i): as_utc(u) for i, u in session.execute(stmt) if u is not None}

    def _update_pending(self, session: Session, entry_ids: Iterable[int], now: dt.datetime) -> None:
        for chunk in _chunks(sorted(entry_ids)):
            for eid in chunk:
                self._pending_until.pop(eid, None)
            for eid, until in session.execute(timed_disables(entry_ids=chunk)):
                if until is not None and as_utc(until) > now:
                    self._pending_until[int(eid)] = as_utc(until)

    # ------------------------------------------------------------------ updates

    def _apply(
        self, si: SignalIndex, session: Session, entry_ids: Iterable[int], now: dt.datetime
    ) -> None:
        """Re-read the changed entries: tombstone their old rows, delta their new ones."""
        ids = sorted(set(entry_ids))
        collector = _RowCollector(get_signal(si.signal))
        for chunk in _chunks(ids):
            for entry_id, list_id, key, text, quality in session.execute(
                _rows_statement(si.signal, now, chunk)
            ):
                collector.add(entry_id, list_id, stored_value(key, text), quality)
        rows, entries, lists = collector.arrays()
        # copy-on-write: searches running in other threads keep the dicts they started with
        gen = si.gen + 1
        tomb = dict(si.tomb)
        delta = dict(si.delta)
        for eid in ids:
            tomb[eid] = gen
            delta.pop(eid, None)
        if len(entries):
            starts = np.flatnonzero(np.r_[True, entries[1:] != entries[:-1]])
            ends = np.r_[starts[1:], len(entries)]
            for a, b in zip(starts, ends, strict=True):
                delta[int(entries[a])] = _Delta(gen, int(lists[a]), rows[a:b])
        si.gen, si.state = gen, (tomb, delta)

    def refresh(self) -> int:
        """Apply the change feed since the last refresh; returns how many changes were read."""
        with self._lock:
            count = self._refresh_locked()
            self._last_refresh = time.monotonic()
            self.refresh_error = None
        for listener in list(self._listeners):
            try:
                listener(count)
            except Exception as exc:  # a listener's failure must not fail the refresh
                log.warning("index refresh listener failed: %s", exc)
                self.refresh_error = f"{type(exc).__name__}: {exc}"
        self._maybe_compact()
        return count

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(changes)` after every refresh (explanation caches, metrics)."""
        self._listeners.append(listener)

    def age(self) -> float:
        """Seconds since the index was last brought up to date."""
        return time.monotonic() - self._last_refresh

    def start_refresh(self) -> None:
        """Read the change feed every `refresh_interval` in a background thread."""
        if self._refresh_thread is not None:
            return
        self.background_refresh = True
        self._refresh_stop.clear()
        self._refresh_thread = threading.Thread(
            target=self._refresh_loop, name="index-refresh", daemon=True
        )
        self._refresh_thread.start()

    def _refresh_loop(self) -> None:
        while not self._refresh_stop.wait(self.refresh_interval):
            try:
                self.refresh()
            except Exception as exc:  # keep serving; callers report staleness by age()
                self.refresh_error = f"{type(exc).__name__}: {exc}"

    def stop_refresh(self) -> None:
        """Stop the background refresher (if one runs)."""
        thread, self._refresh_thread = self._refresh_thread, None
        if thread is not None:
            self._refresh_stop.set()
            thread.join(timeout=5)

    def _refresh_locked(self) -> int:
        now = utcnow()
        with self.store.session() as session:
            cond = Change.seq > self._seq
            if self._gaps:
                cond = or_(cond, Change.seq.in_(list(self._gaps)))
            changes = session.execute(
                select(Change.seq, Change.list_id, Change.entry_id, Change.last_entry_id)
                .where(cond)
                .order_by(Change.seq)
            ).all()
            self._track_gaps([int(c[0]) for c in changes])
            entry_ids = _changed_entries([(c[2], c[3]) for c in changes])
            lists_changed = any(c[2] is None or c[1] not in self._lists for c in changes)
            due = {e for e, until in self._pending_until.items() if until <= now}
            entry_ids |= due
            self._as_of = now
            if lists_changed:
                self._load_lists(session)
            if entry_ids:
                self._update_pending(session, entry_ids, now)
                if len(entry_ids) > BULK_REBUILD:
                    for name in list(self._signals):
                        self._signals[name] = self._build_signal(name)
                else:
                    for si in self._signals.values():
                        self._apply(si, session, entry_ids, now)
        self._check_files()
        return len(changes) + len(due)

    def _track_gaps(self, seqs: list[int]) -> None:
        """Remember skipped seqs: on PostgreSQL a lower seq can commit after a higher one."""
        now = time.monotonic()
        for s in seqs:
            self._gaps.pop(s, None)
            if s > self._seq + 1 and self.store.dialect != "sqlite":
                for missing in range(self._seq + 1, min(s, self._seq + 1001)):
                    self._gaps.setdefault(missing, now)
            self._seq = max(self._seq, s)
        for s, since in list(self._gaps.items()):
            if now - since > 60:
                del self._gaps[s]

    def _check_files(self) -> None:
        """Pick up a newer file another process compacted (at most every 2 s)."""
        now = time.monotonic()
        if now - self._last_file_check < 2.0:
            return
        self._last_file_check = now
        for name, si in list(self._signals.items()):
            if si.file is None:
                continue
            try:
                st = self.path_for(name).stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino, st.st_mtime_ns) == si.file.identity:
                continue
            try:
                f = IndexFile.open(self.path_for(name))
                if int(f.header.get("seq", 0)) >= si.seq:
                    self._signals[name] = self._from_file(name, f)
            except (CorruptIndex, OSError) as exc:
                log.warning("ignoring changed %s index file: %s", name, exc)

    def _maybe_refresh(self) -> None:
        limit = self.refresh_interval
        if self.background_refresh:  # the thread refreshes; step in only if it stalls
            limit = max(STALL_S, 8 * limit)
        if time.monotonic() - self._last_refresh >= limit:
            self.refresh()

    # ------------------------------------------------------------------ compaction

    def _maybe_compact(self) -> None:
        if not self.auto_compact:
            return
        with self._lock:
            busy = self._compactor is not None and self._compactor.is_alive()
            due = [
                s.signal
                for s in self._signals.values()
                if s.delta_rows() > self.compact_rows
                or len(s.tomb) > max(self.compact_rows, len(s.main) // 20)
            ]
            if busy or not due:
                return
            self._compactor = threading.Thread(
                target=self._compact_quietly, args=(due,), name="ridgeline-compact", daemon=True
            )
            self._compactor.start()

    def _compact_quietly(self, names: list[str]) -> None:
        for name in names:
            try:
                self.compact(name)
            except Exception:  # a failed compaction leaves the live index as it was
                log.exception("compaction of the %s index failed", name)

    def compact(self, signal: str | None = None) -> None:
        """Fold the delta and tombstones into a new main file and swap it in."""
        names = [get_signal(signal).name] if signal else list(self._signals)
        with self._compact_lock:
            for name in names:
                self._compact_one(name)

    def _compact_one(self, name: str) -> None:
        with self._lock:
            si = self._signals.get(name)
            if si is None:
                return
            snap_gen = si.gen
            tomb = np.fromiter(si.tomb, dtype=np.int64, count=len(si.tomb))
            delta = list(si.delta.items())
            seq = min(self._gaps) - 1 if self._gaps else self._seq
            as_of = self._as_of
        with self.store.session() as session:
            at = session.scalar(select(Change.at).where(Change.seq == seq)) if seq else None
        keep = ~np.isin(si.entries, tomb) if len(tomb) else np.ones(len(si.entries), dtype=bool)
        rows = np.concatenate([si.main.rows()[keep], *(d.rows for _, d in delta)])
        entries = np.concatenate(
            [si.entries[keep], *(np.full(len(d.rows), e, dtype=np.uint32) for e, d in delta)]
        )
        lists = np.concatenate(
            [si.lists[keep], *(np.full(len(d.rows), d.list_id, dtype=np.uint32) for _, d in delta)]
        )
        new = self._write_and_open(
            name, si.kind, rows, entries, lists, seq, isoformat(at), built_at=as_of
        )
        with self._lock:
            current = self._signals.get(name)
            if current is not si:
                return  # replaced meanwhile (rebuild or newer file): keep that one
            new.gen = si.gen
            new.state = (
                {e: g for e, g in si.tomb.items() if g > snap_gen},
                {e: d for e, d in si.delta.items() if d.gen > snap_gen},
            )
            self._signals[name] = new

    def wait_for_compaction(self, timeout: float | None = None) -> None:
        """Block until a running background compaction ends."""
        thread = self._compactor
        if thread is not None:
            thread.join(timeout)

    # ------------------------------------------------------------------ matching

    def _relevant_lists(
        self, signal: str, names: Sequence[str | int] | None
    ) -> tuple[dict[int, ListInfo], float]:
        """Enabled lists to answer from (named block lists + every allow list) and the radius.

        Lists are named by name (or numeric id).
        """
        lists = self._lists
        if names is not None:
            names = [lists[n].name if isinstance(n, int) and n in lists else n for n in names]
            by_name = {info.name: info for info in lists.values()}
            missing = [n for n in names if n not in by_name]
            if missing:
                with self.store.session() as session:
                    self._load_lists(session)
                lists = self._lists
                by_name = {info.name: info for info in lists.values()}
                missing = [n for n in names if n not in by_name]
            if missing:
                raise NotFound(f"no list named {missing[0]!r}")
            wanted = set(names)
        relevant = {
            lid: info
            for lid, info in lists.items()
            if info.enabled and (names is None or info.name in wanted or info.purpose == "allow")
        }
        radius = max((info.threshold(signal) for info in relevant.values()), default=-1.0)
        return relevant, radius

    def _normalize(self, signal: str, values: Sequence[str]) -> tuple[SignalType, list[str]]:
        sig = get_signal(signal)
        if isinstance(values, str):
            raise BadInput("values must be a sequence of hash strings, not one string")
        return sig, [sig.normalize(v) for v in values]

    def match(
        self,
        signal: str,
        values: Sequence[str],
        *,
        lists: Sequence[str | int] | None = None,
        qualities: Sequence[int | None] | None = None,
        min_quality: int | None = None,
    ) -> list[list[Match]]:
        """Matches for each value (one result list per value, in order).

        Allow lists: a query that matches an enabled allow-list entry gets only its
        allow-list matches back (no block-list matches), so callers can explain why.
        Queries whose quality is below the signal's `min_quality` (or `min_quality`
        given here) match nothing.
        """
        sig, canon = self._normalize(signal, values)
        name = sig.name
        if qualities is not None and len(qualities) != len(canon):
            raise BadInput(f"{len(qualities)} qualities for {len(canon)} values")
        self._maybe_refresh()
        relevant, radius = self._relevant_lists(name, lists)
        out: list[list[Match]] = [[] for _ in canon]
        if not canon or not relevant:
            return out
        si = self._signal_index(name)
        if si.kind == "frames256":
            return self._match_frames(sig, si, canon, relevant)
        if qualities is None or (sig.min_quality is None and min_quality is None):
            usable = list(range(len(canon)))
        else:
            usable = [i for i in range(len(canon)) if sig.usable(qualities[i], min_quality)]
        if not usable:
            return out
        rows = rows_for(sig, [canon[i] for i in usable])
        threads = self.threads if len(usable) > 1 else 1
        q, e, li, d = si.search(rows, radius, threads)
        hits: dict[int, dict[int, Match]] = {}
        for qi, eid, lid, raw in zip(q.tolist(), e.tolist(), li.tolist(), d.tolist(), strict=True):
            m = self._make_match(si, relevant, name, lid, eid, raw)
            if m is None:
                continue
            per = hits.setdefault(usable[qi], {})
            old = per.get(eid)
            if old is None or m.distance < old.distance:
                per[eid] = m
        for qi, per in hits.items():
            out[qi] = _finish(per.values())
        return out

    def _make_match(
        self,
        si: SignalIndex,
        relevant: dict[int, ListInfo],
        signal: str,
        list_id: int,
        entry_id: int,
        raw: float,
        variant: int | None = None,
    ) -> Match | None:
        info = relevant.get(list_id)
        if info is None:
            return None
        distance = math.sqrt(raw) if si.kind == "l2" else float(raw)
        threshold = info.threshold(signal)
        if distance > threshold:
            return None
        return Match(
            info.name, info.id, entry_id, signal, distance, threshold, info.purpose, variant
        )

    def match_dihedral(
        self,
        signal: str,
        variants: Sequence[Sequence[str]],
        *,
        lists: Sequence[str | int] | None = None,
        qualities: Sequence[int | None] | None = None,
        min_quality: int | None = None,
    ) -> list[list[Match]]:
        """Match images given as their PDQ variants (up to 8 each: rotations and flips).

        One batch lookup for all variants; each image gets its best match per entry,
        with `query_variant` the index of the variant that matched closest.
        """
        flat: list[str] = []
        owner: list[tuple[int, int]] = []
        flat_q: list[int | None] = []
        for img, group in enumerate(variants):
            if isinstance(group, str):
                raise BadInput("each image needs a sequence of variant hashes")
            for v_idx, value in enumerate(group):
                flat.append(value)
                owner.append((img, v_idx))
                flat_q.append(None if qualities is None else qualities[img])
        found = self.match(
            signal,
            flat,
            lists=lists,
            qualities=flat_q if qualities is not None else None,
            min_quality=min_quality,
        )
        per_image: list[dict[int, Match]] = [{} for _ in variants]
        for (img, v_idx), matches in zip(owner, found, strict=True):
            for m in matches:
                old = per_image[img].get(m.entry_id)
                if old is None or m.distance < old.distance:
                    per_image[img][m.entry_id] = Match(
                        m.list_name,
                        m.list_id,
                        m.entry_id,
                        m.signal,
                        m.distance,
                        m.threshold,
                        m.purpose,
                        v_idx,
                    )
        return [_finish(p.values()) for p in per_image]

    def _match_frames(
        self,
        sig: SignalType,
        si: SignalIndex,
        canon: list[str],
        relevant: dict[int, ListInfo],
    ) -> list[list[Match]]:
        """Keys (frames) find candidate entries; the signal's `confirm` decides each."""
        out: list[list[Match]] = []
        for value in canon:
            keys = sig.query_keys(value)
            if not keys:
                out.append([])
                continue
            _, e, li, _ = si.search(rows_for(sig, keys), sig.key_radius, 1)
            cands = {
                int(x): int(y)
                for x, y in zip(e.tolist(), li.tolist(), strict=True)
                if y in relevant
            }
            matches: list[Match] = []
            if cands:
                with self.store.session() as session:
                    stored = session.execute(
                        select(EntrySignal.entry_id, EntrySignal.key, EntrySignal.text_value).where(
                            EntrySignal.signal == sig.name, EntrySignal.entry_id.in_(list(cands))
                        )
                    ).all()
                for entry_id, text in ((e, stored_value(k, t)) for e, k, t in stored):
                    info = relevant[cands[entry_id]]
                    threshold = info.threshold(sig.name)
                    distance = sig.confirm(value, text, threshold)
                    if distance is not None:
                        matches.append(
                            Match(
                                info.name,
                                info.id,
                                int(entry_id),
                                sig.name,
                                float(distance),
                                threshold,
                                info.purpose,
                            )
                        )
            out.append(_finish(matches))
        return out

    # ------------------------------------------------------------------ misc

    def stats(self) -> dict[str, Any]:
        """Sizes and freshness, per loaded signal."""
        with self._lock:
            return {
                "seq": self._seq,
                "directory": str(self.directory),
                "lists": len(self._lists),
                "signals": {
                    name: {
                        "kind": si.kind,
                        "rows": len(si.main),
                        "delta_rows": si.delta_rows(),
                        "tombstones": len(si.tomb),
                        "file": str(si.file.path) if si.file else None,
                        "file_seq": si.seq,
                        "mih_substrings": getattr(si.main, "m", None),
                    }
                    for name, si in self._signals.items()
                },
            }

    def close(self) -> None:
        """Stop refreshing, wait for a running compaction and drop the mapped files."""
        self.stop_refresh()
        self.wait_for_compaction()
        with self._lock:
            self._signals.clear()


def _finish(matches: Iterable[Match]) -> list[Match]:
    """Apply the allow-list rule and order by distance, list, entry."""
    found = list(matches)
    allowed = [m for m in found if m.purpose == "allow"]
    chosen = allowed or found
    return sorted(chosen, key=lambda m: (m.distance, m.list_name, m.entry_id))
