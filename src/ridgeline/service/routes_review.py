"""Review-queue and audit endpoints: thin wrappers over `ridgeline.review` and
`ridgeline.audit`. The caller's API key name is their reviewer / auditor identity
(register reviewers under the same name with `ridgeline reviewers add`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ridgeline.audit.models import Audit
from ridgeline.service.keys import Principal
from ridgeline.service.schemas import (
    AuditCreated,
    AuditNextOut,
    AuditOut,
    AuditReportOut,
    AuditVerdictOut,
    Classification,
    ReleasedOut,
    ReviewNextOut,
    VerdictOut,
)


def _who(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.name


class VerdictIn(BaseModel):
    decision: str
    #: The same `{scheme, label}` objects as entries (no `scheme:label` strings here).
    classifications: list[Classification] = Field(default_factory=list)
    note: str | None = None


class AuditIn(BaseModel):
    list: str
    mode: str = "random"
    margin: float = 0.05
    confidence: float = 0.95
    seed: int | None = None
    auditors_per_item: int = 1


class AuditVerdictIn(BaseModel):
    verified: bool
    reason: str | None = None
    note: str | None = None


def _audit_json(audit: Audit) -> AuditOut:
    from ridgeline.timeutil import isoformat

    return AuditOut(
        id=audit.id,
        list_id=audit.list_id,
        mode=audit.mode,
        state=audit.state,
        population=audit.population,
        sample_size=audit.sample_size,
        auditors_per_item=audit.auditors_per_item,
        seed=audit.seed,
        created_by=audit.created_by,
        created_at=isoformat(audit.created_at),
    )


def register_review_routes(app: FastAPI, endpoint: Any) -> None:
    """Add `/v1/review/...` (permission `review`) and `/v1/audits/...` (`audit`)."""

    @endpoint(app, "GET", "/review/next", "review", tags=["review"])
    def review_next(request: Request) -> ReviewNextOut:
        """The next entry for the calling reviewer (`item` is null when none waits)."""
        from ridgeline.review.queue import next_item

        with request.app.state.store.session() as s:
            item = next_item(s, _who(request))
            return ReviewNextOut.model_validate({"item": item.to_json() if item else None})

    @endpoint(app, "POST", "/review/{entry_id}/verdict", "review", tags=["review"])
    def review_verdict(request: Request, entry_id: int, body: VerdictIn) -> VerdictOut:
        """Record the caller's verdict on an entry served to them."""
        from ridgeline.review.core import submit_verdict

        with request.app.state.store.session() as s:
            outcome = submit_verdict(
                s,
                entry_id,
                _who(request),
                body.decision,
                [c.model_dump() for c in body.classifications],
                note=body.note,
            )
            out = VerdictOut.model_validate(outcome.to_json())
        matcher = request.app.state.matcher
        if matcher is not None and out.status_changed:
            matcher.refresh()
        return out

    @endpoint(app, "POST", "/review/{entry_id}/release", "review", tags=["review"])
    def review_release(request: Request, entry_id: int) -> ReleasedOut:
        """Hand a served entry back to the queue without a verdict (409 if not held)."""
        from ridgeline.review.queue import release_item

        with request.app.state.store.session() as s:
            return ReleasedOut(released=release_item(s, _who(request), entry_id))

    @endpoint(
        app,
        "GET",
        "/review/{entry_id}/media",
        "review",
        tags=["review"],
        response_class=Response,
        responses={
            200: {
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                "description": "The media as PNG",
            }
        },
    )
    def review_media(
        request: Request,
        entry_id: int,
        unblurred: bool = False,
        colour: bool = False,
        reason: str | None = None,
    ) -> Response:
        """The entry's media, blurred greyscale unless asked (unblurring is logged)."""
        from ridgeline.evidence import EvidenceKey
        from ridgeline.review.queue import view_media

        key = EvidenceKey.load(request.app.state.config.evidence_key_file)
        with request.app.state.store.session() as s:
            data = view_media(
                s, _who(request), entry_id, key, unblurred=unblurred, colour=colour, reason=reason
            )
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @endpoint(app, "GET", "/review/pending", "review", tags=["review"])
    def review_pending(request: Request) -> dict[str, int]:
        """How many entries await review, by status."""
        from ridgeline.review.core import pending_counts

        with request.app.state.store.session() as s:
            return pending_counts(s)

    @endpoint(app, "POST", "/audits", "audit", tags=["audits"], status_code=201)
    def audit_create(request: Request, body: AuditIn) -> AuditCreated:
        """Start an audit of a list (draws its sample)."""
        from ridgeline.audit import audit_warnings, create_audit
        from ridgeline.lists import get_list

        with request.app.state.store.session() as s:
            audit = create_audit(
                s,
                get_list(s, body.list),
                mode=body.mode,
                margin=body.margin,
                confidence=body.confidence,
                seed=body.seed,
                auditors_per_item=body.auditors_per_item,
                actor=_who(request),
            )
            return AuditCreated(
                **_audit_json(audit).model_dump(), warnings=audit_warnings(audit, body.list)
            )

    @endpoint(app, "GET", "/audits/{audit_id}", "audit", tags=["audits"])
    def audit_get(request: Request, audit_id: int) -> AuditReportOut:
        """An audit's report: sample, verdicts, estimates."""
        from ridgeline.audit import audit_report, get_audit

        with request.app.state.store.session() as s:
            return AuditReportOut.model_validate(audit_report(s, get_audit(s, audit_id)))

    @endpoint(app, "GET", "/audits/{audit_id}/next", "audit", tags=["audits"])
    def audit_next(request: Request, audit_id: int) -> AuditNextOut:
        """The next sampled item for the calling auditor, blind (`item` null when done)."""
        from ridgeline.audit import get_audit, next_item

        with request.app.state.store.session() as s:
            item = next_item(s, get_audit(s, audit_id), _who(request))
            return AuditNextOut.model_validate({"item": item})

    @endpoint(
        app,
        "GET",
        "/audits/{audit_id}/items/{entry_id}/media",
        "audit",
        tags=["audits"],
        response_class=Response,
        responses={
            200: {
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                "description": "The item's media as PNG",
            }
        },
    )
    def audit_media(
        request: Request,
        audit_id: int,
        entry_id: int,
        unblurred: bool = False,
        colour: bool = False,
        reason: str | None = None,
    ) -> Response:
        """A sampled item's media for the calling auditor, exactly as review serves it:
        blurred greyscale unless asked (an unblurred or colour view is logged in the
        tamper-evident log), breaks and the daily cap enforced, only items this auditor
        may still judge (blind). No evidence stored: 404 `damaged_file`, and the item is
        recorded as the auditor's exception `damaged-file`."""
        from ridgeline.audit import get_audit
        from ridgeline.audit.media import view_item_media
        from ridgeline.errors import DamagedFile
        from ridgeline.evidence import EvidenceKey

        key = EvidenceKey.load(request.app.state.config.evidence_key_file)
        with request.app.state.store.session() as s:
            media = view_item_media(
                s,
                get_audit(s, audit_id),
                _who(request),
                entry_id,
                key,
                unblurred=unblurred,
                colour=colour,
                reason=reason,
            )
        if media.image is None:  # the exception is stored (the session committed)
            raise DamagedFile(
                f"entry {entry_id} has no evidence stored: recorded as an audit exception "
                "(damaged-file); take the next item"
            )
        return Response(media.image, media_type="image/png", headers={"Cache-Control": "no-store"})

    @endpoint(app, "POST", "/audits/{audit_id}/items/{entry_id}/verdict", "audit", tags=["audits"])
    def audit_verdict(
        request: Request, audit_id: int, entry_id: int, body: AuditVerdictIn
    ) -> AuditVerdictOut:
        """Record the caller's audit verdict on a sampled entry."""
        from ridgeline.audit import get_audit, submit_verdict

        with request.app.state.store.session() as s:
            v = submit_verdict(
                s,
                get_audit(s, audit_id),
                _who(request),
                entry_id,
                verified=body.verified,
                reason=body.reason,
                note=body.note,
            )
            from ridgeline.audit.media import viewed_media

            audit = get_audit(s, audit_id)
            return AuditVerdictOut(
                audit_id=audit_id,
                entry_id=entry_id,
                auditor=_who(request),
                verified=body.verified,
                id=v.id,
                viewed_media=viewed_media(s, audit, _who(request), entry_id),
            )

    @endpoint(app, "POST", "/audits/{audit_id}/close", "audit", tags=["audits"])
    def audit_close(request: Request, audit_id: int) -> AuditOut:
        """Close an audit (no more verdicts)."""
        from ridgeline.audit import close_audit, get_audit

        with request.app.state.store.session() as s:
            return _audit_json(close_audit(s, get_audit(s, audit_id), actor=_who(request)))
