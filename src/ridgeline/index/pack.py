"""Row packs: what a bulk import wrote, kept as the index's own arrays beside the rows.

Building an index reads every matchable row back through SQL; after a 10M-row txt
import that read was most of the time to matchable (issue 10). So a bulk import of
bare hashes also keeps what it inserted as a pack: the engine rows (`key_width` bytes
each) and entry ids of one list and one signal, in the index file format
(`fileformat`: a JSON header and page-aligned raw arrays, every part checksummed; no
pickle), in `<index directory>/packs/`. The header names the import's change rows
(seq, first and last entry id, time) and the database (`store`).

A build uses a pack only when it still says what the database says: its change rows
are there as written, and no other change row since touches its entries or its list
(an edit, a deletion, a review, a list setting; every writer goes through the change
feed, which the index already relies on). Then the entries it covers are read from
the pack and the rest from SQL; otherwise the pack is deleted and SQL is read as
before. A pack is written after the import committed (a killed import leaves none)
and deleted once an index file holding its rows is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ridgeline.index.fileformat import CHUNK, CorruptIndex, IndexFile, Pieces, write_index_file
from ridgeline.lists.models import Change
from ridgeline.signals import SignalType
from ridgeline.timeutil import isoformat

log = logging.getLogger(__name__)

PACK_DIR = "packs"
PACK_SUFFIX = ".rlpack"
PACK_VERSION = 1
#: Imports adding fewer rows keep no pack: SQL reads them back in no time.
MIN_ROWS = 100_000


def packable(signal: SignalType) -> bool:
    """Signals whose stored key is the engine row (the index's `_PackedRows` rule)."""
    return signal.hex_keys and type(signal).index_keys is SignalType.index_keys


@dataclass
class RowPack:
    """Collects an import's new rows of one list and signal, then writes them.

    `add` is given each bulk insert's signal, entry ids, canonical values and keys; a
    batch of a signal that is not `packable` or of a second signal, or whose values
    are not the plain hex of `key_width`-byte keys (stored with their text, so SQL is
    the only source), spoils the pack and nothing is written.
    """

    list_id: int
    signal: SignalType | None = None
    min_rows: int = MIN_ROWS
    spoiled: bool = False
    _entries: list[np.ndarray] = field(default_factory=list)
    #: Row bytes in CHUNK-sized buffers filled in turn (the file's section pieces).
    _rows: list[np.ndarray] = field(default_factory=list)
    _fill: int = 0
    _count: int = 0

    def add(
        self,
        signal: SignalType,
        entry_ids: Sequence[int],
        values: Sequence[str],
        keys: Sequence[bytes],
    ) -> None:
        if self.spoiled or not entry_ids:
            return
        text = "".join(values)
        if len(text) != 2 * signal.key_width * len(entry_ids) or b"".join(keys).hex() != text:
            self.spoil()
            return
        self.add_keys(signal, entry_ids, keys)

    def add_keys(self, signal: SignalType, entry_ids: Sequence[int], keys: Sequence[bytes]) -> None:
        """`add` of keys whose values are known to be their hex (a txt import's parsing
        process checked that), so no text is joined and compared."""
        if self.spoiled or not entry_ids:
            return
        if self.signal is None:
            self.signal = signal
        if self.signal.name != signal.name or not packable(signal):
            self.spoil()
            return
        width = signal.key_width
        n = len(entry_ids)
        blob = b"".join(keys)
        if len(blob) != width * n or entry_ids[0] < 0 or entry_ids[-1] >= 2**32:
            self.spoil()
            return
        ids = np.asarray(entry_ids, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= 2**32:
            self.spoil()
            return
        self._entries.append(ids.astype(np.uint32))
        data = np.frombuffer(blob, dtype=np.uint8)
        at = 0
        while at < len(data):
            if not self._rows or self._fill == CHUNK:
                self._rows.append(np.empty(CHUNK, dtype=np.uint8))
                self._fill = 0
            take = min(CHUNK - self._fill, len(data) - at)
            self._rows[-1][self._fill : self._fill + take] = data[at : at + take]
            self._fill += take
            at += take
        self._count += n

    def spoil(self) -> None:
        self.spoiled = True
        self._entries, self._rows = [], []

    def __len__(self) -> int:
        return self._count

    def write(self, session: Session, directory: Path, store_id: str) -> Path | None:
        """Write the pack after the import committed; None when there is nothing to keep.

        `session` reads the import's change rows back (their seqs and times are what a
        build checks). Failing to write is not the import's failure: the index reads
        SQL instead.
        """
        signal = self.signal
        if self.spoiled or signal is None or self._count < self.min_rows:
            return None
        entries = np.concatenate(self._entries)
        if len(entries) > 1 and bool(np.any(entries[1:] <= entries[:-1])):
            return None  # ids not ascending: not what an import takes
        parts = [*self._rows[:-1], self._rows[-1][: self._fill]]
        rows = Pieces(parts, np.dtype(np.uint8), (self._count, signal.key_width))
        lo, hi = int(entries[0]), int(entries[-1])
        found = session.execute(
            select(Change.seq, Change.entry_id, Change.last_entry_id, Change.at).where(
                Change.list_id == self.list_id,
                Change.op == "add",
                Change.last_entry_id.is_not(None),
                Change.entry_id >= lo,
                Change.entry_id <= hi,
            )
        ).all()
        changes: list[tuple[int, int, int, str]] = sorted(
            (int(s), int(a), int(b), isoformat(at) or "")
            for s, a, b, at in found
            if a is not None and b is not None
        )
        spans = [(a, b) for _, a, b, _ in changes]
        if sum(b - a + 1 for a, b in spans) != len(entries) or not _within(entries, spans):
            return None  # the change rows do not name exactly these entries
        header = {
            "pack": PACK_VERSION,
            "signal": signal.name,
            "kind": "pack",
            "store": store_id,
            "list_id": self.list_id,
            "rows": len(entries),
            "changes": changes,
        }
        path = pack_path(directory, signal.name, self.list_id, lo, hi)
        try:
            write_index_file(path, header, {"rows": rows, "entries": entries})
        except OSError as exc:
            log.warning("cannot write the import pack %s (%s); the index reads SQL", path, exc)
            return None
        return path


def _within(entries: np.ndarray, ranges: list[tuple[int, int]]) -> bool:
    """Whether every (sorted, distinct) entry id lies in one of `ranges`."""
    if not ranges:
        return False
    starts = np.array([a for a, _ in ranges], dtype=np.int64)
    ends = np.array([b for _, b in ranges], dtype=np.int64)
    order = np.argsort(starts)
    starts, ends = starts[order], ends[order]
    where = np.searchsorted(starts, entries.astype(np.int64), side="right") - 1
    return bool(np.all(where >= 0) and np.all(entries <= ends[np.maximum(where, 0)]))


def pack_path(directory: Path, signal: str, list_id: int, lo: int, hi: int) -> Path:
    return directory / PACK_DIR / f"{signal}.list{list_id}.{lo}-{hi}{PACK_SUFFIX}"


@dataclass
class Pack:
    """A verified pack that still matches the database: its rows, entries and list."""

    path: Path
    list_id: int
    ranges: list[tuple[int, int]]
    rows: np.ndarray
    entries: np.ndarray

    def lists(self) -> np.ndarray:
        return np.full(len(self.entries), self.list_id, dtype=np.uint32)


def valid_packs(session: Session, directory: Path, signal: SignalType, store_id: str) -> list[Pack]:
    """The packs of `signal` under `directory` that still hold what SQL would return for
    their entries (see the module docstring); stale or damaged ones are deleted."""
    folder = directory / PACK_DIR
    if not folder.is_dir():
        return []
    out: list[Pack] = []
    for path in sorted(folder.glob(f"{signal.name}.list*{PACK_SUFFIX}")):
        try:
            f = IndexFile.open(path)
            reason = _stale(session, f, signal, store_id)
        except FileNotFoundError:
            continue  # another build just folded it
        except (CorruptIndex, KeyError, TypeError, ValueError) as exc:
            reason = str(exc)
        if reason is not None:
            log.info("dropping import pack %s: %s", path, reason)
            path.unlink(missing_ok=True)
            continue
        h = f.header
        out.append(
            Pack(
                path,
                int(h["list_id"]),
                [(int(a), int(b)) for _, a, b, _ in h["changes"]],
                f.arrays["rows"],
                f.arrays["entries"],
            )
        )
    return out


def _stale(session: Session, f: IndexFile, signal: SignalType, store_id: str) -> str | None:
    """Why the pack `f` no longer matches the database, or None if it does."""
    h = f.header
    if h.get("pack") != PACK_VERSION or h.get("kind") != "pack":
        return "not a pack of this version"
    if h.get("signal") != signal.name or h.get("store") != store_id:
        return "another signal or database"
    rows, entries = f.arrays["rows"], f.arrays["entries"]
    if rows.shape != (len(entries), signal.key_width) or int(h.get("rows", -1)) != len(entries):
        return "arrays disagree with the header"
    own = {(int(s), int(a), int(b), str(at)) for s, a, b, at in h["changes"]}
    if not own or not len(entries):
        return "empty"
    list_id = int(h["list_id"])
    lo, hi = int(entries[0]), int(entries[-1])
    first_seq = min(s for s, _, _, _ in own)
    touching = session.execute(
        select(
            Change.seq, Change.list_id, Change.entry_id, Change.last_entry_id, Change.op, Change.at
        )
        .where(
            Change.seq >= first_seq,
            or_(
                Change.list_id == list_id,
                and_(
                    Change.entry_id <= hi,
                    func.coalesce(Change.last_entry_id, Change.entry_id) >= lo,
                ),
            ),
        )
        .limit(len(own) + 1)
    ).all()
    seen: set[tuple[int, int, int, str]] = set()
    for seq, lid, first, last, op, at in touching:
        if lid != list_id or op != "add" or first is None or last is None:
            return f"change {seq} since the import"
        seen.add((int(seq), int(first), int(last), isoformat(at) or ""))
    if seen != own:
        return "its change rows differ from the database's"
    return None


def covered_ranges(packs: Sequence[Pack]) -> list[tuple[int, int]]:
    """The entry id ranges the packs hold, sorted and merged."""
    spans = sorted(r for p in packs for r in p.ranges)
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def gaps(low: int, high: int, covered: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [low, high] (inclusive) no covered range holds."""
    out: list[tuple[int, int]] = []
    at = low
    for a, b in covered:
        if b < at:
            continue
        if a > high:
            break
        if a > at:
            out.append((at, min(a - 1, high)))
        at = max(at, b + 1)
    if at <= high:
        out.append((at, high))
    return out
