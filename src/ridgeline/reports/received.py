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
from sqlalchemy.dialects import postgresql, sqlite
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


def _insert_ignoring_duplicates(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(ReceivedReport).on_conflict_do_nothing(
            index_elements=["idempotency_key"]
        )
    if dialect == "sqlite":
        return sqlite.insert(ReceivedReport).on_conflict_do_nothing(
            index_elements=["idempotency_key"]
        )
    raise BadInput(f"received reports need SQLite or PostgreSQL, not {dialect}")


#: Stored ids by idempotency key (`store.bulk.select_in`: a placeholder per key).
KEYS_SQL = "SELECT idempotency_key, id FROM received_reports WHERE idempotency_key IN ({in})"

_RECEIVED_COLUMNS = (
    "source", "idempotency_key", "sha256", "received_at", "received_by", "format",
    "document", "raw", "incident_type", "incident_at", "reporter", "file_count", "warnings",
)  # fmt: skip
#: Rows per INSERT: 13 parameters each, well under SQLite's 32,766 per statement.
_SQLITE_ROWS = 1000


def _insert_sqlite(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """The ORM statement's work (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, rows of
    1,000) with the values converted here: SQLAlchemy's per-row parameter handling cost
    more than SQLite's own insert. Values are stored as the column types store them
    (`store.bulk`: UTC datetimes as text, JSON through `json.dumps`)."""
    conn = session.connection()
    names = ", ".join(_RECEIVED_COLUMNS)
    one = "(" + ", ".join("?" for _ in _RECEIVED_COLUMNS) + ")"
    times: dict[dt.datetime, str] = {}

    def when(v: dt.datetime | None) -> str | None:
        if v is None:
            return None
        text = times.get(v)
        if text is None:
            text = times[v] = sqlite_datetime(v)
        return text

    new: dict[str, int] = {}
    for start in range(0, len(rows), _SQLITE_ROWS):
        chunk = rows[start : start + _SQLITE_ROWS]
        params: list[Any] = []
        for r in chunk:
            params += (
                r["source"], r["idempotency_key"], r["sha256"], when(r["received_at"]),
                r["received_by"], r["format"], json.dumps(r["document"]), r["raw"],
                r["incident_type"], when(r["incident_at"]), r["reporter"], r["file_count"],
                json.dumps(r["warnings"]),
            )  # fmt: skip
        sql = (
            f"INSERT INTO received_reports ({names}) VALUES {', '.join([one] * len(chunk))} "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key"
        )
        for rid, key in conn.exec_driver_sql(sql, tuple(params)):
            new[key] = rid
    return new


def store_many(
    session: Session, items: Sequence[ToStore], *, now: dt.datetime | None = None
) -> list[StoredReport]:
    """Store a batch; one result per item, in order. A key already stored (before, or
    earlier in this batch) is a duplicate answered with the stored id."""
    at = as_utc(now or utcnow())
    firsts: dict[str, ToStore] = {}
    for item in items:
        firsts.setdefault(item.key, item)
    rows = []
    for key, item in firsts.items():
        p = item.parsed
        summary = p.report.incident_summary
        when = summary.incident_date_time if summary is not None else None
        rows.append(
            {
                "source": item.source[:1000],
                "idempotency_key": key[:200],
                "sha256": item.sha256,
                "received_at": at,
                "received_by": item.received_by,
                "format": p.format,
                "document": p.document,
                # JSON is stored as decoded (exactly what was sent); XML also as bytes.
                "raw": zlib.compress(item.raw, 1)
                if item.raw is not None and p.format == "xml"
                else None,
                "incident_type": summary.incident_type if summary is not None else None,
                "incident_at": as_utc(when) if when is not None else None,
                "reporter": (esp_of(p.report) or "")[:300] or None,
                "file_count": len(p.files),
                "warnings": [w.to_json() for w in p.warnings],
            }
        )
    new: dict[str, int] = {}
    if rows and session.get_bind().dialect.name == "sqlite":
        new = _insert_sqlite(session, rows)
    elif rows:
        stmt = _insert_ignoring_duplicates(session).returning(
            ReceivedReport.id, ReceivedReport.idempotency_key
        )
        for rid, key in session.execute(stmt, rows):
            new[key] = rid
    missing = [k for k in firsts if k[:200] not in new]
    old: dict[str, int] = {}
    for start in range(0, len(missing), 500):
        chunk = [k[:200] for k in missing[start : start + 500]]
        old.update(select_in(session, KEYS_SQL, chunk))
    out: list[StoredReport] = []
    given: set[str] = set()
    for item in items:
        k = item.key[:200]
        if k in new and k not in given:
            given.add(k)
            out.append(StoredReport(item.key, new[k], False))
        else:
            rid = new.get(k, old.get(k))
            if rid is None:  # pragma: no cover - the insert either stored it or found it
                raise BadInput(f"could not store or find the report with key {k!r}")
            out.append(StoredReport(item.key, rid, True))
    return out


IDENTIFIER_COLUMNS = (
    "report_id", "kind", "value", "role", "service", "device_type", "event_at",
    "possible_proxy", "original",
)  # fmt: skip


def store_identifiers(session: Session, rows: Sequence[tuple[int, Sequence[Identifier]]]) -> None:
    """Insert the normalised identifiers of newly stored reports (COPY / one executemany)."""
    values = [
        (
            rid,
            i.kind,
            i.value[:400],
            i.role,
            i.service[:200] if i.service else None,
            i.device_type[:64] if i.device_type else None,
            i.event_at,
            i.possible_proxy,
            i.original[:400] if i.original else None,
        )
        for rid, idents in rows
        for i in idents
    ]
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
                    original=r.original,
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
