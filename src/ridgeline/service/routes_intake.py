"""`/v1/intake` and `/v1/cases`: received reports in, linked cases out.

Thin wrappers over `ridgeline.intake` and `ridgeline.cases`. Permissions (service/auth.py
POLICY): `intake` (the `intake` role, given to the providers' reporting systems, and
admins) may only send reports; analysts read received reports and cases and split or
merge cases. A report is answered only after its transaction has committed.

`POST /v1/intake` takes one document (`application/xml`: a `<report>` or `<submission>`;
`application/json`: one `{"report", "files"}` object) or a batch (`application/json`
with a list, or `application/x-ndjson`, one document a line). An `Idempotency-Key`
header makes a repeat harmless (a batch's documents get `KEY:0`, `KEY:1`, ...); without
one the document's sha256 is its key. A single document answers 201 (stored), 200
(duplicate) or 422 with every problem; a batch answers 200 with one row each.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ridgeline.errors import InvalidRequest
from ridgeline.service.keys import Principal

MAX_BATCH = 5000


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProblemOut(BaseModel):
    path: str
    message: str
    severity: Literal["error", "warning"]


class IntakeRowOut(BaseModel):
    source: str
    report_id: int | None
    status: Literal["stored", "duplicate", "refused"]
    problems: list[ProblemOut]


class IntakeBatchOut(BaseModel):
    results: list[IntakeRowOut]


class LinkOut(BaseModel):
    report_a: int
    report_b: int
    identifier: str
    value: str
    cut: bool = False


class CaseOut(BaseModel):
    case_id: int
    reports: list[int]
    links: list[LinkOut]


class CasesOut(BaseModel):
    cases: list[CaseOut]


class CaseDetailOut(Open):
    case_id: int
    state: str
    reports: list[dict[str, Any]]
    people: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    files: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    links: list[LinkOut]


class SplitIn(BaseModel):
    reports: list[int] = Field(min_length=1, max_length=100000)
    reason: str = Field(min_length=1, max_length=2000)


class SplitOut(BaseModel):
    case_id: int
    new_case_id: int
    reports: list[int]


class MergeIn(BaseModel):
    other: int
    reason: str = Field(min_length=1, max_length=2000)


class MergeOut(BaseModel):
    case_id: int
    merged_case_id: int


def _who(request: Request) -> str:
    principal: Principal = request.state.principal
    return f"key:{principal.name}"


def _documents(body: bytes, ctype: str, key: str | None) -> tuple[list[Any], bool]:
    """(documents, is a batch) from the request body."""
    from ridgeline.intake import Incoming

    media = ctype.split(";")[0].strip().lower()
    if not body.strip():
        raise InvalidRequest("the request has no report in its body")
    if media in ("application/x-ndjson", "application/jsonl", "application/json-seq"):
        lines = [ln for ln in body.splitlines() if ln.strip()]
        docs = [
            Incoming(f"http:{n}", ln.strip(), "json", f"{key}:{n}" if key else None)
            for n, ln in enumerate(lines)
        ]
        return docs, True
    if media in ("application/xml", "text/xml"):
        return [Incoming("http", body, "xml", key)], False
    if media in ("application/json", ""):
        stripped = body.lstrip()
        if stripped[:1] == b"[":
            try:
                items = json.loads(body)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
            if not isinstance(items, list):
                raise InvalidRequest("a JSON batch must be an array of reports")
            docs = [
                Incoming(
                    f"http:{n}",
                    json.dumps(item, separators=(",", ":")).encode(),
                    "json",
                    f"{key}:{n}" if key else None,
                )
                for n, item in enumerate(items)
            ]
            return docs, True
        fmt = "xml" if stripped[:1] == b"<" else "json"
        return [Incoming("http", body, fmt, key)], False
    raise InvalidRequest(
        f"unsupported Content-Type {media!r}: send application/xml, application/json "
        "or application/x-ndjson"
    )


#: Guards the lazy creation of the process's one intake writer.
_INTAKE_LOCK = threading.Lock()


def _writer(state: Any) -> Any:
    """The process's one intake `GroupWriter` (the linker's in-memory state is one per
    process, and so is its writer: concurrent requests share its transactions)."""
    found = getattr(state, "intake_writer", None)
    if found is None:
        with _INTAKE_LOCK:
            found = getattr(state, "intake_writer", None)
            if found is None:
                from ridgeline.intake import GroupWriter, Pipeline, default_steps

                pipeline = Pipeline(steps=default_steps(state.store))
                found = GroupWriter(state.store, pipeline, max_batch=MAX_BATCH)
                state.intake_writer = found
    return found


def ingest_with_state(state: Any, docs: list[Any], received_by: str) -> list[Any]:
    """Documents through the process's one intake writer (the API's and the UI's),
    committed before the outcomes are returned: only then may they be acknowledged."""
    outcomes: list[Any] = _writer(state).ingest(docs, received_by=received_by)
    return outcomes


def documents_of(body: bytes, ctype: str, key: str | None) -> tuple[list[Any], bool]:
    """(documents, is a batch) from a body and its media type (as `POST /v1/intake`)."""
    return _documents(body, ctype, key)


def register_intake_routes(app: FastAPI) -> None:
    """Add `/v1/intake` and `/v1/cases`."""
    from ridgeline.service.routes import endpoint

    def ingest(request: Request, docs: list[Any]) -> list[Any]:
        return ingest_with_state(request.app.state, docs, _who(request))

    @endpoint(
        app,
        "POST",
        "/intake",
        "intake",
        tags=["intake"],
        response_model=IntakeBatchOut | IntakeRowOut,
        responses={
            201: {"model": IntakeRowOut, "description": "Stored (one document)"},
            422: {"model": IntakeRowOut, "description": "Refused, with every problem"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/xml": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def post_intake(request: Request) -> JSONResponse:
        """Take in a CyberTipline report (or a batch); answered once durably stored."""
        import asyncio

        body = await request.body()
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key.strip()) <= 180:
            raise InvalidRequest("Idempotency-Key must be 1 to 180 characters")
        docs, batch = _documents(body, request.headers.get("content-type", ""), key)
        if len(docs) > MAX_BATCH:
            raise InvalidRequest(f"at most {MAX_BATCH} reports per request")
        outcomes = await asyncio.to_thread(ingest, request, docs)
        rows = [o.to_json() for o in outcomes]
        if batch:
            return JSONResponse({"results": rows})
        row = rows[0]
        code = {"stored": 201, "duplicate": 200}.get(row["status"], 422)
        return JSONResponse(row, status_code=code)

    @endpoint(app, "GET", "/intake/{report_id}", "intake:read", tags=["intake"],
              response_model=Open)  # fmt: skip
    def get_received(request: Request, report_id: int) -> dict[str, Any]:
        """A received report: its document, identifiers, case, and triage and routing."""
        from ridgeline.intake import report_view

        with request.app.state.store.session() as s:
            return report_view(s, report_id, _who(request)).to_json()

    @endpoint(app, "GET", "/cases", "cases:read", tags=["cases"], response_model=CasesOut)
    def get_cases(
        request: Request, limit: int = 100, after: int | None = None, min_reports: int = 1
    ) -> dict[str, Any]:
        """Open cases, in id order, with their reports and links."""
        from ridgeline import cases

        if not 1 <= limit <= 10000:
            raise InvalidRequest("limit must be between 1 and 10000")
        if min_reports < 1:
            raise InvalidRequest("min_reports must be at least 1")
        with request.app.state.store.session() as s:
            found = cases.list_cases(s, limit=limit, after=after, min_reports=min_reports)
            return {"cases": [c.to_json() for c in found]}

    @endpoint(app, "GET", "/cases/lookup", "cases:read", tags=["cases"], response_model=CasesOut)
    def lookup_cases(request: Request, kind: str, value: str) -> dict[str, Any]:
        """Cases holding an identifier (normalised as at intake), or `kind=report`."""
        from ridgeline import cases
        from ridgeline.reports import identifiers as ids

        with request.app.state.store.session() as s:
            if kind == "report":
                if not value.isdigit():
                    raise InvalidRequest(f"a report id is a number, not {value!r}")
                found = [cases.case_of(s, int(value))]
            else:
                found = cases.cases_with(s, kind, ids.normalise_query(kind, value))
            return {"cases": [cases.summary(s, c).to_json() for c in found]}

    @endpoint(app, "GET", "/cases/{case_id}", "cases:read", tags=["cases"],
              response_model=CaseDetailOut)  # fmt: skip
    def get_case(request: Request, case_id: int) -> dict[str, Any]:
        """A case: reports, people, accounts, files, timeline, links, decisions."""
        from ridgeline import cases

        with request.app.state.store.session() as s:
            return cases.show(s, case_id).to_json()

    @endpoint(app, "POST", "/cases/{case_id}/split", "cases:write", tags=["cases"],
              response_model=SplitOut)  # fmt: skip
    def post_split(request: Request, case_id: int, body: SplitIn) -> dict[str, Any]:
        """Move reports out of a case into a new one, with a reason (logged)."""
        from ridgeline import cases

        with request.app.state.store.session() as s:
            new_id = cases.split(s, case_id, body.reports, body.reason, actor=_who(request))
        return {"case_id": case_id, "new_case_id": new_id, "reports": sorted(set(body.reports))}

    @endpoint(app, "POST", "/cases/{case_id}/merge", "cases:write", tags=["cases"],
              response_model=MergeOut)  # fmt: skip
    def post_merge(request: Request, case_id: int, body: MergeIn) -> dict[str, Any]:
        """Merge another case into this one, with a reason (logged)."""
        from ridgeline import cases

        with request.app.state.store.session() as s:
            cases.merge(s, case_id, body.other, body.reason, actor=_who(request))
        return {"case_id": case_id, "merged_case_id": body.other}
