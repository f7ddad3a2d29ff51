"""An import's parsing as a producer of compact batches, run in a second process.

`ridgeline victims import` of big files reads and parses them in a child process
(`ridgeline.parseahead`): reading, msgspec decoding, the column checks, time
conversion, the hashes' exact keys and the packed sightings are done there, and each
batch comes back as one msgpack frame of columns (numbers as raw little-endian
bytes, nothing pickled), so the writing process only writes and merges. Small inputs,
standard input and `RIDGELINE_PARSE_AHEAD=0` run the same `prepare` in this process
(files through the same producer, `parseahead.run_inline`), so both paths store the
same rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ridgeline import parseahead
from ridgeline.errors import BadInput
from ridgeline.store.models import LOOKUP_KEY_MAX, lookup_key, utc_micros
from ridgeline.victims.records import NONE_US, Batch, LineError, lower_hex, parse_batches

#: lines per batch (one frame each)
CHUNK = 20_000
#: files at least this big together are parsed in a second process (below it, the
#: child's start costs more than it saves)
PARSE_AHEAD_BYTES = 16 << 20
PRODUCER = "ridgeline.victims.feed:produce"
_PLAIN_HEX = re.compile(r"(?:[0-9a-f]{2}){1,32}")


def hash_key(value: str) -> int:
    """A hash row's short integer key (`victim_hashes.key`, indexed): the first 8 bytes
    of a plain hex value (lowercase, even length, at most 64 digits; zero-padded), else
    8 bytes of BLAKE2b of the text, as a signed little-endian int64. Equal values have
    equal keys; rows with equal keys are compared by (signal, value) after."""
    if _PLAIN_HEX.fullmatch(value):
        raw = bytes.fromhex(value[:16]).ljust(8, b"\0")
    else:
        raw = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(raw, "little", signed=True)


@dataclass
class Prepared:
    """One batch ready to write. Its records get the ids `first_id`, `first_id + 1`, ...
    and its hash rows `first_hash`, ... (the writer hands out ids in the same order), so
    the rows of `victim_records`, `victim_hashes`, `victim_links` and
    `victim_sighting_packs` come ready for the driver; the columns are what the writer
    keeps for replacing records, series and the merge."""

    first_id: int
    first_hash: int
    database: list[str]
    victim_id: list[str]
    agency: list[str | None]
    age_band: list[str]
    gender: list[str]
    region: list[str]
    series: list[tuple[str, ...]]
    first_us: np.ndarray
    ident_us: np.ndarray
    counts: np.ndarray
    times: np.ndarray
    record_rows: list[tuple[Any, ...]]
    hash_rows: list[tuple[Any, ...]]
    link_rows: list[tuple[Any, ...]]
    pack_rows: list[tuple[Any, ...]]
    #: each hash row's record id, and its exact key for grouping in memory (`_HashKeys`):
    #: signal code * 128 + length, and the value's digits as 32 zero-padded bytes; None
    #: if a value of the batch is not plain hex
    hash_owner: np.ndarray
    hash_kind: np.ndarray | None
    hash_words: np.ndarray | None
    errors: list[LineError]

    def __len__(self) -> int:
        return len(self.victim_id)


def hex_words(values: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Hash values as exact fixed-width keys: hex digits as bytes zero-padded to 32
    (the value's length kept beside), or None if a value is not lowercase hex of an
    even length of at most 64 digits."""
    n = len(values)
    if not n:
        return np.zeros((0, 32), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    if lengths.max() > 64 or (lengths % 2).any() or not lengths.all():
        return None
    raw = lower_hex("".join(values))
    if raw is None:
        return None
    digits = np.frombuffer(raw, dtype=np.uint8)
    padded = np.zeros((n, 32), dtype=np.uint8)
    if (lengths == lengths[0]).all():
        padded[:, : lengths[0] // 2] = digits.reshape(n, lengths[0] // 2)
    else:
        ends = np.cumsum(lengths // 2)
        for i, (e, k) in enumerate(zip(ends.tolist(), (lengths // 2).tolist(), strict=True)):
            padded[i, :k] = digits[e - k : e]
    return padded, lengths


class Spec(msgspec.Struct, array_like=True):
    """What the producer needs besides the lines: the files (for the child), the
    first record and hash row ids, and the import's time."""

    paths: list[str]
    first_id: int
    first_hash: int
    now: dt.datetime


class Feeder:
    """Prepares one import's batches in order, handing out ids as the writer will."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.next_id = spec.first_id
        self.next_hash = spec.first_hash
        self.signals: dict[str, int] = {}
        self.now = utc_micros(spec.now)

    @staticmethod
    def _times(micros: np.ndarray) -> list[int | None]:
        """UTC microseconds as the driver binds them (`UtcMicros`: integers; NONE_US is
        null)."""
        out: list[int | None] = micros.tolist()
        missing = micros == NONE_US
        if missing.any():
            for i in np.flatnonzero(missing).tolist():
                out[i] = None
        return out

    def prepare(self, batch: Batch) -> Prepared:
        """A parsed batch as the rows the writer inserts (everything that needs no store)."""
        n = len(batch)
        first_id, first_hash = self.next_id, self.next_hash
        ids = range(first_id, first_id + n)
        self.next_id += n
        counts = batch.counts
        hash_counts = np.fromiter(map(len, batch.hashes), dtype=np.int64, count=n)
        signals = [s for hs in batch.hashes for s, _ in hs]
        values = [v for hs in batch.hashes for _, v in hs]
        if values and max(map(len, values)) > LOOKUP_KEY_MAX:
            values = list(map(lookup_key, values))
        self.next_hash += len(values)
        words = hex_words(values)
        if words is not None:
            keys = words[0][:, :8].copy().view("<i8").ravel().astype(np.int64).tolist()
            codes = self.signals
            for name in dict.fromkeys(signals):
                codes.setdefault(name, len(codes))
            kind = np.fromiter(map(codes.__getitem__, signals), dtype=np.int64, count=len(signals))
            kinds: np.ndarray | None = kind * 128 + words[1]
        else:
            keys = list(map(hash_key, values))
            kinds = None
        owners = np.repeat(np.arange(first_id, first_id + n, dtype=np.int64), hash_counts)
        dbs = batch.database
        records = list(
            zip(
                ids,
                dbs,
                batch.victim_id,
                self._times(batch.first_us),
                self._times(batch.ident_us),
                batch.agency,
                batch.age_band,
                batch.gender,
                batch.region,
                [self.now] * n,
                strict=True,
            )
        )
        with_times = np.flatnonzero(counts)
        ends = np.cumsum(counts)
        buf = batch.times.astype("<i8").tobytes()
        packs = [
            (first_id + k, c, buf[8 * (e - c) : 8 * e])
            for k, c, e in zip(
                with_times.tolist(),
                counts[with_times].tolist(),
                ends[with_times].tolist(),
                strict=True,
            )
        ]
        return Prepared(
            first_id=first_id,
            first_hash=first_hash,
            database=dbs,
            victim_id=batch.victim_id,
            agency=batch.agency,
            age_band=batch.age_band,
            gender=batch.gender,
            region=batch.region,
            series=batch.series,
            first_us=batch.first_us,
            ident_us=batch.ident_us,
            counts=counts,
            times=batch.times,
            record_rows=records,
            hash_rows=list(
                zip(
                    range(first_hash, self.next_hash),
                    owners.tolist(),
                    signals,
                    values,
                    keys,
                    strict=True,
                )
            ),
            link_rows=[
                (rid, d, v) for rid, links in zip(ids, batch.same_as, strict=True) for d, v in links
            ],
            pack_rows=packs,
            hash_owner=owners,
            hash_kind=kinds,
            hash_words=words[0] if words is not None else None,
            errors=batch.errors,
        )


class _Frame(msgspec.Struct, array_like=True, gc=False):
    """`Prepared` on the pipe: arrays as raw little-endian bytes, rows as arrays."""

    first_id: int
    first_hash: int
    database: list[str]
    victim_id: list[str]
    agency: list[str | None]
    age_band: list[str]
    gender: list[str]
    region: list[str]
    series: list[tuple[str, ...]]
    first_us: bytes
    ident_us: bytes
    counts: bytes
    times: bytes
    record_rows: list[tuple[Any, ...]]
    hash_rows: list[tuple[Any, ...]]
    link_rows: list[tuple[Any, ...]]
    pack_rows: list[tuple[Any, ...]]
    hash_owner: bytes
    hash_kind: bytes | None
    hash_words: bytes | None
    errors: list[tuple[str, int, str]]


_encoder = msgspec.msgpack.Encoder()
_decode_frame = msgspec.msgpack.Decoder(_Frame).decode


def _raw(array: np.ndarray) -> bytes:
    return array.astype("<i8").tobytes()


def _ints(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<i8").astype(np.int64)


def encode(p: Prepared) -> bytes:
    return _encoder.encode(
        _Frame(
            p.first_id,
            p.first_hash,
            p.database,
            p.victim_id,
            p.agency,
            p.age_band,
            p.gender,
            p.region,
            p.series,
            _raw(p.first_us),
            _raw(p.ident_us),
            _raw(p.counts),
            _raw(p.times),
            p.record_rows,
            p.hash_rows,
            p.link_rows,
            p.pack_rows,
            _raw(p.hash_owner),
            None if p.hash_kind is None else _raw(p.hash_kind),
            None if p.hash_words is None else p.hash_words.astype(np.uint8).tobytes(),
            [(e.source, e.line, e.message) for e in p.errors],
        )
    )


def decode(frame: bytes) -> Prepared:
    """A frame back as a batch (its rows decoded straight into tuples)."""
    f = _decode_frame(frame)
    words = None
    if f.hash_words is not None:
        words = np.frombuffer(f.hash_words, dtype=np.uint8).reshape(-1, 32).copy()
    return Prepared(
        first_id=f.first_id,
        first_hash=f.first_hash,
        database=f.database,
        victim_id=f.victim_id,
        agency=f.agency,
        age_band=f.age_band,
        gender=f.gender,
        region=f.region,
        series=f.series,
        first_us=_ints(f.first_us),
        ident_us=_ints(f.ident_us),
        counts=_ints(f.counts),
        times=_ints(f.times),
        record_rows=f.record_rows,
        hash_rows=f.hash_rows,
        link_rows=f.link_rows,
        pack_rows=f.pack_rows,
        hash_owner=_ints(f.hash_owner),
        hash_kind=None if f.hash_kind is None else _ints(f.hash_kind),
        hash_words=words,
        errors=[LineError(s, n, m) for s, n, m in f.errors],
    )


def prepared(sources: Iterable[tuple[str, Iterable[str]]], spec: Spec) -> Iterator[Prepared]:
    """`(name, lines)` sources as prepared batches, in this process."""
    feeder = Feeder(spec)
    for name, lines in sources:
        for batch in parse_batches(lines, name, CHUNK):
            yield feeder.prepare(batch)


def utf8_lines(lines: Iterable[str], name: str) -> Iterator[str]:
    """The lines of a text stream, a decoding failure being `BadInput` naming it (it is
    raised while reading, so here, not where the file was opened)."""
    try:
        yield from lines
    except UnicodeDecodeError:
        raise BadInput(f"{name}: not UTF-8") from None


def _file_sources(paths: Sequence[str]) -> Iterator[tuple[str, Iterable[str]]]:
    """Each file opened as a stream when it is reached; unreadable or non-UTF-8 files
    are `BadInput` naming the file."""
    for path in paths:
        try:
            handle = open(path, encoding="utf-8", errors="strict", buffering=1 << 20)  # noqa: SIM115
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror}") from None
        with handle:
            yield (path, utf8_lines(handle, path))


def produce(arg: bytes) -> Iterator[bytes]:
    """The parseahead producer: the files named in the `Spec`, one frame per batch."""
    spec = msgspec.msgpack.decode(arg, type=Spec)
    for p in prepared(_file_sources(spec.paths), spec):
        yield encode(p)


def file_batches(
    paths: Sequence[Path], spec: Spec, *, ahead: bool | None = None
) -> Iterator[Prepared]:
    """The files' prepared batches: parsed in a second process when that is available
    and the files are big enough (`ahead` forces either way), else in this one."""
    if ahead is None:
        size = 0
        for p in paths:
            with contextlib.suppress(OSError):  # the producer reports it when it gets there
                size += p.stat().st_size
        ahead = parseahead.available() and size >= PARSE_AHEAD_BYTES
    arg = _encoder.encode(msgspec.structs.replace(spec, paths=[str(p) for p in paths]))
    if ahead:
        with parseahead.frames(PRODUCER, arg) as frames:
            for frame in frames:
                yield decode(frame)
        return
    for frame in parseahead.run_inline(PRODUCER, arg):
        yield decode(frame)
