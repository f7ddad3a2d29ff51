"""`/v1/reports`: CyberTipline reports over HTTP, thin wrappers over `ridgeline.reports`.

Permissions (service/auth.py POLICY): `reports:draft` lets providers create drafts
(and nothing else); `reports:read`, `reports:edit` and `reports:file` belong to the
reporter, curator and admin roles. The CyberTipline credentials and base URL come
from the server's environment (RIDGELINE_CYBERTIP_*), never from a request.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ridgeline.errors import BadInput
from ridgeline.service.keys import Principal


class FileIn(BaseModel):
    name: str = Field(min_length=1, max_length=1000)
    content_base64: str
    #: fileDetails in JSON (schema names), or the XML document instead.
    file_details: dict[str, Any] | None = None
    file_details_xml: str | None = None


class ReportIn(BaseModel):
    """A report in the public schema: JSON (`report`) or the XML document (`report_xml`)."""

    report: dict[str, Any] | None = None
    report_xml: str | None = None
    files: list[FileIn] = Field(default_factory=list)
    origin: dict[str, Any] = Field(default_factory=dict)


class PatchIn(BaseModel):
    """JSON merge patches (RFC 7386) for the report and for files' fileDetails."""

    report: dict[str, Any] = Field(default_factory=dict)
    files: dict[int, dict[str, Any]] = Field(default_factory=dict)


class FileReportIn(BaseModel):
    """Optional body of file/retract: without `environment`, a report already submitted
    goes on in its own environment and a new one goes to `test`."""

    environment: Literal["test", "production"] | None = None


class ResolveIn(BaseModel):
    report_id: int | None = None
    not_submitted: bool = False
    note: str | None = None


class ReportOut(BaseModel):
    """A report's state, NCMEC ids and problems (more fields for the full view)."""

    model_config = ConfigDict(extra="allow")
    id: int
    state: str
    reportId: int | None
    fileIds: list[str | None]


class ReportListOut(BaseModel):
    reports: list[ReportOut]


class ProblemOut(BaseModel):
    path: str
    message: str
    severity: str


class ValidationOut(BaseModel):
    id: int
    state: str
    problems: list[ProblemOut]


def _who(request: Request) -> str:
    principal: Principal = request.state.principal
    return f"key:{principal.name}"


def _key(request: Request) -> Any:
    from ridgeline.evidence import EvidenceKey

    return EvidenceKey.load(request.app.state.config.evidence_key_file)


def _files(body: ReportIn) -> list[Any]:
    from ridgeline.reports import core
    from ridgeline.reports import documents as docs

    out = []
    for i, f in enumerate(body.files):
        try:
            data = base64.b64decode(f.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(f"files[{i}].content_base64 is not base64") from None
        details = None
        if f.file_details is not None:
            details = docs.file_details_from_json(f.file_details)
        elif f.file_details_xml is not None:
            details = docs.file_details_from_xml(f.file_details_xml.encode())
        out.append(core.NewFile(f.name, data, details))
    return out


def _filer(request: Request, report_id: int, environment: str | None) -> Any:
    from ridgeline.reports import client as ct
    from ridgeline.reports import core, filing

    with request.app.state.store.session() as s:
        row = core.get_report(s, report_id)
        has_files = bool(row.files)
        environment = environment or row.environment or "test"
    key = _key(request) if has_files else None
    client = ct.CyberTipClient(ct.endpoint_for(environment))
    return filing.Filer(request.app.state.store, client, key, actor=_who(request))


def _view(request: Request, report_id: int) -> dict[str, Any]:
    from ridgeline.reports import core

    with request.app.state.store.session() as s:
        return core.view(core.get_report(s, report_id)).to_json()


def register_report_routes(app: FastAPI) -> None:
    """Add the `/v1/reports` endpoints."""
    from ridgeline.service.routes import endpoint

    tags = ["reports"]
    one: dict[str, Any] = {"tags": tags, "response_model": ReportOut}

    @endpoint(app, "POST", "/reports", "reports:draft", **one)
    def create_report(request: Request, body: ReportIn) -> dict[str, Any]:
        """Create a draft (validated at once; its problems are in the answer)."""
        from ridgeline.reports import core
        from ridgeline.reports import documents as docs

        if (body.report is None) == (body.report_xml is None):
            raise BadInput("give the report as `report` (JSON) or `report_xml`, not both")
        if body.report is not None:
            report = docs.report_from_json(body.report)
        else:
            report = docs.report_from_xml((body.report_xml or "").encode())
        files = _files(body)
        key = _key(request) if files else None
        with request.app.state.store.session() as s:
            row = core.create_report(s, report, files, key, actor=_who(request), origin=body.origin)
            return core.view(row).to_json()

    @endpoint(app, "GET", "/reports", "reports:read", tags=tags, response_model=ReportListOut)
    def list_reports(
        request: Request, state: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """Reports, newest first (summary view)."""
        from ridgeline.reports import core

        if not 1 <= limit <= 10000:
            raise BadInput("limit must be between 1 and 10000")
        with request.app.state.store.session() as s:
            rows = core.list_reports(s, state=state, limit=limit)
            return {"reports": [core.view(r).to_json(full=False) for r in rows]}

    @endpoint(
        app, "GET", "/reports/{report_id}", "reports:read", tags=tags, response_model=ReportOut
    )
    def show_report(request: Request, report_id: int) -> dict[str, Any]:
        """A report: state, reportId, fileIds, problems, files, the document (logged)."""
        from ridgeline import auditlog
        from ridgeline.reports import core

        with request.app.state.store.session() as s:
            shown = core.view(core.get_report(s, report_id)).to_json()
            auditlog.append(s, _who(request), "report.read", f"report:{report_id}")
        return shown

    @endpoint(
        app,
        "GET",
        "/reports/{report_id}/xml",
        "reports:read",
        tags=tags,
        response_class=Response,
        responses={
            200: {
                "content": {"application/xml": {"schema": {"type": "string"}}},
                "description": "The <report> document",
            }
        },
    )
    def export_report(request: Request, report_id: int) -> Response:
        """The `<report>` document as it is (or would be) sent (logged)."""
        from ridgeline import auditlog
        from ridgeline.reports import core
        from ridgeline.reports import documents as docs

        with request.app.state.store.session() as s:
            data = docs.report_to_xml(core.report_of(core.get_report(s, report_id)))
            auditlog.append(s, _who(request), "report.read", f"report:{report_id}",
                            {"as": "xml"})  # fmt: skip
        return Response(data, media_type="application/xml")

    @endpoint(
        app, "PATCH", "/reports/{report_id}", "reports:edit", tags=tags, response_model=ReportOut
    )
    def edit_report(request: Request, report_id: int, body: PatchIn) -> dict[str, Any]:
        """Complete a draft with JSON merge patches; it is validated again."""
        from ridgeline.reports import core

        with request.app.state.store.session() as s:
            row = core.edit_report(
                s, report_id, body.report, actor=_who(request), file_patches=body.files
            )
            return core.view(row).to_json()

    @endpoint(
        app, "POST", "/reports/{report_id}/validate", "reports:edit", tags=tags,
        response_model=ValidationOut,
    )  # fmt: skip
    def validate_report(request: Request, report_id: int) -> dict[str, Any]:
        """Validate again and list every problem."""
        from ridgeline.reports import core

        with request.app.state.store.session() as s:
            row = core.get_report(s, report_id)
            problems = core.revalidate(s, row)
            return {"id": row.id, "state": row.state, "problems": [p.to_json() for p in problems]}

    @endpoint(
        app, "POST", "/reports/{report_id}/file", "reports:file", tags=tags,
        response_model=ReportOut,
    )  # fmt: skip
    def file_report(
        request: Request, report_id: int, body: FileReportIn | None = None
    ) -> dict[str, Any]:
        """File (or resume filing) with the server's CyberTipline credentials."""
        if _view(request, report_id)["state"] == "finished":
            return _view(request, report_id)  # nothing to send: no credentials needed
        filer = _filer(request, report_id, body.environment if body else None)
        try:
            filer.file(report_id)
        finally:
            filer.client.close()
        return _view(request, report_id)

    @endpoint(
        app, "POST", "/reports/{report_id}/retract", "reports:file", tags=tags,
        response_model=ReportOut,
    )  # fmt: skip
    def retract_report(
        request: Request, report_id: int, body: FileReportIn | None = None
    ) -> dict[str, Any]:
        """Withdraw an open report (safe to repeat)."""
        if _view(request, report_id)["state"] == "retracted":
            return _view(request, report_id)
        filer = _filer(request, report_id, body.environment if body else None)
        try:
            filer.retract(report_id)
        finally:
            filer.client.close()
        return _view(request, report_id)

    @endpoint(
        app, "POST", "/reports/{report_id}/resolve", "reports:file", tags=tags,
        response_model=ReportOut,
    )  # fmt: skip
    def resolve_report(request: Request, report_id: int, body: ResolveIn) -> dict[str, Any]:
        """An operator's decision on a report that needs attention."""
        from ridgeline.reports import filing

        filing.resolve(
            request.app.state.store,
            report_id,
            ncmec_report_id=body.report_id,
            not_submitted=body.not_submitted,
            actor=_who(request),
            note=body.note,
        )
        return _view(request, report_id)
