"""Reports in the store: drafts, edits, validation, views, preservation.

A report's document is kept as JSON in the public schema's names. Its files are
encrypted with the evidence key (AES-GCM, associated data bound to the report and
file) so that media at rest is never in the clear, as in `ridgeline.evidence`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.evidence import MAX_EVIDENCE_BYTES, EvidenceKey, EvidenceKeyError
from ridgeline.reports import documents as docs
from ridgeline.reports.model import FileDetails, Report
from ridgeline.reports.models import CyberTipEvent, CyberTipFile, CyberTipReport
from ridgeline.reports.schema import Problem
from ridgeline.store.bulk import PreparedInsert, json_text, sqlite_datetime
from ridgeline.timeutil import as_utc, isoformat, utcnow

#: The REPORT Act: providers preserve a report and its content for one year.
PRESERVE_DAYS = 365
STATES = (
    "draft",
    "validated",
    "submitting",
    "submitted",
    "finishing",
    "finished",
    "retracting",
    "retracted",
    "needs_attention",
)
#: States in which the document and files may still change.
EDITABLE = ("draft", "validated")


@dataclass(frozen=True)
class NewFile:
    """A file to attach to a draft: its bytes, name and optional fileDetails."""

    name: str
    data: bytes
    details: FileDetails | None = None
    #: md5, sha1 and sha256 of `data` when the caller already knows them (a hit that
    #: hashed the file: `drafts.ReportSink`); None: computed here.
    digests: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class FileView:
    position: int
    file_name: str
    size: int
    md5: str
    sha1: str
    sha256: str
    state: str
    file_id: str | None
    server_md5: str | None
    stray_file_ids: list[str]
    details: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "fileName": self.file_name,
            "size": self.size,
            "md5": self.md5,
            "sha1": self.sha1,
            "sha256": self.sha256,
            "state": self.state,
            "fileId": self.file_id,
            "serverMd5": self.server_md5,
            "strayFileIds": self.stray_file_ids,
            "fileDetails": self.details,
        }


@dataclass(frozen=True)
class ReportView:
    """What `reports show` prints: state, NCMEC ids, files, problems, preservation."""

    id: int
    state: str
    environment: str | None
    report_id: int | None
    incident_type: str | None
    problems: list[dict[str, Any]]
    attention: str | None
    last_error: str | None
    created_at: str | None
    updated_at: str | None
    submitted_at: str | None
    finished_at: str | None
    retracted_at: str | None
    keep_until: str | None
    files: list[FileView] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)

    def to_json(self, *, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "environment": self.environment,
            "reportId": self.report_id,
            "fileIds": [f.file_id for f in self.files],
            "incidentType": self.incident_type,
            "files": len(self.files),
            "errors": sum(1 for p in self.problems if p.get("severity") == "error"),
            "attention": self.attention,
            "lastError": self.last_error,
            "createdAt": self.created_at,
            "finishedAt": self.finished_at,
            "keepUntil": self.keep_until,
        }
        if full:
            out.update(
                {
                    "problems": self.problems,
                    "files": [f.to_json() for f in self.files],
                    "updatedAt": self.updated_at,
                    "submittedAt": self.submitted_at,
                    "retractedAt": self.retracted_at,
                    "report": self.document,
                    "origin": self.origin,
                }
            )
        return out


def view(row: CyberTipReport) -> ReportView:
    summary = row.document.get("incidentSummary") or {}
    return ReportView(
        id=row.id,
        state=row.state,
        environment=row.environment,
        report_id=row.ncmec_report_id,
        incident_type=summary.get("incidentType") if isinstance(summary, dict) else None,
        problems=list(row.problems or []),
        attention=row.attention,
        last_error=row.last_error,
        created_at=isoformat(row.created_at),
        updated_at=isoformat(row.updated_at),
        submitted_at=isoformat(row.submitted_at),
        finished_at=isoformat(row.finished_at),
        retracted_at=isoformat(row.retracted_at),
        keep_until=isoformat(row.keep_until),
        files=[
            FileView(
                position=f.position,
                file_name=f.file_name,
                size=f.size,
                md5=f.md5,
                sha1=f.sha1,
                sha256=f.sha256,
                state=f.state,
                file_id=f.ncmec_file_id,
                server_md5=f.server_md5,
                stray_file_ids=list(f.stray_file_ids or []),
                details=f.details,
            )
            for f in row.files
        ],
        document=row.document,
        origin=row.origin or {},
    )


# ---------------------------------------------------------------- encryption


def _aad(report_id: int, blob_uuid: str) -> bytes:
    return f"ridgeline-report-file/v1|report={report_id}|blob={blob_uuid}".encode()


def file_bytes(f: CyberTipFile, key: EvidenceKey) -> bytes:
    """Plaintext of a report file, checked against its stored sha256."""
    if f.key_id != key.key_id:
        raise EvidenceKeyError(
            f"report file {f.id} was encrypted with key {f.key_id}, "
            f"but the key given is {key.key_id} (wrong key)"
        )
    try:
        data = key.aead().decrypt(f.nonce, f.ciphertext, _aad(f.report_id, f.blob_uuid))
    except InvalidTag:
        raise EvidenceKeyError(
            f"report file {f.id} failed authentication: it was altered or moved"
        ) from None
    if hashlib.sha256(data).hexdigest() != f.sha256:  # pragma: no cover - AES-GCM catches it
        raise EvidenceKeyError(f"report file {f.id} does not match its sha256")
    return data


# ---------------------------------------------------------------- drafts


def _event(
    session: Session, row: CyberTipReport, actor: str | None, action: str, **details: Any
) -> None:
    session.add(CyberTipEvent(report_id=row.id, actor=actor, action=action, details=details))


def check_all(
    report: Report,
    details: list[FileDetails | None],
    *,
    report_problems: list[Problem] | None = None,
) -> list[Problem]:
    """Problems of the report and of every file's details (ids not yet required);
    `report_problems`: the report's own, when the caller has them already."""
    problems = docs.validate_report(report) if report_problems is None else list(report_problems)
    for i, fd in enumerate(details):
        if fd is None:
            continue
        for p in docs.validate_file_details(fd):
            problems.append(Problem(f"files[{i}]/{p.path}", p.message, p.severity))
    return problems


def _apply_validation(row: CyberTipReport, problems: list[Problem]) -> None:
    row.problems = [p.to_json() for p in problems]
    row.state = "draft" if docs.errors(problems) else "validated"


def _check_files(files: list[NewFile], key: EvidenceKey | None) -> None:
    if files and key is None:
        raise EvidenceKeyError(
            "report files are stored encrypted: give the evidence key "
            "(--key-file, RIDGELINE_EVIDENCE_KEY or RIDGELINE_EVIDENCE_KEY_FILE)"
        )
    for new in files:
        if not new.data:
            raise BadInput(f"file {new.name!r} is empty")
        if len(new.data) > MAX_EVIDENCE_BYTES:
            raise BadInput(
                f"file {new.name!r} is {len(new.data)} bytes; the limit is {MAX_EVIDENCE_BYTES}"
            )


#: Fresh hash objects to copy: a copy skips OpenSSL 3's per-call digest lookup.
_MD5, _SHA1, _SHA256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()


def _digest(prototype: Any, data: bytes) -> str:
    h = prototype.copy()
    h.update(data)
    return str(h.hexdigest())


def _uuid4_hex(b: bytearray) -> str:
    """`uuid.uuid4().hex` (random, version 4, RFC 4122 variant) of 16 random bytes,
    without building a UUID."""
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def sha256_hex(data: bytes) -> str:
    """The sha256 of `data` (hex), as a report file stores it."""
    return _digest(_SHA256, data)


def file_digests(data: bytes) -> tuple[str, str, str]:
    """md5, sha1 and sha256 of `data` (hex), as a report file stores them."""
    return _digest(_MD5, data), _digest(_SHA1, data), _digest(_SHA256, data)


def _file_values(report_id: int, position: int, new: NewFile, key: EvidenceKey) -> dict[str, Any]:
    """The columns of one encrypted report file (AES-GCM, bound to report and blob)."""
    random = secrets.token_bytes(28)  # one read of the OS's randomness: uuid, then nonce
    blob_uuid = _uuid4_hex(bytearray(random[:16]))
    nonce = random[16:]
    md5, sha1, sha256 = new.digests or file_digests(new.data)
    return {
        "report_id": report_id,
        "position": position,
        "file_name": new.name,
        "size": len(new.data),
        "md5": md5,
        "sha1": sha1,
        "sha256": sha256,
        "blob_uuid": blob_uuid,
        "key_id": key.key_id,
        "nonce": nonce,
        "ciphertext": key.aead().encrypt(nonce, new.data, _aad(report_id, blob_uuid)),
        "details": docs.to_json(new.details) if new.details is not None else None,
        "stray_file_ids": [],
    }


def create_report(
    session: Session,
    report: Report,
    files: list[NewFile],
    key: EvidenceKey | None,
    *,
    actor: str | None = None,
    origin: dict[str, Any] | None = None,
) -> CyberTipReport:
    """Store a draft (state `validated` when it has no errors) with its files encrypted."""
    _check_files(files, key)
    row = CyberTipReport(
        document=docs.to_json(report), origin=origin or {}, created_by=actor, problems=[], files=[]
    )
    _apply_validation(row, check_all(report, [f.details for f in files]))
    session.add(row)
    session.flush()
    for position, new in enumerate(files):
        assert key is not None
        row.files.append(CyberTipFile(**_file_values(row.id, position, new, key)))
    # No flush here: the files and the event go in with the caller's transaction.
    # Filing decisions, not drafts, go to the tamper-evident audit log.
    _event(session, row, actor, "create", files=len(files), state=row.state)
    return row


def insert_report(
    session: Session | Connection,
    report: Report,
    files: list[NewFile],
    key: EvidenceKey | None,
    *,
    actor: str | None = None,
    origin: dict[str, Any] | None = None,
) -> int:
    """`create_report` for a hit in a scan or `/v1/match`: the same rows, written with
    three plain INSERTs (no ORM unit of work) in the caller's transaction (a session's,
    or a Core connection's: `Store.transaction`), so that a draft adds well under a
    millisecond to the hit (bench/reports.py); its id."""
    _check_files(files, key)
    now = utcnow()
    # the caller's transaction; plain statements (`store.bulk.PreparedInsert`)
    conn = session if isinstance(session, Connection) else session.connection()
    sqlite = conn.dialect.name == "sqlite"
    # JSON text as SQLAlchemy's JSON type makes it on SQLite: the engine's serializer
    # unless it was given one (other databases: SQLAlchemy encodes)
    dumps: Callable[[Any], str] | None = (
        (getattr(conn.dialect, "_json_serializer", None) or json_text) if sqlite else None
    )
    part = _report_part(report, now, dumps)
    problems = check_all(report, [f.details for f in files], report_problems=part.problems)
    state = "draft" if docs.errors(problems) else "validated"
    insert_report_row, insert_file_row, insert_event_row = _inserts()
    document = part.document
    event_details = {"files": len(files), "state": state}
    if sqlite:
        # Straight to the driver with the values SQLAlchemy's bind processors would make
        # (JSON text as above; one datetime text for the three times, as SQLAlchemy
        # formats a UTC time): the processors were a fifth of a hit's draft.
        assert dumps is not None and part.text is not None
        problems_text = (  # no file problems: the report's own, encoded once
            part.problems_text
            if len(problems) == len(part.problems)
            else dumps([p.to_json() for p in problems])
        )
        stamp = sqlite_datetime(now)
        driver = conn.connection.driver_connection
        report_id = insert_report_row.driver_row(
            conn,
            (part.text, dumps(origin or {}), actor, problems_text, state, stamp, stamp),
            driver=driver,
        )
        for i, new in enumerate(files):
            assert key is not None
            v = _file_values(report_id, i, new, key)
            v["details"] = dumps(v["details"])
            v["stray_file_ids"] = dumps(v["stray_file_ids"])
            insert_file_row.driver_row(conn, [v[c] for c in _FILE_COLUMNS], driver=driver)
        insert_event_row.driver_row(
            conn, (report_id, actor, "create", stamp, dumps(event_details)), driver=driver
        )
        return report_id
    inserted = insert_report_row(
        conn,
        {
            "document": document,
            "origin": origin or {},
            "created_by": actor,
            "problems": [p.to_json() for p in problems],
            "state": state,
            "created_at": now,
            "updated_at": now,
        },
    )
    assert inserted is not None
    report_id = inserted
    for i, new in enumerate(files):
        assert key is not None
        insert_file_row(conn, _file_values(report_id, i, new, key))
    insert_event_row(
        conn,
        {"report_id": report_id, "actor": actor, "action": "create", "at": now,
         "details": event_details},
    )  # fmt: skip
    return report_id


@dataclass(frozen=True)
class _ReportPart:
    """A report document as a draft stores it: its JSON, and on SQLite its JSON text
    and its problems' text; its own problems (validation)."""

    document: dict[str, Any]
    problems: list[Problem]
    text: str | None
    problems_text: str | None


#: Report documents a hit's draft stored recently (`_report_part`); cleared when full.
_REPORT_PARTS: dict[tuple[Report, Any], _ReportPart] = {}
_REPORT_PARTS_MAX = 256


def _report_part(
    report: Report, now: dt.datetime, dumps: Callable[[Any], str] | None
) -> _ReportPart:
    """The report's JSON, text and problems, made once per document: the drafts of
    hits without an upload context (a scan's, most API calls') all carry one document,
    so a hit validated and encoded the same report every time. Validation is a
    function of the document alone, except for "the incident time is in the future":
    a document whose incident time was still to come is not kept (it may be valid
    later). The parts are shared: nobody may change them."""
    key = (report, dumps)
    found = _REPORT_PARTS.get(key)
    if found is not None:
        return found
    problems = docs.validate_report(report, now=now)
    document = docs.to_json(report)
    text = problems_text = None
    if dumps is not None:
        text, problems_text = dumps(document), dumps([p.to_json() for p in problems])
    part = _ReportPart(document, problems, text, problems_text)
    summary = report.incident_summary
    when = summary.incident_date_time if summary is not None else None
    if when is None or when.utcoffset() is None or when <= now:
        if len(_REPORT_PARTS) >= _REPORT_PARTS_MAX:
            _REPORT_PARTS.clear()
        _REPORT_PARTS[key] = part
    return part


_INSERTS: tuple[PreparedInsert, PreparedInsert, PreparedInsert] | None = None


def _inserts() -> tuple[PreparedInsert, PreparedInsert, PreparedInsert]:
    """The three INSERTs of `insert_report`, prepared once."""
    global _INSERTS
    if _INSERTS is None:
        from sqlalchemy import Table

        tables = [CyberTipReport.__table__, CyberTipFile.__table__, CyberTipEvent.__table__]
        reports, files, events = (t for t in tables if isinstance(t, Table))
        _INSERTS = (
            PreparedInsert(reports, _REPORT_COLUMNS),
            PreparedInsert(files, _FILE_COLUMNS),
            PreparedInsert(events, ("report_id", "actor", "action", "at", "details")),
        )
    return _INSERTS


_REPORT_COLUMNS = (
    "document", "origin", "created_by", "problems", "state", "created_at", "updated_at"
)  # fmt: skip
_FILE_COLUMNS = (
    "report_id", "position", "file_name", "size", "md5", "sha1", "sha256", "blob_uuid",
    "key_id", "nonce", "ciphertext", "details", "stray_file_ids",
)  # fmt: skip


def get_report(session: Session, report_id: int) -> CyberTipReport:
    row = session.get(CyberTipReport, report_id)
    if row is None:
        raise NotFound(f"no report {report_id}")
    return row


def list_reports(
    session: Session, *, state: str | None = None, limit: int = 100
) -> list[CyberTipReport]:
    """Reports, newest first."""
    if state is not None and state not in STATES:
        raise BadInput(f"unknown report state {state!r}; expected one of {', '.join(STATES)}")
    query = select(CyberTipReport).order_by(CyberTipReport.id.desc()).limit(limit)
    if state is not None:
        query = query.where(CyberTipReport.state == state)
    return list(session.scalars(query))


def report_of(row: CyberTipReport) -> Report:
    return docs.report_from_json(row.document)


def details_of(f: CyberTipFile) -> FileDetails | None:
    return docs.file_details_from_json(f.details) if f.details is not None else None


def file_details_xml(row: CyberTipReport, f: CyberTipFile) -> bytes:
    """A file's fileDetails as sent: with the NCMEC ids once known, placeholders before."""
    details = details_of(f) or FileDetails()
    details = dataclasses.replace(details, report_id=row.ncmec_report_id, file_id=f.ncmec_file_id)
    data = docs.file_details_to_xml(details)
    missing = ""
    if row.ncmec_report_id is None:
        missing += "<reportId>@REPORT_ID@</reportId>"
    if f.ncmec_file_id is None:
        missing += "<fileId>@FILE_ID@</fileId>"
    if missing:
        data = data.replace(b"<fileDetails>", b"<fileDetails>" + missing.encode(), 1)
        data = data.replace(
            b"<fileDetails/>", b"<fileDetails>" + missing.encode() + b"</fileDetails>"
        )
    return data


def revalidate(session: Session, row: CyberTipReport) -> list[Problem]:
    """Validate again (a draft's incident time may now be valid, or an edit fixed it)."""
    problems = check_all(report_of(row), [details_of(f) for f in row.files])
    if row.state in EDITABLE:
        _apply_validation(row, problems)
    else:
        row.problems = [p.to_json() for p in problems]
    return problems


def edit_report(
    session: Session,
    report_id: int,
    patch: dict[str, Any],
    *,
    actor: str | None = None,
    file_patches: dict[int, dict[str, Any]] | None = None,
) -> CyberTipReport:
    """Apply a JSON merge patch to the report (and to files' fileDetails), then validate."""
    row = get_report(session, report_id)
    if row.state not in EDITABLE:
        raise Conflict(
            f"report {report_id} is {row.state}; only draft or validated reports can be edited"
        )
    document = docs.merge_json(row.document, patch)
    docs.report_from_json(document)  # unknown keys and bad values fail the whole edit
    row.document = document
    by_position = {f.position: f for f in row.files}
    for position, fpatch in (file_patches or {}).items():
        target = by_position.get(position)
        if target is None:
            raise NotFound(f"report {report_id} has no file {position}")
        merged = docs.merge_json(target.details or {}, fpatch)
        docs.file_details_from_json(merged)
        target.details = merged
    revalidate(session, row)
    _event(session, row, actor, "edit", state=row.state)
    auditlog.append(session, actor, "report.edit", f"report:{row.id}", {"state": row.state})
    return row


def events(session: Session, report_id: int) -> list[CyberTipEvent]:
    return list(
        session.scalars(
            select(CyberTipEvent)
            .where(CyberTipEvent.report_id == report_id)
            .order_by(CyberTipEvent.id)
        )
    )


# ---------------------------------------------------------------- preservation


def preserve_until(filed_at: dt.datetime) -> dt.datetime:
    return as_utc(filed_at) + dt.timedelta(days=PRESERVE_DAYS)


def purge_report(
    session: Session, report_id: int, *, actor: str | None = None, now: dt.datetime | None = None
) -> None:
    """Delete a report and its files; refused while it must be preserved.

    Never-submitted drafts may go at any time. Anything NCMEC has seen (submitted,
    finished, retracted, or unknown after a lost reply) is kept until `keep_until`,
    one year from filing."""
    row = get_report(session, report_id)
    at = as_utc(now or utcnow())
    if row.state not in EDITABLE and (row.keep_until is None or as_utc(row.keep_until) > at):
        until = isoformat(row.keep_until) if row.keep_until else "one year after filing"
        raise Conflict(
            f"report {report_id} is {row.state} and must be preserved until {until} "
            "(REPORT Act: one year from filing); not deleted"
        )
    auditlog.append(session, actor, "report.purge", f"report:{row.id}", {"state": row.state})
    session.delete(row)
