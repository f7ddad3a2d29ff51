"""The clearinghouse's pages: received reports, the triage queue, cases, routing, and
what a law-enforcement user sees. Each calls the library functions the matching
`/v1/intake`, `/v1/cases`, `/v1/triage`, `/v1/routing` and `/v1/le` routes call, under
the same permissions; nothing here decides a priority, a link, a route or a lock.

Law enforcement: a user or key of the `law-enforcement` role acts for one agency (its
`agency`); it sees only the reports made available to that agency (others are "not
found"), files locked under the Wilson rule as metadata only until a warrant is entered,
and the preservation deadline. `ridgeline.routing.access` logs every report view, file
view, refusal, warrant and preservation request in the tamper-evident log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from starlette.datastructures import UploadFile
from starlette.responses import Response

from ridgeline.errors import BadInput, Forbidden, TooLarge
from ridgeline.ui.charts import Edge, Graph
from ridgeline.ui.web import PREFIX, Ctx, int_field, page, redirect


def _query_int(ctx: Ctx, name: str) -> int | None:
    raw = ctx.request.query_params.get(name, "").strip()
    return int_field(raw, name) if raw else None


PAGE_SIZE = 50


# --- received reports ---------------------------------------------------------------


@page("/intake", "intake:read")
def intake_list(ctx: Ctx) -> Response:
    """Received reports, newest first, with the priority triage gave each."""
    from ridgeline import triage
    from ridgeline.reports.received import list_received

    after = _query_int(ctx, "after")
    with ctx.state.store.session() as s:
        rows = list_received(s, limit=PAGE_SIZE, after=after)
        priorities = triage.current_many(s, [r.id for r in rows])
        reports = [
            {
                "id": r.id,
                "source": r.source,
                "received_at": r.received_at,
                "incident_type": r.incident_type,
                "reporter": r.reporter,
                "files": r.file_count,
                "warnings": len(r.warnings or ()),
                "priority": priorities[r.id].priority if r.id in priorities else None,
            }
            for r in rows
        ]
    return ctx.render(
        "intake.html",
        reports=reports,
        labels=triage.PRIORITIES,
        next_after=reports[-1]["id"] if len(reports) == PAGE_SIZE else None,
        can_upload=ctx.can("intake"),
    )


#: Upload file name endings and the media type `POST /v1/intake` reads them as.
UPLOAD_TYPES = {
    ".xml": "application/xml",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
}


@page("/intake/upload", "intake", methods=("GET", "POST"))
def intake_upload(ctx: Ctx) -> Response:
    """Take in a report file (XML, JSON, or JSONL: one report a line) through the same
    pipeline as `POST /v1/intake`; every problem of a refused document is listed."""
    from ridgeline.service.routes_intake import MAX_BATCH, documents_of, ingest_with_state

    if ctx.form is None:
        return ctx.render("intake_upload.html", results=None, filename=None)
    upload = ctx.form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise BadInput("choose a report file to take in")
    name = upload.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in UPLOAD_TYPES:
        raise BadInput(f"{name}: give a .xml, .json, .jsonl or .ndjson file")
    cap = ctx.state.config.max_upload_bytes
    body = upload.file.read(cap + 1)
    if len(body) > cap:
        raise TooLarge(f"{name} is larger than {cap} bytes")
    docs, _batch = documents_of(body, UPLOAD_TYPES[suffix], None)
    if len(docs) > MAX_BATCH:
        raise BadInput(f"at most {MAX_BATCH} reports per file")
    docs = [dataclasses.replace(d, source=name + d.source.removeprefix("http")) for d in docs]
    outcomes = ingest_with_state(ctx.state, docs, ctx.session.actor)
    return ctx.render(
        "intake_upload.html",
        results=outcomes,
        filename=name,
        can_read=ctx.can("intake:read"),
    )


@page("/intake/{report_id:int}", "intake:read")
def intake_report(ctx: Ctx) -> Response:
    """A received report: what it says, its identifiers, its case, its priority with
    every reason (and the override form), where it was routed and why, each file's
    state under the Wilson rule, and the preservation deadline."""
    from ridgeline import triage
    from ridgeline.intake import report_view
    from ridgeline.reports import received
    from ridgeline.routing import available_to
    from ridgeline.routing.access import file_gate, preservation_until

    report_id = ctx.params["report_id"]
    with ctx.state.store.session() as s:
        view = report_view(s, report_id)
        stored = triage.current(s, report_id)
        routed = available_to(s, report_id)
        _report, details = received.document_of(received.get(s, report_id))
        files = []
        for i, (f, doc) in enumerate(zip(details, view.document.get("files", []), strict=False)):
            locked, why = file_gate(f, i, ())
            files.append({"position": i, "locked": locked, "why": why, "doc": doc})
    summary = view.document.get("report", {}).get("incidentSummary", {})
    return ctx.render(
        "intake_report.html",
        view=view,
        summary=summary,
        triage=stored,
        labels=triage.PRIORITIES,
        routed=routed,
        files=files,
        preserve_until=preservation_until(view.received_at),
        document=json.dumps(view.document, indent=2, ensure_ascii=False),
        can_override=ctx.can("triage:override"),
        can_cases=ctx.can("cases:read"),
        can_route=ctx.can("routing:write"),
    )


@page("/intake/{report_id:int}/make-available", "routing:write", methods=("POST",))
def intake_make_available(ctx: Ctx) -> Response:
    """Make a report available to one more agency by hand, with a reason (logged), as
    `ridgeline routing make-available` does."""
    from ridgeline import routing
    from ridgeline.reports import received

    report_id = ctx.params["report_id"]
    with ctx.state.store.session() as s:
        received.get(s, report_id)  # not found for a report that does not exist
        routing.make_available(
            s, report_id, ctx.field("agency"), ctx.field("reason"), ctx.session.actor
        )
    return redirect(f"{PREFIX}/intake/{report_id}#h-route")


# --- triage -------------------------------------------------------------------------


@page("/triage", "triage:read")
def triage_queue(ctx: Ctx) -> Response:
    """The analysts' queue: most urgent first, then oldest, with each top reason."""
    from ridgeline import triage

    priority = _query_int(ctx, "priority")
    offset = _query_int(ctx, "offset") or 0
    with ctx.state.store.session() as s:
        rows = triage.queue(s, priority=priority, limit=PAGE_SIZE, offset=offset)
        counts = priority_counts(s)
    return ctx.render(
        "triage.html",
        rows=rows,
        labels=triage.PRIORITIES,
        counts=counts,
        priority=priority,
        offset=offset,
        next_offset=offset + PAGE_SIZE if len(rows) == PAGE_SIZE else None,
    )


@page("/triage/{report_id:int}/override", "triage:override", methods=("POST",))
def triage_override(ctx: Ctx) -> Response:
    """Set a report's priority by hand, with a reason (tamper-evident log)."""
    from ridgeline import triage

    report_id = ctx.params["report_id"]
    priority = int_field(ctx.field("priority"), "priority")
    with ctx.state.store.session() as s:
        triage.override(s, report_id, priority, ctx.field("reason"), ctx.session.actor)
    return redirect(f"{PREFIX}/intake/{report_id}#triage")


# --- cases --------------------------------------------------------------------------


@page("/cases", "cases:read")
def cases_list(ctx: Ctx) -> Response:
    """Open cases, a page at a time; find the cases holding an identifier or a report."""
    from ridgeline import cases
    from ridgeline.reports import identifiers as ids

    after = _query_int(ctx, "after")
    min_reports = _query_int(ctx, "min_reports") or 1
    kind = ctx.request.query_params.get("kind", "").strip()
    value = ctx.request.query_params.get("value", "").strip()
    with ctx.state.store.session() as s:
        if kind and value:
            if kind == "report":
                found = [cases.case_of(s, int_field(value, "report"))]
            else:
                found = cases.cases_with(s, kind, ids.normalise_query(kind, value))
            rows = [cases.summary(s, c) for c in found]
        else:
            rows = cases.list_cases(
                s, limit=PAGE_SIZE, after=after, min_reports=max(1, min_reports)
            )
    return ctx.render(
        "cases.html",
        cases=rows,
        kinds=["report", *ids.KINDS],
        kind=kind,
        value=value,
        min_reports=min_reports,
        next_after=rows[-1].case_id if len(rows) == PAGE_SIZE and not value else None,
    )


@page("/cases/{case_id:int}", "cases:read")
def case_page(ctx: Ctx) -> Response:
    """A case: its reports, the identifier behind each link (as a table and a graph),
    people, accounts, files, timeline, and the analysts' split and merge decisions."""
    from ridgeline import cases

    with ctx.state.store.session() as s:
        detail = cases.show(s, ctx.params["case_id"])
    pairs: dict[tuple[int, int], list[str]] = {}
    cut: dict[tuple[int, int], bool] = {}
    for lk in detail.links:
        key = (min(lk.report_a, lk.report_b), max(lk.report_a, lk.report_b))
        pairs.setdefault(key, []).append(f"{lk.identifier} {lk.value}")
        cut[key] = cut.get(key, True) and lk.cut
    graph = Graph(
        f"Case {detail.case_id}: reports and the identifiers linking them",
        [int(r["report_id"]) for r in detail.reports],
        [Edge(a, b, tuple(labels), cut[(a, b)]) for (a, b), labels in sorted(pairs.items())],
    )
    return ctx.render(
        "case.html",
        case=detail,
        asked=ctx.params["case_id"],
        graph=graph,
        can_write=ctx.can("cases:write"),
    )


@page("/cases/{case_id:int}/split", "cases:write", methods=("POST",))
def case_split(ctx: Ctx) -> Response:
    """Move the ticked reports into a new case, with a reason (logged)."""
    from ridgeline import cases

    assert ctx.form is not None
    picked = [int_field(str(v), "report") for v in ctx.form.getlist("reports")]
    with ctx.state.store.session() as s:
        new_id = cases.split(
            s, ctx.params["case_id"], picked, ctx.field("reason"), actor=ctx.session.actor
        )
    return redirect(f"{PREFIX}/cases/{new_id}")


@page("/cases/{case_id:int}/merge", "cases:write", methods=("POST",))
def case_merge(ctx: Ctx) -> Response:
    """Fold another case into this one, with a reason (logged)."""
    from ridgeline import cases

    other = int_field(ctx.field("other"), "other case")
    with ctx.state.store.session() as s:
        cases.merge(s, ctx.params["case_id"], other, ctx.field("reason"), actor=ctx.session.actor)
    return redirect(f"{PREFIX}/cases/{ctx.params['case_id']}")


# --- routing ------------------------------------------------------------------------


def _routing_page(
    ctx: Ctx, *, problems: tuple[str, ...] = (), error: str | None = None, imported: str = ""
) -> Response:
    from ridgeline import routing

    with ctx.state.store.session() as s:
        rules = routing.list_rules(s)
    if not any(r.country == "*" for r in rules):
        rules.append(routing.Rule("*", None, routing.DEFAULT_FALLBACK))
    return ctx.render(
        "routing.html",
        http_status=400 if problems or error else 200,
        rules=rules,
        problems=problems,
        error=error,
        imported=imported or ctx.request.query_params.get("imported", ""),
        can_import=ctx.can("routing:write"),
    )


@page("/routing", "routing:read")
def routing_rules(ctx: Ctx) -> Response:
    """The routing rules: which agency gets reports placed where (`*`: fallback desk)."""
    return _routing_page(ctx)


@page("/routing/import", "routing:write", methods=("POST",))
def routing_import(ctx: Ctx) -> Response:
    """Replace the routing rules with an uploaded CSV, as `ridgeline routing import`
    does (logged); a refused file changes nothing and every bad line is listed."""
    from ridgeline import routing

    assert ctx.form is not None
    upload = ctx.form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise BadInput("choose a routing rules file (CSV) to import")
    name = upload.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    cap = ctx.state.config.max_upload_bytes
    body = upload.file.read(cap + 1)
    if len(body) > cap:
        raise TooLarge(f"{name} is larger than {cap} bytes")
    fallback = ctx.field("fallback") or None
    try:
        with ctx.state.store.session() as s:
            routing.import_csv(s, body, source=name, fallback=fallback, actor=ctx.session.actor)
    except routing.BadRoutingRules as exc:
        return _routing_page(ctx, problems=exc.problems, error=str(exc))
    except BadInput as exc:
        return _routing_page(ctx, error=str(exc))
    return redirect(f"{PREFIX}/routing?imported={quote(name)}")


# --- law enforcement ----------------------------------------------------------------


def _agency(ctx: Ctx) -> str:
    if not ctx.session.agency:
        raise Forbidden(f"{ctx.session.actor} is not bound to an agency")
    return ctx.session.agency


@page("/le", "le:read")
def le_reports(ctx: Ctx) -> Response:
    """The reports made available to the user's agency, newest first, with deadlines."""
    from ridgeline import routing
    from ridgeline.reports.models import ReceivedReport
    from ridgeline.routing.access import preservation_until

    agency = _agency(ctx)
    offset = _query_int(ctx, "offset") or 0
    with ctx.state.store.session() as s:
        rows = routing.reports_for(s, agency, limit=PAGE_SIZE, offset=offset)
        received = dict(
            s.execute(
                select(ReceivedReport.id, ReceivedReport.received_at).where(
                    ReceivedReport.id.in_([r.report_id for r in rows])
                )
            ).all()
        )
    now = dt.datetime.now(dt.UTC)
    reports = []
    for r in rows:
        until = preservation_until(received[r.report_id])
        reports.append({"row": r, "until": until, "days_left": (until - now).days})
    return ctx.render(
        "le_reports.html",
        agency=agency,
        reports=reports,
        offset=offset,
        next_offset=offset + PAGE_SIZE if len(rows) == PAGE_SIZE else None,
    )


@page("/le/{report_id:int}", "le:read")
def le_report(ctx: Ctx) -> Response:
    """A report as the agency may see it: locked files as metadata only (logged)."""
    from ridgeline.routing.access import LEGAL_PROCESS_KINDS, view_report

    agency = _agency(ctx)
    with ctx.state.store.session() as s:
        view = view_report(s, ctx.params["report_id"], agency, ctx.session.actor)
    data = view.to_json()
    return ctx.render(
        "le_report.html",
        view=view,
        data=data,
        summary=data["report"].get("incidentSummary", {}),
        persons=data["report"].get("personOrUserReported", []),
        kinds=LEGAL_PROCESS_KINDS,
        can_enter=ctx.can("le:legal-process"),
    )


@page("/le/{report_id:int}/files/{position:int}", "le:read")
def le_file(ctx: Ctx) -> Response:
    """One file's details; refused (and the refusal logged) while it is locked."""
    from ridgeline.routing import access

    agency = _agency(ctx)
    report_id, position = ctx.params["report_id"], ctx.params["position"]
    store = ctx.state.store
    try:
        with store.session() as s:
            shown = access.view_file(s, report_id, position, agency, ctx.session.actor)
    except access.FileLocked:
        with store.session() as s:  # the view rolled back: log the refusal on its own
            access.log_refusal(s, report_id, position, agency, ctx.session.actor)
        raise
    return ctx.render(
        "le_file.html",
        report_id=report_id,
        file=shown,
        details=json.dumps(shown.details, indent=2, ensure_ascii=False),
    )


@page("/le/{report_id:int}/legal-process", "le:legal-process", methods=("POST",))
def le_legal_process(ctx: Ctx) -> Response:
    """Enter a warrant (or other legal process) the agency holds for the report (logged)."""
    from ridgeline.routing import access

    agency = _agency(ctx)
    raw_files = ctx.field("files")
    files = (
        [int_field(p.strip(), "file") for p in raw_files.replace(" ", ",").split(",") if p.strip()]
        if raw_files
        else None
    )
    issued = ctx.field("issued_on")
    try:
        issued_on = dt.date.fromisoformat(issued) if issued else None
    except ValueError:
        raise BadInput(f"issued on must be a date (YYYY-MM-DD), not {issued!r}") from None
    with ctx.state.store.session() as s:
        access.enter_legal_process(
            s,
            ctx.params["report_id"],
            agency,
            kind=ctx.field("kind", "warrant"),
            reference=ctx.field("reference"),
            actor=ctx.session.actor,
            issued_on=issued_on,
            files=files,
            note=ctx.field("note") or None,
        )
    return redirect(f"{PREFIX}/le/{ctx.params['report_id']}")


@page("/le/{report_id:int}/preservation", "le:read")
def le_preservation(ctx: Ctx) -> Response:
    """The request to the provider to preserve the report's contents (logged)."""
    from ridgeline.routing import access

    agency = _agency(ctx)
    with ctx.state.store.session() as s:
        req = access.preservation_request(s, ctx.params["report_id"], agency, ctx.session.actor)
    return ctx.render("le_preservation.html", req=req, text=req.to_text())


def priority_counts(session: Any) -> dict[int, int]:
    """Triaged reports per priority (the dashboard's panel)."""
    from ridgeline.triage.models import TriagePriority

    return dict(
        session.execute(
            select(TriagePriority.priority, func.count()).group_by(TriagePriority.priority)
        ).all()
    )
