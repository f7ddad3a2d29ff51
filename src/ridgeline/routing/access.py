"""Law-enforcement access to received reports.

An agency sees only the reports made available to it (`report_availability`); a report
that is not available answers "not found", so an agency cannot learn that it exists.
Files follow United States v. Wilson (9th Cir. 2021): a file the reporting ESP did not
view and that was not publicly available stays locked to the agency until it enters a
legal-process record (a warrant) for it; a missing flag counts as "not viewed". Until
then the agency learns only that the file exists and why it is locked, not its name,
hashes or details. Every view of a report or a file, every refusal, every legal-process
record and every preservation request is a tamper-evident log record.

Preservation: the REPORT Act (18 U.S.C. 2258A(h)) has the provider preserve a report's
contents for one year; the deadline is shown with the report, and a request asking the
provider to preserve (and keep preserving) can be exported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, PermissionDenied
from ridgeline.reports import received
from ridgeline.reports.core import PRESERVE_DAYS
from ridgeline.reports.documents import to_json
from ridgeline.reports.model import FileDetails, Report
from ridgeline.routing.core import StoredAvailability, available_to, require_available
from ridgeline.routing.models import LegalProcess
from ridgeline.timeutil import as_utc, isoformat, utcnow

LEGAL_PROCESS_KINDS = ("warrant", "court order", "subpoena")
#: Kinds that open files the ESP did not view (a subpoena does not: Wilson needs a warrant).
OPENING_KINDS = ("warrant", "court order")


class FileLocked(PermissionDenied):
    """A file the ESP did not view and that was not public, without legal process."""

    code = "file_locked"


def preservation_until(received_at: dt.datetime) -> dt.datetime:
    """The end of the provider's preservation period: one year from the report."""
    return as_utc(received_at) + dt.timedelta(days=PRESERVE_DAYS)


@dataclass(frozen=True)
class FileAccess:
    """Whether an agency may open one file of a report, and why."""

    position: int
    locked: bool
    why: str
    #: the fileDetails JSON, only when not locked
    details: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "locked": self.locked,
            "why": self.why,
            "details": self.details,
        }


def file_gate(
    details: FileDetails, position: int, process: Sequence[LegalProcess]
) -> tuple[bool, str]:
    """(locked, why) for one file under the Wilson rule and the legal process held."""
    if details.file_viewed_by_esp is True:
        return False, "viewed by the reporting ESP"
    if details.publicly_available is True:
        return False, "publicly available"
    for lp in process:
        if lp.kind in OPENING_KINDS and (lp.files is None or position in lp.files):
            return False, f"{lp.kind} {lp.reference} entered {isoformat(lp.entered_at)}"
    return True, (
        "not viewed by the reporting ESP and not publicly available: a warrant is required "
        "before it is opened (United States v. Wilson)"
    )


def _process(session: Session, report_id: int, agency: str) -> list[LegalProcess]:
    return list(
        session.scalars(
            select(LegalProcess)
            .where(LegalProcess.report_id == report_id, LegalProcess.agency == agency)
            .order_by(LegalProcess.id)
        )
    )


@dataclass(frozen=True)
class ReportView:
    """A received report as an agency sees it."""

    report_id: int
    agency: str
    received_at: dt.datetime
    incident_type: str | None
    availability: StoredAvailability
    preservation_until: dt.datetime
    report: dict[str, Any]
    files: tuple[FileAccess, ...]
    legal_process: tuple[dict[str, Any], ...]

    def to_json(self, now: dt.datetime | None = None) -> dict[str, Any]:
        left = (self.preservation_until - as_utc(now or utcnow())).days
        return {
            "report_id": self.report_id,
            "agency": self.agency,
            "received_at": isoformat(self.received_at),
            "incident_type": self.incident_type,
            "made_available": self.availability.to_json(),
            "preservation": {
                "until": isoformat(self.preservation_until),
                "days_left": left,
                "expired": left < 0,
            },
            "report": self.report,
            "files": [f.to_json() for f in self.files],
            "legal_process": list(self.legal_process),
        }


def _load(session: Session, report_id: int, agency: str) -> tuple[Any, Report, list[FileDetails]]:
    require_available(session, report_id, agency)
    row = received.get(session, report_id)
    report, files = received.document_of(row)
    return row, report, files


def view_report(session: Session, report_id: int, agency: str, actor: str) -> ReportView:
    """The report as `agency` may see it (logged as `le.view_report`)."""
    row, report, files = _load(session, report_id, agency)
    process = _process(session, report_id, agency)
    access = []
    for i, f in enumerate(files):
        locked, why = file_gate(f, i, process)
        access.append(FileAccess(i, locked, why, None if locked else to_json(f)))
    mine = next(a for a in available_to(session, report_id) if a.agency == agency)
    auditlog.append(
        session,
        actor,
        "le.view_report",
        f"received_report:{report_id}",
        {"agency": agency, "files_locked": sum(1 for a in access if a.locked)},
    )
    return ReportView(
        report_id=report_id,
        agency=agency,
        received_at=as_utc(row.received_at),
        incident_type=row.incident_type,
        availability=mine,
        preservation_until=preservation_until(row.received_at),
        report=to_json(report),
        files=tuple(access),
        legal_process=tuple(lp.to_json() for lp in process),
    )


def view_file(
    session: Session, report_id: int, position: int, agency: str, actor: str
) -> FileAccess:
    """One file's details for `agency` (logged as `le.view_file`); `FileLocked` under the
    Wilson rule. The refusal rolls the caller's transaction back with the error, so the
    caller logs it in a transaction of its own with `log_refusal`."""
    _row, _report, files = _load(session, report_id, agency)
    if not 0 <= position < len(files):
        raise BadInput(f"received report {report_id} has no file {position} ({len(files)} files)")
    locked, why = file_gate(files[position], position, _process(session, report_id, agency))
    if locked:
        raise FileLocked(f"file {position} of received report {report_id} is locked: {why}")
    auditlog.append(
        session, actor, "le.view_file", _file_subject(report_id, position), {"agency": agency}
    )
    return FileAccess(position, False, why, to_json(files[position]))


def _file_subject(report_id: int, position: int) -> str:
    return f"received_report:{report_id}/file:{position}"


def log_refusal(session: Session, report_id: int, position: int, agency: str, actor: str) -> None:
    """Log that a locked file was asked for (`le.file_refused`)."""
    auditlog.append(
        session, actor, "le.file_refused", _file_subject(report_id, position), {"agency": agency}
    )


def enter_legal_process(
    session: Session,
    report_id: int,
    agency: str,
    *,
    kind: str,
    reference: str,
    actor: str,
    issued_on: dt.date | None = None,
    files: Sequence[int] | None = None,
    note: str | None = None,
) -> LegalProcess:
    """Record legal process an agency holds for a report (logged as `le.legal_process`)."""
    if kind not in LEGAL_PROCESS_KINDS:
        raise BadInput(
            f"legal process kind {kind!r}; expected one of {', '.join(LEGAL_PROCESS_KINDS)}"
        )
    if not reference or not reference.strip() or len(reference) > 200:
        raise BadInput("legal process needs a reference (a warrant number), up to 200 characters")
    _row, _report, report_files = _load(session, report_id, agency)
    covered = None
    if files is not None:
        covered = sorted(set(files))
        bad = [p for p in covered if not 0 <= p < len(report_files)]
        if bad or not covered:
            raise BadInput(
                f"received report {report_id} has files 0..{len(report_files) - 1}; "
                f"not {bad or 'an empty list'}"
            )
    lp = LegalProcess(
        report_id=report_id,
        agency=agency,
        kind=kind,
        reference=reference.strip(),
        issued_on=issued_on,
        files=covered,
        note=note,
        entered_by=actor,
        entered_at=utcnow(),
    )
    session.add(lp)
    session.flush()
    auditlog.append(
        session,
        actor,
        "le.legal_process",
        f"received_report:{report_id}",
        {"agency": agency, "kind": kind, "reference": lp.reference, "files": covered},
    )
    return lp


@dataclass(frozen=True)
class PreservationRequest:
    """A request to the reporting provider to preserve a report's contents."""

    report_id: int
    agency: str
    provider: str | None
    received_at: dt.datetime
    preserve_until: dt.datetime
    accounts: tuple[dict[str, Any], ...]
    files: tuple[dict[str, Any], ...]
    requested_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "preservation_request",
            "legal_basis": "18 U.S.C. 2258A(h) (one year from the report); 18 U.S.C. 2703(f)",
            "report_id": self.report_id,
            "requesting_agency": self.agency,
            "provider": self.provider,
            "report_received_at": isoformat(self.received_at),
            "preserve_until": isoformat(self.preserve_until),
            "accounts": list(self.accounts),
            "files": list(self.files),
            "requested_at": isoformat(self.requested_at),
        }

    def to_text(self) -> str:
        lines = [
            f"Preservation request: received report {self.report_id}",
            f"To: {self.provider or 'the reporting provider'}",
            f"From: {self.agency}",
            f"Date: {isoformat(self.requested_at)}",
            "",
            "Please preserve the records and content of the accounts and files below, as",
            "required by 18 U.S.C. 2258A(h), until "
            f"{isoformat(self.preserve_until)}, and further under 18 U.S.C. 2703(f) "
            "pending legal process.",
            f"Report received: {isoformat(self.received_at)}",
            "",
            "Accounts:",
        ]
        for a in self.accounts:
            parts = [f"{k}={v}" for k, v in a.items() if v]
            lines.append("  - " + (", ".join(parts) or "(no identifier given)"))
        lines.append("Files:")
        for f in self.files:
            lines.append(f"  - file {f['position']}: " + (f.get("hashes") or "locked"))
        return "\n".join(lines) + "\n"


def preservation_request(
    session: Session, report_id: int, agency: str, actor: str
) -> PreservationRequest:
    """The request to preserve a report's contents (logged as `le.preservation_request`).

    It names the reported accounts (ESP identifier, screen name, service, emails) and
    each file by position, with its hashes only when the file is open to the agency."""
    row, report, files = _load(session, report_id, agency)
    process = _process(session, report_id, agency)
    accounts = []
    for p in report.persons_reported:
        accounts.append(
            {
                "esp_service": p.esp_service,
                "esp_identifier": p.esp_identifier,
                "screen_name": p.screen_name,
                "emails": ", ".join(e.value or "" for e in (p.person.emails if p.person else ())),
            }
        )
    listed = []
    for i, f in enumerate(files):
        locked, _why = file_gate(f, i, process)
        hashes = (
            None
            if locked
            else ", ".join(f"{h.hash_type}:{h.value}" for h in f.original_file_hashes) or None
        )
        listed.append({"position": i, "locked": locked, "hashes": hashes})
    now = utcnow()
    req = PreservationRequest(
        report_id=report_id,
        agency=agency,
        provider=row.reporter,
        received_at=as_utc(row.received_at),
        preserve_until=preservation_until(row.received_at),
        accounts=tuple(accounts),
        files=tuple(listed),
        requested_at=now,
    )
    auditlog.append(
        session,
        actor,
        "le.preservation_request",
        f"received_report:{report_id}",
        {"agency": agency, "preserve_until": isoformat(req.preserve_until)},
    )
    return req
