"""Report drafts from matches: files, their hashes, the matched entries and their
classifications, and the upload's context, turned into a CyberTipline draft.

Nothing is guessed: a field the caller does not know stays empty and shows up as a
problem for the operator (`ridgeline reports edit`), e.g. the incident time or the
reporter. The industry classification is set only when every matched entry that has
one agrees; otherwise the labels are listed in the file's additional information.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from ridgeline.errors import BadInput
from ridgeline.evidence import EvidenceKey
from ridgeline.reports import core
from ridgeline.reports.model import (
    BatchedReport,
    Email,
    FileDetails,
    IncidentSummary,
    IpCaptureEvent,
    OriginalFileHash,
    Person,
    PersonOrUserReported,
    Report,
    Reporter,
)
from ridgeline.reports.models import CyberTipReport

DEFAULT_INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
#: Our signal names -> the hashType strings clients send in originalFileHash.
HASH_TYPES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256", "pdq": "PDQ"}


@dataclass(frozen=True)
class MatchedEntry:
    """One list entry a file matched, with its classifications (scheme, label)."""

    list_name: str
    entry_id: int
    signal: str
    distance: float = 0
    classifications: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_match(cls, match: dict[str, Any]) -> MatchedEntry:
        """From a match as `scan` and `/v1/match` report it."""
        labels = tuple(
            (str(c.get("scheme")), str(c.get("label")))
            for c in match.get("classifications") or []
            if isinstance(c, dict)
        )
        return cls(
            list_name=str(match.get("list")),
            entry_id=int(match.get("entry_id") or 0),
            signal=str(match.get("signal")),
            distance=float(match.get("distance") or 0),
            classifications=labels,
        )


@dataclass(frozen=True)
class MatchedFile:
    """A file that matched: its name, hashes, matches and (to upload it) its bytes."""

    name: str
    hashes: dict[str, str]
    matches: tuple[MatchedEntry, ...]
    data: bytes | None = None
    location: str | None = None
    uploaded_at: dt.datetime | None = None
    viewed_by_esp: bool | None = None
    publicly_available: bool | None = None


@dataclass(frozen=True)
class IpEvent:
    ip: str
    event: str = "Upload"
    at: dt.datetime | None = None
    port: int | None = None


@dataclass(frozen=True)
class UploadContext:
    """What the provider knows about the upload and its user (all optional)."""

    user_id: str | None = None
    screen_name: str | None = None
    display_name: str | None = None
    emails: tuple[str, ...] = ()
    ips: tuple[IpEvent, ...] = ()
    esp_service: str | None = None
    platform: str | None = None
    incident_time: dt.datetime | None = None
    profile_url: str | None = None


@dataclass(frozen=True)
class DraftInput:
    """Everything `draft_from_matches` turns into a report."""

    files: Sequence[MatchedFile]
    context: UploadContext = field(default_factory=UploadContext)
    reporter: Reporter | None = None
    incident_type: str = DEFAULT_INCIDENT
    batched: bool = False


def hashes_from_signals(signals: dict[str, Any]) -> dict[str, str]:
    """md5/sha1/sha256/pdq strings from a `hash`/`scan` signals object."""
    out: dict[str, str] = {}
    for name in HASH_TYPES:
        value = signals.get(name)
        if isinstance(value, dict):
            value = value.get("hash")
        if isinstance(value, str) and value:
            out[name] = value
    return out


def _classification(matches: Sequence[MatchedEntry]) -> tuple[str | None, list[str]]:
    labels = sorted(
        {label for m in matches for scheme, label in m.classifications if scheme == "industry"}
    )
    return (labels[0] if len(labels) == 1 else None), labels


def file_details_for(f: MatchedFile, context: UploadContext) -> FileDetails:
    """fileDetails of a matched file (reportId/fileId are filled in at filing)."""
    industry, labels = _classification(f.matches)
    info = [
        f"Matched list {m.list_name!r} entry {m.entry_id} by {m.signal}"
        + (f" (distance {m.distance:g})" if m.distance else "")
        for m in f.matches
    ]
    if len(labels) > 1:
        info.append("Matched entries disagree on the industry classification: " + ", ".join(labels))
    upload = next((e for e in context.ips if e.event == "Upload"), None)
    return FileDetails(
        original_file_name=f.name,
        uploaded_to_esp_timestamp=f.uploaded_at,
        location_of_file=f.location,
        file_viewed_by_esp=f.viewed_by_esp,
        publicly_available=f.publicly_available,
        file_relevance="Reported",
        industry_classification=industry,
        original_file_hashes=tuple(
            OriginalFileHash(value, hash_type=HASH_TYPES[name])
            for name, value in f.hashes.items()
            if name in HASH_TYPES
        ),
        ip_capture_event=(
            IpCaptureEvent(ip_address=upload.ip, event_name="Upload", date_time=upload.at)
            if upload
            else None
        ),
        additional_info=tuple(info),
    )


def report_for(draft: DraftInput) -> Report:
    """The report document of a draft (possibly incomplete: validation says what is missing)."""
    c = draft.context
    times = [f.uploaded_at for f in draft.files if f.uploaded_at is not None]
    when = c.incident_time or (min(times) if times else None)
    person = None
    if c.user_id or c.screen_name or c.emails or c.ips:
        person = PersonOrUserReported(
            person=Person(emails=tuple(Email(e) for e in c.emails)) if c.emails else None,
            esp_identifier=c.user_id,
            esp_service=c.esp_service,
            screen_name=c.screen_name,
            display_names=(c.display_name,) if c.display_name else (),
            profile_urls=(c.profile_url,) if c.profile_url else (),
            ip_capture_events=tuple(
                IpCaptureEvent(ip_address=e.ip, event_name=e.event, date_time=e.at, port=e.port)
                for e in c.ips
            ),
        )
    unsent = [f for f in draft.files if f.data is None]
    info = None
    if unsent:
        info = "Matched files not attached: " + "; ".join(
            f"{f.name} ({', '.join(f'{HASH_TYPES[k]} {v}' for k, v in f.hashes.items())})"
            for f in unsent
        )
    return Report(
        batched_report=BatchedReport(reason="VIRAL_POTENTIAL_MEME") if draft.batched else None,
        incident_summary=IncidentSummary(
            incident_type=draft.incident_type, platform=c.platform, incident_date_time=when
        ),
        reporter=draft.reporter,
        persons_reported=(person,) if person else (),
        additional_info=info[:3000] if info else None,
    )


def draft_from_matches(
    session: Session,
    draft: DraftInput,
    key: EvidenceKey | None,
    *,
    actor: str | None = None,
    origin: dict[str, Any] | None = None,
) -> CyberTipReport:
    """Store a report draft for matched files; files with bytes are attached (encrypted)."""
    if not draft.files:
        raise BadInput("a report draft needs at least one matched file")
    files = [
        core.NewFile(f.name, f.data, file_details_for(f, draft.context))
        for f in draft.files
        if f.data is not None
    ]
    trail = {
        "matches": [
            {
                "file": f.name,
                "hashes": f.hashes,
                "entries": [
                    {
                        "list": m.list_name,
                        "entry_id": m.entry_id,
                        "signal": m.signal,
                        "distance": m.distance,
                        "classifications": [
                            {"scheme": s, "label": lab} for s, lab in m.classifications
                        ],
                    }
                    for m in f.matches
                ],
            }
            for f in draft.files
        ],
        **(origin or {}),
    }
    return core.create_report(session, report_for(draft), files, key, actor=actor, origin=trail)


def _scan_file_bytes(session: Session, path: str | None, sha256: str | None) -> bytes | None:
    """The scanned file's bytes if it is still where the scan saw it, or in quarantine,
    and still has the scanned sha256 (never a different file under the same name)."""
    import hashlib
    from pathlib import Path

    from sqlalchemy import select

    from ridgeline.scan.models import QuarantineItem

    candidates = [path] if path else []
    if sha256:
        candidates += [
            q.quarantine_path
            for q in session.scalars(
                select(QuarantineItem).where(
                    QuarantineItem.sha256 == sha256, QuarantineItem.restored_at.is_(None)
                )
            )
        ]
    for candidate in candidates:
        try:
            data = Path(candidate).read_bytes()
        except OSError:
            continue
        if sha256 is None or hashlib.sha256(data).hexdigest() == sha256:
            return data
    return None


def from_scan_draft(
    session: Session,
    scan_draft_id: int,
    key: EvidenceKey | None,
    *,
    reporter: Reporter | None = None,
    context: UploadContext | None = None,
    actor: str | None = None,
) -> CyberTipReport:
    """A CyberTipline draft from a `report` action's draft row (`ridgeline scan`)."""
    from pathlib import Path

    from ridgeline.errors import NotFound
    from ridgeline.scan.models import ReportDraft

    row = session.get(ReportDraft, scan_draft_id)
    if row is None:
        raise NotFound(f"no scan report draft {scan_draft_id}")
    matched = MatchedFile(
        name=Path(row.path).name if row.path else f"file-{scan_draft_id}",
        hashes=hashes_from_signals(row.signals or {}),
        matches=tuple(MatchedEntry.from_match(m) for m in row.matches or []),
        data=_scan_file_bytes(session, row.path, row.sha256),
        uploaded_at=None,
    )
    # when the scan saw the file is not when it was uploaded: no incident time is guessed
    return draft_from_matches(
        session,
        DraftInput(files=[matched], context=context or UploadContext(), reporter=reporter),
        key,
        actor=actor,
        origin={"scan_draft_id": scan_draft_id, "scan": row.context},
    )
