"""Received reports: CyberTipline reports that providers send to us, read, checked and
stored whole before anyone acknowledges them.

A received document is either a `<report>` (SPEC.md section 4), a `<submission>` holding
one `<report>` followed by its `<fileDetails>` documents (section 5; `reportId`/`fileId`
may be absent or placeholders), or the same as JSON: `{"report": {...}, "files":
[{...}, ...]}` (or a bare report object), in the schema's element names (the JSON form
`reports.documents.to_json` writes). Every structural and validation problem is listed
(`InvalidDocument.problems`); warnings are stored with the report.

`store_many` inserts a batch in one statement that skips keys already stored (INSERT ...
ON CONFLICT DO NOTHING), so a repeated delivery, even a concurrent one, is answered as a
duplicate with the first delivery's id and never stored twice. Library functions flush
and never commit; the caller's `Store.session()` commits, and only then may anything be
acknowledged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput, NotFound
from ridgeline.exchange.safexml import parse_xml
from ridgeline.reports import documents, schema
from ridgeline.reports.identifiers import Identifier, esp_of
from ridgeline.reports.model import FileDetails, Report
from ridgeline.reports.models import ReceivedReport, ReportIdentifier
from ridgeline.reports.schema import Problem
from ridgeline.store.bulk import insert_rows, select_in, sqlite_datetime
from ridgeline.timeutil import as_utc, utcnow

FORMATS = ("xml", "json")
SUBMISSION_TAG = "submission"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A received document read into the schema, with its warnings."""

    report: Report
    files: tuple[FileDetails, ...]
    #: {"report": <report JSON>, "files": [<fileDetails JSON>, ...]}
    document: dict[str, Any]
    format: str
    warnings: tuple[Problem, ...] = ()


def sniff_format(data: bytes) -> str:
    """`xml` when the first non-blank byte is `<`, `json` when it is `{`."""
    head = data.lstrip()[:1]
    if head == b"<":
        return "xml"
    if head in (b"{", b"["):
        return "json"
    raise BadInput("the document is neither XML (starts with '<') nor JSON (starts with '{')")


def _split(problems: list[Problem]) -> tuple[list[Problem], list[Problem]]:
    errs = [p for p in problems if p.severity == "error"]
    warns = [p for p in problems if p.severity != "error"]
    return errs, warns


def _finish(report: Report, files: list[FileDetails], problems: list[Problem], fmt: str,
            document: dict[str, Any] | None) -> Parsed:  # fmt: skip
    problems = problems + documents.validate_report(report)
    for i, f in enumerate(files):
        for p in documents.validate_file_details(f, for_filing=False):
            path = p.path.replace("fileDetails", f"fileDetails[{i}]", 1)
            problems.append(Problem(path, p.message, p.severity))
    errs, warns = _split(problems)
    if errs:
        raise documents.InvalidDocument("report", problems)
    if document is None:
        document = {
            "report": documents.to_json(report),
            "files": [documents.to_json(f) for f in files],
        }
    return Parsed(report, tuple(files), document, fmt, tuple(warns))


def _drop_placeholder_ids(element: Any) -> None:
    for child in list(element):
        if child.tag in ("reportId", "fileId"):
            element.remove(child)  # NCMEC's ids of the provider's own filing, if any


def parse_xml_document(data: bytes) -> Parsed:
    """A `<report>` or a `<submission>` of a report and its fileDetails."""
    try:
        root = parse_xml(data, "report")
    except BadInput as exc:
        raise documents.InvalidDocument("report", [Problem("report", str(exc))]) from None
    problems: list[Problem] = []
    files: list[FileDetails] = []
    if root.tag == "report":
        report = schema.from_xml(Report, root, "report", problems)
    elif root.tag == SUBMISSION_TAG:
        children = list(root)
        reports = [c for c in children if c.tag == "report"]
        if len(reports) != 1:
            raise documents.InvalidDocument(
                "report",
                [
                    Problem(
                        SUBMISSION_TAG,
                        f"a <submission> holds exactly one <report>; found {len(reports)}",
                    )
                ],
            )
        report = schema.from_xml(Report, reports[0], "report", problems)
        for child in children:
            if child.tag == "report":
                continue
            if child.tag != "fileDetails":
                problems.append(
                    Problem(
                        f"{SUBMISSION_TAG}/{child.tag}",
                        "a <submission> holds a <report> and <fileDetails> only",
                    )
                )
                continue
            _drop_placeholder_ids(child)
            where = f"fileDetails[{len(files)}]"
            files.append(schema.from_xml(FileDetails, child, where, problems))
    else:
        raise documents.InvalidDocument(
            "report",
            [Problem(str(root.tag), f"expected <report> or <{SUBMISSION_TAG}>, not <{root.tag}>")],
        )
    return _finish(report, files, problems, "xml", None)


def parse_json_document(data: Any) -> Parsed:
    """`{"report": {...}, "files": [...]}` or a bare report object (already decoded)."""
    if not isinstance(data, dict):
        raise documents.InvalidDocument("report", [Problem("report", "expected a JSON object")])
    if "report" in data:
        extra = sorted(set(data) - {"report", "files"})
        problems = [Problem(k, "unknown key (expected 'report' and 'files')") for k in extra]
        report_json, files_json = data["report"], data.get("files", [])
    else:
        problems, report_json, files_json = [], data, []
    if not isinstance(report_json, dict):
        raise documents.InvalidDocument("report", [Problem("report", "expected a JSON object")])
    if not isinstance(files_json, list):
        raise documents.InvalidDocument("report", [Problem("files", "expected a JSON list")])
    report = schema.from_json(Report, report_json, "report", problems)
    files: list[FileDetails] = []
    for i, fj in enumerate(files_json):
        if not isinstance(fj, dict):
            problems.append(Problem(f"fileDetails[{i}]", "expected a JSON object"))
            continue
        fj = {k: v for k, v in fj.items() if k not in ("reportId", "fileId")}
        files.append(schema.from_json(FileDetails, fj, f"fileDetails[{i}]", problems))
    document = {"report": report_json, "files": [f for f in files_json if isinstance(f, dict)]}
    return _finish(report, files, problems, "json", document)


def parse_document(data: bytes, fmt: str | None = None) -> Parsed:
    """Read and check one received document; `InvalidDocument` lists every problem."""
    fmt = fmt or sniff_format(data)
    if fmt == "xml":
        return parse_xml_document(data)
    if fmt != "json":
        raise BadInput(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    try:
        decoded = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested too deep
        raise documents.InvalidDocument(
            "report", [Problem("report", f"not valid JSON: {exc}")]
        ) from None
    return parse_json_document(decoded)


# ---------------------------------------------------------------- storing


@dataclass(frozen=True, slots=True)
class ToStore:
    """One checked document to store."""

    source: str
    parsed: Parsed
    #: The bytes as received (stored compressed), None if only parsed JSON is kept.
    raw: bytes | None
    sha256: str
    #: The client's Idempotency-Key; None means `sha256:<sha256>`.
    idempotency_key: str | None = None
    received_by: str | None = None

    @property
    def key(self) -> str:
        return self.idempotency_key or f"sha256:{self.sha256}"


@dataclass(frozen=True, slots=True)
class StoredReport:
    """Where a document went: its id, and whether it had been stored before."""

    key: str
    report_id: int
    duplicate: bool


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Stored ids by idempotency key (`store.bulk.select_in`: a placeholder per key).
KEYS_SQL = "SELECT idempotency_key, id FROM received_reports WHERE idempotency_key IN ({in})"

RECEIVED_COLUMNS = (
    "source", "idempotency_key", "sha256", "received_at", "received_by", "format",
    "document", "raw", "incident_type", "incident_at", "reporter", "file_count", "warnings",
)  # fmt: skip
#: `RECEIVED_COLUMNS` positions of the datetimes (SQLite stores them as text) and of
#: the JSON columns (given as JSON text; PostgreSQL casts them).
_TIMES = (3, 9)
_JSONS = (6, 12)
#: Rows per INSERT: 13 parameters each, well under SQLite's 32,766 (and PostgreSQL's
#: 65,535) per statement.
_ROWS = 1000

#: One row of `received_reports` in `RECEIVED_COLUMNS` order, the JSON columns as text.
Row = tuple[Any, ...]


def _insert(session: Session, rows: Sequence[Row]) -> dict[str, int]:
    """`INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, key` in rows of
    1,000, as driver SQL: SQLAlchemy's per-row parameter handling cost more than the
    database's own insert, and one statement per 1,000 rows is one round trip to
    PostgreSQL. Values are stored as the column types store them (`store.bulk`: on
    SQLite UTC datetimes as naive text; JSON as `json.dumps` text)."""
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise BadInput(f"received reports need SQLite or PostgreSQL, not {dialect}")
    names = ", ".join(RECEIVED_COLUMNS)
    if dialect == "sqlite":
        one = "(" + ", ".join("?" for _ in RECEIVED_COLUMNS) + ")"
        times: dict[dt.datetime, str] = {}

        def when(v: dt.datetime | None) -> str | None:
            if v is None:
                return None
            text = times.get(v)
            if text is None:
                text = times[v] = sqlite_datetime(v)
            return text

        rows = [
            (r[0], r[1], r[2], when(r[3]), r[4], r[5], r[6], r[7], r[8], when(r[9]), r[10],
             r[11], r[12])
            for r in rows
        ]  # fmt: skip
    else:
        return _insert_postgresql(conn, rows)
    new: dict[str, int] = {}
    for start in range(0, len(rows), _ROWS):
        chunk = rows[start : start + _ROWS]
        params = tuple(v for r in chunk for v in r)
        sql = (
            f"INSERT INTO received_reports ({names}) VALUES {', '.join([one] * len(chunk))} "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key"
        )
        for rid, key in conn.exec_driver_sql(sql, params):
            new[key] = rid
    return new


#: PostgreSQL types of `RECEIVED_COLUMNS`, for `unnest` of one array per column.
_PG_TYPES = (
    "text", "text", "text", "timestamptz", "text", "text", "json", "bytea", "text",
    "timestamptz", "text", "integer", "json",
)  # fmt: skip


def _insert_postgresql(conn: Any, rows: Sequence[Row]) -> dict[str, int]:
    """The batch as one array per column (`INSERT ... SELECT FROM unnest(...)`): one
    short statement and one round trip, where a VALUES list of 13,000 placeholders
    would be re-parsed by psycopg on every batch."""
    names = ", ".join(RECEIVED_COLUMNS)
    # binary arrays: psycopg's text form quotes every element with a regex (a second
    # per batch of 1,000 documents)
    arrays = ", ".join(f"%b::{t}[]" for t in _PG_TYPES)
    sql = (
        f"INSERT INTO received_reports ({names}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key"
    )
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else []
    return {key: rid for rid, key in conn.exec_driver_sql(sql, tuple(columns))}


def store_rows(session: Session, keys: Sequence[str], rows: dict[str, Row]) -> list[StoredReport]:
    """Store the rows (by idempotency key, at most 200 characters); one result per key
    of `keys`, in order. A key already stored (before, or earlier in `keys`) is a
    duplicate answered with the stored id."""
    new = _insert(session, list(rows.values())) if rows else {}
    missing = [k for k in rows if k not in new]
    old: dict[str, int] = {}
    for start in range(0, len(missing), 500):
        old.update(select_in(session, KEYS_SQL, missing[start : start + 500]))
    out: list[StoredReport] = []
    given: set[str] = set()
    for key in keys:
        k = key[:200]
        if k in new and k not in given:
            given.add(k)
            out.append(StoredReport(key, new[k], False))
        else:
            rid = new.get(k, old.get(k))
            if rid is None:  # pragma: no cover - the insert either stored it or found it
                raise BadInput(f"could not store or find the report with key {k!r}")
            out.append(StoredReport(key, rid, True))
    return out


def store_many(
    session: Session, items: Sequence[ToStore], *, now: dt.datetime | None = None
) -> list[StoredReport]:
    """Store a batch; one result per item, in order. A key already stored (before, or
    earlier in this batch) is a duplicate answered with the stored id."""
    at = as_utc(now or utcnow())
    rows: dict[str, Row] = {}
    for item in items:
        key = item.key[:200]
        if key in rows:
            continue
        rows[key] = (
            item.source[:1000],
            key,
            item.sha256,
            at,
            item.received_by,
            *document_columns(item.parsed, item.raw),
        )
    return store_rows(session, [item.key for item in items], rows)


def document_columns(
    parsed: Parsed, raw: bytes | None
) -> tuple[str, str, bytes | None, str | None, dt.datetime | None, str | None, int, str]:
    """The stored columns that come from the document itself, in table order from
    `format` to `warnings`: one spelling for `store_many` and intake's preparing
    process, so both store the same text. JSON is stored as decoded (exactly what was
    sent), compact (no spaces: 9 % of it); XML also as its bytes, compressed."""
    summary = parsed.report.incident_summary
    when = summary.incident_date_time if summary is not None else None
    return (
        parsed.format,
        json.dumps(parsed.document, separators=(",", ":")),
        zlib.compress(raw, 1) if raw is not None and parsed.format == "xml" else None,
        summary.incident_type if summary is not None else None,
        as_utc(when) if when is not None else None,
        (esp_of(parsed.report) or "")[:300] or None,
        len(parsed.files),
        json.dumps([w.to_json() for w in parsed.warnings]),
    )


IDENTIFIER_COLUMNS = (
    "report_id", "kind", "value", "role", "service", "device_type", "event_at",
    "possible_proxy", "original",
)  # fmt: skip


def _stored_original(value: str, original: str | None) -> str | None:
    """`original` as stored: NULL when it is the normalised value itself (most are: a
    hash, an IP, a lower-case email; a second copy of each was a tenth of the store),
    '' when there is none."""
    if not original:
        return ""
    original = original[:400]
    return None if original == value else original


def _read_original(value: str, stored: str | None) -> str | None:
    """`_stored_original` undone."""
    if stored is None:
        return value
    return stored or None


def store_identifiers(session: Session, rows: Sequence[tuple[int, Sequence[Identifier]]]) -> None:
    """Insert the normalised identifiers of newly stored reports (COPY / one executemany)."""
    values = []
    for rid, idents in rows:
        for i in idents:
            value = i.value[:400]
            values.append(
                (
                    rid,
                    i.kind,
                    value,
                    i.role,
                    i.service[:200] if i.service else None,
                    i.device_type[:64] if i.device_type else None,
                    i.event_at,
                    i.possible_proxy,
                    _stored_original(value, i.original),
                )
            )
    insert_rows(session, ReportIdentifier.__table__, IDENTIFIER_COLUMNS, values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- reading


def get(session: Session, report_id: int) -> ReceivedReport:
    """A received report by id, or `NotFound`."""
    row = session.get(ReceivedReport, report_id)
    if row is None:
        raise NotFound(f"no received report {report_id}")
    return row


def document_of(row: ReceivedReport) -> tuple[Report, list[FileDetails]]:
    """The stored report and its fileDetails as typed objects."""
    doc = row.document
    report = documents.report_from_json(doc.get("report", {}))
    files = [
        documents.file_details_from_json(
            {k: v for k, v in f.items() if k not in ("reportId", "fileId")}
        )
        for f in doc.get("files", [])
    ]
    return report, files


def raw_of(row: ReceivedReport) -> bytes | None:
    """The bytes as received."""
    return zlib.decompress(row.raw) if row.raw is not None else None


def identifiers_of(session: Session, report_ids: Sequence[int]) -> dict[int, list[Identifier]]:
    """The stored identifiers of reports, by report id."""
    out: dict[int, list[Identifier]] = {rid: [] for rid in report_ids}
    for start in range(0, len(report_ids), 500):
        chunk = list(report_ids[start : start + 500])
        for r in session.execute(
            select(ReportIdentifier)
            .where(ReportIdentifier.report_id.in_(chunk))
            .order_by(ReportIdentifier.id)
        ).scalars():
            out[r.report_id].append(
                Identifier(
                    r.kind,
                    r.value,
                    r.role,
                    service=r.service,
                    device_type=r.device_type,
                    event_at=as_utc(r.event_at) if r.event_at is not None else None,
                    possible_proxy=r.possible_proxy,
                    original=_read_original(r.value, r.original),
                )
            )
    return out


def list_received(
    session: Session, *, limit: int = 100, after: int | None = None
) -> list[ReceivedReport]:
    """Received reports, newest first."""
    q = select(ReceivedReport).order_by(ReceivedReport.id.desc()).limit(limit)
    if after is not None:
        q = q.where(ReceivedReport.id < after)
    return list(session.execute(q).scalars())
