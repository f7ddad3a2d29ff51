"""The one import writer: parsed records of every format (partner formats and our own
txt/csv/jsonl alike) are written to a list here, in the caller's transaction.

New hashes become entries (with provenance and kept format facts), known entries
(same origin member and id) are updated in place, deletions tombstone the entries
they name, and the source's newest timestamp is remembered for incremental imports.
Every entry change goes through `ridgeline.lists` (bulk `insert_entries`,
`update_entry_signals`, `delete_entry`); the new entries' status is
`lists.initial_status`. Nothing here commits: if anything unexpected fails the whole
import rolls back, so nothing is half-written and nothing stored before is lost (a
killed import leaves nothing; rerun, it adds what is missing and nothing twice).

Bare hashes (a txt file's lines, `ParseResult.bare`) are read lazily and applied a
chunk at a time: validated, de-duplicated against the chunk and the list (which holds
every earlier chunk already), and inserted in bulk, so memory stays constant whatever
the file's size. A big txt file's chunks come checked from the parsing process
(`exchange.ahead.produce_txt`): the writer only looks up and inserts their keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.classifications import is_listable
from ridgeline.errors import BadInput, RidgelineError
from ridgeline.exchange.models import ExchangeMeta, SyncState
from ridgeline.exchange.records import BareHashes, ExchangeRecord, ExportItem, ParseResult
from ridgeline.exchange.rows import (
    CLASSES,
    COUNT,
    FIELDS,
    LISTED,
    META,
    OLDER,
    POSITION,
    Good,
    ReadyPart,
    bulk_fields,
)
from ridgeline.gcpause import gc_paused
from ridgeline.index.pack import RowPack
from ridgeline.lists.matchable import MATCHABLE_STATUS
from ridgeline.lists.models import Entry, HashList, ImportBatch, entry_key
from ridgeline.signals import SignalType, get_signal
from ridgeline.store import bulk_page_cache, end_bulk_page_cache
from ridgeline.timeutil import as_utc, isoformat

#: New entries per bulk insert.
BATCH = 20_000
#: Bare hashes (txt lines) per chunk: read, checked and inserted together.
BARE_CHUNK = 50_000
#: A txt file this big into an empty list defers the key-prefix index (about 500,000
#: PDQ lines; `lists.DeferredKeyIndex`), when the database holds fewer hash rows than
#: its size over `DEFER_LINE_BYTES` (a line longer than any hash's, so the file's
#: lines are fewer than estimated: the rule errs on keeping the index).
DEFER_INDEX_BYTES = 32 << 20
DEFER_LINE_BYTES = 128
#: What an import does with records that are not listable (non-pertinent, comparison):
#: skip them, keep them as `reference` entries that never match, or list them anyway.
NOT_LISTABLE_CHOICES = ("skip", "reference", "list")


@dataclass
class ImportReport:
    """What an import did (any format), with every rejected record and its position."""

    list_name: str
    format: str
    source: str
    batch: str
    read: int = 0
    added: int = 0
    updated: int = 0
    duplicates: int = 0
    deleted: int = 0
    deletions_unmatched: int = 0
    skipped_older: int = 0
    #: Records whose labels say they are not for a block list (see NOT_LISTABLE_CHOICES).
    not_listable: int = 0
    #: Those of them kept as `reference` entries.
    reference: int = 0
    max_timestamp: dt.datetime | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.list_name,
            "format": self.format,
            "source": self.source,
            "batch": self.batch,
            "read": self.read,
            "added": self.added,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "deleted": self.deleted,
            "deletions_unmatched": self.deletions_unmatched,
            "skipped_older": self.skipped_older,
            "not_listable": self.not_listable,
            "reference": self.reference,
            "max_timestamp": isoformat(self.max_timestamp),
            "errors": self.errors,
        }


def last_timestamp(session: Session, hash_list: HashList, source: str) -> dt.datetime | None:
    """The newest record timestamp imported into `hash_list` from `source`."""
    state = session.scalar(
        select(SyncState).where(SyncState.list_id == hash_list.id, SyncState.source == source)
    )
    return None if state is None or state.max_timestamp is None else as_utc(state.max_timestamp)


class _Index:
    """Live entries of a list by origin id and by hash, for dedup and deletions.

    Only the hashes the file names are looked up (a few hashes into a list of millions
    read a few rows); origins are read only when the file's records carry origin ids.
    """

    def __init__(
        self,
        session: Session,
        hash_list: HashList,
        keys: Collection[tuple[str, bytes]],
        *,
        with_origins: bool,
        origin_ids: set[str] | None = None,
    ) -> None:
        self.by_origin: dict[tuple[str | None, str], list[int]] = {}
        self.by_key: dict[tuple[str, bytes], list[int]] = {}
        #: Reverse maps, so removing or renumbering an entry touches only its own keys.
        self.origin_of: dict[int, tuple[str | None, str]] = {}
        self.keys_of: dict[int, list[tuple[str, bytes]]] = {}
        if with_origins:
            for entry_id, member, origin_id in L.live_entry_origins(session, hash_list, origin_ids):
                self._link_origin(entry_id, (member, origin_id))
        for entry_id, signal, key in L.live_entry_keys(session, hash_list, keys):
            self._link_key(entry_id, (signal, key))

    def _link_origin(self, entry_id: int, origin: tuple[str | None, str]) -> None:
        self.by_origin.setdefault(origin, []).append(entry_id)
        self.origin_of[entry_id] = origin

    def _link_key(self, entry_id: int, key: tuple[str, bytes]) -> None:
        self.by_key.setdefault(key, []).append(entry_id)
        self.keys_of.setdefault(entry_id, []).append(key)

    def by_origin_of(self, record: ExchangeRecord) -> list[int]:
        """Entries this source sent before under the same member and id."""
        if record.origin_entry_id is None:
            return []
        return list(self.by_origin.get((record.origin_member, record.origin_entry_id), []))

    def by_hash(self, keys: dict[str, bytes]) -> list[int]:
        """Entries carrying any of these hashes (by signal, their `entry_key`)."""
        out: list[int] = []
        by_key = self.by_key
        for pair in keys.items():
            found = by_key.get(pair)
            if found:
                for entry_id in found:
                    if entry_id not in out:
                        out.append(entry_id)
        return out

    def add(self, entry_id: int, record: ExchangeRecord, keys: dict[str, bytes]) -> None:
        """A pending entry (temporary id): looked up by origin and hash; `renumber`
        links it back by its database id, which is all `remove` is ever given."""
        if record.origin_entry_id is not None:
            origin = (record.origin_member, record.origin_entry_id)
            found = self.by_origin.get(origin)
            if found is None:
                self.by_origin[origin] = [entry_id]
            else:
                found.append(entry_id)
        by_key = self.by_key
        for pair in keys.items():
            found = by_key.get(pair)
            if found is None:
                by_key[pair] = [entry_id]
            else:
                found.append(entry_id)

    def remove(self, entry_id: int) -> None:
        origin = self.origin_of.pop(entry_id, None)
        if origin is not None:
            self.by_origin[origin].remove(entry_id)
        for key in self.keys_of.pop(entry_id, []):
            self.by_key[key].remove(entry_id)

    def renumber(self, old: int, new: int, record: ExchangeRecord, keys: dict[str, bytes]) -> None:
        """A pending entry (`add`ed with `record` and `keys`) got its database id."""
        if record.origin_entry_id is not None:
            origin = (record.origin_member, record.origin_entry_id)
            ids = self.by_origin[origin]
            ids[ids.index(old)] = new
            self.origin_of[new] = origin
        pairs = list(keys.items())
        for key in pairs:
            ids = self.by_key[key]
            ids[ids.index(old)] = new
        if pairs:
            self.keys_of[new] = pairs


def apply_records(
    session: Session,
    hash_list: HashList,
    parsed: ParseResult,
    *,
    source: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    status: str | None = None,
    confirmed_elsewhere: bool = False,
    not_listable: str = "skip",
    watermark: bool = False,
    progress: Callable[[int], None] | None = None,
    unmatched: list[ExchangeRecord] | None = None,
    pack: RowPack | None = None,
) -> ImportReport:
    """Apply every good record of `parsed` to `hash_list`; see the module docstring.

    `source` names where the file came from: its newest timestamp is remembered under
    that name (default: the format) and it fills an entry's `source` where the record
    names none. `since` skips records older than it (incremental import); records
    without a timestamp are always applied. `confirmed_elsewhere` records new entries
    confirmed under a review policy. Parse errors are carried into the report. New
    entries are inserted in bulk; the import is one record in the tamper-evident log
    and one `import` event per entry in its history. Records labelled non-pertinent or
    comparison (`classifications.is_listable`) never become matchable: `not_listable`
    skips them (default), keeps them as `reference` entries, or lists them anyway.
    `watermark` says `since` is this source's remembered newest time (`--since last`):
    pages of a feed are not in time order, so an older record is skipped only when the
    list already has it, never when it is new. Deletions are applied after the other
    records of the file, unless a newer record of the same entry follows them.
    `progress` is called with the number of records read so far, now and then.
    A streamed file (`parsed.parts`) is applied a part at a time, each part's new
    entries inserted before the next is read; its deletions wait for the end.
    Deletions that found no entry are added to `unmatched`, when given. `pack` collects
    the new confirmed rows of bare hashes, for the caller to write once committed
    (`ridgeline.index.pack`).
    """
    if not_listable not in NOT_LISTABLE_CHOICES:
        raise BadInput(
            f"not_listable must be one of {', '.join(NOT_LISTABLE_CHOICES)}, not {not_listable!r}"
        )
    # A larger page cache while records are imported: with a small one, a file of a
    # million records no longer kept the indexes it inserts into (ids by origin, hash
    # prefixes) in memory, and each insert read its pages back from the WAL.
    cached = session.connection() if parsed.bare is None else None
    if cached is not None:
        bulk_page_cache(cached)
    try:
        # A part allocates a few hundred thousand short-lived objects (records, rows,
        # keys) and no cycles worth collecting: the cyclic collector rescanned everything
        # alive many times per part (a third of a VICS import's CPU time).
        with gc_paused():
            return _apply_records(
                session, hash_list, parsed, source=source, actor=actor, since=since,
                status=status, confirmed_elsewhere=confirmed_elsewhere,
                not_listable=not_listable, watermark=watermark, progress=progress,
                unmatched=unmatched, pack=pack,
            )  # fmt: skip
    finally:
        if cached is not None:
            end_bulk_page_cache(cached)


def _apply_records(
    session: Session,
    hash_list: HashList,
    parsed: ParseResult,
    *,
    source: str | None,
    actor: str | None,
    since: dt.datetime | None,
    status: str | None,
    confirmed_elsewhere: bool,
    not_listable: str,
    watermark: bool,
    progress: Callable[[int], None] | None,
    unmatched: list[ExchangeRecord] | None,
    pack: RowPack | None,
) -> ImportReport:
    source_name = source or parsed.format
    report = ImportReport(hash_list.name, parsed.format, source_name, uuid.uuid4().hex[:16])
    if status is None:
        status = L.initial_status(hash_list, confirmed_elsewhere=confirmed_elsewhere)
    run = _Run(
        session,
        hash_list,
        report,
        parsed.format,
        source,
        actor,
        status,
        since=as_utc(since) if since is not None else None,
        watermark=watermark,
        not_listable=not_listable,
    )
    run.part(parsed)
    if progress is not None:
        progress(report.read)
    for part in parsed.parts or ():
        run.part(part)
        if progress is not None:
            progress(report.read)
    run.deletions(unmatched)
    if parsed.bare is not None:
        if pack is not None and status != MATCHABLE_STATUS:
            pack.spoil()  # not matchable: the index holds none of them
        _apply_bare(hash_list, parsed.bare, run.pending, report, progress, pack)
    report.max_timestamp = run.filter.max_timestamp
    _remember(session, hash_list, source_name, parsed.format, run.filter.max_timestamp)
    session.flush()
    auditlog.append(
        session,
        actor,
        "list.import",
        f"list:{hash_list.id}",
        {k: v for k, v in report.to_json().items() if k != "errors"}
        | {"errors": len(report.errors), "status": status}
        | ({"confirmed_elsewhere": True} if confirmed_elsewhere else {}),
    )
    return report


#: A record to apply: its checked hashes, labels, whether listed, whether older than
#: `since`, and its hashes' `entry_key`s (computed once).
_Good = Good


class Newest:
    """The newest time of each entry identity the file's records carried, so a deletion
    loses to a newer record of its entry wherever in the file that record was. Kept as
    16 bytes a record (a 64-bit hash of the identity and a time), not objects, so a
    streamed file of millions costs little; looked up only for the file's deletions."""

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []
        self.times: list[np.ndarray] = []

    def add(self, ids: list[int], times: list[float]) -> None:
        if ids:
            self.ids.append(np.array(ids, dtype=np.int64))
            self.times.append(np.array(times, dtype=np.float64))

    def lookup(self, wanted: set[int]) -> dict[int, float]:
        if not wanted or not self.ids:
            return {}
        ids, times = np.concatenate(self.ids), np.concatenate(self.times)
        mask = np.isin(ids, np.fromiter(wanted, dtype=np.int64, count=len(wanted)))
        out: dict[int, float] = {}
        for key, when in zip(ids[mask].tolist(), times[mask].tolist(), strict=True):
            out[key] = max(out.get(key, when), when)
        return out


class RecordFilter:
    """The checks of a file's records that need no database (hashes, labels, listability,
    `since`), with their verdicts remembered across the file's parts. The writer runs
    it, or the parsing process does for a big file (`ridgeline.exchange.ahead`) and
    sends only the records to apply, with the report's counts."""

    def __init__(
        self,
        hash_list: HashList,
        report: ImportReport,
        *,
        since: dt.datetime | None,
        watermark: bool,
        not_listable: str,
    ) -> None:
        self.hash_list, self.report = hash_list, report
        self.since, self.watermark, self.not_listable = since, watermark, not_listable
        self.labels: dict[tuple[str, str], dict[str, str]] = {}  # files repeat a few
        self.listables: dict[tuple[Any, ...], bool] = {}  # `is_listable` of each label set
        #: Each signal name the file uses: its canonical name and check (None: refused
        #: here or unknown, so `_tolerant_signals` says why).
        self.normalizers: dict[str, tuple[str, Callable[[str], str]] | None] = {}
        self.max_timestamp: dt.datetime | None = None

    def __call__(self, parsed: ParseResult) -> list[_Good]:
        """The part's records that are to be applied (its rejects go to the report)."""
        report = self.report
        report.errors.extend(parsed.errors)
        report.read += len(parsed.records) + len(parsed.errors)
        if parsed.max_timestamp is not None and (
            self.max_timestamp is None or parsed.max_timestamp > self.max_timestamp
        ):
            self.max_timestamp = parsed.max_timestamp
        good: list[_Good] = []
        since = self.since
        normalizers = self.normalizers
        listables = self.listables
        for record in parsed.records:
            older = since is not None and record.timestamp is not None and record.timestamp < since
            if older and not self.watermark:
                report.skipped_older += 1
                continue
            try:
                signals = _fast_signals(self.hash_list, normalizers, record.signals)
                if signals is None:
                    signals = _tolerant_signals(self.hash_list, record, report)
                classes = [_checked(c, self.labels) for c in record.classifications]
            except RidgelineError as exc:
                report.errors.append({"position": record.position, "error": str(exc)})
                continue
            if record.listable is not None:
                listable = record.listable
            elif not classes:
                listable = True
            else:
                labels = tuple((c.get("scheme"), c.get("label")) for c in classes)
                listable = listables.get(labels)  # type: ignore[assignment]
                if listable is None:
                    listable = listables[labels] = is_listable(classes)
            if not listable and not record.deleted and self.not_listable != "list":
                report.not_listable += 1
                if self.not_listable == "skip":
                    continue
            keys = {name: entry_key(value) for name, value in signals.items()}
            good.append(
                (record, signals, classes, listable or self.not_listable == "list", older, keys)
            )
        return good


class _Run:
    """One import's state across the parts of its file."""

    def __init__(
        self,
        session: Session,
        hash_list: HashList,
        report: ImportReport,
        fmt: str,
        source: str | None,
        actor: str | None,
        status: str,
        *,
        since: dt.datetime | None,
        watermark: bool,
        not_listable: str,
    ) -> None:
        self.session, self.hash_list, self.report, self.fmt = session, hash_list, report, fmt
        self.source, self.actor = source, actor
        self.since, self.watermark, self.not_listable = since, watermark, not_listable
        self.filter = RecordFilter(
            hash_list, report, since=since, watermark=watermark, not_listable=not_listable
        )
        #: The file's deletions, applied last, each with the newest time of its entry
        #: that the file carried when the parsing process worked it out (else _UNSEEN).
        self.waiting: list[tuple[_Good, Any]] = []
        self.newest = Newest()
        # The index is set per part; the pending inserts live across parts.
        self.index = _Index(session, hash_list, set(), with_origins=False)
        self.pending = _Pending(session, hash_list, self.index, report, fmt, source, actor, status)
        self.references = _Pending(
            session, hash_list, self.index, report, fmt, source, actor, "reference"
        )
        self.references.next_temp = -(1 << 40)  # temp ids apart from `pending`'s

    def _use_index(self, good: list[_Good]) -> None:
        """An index of the live entries these records may name (their hashes, origins)."""
        pairs: list[tuple[str, bytes]] = []  # `live_entry_keys` takes repeats
        origin_ids: set[str] = set()
        for one in good:  # (indexed, not unpacked: a part is thousands of records)
            pairs.extend(one[5].items())
            origin_id = one[0].origin_entry_id
            if origin_id is not None:
                origin_ids.add(origin_id)
        with_origins = bool(origin_ids)
        index = _Index(
            self.session, self.hash_list, pairs, with_origins=with_origins, origin_ids=origin_ids
        )
        self.index = self.pending.index = self.references.index = index

    def real_ids(self, ids: list[int]) -> list[int]:
        return self.references.real_ids(self.pending.real_ids(ids))

    def part(self, parsed: ParseResult | ReadyPart) -> None:
        """Apply a part's records (its deletions are kept for `deletions`)."""
        if isinstance(parsed, ReadyPart):
            self.ready(parsed)
            return
        good = self.filter(parsed)
        live: list[_Good] = []
        waiting = self.waiting
        for one in good:
            if one[0].deleted:
                waiting.append((one, _UNSEEN))
            else:
                live.append(one)
        if not live:
            return
        stamp_live(live, self.newest)
        self._use_index(live)
        self.apply_live(live)

    def ready(self, part: ReadyPart) -> None:
        """Apply a part the parsing process checked and turned into rows: its counts and
        rejects join the report; when none of its records names an entry the list has
        or another record of the part, its rows are inserted as they came (what the
        general path would insert, in the same order and batches); otherwise its
        records go through the general path."""
        report = self.report
        report.read += part.read
        report.skipped_older += part.skipped_older
        report.not_listable += part.not_listable
        report.errors.extend(part.errors)
        stamp = part.max_timestamp
        filt = self.filter
        if stamp is not None and (filt.max_timestamp is None or stamp > filt.max_timestamp):
            filt.max_timestamp = stamp
        self.waiting.extend((one.good(), one.later) for one in part.deletions)
        if not part.records:
            return
        columns = part.columns()
        new = part.clean and not any(columns[OLDER])
        origin_ids = {i for i in columns[FIELDS + 3] if i is not None}
        index = _Index(
            self.session,
            self.hash_list,
            [(name, key) for name, key, *_ in part.hashes],
            with_origins=bool(origin_ids),
            origin_ids=origin_ids,
        )
        self.index = self.pending.index = self.references.index = index
        if new and not index.by_key and not index.by_origin:
            self._insert_ready(part, columns)
        else:
            self.apply_live(part.goods())

    def _insert_ready(self, part: ReadyPart, columns: list[tuple[Any, ...]]) -> None:
        """`apply_live` for records that are all new: listed ones to `pending`, the
        others to `references`, flushed at the same points (`BATCH`)."""
        listed = columns[LISTED]
        n = len(listed)
        groups: list[tuple[_Pending, list[int]]] = []
        if all(listed):
            groups = [(self.pending, list(range(n)))]
        elif not any(listed):
            groups = [(self.references, list(range(n)))]
        else:
            groups = [
                (self.pending, [i for i in range(n) if listed[i]]),
                (self.references, [i for i in range(n) if not listed[i]]),
            ]
        # As `_Pending.add` would: a batch of BATCH flushes at once (the first to fill
        # first), the rest when the part ends, pending before references.
        full: list[tuple[int, _Pending, list[int]]] = []
        rest: list[tuple[_Pending, list[int]]] = []
        for pending, picked in groups:
            held = len(pending.items)
            assert held == 0  # every part ends with a flush
            for start in range(0, len(picked), BATCH):
                chunk = picked[start : start + BATCH]
                if len(chunk) == BATCH:
                    full.append((chunk[-1], pending, chunk))
                else:
                    rest.append((pending, chunk))
        for _, pending, chunk in sorted(full, key=lambda one: one[0]):
            pending.insert_ready(part, columns, chunk)
        for pending, chunk in rest:
            pending.insert_ready(part, columns, chunk)
        self.report.reference += n - sum(listed)

    def apply_live(self, live: list[_Good]) -> None:
        """Apply the live records of a part against `self.index` (already read)."""
        index, report, session = self.index, self.report, self.session
        by_origin, by_key = index.by_origin, index.by_key
        for record, signals, classes, listed, older, keys in live:
            # `index.by_origin_of` and `index.by_hash`, inline (read, never kept)
            origin_id = record.origin_entry_id
            same_origin = (
                None if origin_id is None else by_origin.get((record.origin_member, origin_id))
            )
            if older and (same_origin or any(by_key.get(pair) for pair in keys.items())):
                report.skipped_older += 1  # seen before: the watermark may skip it
                continue
            if same_origin:
                (entry_id,) = self.real_ids(same_origin[:1])
                if _update(session, entry_id, record, signals, classes, self.actor, report.batch):
                    report.updated += 1
                else:
                    report.duplicates += 1
                continue
            if any(by_key.get(pair) for pair in keys.items()):
                report.duplicates += 1
                continue
            if listed:
                self.pending.add(record, signals, classes, keys)
            else:
                self.references.add(record, signals, classes, keys)
                report.reference += 1
        # The next part (or the deletions) reads a new index: none to renumber.
        self.pending.flush(renumber=False)
        self.references.flush(renumber=False)

    def deletions(self, unmatched: list[ExchangeRecord] | None) -> None:
        """Apply the file's deletions, after all its other records (so a deletion listed
        before its older entry still finds it); one loses to a newer record of its entry."""
        waiting, self.waiting = self.waiting, []
        if not waiting:
            return
        self._use_index([one for one, _ in waiting])
        index, report, session = self.index, self.report, self.session
        source_name = report.source
        newest = self.newest.lookup(
            {
                hash(k)
                for (record, *_, keys), later in waiting
                if later is _UNSEEN
                for k in identities(record, keys)
            }
        )
        for (record, *_, keys), later in waiting:
            if record.timestamp is not None:  # the partner's own date, kept beside ours
                record.extra = {**record.extra, "deleted_time": isoformat(record.timestamp)}
                if later is _UNSEEN:
                    found = [
                        newest[h] for k in identities(record, keys) if (h := hash(k)) in newest
                    ]
                    later = max(found) if found else None
                if later is not None and later > as_utc(record.timestamp).timestamp():
                    report.skipped_older += 1
                    continue
            same_origin = index.by_origin_of(record)
            found_ids = same_origin if record.origin_entry_id is not None else index.by_hash(keys)
            if not found_ids:
                report.deletions_unmatched += 1
                if unmatched is not None:
                    unmatched.append(record)
            for entry_id in self.real_ids(found_ids):
                entry = session.get(Entry, entry_id)
                if entry is not None and entry.deleted_at is None:
                    L.delete_entry(
                        session, entry, actor=self.actor, reason=f"deleted by {source_name}"
                    )
                    _merge_meta(session, entry_id, record.extra, self.fmt)
                    index.remove(entry_id)
                    report.deleted += 1


def stamp_live(live: list[_Good], newest: Newest) -> None:
    """Remember the time of each live record's entry (a deletion elsewhere in the file
    loses to a newer one) and keep the partner's own date beside ours (`record_time`)."""
    ids: list[int] = []
    seconds: list[float] = []
    known: dict[dt.datetime, float] = {}  # a feed repeats a few times
    times: dict[dt.datetime, str] = {}
    for one in live:
        record = one[0]
        stamp = record.timestamp
        if stamp is None:
            continue
        when = known.get(stamp)
        if when is None:
            when = known[stamp] = as_utc(stamp).timestamp()
        for key in identities(record, one[5]):
            ids.append(hash(key))
            seconds.append(when)
        text = times.get(stamp)
        if text is None:
            text = times[stamp] = str(isoformat(stamp))
        record.extra = {**record.extra, "record_time": text}
    newest.add(ids, seconds)


def identities(record: ExchangeRecord, keys: dict[str, bytes]) -> list[Any]:
    """Keys that name the entry a record is about: its origin id, else its hashes."""
    if record.origin_entry_id is not None:
        return [(record.origin_member, record.origin_entry_id)]
    return list(keys.items())


_UNSEEN: Any = object()


def _fast_signals(
    hash_list: HashList,
    normalizers: dict[str, tuple[str, Callable[[str], str]] | None],
    signals: dict[str, str],
) -> dict[str, str] | None:
    """`normalize_signals` for a record whose signals all check out, with each name's
    signal looked up once per import; None when any does not (or there are none), for
    `_tolerant_signals` to say why and keep the rest."""
    out: dict[str, str] = {}
    for name, value in signals.items():
        found = normalizers.get(name, _UNSEEN)
        if found is _UNSEEN:
            try:
                signal = get_signal(name)
                L.check_list_signal(hash_list, signal.name)
                found = (signal.name, signal.normalize)
            except RidgelineError:
                found = None
            normalizers[name] = found
        if found is None:
            return None
        canonical, normalize = found
        try:
            out[canonical] = normalize(value)
        except RidgelineError:
            return None
    return out or None


def _tolerant_signals(
    hash_list: HashList, record: ExchangeRecord, report: ImportReport
) -> dict[str, str]:
    """The record's valid hashes; a bad one is reported and skipped, the rest kept (the
    record is rejected only when none is left)."""
    try:  # the common case: every hash is good, checked in one call
        return L.normalize_signals(hash_list, record.signals)
    except RidgelineError:
        pass
    good: dict[str, str] = {}
    bad: list[str] = []
    for name, value in record.signals.items():
        try:
            good.update(L.normalize_signals(hash_list, {name: value}))
        except RidgelineError as exc:
            bad.append(str(exc))
    if bad and (good or record.deleted):
        for message in bad:
            report.errors.append(
                {"position": record.position, "error": f"{message} (skipped; the rest kept)"}
            )
    elif bad:
        raise BadInput("; ".join(bad))
    return good


def _checked(item: dict[str, str], seen: dict[tuple[str, str], dict[str, str]]) -> dict[str, str]:
    """`lists.validate_classification`, once per distinct label in the file."""
    key = (str(item.get("scheme")), str(item.get("label")))
    if key not in seen:
        seen[key] = L.validate_classification(item)
    return dict(seen[key])


class _Pending:
    """New entries waiting for one bulk insert; they carry negative ids until then."""

    def __init__(
        self,
        session: Session,
        hash_list: HashList,
        index: _Index,
        report: ImportReport,
        fmt: str,
        source: str | None,
        actor: str | None,
        status: str,
    ) -> None:
        self.session, self.hash_list, self.index, self.report = session, hash_list, index, report
        self.fmt, self.source, self.actor, self.status = fmt, source, actor, status
        self.items: list[
            tuple[int, ExchangeRecord, dict[str, str], list[dict[str, str]], dict[str, bytes]]
        ] = []
        self.next_temp = -1
        self.batch: ImportBatch | None = None

    def _batch(self) -> ImportBatch:
        """This import's batch row, started with its first insert."""
        if self.batch is None:
            self.batch = L.start_import(
                self.session,
                self.hash_list,
                batch=self.report.batch,
                fmt=self.fmt,
                status=self.status,
                actor=self.actor,
            )
        return self.batch

    def insert(self, new: list[L.NewEntry]) -> list[int]:
        """Insert already-checked entries under this import's batch row."""
        ids = L.insert_entries(self.session, self.hash_list, self._batch(), new)
        self.report.added += len(ids)
        return ids

    def insert_bare(
        self,
        signal: str,
        keys: list[bytes],
        texts: list[str | None] | None,
        numbers: list[int],
        prefix: str,
        source: str | None,
        held: L.DeferredKeyIndex | None = None,
    ) -> list[int]:
        """Insert bare hashes already checked (`lists.insert_bare_keys`)."""
        ids = L.insert_bare_keys(
            self.session,
            self.hash_list,
            self._batch(),
            signal,
            keys,
            texts=texts,
            numbers=numbers,
            prefix=prefix,
            source=source,
            held=held,
        )
        self.report.added += len(ids)
        return ids

    def insert_ready(
        self, part: ReadyPart, columns: list[tuple[Any, ...]], picked: list[int]
    ) -> None:
        """Insert the records of `part` at `picked` (`columns` are its values), with
        their format facts, as `flush` would have."""
        batch = self._batch()
        if len(picked) != len(part.records):
            part = part.subset(picked)
            columns = part.columns()
        ids = L.insert_entry_columns(
            self.session,
            self.hash_list,
            batch,
            fields=columns[FIELDS:],
            classes=columns[CLASSES],
            positions=columns[POSITION],
            counts=columns[COUNT],
            hashes=part.hashes,
        )
        self.report.added += len(ids)
        fmt = self.fmt
        metas = [
            (entry_id, fmt, text)
            for entry_id, text in zip(ids, columns[META], strict=True)
            if text is not None
        ]
        _insert_metas(self.session, metas)

    def add(
        self,
        record: ExchangeRecord,
        signals: dict[str, str],
        classes: list[dict[str, str]],
        keys: dict[str, bytes],
    ) -> None:
        temp = self.next_temp
        self.next_temp -= 1
        self.items.append((temp, record, signals, classes, keys))
        self.index.add(temp, record, keys)
        if len(self.items) >= BATCH:
            self.flush()

    def real_ids(self, ids: list[int]) -> list[int]:
        """Database ids for `ids`, inserting the pending entries first if one is pending."""
        if any(i < 0 for i in ids):
            mapping = self.flush()
            return [mapping.get(i, i) for i in ids]
        return ids

    def flush(self, *, renumber: bool = True) -> dict[int, int]:
        """Insert the pending entries; their temporary ids -> database ids (and, with
        `renumber`, the index told so; an index about to be dropped need not be)."""
        if not self.items:
            return {}
        items, self.items = self.items, []
        session = self.session
        source, new_entry = self.source, L.NewEntry
        ids = self.insert(
            [
                new_entry(
                    signals,
                    classes,
                    record.qualities,
                    position=record.position,
                    keys=keys,
                    row=bulk_fields(record, source),
                )
                for _, record, signals, classes, keys in items
            ]
        )
        rows = list(zip(ids, items, strict=True))
        fmt = self.fmt
        encoded: dict[Any, str] = {}  # records of a feed share most of their facts
        metas: list[tuple[int, str, str]] = []
        for entry_id, (_, record, *_) in rows:
            extra = record.extra
            if not extra:
                continue
            try:
                key: Any = tuple(extra.items())
                text = encoded.get(key)
            except TypeError:  # a nested value: not shared
                key, text = None, None
            if text is None:
                text = json.dumps(extra)
                if key is not None:
                    encoded[key] = text
            metas.append((entry_id, fmt, text))
        _insert_metas(session, metas)
        if not renumber:
            return {}
        mapping = {temp: entry_id for entry_id, (temp, *_) in rows}
        for entry_id, (temp, record, _, _, keys) in rows:
            self.index.renumber(temp, entry_id, record, keys)
        return mapping


def _insert_metas(session: Session, metas: list[tuple[int, str, str]]) -> None:
    """New entries' format facts, as tuples: one ORM insert parameter set per entry cost
    a tenth of an import."""
    if metas:
        conn = session.connection()
        mark = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
        conn.exec_driver_sql(
            f"INSERT INTO exchange_meta (entry_id, format, data) VALUES ({mark}, {mark}, {mark})",
            metas,
        )


def check_bare_chunk(
    chunk: Sequence[tuple[int, str]],
    prefix: str,
    normalize: Callable[[str], str],
    refused: str | None,
    errors: list[dict[str, str]],
) -> tuple[dict[bytes, tuple[int, str]], int]:
    """One chunk of bare lines checked as any record is: each line normalised (or its
    error, or the list's refusal of the signal, appended to `errors` by position) and
    keyed; returns the chunk's new keys with their (line number, value), and how many
    lines repeated one of them. Shared by the writer and the parsing process
    (`ahead.produce_txt`), so both report and store the same."""
    fresh: dict[bytes, tuple[int, str]] = {}
    repeats = 0
    for number, text in chunk:
        if refused is not None:
            errors.append({"position": f"{prefix}{number}", "error": refused})
            continue
        try:
            value = normalize(text)
        except RidgelineError as exc:
            errors.append({"position": f"{prefix}{number}", "error": str(exc)})
            continue
        key = entry_key(value)
        if key in fresh:
            repeats += 1
        else:
            fresh[key] = (number, value)
    return fresh, repeats


def _apply_bare(
    hash_list: HashList,
    bare: BareHashes,
    pending: _Pending,
    report: ImportReport,
    progress: Callable[[int], None] | None,
    pack: RowPack | None = None,
) -> None:
    """Apply bare hashes chunk by chunk (see the module docstring): the same checks as
    any record (`normalize_signals`), the same de-duplication (`live_entry_keys`) and
    the same bulk insert, with no per-record objects beyond a tuple."""
    session = pending.session
    signal = get_signal(bare.signal)
    name = signal.name
    refused = None
    try:
        L.check_list_signal(hash_list, name)
    except RidgelineError as exc:
        refused = str(exc)
    if bare.ready is not None:
        _apply_bare_ready(hash_list, bare, signal, pending, report, progress, pack)
        return
    normalize = signal.normalize
    errors = report.errors
    prefix = bare.prefix
    fields = {"source": pending.source} if pending.source else {}
    for chunk in bare.chunks:
        report.read += len(chunk)
        fresh, repeats = check_bare_chunk(chunk, prefix, normalize, refused, errors)
        report.duplicates += repeats
        if fresh:
            for _, _, key in L.live_entry_keys(session, hash_list, [(name, k) for k in fresh]):
                if fresh.pop(key, None) is not None:
                    report.duplicates += 1
        if fresh:
            ids = pending.insert(
                [
                    L.NewEntry(
                        {name: value}, fields=fields, position=f"{prefix}{number}", keys={name: key}
                    )
                    for key, (number, value) in fresh.items()
                ]
            )
            if pack is not None:
                pack.add(signal, ids, [v for _, v in fresh.values()], list(fresh))
        if progress is not None:
            progress(report.read)


def _apply_bare_ready(
    hash_list: HashList,
    bare: BareHashes,
    signal: SignalType,
    pending: _Pending,
    report: ImportReport,
    progress: Callable[[int], None] | None,
    pack: RowPack | None,
) -> None:
    """`_apply_bare` of chunks the parsing process checked (`rows.BarePart`): their
    counts and rejects join the report, their new keys are looked up in the list (the
    earlier chunks are in it) and the rest inserted from the keys and line numbers as
    they came, by `lists.insert_bare_keys` (no per-line objects in this process)."""
    session = pending.session
    name = signal.name
    errors = report.errors
    source = pending.source
    # Into a list with no live entry, a key can only repeat one this import inserted,
    # whose prefix the parsing process remembers (`BarePart.known`): only those are
    # looked up (a file without repeats: no lookup at all).
    empty = (
        session.scalar(
            select(Entry.id)
            .where(Entry.list_id == hash_list.id, Entry.deleted_at.is_(None))
            .limit(1)
        )
        is None
    )
    # A big file into an empty list: the key-prefix index is built at the end rather
    # than kept up row by row (`lists.DeferredKeyIndex`), unless a key must be looked up.
    index = L.DeferredKeyIndex(session)
    if empty and bare.size >= DEFER_INDEX_BYTES:
        index.defer(bare.size // DEFER_LINE_BYTES)
    try:
        for part in bare.ready or ():
            report.read += part.read
            report.duplicates += part.duplicates
            errors.extend(part.errors)
            keys, numbers, texts = part.keys, part.numbers, part.texts
            if keys:
                if empty and part.known is not None:
                    asked = [(name, keys[i]) for i in part.known]
                else:
                    asked = [(name, k) for k in keys]
                if asked:
                    index.need()
                found = L.live_entry_keys(session, hash_list, asked) if asked else []
                if found:
                    known = {key for _, _, key in found}
                    kept = [i for i, key in enumerate(keys) if key not in known]
                    report.duplicates += len(keys) - len(kept)
                    keys = [keys[i] for i in kept]
                    numbers = [numbers[i] for i in kept]
                    texts = None if texts is None else [texts[i] for i in kept]
            if keys:
                ids = pending.insert_bare(name, keys, texts, numbers, bare.prefix, source, index)
                if pack is not None:
                    if texts is None:
                        pack.add_keys(signal, ids, keys)
                    else:
                        pack.spoil()  # values stored as text: SQL is their only source
            if progress is not None:
                progress(report.read)
    except BaseException:  # a caller that catches the error and commits keeps the index
        with contextlib.suppress(SQLAlchemyError):
            index.need(rest=False)
        raise
    index.need(rest=False)


def _update(
    session: Session,
    entry_id: int,
    record: ExchangeRecord,
    signals: dict[str, str],
    classes: list[dict[str, str]],
    actor: str | None,
    batch: str,
) -> bool:
    """Bring an entry the source already sent up to date; False when nothing changed."""
    entry = session.get(Entry, entry_id, options=[selectinload(Entry.signals)])
    if entry is None:
        return False
    if not L.update_entry_signals(
        session, entry, signals, classes, qualities=record.qualities, actor=actor, batch=batch
    ):
        return False
    _merge_meta(session, entry.id, record.extra, "")
    return True


def mark_withdrawn(session: Session, entry_ids: Sequence[int]) -> None:
    """Record that these (deleted) entries were withdrawn by the person who submitted
    them, so the StopNCII export writes `Withdrawn`, not `Deleted` (StopNCII's states)."""
    for entry_id in entry_ids:
        _merge_meta(session, entry_id, {"hashStatus": "Withdrawn"}, "stopncii")


def _merge_meta(session: Session, entry_id: int, extra: dict[str, Any], fmt: str) -> None:
    """Keep the newest format facts of an entry (a withdrawal's status, say)."""
    if not extra:
        return
    meta = session.get(ExchangeMeta, entry_id)
    if meta is None:
        session.add(ExchangeMeta(entry_id=entry_id, format=fmt, data=extra))
    else:
        meta.data = {**meta.data, **extra}


def _remember(
    session: Session, hash_list: HashList, source: str, fmt: str, newest: dt.datetime | None
) -> None:
    state = session.scalar(
        select(SyncState).where(SyncState.list_id == hash_list.id, SyncState.source == source)
    )
    if state is None:
        state = SyncState(list_id=hash_list.id, source=source, format=fmt, max_timestamp=newest)
        session.add(state)
    elif newest is not None and (
        state.max_timestamp is None or as_utc(state.max_timestamp) < newest
    ):
        state.max_timestamp = newest


def export_items(
    session: Session,
    hash_list: HashList,
    *,
    include_deleted: bool = False,
    matchable_at: dt.datetime | None = None,
    statuses: Sequence[str] | None = None,
) -> list[ExportItem]:
    """The list's entries as exporters see them (`lists.read_entries`: live, tombstones
    too if asked, or only those matchable at `matchable_at`), with kept format facts."""
    views = L.read_entries(
        session,
        hash_list,
        include_deleted=include_deleted,
        matchable_at=matchable_at,
        statuses=statuses,
    )
    metas: dict[int, dict[str, Any]] = {
        entry_id: data
        for entry_id, data in session.execute(
            select(ExchangeMeta.entry_id, ExchangeMeta.data)
            .join(Entry, Entry.id == ExchangeMeta.entry_id)
            .where(Entry.list_id == hash_list.id)
        )
    }
    return [
        ExportItem(
            entry_id=v.entry_id,
            signals=dict(v.signals),
            classifications=[dict(c) for c in v.classifications],
            source=v.source,
            origin_list=v.origin_list,
            origin_member=v.origin_member,
            origin_entry_id=v.origin_entry_id,
            note=v.note,
            deleted=v.deleted,
            updated_at=v.updated_at,
            qualities=dict(v.qualities),
            extra=dict(metas.get(v.entry_id) or {}),
        )
        for v in views
    ]
