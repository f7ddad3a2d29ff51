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
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from ridgeline import parseahead
from ridgeline.errors import BadInput
from ridgeline.store.models import LOOKUP_KEY_MAX, lookup_key
from ridgeline.victims.records import NONE_US, Batch, LineError, parse_batches

#: lines per batch (one frame each)
CHUNK = 20_000
#: files at least this big together are parsed in a second process (below it, the
#: child's start costs more than it saves)
PARSE_AHEAD_BYTES = 16 << 20
PRODUCER = "ridgeline.victims.feed:produce"
_LOWER_HEX = re.compile(r"[0-9a-f]*")
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
    """One batch ready to write: the record columns, the flat hash rows (with their
    exact keys when every value is plain hex, `hex_keys`), the packed sightings of each
    record that has any, and the SQLite text form of the two times (None elsewhere)."""

    database: list[str]
    victim_id: list[str]
    status: list[str]
    agency: list[str | None]
    age_band: list[str]
    gender: list[str]
    region: list[str]
    series: list[tuple[str, ...]]
    same_as: list[tuple[tuple[str, str], ...]]
    first_us: np.ndarray
    ident_us: np.ndarray
    counts: np.ndarray
    times: np.ndarray
    #: the SQLite column text of first_seen / identified_at (None: not SQLite)
    first_text: list[str | None] | None
    ident_text: list[str | None] | None
    #: hash rows: the record's position in the batch, signal, stored value
    hash_at: np.ndarray
    hash_signal: list[str]
    hash_value: list[str]
    #: `hash_key` of each value
    hash_key: np.ndarray
    #: (values as 32 zero-padded bytes each, their lengths), or None if not plain hex
    hash_words: np.ndarray | None
    hash_lengths: np.ndarray | None
    #: positions of the records with sightings, and each one's packed `<i8` times
    pack_at: np.ndarray
    pack_times: list[bytes]
    errors: list[LineError]

    def __len__(self) -> int:
        return len(self.victim_id)


def sqlite_text(micros: np.ndarray) -> list[str | None]:
    """UTC microseconds (NONE_US = null) as SQLAlchemy's SQLite datetime text
    (`YYYY-MM-DD HH:MM:SS.ffffff`, what the ORM reads back), vectorised."""
    present = micros != NONE_US
    stamps = np.datetime_as_string(
        np.where(present, micros, 0).astype("datetime64[us]"), unit="us"
    ).astype("S26")
    stamps.view(np.uint8).reshape(-1, 26)[:, 10] = ord(" ")
    out: list[str | None] = stamps.astype("U26").tolist()
    if not present.all():
        for i in np.flatnonzero(~present).tolist():
            out[i] = None
    return out


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
    joined = "".join(values)
    if not joined.isascii() or _LOWER_HEX.fullmatch(joined) is None:
        return None
    digits = np.frombuffer(bytes.fromhex(joined), dtype=np.uint8)
    padded = np.zeros((n, 32), dtype=np.uint8)
    if (lengths == lengths[0]).all():
        padded[:, : lengths[0] // 2] = digits.reshape(n, lengths[0] // 2)
    else:
        ends = np.cumsum(lengths // 2)
        for i, (e, k) in enumerate(zip(ends.tolist(), (lengths // 2).tolist(), strict=True)):
            padded[i, :k] = digits[e - k : e]
    return padded, lengths


def prepare(batch: Batch, sqlite: bool) -> Prepared:
    """A parsed batch as the rows the writer inserts (everything that needs no store)."""
    counts = batch.counts
    hash_counts = np.fromiter(map(len, batch.hashes), dtype=np.int64, count=len(batch))
    signals = [s for hs in batch.hashes for s, _ in hs]
    values = [v for hs in batch.hashes for _, v in hs]
    if values and max(map(len, values)) > LOOKUP_KEY_MAX:
        values = list(map(lookup_key, values))
    keys = hex_words(values)
    with_times = np.flatnonzero(counts)
    ends = np.cumsum(counts)
    buf = batch.times.astype("<i8").tobytes()
    packs = [
        buf[8 * (e - c) : 8 * e]
        for c, e in zip(counts[with_times].tolist(), ends[with_times].tolist(), strict=True)
    ]
    return Prepared(
        database=batch.database,
        victim_id=batch.victim_id,
        status=np.where(batch.ident_us != NONE_US, "identified", "unidentified").tolist(),
        agency=batch.agency,
        age_band=batch.age_band,
        gender=batch.gender,
        region=batch.region,
        series=batch.series,
        same_as=batch.same_as,
        first_us=batch.first_us,
        ident_us=batch.ident_us,
        counts=counts,
        times=batch.times,
        first_text=sqlite_text(batch.first_us) if sqlite else None,
        ident_text=sqlite_text(batch.ident_us) if sqlite else None,
        hash_at=np.repeat(np.arange(len(batch), dtype=np.int64), hash_counts),
        hash_signal=signals,
        hash_value=values,
        hash_key=(
            keys[0][:, :8].copy().view("<i8").ravel().astype(np.int64)
            if keys
            else np.fromiter(map(hash_key, values), dtype=np.int64, count=len(values))
        ),
        hash_words=keys[0] if keys else None,
        hash_lengths=keys[1] if keys else None,
        pack_at=with_times.astype(np.int64),
        pack_times=packs,
        errors=batch.errors,
    )


class _Frame(msgspec.Struct, array_like=True, gc=False):
    """`Prepared` on the pipe: arrays as raw little-endian bytes."""

    database: list[str]
    victim_id: list[str]
    status: list[str]
    agency: list[str | None]
    age_band: list[str]
    gender: list[str]
    region: list[str]
    series: list[tuple[str, ...]]
    same_as: list[tuple[tuple[str, str], ...]]
    first_us: bytes
    ident_us: bytes
    counts: bytes
    times: bytes
    first_text: list[str | None] | None
    ident_text: list[str | None] | None
    hash_at: bytes
    hash_signal: list[str]
    hash_value: list[str]
    hash_key: bytes
    hash_words: bytes | None
    hash_lengths: bytes | None
    pack_at: bytes
    pack_times: list[bytes]
    errors: list[tuple[str, int, str]]


class _Arg(msgspec.Struct, array_like=True):
    paths: list[str]
    sqlite: bool


_encoder = msgspec.msgpack.Encoder()
_decode_frame = msgspec.msgpack.Decoder(_Frame).decode


def _raw(array: np.ndarray) -> bytes:
    return array.astype("<i8").tobytes()


def _ints(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<i8").astype(np.int64)


def encode(p: Prepared) -> bytes:
    return _encoder.encode(
        _Frame(
            p.database,
            p.victim_id,
            p.status,
            p.agency,
            p.age_band,
            p.gender,
            p.region,
            p.series,
            p.same_as,
            _raw(p.first_us),
            _raw(p.ident_us),
            _raw(p.counts),
            _raw(p.times),
            p.first_text,
            p.ident_text,
            _raw(p.hash_at),
            p.hash_signal,
            p.hash_value,
            _raw(p.hash_key),
            None if p.hash_words is None else p.hash_words.astype(np.uint8).tobytes(),
            None if p.hash_lengths is None else _raw(p.hash_lengths),
            _raw(p.pack_at),
            p.pack_times,
            [(e.source, e.line, e.message) for e in p.errors],
        )
    )


def decode(frame: bytes) -> Prepared:
    f = _decode_frame(frame)
    words = None
    if f.hash_words is not None:
        words = np.frombuffer(f.hash_words, dtype=np.uint8).reshape(-1, 32).copy()
    return Prepared(
        database=f.database,
        victim_id=f.victim_id,
        status=f.status,
        agency=f.agency,
        age_band=f.age_band,
        gender=f.gender,
        region=f.region,
        series=f.series,
        same_as=f.same_as,
        first_us=_ints(f.first_us),
        ident_us=_ints(f.ident_us),
        counts=_ints(f.counts),
        times=_ints(f.times),
        first_text=f.first_text,
        ident_text=f.ident_text,
        hash_at=_ints(f.hash_at),
        hash_signal=f.hash_signal,
        hash_value=f.hash_value,
        hash_key=_ints(f.hash_key),
        hash_words=words,
        hash_lengths=None if f.hash_lengths is None else _ints(f.hash_lengths),
        pack_at=_ints(f.pack_at),
        pack_times=f.pack_times,
        errors=[LineError(s, n, m) for s, n, m in f.errors],
    )


def prepared(sources: Iterable[tuple[str, Iterable[str]]], sqlite: bool) -> Iterator[Prepared]:
    """`(name, lines)` sources as prepared batches, in this process."""
    for name, lines in sources:
        for batch in parse_batches(lines, name, CHUNK):
            yield prepare(batch, sqlite)


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
    """The parseahead producer: the files named in `arg`, one frame per batch."""
    spec = msgspec.msgpack.decode(arg, type=_Arg)
    for p in prepared(_file_sources(spec.paths), spec.sqlite):
        yield encode(p)


def file_batches(
    paths: Sequence[Path], sqlite: bool, *, ahead: bool | None = None
) -> Iterator[Prepared]:
    """The files' prepared batches: parsed in a second process when that is available
    and the files are big enough (`ahead` forces either way), else in this one."""
    names = [str(p) for p in paths]
    if ahead is None:
        size = 0
        for p in paths:
            with contextlib.suppress(OSError):  # the producer reports it when it gets there
                size += p.stat().st_size
        ahead = parseahead.available() and size >= PARSE_AHEAD_BYTES
    arg = _encoder.encode(_Arg(names, sqlite))
    if ahead:
        with parseahead.frames(PRODUCER, arg) as frames:
            for frame in frames:
                yield decode(frame)
        return
    for frame in parseahead.run_inline(PRODUCER, arg):
        yield decode(frame)
