"""The UI's pages: each calls the same library functions as the matching API route.

Identity: a session's name is the reviewer / auditor identity (as an API key's name is
for the API); history records `key:NAME` or `user:NAME` as the actor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ridgeline.errors import BadInput, NotFound
from ridgeline.ui import accounts
from ridgeline.ui.charts import Bar, BarChart
from ridgeline.ui.web import (
    COOKIE,
    LOGIN_COOKIE,
    PREFIX,
    PUBLIC,
    SESSION,
    Ctx,
    int_field,
    new_token,
    page,
    redirect,
    render,
)

DECISIONS = [
    ("csam", "CSAM", "c"),
    ("exploitative", "Exploitative", "e"),
    ("not-csam", "Not CSAM", "n"),
    ("unknown", "Unknown", "u"),
]
INDUSTRY = [
    ("", "None", "0"),
    ("A1", "A1", "1"),
    ("A2", "A2", "2"),
    ("B1", "B1", "3"),
    ("B2", "B2", "4"),
]


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise BadInput(f"{name} must be a number, not {value!r}") from None


# --- login and logout ---------------------------------------------------------------


def _session_minutes() -> float:
    import os

    raw = os.environ.get("RIDGELINE_UI_SESSION_MINUTES")
    return float(raw) if raw else accounts.DEFAULT_SESSION_MINUTES


@page("/login", PUBLIC, methods=("GET", "POST"))
def login(request: Request, state: Any, form: FormData | None) -> Response:
    """Log in with a name and password, or with an API key (double-submit CSRF)."""
    if form is None:
        token = new_token()
        response: Response = render(request, "login.html", None, login_csrf=token, error=None)
        _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
        return response
    expected = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get("login_csrf")
    import hmac

    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        return _login_again(request, "The login form expired: try again.", 403)
    api_key = str(form.get("api_key") or "").strip()
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    with state.store.session() as s:
        if api_key:
            principal = state.verifier.verify(state.store.session, api_key)
            if principal is None:
                return _login_again(request, "Unknown, wrong or revoked API key.", 401)
            token = accounts.start_session(s, principal=principal, minutes=_session_minutes())
        elif name and password:
            throttle: accounts.LoginThrottle = state.ui_throttle
            wait = throttle.wait(s, name)
            if wait > 0:
                message = f"Too many failed logins for {name!r}: try again in {wait:.0f} s."
                return _login_again(request, message, 429)
            user = accounts.check_password(s, name, password)
            if user is None:
                throttle.failed(s, name)
                return _login_again(request, "Wrong name or password.", 401)
            throttle.succeeded(s, name)
            token = accounts.start_session(s, user=user, minutes=_session_minutes())
        else:
            return _login_again(request, "Give a name and a password, or an API key.", 400)
    response = redirect(f"{PREFIX}/")
    _set_cookie(request, response, COOKIE, token, max_age=int(_session_minutes() * 60))
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


def _login_again(request: Request, error: str, status: int) -> Response:
    token = new_token()
    response = render(
        request, "login.html", None, http_status=status, login_csrf=token, error=error
    )
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@page("/logout", SESSION, methods=("POST",))
def logout(ctx: Ctx) -> Response:
    with ctx.state.store.session() as s:
        accounts.end_session(s, ctx.session.id)
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# --- dashboard ----------------------------------------------------------------------


@page("/", SESSION)
def dashboard(ctx: Ctx) -> Response:
    """What this role works on: lists, queues, audits, recent matches, reports, victims."""
    from ridgeline import lists as L
    from ridgeline.lists.models import Entry

    values: dict[str, Any] = {}
    with ctx.state.store.session() as s:
        if ctx.can("lists:read"):
            counts = dict(
                s.execute(
                    select(Entry.list_id, func.count())
                    .where(Entry.deleted_at.is_(None))
                    .group_by(Entry.list_id)
                ).all()
            )
            values["lists"] = [(hl, counts.get(hl.id, 0)) for hl in L.list_lists(s)]
        if ctx.can("review"):
            from ridgeline.review.core import pending_counts

            values["pending"] = pending_counts(s)
            values["exposure"] = _exposure(s, ctx.session.name)
        if ctx.can("audit"):
            from ridgeline.audit.models import Audit

            values["audits"] = list(
                s.scalars(select(Audit).where(Audit.state == "open").order_by(Audit.id.desc()))
            )
        if ctx.can("scans"):
            values["recent_matches"] = _recent_matches(s)
        if ctx.can("reports:read"):
            from ridgeline.reports.models import CyberTipReport

            values["reports"] = dict(
                s.execute(
                    select(CyberTipReport.state, func.count()).group_by(CyberTipReport.state)
                ).all()
            )
        if ctx.can("triage:read"):
            from ridgeline.triage import PRIORITIES
            from ridgeline.ui.clearinghouse import priority_counts

            values["priorities"] = priority_counts(s)
            values["priority_labels"] = PRIORITIES
    if ctx.can("victims"):
        values["chart"] = _identified_chart(ctx)
    return ctx.render("dashboard.html", **values)


def _recent_matches(s: Any) -> list[Any]:
    from ridgeline.scan.models import ScanFile

    rows = s.scalars(select(ScanFile).order_by(ScanFile.id.desc()).limit(200))
    return [r for r in rows if r.matches][:10]


def _exposure(s: Any, name: str) -> Any:
    from ridgeline.review.core import get_reviewer
    from ridgeline.review.wellness import exposure_status
    from ridgeline.timeutil import utcnow

    try:
        reviewer = get_reviewer(s, name)
    except NotFound:
        return None
    return exposure_status(s, reviewer, now=utcnow())


#: The indicator per worker, recomputed at most this often (it takes ~0.3 s for a few
#: hundred victims, and the first call imports lifelines and statsmodels).
INDICATOR_TTL_S = 60.0
_indicator_cache: dict[str, tuple[float, Any]] = {}


def _indicator(ctx: Ctx) -> Any:
    """The indicator over the imported victims (None when there are none), cached."""
    import time

    from ridgeline.indicator import compute
    from ridgeline.indicator.data import load_table

    url = str(ctx.state.store.url)
    hit = _indicator_cache.get(url)
    if hit is not None and time.monotonic() - hit[0] < INDICATOR_TTL_S:
        return hit[1]
    table = load_table(ctx.state.store)
    indicator = compute(table) if len(table) else None
    _indicator_cache[url] = (time.monotonic(), indicator)
    return indicator


def _identified_chart(ctx: Ctx) -> BarChart | None:
    indicator = _indicator(ctx)
    if indicator is None:
        return None
    rows = indicator.periods[-8:]
    return BarChart(
        "Share of known victims identified, by period",
        [Bar(r.period, r.identified_share) for r in rows],
    )


# --- review queue -------------------------------------------------------------------


@page("/review", "review")
def review(ctx: Ctx) -> Response:
    """One item at a time, blurred; the break and the daily cap enforced by the queue."""
    from ridgeline.review.queue import next_item
    from ridgeline.review.wellness import BreakRequired, ExposureCapReached

    with ctx.state.store.session() as s:
        try:
            item = next_item(s, ctx.session.name)
        except BreakRequired as exc:
            return ctx.render(
                "break.html",
                http_status=exc.http_status,
                message=str(exc),
                until=exc.until,
                kind="break",
            )
        except ExposureCapReached as exc:
            return ctx.render(
                "break.html",
                http_status=exc.http_status,
                message=str(exc),
                until=exc.until,
                kind="cap",
            )
        if item is None:
            return ctx.render("review_empty.html", exposure=_exposure(s, ctx.session.name))
        if ctx.session.unblur_entry_id not in (None, item.entry_id):
            accounts.set_unblur(s, ctx.session.id, None)
        unblurred = ctx.session.unblur_entry_id == item.entry_id
        return ctx.render(
            "review.html",
            item=item,
            exposure=item.exposure,
            unblurred=unblurred,
            decisions=DECISIONS,
            industry=INDUSTRY,
        )


@page("/review/{entry_id:int}/verdict", "review", methods=("POST",))
def review_verdict(ctx: Ctx) -> Response:
    from ridgeline.review.core import submit_verdict

    entry_id = ctx.params["entry_id"]
    decision = ctx.field("decision")
    if not decision:
        raise BadInput("choose a verdict (keys c, e, n, u)")
    label = ctx.field("industry")
    classes = [{"scheme": "industry", "label": label}] if label else []
    with ctx.state.store.session() as s:
        outcome = submit_verdict(
            s, entry_id, ctx.session.name, decision, classes, note=ctx.field("note") or None
        )
        accounts.set_unblur(s, ctx.session.id, None)
    matcher = ctx.state.matcher
    if matcher is not None and outcome.changed:
        matcher.refresh()
    return redirect(f"{PREFIX}/review/{entry_id}")


@page("/review/{entry_id:int}", "review")
def review_status(ctx: Ctx) -> Response:
    """An entry's review state: the others' verdicts only once the viewer's own is in."""
    from ridgeline.review.core import entry_review_view

    with ctx.state.store.session() as s:
        status = entry_review_view(s, ctx.params["entry_id"], viewer=ctx.session.name)
    return ctx.render("review_status.html", status=status)


@page("/review/{entry_id:int}/release", "review", methods=("POST",))
def review_release(ctx: Ctx) -> Response:
    from ridgeline.review.queue import release_item

    with ctx.state.store.session() as s:
        release_item(s, ctx.session.name, ctx.params["entry_id"])
        accounts.set_unblur(s, ctx.session.id, None)
    return redirect(f"{PREFIX}/")


@page("/review/{entry_id:int}/unblur", "review", methods=("POST",))
def review_unblur(ctx: Ctx) -> Response:
    """The explicit unblur: the next media fetch of this entry is unblurred (and logged)."""
    from ridgeline.review.queue import next_item

    entry_id = ctx.params["entry_id"]
    with ctx.state.store.session() as s:
        item = next_item(s, ctx.session.name)
        if item is None or item.entry_id != entry_id:
            raise BadInput(f"entry {entry_id} is not the item you hold")
        accounts.set_unblur(s, ctx.session.id, entry_id)
    return redirect(f"{PREFIX}/review")


@page("/review/{entry_id:int}/media", "review")
def review_media(ctx: Ctx) -> Response:
    """The held item's media: blurred greyscale unless this session asked to unblur."""
    from ridgeline.evidence import EvidenceKey
    from ridgeline.review.queue import view_media

    entry_id = ctx.params["entry_id"]
    unblurred = ctx.session.unblur_entry_id == entry_id
    key = EvidenceKey.load(ctx.state.config.evidence_key_file)
    with ctx.state.store.session() as s:
        data = view_media(
            s,
            ctx.session.name,
            entry_id,
            key,
            unblurred=unblurred,
            reason="unblurred in the web UI" if unblurred else None,
        )
    return Response(data, media_type="image/png", headers={"cache-control": "no-store"})


# --- audits -------------------------------------------------------------------------


@page("/audits", "audit", methods=("GET", "POST"))
def audits(ctx: Ctx) -> Response:
    from ridgeline import lists as L
    from ridgeline.audit import audit_warnings, create_audit
    from ridgeline.audit.core import MODES
    from ridgeline.audit.models import Audit

    with ctx.state.store.session() as s:
        if ctx.form is not None:
            seed = ctx.field("seed")
            audit = create_audit(
                s,
                L.get_list(s, ctx.field("list")),
                mode=ctx.field("mode", "random"),
                margin=_float(ctx.field("margin", "0.05"), "margin"),
                confidence=_float(ctx.field("confidence", "0.95"), "confidence"),
                seed=int_field(seed, "seed") if seed else None,
                auditors_per_item=int_field(
                    ctx.field("auditors_per_item", "1"), "auditors per item"
                ),
                actor=ctx.session.name,
            )
            audit_warnings(audit, ctx.field("list"))
            return redirect(f"{PREFIX}/audits/{audit.id}")
        rows = list(s.scalars(select(Audit).order_by(Audit.id.desc()).limit(100)))
        names = {hl.id: hl.name for hl in L.list_lists(s)}
        return ctx.render("audits.html", audits=rows, names=names, modes=MODES)


@page("/audits/{audit_id:int}", "audit")
def audit_results(ctx: Ctx) -> Response:
    """The report: verified share with its intervals, kappa, exceptions, findings."""
    from ridgeline.audit import audit_report, get_audit

    with ctx.state.store.session() as s:
        report = audit_report(s, get_audit(s, ctx.params["audit_id"]))
    v = report["verified"]
    chart = BarChart(
        "Verified share by source (Wilson interval)",
        [Bar(g["group"], g["share"], g["wilson"][0], g["wilson"][1]) for g in report["by_source"]],
    )
    return ctx.render("audit.html", report=report, verified=v, chart=chart)


@page("/audits/{audit_id:int}/review", "audit")
def audit_review(ctx: Ctx) -> Response:
    """Blind review with the item's media, served as the review queue serves it.

    Blind: hashes and media only, never status, classification, source or others'
    verdicts. The auditor must be a registered reviewer (their break and daily-cap
    settings); breaks and caps are enforced before anything is shown. An item with no
    evidence is recorded at once as this auditor's `damaged-file` exception (by
    `view_item_media`, as the API does) and the page says so and moves on.
    """
    from ridgeline import evidence
    from ridgeline.audit import REASONS, get_audit, next_item
    from ridgeline.audit.media import view_item_media
    from ridgeline.review.core import get_reviewer
    from ridgeline.review.models import Reviewer
    from ridgeline.review.wellness import BreakRequired, ExposureCapReached, check_wellness
    from ridgeline.timeutil import utcnow

    audit_id = ctx.params["audit_id"]
    damaged: list[int] = []
    with ctx.state.store.session() as s:
        audit = get_audit(s, audit_id)
        reviewer: Reviewer | None
        try:
            reviewer = get_reviewer(s, ctx.session.name)
        except NotFound:
            reviewer = None
        registered = reviewer is not None and reviewer.active
        item = next_item(s, audit, ctx.session.name)
        exposure = None
        try:
            while item is not None and reviewer is not None and reviewer.active:
                exposure = check_wellness(s, reviewer, now=utcnow())
                if evidence.latest_blob(s, item["entry_id"]) is not None:
                    break
                key = evidence.EvidenceKey.load(ctx.state.config.evidence_key_file)
                view_item_media(s, audit, ctx.session.name, item["entry_id"], key)
                damaged.append(item["entry_id"])
                item = next_item(s, audit, ctx.session.name)
        except (BreakRequired, ExposureCapReached) as exc:
            return ctx.render(
                "break.html",
                http_status=exc.http_status,
                message=str(exc),
                until=exc.until,
                kind="break" if isinstance(exc, BreakRequired) else "cap",
            )
        entry_id = item["entry_id"] if item is not None else None
        if ctx.session.unblur_entry_id not in (None, entry_id):
            accounts.set_unblur(s, ctx.session.id, None)
        return ctx.render(
            "audit_review.html",
            audit_id=audit_id,
            item=item,
            reasons=REASONS,
            registered=registered,
            inactive=reviewer is not None and not reviewer.active,
            damaged=damaged,
            exposure=exposure,
            unblurred=entry_id is not None and ctx.session.unblur_entry_id == entry_id,
        )


@page("/audits/{audit_id:int}/items/{entry_id:int}/unblur", "audit", methods=("POST",))
def audit_unblur(ctx: Ctx) -> Response:
    """The explicit unblur: the next media fetch of this item is unblurred (and logged)."""
    from ridgeline.audit import get_audit, next_item

    audit_id, entry_id = ctx.params["audit_id"], ctx.params["entry_id"]
    with ctx.state.store.session() as s:
        item = next_item(s, get_audit(s, audit_id), ctx.session.name)
        if item is None or item["entry_id"] != entry_id:
            raise BadInput(f"entry {entry_id} is not your current item in audit {audit_id}")
        accounts.set_unblur(s, ctx.session.id, entry_id)
    return redirect(f"{PREFIX}/audits/{audit_id}/review")


@page("/audits/{audit_id:int}/items/{entry_id:int}/media", "audit")
def audit_media(ctx: Ctx) -> Response:
    """The item's media: blurred greyscale unless this session asked to unblur it."""
    from ridgeline.audit import get_audit
    from ridgeline.audit.media import view_item_media
    from ridgeline.errors import DamagedFile
    from ridgeline.evidence import EvidenceKey

    audit_id, entry_id = ctx.params["audit_id"], ctx.params["entry_id"]
    unblurred = ctx.session.unblur_entry_id == entry_id
    key = EvidenceKey.load(ctx.state.config.evidence_key_file)
    with ctx.state.store.session() as s:
        media = view_item_media(
            s,
            get_audit(s, audit_id),
            ctx.session.name,
            entry_id,
            key,
            unblurred=unblurred,
            reason="unblurred in the web UI" if unblurred else None,
        )
    if media.image is None:  # the exception is stored (the session committed)
        raise DamagedFile(f"entry {entry_id} had no evidence stored: recorded as damaged-file")
    return Response(media.image, media_type="image/png", headers={"cache-control": "no-store"})


@page("/audits/{audit_id:int}/items/{entry_id:int}/verdict", "audit", methods=("POST",))
def audit_verdict(ctx: Ctx) -> Response:
    from ridgeline.audit import get_audit, submit_verdict

    verified = ctx.field("verified")
    if verified not in ("yes", "no"):
        raise BadInput("choose verified (v) or exception (x)")
    with ctx.state.store.session() as s:
        submit_verdict(
            s,
            get_audit(s, ctx.params["audit_id"]),
            ctx.session.name,
            ctx.params["entry_id"],
            verified=verified == "yes",
            reason=ctx.field("reason") or None if verified == "no" else None,
            note=ctx.field("note") or None,
        )
        accounts.set_unblur(s, ctx.session.id, None)
    return redirect(f"{PREFIX}/audits/{ctx.params['audit_id']}/review")


@page("/audits/{audit_id:int}/close", "audit", methods=("POST",))
def audit_close(ctx: Ctx) -> Response:
    from ridgeline.audit import close_audit, get_audit

    with ctx.state.store.session() as s:
        close_audit(s, get_audit(s, ctx.params["audit_id"]), actor=ctx.session.name)
    return redirect(f"{PREFIX}/audits/{ctx.params['audit_id']}")


# --- lists and entries --------------------------------------------------------------

PAGE_SIZE = 50


@page("/lists", "lists:read")
def lists_page(ctx: Ctx) -> Response:
    from ridgeline import lists as L
    from ridgeline.lists.models import Entry

    with ctx.state.store.session() as s:
        counts = dict(
            s.execute(
                select(Entry.list_id, func.count())
                .where(Entry.deleted_at.is_(None))
                .group_by(Entry.list_id)
            ).all()
        )
        rows = [(hl, counts.get(hl.id, 0)) for hl in L.list_lists(s)]
        return ctx.render("lists.html", lists=rows)


@page("/lists/{name}", "lists:read")
def list_page(ctx: Ctx) -> Response:
    """A list's entries, a page at a time, and its releases with their signatures."""
    from ridgeline import lists as L
    from ridgeline.releases.models import Release

    after = ctx.request.query_params.get("after", "0")
    status = ctx.request.query_params.get("status") or None
    with ctx.state.store.session() as s:
        hl = L.get_list(s, ctx.params["name"])
        entries = L.list_entries(
            s, hl, status=status, after_id=int_field(after, "after"), limit=PAGE_SIZE
        )
        releases = list(
            s.scalars(
                select(Release).where(Release.list_id == hl.id).order_by(Release.version.desc())
            )
        )
        return ctx.render(
            "list.html",
            hl=hl,
            entries=entries,
            releases=releases,
            status=status or "",
            statuses=L.ENTRY_STATUSES,
            next_after=entries[-1].id if len(entries) == PAGE_SIZE else None,
        )


@page("/entries/{entry_id:int}", "lists:read")
def entry_page(ctx: Ctx) -> Response:
    """An entry: hashes, provenance, series, history; enable or disable for curators."""
    from ridgeline import lists as L
    from ridgeline.victims.registry import series_status

    entry_id = ctx.params["entry_id"]
    with ctx.state.store.session() as s:
        entry = L.get_entry(s, entry_id)
        data = L.entry_to_json(entry)
        history = [L.event_to_json(e) for e in L.entry_history(s, entry_id)]
        list_name = entry.hash_list.name
    series = series_status(ctx.state.store, entry_ids=[entry_id]).get(entry_id, [])
    return ctx.render(
        "entry.html",
        entry=data,
        history=history,
        list_name=list_name,
        series=series,
        can_write=ctx.can("lists:write"),
    )


@page("/entries/{entry_id:int}/enabled", "lists:write", methods=("POST",))
def entry_enabled(ctx: Ctx) -> Response:
    from ridgeline import lists as L

    enabled = ctx.field("enabled") == "yes"
    with ctx.state.store.session() as s:
        entry = L.get_entry(s, ctx.params["entry_id"])
        L.set_entry_enabled(
            s, entry, enabled, actor=ctx.session.actor, reason=ctx.field("reason") or None
        )
    matcher = ctx.state.matcher
    if matcher is not None:
        matcher.refresh()
    return redirect(f"{PREFIX}/entries/{ctx.params['entry_id']}")


@page("/search", "lists:read", methods=("GET", "POST"))
def search(ctx: Ctx) -> Response:
    """Search by a hash, or by a file hashed here (the file is not kept)."""
    from ridgeline.matching import queries_for
    from ridgeline.service.keys import Principal
    from ridgeline.service.routes import match_with_state
    from ridgeline.signals import get_signal
    from ridgeline.signals.base import Query

    matcher = ctx.state.matcher
    if matcher is None:
        from ridgeline.errors import NotReady

        raise NotReady("index not loaded")
    principal = Principal(-1, ctx.session.name, ctx.session.role, None)
    signal = ctx.request.query_params.get("signal", "")
    value = ctx.request.query_params.get("value", "")
    searched: dict[str, Any] | None = None
    matches: list[dict[str, Any]] = []
    if ctx.form is not None:
        upload = ctx.form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise BadInput("choose a file to search by")
        from ridgeline.service.uploads import hash_with_timeout, spooled_upload
        from ridgeline.signals import HashOptions

        config = ctx.state.config
        options = HashOptions(max_pixels=config.max_pixels)
        with spooled_upload(upload.file, config.max_upload_bytes, config.upload_kinds) as path:
            result = hash_with_timeout(path, options, config.request_timeout_s, partial=True)
        searched = {"file": upload.filename, "signals": result.signals}
        matches = match_with_state(ctx.state, matcher, queries_for(result.signals), None, principal)
    elif signal and value:
        sig = get_signal(signal)
        canonical = sig.normalize(value)
        searched = {"signals": {sig.name: canonical}}
        matches = match_with_state(
            ctx.state, matcher, [Query(sig.name, canonical)], None, principal
        )
    from ridgeline.signals import all_signals

    return ctx.render(
        "search.html",
        searched=searched,
        matches=matches,
        signal=signal,
        value=value,
        signals=sorted(all_signals()),
    )


# --- scans, holds, quarantine -------------------------------------------------------


@page("/scans", "scans")
def scans(ctx: Ctx) -> Response:
    from ridgeline.scan.runs import list_runs, run_to_json

    with ctx.state.store.session() as s:
        runs = [run_to_json(r) for r in list_runs(s, limit=50)]
    return ctx.render("scans.html", runs=runs)


@page("/scans/{run_id:int}", "scans")
def scan_page(ctx: Ctx) -> Response:
    """One run's matched files with each match's explanation."""
    from ridgeline.scan.runs import file_to_json, get_run, run_files, run_to_json

    only = ctx.request.query_params.get("files", "matches")
    if only not in ("all", "matches", "errors"):
        raise BadInput("files must be all, matches or errors")
    with ctx.state.store.session() as s:
        run = get_run(s, ctx.params["run_id"])
        files = [file_to_json(f) for f in run_files(s, run, only=only, limit=200)]
        data = run_to_json(run)
    return ctx.render("scan.html", run=data, files=files, only=only)


@page("/holds", "flood", methods=("GET",))
def holds(ctx: Ctx) -> Response:
    from ridgeline.scan.flood import hold_to_json, list_holds

    with ctx.state.store.session() as s:
        rows = [hold_to_json(h) for h in list_holds(s, None)]
    return ctx.render("holds.html", holds=rows)


@page("/holds/{hold_id:int}/release", "flood", methods=("POST",))
def hold_release(ctx: Ctx) -> Response:
    from ridgeline.scan.flood import release_hold

    with ctx.state.store.session() as s:
        release_hold(s, ctx.params["hold_id"], ctx.session.actor)
    return redirect(f"{PREFIX}/holds")


@page("/quarantine", "scans")
def quarantine(ctx: Ctx) -> Response:
    from ridgeline.scan.actions import list_quarantine, quarantine_to_json

    with ctx.state.store.session() as s:
        rows = [quarantine_to_json(q) for q in list_quarantine(s, include_restored=True)]
    return ctx.render("quarantine.html", items=rows)


@page("/quarantine/{item_id:int}/restore", "scans", methods=("POST",))
def quarantine_restore(ctx: Ctx) -> Response:
    from ridgeline.scan.actions import restore_quarantined

    with ctx.state.store.session() as s:
        restore_quarantined(s, ctx.params["item_id"])
    return redirect(f"{PREFIX}/quarantine")


# --- victims and the indicator ------------------------------------------------------


@page("/victims", "victims")
def victims(ctx: Ctx) -> Response:
    """Series and victims, identification status, the indicator and survival charts."""
    from ridgeline.victims.models import MergedVictim, Series

    with ctx.state.store.session() as s:
        series = list(s.scalars(select(Series).order_by(Series.id).limit(50)))
        merged = list(s.scalars(select(MergedVictim).order_by(MergedVictim.id).limit(50)))
    indicator = _indicator(ctx)
    charts: list[BarChart] = []
    if indicator is not None:
        charts.append(
            BarChart(
                "Share of known victims identified, by period",
                [Bar(r.period, r.identified_share) for r in indicator.periods[-8:]],
            )
        )
        charts.append(
            BarChart(
                "Identified within (Kaplan-Meier, 95% interval)",
                [Bar(k, v.share, v.low, v.high) for k, v in indicator.survival.within.items()],
            )
        )
    return ctx.render(
        "victims.html", series=series, merged=merged, indicator=indicator, charts=charts
    )


# --- outgoing CyberTipline reports --------------------------------------------------


@page("/reports", "reports:read")
def reports(ctx: Ctx) -> Response:
    """Outgoing CyberTipline reports and their filing state (received reports, triage,
    cases and the law-enforcement view: `ridgeline.ui.clearinghouse`)."""
    from ridgeline.reports.models import CyberTipReport

    with ctx.state.store.session() as s:
        rows = list(s.scalars(select(CyberTipReport).order_by(CyberTipReport.id.desc()).limit(200)))
        data = [
            {
                "id": r.id,
                "state": r.state,
                "environment": r.environment,
                "ncmec_report_id": r.ncmec_report_id,
                "problems": len(r.problems or []),
                "attention": r.attention,
                "created_at": r.created_at,
                "submitted_at": r.submitted_at,
                "files": len(r.files),
            }
            for r in rows
        ]
    return ctx.render("reports.html", reports=data)
