"""A part of a file with its records already checked and turned into the rows the
writer stores: what the parsing process (`ridgeline.exchange.ahead`) sends the writer.

The rows are columns (one list per stored field), so the writer builds its insert
parameters with `zip` and no Python per record; the counts and rejects the checks
produced come with them, to be added to the writer's report. Encoded with msgspec's
msgpack (nothing pickled).
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from typing import Any

import msgspec

from ridgeline.exchange.records import ExchangeRecord

#: A checked record as the writer applies it: the record, its canonical hashes, its
#: labels, whether listed, whether older than `since`, and its hashes' `entry_key`s.
Good = tuple[ExchangeRecord, dict[str, str], list[dict[str, str]], bool, bool, dict[str, bytes]]


class Deletion(msgspec.Struct, array_like=True):
    """A checked deletion, with the newest time (epoch seconds) the file gave its entry
    elsewhere (None: none), which the writer compares with the deletion's own."""

    record: ExchangeRecord
    signals: dict[str, str]
    classes: list[dict[str, str]]
    listed: bool
    older: bool
    keys: dict[str, bytes]
    later: float | None

    def good(self) -> Good:
        return (self.record, self.signals, self.classes, self.listed, self.older, self.keys)


#: Where each value is in a record of `ReadyPart.records`: listed, older than `since`,
#: labels' JSON, position, format facts' JSON (None: none), qualities (None: none),
#: number of hashes, then the `lists.BULK_FIELDS` as stored.
LISTED, OLDER, CLASSES, POSITION, META, QUALITIES, COUNT, FIELDS = range(8)


class ReadyPart(msgspec.Struct, array_like=True):
    """A part's live records as the values the writer stores (see the module docstring).

    One list per record (`records`, laid out as `LISTED`..`FIELDS`), transposed into
    columns by `columns` with `zip` in the writer; record i's `COUNT` hashes follow in
    `hashes` in order, as (signal, key, value or None when the key's hex is the value,
    quality). `clean`: no two records share an origin id or a hash."""

    read: int = 0
    skipped_older: int = 0
    not_listable: int = 0
    errors: list[dict[str, str]] = []
    max_timestamp: dt.datetime | None = None
    meta: dict[str, Any] = {}
    records: list[list[Any]] = []
    hashes: list[list[Any]] = []
    clean: bool = True
    deletions: list[Deletion] = []

    def columns(self) -> list[tuple[Any, ...]]:
        """`records` as one tuple per value (`LISTED`..), made in C."""
        return list(zip(*self.records, strict=True))

    def goods(self) -> list[Good]:
        """The records back as the writer's general path takes them (re-imports, known
        entries): only what that path reads is filled in (not the timestamp, already
        used by the parsing process)."""
        out: list[Good] = []
        loads = json.loads
        at = 0
        hashes = self.hashes
        for one in self.records:
            signals: dict[str, str] = {}
            keys: dict[str, bytes] = {}
            count = one[COUNT]
            for name, key, value, _ in hashes[at : at + count]:
                signals[name] = key.hex() if value is None else value
                keys[name] = key
            at += count
            row = one[FIELDS:]
            meta = one[META]
            record = ExchangeRecord(
                position=one[POSITION],
                signals=signals,
                source=row[0],
                origin_list=row[1],
                origin_member=row[2],
                origin_entry_id=row[3],
                note=row[4],
                series=row[5],
                victim_identified=row[6],
                case_numbers=loads(row[7]) if row[7] else [],
                origin_member_name=row[8],
                qualities=dict(one[QUALITIES] or {}),
                extra=loads(meta) if meta is not None else {},
            )
            out.append((record, signals, loads(one[CLASSES]), one[LISTED], one[OLDER], keys))
        return out

    def subset(self, picked: list[int]) -> ReadyPart:
        """The records at `picked` (in that order) and their hashes."""
        starts: list[int] = []
        at = 0
        for one in self.records:
            starts.append(at)
            at += one[COUNT]
        records = [self.records[i] for i in picked]
        hashes = [
            self.hashes[j]
            for i in picked
            for j in range(starts[i], starts[i] + self.records[i][COUNT])
        ]
        return ReadyPart(records=records, hashes=hashes)


class BarePart(msgspec.Struct, array_like=True):
    """A chunk of a txt file's lines checked by the parsing process (`ahead.produce_txt`):
    its counts and rejects, and its new hashes (first occurrence in the chunk, in file
    order) as their `entry_key`s with their line numbers. `texts`: None when every
    value is its key's hex (`lists.needs_text` false, PDQ and the digests), else each
    value to store beside its key (None where it is the key's hex)."""

    read: int = 0
    duplicates: int = 0
    errors: list[dict[str, str]] = []
    numbers: list[int] = []
    keys: list[bytes] = []
    texts: list[str | None] | None = None
    #: Indexes in `keys` of those whose first `KEY_PREFIX` bytes an earlier chunk's new
    #: key had (the only ones an import into an empty list must look up); None: not
    #: tracked, look them all up.
    known: list[int] | None = None


_PAIR = operator.itemgetter("scheme", "label")  # a checked label is these two, in order


def bulk_fields(record: ExchangeRecord, source: str | None) -> tuple[Any, ...]:
    """`record`'s values of `lists.BULK_FIELDS`, as stored (case numbers as JSON text);
    `source` is the import's, for a record that names none."""
    cases = record.case_numbers
    return (
        record.source or source,
        record.origin_list,
        record.origin_member,
        record.origin_entry_id,
        record.note,
        record.series,
        record.victim_identified,
        json.dumps(cases) if cases else None,
        record.origin_member_name,
    )


def ready_part(live: list[Good], source: str | None) -> ReadyPart:
    """The values of `live` (records already stamped with their `record_time`) as
    `apply._Pending.flush` and `lists.insert_entries` would store them."""
    part = ReadyPart()
    if not live:
        return part
    dumps = json.dumps
    labels: dict[Any, str] = {(): "[]"}
    encoded: dict[Any, str] = {}  # records of a feed share most of their facts
    records, hashes = part.records, part.hashes
    add_record, add_hash = records.append, hashes.append
    pair = _PAIR
    for record, signals, classes, listed, older, keys in live:
        label_key = tuple(map(pair, classes))
        text = labels.get(label_key)
        if text is None:
            text = labels[label_key] = dumps(list(classes))
        extra = record.extra
        meta: str | None = None
        if extra:
            try:
                extra_key: Any = tuple(extra.items())
                meta = encoded.get(extra_key)
            except TypeError:  # a nested value: not shared
                extra_key = None
            if meta is None:
                meta = dumps(extra)
                if extra_key is not None:
                    encoded[extra_key] = meta
        qualities = record.qualities
        add_record(
            [
                listed,
                older,
                text,
                record.position,
                meta,
                qualities or None,
                len(signals),
                *bulk_fields(record, source),
            ]
        )
        for name, value in signals.items():
            key = keys[name]
            # `lists.needs_text`, inline, as `lists.insert_entries` stores it
            add_hash(
                [
                    name,
                    key,
                    None if len(key) * 2 == len(value) and key.hex() == value else value,
                    qualities.get(name) if qualities else None,
                ]
            )
    part.clean = _unique(records, hashes)
    return part


def _unique(records: list[list[Any]], hashes: list[list[Any]]) -> bool:
    """Whether no two records share an origin (member, id) or a hash (signal, key)."""
    if hashes:
        names, keys, *_ = zip(*hashes, strict=True)
        if len(set(zip(names, keys, strict=True))) != len(names):
            return False
    member, origin_id = FIELDS + 2, FIELDS + 3
    origins = [(one[member], one[origin_id]) for one in records if one[origin_id] is not None]
    return len(set(origins)) == len(origins)
