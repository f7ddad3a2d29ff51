"""Order-independent deletions across files and feed pages.

`apply_records` orders deletions after the other records of one file. Across files
(or pages of a feed) a deletion can still come before its entry: NCMEC pages are not
in time order, a withdrawal page can precede the page holding the hash. Such a
deletion is kept as a `WaitingTombstone`; when its entry arrives later (in any file or
page of any source feeding the same list), the deletion wins if it is not older than
the entry's own time and the entry is tombstoned at once; a newer entry wins over the
older deletion. The waiting row is dropped when it has been settled either way.

Everything runs in the caller's transaction, around `apply_records` (called through
its own signature, so the writer's internals stay its own business).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from ridgeline import lists as L
from ridgeline.errors import RidgelineError
from ridgeline.exchange.apply import ImportReport, apply_records
from ridgeline.exchange.models import ExchangeMeta, WaitingTombstone
from ridgeline.exchange.records import ExchangeRecord, ParseResult
from ridgeline.lists.models import Entry, HashList, entry_key
from ridgeline.store.models import lookup_key
from ridgeline.timeutil import as_utc, isoformat

#: Values per IN (...) list (under SQLite's old 999-parameter limit).
_CHUNK = 900

Origin = tuple[str | None, str]
#: (signal, canonical value): the waiting table stores its `lookup_key`, the lists
#: their compact `entry_key`.
Key = tuple[str, str]


def apply_with_tombstones(
    session: Session, hash_list: HashList, parsed: ParseResult, **options: Any
) -> ImportReport:
    """`apply_records(session, hash_list, parsed, **options)`, then settle deletions
    that came before their entries (this file's or an earlier one's).

    Deletions in `parsed` whose entry the list does not hold (and the file does not
    carry) are kept waiting; entries of `parsed` that a waiting deletion names are
    tombstoned when the deletion is not older than them (counted in `deleted`).
    """
    source = options.get("source") or parsed.format
    if parsed.parts is not None:
        return _apply_streamed(session, hash_list, parsed, source, options)
    waiting = _unmatched_deletions(session, hash_list, parsed)
    report = apply_records(session, hash_list, parsed, **options)
    for record, origin, keys in waiting:
        _wait(session, hash_list, record, origin, keys, source)
    report.deleted += _settle(session, hash_list, parsed, options.get("actor"), source)
    session.flush()
    return report


def _apply_streamed(
    session: Session, hash_list: HashList, parsed: ParseResult, source: str, options: Any
) -> ImportReport:
    """The same for a streamed file, never holding more than a part: each part's
    arrivals are settled once the writer has applied it (when it asks for the next),
    and the deletions the writer found no entry for are kept waiting."""
    actor = options.get("actor")
    settled = 0
    held: list[ParseResult] = []
    parts = parsed.parts or ()

    def watched() -> Any:
        nonlocal settled
        for part in parts:
            if held:
                settled += _settle(session, hash_list, held.pop(), actor, source)
            yield part
            held.append(part)

    unmatched: list[ExchangeRecord] = []
    streamed = replace(parsed, parts=watched())
    report = apply_records(session, hash_list, streamed, unmatched=unmatched, **options)
    if held:
        settled += _settle(session, hash_list, held.pop(), actor, source)
    for record in unmatched:
        origin, keys = _identity(hash_list, record)
        if origin is not None or keys:
            _wait(session, hash_list, record, origin, keys, source)
    report.deleted += settled
    session.flush()
    return report


def _signals(hash_list: HashList, record: ExchangeRecord) -> dict[str, str]:
    """The record's hashes in canonical form (bad ones left out: the writer reports them)."""
    out: dict[str, str] = {}
    for name, value in record.signals.items():
        try:
            out.update(L.normalize_signals(hash_list, {name: value}))
        except RidgelineError:
            continue
    return out


def _identity(hash_list: HashList, record: ExchangeRecord) -> tuple[Origin | None, list[Key]]:
    """What names the record's entry: its origin (member, id), else its hash keys."""
    if record.origin_entry_id is not None:
        return (record.origin_member, record.origin_entry_id), []
    return None, list(_signals(hash_list, record).items())


def _live_origins(session: Session, hash_list: HashList, ids: Iterable[str]) -> dict[Origin, int]:
    """Live entries of the list by origin, for these origin ids only."""
    wanted = sorted(set(ids))
    out: dict[Origin, int] = {}
    for start in range(0, len(wanted), _CHUNK):
        for entry_id, member, origin_id in session.execute(
            select(Entry.id, Entry.origin_member, Entry.origin_entry_id).where(
                Entry.list_id == hash_list.id,
                Entry.deleted_at.is_(None),
                Entry.origin_entry_id.in_(wanted[start : start + _CHUNK]),
            )
        ):
            if origin_id is not None:
                out[(member, origin_id)] = entry_id
    return out


def _live_keys(session: Session, hash_list: HashList, keys: Iterable[Key]) -> dict[Key, list[int]]:
    by_stored = {(signal, entry_key(value)): (signal, value) for signal, value in keys}
    out: dict[Key, list[int]] = {}
    for entry_id, signal, key in L.live_entry_keys(session, hash_list, set(by_stored)):
        out.setdefault(by_stored[(signal, bytes(key))], []).append(entry_id)
    return out


def _unmatched_deletions(
    session: Session, hash_list: HashList, parsed: ParseResult
) -> list[tuple[ExchangeRecord, Origin | None, list[Key]]]:
    """Deletions of `parsed` that name no live entry of the list and no record of the
    file itself (the writer settles those): they must wait for their entry."""
    deletions = [r for r in parsed.records if r.deleted]
    if not deletions:
        return []
    in_file_origins: set[Origin] = set()
    in_file_keys: set[Key] = set()
    for record in parsed.records:
        if not record.deleted:
            origin, keys = _identity(hash_list, record)
            if origin is not None:
                in_file_origins.add(origin)
            in_file_keys.update(keys)
    named = [(r, *_identity(hash_list, r)) for r in deletions]
    live_origins = _live_origins(session, hash_list, (o[1] for _, o, _ in named if o is not None))
    live_keys = _live_keys(session, hash_list, (k for _, _, ks in named for k in ks))
    out: list[tuple[ExchangeRecord, Origin | None, list[Key]]] = []
    for record, origin, keys in named:
        if origin is not None:
            if origin in in_file_origins or origin in live_origins:
                continue
        elif not keys or any(k in in_file_keys or k in live_keys for k in keys):
            continue
        out.append((record, origin, keys))
    return out


def _wait(
    session: Session,
    hash_list: HashList,
    record: ExchangeRecord,
    origin: Origin | None,
    keys: list[Key],
    source: str,
) -> None:
    """Keep (or bring up to date) the waiting row of a deletion."""
    when = as_utc(record.timestamp) if record.timestamp is not None else None
    names: list[tuple[Origin | None, Key | None]] = (
        [(origin, None)] if origin is not None else [(None, k) for k in keys]
    )
    for one_origin, key in names:
        query = select(WaitingTombstone).where(WaitingTombstone.list_id == hash_list.id)
        if one_origin is not None:
            query = query.where(
                WaitingTombstone.origin_entry_id == one_origin[1],
                WaitingTombstone.origin_member.is_(None)
                if one_origin[0] is None
                else WaitingTombstone.origin_member == one_origin[0],
            )
        else:
            assert key is not None
            query = query.where(
                WaitingTombstone.signal == key[0],
                WaitingTombstone.lookup_key == lookup_key(key[1]),
            )
        row = session.scalars(query.limit(1)).first()
        if row is None:
            session.add(
                WaitingTombstone(
                    list_id=hash_list.id,
                    origin_member=one_origin[0] if one_origin else None,
                    origin_entry_id=one_origin[1] if one_origin else None,
                    signal=key[0] if key else None,
                    lookup_key=lookup_key(key[1]) if key else None,
                    deleted_time=when,
                    source=source,
                )
            )
        elif row.deleted_time is not None and (when is None or as_utc(row.deleted_time) < when):
            row.deleted_time = when


def has_waiting(session: Session, hash_list: HashList) -> bool:
    """Whether deletions of the list wait for their entries (an import must settle them)."""
    return (
        session.scalar(
            select(WaitingTombstone.id).where(WaitingTombstone.list_id == hash_list.id).limit(1)
        )
        is not None
    )


def _settle(
    session: Session, hash_list: HashList, parsed: ParseResult, actor: str | None, source: str
) -> int:
    """Apply waiting deletions to the entries of `parsed` they name; how many were
    tombstoned."""
    has_waiting = session.scalar(
        select(WaitingTombstone.id).where(WaitingTombstone.list_id == hash_list.id).limit(1)
    )
    if has_waiting is None:
        return 0
    arrivals: list[tuple[ExchangeRecord, Origin | None, list[Key]]] = [
        (r, *_identity(hash_list, r)) for r in parsed.records if not r.deleted
    ]
    origin_ids = sorted({o[1] for _, o, _ in arrivals if o is not None})
    key_values = sorted({lookup_key(k[1]) for _, _, ks in arrivals for k in ks})
    rows: list[WaitingTombstone] = []
    for start in range(0, max(len(origin_ids), len(key_values)), _CHUNK):
        conditions = []
        if origin_ids[start : start + _CHUNK]:
            conditions.append(
                WaitingTombstone.origin_entry_id.in_(origin_ids[start : start + _CHUNK])
            )
        if key_values[start : start + _CHUNK]:
            conditions.append(WaitingTombstone.lookup_key.in_(key_values[start : start + _CHUNK]))
        rows.extend(
            session.scalars(
                select(WaitingTombstone).where(
                    WaitingTombstone.list_id == hash_list.id, or_(*conditions)
                )
            )
        )
    if not rows:
        return 0
    by_origin = {(r.origin_member, r.origin_entry_id): r for r in rows if r.origin_entry_id}
    by_key = {(r.signal, r.lookup_key): r for r in rows if r.lookup_key}
    live_origins = _live_origins(session, hash_list, origin_ids)
    live_keys = _live_keys(session, hash_list, (k for _, _, ks in arrivals for k in ks))
    deleted = 0
    settled: set[int] = set()
    for record, origin, keys in arrivals:
        matches: list[tuple[WaitingTombstone, list[int]]] = []
        if origin is not None and origin in by_origin and origin in live_origins:
            matches.append((by_origin[origin], [live_origins[origin]]))
        for key in keys:
            waiting = by_key.get((key[0], lookup_key(key[1])))
            if waiting is not None and key in live_keys:
                matches.append((waiting, live_keys[key]))
        for row, entry_ids in matches:
            if row.id in settled:
                continue
            settled.add(row.id)
            if _deletion_wins(row.deleted_time, record.timestamp):
                for entry_id in entry_ids:
                    entry = session.get(Entry, entry_id)
                    if entry is None or entry.deleted_at is not None:
                        continue
                    L.delete_entry(
                        session,
                        entry,
                        actor=actor,
                        reason=f"deleted by {row.source} (the deletion came first)",
                    )
                    _note_deletion(session, entry_id, row.deleted_time, parsed.format)
                    deleted += 1
    if settled:
        session.execute(delete(WaitingTombstone).where(WaitingTombstone.id.in_(sorted(settled))))
    return deleted


def _deletion_wins(deleted_time: dt.datetime | None, record_time: dt.datetime | None) -> bool:
    """A deletion wins unless the entry is known to be newer than it."""
    if deleted_time is None or record_time is None:
        return True
    return as_utc(deleted_time) >= as_utc(record_time)


def _note_deletion(session: Session, entry_id: int, when: dt.datetime | None, fmt: str) -> None:
    """Keep the partner's time of the deletion, as the writer does for its own."""
    if when is None:
        return
    meta = session.get(ExchangeMeta, entry_id)
    extra = {"deleted_time": isoformat(as_utc(when))}
    if meta is None:
        session.add(ExchangeMeta(entry_id=entry_id, format=fmt, data=extra))
    else:
        meta.data = {**meta.data, **extra}


def waiting_count(session: Session, hash_list: HashList) -> int:
    """Deletions of the list still waiting for their entry."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(WaitingTombstone)
            .where(WaitingTombstone.list_id == hash_list.id)
        )
        or 0
    )
