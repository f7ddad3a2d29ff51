"""Tables of routing and law-enforcement access.

`routing_rules` says which agency takes reports located in a country (optionally a US
state); the row with country `*` is the fallback desk. `report_availability` records to
which agency each received report was made available, when and why. `legal_process`
records a warrant (or other legal process) an agency holds for a report: until one
exists, files the reporting ESP did not view and that were not public stay locked to
that agency (United States v. Wilson, 9th Cir. 2021).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ridgeline.store.models import Base
from ridgeline.timeutil import utcnow

#: The country code of the fallback rule.
FALLBACK = "*"


class RoutingRule(Base):
    """Reports located in `country` (and `state`, when given) go to `agency`."""

    __tablename__ = "routing_rules"
    __table_args__ = (UniqueConstraint("country", "state", name="uq_routing_rules_place"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ISO 3166-1 alpha-2, or `*` for the fallback desk
    country: Mapped[str] = mapped_column(String(2))
    #: a US state code (or a non-US region name); empty string = the whole country
    state: Mapped[str] = mapped_column(String(100), default="")
    agency: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReportAvailability(Base):
    """A received report was made available to an agency, at a time, for reasons."""

    __tablename__ = "report_availability"
    __table_args__ = (
        UniqueConstraint("report_id", "agency", name="uq_report_availability"),
        Index("ix_report_availability_agency", "agency", "report_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("received_reports.id", ondelete="CASCADE"))
    agency: Mapped[str] = mapped_column(String(200))
    #: ["reported person's address: US/TX", "IP 192.0.2.7 (Login ...): US/TX (iptocc)"]
    why: Mapped[list[str]] = mapped_column(JSON, default=list)
    country: Mapped[str | None] = mapped_column(String(2))
    state: Mapped[str | None] = mapped_column(String(100))
    #: "rules" (routing at intake) or the actor who made it available by hand
    made_by: Mapped[str] = mapped_column(String(200), default="rules")
    made_available_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LegalProcess(Base):
    """Legal process (a warrant, ...) an agency holds for a report's files."""

    __tablename__ = "legal_process"
    __table_args__ = (Index("ix_legal_process_report", "report_id", "agency"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("received_reports.id", ondelete="CASCADE"))
    agency: Mapped[str] = mapped_column(String(200))
    #: warrant, court order, subpoena
    kind: Mapped[str] = mapped_column(String(32))
    #: the warrant's number or docket reference
    reference: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[dt.date | None] = mapped_column()
    #: file positions covered (0-based); null = every file of the report
    files: Mapped[list[int] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    entered_by: Mapped[str] = mapped_column(String(200))
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def to_json(self) -> dict[str, Any]:
        from ridgeline.timeutil import isoformat

        return {
            "id": self.id,
            "report_id": self.report_id,
            "agency": self.agency,
            "kind": self.kind,
            "reference": self.reference,
            "issued_on": self.issued_on.isoformat() if self.issued_on else None,
            "files": self.files,
            "note": self.note,
            "entered_by": self.entered_by,
            "entered_at": isoformat(self.entered_at),
        }
