"""The `/v1` endpoints: thin wrappers over library functions, one permission each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ridgeline import lists as L
from ridgeline.errors import InvalidRequest, NotReady, RidgelineError, TooManyValues
from ridgeline.matching import ExplainedMatch, Matcher, queries_for
from ridgeline.scan.flood import hold_to_json, list_holds, release_hold
from ridgeline.service.auth import PERMISSION_KEY, POLICY, requires
from ridgeline.service.disclosure import match_hiding_lists
from ridgeline.service.keys import Principal, create_key, key_to_json, list_keys, revoke_key
from ridgeline.service.match_models import HashesMatchOut, LookupOut, UploadMatchOut
from ridgeline.service.schemas import (
    Classification,
    EntriesPage,
    EntryOut,
    ErrorOut,
    HashOut,
    HoldOut,
    KeyOut,
    ListActionsOut,
    ListCreated,
    ListOut,
    NewKeyOut,
    ScanRunDetail,
    ScansPage,
)
from ridgeline.service.uploads import fetch_url, hash_with_timeout, spooled_upload
from ridgeline.signals import HashOptions, get_signal
from ridgeline.signals.base import Query as MatchQuery
from ridgeline.timeutil import parse_iso

MAX_LOOKUP_VALUES = 1000
PREFIX = "/v1"
#: Every route may answer an error; its body is always `ErrorOut`.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {"model": ErrorOut, "description": "An error (codes in docs/service.md)"}
}


def endpoint(
    router: FastAPI, method: str, path: str, permission: str, **kwargs: Any
) -> Callable[..., Any]:
    """Register `/v1` + `path` guarded by `permission` (also in its OpenAPI extras)."""
    return router.api_route(
        PREFIX + path,
        methods=[method],
        dependencies=[Depends(requires(permission))],
        openapi_extra={PERMISSION_KEY: permission, **kwargs.pop("openapi_extra", {})},
        responses={**ERROR_RESPONSES, **kwargs.pop("responses", {})},
        **kwargs,
    )


def _actor(request: Request) -> str:
    principal: Principal = request.state.principal
    return f"key:{principal.name}"


def _matcher(request: Request) -> Matcher:
    matcher: Matcher | None = request.app.state.matcher
    if matcher is None:
        raise NotReady("index not loaded")
    return matcher


def _match(
    request: Request,
    queries: list[MatchQuery],
    lists: list[str] | None,
    explained: list[ExplainedMatch] | None = None,
) -> list[dict[str, Any]]:
    principal = getattr(request.state, "principal", None)
    return match_with_state(
        request.app.state, _matcher(request), queries, lists, principal, explained
    )


def match_with_state(
    state: Any,
    matcher: Matcher,
    queries: list[MatchQuery],
    lists: list[str] | None,
    principal: Principal | None = None,
    explained: list[ExplainedMatch] | None = None,
) -> list[dict[str, Any]]:
    """Explained matches as JSON (`held` from the matcher's flood holds), counted in
    metrics; redacted for callers who may not read the lists (`service.disclosure`).

    `explained` receives the matches the caller is told about (what webhooks and report
    drafts act on: a hit disclosure withholds from the caller sets off nothing)."""
    matches = match_hiding_lists(matcher, queries, lists, principal)
    if matches:
        metrics = state.metrics
        for m in matches:
            metrics.matches.labels(m.signal).inc()
    rows = [m.to_json() for m in matches]
    original = list(rows) if explained is not None else rows
    state.disclosure.filter(principal, rows)
    if explained is not None and matches:
        kept = {id(r) for r in rows}
        explained.extend(m for r, m in zip(original, matches, strict=True) if id(r) in kept)
    return rows


#: PDQ decoding modes an upload may ask for; `exact` (the default) is bit-identical to
#: the reference hasher, `fast` decodes JPEGs at reduced scale (a few bits apart).
PDQ_MODES = ("exact", "fast")


def _pdq_mode(value: object) -> Literal["exact", "fast"]:
    mode = str(value or "exact").strip().lower()
    if mode == "fast":
        return "fast"
    if mode != "exact":
        raise InvalidRequest(f"mode must be one of {', '.join(PDQ_MODES)}, not {value!r}")
    return "exact"


def _hash_options(request: Request, dihedral: bool, mode: str = "exact") -> HashOptions:
    return HashOptions(
        dihedral=dihedral, max_pixels=request.app.state.config.max_pixels, mode=_pdq_mode(mode)
    )


class HashesIn(BaseModel):
    """Match by hashes: `{"signals": {"pdq": "..." | ["...", ...], "md5": "..."}}`, or a URL."""

    signals: dict[str, str | list[str]] = Field(default_factory=dict)
    lists: list[str] = Field(default_factory=list)
    url: str | None = None
    dihedral: bool = False
    mode: Literal["exact", "fast"] = "exact"
    context: dict[str, Any] | None = Field(
        default=None,
        description="The upload's context for report drafts (user_id, screen_name, "
        "display_name, emails, ips [{ip, event, at, port}], esp_service, platform, "
        "incident_time, profile_url); validated, used only by lists with a report action",
    )
    file_name: str | None = Field(
        default=None, max_length=1000, description="The file's name, for report drafts"
    )


def _context(raw: Any) -> Any:
    """The validated upload context (`reports.drafts.parse_context`); 400 naming the field."""
    if raw is None or raw == "":
        return None
    from ridgeline.reports.drafts import parse_context

    if isinstance(raw, str):
        import json

        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InvalidRequest(f"context: not JSON ({exc})") from None
    try:
        return parse_context(raw)
    except RidgelineError as exc:
        raise InvalidRequest(str(exc)) from None


def _effects(
    request: Request,
    explained: list[ExplainedMatch],
    upload: Any = None,
    context: Any = None,
) -> list[dict[str, Any]]:
    """Webhooks and report drafts of these matches (`service.effects`), or none."""
    effects = request.app.state.effects
    if effects is None or not effects.wanted(explained, reports=upload is not None):
        return []
    principal = getattr(request.state, "principal", None)
    return list(
        effects.apply(
            explained,
            route=request.url.path,
            key_name=principal.name if principal else None,
            upload=upload,
            context=context,
            drafts=principal is not None and principal.role in POLICY["reports:draft"],
        )
    )


#: The length of the name columns (lists, keys, sources): longer is a 400, not a 500.
NAME_MAX = 200


class ListIn(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    purpose: str = "block"
    signals: list[str] = Field(default_factory=list)
    thresholds: dict[str, float] = Field(default_factory=dict)
    description: str | None = None
    owner: str | None = Field(default=None, max_length=NAME_MAX)
    review_quorum: int = 0


class EntryIn(BaseModel):
    """A new entry: its hashes by signal, with what is known about it."""

    signals: dict[str, str] = Field(
        description='Hash per signal, e.g. {"md5": "<32 hex>", "pdq": "<64 hex>"}'
    )
    classifications: list[Classification] = Field(default_factory=list)
    source: str | None = Field(
        default=None, max_length=NAME_MAX, description="Where the entry came from (provenance)"
    )
    note: str | None = None
    qualities: dict[str, int] = Field(
        default_factory=dict, description="PDQ quality per signal, when known (0-100)"
    )


class EnabledIn(BaseModel):
    enabled: bool
    until: str | None = None
    reason: str | None = None


class ActionsIn(BaseModel):
    actions: list[str]


class KeyIn(BaseModel):
    name: str = Field(max_length=NAME_MAX)
    role: str
    rate_limit: float | None = None
    #: the agency a law-enforcement key acts for (required for that role only)
    agency: str | None = Field(default=None, max_length=200)


def register_routes(router: FastAPI) -> None:
    """Add every `/v1` endpoint to the app (directly, so each is a plain APIRoute)."""
    from ridgeline.service.routes_review import register_review_routes

    register_review_routes(router, endpoint)

    # --- hashing and matching (providers) ------------------------------------------

    @endpoint(router, "POST", "/hash", "hash", tags=["match"])
    def hash_upload(
        request: Request,
        file: Annotated[UploadFile, File(description="The content to hash")],
        dihedral: Annotated[bool, Form()] = False,
        mode: Annotated[
            str, Form(description="PDQ decoding: exact (default, reference-identical) or fast")
        ] = "exact",
    ) -> HashOut:
        """Upload a file; get its signals (md5, sha1, sha256 and PDQ/vPDQ by type)."""
        config = request.app.state.config
        options = _hash_options(request, dihedral, mode)
        with spooled_upload(file.file, config.max_upload_bytes, config.upload_kinds) as path:
            result = hash_with_timeout(path, options, config.request_timeout_s)
        return HashOut(
            kind=result.kind, media_type=result.media_type, size=result.size, signals=result.signals
        )

    @endpoint(
        router,
        "POST",
        "/match",
        "match",
        tags=["match"],
        response_model=HashesMatchOut | UploadMatchOut,
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": HashesIn.model_json_schema()},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "dihedral": {"type": "boolean"},
                                "lists": {"type": "string", "description": "comma-separated"},
                                "mode": {
                                    "type": "string",
                                    "enum": list(PDQ_MODES),
                                    "default": "exact",
                                    "description": "PDQ decoding: exact or fast (JPEG at "
                                    "reduced scale, a few bits from exact)",
                                },
                            },
                            "required": ["file"],
                        }
                    },
                },
                "required": True,
            }
        },
    )
    async def match(request: Request) -> JSONResponse:
        """Match an upload (multipart `file`) or hashes (JSON); signals and matches together.

        An upload is matched on every signal it has: its cryptographic hashes always,
        PDQ or vPDQ when they can be computed; a signal that could not be computed
        (pixels that do not decode, too many pixels) is named in `error` beside the
        matches, never instead of them.
        """
        import asyncio

        config = request.app.state.config
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidRequest("multipart upload needs a `file` part")
            dihedral = str(form.get("dihedral", "false")).lower() in ("1", "true", "yes", "on")
            lists = [x.strip() for x in str(form.get("lists", "")).split(",") if x.strip()]
            mode = _pdq_mode(form.get("mode"))
            context = _context(form.get("context"))
            name = str(form.get("file_name") or upload.filename or "upload")[:1000]
            body = await asyncio.to_thread(
                _match_upload, request, upload.file, dihedral, lists, mode, name, context
            )
            return JSONResponse(body)
        try:
            raw = await request.json()
            data = HashesIn.model_validate(raw)
        except RecursionError:  # nested deeper than the parser goes (50k `[`): not a 500
            raise InvalidRequest("the JSON body is nested too deeply") from None
        except ValueError as exc:
            raise InvalidRequest(f"expected JSON hashes or a multipart upload: {exc}") from None
        context = _context(data.context)
        if data.url:
            name = data.file_name or data.url.rstrip("/").rsplit("/", 1)[-1] or "upload"
            response = await asyncio.to_thread(
                fetch_url,
                data.url,
                config.fetch_allow_hosts,
                config.max_upload_bytes,
                config.request_timeout_s,
            )
            try:
                body = await asyncio.to_thread(
                    _match_upload,
                    request,
                    response,
                    data.dihedral,
                    data.lists,
                    data.mode,
                    name,
                    context,
                )
            finally:
                response.close()
            return JSONResponse(body)
        if not data.signals:
            raise InvalidRequest("give `signals`, a `url` or a multipart `file`")
        queries: list[MatchQuery] = []
        canonical: dict[str, Any] = {}
        for name, value in data.signals.items():
            signal = get_signal(name)
            values = value if isinstance(value, list) else [value]
            if len(values) > MAX_LOOKUP_VALUES:
                raise TooManyValues(f"at most {MAX_LOOKUP_VALUES} values per signal")
            norm = [signal.normalize(v) for v in values]
            canonical[signal.name] = norm if isinstance(value, list) else norm[0]
            queries.extend(MatchQuery(signal.name, v) for v in norm)
        from ridgeline.service.effects import Upload

        def hashes_match() -> dict[str, Any]:
            explained: list[ExplainedMatch] = []
            matches = _match(request, queries, data.lists, explained)
            upload = Upload(data.file_name or "file", canonical)
            actions = _effects(request, explained, upload, context)
            return {"signals": canonical, "matches": matches, "actions": actions}

        return JSONResponse(await asyncio.to_thread(hashes_match))

    def _match_upload(
        request: Request,
        source: Any,
        dihedral: bool,
        lists: list[str],
        mode: str = "exact",
        name: str = "upload",
        context: Any = None,
    ) -> dict[str, Any]:
        from ridgeline.service.effects import Upload

        config = request.app.state.config
        options = _hash_options(request, dihedral, mode)
        held: list[bytes] = []  # a small upload's bytes, kept as it was spooled
        spooled = spooled_upload(source, config.max_upload_bytes, config.upload_kinds, held=held)
        with spooled as path:
            result = hash_with_timeout(path, options, config.request_timeout_s, partial=True)
            queries = queries_for(result.signals, dihedral=dihedral)
            explained: list[ExplainedMatch] = []
            matches = _match(request, queries, lists, explained)
            actions: list[dict[str, Any]] = []
            effects = request.app.state.effects
            if effects is not None and effects.wanted(explained):
                wants_bytes = any(m.list_id in effects.report_lists for m in explained)
                data = (held[0] if held else Path(path).read_bytes()) if wants_bytes else None
                # the signals were computed from these very bytes (the spooled file)
                upload = Upload(name, result.signals, data, hashed=data is not None)
                actions = _effects(request, explained, upload, context)
        return {
            "kind": result.kind,
            "media_type": result.media_type,
            "size": result.size,
            "signals": result.signals,
            "matches": matches,
            "actions": actions,
            "error": result.error,
        }

    @endpoint(router, "GET", "/lookup", "match", tags=["match"], response_model=LookupOut)
    async def lookup(
        request: Request,
        signal: Annotated[str, Query(description="Signal name, e.g. pdq, md5")],
        value: Annotated[str, Query(description="The hash")],
        list_: Annotated[
            list[str] | None, Query(alias="list", description="Restrict to lists")
        ] = None,
        quality: Annotated[int | None, Query(ge=0, le=100)] = None,
    ) -> JSONResponse:
        """Look one hash up by signal and value (in-memory index: no thread hop)."""
        import asyncio

        sig = get_signal(signal)
        canonical = sig.normalize(value)
        explained: list[ExplainedMatch] = []
        matches = _match(request, [MatchQuery(sig.name, canonical, quality)], list_, explained)
        body: dict[str, Any] = {"signal": sig.name, "value": canonical, "matches": matches}
        effects = request.app.state.effects
        if effects is not None and effects.wanted(explained, reports=False):
            body["actions"] = await asyncio.to_thread(_effects, request, explained)
        return JSONResponse(body)

    # --- lists and entries (curators; never providers) ------------------------------

    @endpoint(router, "GET", "/lists", "lists:read", tags=["lists"])
    def get_lists(request: Request) -> list[ListOut]:
        """All lists with their settings."""
        with request.app.state.store.session() as s:
            return [ListOut.model_validate(L.list_to_json(hl)) for hl in L.list_lists(s)]

    @endpoint(router, "POST", "/lists", "lists:write", tags=["lists"], status_code=201)
    def post_list(request: Request, body: ListIn) -> ListCreated:
        """Create a list; `warnings` names thresholds above their signal's safe range."""
        warnings = L.threshold_warnings(body.thresholds)  # 400 out of bounds
        with request.app.state.store.session() as s:
            hl = L.create_list(
                s,
                body.name,
                purpose=body.purpose,
                signals=body.signals,
                thresholds=body.thresholds,
                description=body.description,
                owner=body.owner,
                review_quorum=body.review_quorum,
                actor=_actor(request),
            )
            return ListCreated.model_validate({**L.list_to_json(hl), "warnings": warnings})

    @endpoint(router, "GET", "/lists/{name}", "lists:read", tags=["lists"])
    def get_one_list(request: Request, name: str) -> ListOut:
        """One list's settings."""
        with request.app.state.store.session() as s:
            return ListOut.model_validate(L.list_to_json(L.get_list(s, name)))

    @endpoint(router, "GET", "/lists/{name}/entries", "lists:read", tags=["lists"])
    def get_entries(
        request: Request,
        name: str,
        after_id: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        status: str | None = None,
    ) -> EntriesPage:
        """A page of a list's entries (page on with `after_id`)."""
        with request.app.state.store.session() as s:
            entries = L.list_entries(
                s, L.get_list(s, name), status=status, after_id=after_id, limit=limit
            )
            rows = [EntryOut.model_validate(L.entry_to_json(e)) for e in entries]
        return EntriesPage(entries=rows, next_after_id=rows[-1].id if len(rows) == limit else None)

    @endpoint(
        router, "POST", "/lists/{name}/entries", "lists:write", tags=["lists"], status_code=201
    )
    def post_entry(request: Request, name: str, body: EntryIn) -> EntryOut:
        """Add an entry to list `name`; it is matchable in every worker within about a second.

        The body gives the entry's hashes by signal and its classifications as
        `{scheme, label}` objects; the response is the stored entry (`id`, `status`,
        `signals`, `classifications`, provenance). Lists with a review policy make it
        `pending` until reviewed.
        """
        with request.app.state.store.session() as s:
            entry = L.add_entry(
                s,
                L.get_list(s, name),
                body.signals,
                classifications=[c.model_dump() for c in body.classifications],
                source=body.source,
                note=body.note,
                actor=_actor(request),
                qualities=body.qualities or None,
            )
            out = EntryOut.model_validate(L.entry_to_json(entry))
        matcher: Matcher | None = request.app.state.matcher
        if matcher is not None:
            matcher.refresh()
        return out

    @endpoint(router, "GET", "/entries/{entry_id}", "lists:read", tags=["lists"])
    def get_entry(request: Request, entry_id: int) -> EntryOut:
        """One entry with its hashes, classifications and provenance."""
        with request.app.state.store.session() as s:
            return EntryOut.model_validate(L.entry_to_json(L.get_entry(s, entry_id)))

    @endpoint(router, "POST", "/entries/{entry_id}/enabled", "lists:write", tags=["lists"])
    def set_enabled(request: Request, entry_id: int, body: EnabledIn) -> EntryOut:
        """Enable or disable an entry (a disable may expire at `until`)."""
        until = parse_iso(body.until) if body.until else None
        with request.app.state.store.session() as s:
            entry = L.set_entry_enabled(
                s,
                L.get_entry(s, entry_id),
                body.enabled,
                until=until,
                actor=_actor(request),
                reason=body.reason,
            )
            return EntryOut.model_validate(L.entry_to_json(entry))

    @endpoint(router, "DELETE", "/entries/{entry_id}", "lists:write", tags=["lists"])
    def remove_entry(request: Request, entry_id: int, reason: str | None = None) -> EntryOut:
        """Delete (tombstone) an entry."""
        with request.app.state.store.session() as s:
            entry = L.delete_entry(
                s, L.get_entry(s, entry_id), actor=_actor(request), reason=reason
            )
            return EntryOut.model_validate(L.entry_to_json(entry))

    @endpoint(router, "GET", "/lists/{name}/actions", "lists:read", tags=["lists"])
    def get_actions(request: Request, name: str) -> ListActionsOut:
        """Which actions scan matches on this list fire."""
        from ridgeline.scan.actions import get_list_actions

        with request.app.state.store.session() as s:
            return ListActionsOut(list=name, actions=get_list_actions(s, name))

    @endpoint(router, "PUT", "/lists/{name}/actions", "lists:write", tags=["lists"])
    def put_actions(request: Request, name: str, body: ActionsIn) -> ListActionsOut:
        """Set the actions (flag, quarantine, report) matches on this list fire: in
        `scan`, and through `/v1/match` for `report` (a CyberTipline draft per hit)."""
        from ridgeline.scan.actions import set_list_actions

        with request.app.state.store.session() as s:
            actions = set_list_actions(s, name, body.actions, actor=_actor(request))
            out = ListActionsOut(list=name, actions=actions)
        effects = request.app.state.effects
        if effects is not None:
            effects.reload(force=True)
        return out

    # --- flood control ---------------------------------------------------------------

    @endpoint(router, "GET", "/flood/holds", "flood", tags=["flood"])
    def get_holds(request: Request, all: bool = False) -> list[HoldOut]:
        """Entries held by flood control."""
        with request.app.state.store.session() as s:
            holds = list_holds(s, None if all else "held")
            return [HoldOut.model_validate(hold_to_json(h)) for h in holds]

    @endpoint(router, "POST", "/flood/holds/{hold_id}/release", "flood", tags=["flood"])
    def post_release(request: Request, hold_id: int) -> HoldOut:
        """Release a hold after review."""
        with request.app.state.store.session() as s:
            return HoldOut.model_validate(hold_to_json(release_hold(s, hold_id, _actor(request))))

    # --- past scans -------------------------------------------------------------------

    @endpoint(router, "GET", "/scans", "scans", tags=["scans"])
    def get_scans(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        before_id: Annotated[int | None, Query(ge=1)] = None,
    ) -> ScansPage:
        """Scan runs, newest first (page back with `before_id`), as `ridgeline scans ls`."""
        from ridgeline.scan.runs import list_runs, run_to_json

        with request.app.state.store.session() as s:
            runs = [run_to_json(r) for r in list_runs(s, limit=limit, before_id=before_id)]
        return ScansPage.model_validate(
            {"runs": runs, "next_before_id": runs[-1]["id"] if len(runs) == limit else None}
        )

    @endpoint(router, "GET", "/scans/{run_id}", "scans", tags=["scans"])
    def get_scan(
        request: Request,
        run_id: int,
        files: Literal["all", "matches", "errors"] = "all",
        after_id: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> ScanRunDetail:
        """One run and a page of its per-file results, as `ridgeline scans show`."""
        from ridgeline.scan.runs import file_to_json, get_run, run_files, run_to_json

        with request.app.state.store.session() as s:
            run = get_run(s, run_id)
            rows = [
                file_to_json(f)
                for f in run_files(s, run, only=files, after_id=after_id, limit=limit)
            ]
            out = run_to_json(run)
        out["files"] = rows
        out["next_after_id"] = rows[-1]["id"] if len(rows) == limit else None
        return ScanRunDetail.model_validate(out)

    # --- API keys (admins) -----------------------------------------------------------

    @endpoint(router, "GET", "/keys", "keys", tags=["keys"])
    def get_keys(request: Request) -> list[KeyOut]:
        """API keys (never their secrets)."""
        with request.app.state.store.session() as s:
            return [KeyOut.model_validate(key_to_json(k)) for k in list_keys(s)]

    @endpoint(router, "POST", "/keys", "keys", tags=["keys"], status_code=201)
    def post_key(request: Request, body: KeyIn) -> NewKeyOut:
        """Create a key; the secret is in this answer only."""
        with request.app.state.store.session() as s:
            key, secret = create_key(
                s, body.name, body.role, rate_limit=body.rate_limit, agency=body.agency
            )
            return NewKeyOut.model_validate({**key_to_json(key), "key": secret})

    @endpoint(router, "DELETE", "/keys/{key_id}", "keys", tags=["keys"])
    def delete_key(request: Request, key_id: int) -> KeyOut:
        """Revoke a key (takes effect in every worker within seconds)."""
        with request.app.state.store.session() as s:
            return KeyOut.model_validate(key_to_json(revoke_key(s, key_id)))
