"""Everything intake does to a document that needs no database, as compact records.

Reading a document, JSON or XML to the schema, validation, identifier normalisation
(email-validator, phonenumbers), geolocating its IPs and addresses, the triage rules'
findings on the report itself and the stored row's values are all pure: `Preparer`
turns one `Incoming` into one `Prepared`. The writer (`Pipeline`) then does only what
needs the store: known keys, inserts, linking, the facts, the routing table, commit.

A bulk run does the preparing in a second process (`ridgeline.parseahead`, producer
`produce`): its argument and its frames are msgpack (msgspec), one frame per
transaction, so the two processes share the work on two cores; a small run, one core
or `RIDGELINE_PARSE_AHEAD=0` runs the same producer in-process (`parseahead.run_inline`).
Nothing is pickled.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ridgeline.errors import BadInput
from ridgeline.intake.sources import Incoming, from_paths
from ridgeline.referral import Inputs, Referral
from ridgeline.reports import documents, received
from ridgeline.reports.identifiers import (
    DEFAULT_EMAIL_RULES,
    EmailRules,
    Identifier,
    extract,
)
from ridgeline.reports.schema import Problem
from ridgeline.triage.rules import TriageRules

#: The producer `Pipeline.run` starts in a second process.
PRODUCER = "ridgeline.intake.prepare:produce"


class Row(msgspec.Struct, array_like=True, frozen=True):
    """A received report's stored values that come from the document itself
    (`received_reports`; the key, time and receiver are added by the writer)."""

    source: str
    format: str
    #: the document as JSON text (`received.document_columns`, what the column stores)
    document: str
    #: the bytes as received, zlib-compressed (XML only)
    raw: bytes | None
    incident_type: str | None
    incident_at: dt.datetime | None
    reporter: str | None
    file_count: int
    #: the warnings as JSON text
    warnings: str


class Prepared(msgspec.Struct, array_like=True, frozen=True):
    """One document after everything that needs no database.

    `row` is None for a refused document (`problems` are then its errors); for an
    accepted one `problems` are its warnings."""

    source: str
    #: the idempotency key as stored (at most 200 characters)
    key: str
    sha256: str
    problems: tuple[Problem, ...]
    row: Row | None = None
    identifiers: tuple[Identifier, ...] = ()
    #: what the triage and routing step takes from the report (None without that step)
    referral: Inputs | None = None


class Spec(msgspec.Struct, array_like=True, frozen=True):
    """What the second process needs to prepare exactly as this one would."""

    ignore_dots: list[str]
    ignore_plus: list[str]
    aliases: dict[str, str]
    #: the triage rules (None: no triage and routing step)
    rules: TriageRules | None = None
    city_db: str | None = None


class Job(msgspec.Struct, array_like=True, frozen=True):
    """The producer's argument, first part: the spec, the transaction size, and the
    files to read in the second process (`paths`) or None: the documents follow it."""

    spec: Spec
    batch: int
    paths: list[str] | None = None
    format: str | None = None


#: One document as sent to the producer: source, bytes, format, key, error.
ItemTuple = tuple[str, bytes, str | None, str | None, str | None]
#: Documents per part of the producer's argument.
ITEMS_PER_PART = 2000
_PART = struct.Struct("<I")


_FRAME = msgspec.msgpack.Decoder(list[Prepared])


def decode(frame: bytes) -> list[Prepared]:
    """One frame of the producer."""
    return _FRAME.decode(frame)


@dataclass
class Preparer:
    """Prepares documents as a `Pipeline` with these rules and this step would."""

    email_rules: EmailRules = DEFAULT_EMAIL_RULES
    referral: Referral | None = None

    def spec(self) -> Spec:
        r = self.email_rules
        geo = self.referral.geo.city_db if self.referral is not None else None
        return Spec(
            sorted(r.ignore_dots),
            sorted(r.ignore_plus),
            dict(r.aliases),
            self.referral.rules if self.referral is not None else None,
            str(geo) if geo is not None else None,
        )

    @classmethod
    def of(cls, spec: Spec) -> Preparer:
        rules = EmailRules(frozenset(spec.ignore_dots), frozenset(spec.ignore_plus), spec.aliases)
        referral = (
            Referral(None, rules=spec.rules, city_db=spec.city_db)
            if spec.rules is not None
            else None
        )
        return cls(rules, referral)

    def prepare(self, item: Incoming) -> tuple[Prepared, received.Parsed | None]:
        """The document's `Prepared` record, and its parsed form (None if refused)."""
        digest = received.sha256_of(item.data)
        key = (item.idempotency_key or f"sha256:{digest}")[:200]
        source = item.source
        if item.error is not None:
            return Prepared(source, key, digest, (Problem(source, item.error),)), None
        try:
            parsed = received.parse_document(item.data, item.format)
        except documents.InvalidDocument as exc:
            return Prepared(source, key, digest, tuple(exc.problems)), None
        except BadInput as exc:
            return Prepared(source, key, digest, (Problem("report", str(exc)),)), None
        found, warnings = extract(parsed.report, parsed.files, rules=self.email_rules)
        if warnings:
            extra = tuple(Problem("identifiers", w, "warning") for w in warnings)
            parsed = received.Parsed(
                parsed.report, parsed.files, parsed.document, parsed.format,
                parsed.warnings + extra,
            )  # fmt: skip
        report = parsed.report
        row = Row(source[:1000], *received.document_columns(parsed, item.data))
        inputs = self.referral.inputs(report, parsed.files) if self.referral is not None else None
        prepared = Prepared(source, key, digest, parsed.warnings, row, tuple(found), inputs)
        return prepared, parsed


def _parts(arg: bytes) -> Iterator[memoryview]:
    view = memoryview(arg)
    at = 0
    while at < len(view):
        (size,) = _PART.unpack_from(view, at)
        at += _PART.size
        yield view[at : at + size]
        at += size


def _items(job: Job, rest: Iterator[memoryview]) -> Iterable[Incoming]:
    if job.paths is not None:
        yield from from_paths(job.paths, job.format)
        return
    decoder = msgspec.msgpack.Decoder(list[ItemTuple])
    for part in rest:
        for t in decoder.decode(part):
            yield Incoming(*t)


def produce(arg: bytes) -> Iterator[bytes]:
    """The parseahead producer: a `Job` (then its documents, in parts) in, one msgpack
    frame of `Prepared` per `batch` documents out, in input order."""
    parts = _parts(arg)
    job = msgspec.msgpack.decode(next(parts), type=Job)
    preparer = Preparer.of(job.spec)
    encoder = msgspec.msgpack.Encoder()
    chunk: list[Prepared] = []
    for item in _items(job, parts):
        chunk.append(preparer.prepare(item)[0])
        if len(chunk) >= job.batch:
            yield encoder.encode(chunk)
            chunk = []
    if chunk:
        yield encoder.encode(chunk)


def job(
    spec: Spec,
    batch: int,
    *,
    items: Sequence[Incoming] | None = None,
    paths: Sequence[str] | None = None,
    fmt: str | None = None,
) -> Iterator[bytes]:
    """The producer's argument, in pieces made as they are sent (`parseahead.frames`
    writes them one by one: the documents are never held twice in this process)."""
    encoder = msgspec.msgpack.Encoder()

    def part(value: object) -> bytes:
        data = encoder.encode(value)
        return _PART.pack(len(data)) + data

    yield part(Job(spec, batch, list(paths) if paths is not None else None, fmt))
    for start in range(0, len(items or ()), ITEMS_PER_PART):
        chunk = (items or ())[start : start + ITEMS_PER_PART]
        yield part([(i.source, i.data, i.format, i.idempotency_key, i.error) for i in chunk])


def size_of(paths: Sequence[str]) -> int:
    """Bytes on disk under `paths` (to decide whether a second process pays)."""
    total = 0
    for raw in paths:
        p = Path(raw)
        try:
            if p.is_dir():
                total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            elif p.exists():
                total += p.stat().st_size
        except OSError:
            continue
    return total
