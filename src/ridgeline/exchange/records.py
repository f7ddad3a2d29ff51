"""The neutral record every exchange format parses into and exports from.

A format module turns bytes into a `ParseResult` (good records plus bad ones with
their position) and turns `ExportItem`s back into bytes; `ridgeline.exchange.apply`
is the only code that writes parsed records to the store.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ridgeline.errors import BadInput
from ridgeline.timeutil import parse_iso


@dataclass
class ExchangeRecord:
    """One hash set from a partner's file, with where in the file it was found."""

    position: str
    signals: dict[str, str] = field(default_factory=dict)
    classifications: list[dict[str, str]] = field(default_factory=list)
    source: str | None = None
    origin_list: str | None = None
    origin_member: str | None = None
    origin_entry_id: str | None = None
    note: str | None = None
    #: A deletion (NCMEC deleted entry, StopNCII Withdrawn/Deleted): tombstone it.
    deleted: bool = False
    timestamp: dt.datetime | None = None
    qualities: dict[str, int] = field(default_factory=dict)
    #: Format-specific facts kept so an export can write them back (original category).
    extra: dict[str, Any] = field(default_factory=dict)
    #: What the partner says about the content, kept as columns of the entry.
    series: str | None = None
    victim_identified: bool | None = None
    case_numbers: list[str] = field(default_factory=list)
    origin_member_name: str | None = None
    #: False when the partner marked the record non-pertinent or comparison-only in a
    #: way no known label says (None: decided by `classifications.is_listable`).
    listable: bool | None = None


@dataclass
class BareHashes:
    """Records that are one hash each and nothing more (a txt file's lines), read
    lazily: `chunks` yields lists of `(number, text)`, the record at position
    `f"{prefix}{number}"`. The import writer applies them chunk by chunk, so a file of
    millions of hashes is never in memory at once."""

    signal: str
    chunks: Iterable[list[tuple[int, str]]]
    prefix: str = "line "
    #: The chunks already checked by the parsing process (`exchange.ahead`, a
    #: `rows.BarePart` each), instead of `chunks`.
    ready: Iterable[Any] | None = None
    #: The file's size in bytes, when known (0: not known, e.g. standard input).
    size: int = 0


@dataclass
class ParseResult:
    """Everything read from one file: records, rejected records, and file-level facts."""

    format: str
    records: list[ExchangeRecord] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    max_timestamp: dt.datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: Bare hashes still to be read (applied after `records`).
    bare: BareHashes | None = None
    #: Records still to be read, a part (a `ParseResult` of some thousands) at a time:
    #: a streamed partner file (NCMEC XML, VICS JSON). The writer applies each part as
    #: it comes, so the file is never in memory at once; its parse errors come with it.
    #: (`exchange.ahead` gives `rows.ReadyPart`s instead: records already checked and
    #: turned into rows by the parsing process.)
    parts: Iterable[ParseResult] | None = None

    def reject(self, position: str, message: str) -> None:
        """Record a bad record; the rest of the file is still read."""
        self.errors.append({"position": position, "error": message})

    def add(self, record: ExchangeRecord) -> None:
        """Keep a good record; one whose fields cannot be stored is rejected instead."""
        problem = field_problem(record)
        if problem is not None:
            self.reject(record.position, problem)
            return
        self.records.append(record)
        if record.timestamp is not None and (
            self.max_timestamp is None or record.timestamp > self.max_timestamp
        ):
            self.max_timestamp = record.timestamp


@dataclass
class ExportItem:
    """An entry as exporters see it: hashes, labels, provenance and kept format facts."""

    entry_id: int
    signals: dict[str, str]
    classifications: list[dict[str, str]]
    source: str | None
    origin_list: str | None
    origin_member: str | None
    origin_entry_id: str | None
    note: str | None
    deleted: bool
    updated_at: dt.datetime
    qualities: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def record_time(self) -> dt.datetime:
        """The time the record itself carries: the partner's own date of the entry (or of
        its deletion) as read, else when it last changed here."""
        key = "deleted_time" if self.deleted else "record_time"
        text = self.extra.get(key)
        if isinstance(text, str):
            try:
                return parse_iso(text)
            except ValueError:
                pass
        return self.updated_at


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 text (BOM allowed), UTF-16 text with its BOM, or a clear error naming the
    byte offset (Windows tools write UTF-16 with a BOM)."""
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def csv_rows(text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str] | str]]:
    """`(line, fields)` per CSV record, or `(line, error)` for a broken one.

    The line is where the record starts. A quote that never closes used to swallow
    every following record into one field silently (issue 17 item 5): it is now an
    error on the line where it opened, and reading resumes on the next line, so the
    records after it are kept.
    """
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines):
        reader = csv.reader(lines[start:], delimiter=delimiter, strict=True)
        done = 0  # lines of lines[start:] consumed by complete records
        try:
            for row in reader:
                yield start + done + 1, row
                done = reader.line_num
            return
        except csv.Error as exc:
            message = str(exc)
            if "unexpected end of data" in message or "newline inside string" in message:
                message = "a quoted field is never closed (the file ends inside it)"
            yield start + done + 1, message
            start += done + 1


#: Longest note stored (`entries.note` is unbounded TEXT; SQLite stored 20 MB verbatim).
NOTE_MAX = 10_000
#: Longest string kept among a format's extra facts (`exchange_meta.data`).
EXTRA_MAX = 4096


def _column_limits() -> dict[str, int]:
    """The VARCHAR lengths of the provenance columns, read from the model itself."""
    from ridgeline.lists.models import Entry

    limits = {}
    for name in ("source", "origin_list", "origin_member", "origin_entry_id"):
        length = getattr(Entry.__table__.c[name].type, "length", None)
        if length:
            limits[name] = int(length)
    return limits


_LIMITS: dict[str, int] = {}


def column_limits() -> dict[str, int]:
    """The longest value `text_problem` allows each provenance column (and the note)."""
    if not _LIMITS:
        _LIMITS.update(_column_limits(), note=NOTE_MAX)
    return dict(_LIMITS)


def text_problem(name: str, value: str | None, limit: int | None = None) -> str | None:
    """Why `value` cannot be stored in field `name` on SQLite and PostgreSQL alike."""
    if value is None:
        return None
    if not _LIMITS:
        _LIMITS.update(_column_limits(), note=NOTE_MAX)
    limit = limit or _LIMITS.get(name)
    if "\x00" in value:
        return f"{name} contains a NUL byte"
    if limit is not None and len(value) > limit:
        return f"{name} is {len(value)} characters long; at most {limit} are stored"
    return None


def field_problem(record: ExchangeRecord) -> str | None:
    """The first field of `record` that the store cannot hold as given, or None.

    PostgreSQL refuses NUL bytes and over-long VARCHARs (aborting the whole import);
    SQLite stored them verbatim. Checking here, with the columns' own limits, makes
    both databases behave the same and costs only the bad record (issue 17 item 4).
    Every value is looked at once; `text_problem` says what is wrong with a bad one.
    """
    if not _LIMITS:
        _LIMITS.update(_column_limits(), note=NOTE_MAX)
    limits = _LIMITS
    for name in _TEXT_FIELDS:
        value = getattr(record, name)
        if value is not None and ("\x00" in value or len(value) > limits.get(name, len(value))):
            problem = text_problem(name, value)
            if problem is not None:
                return problem
    for name, value in record.signals.items():
        if "\x00" in name or "\x00" in value:
            return f"hash {name} contains a NUL byte"
    for item in record.classifications:
        for key, value in item.items():
            if "\x00" in key or "\x00" in str(value):
                return "a classification contains a NUL byte"
    stack: list[Any] = [record.extra]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value or len(value) > EXTRA_MAX:
                return text_problem("a field", value, EXTRA_MAX)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


_TEXT_FIELDS = ("source", "origin_list", "origin_member", "origin_entry_id", "note")


#: Largest import file read (a 400k-entry NCMEC document is about 100 MB).
MAX_INPUT_BYTES = 1 << 30
_CHUNK = 1 << 20


def read_input(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of an import file, or of standard input for `-`, at most `max_bytes`.

    The cap defaults to `RIDGELINE_IMPORT_MAX_BYTES` or 1 GiB. Only regular files are
    read: `/dev/zero` or a FIFO was read without bound (6.8 GB in 6 s, issue 17 item
    12). Standard input is read in chunks and refused as soon as it passes the cap, so
    an endless stream costs at most `max_bytes` of memory.
    """
    if max_bytes is None:
        max_bytes = int(os.environ.get("RIDGELINE_IMPORT_MAX_BYTES") or MAX_INPUT_BYTES)
    name = os.fspath(path)
    if name == "-":
        return _read_capped(sys.stdin.buffer, "standard input", max_bytes)
    try:
        with open(name, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BadInput(
                    f"{name}: not a regular file (a device, pipe or folder); "
                    "use '-' to import from standard input"
                )
            if st.st_size > max_bytes:
                raise BadInput(f"{name}: {st.st_size} bytes; at most {max_bytes} are imported")
            return _read_capped(fh, name, max_bytes)
    except OSError as exc:
        raise BadInput(f"{name}: {exc.strerror or exc}") from None


def _read_capped(fh: Any, what: str, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := fh.read(_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise BadInput(f"{what}: more than {max_bytes} bytes; at most {max_bytes} are imported")
        chunks.append(chunk)
    return b"".join(chunks)


def stream_lines(path: str | os.PathLike[str], max_bytes: int | None = None) -> Iterator[bytes]:
    """The lines of an import file (or of standard input for `-`) as bytes, read as
    they are needed, in constant memory. The same refusals as `read_input`: only
    regular files; standard input is capped at `max_bytes` (default as there)."""
    if max_bytes is None:
        max_bytes = int(os.environ.get("RIDGELINE_IMPORT_MAX_BYTES") or MAX_INPUT_BYTES)
    name = os.fspath(path)
    if name == "-":  # in chunks: a line-less endless stream must meet the cap too
        rest = b""
        for chunk in stream_chunks(name, max_bytes=max_bytes):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield line + b"\n"
        if rest:
            yield rest
        return
    with _open_regular(name) as fh:
        yield from fh


def _open_regular(name: str) -> BinaryIO:
    """An import file opened for reading; anything but a regular file is refused."""
    try:
        fh = open(name, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise BadInput(f"{name}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
        fh.close()
        raise BadInput(
            f"{name}: not a regular file (a device, pipe or folder); "
            "use '-' to import from standard input"
        )
    return fh


def starts_utf16(path: str | os.PathLike[str]) -> bool:
    """Whether a regular file starts with a UTF-16 byte order mark."""
    name = os.fspath(path)
    if name == "-":
        return False
    try:
        with open(name, "rb") as fh:
            return fh.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    except OSError:
        return False


def stream_chunks(
    path: str | os.PathLike[str], size: int = _CHUNK, max_bytes: int | None = None
) -> Iterator[bytes]:
    """An import file (or standard input for `-`) as chunks of bytes, read as they are
    needed: what the streamed partner formats parse. The same refusals as `read_input`
    (only regular files; standard input capped at `max_bytes`)."""
    if max_bytes is None:
        max_bytes = int(os.environ.get("RIDGELINE_IMPORT_MAX_BYTES") or MAX_INPUT_BYTES)
    name = os.fspath(path)
    if name == "-":
        total = 0
        while chunk := sys.stdin.buffer.read(size):
            total += len(chunk)
            if total > max_bytes:
                raise BadInput(
                    f"standard input: more than {max_bytes} bytes; at most {max_bytes} are imported"
                )
            yield chunk
        return
    with _open_regular(name) as fh:
        while chunk := fh.read(size):
            yield chunk


def head_bytes(path: str | os.PathLike[str], n: int = 4) -> bytes:
    """The first bytes of a regular file (empty for `-` or an unreadable file): enough
    to tell an encoding by its byte order mark before choosing to stream."""
    name = os.fspath(path)
    if name == "-":
        return b""
    try:
        with open(name, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""
