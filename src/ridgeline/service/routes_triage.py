"""Triage, routing, statistics and law-enforcement access over HTTP.

Thin wrappers over `ridgeline.triage`, `ridgeline.routing` and `ridgeline.tipstats`.
Permissions (service/auth.py POLICY): analysts and admins work the queue and override
priorities; `/v1/le/...` belongs to the `law-enforcement` role alone, and each of its
keys is bound to one agency: it sees only the reports made available to that agency
(others answer 404, so their existence does not leak), files locked under the Wilson
rule answer 403 `file_locked` until a warrant is entered, and every view is logged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ridgeline.errors import BadInput, Forbidden
from ridgeline.service.keys import Principal


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ReasonOut(BaseModel):
    rule: str
    priority: int | None
    detail: str


class QueueRowOut(BaseModel):
    report_id: int
    priority: int
    label: str
    received_at: str | None
    overridden: bool
    top_reason: str


class QueueOut(BaseModel):
    reports: list[QueueRowOut]


class TriageOut(BaseModel):
    report_id: int
    priority: int
    label: str
    computed_priority: int
    reasons: list[ReasonOut]
    rules: str
    received_at: str | None
    assessed_at: str | None
    override: dict[str, Any] | None


class OverrideIn(BaseModel):
    priority: int = Field(ge=1, le=4)
    reason: str = Field(min_length=1, max_length=3000)


class RuleOut(BaseModel):
    country: str
    state: str | None
    agency: str


class RulesOut(BaseModel):
    rules: list[RuleOut]


class StatsOut(Open):
    reports: int
    by_priority: dict[str, int]


class LeReportRow(BaseModel):
    report_id: int
    agency: str
    at: str | None
    why: list[str]
    country: str | None
    state: str | None
    made_by: str


class LeReportsOut(BaseModel):
    agency: str
    reports: list[LeReportRow]


class LeReportOut(Open):
    report_id: int
    agency: str
    preservation: dict[str, Any]
    files: list[dict[str, Any]]


class FileOut(BaseModel):
    position: int
    locked: bool
    why: str
    details: dict[str, Any] | None


class LegalProcessIn(BaseModel):
    kind: Literal["warrant", "court order", "subpoena"] = "warrant"
    reference: str = Field(min_length=1, max_length=200)
    issued_on: dt.date | None = None
    files: list[int] | None = None
    note: str | None = Field(default=None, max_length=3000)


class LegalProcessOut(Open):
    id: int
    report_id: int
    agency: str
    kind: str
    reference: str


def _who(request: Request) -> str:
    principal: Principal = request.state.principal
    return f"key:{principal.name}"


def _agency(request: Request) -> str:
    principal: Principal = request.state.principal
    if not principal.agency:
        raise Forbidden(f"key {principal.name!r} is not bound to an agency")
    return principal.agency


def register_triage_routes(app: FastAPI) -> None:
    """Add `/v1/triage`, `/v1/routing`, `/v1/stats/intake` and `/v1/le` endpoints."""
    from ridgeline.service.routes import endpoint

    @endpoint(app, "GET", "/triage/queue", "triage:read", tags=["triage"], response_model=QueueOut)
    def get_queue(
        request: Request, priority: int | None = None, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        """Triaged reports, most urgent first, then oldest first."""
        from ridgeline import triage

        if not 1 <= limit <= 10000:
            raise BadInput("limit must be between 1 and 10000")
        with request.app.state.store.session() as s:
            rows = triage.queue(s, priority=priority, limit=limit, offset=offset)
            return {"reports": [r.to_json() for r in rows]}

    @endpoint(
        app,
        "GET",
        "/triage/{report_id}",
        "triage:read",
        tags=["triage"],
        response_model=TriageOut,
    )
    def get_triage(request: Request, report_id: int) -> dict[str, Any]:
        """A report's priority, every reason, and any override."""
        from ridgeline import triage
        from ridgeline.errors import NotFound

        with request.app.state.store.session() as s:
            stored = triage.current(s, report_id)
            if stored is None:
                raise NotFound(f"received report {report_id} has not been triaged")
            return stored.to_json()

    @endpoint(
        app,
        "POST",
        "/triage/{report_id}/override",
        "triage:override",
        tags=["triage"],
        response_model=TriageOut,
    )
    def post_override(request: Request, report_id: int, body: OverrideIn) -> dict[str, Any]:
        """Set a report's priority by hand, with a reason (tamper-evident log)."""
        from ridgeline import triage

        with request.app.state.store.session() as s:
            return triage.override(
                s, report_id, body.priority, body.reason, _who(request)
            ).to_json()

    @endpoint(
        app, "GET", "/routing/rules", "routing:read", tags=["routing"], response_model=RulesOut
    )
    def get_rules(request: Request) -> dict[str, Any]:
        """The routing rules (`*` is the fallback desk)."""
        from ridgeline import routing

        with request.app.state.store.session() as s:
            rules = routing.list_rules(s)
        if not any(r.country == "*" for r in rules):
            rules.append(routing.Rule("*", None, routing.DEFAULT_FALLBACK))
        return {"rules": [r.to_json() for r in rules]}

    @endpoint(app, "GET", "/stats/intake", "stats", tags=["stats"], response_model=StatsOut)
    def get_stats(
        request: Request, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Counts and times of received reports (as `ridgeline reports stats`)."""
        from ridgeline import tipstats

        with request.app.state.store.session() as s:
            return tipstats.compute(s, since=since, until=until).to_json()

    # --- law enforcement ------------------------------------------------------------
    le = ["law enforcement"]

    @endpoint(app, "GET", "/le/reports", "le:read", tags=le, response_model=LeReportsOut)
    def le_reports(request: Request, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """The reports made available to the key's agency, newest first."""
        from ridgeline import routing

        if not 1 <= limit <= 10000:
            raise BadInput("limit must be between 1 and 10000")
        agency = _agency(request)
        with request.app.state.store.session() as s:
            rows = routing.reports_for(s, agency, limit=limit, offset=offset)
            return {
                "agency": agency,
                "reports": [{"report_id": r.report_id, **r.to_json()} for r in rows],
            }

    @endpoint(app, "GET", "/le/reports/{report_id}", "le:read", tags=le, response_model=LeReportOut)
    def le_report(request: Request, report_id: int) -> dict[str, Any]:
        """A report for the key's agency: files locked under Wilson, preservation (logged)."""
        from ridgeline.routing import access

        agency = _agency(request)
        with request.app.state.store.session() as s:
            return access.view_report(s, report_id, agency, _who(request)).to_json()

    @endpoint(
        app,
        "GET",
        "/le/reports/{report_id}/files/{position}",
        "le:read",
        tags=le,
        response_model=FileOut,
    )
    def le_file(request: Request, report_id: int, position: int) -> dict[str, Any]:
        """One file's details; 403 `file_locked` until a warrant is entered (logged)."""
        from ridgeline.routing import access

        agency = _agency(request)
        store = request.app.state.store
        try:
            with store.session() as s:
                return access.view_file(s, report_id, position, agency, _who(request)).to_json()
        except access.FileLocked:
            with store.session() as s:  # the refusal is logged even though the view failed
                access.log_refusal(s, report_id, position, agency, _who(request))
            raise

    @endpoint(
        app,
        "POST",
        "/le/reports/{report_id}/legal-process",
        "le:legal-process",
        tags=le,
        status_code=201,
        response_model=LegalProcessOut,
    )
    def le_legal_process(request: Request, report_id: int, body: LegalProcessIn) -> dict[str, Any]:
        """Enter a warrant (or other legal process) the agency holds for this report."""
        from ridgeline.routing import access

        agency = _agency(request)
        with request.app.state.store.session() as s:
            lp = access.enter_legal_process(
                s,
                report_id,
                agency,
                kind=body.kind,
                reference=body.reference,
                actor=_who(request),
                issued_on=body.issued_on,
                files=body.files,
                note=body.note,
            )
            return lp.to_json()

    @endpoint(
        app,
        "GET",
        "/le/reports/{report_id}/preservation",
        "le:read",
        tags=le,
        response_model=Open,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def le_preservation(
        request: Request, report_id: int, format: Literal["json", "text"] = "json"
    ) -> Any:
        """A request to the provider to preserve the report's contents (logged)."""
        from ridgeline.routing import access

        agency = _agency(request)
        with request.app.state.store.session() as s:
            req = access.preservation_request(s, report_id, agency, _who(request))
        if format == "text":
            return Response(req.to_text(), media_type="text/plain; charset=utf-8")
        return req.to_json()
