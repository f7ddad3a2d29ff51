"""A big NCMEC XML, VICS JSON or txt import read in a second process (`ridgeline.parseahead`).

The parsing process reads the file, checks its records (`apply.RecordFilter`: hashes,
labels, listability, `since`), stamps them (`apply.stamp_live`) and turns the live ones
into the rows the writer stores (`rows.ReadyPart`, msgpack); the writer's process only
looks up the entries the rows may name and inserts them, in its one transaction. On
two cores the parse and the writes overlap. A small file, `RIDGELINE_PARSE_AHEAD=0` or
a one-core machine runs the same producer in the writer's process
(`parseahead.run_inline`), so both paths store the same rows. The file's deletions come
in the last frame, each with the newest time the file gave its entry.

A txt file (`produce_txt`) is read the same way: the parsing process splits its lines
into the writer's chunks (`native.txt_chunks`), checks and normalises each hash, computes
its `entry_key` and drops the chunk's repeats, and sends each chunk's new keys with
their line numbers (`rows.BarePart`); the writer only looks them up in the list (earlier
chunks, entries already there) and inserts the rest (`apply._apply_bare`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np

from ridgeline import parseahead
from ridgeline.errors import RidgelineError
from ridgeline.exchange import native, ncmec, vics
from ridgeline.exchange.apply import (
    ImportReport,
    Newest,
    RecordFilter,
    check_bare_chunk,
    identities,
    stamp_live,
)
from ridgeline.exchange.records import BareHashes, ParseResult, stream_chunks, stream_lines
from ridgeline.exchange.rows import BarePart, Deletion, Good, ReadyPart, ready_part
from ridgeline.gcpause import gc_paused
from ridgeline.lists import check_list_signal
from ridgeline.lists.models import KEY_PREFIX, HashList
from ridgeline.signals import get_signal

#: The producers the second process runs (partner formats, txt).
TARGET = "ridgeline.exchange.ahead:produce"
TXT_TARGET = "ridgeline.exchange.ahead:produce_txt"
#: Smallest file worth a second process. Its start (an interpreter importing the
#: exchange modules) costs about 0.5 CPU-s (measured here: 0.44-0.50 s user, 2.6 s wall
#: at load 6 on 2 cores); a file of this size (about 30,000 NCMEC records) takes about
#: 2.5 CPU-s to import in one process, of which the second takes 1 s.
MIN_BYTES = 8 << 20

#: Records per part sent to the writer (0: the format's own `PART`, 10,000).
PART = 0
#: txt lines per chunk (0: `native.TXT_CHUNK`).
TXT_CHUNK = 0

_STREAMED = {ncmec.NAME: ncmec.parse_stream, vics.NAME: vics.parse_stream}


class Job(msgspec.Struct, array_like=True):
    """What the parsing process needs: the file, and the list facts and options the
    checks read (the list's name and signals; nothing from the database)."""

    path: str
    fmt: str
    what: str
    list_name: str
    list_signals: list[str]
    source: str | None
    since: dt.datetime | None
    watermark: bool
    not_listable: str
    #: Records per part (0: the format's `PART`); tests make it small.
    part: int = 0


class TxtJob(msgspec.Struct, array_like=True):
    """A txt import for the parsing process: the file, the signal of its hashes and the
    list's name and signals (whether the list takes that signal)."""

    path: str
    what: str
    signal: str
    list_name: str
    list_signals: list[str]
    #: Lines per chunk (0: `native.TXT_CHUNK`); tests make it small.
    chunk: int = 0


_encode = msgspec.msgpack.Encoder().encode
_decode_job = msgspec.msgpack.Decoder(Job).decode
_decode_part = msgspec.msgpack.Decoder(ReadyPart).decode
_decode_txt_job = msgspec.msgpack.Decoder(TxtJob).decode
_decode_bare = msgspec.msgpack.Decoder(BarePart).decode


def worth_it(path: str) -> bool:
    """Whether `path` is big enough to pay for a second process."""
    try:
        return os.path.getsize(path) >= MIN_BYTES
    except OSError:
        return False


def parts(job: Job, *, ahead: bool) -> ParseResult:
    """The file of `job` as a streamed `ParseResult` whose parts are `ReadyPart`s, read
    in a second process when `ahead` (else in this one, by the same producer)."""
    arg = _encode(job)

    def frames() -> Iterator[Any]:
        source = parseahead.iterate(TARGET, arg) if ahead else parseahead.run_inline(TARGET, arg)
        for frame in source:
            yield _decode_part(frame)

    return ParseResult(job.fmt, parts=frames())


def produce(arg: bytes) -> Iterator[bytes]:
    """The producer: one frame per part of the file, then one with its deletions. The
    cyclic collector is paused, as in the writer (`apply.apply_records`): the parts'
    short-lived objects have no cycles, and its rescans were half the parse's time."""
    with gc_paused():
        yield from _produce(_decode_job(arg))


def _produce(job: Job) -> Iterator[bytes]:
    hash_list = HashList(name=job.list_name, signals=list(job.list_signals))
    report = ImportReport(job.list_name, job.fmt, job.source or job.fmt, "")
    check = RecordFilter(
        hash_list, report, since=job.since, watermark=job.watermark, not_listable=job.not_listable
    )
    newest = Newest()
    waiting: list[Good] = []
    parsed = _STREAMED[job.fmt](stream_chunks(job.path), job.what, part=job.part or None)
    for part in parsed.parts or ():
        report.read = report.skipped_older = report.not_listable = 0
        report.errors = []
        live: list[Good] = []
        for one in check(part):
            (waiting if one[0].deleted else live).append(one)
        stamp_live(live, newest)
        ready = ready_part(live, job.source)
        ready.read, ready.skipped_older = report.read, report.skipped_older
        ready.not_listable, ready.errors = report.not_listable, report.errors
        ready.max_timestamp, ready.meta = part.max_timestamp, part.meta
        yield _encode(ready)
    later = newest.lookup({hash(k) for one in waiting for k in identities(one[0], one[5])})
    deletions = []
    for one in waiting:
        found = [later[h] for k in identities(one[0], one[5]) if (h := hash(k)) in later]
        deletions.append(Deletion(*one, later=max(found) if found else None))
    yield _encode(ReadyPart(deletions=deletions))


def txt_parts(job: TxtJob, *, ahead: bool) -> ParseResult:
    """The txt file of `job` as a `ParseResult` whose bare hashes come checked
    (`BareHashes.ready`), read in a second process when `ahead` (else in this one)."""
    arg = _encode(job)

    def frames() -> Iterator[BarePart]:
        source = (
            parseahead.iterate(TXT_TARGET, arg) if ahead else parseahead.run_inline(TXT_TARGET, arg)
        )
        for frame in source:
            yield _decode_bare(frame)

    try:
        size = os.path.getsize(job.path)
    except OSError:
        size = 0  # the producer says why
    return ParseResult("txt", bare=BareHashes(job.signal, (), ready=frames(), size=size))


def produce_txt(arg: bytes) -> Iterator[bytes]:
    """The txt producer: one `BarePart` frame per chunk of the file (collector paused,
    as in `produce`)."""
    with gc_paused():
        yield from _produce_txt(_decode_txt_job(arg))


def _produce_txt(job: TxtJob) -> Iterator[bytes]:
    # What `apply._apply_bare` does per line (`check_bare_chunk`), in the same order,
    # so the reports and the rows stored are the same.
    signal = get_signal(job.signal)
    name = signal.name
    refused = None
    try:
        check_list_signal(HashList(name=job.list_name, signals=list(job.list_signals)), name)
    except RidgelineError as exc:
        refused = str(exc)
    normalize = signal.normalize
    prefix = BareHashes.prefix
    seen = _Prefixes()
    for chunk in native.txt_chunks(stream_lines(job.path), job.what, job.chunk or None):
        part = BarePart(read=len(chunk), errors=[])
        fresh, part.duplicates = check_bare_chunk(chunk, prefix, normalize, refused, part.errors)
        if fresh:
            part.keys = list(fresh)
            part.numbers = [number for number, _ in fresh.values()]
            # `lists.needs_text`: a value that is not its key's hex is stored beside it
            # (checked for the whole chunk at once first: PDQ and the digests never are)
            values = [value for _, value in fresh.values()]
            if b"".join(part.keys).hex() != "".join(values):
                part.texts = [
                    None if len(key) * 2 == len(value) and key.hex() == value else value
                    for key, value in zip(part.keys, values, strict=True)
                ]
            part.known = seen.add(part.keys)
        yield _encode(part)


class _Prefixes:
    """The `KEY_PREFIX`-byte prefixes of every new key sent so far, so the writer looks
    up only the keys an earlier chunk may have had (into an empty list, none of a file
    without repeats): exact prefixes, 8 bytes a key, as sorted numpy runs merged as
    they grow (a binary counter's levels: log2(chunks) runs to search)."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []
        self.off = False  # keys of another width or shorter than a prefix: not tracked

    def add(self, keys: list[bytes]) -> list[int] | None:
        """Indexes of `keys` whose prefix was seen before; then they are seen too."""
        width = len(keys[0])
        if self.off or width < KEY_PREFIX or any(len(k) != width for k in keys):
            self.off = True
            return None
        rows = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width)
        mine = rows[:, :KEY_PREFIX].copy().view(np.uint64).ravel()
        hit = np.zeros(len(mine), dtype=bool)
        for run in self.runs:
            at = np.searchsorted(run, mine)
            hit |= run[np.minimum(at, len(run) - 1)] == mine
        run = np.sort(mine)
        while self.runs and len(self.runs[-1]) <= len(run):
            run = np.sort(np.concatenate((self.runs.pop(), run)), kind="stable")
        self.runs.append(run)
        return np.flatnonzero(hit).tolist()
