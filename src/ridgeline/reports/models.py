"""Tables for CyberTipline reports: the report (a persisted state machine), its files
(encrypted like evidence) and the history of every step.

The report document is stored as JSON in the public schema's names; state, NCMEC ids
and times are columns so that lists and the resume logic never parse documents.
Credentials are never stored here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow


class CyberTipReport(Base):
    """One CyberTipline report from draft to finished (or retracted)."""

    __tablename__ = "cybertip_reports"
    __table_args__ = (
        Index("ix_cybertip_reports_state", "state"),
        # Partial: only filed reports have these; a draft writes no page of either.
        Index(
            "ix_cybertip_reports_ncmec_id",
            "ncmec_report_id",
            sqlite_where=text("ncmec_report_id IS NOT NULL"),
            postgresql_where=text("ncmec_report_id IS NOT NULL"),
        ),
        Index(
            "ix_cybertip_reports_keep_until",
            "keep_until",
            sqlite_where=text("keep_until IS NOT NULL"),
            postgresql_where=text("keep_until IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: draft, validated, submitting, submitted, finishing, finished, retracting,
    #: retracted, needs_attention (see `ridgeline.reports.filing`).
    state: Mapped[str] = mapped_column(String(24), default="draft")
    #: "test" or "production", fixed once the report is submitted.
    environment: Mapped[str | None] = mapped_column(String(16))
    ncmec_report_id: Mapped[int | None] = mapped_column(BigInteger)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Where the draft came from (scan run, matched entries, upload context).
    origin: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Why the report needs an operator (set in state needs_attention).
    attention: Mapped[str | None] = mapped_column(Text)
    #: The state to go back to once the operator has decided.
    attention_from: Mapped[str | None] = mapped_column(String(24))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    retracted_at: Mapped[dt.datetime | None] = mapped_column()
    #: Preservation: nothing of the report may be purged before this (filing + 1 year).
    keep_until: Mapped[dt.datetime | None] = mapped_column()

    files: Mapped[list[CyberTipFile]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="CyberTipFile.position"
    )


class CyberTipFile(Base):
    """A file of a report: AES-GCM ciphertext (evidence key), hashes and its fileDetails."""

    __tablename__ = "cybertip_report_files"
    __table_args__ = (Index("ix_cybertip_report_files_sha256", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("cybertip_reports.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    sha1: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    blob_uuid: Mapped[str] = mapped_column(String(32), unique=True)
    key_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    #: The fileDetails document in JSON, without reportId/fileId (filled in at filing).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: pending, uploading, uploaded, details_sent.
    state: Mapped[str] = mapped_column(String(16), default="pending")
    ncmec_file_id: Mapped[str | None] = mapped_column(String(64))
    server_md5: Mapped[str | None] = mapped_column(String(32))
    #: File ids NCMEC gave to earlier attempts whose reply was lost or whose MD5 differed.
    stray_file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    upload_attempts: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_at: Mapped[dt.datetime | None] = mapped_column()
    details_sent_at: Mapped[dt.datetime | None] = mapped_column()

    report: Mapped[CyberTipReport] = relationship(back_populates="files")


class CyberTipEvent(Base):
    """One step of a report's history: what was sent, what came back, who decided."""

    __tablename__ = "cybertip_report_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("cybertip_reports.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# ---------------------------------------------------------------- received reports
#
# The clearinghouse side: reports that arrive from providers (CLI or `POST /v1/intake`)
# rather than reports we file. A received report is stored whole (the parsed document in
# the public schema's JSON names, and the bytes as received, compressed) before it is
# acknowledged; everything else (identifiers, cases, triage, routing) is derived from it.


class ReceivedReport(Base):
    """One report taken in; `idempotency_key` makes a repeated delivery harmless."""

    __tablename__ = "received_reports"
    __table_args__ = (
        Index("ix_received_reports_received_at", "received_at"),
        Index("ix_received_reports_incident_type", "incident_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Where it came from: a path (`dir/a.xml`, `batch.zip!x/report.xml`, `f.jsonl:7`) or
    #: `http`.
    source: Mapped[str] = mapped_column(String(1000))
    #: The client's Idempotency-Key, or `sha256:<digest of the document's bytes>`.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    #: SHA-256 of the document's bytes as received.
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The API key's name or the CLI actor.
    received_by: Mapped[str | None] = mapped_column(String(200))
    #: "xml" or "json".
    format: Mapped[str] = mapped_column(String(8))
    #: {"report": <report JSON>, "files": [<fileDetails JSON>, ...]}
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The bytes as received, zlib-compressed (None when the sender gave parsed JSON only).
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    incident_type: Mapped[str | None] = mapped_column(String(80))
    #: The report's incidentDateTime (UTC).
    incident_at: Mapped[dt.datetime | None] = mapped_column()
    #: The reporting ESP: incidentSummary/platform, else the reporter's email domain.
    reporter: Mapped[str | None] = mapped_column(String(300))
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Warnings found at intake (errors refuse the report).
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


#: The identifier index's columns: every column linking reads of a match.
IDENTIFIER_LOOKUP = (
    "kind", "value", "role", "report_id", "service", "device_type", "possible_proxy", "event_at",
)  # fmt: skip


class ReportIdentifier(Base):
    """One normalised identifier of a received report (see `reports.identifiers`).

    `kind`: email, phone, screen_name, esp_id, ip, device, md5, sha1, sha256, pdq.
    `role`: reported (personOrUserReported and its associated accounts), recipient,
    victim, reporter (the ESP's own desk: never links) or file.
    """

    __tablename__ = "report_identifiers"
    __table_args__ = (
        # Covers linking's lookups (`cases.linking`): an identifier's matches are read
        # from the index alone, not from table rows spread over a table larger than
        # the page cache.
        Index("ix_report_identifiers_lookup", *IDENTIFIER_LOOKUP),
        Index("ix_report_identifiers_report", "report_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("received_reports.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    #: The normalised value (lower-case email, E.164 phone, canonical IP, lower-hex hash).
    value: Mapped[str] = mapped_column(String(400))
    role: Mapped[str] = mapped_column(String(16))
    #: The ESP service of a screen name or ESP identifier (lower case).
    service: Mapped[str | None] = mapped_column(String(200))
    #: The device id type (IMEI, ICCID, ...), upper case.
    device_type: Mapped[str | None] = mapped_column(String(64))
    #: When the IP (or device) was seen.
    event_at: Mapped[dt.datetime | None] = mapped_column()
    possible_proxy: Mapped[bool] = mapped_column(default=False)
    #: The identifier as written in the report (for display); NULL when it is `value`
    #: itself, '' when the report gave none (`received.store_identifiers`).
    original: Mapped[str | None] = mapped_column(String(400))
