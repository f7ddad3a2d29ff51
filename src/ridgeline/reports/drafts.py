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

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput
from ridgeline.evidence import MAX_EVIDENCE_BYTES, EvidenceKey
from ridgeline.reports import core
from ridgeline.reports.model import (
    BatchedReport,
    Email,
    FileAnnotations,
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
    #: md5, sha1, sha256 of `data` when known to be its own (`data_digests`): the
    #: stored file takes them instead of hashing the bytes again.
    digests: tuple[str, str, str] | None = None


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


def file_details_for(f: MatchedFile, context: UploadContext, *, viral: bool = False) -> FileDetails:
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
        file_annotations=FileAnnotations(viral=True) if viral else None,
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
    report, files, trail = _draft_parts(draft, origin)
    return core.create_report(session, report, files, key, actor=actor, origin=trail)


def _draft_parts(
    draft: DraftInput, origin: dict[str, Any] | None
) -> tuple[Report, list[core.NewFile], dict[str, Any]]:
    if not draft.files:
        raise BadInput("a report draft needs at least one matched file")
    files = [
        core.NewFile(
            f.name, f.data, file_details_for(f, draft.context, viral=draft.batched), f.digests
        )
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
    return report_for(draft), files, trail


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


# ---------------------------------------------------------------- context from callers

#: Limits on the upload context a caller gives (`/v1/match` `context`).
CONTEXT_TEXT_MAX = 255
CONTEXT_LIST_MAX = 50


def _text(raw: Any, path: str, problems: list[str]) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        problems.append(f"{path}: expected a string")
        return None
    value = str(raw).strip()
    if not value:
        return None
    if len(value) > CONTEXT_TEXT_MAX:
        problems.append(f"{path}: at most {CONTEXT_TEXT_MAX} characters")
        return None
    return value


def _time(raw: Any, path: str, problems: list[str], now: dt.datetime) -> dt.datetime | None:
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{path}: {raw!r} is not an ISO 8601 time")
        return None
    if value.tzinfo is None:
        problems.append(f"{path}: give a time zone (e.g. 2026-02-01T09:00:00Z)")
        return None
    if value > now + dt.timedelta(minutes=5):
        problems.append(f"{path}: {raw!r} is in the future")
        return None
    return value


def _list(raw: Any, path: str, problems: list[str]) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"{path}: expected a list")
        return []
    if len(raw) > CONTEXT_LIST_MAX:
        problems.append(f"{path}: at most {CONTEXT_LIST_MAX} items")
        return []
    return raw


CONTEXT_FIELDS = (
    "user_id",
    "screen_name",
    "display_name",
    "emails",
    "ips",
    "esp_service",
    "platform",
    "incident_time",
    "profile_url",
)


def parse_context(raw: Any, *, now: dt.datetime | None = None) -> UploadContext:
    """An `UploadContext` from JSON (`/v1/match`'s `context`), every problem named by
    its field: emails must be addresses, IPs addresses with an event from the schema's
    list and an ISO 8601 time with a zone, never in the future."""
    import ipaddress

    from email_validator import EmailNotValidError, validate_email

    from ridgeline.reports.model import EVENT_NAMES
    from ridgeline.timeutil import utcnow

    if raw is None:
        return UploadContext()
    if not isinstance(raw, dict):
        raise BadInput("context: expected an object")
    now = now or utcnow()
    problems: list[str] = []
    unknown = sorted(set(raw) - set(CONTEXT_FIELDS))
    if unknown:
        problems.append(
            f"context: unknown field(s) {', '.join(unknown)}; expected {', '.join(CONTEXT_FIELDS)}"
        )
    emails: list[str] = []
    for i, value in enumerate(_list(raw.get("emails"), "context.emails", problems)):
        text = _text(value, f"context.emails[{i}]", problems)
        if text is None:
            continue
        try:
            emails.append(validate_email(text, check_deliverability=False).normalized)
        except EmailNotValidError as exc:
            problems.append(f"context.emails[{i}]: {text!r} is not an email address ({exc})")
    ips: list[IpEvent] = []
    for i, value in enumerate(_list(raw.get("ips"), "context.ips", problems)):
        where = f"context.ips[{i}]"
        if isinstance(value, str):
            value = {"ip": value}
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object {{ip, event, at}} or an address")
            continue
        extra = sorted(set(value) - {"ip", "event", "at", "port"})
        if extra:
            problems.append(f"{where}: unknown field(s) {', '.join(extra)}")
        try:
            ip = str(ipaddress.ip_address(str(value.get("ip", "")).strip()))
        except ValueError:
            problems.append(f"{where}.ip: {value.get('ip')!r} is not an IP address")
            continue
        event = str(value.get("event") or "Upload")
        if event not in EVENT_NAMES:
            problems.append(f"{where}.event: {event!r} is not one of {', '.join(EVENT_NAMES)}")
            continue
        port = value.get("port")
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
        ):
            problems.append(f"{where}.port: expected a port number 1-65535")
            continue
        at = _time(value.get("at"), f"{where}.at", problems, now)
        ips.append(IpEvent(ip, event, at, port))
    context = UploadContext(
        user_id=_text(raw.get("user_id"), "context.user_id", problems),
        screen_name=_text(raw.get("screen_name"), "context.screen_name", problems),
        display_name=_text(raw.get("display_name"), "context.display_name", problems),
        emails=tuple(emails),
        ips=tuple(ips),
        esp_service=_text(raw.get("esp_service"), "context.esp_service", problems),
        platform=_text(raw.get("platform"), "context.platform", problems),
        incident_time=_time(raw.get("incident_time"), "context.incident_time", problems, now),
        profile_url=_text(raw.get("profile_url"), "context.profile_url", problems),
    )
    if context.profile_url and any(ch.isspace() for ch in context.profile_url):
        problems.append("context.profile_url: a URL may not contain white space")
    if problems:
        raise BadInput("; ".join(problems))
    return context


# ---------------------------------------------------------------- the report action


def _matched_entries(matches: Sequence[Any]) -> tuple[MatchedEntry, ...]:
    return tuple(
        MatchedEntry(
            list_name=m.list_name,
            entry_id=m.entry_id,
            signal=m.signal,
            distance=float(m.distance),
            classifications=tuple((c.scheme, c.label) for c in m.classifications),
        )
        for m in matches
    )


def _file_bytes(path: str | None) -> bytes | None:
    """The file's bytes if it is still there and not empty, else None."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data or None


_HEX = {"md5": 32, "sha1": 40, "sha256": 64}
_LOWER_HEX = frozenset("0123456789abcdef")


def _hex(value: str | None, name: str) -> bool:
    return value is not None and len(value) == _HEX[name] and _LOWER_HEX.issuperset(value)


def data_digests(
    data: bytes, hashes: dict[str, str], *, hashed: bool, sha256: str | None = None
) -> tuple[str, str, str] | None:
    """md5, sha1, sha256 of `data` from the hit's `hashes` where they are this data's:
    the caller computed them from these bytes (`hashed`), or the data's sha256 (`sha256`
    when already computed, else computed here) is the hashes' one. None: not known
    (the store computes them). A hit hashed the file already; hashing it three more
    times was the largest part of a draft of a large upload."""
    md5, sha1, known = hashes.get("md5"), hashes.get("sha1"), hashes.get("sha256")
    if not (_hex(md5, "md5") and _hex(sha1, "sha1") and _hex(known, "sha256")):
        return None
    assert md5 is not None and sha1 is not None and known is not None
    if not hashed and (sha256 or core.sha256_hex(data)) != known:
        return None
    return md5, sha1, known


class ReportSink:
    """The `report` action of `scan` and `/v1/match`: a CyberTipline draft per hit.

    Passed by the front end as `ScanOptions.report_sink` (the scan may not import
    reports). Each call stores one draft in the caller's transaction: the file (its
    bytes encrypted with the evidence key; without a key, its hashes only, named in
    the report's additional information), MD5/SHA1/SHA256/PDQ as `originalFileHash`,
    the matched entries and their classifications (`industryClassification` when they
    agree), and the upload's context (`UploadContext`) when the caller gives one.

    Viral batching: with `viral_users` set, once that many different users' drafts
    (still editable) carry the same file, the new draft and those earlier ones get
    `batchedReport` with reason `VIRAL_POTENTIAL_MEME` and the file annotation `viral`.
    """

    def __init__(
        self,
        key: EvidenceKey | None,
        *,
        reporter: Reporter | None = None,
        actor: str | None = None,
        viral_users: int | None = None,
    ) -> None:
        if viral_users is not None and viral_users < 2:
            raise BadInput("viral batching needs at least 2 users")
        self.key = key
        self.reporter = reporter
        self.actor = actor
        self.viral_users = viral_users

    def __call__(self, session: Session | Connection, request: Any) -> int:
        """Store the draft of one hit in `session`'s transaction; its id. A Core
        `Connection` will do (what `/v1/match` uses) unless viral batching is on: that
        reads and rewrites earlier drafts through the ORM."""
        context = request.context if isinstance(request.context, UploadContext) else None
        context = context or UploadContext()
        hashes = hashes_from_signals(request.signals or {})
        if request.sha256 and "sha256" not in hashes:
            hashes["sha256"] = request.sha256
        data = request.data
        hashed = request.hashed and data is not None
        verified: str | None = None
        if data is None and self.key is not None:
            # still there, and still the content that matched (never a different file
            # under the same name): its sha256 is the matched one
            data = _file_bytes(request.path)
            if data is not None and request.sha256 is not None:
                verified = core.sha256_hex(data)
                if verified != request.sha256:
                    data = None
        if self.key is None or (data is not None and len(data) > MAX_EVIDENCE_BYTES):
            data = None  # nothing is stored in the clear; the hashes still identify it
        digests = (
            data_digests(data, hashes, hashed=hashed, sha256=verified) if data is not None else None
        )
        matched = MatchedFile(
            name=request.name,
            hashes=hashes,
            matches=_matched_entries(request.matches),
            data=data,
            uploaded_at=next((e.at for e in context.ips if e.event == "Upload" and e.at), None),
            digests=digests,
        )
        origin = {**request.origin, "user_id": context.user_id}
        batched = self._viral(session, request.sha256 or hashes.get("sha256"), context.user_id)
        report, files, trail = _draft_parts(
            DraftInput(files=[matched], context=context, reporter=self.reporter, batched=batched),
            origin,
        )
        actor = self.actor or str(request.origin.get("source") or "match")
        return core.insert_report(session, report, files, self.key, actor=actor, origin=trail)

    def _viral(
        self, session: Session | Connection, sha256: str | None, user_id: str | None
    ) -> bool:
        """True when this hit makes (or keeps) the file viral; marks earlier drafts."""
        if self.viral_users is None or sha256 is None or user_id is None:
            return False
        if not isinstance(session, Session):
            raise TypeError("viral batching needs an ORM session, not a Core connection")
        from sqlalchemy import select

        from ridgeline.reports.models import CyberTipFile

        rows = list(
            session.scalars(
                select(CyberTipReport)
                .join(CyberTipFile, CyberTipFile.report_id == CyberTipReport.id)
                .where(CyberTipFile.sha256 == sha256, CyberTipReport.state.in_(core.EDITABLE))
            )
        )
        users = {r.origin.get("user_id") for r in rows if r.origin.get("user_id")}
        users.add(user_id)
        if len(users) < self.viral_users:
            return False
        for row in rows:
            if "batchedReport" in (row.document or {}):
                continue
            row.document = {"batchedReport": {"reason": "VIRAL_POTENTIAL_MEME"}, **row.document}
            for f in row.files:
                if f.sha256 == sha256:
                    details = dict(f.details or {})
                    details["fileAnnotations"] = {
                        **(details.get("fileAnnotations") or {}),
                        "viral": True,
                    }
                    f.details = details
            core.revalidate(session, row)
        return True
