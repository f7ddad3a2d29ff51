"""Response bodies of the HTTP API as pydantic models, so /openapi.json describes them.

Models forbid fields they do not name: a library view that grows a field fails the
service tests loudly instead of being dropped from (or slipping past) the schema.
Request bodies live beside their routes; match and lookup answers with the match type.
"""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    """Base of every response model: exactly the fields named."""

    model_config = ConfigDict(extra="forbid")


# --- errors and health -------------------------------------------------------------


class ErrorDetail(Body):
    code: str
    message: str


class ErrorOut(Body):
    """Every error answer: `{"error": {"code", "message"}}` (codes in docs/service.md)."""

    error: ErrorDetail


class HealthOut(Body):
    status: str
    worker: int


class ReadyOut(Body):
    status: str
    index_age_s: float


# --- hashing -----------------------------------------------------------------------


class HashOut(Body):
    """Signals of an upload; each value is in its signal's JSON form."""

    kind: str | None
    media_type: str | None
    size: int | None
    signals: dict[str, Any]


# --- lists and entries ---------------------------------------------------------------


class ListOut(Body):
    id: int
    name: str
    owner: str | None
    description: str | None
    purpose: str
    enabled: bool
    signals: list[str]
    thresholds: dict[str, float]
    review_quorum: int
    created_at: str | None


class ListCreated(ListOut):
    """A new list, with warnings for thresholds above their signal's safe range."""

    warnings: list[str]


class Provenance(Body):
    origin_list: str | None
    origin_member: str | None
    origin_entry_id: str | None
    origin_member_name: str | None
    import_batch: str | None


class Classification(Body):
    """One classification: a label always with its scheme (the one shape in the API,
    in requests and answers alike)."""

    scheme: str = Field(description="industry, uk, vics-us or ridgeline", examples=["industry"])
    label: str = Field(description="A label of that scheme", examples=["A1"])


class EntryOut(Body):
    id: int
    list_id: int
    status: str
    enabled: bool
    disabled_until: str | None
    signals: dict[str, str]
    classifications: list[Classification]
    source: str | None
    provenance: Provenance
    #: VICS `Series`, NCMEC/VICS victim-identified flag and case numbers, as partners sent them.
    series: str | None
    victim_identified: bool | None
    case_numbers: list[str]
    note: str | None
    submitted_by: str | None
    created_at: str | None
    updated_at: str | None
    deleted_at: str | None


class EntriesPage(Body):
    entries: list[EntryOut]
    #: Pass as `after_id` for the next page; null on the last page.
    next_after_id: int | None


class ListActionsOut(Body):
    list: str
    actions: builtins.list[str]  # `list` is a field name here


class HoldOut(Body):
    id: int
    entry_id: int
    list_id: int | None
    status: str
    count: int
    window_s: int
    held_at: str | None
    released_at: str | None
    released_by: str | None


# --- API keys ------------------------------------------------------------------------


class KeyOut(Body):
    id: int
    prefix: str
    name: str
    role: str
    rate_limit: float | None
    agency: str | None = None
    created_at: str | None
    revoked_at: str | None


class NewKeyOut(KeyOut):
    #: The secret: in this answer only, never again.
    key: str


# --- review --------------------------------------------------------------------------


class ExposureOut(Body):
    reviewer: str
    items_today: int
    daily_cap: int
    review_minutes_since_break: float
    break_after_minutes: int
    break_until: str | None
    cap_reached: bool


class QueueItemOut(Body):
    entry_id: int
    list: str
    status: str
    stage: str
    category: str | None
    signals: dict[str, str]
    quorum: int
    served_at: str | None
    has_media: bool
    media_id: int | None
    media_type: str | None
    exposure: ExposureOut | None


class ReviewNextOut(Body):
    item: QueueItemOut | None


class VerdictOut(Body):
    entry_id: int
    reviewer: str
    decision: str
    stage: str
    status: str
    verdicts: int
    quorum: int
    status_changed: bool
    reason: str | None


class ReleasedOut(Body):
    released: bool


# --- audits --------------------------------------------------------------------------


class AuditOut(Body):
    id: int
    list_id: int
    mode: str
    state: str
    population: int
    sample_size: int
    auditors_per_item: int
    seed: int | None
    created_by: str | None
    created_at: str | None


class AuditCreated(AuditOut):
    """A new audit, with a warning when its population is empty."""

    warnings: list[str]


class AuditItemOut(Body):
    audit_id: int
    item_id: int
    entry_id: int
    signals: dict[str, str]


class AuditNextOut(Body):
    item: AuditItemOut | None


class AuditVerdictOut(Body):
    audit_id: int
    entry_id: int
    auditor: str
    verified: bool
    id: int
    viewed_media: bool = Field(
        description="Whether the auditor was shown the item's media first (GET .../media); "
        "the audit report counts verdicts judged from hashes alone"
    )


class AuditSummary(Body):
    id: int
    list: str | None
    mode: str
    strata: str | None
    margin: float
    confidence: float
    expected_p: float
    seed: int | None
    auditors_per_item: int
    population: int
    sample_size: int
    created_at: str | None
    created_by: str | None
    state: str


class AuditProgress(Body):
    complete: int
    incomplete: int
    verdicts: int


class Share(Body):
    """A verified share with its confidence intervals ((0, 1) while nothing is complete)."""

    verified: int
    complete: int
    share: float | None
    wilson: list[float]
    clopper_pearson: list[float]


class VerifiedShare(Share):
    confidence: float


class Agreement(Body):
    pairs: int
    observed: float | None
    kappa: float | None


class ExceptionCount(Body):
    reason: str
    count: int


class MediaBasis(Body):
    """What the verdicts rest on: the item's media viewed first, or its hashes alone."""

    verdicts_after_viewing: int
    verdicts_from_hashes_alone: int
    verified_from_hashes_alone: int


class Breakdown(Share):
    group: str
    items: int


class Finding(Body):
    entry_id: int
    outcome: str
    reason: str | None


class AuditReportOut(Body):
    audit: AuditSummary
    progress: AuditProgress
    verified: VerifiedShare
    media: MediaBasis
    agreement: Agreement
    exceptions: list[ExceptionCount]
    disagreements: int
    by_source: list[Breakdown]
    by_classification: list[Breakdown]
    findings: list[Finding]


# --- past scans ----------------------------------------------------------------------


class ScanRunOut(Body):
    id: int
    started_at: str | None
    finished_at: str | None
    engine: str
    paths: list[str]
    lists: list[str]
    options: dict[str, Any]
    counts: dict[str, Any]


class ScansPage(Body):
    runs: builtins.list[ScanRunOut]
    next_before_id: int | None


class ScanFileOut(Body):
    id: int
    path: str
    size: int | None
    sha256: str | None
    kind: str | None
    media_type: str | None
    signals: dict[str, Any]
    matches: builtins.list[dict[str, Any]]
    actions: builtins.list[dict[str, Any]]
    error: str | None
    scanned_at: str | None


class ScanRunDetail(ScanRunOut):
    files: builtins.list[ScanFileOut]
    next_after_id: int | None
