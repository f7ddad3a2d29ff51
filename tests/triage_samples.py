"""Synthetic received reports for the triage, routing and access tests (no real people:
example.com addresses, documentation IP ranges)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Sequence

from sqlalchemy.orm import Session

from ridgeline.reports.documents import to_json
from ridgeline.reports.model import (
    Address,
    BatchedReport,
    Email,
    FileDetails,
    IncidentSummary,
    IntendedRecipient,
    IpCaptureEvent,
    OriginalFileHash,
    Person,
    PersonOrUserReported,
    Report,
    ReportAnnotations,
    Reporter,
    Victim,
)
from ridgeline.reports.models import ReceivedReport

_KEYS = itertools.count(1)
INCIDENT = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
CP = "Child Pornography (possession, manufacture, and distribution)"
ENTICEMENT = "Online Enticement of Children for Sexual Acts"
TRAFFICKING = "Child Sex Trafficking"
MOLESTATION = "Child Sexual Molestation"


def sha(n: int) -> str:
    return hashlib.sha256(f"benign-file-{n}".encode()).hexdigest()


def make_file(
    n: int,
    *,
    viewed: bool | None = True,
    public: bool | None = None,
    meme: bool | None = None,
    ip: str | None = None,
) -> FileDetails:
    return FileDetails(
        file_name=f"file{n}.jpg",
        file_viewed_by_esp=viewed,
        publicly_available=public,
        potential_meme=meme,
        original_file_hashes=(OriginalFileHash(value=sha(n), hash_type="SHA256"),),
        ip_capture_event=IpCaptureEvent(ip_address=ip, event_name="Upload") if ip else None,
    )


def make_report(
    *,
    incident_type: str = CP,
    at: dt.datetime = INCIDENT,
    escalate: str | None = None,
    sextortion: bool = False,
    sadistic: bool = False,
    victim_age: int | None = None,
    recipient_age: int | None = None,
    info: str | None = None,
    user: str | None = "user1",
    address: Address | None = None,
    ips: Sequence[tuple[str, bool]] = (),
    reporter_address: Address | None = None,
    batched: bool = False,
) -> Report:
    notes = (
        ReportAnnotations(sextortion=sextortion, sadistic_online_exploitation=sadistic)
        if sextortion or sadistic
        else None
    )
    persons = ()
    if user is not None:
        persons = (
            PersonOrUserReported(
                person=Person(
                    emails=(Email(value=f"{user}@example.com"),),
                    addresses=(address,) if address else (),
                ),
                screen_name=user,
                esp_service="ExampleChat",
                ip_capture_events=tuple(
                    IpCaptureEvent(ip_address=ip, event_name="Login", possible_proxy=proxy)
                    for ip, proxy in ips
                ),
            ),
        )
    return Report(
        batched_report=BatchedReport(reason="VIRAL_POTENTIAL_MEME") if batched else None,
        incident_summary=IncidentSummary(
            incident_type=incident_type,
            escalate_to_high_priority=escalate,
            report_annotations=notes,
            incident_date_time=at,
        ),
        reporter=Reporter(
            reporting_person=Person(
                emails=(Email(value="desk@esp.example.com"),),
                addresses=(reporter_address,) if reporter_address else (),
            )
        ),
        persons_reported=persons,
        intended_recipients=(
            (IntendedRecipient(person=Person(age=recipient_age)),)
            if recipient_age is not None
            else ()
        ),
        victims=(Victim(person=Person(age=victim_age)),) if victim_age is not None else (),
        additional_info=info,
    )


def store_received(
    session: Session,
    report: Report,
    files: Sequence[FileDetails] = (),
    *,
    received_at: dt.datetime | None = None,
    key: str | None = None,
) -> int:
    """A received_reports row as intake stores it (the document in JSON names)."""
    received_at = received_at or INCIDENT + dt.timedelta(days=2)
    summary = report.incident_summary
    row = ReceivedReport(
        source="test",
        idempotency_key=key or f"test:{next(_KEYS)}",
        sha256="0" * 64,
        received_at=received_at,
        received_by="test",
        format="json",
        document={"report": to_json(report), "files": [to_json(f) for f in files]},
        raw=None,
        incident_type=summary.incident_type if summary else None,
        incident_at=summary.incident_date_time if summary else None,
        reporter="ExampleChat",
        file_count=len(files),
        warnings=[],
    )
    session.add(row)
    session.flush()
    return row.id
