"""The FastAPI application: configuration, error mapping, metrics, health, routes.

`create_app(config)` builds an app over one store and one matcher. `ridgeline serve`
runs `app_from_env` in each uvicorn worker; every worker opens the shared
memory-mapped index and polls the change feed in a background thread, so an entry
added through any worker is matchable in all of them within about a second.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ridgeline import __version__
from ridgeline.errors import (
    IndexStale,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    NotReady,
    RidgelineError,
    TooLarge,
)
from ridgeline.hashing import tune_malloc
from ridgeline.matching import Matcher
from ridgeline.service import uploads
from ridgeline.service.accesslog import AccessLog, route_template
from ridgeline.service.auth import PUBLIC
from ridgeline.service.disclosure import Disclosure
from ridgeline.service.docs_ui import install_docs
from ridgeline.service.fastpath import FastLookup
from ridgeline.service.guard import RequestGuard
from ridgeline.service.keys import KeyVerifier
from ridgeline.service.ratelimit import RateLimiter, process_table
from ridgeline.service.schemas import ErrorOut, HealthOut, ReadyOut
from ridgeline.service.workers import ENV_WORKER, MULTIPROC_ENV
from ridgeline.store import Store

ENV_CONFIG = "RIDGELINE_SERVICE_CONFIG"
#: malloc arenas per worker (glibc's default is 8 per core).
MALLOC_ARENAS = 4


@dataclass
class ServiceConfig:
    """Limits and settings of one API server (all workers share it through the env)."""

    db: str | None = None
    index_dir: str | None = None
    max_upload_bytes: int = 50 << 20
    #: Cap on every other request body (JSON): counted as it streams, chunked or not.
    max_json_bytes: int = 4 << 20
    #: A request body must arrive within this many seconds (slow clients get 408).
    body_timeout_s: float = 30.0
    max_pixels: int = 50_000_000
    #: Content kinds uploads may be (sniffed from the bytes, not the file name).
    upload_kinds: list[str] = field(default_factory=lambda: ["image", "video", "file"])
    request_timeout_s: float = 30.0
    #: Requests per second per key unless the key sets its own limit.
    default_rate_limit: float = 100.0
    #: Hosts `/v1/match` may fetch `url`s from; empty means never fetch.
    fetch_allow_hosts: list[str] = field(default_factory=list)
    #: How often each worker polls the change feed (hot updates).
    refresh_interval_s: float = 0.25
    #: `/readyz` fails when the index is older than this.
    ready_max_age_s: float = 5.0
    #: Key file for decrypting review media (else RIDGELINE_EVIDENCE_KEY[_FILE]).
    evidence_key_file: str | None = None
    #: How long a verified key is trusted before it is checked again (revocation delay).
    key_cache_s: float = 5.0
    #: What providers may learn from near matches (`ridgeline.service.disclosure`): the
    #: blurred outer share of a threshold, the probe radius (share of the threshold),
    #: probe hits allowed per key and entry per window, and the HMAC secret shared by
    #: all workers (`serve` draws one; empty: a random one for this process).
    disclosure_jitter: float = 0.25
    probe_radius: float = 0.15
    probe_budget: int = 16
    probe_window_s: float = 86_400.0
    disclosure_secret: str = ""
    #: One JSON line per request on stderr (`ridgeline.service.accesslog`).
    access_log: bool = True
    #: Match webhooks (`ridgeline.webhooks`): each worker's delivery thread looks for due
    #: deliveries this often (and at once after a request queued one), and retries a
    #: failing one `webhook_max_attempts` times, `webhook_base_delay_s` doubling up to
    #: `webhook_max_delay_s`, before it is a dead letter.
    webhook_poll_s: float = 1.0
    webhook_max_attempts: int = 6
    webhook_base_delay_s: float = 30.0
    webhook_max_delay_s: float = 3600.0
    webhook_timeout_s: float = 10.0
    #: Batch report drafts of one file once this many users' drafts carry it
    #: (`batchedReport`, VIRAL_POTENTIAL_MEME); None: never.
    viral_users: int | None = None

    def webhook_policy(self) -> Any:
        from ridgeline.webhooks import RetryPolicy

        return RetryPolicy(
            max_attempts=self.webhook_max_attempts,
            base_delay_s=self.webhook_base_delay_s,
            max_delay_s=self.webhook_max_delay_s,
            timeout_s=self.webhook_timeout_s,
        )

    #: Seconds between checks for live exchange sources due a fetch (0: no scheduled
    #: fetches). Worker 0 alone runs them, in a thread of its own.
    exchange_interval_s: float = 0.0
    #: The public self-submission page and calls (`/submit-hashes/`, docs/self-submission.md).
    selfsubmit: bool = True
    #: Its requests per second per network address (all workers together; bursts of 2 s).
    selfsubmit_rate: float = 1.0
    #: Files per submission, and per submitter and day (submissions and files).
    selfsubmit_max_items: int = 50
    selfsubmit_window_batches: int = 10
    selfsubmit_window_items: int = 200
    #: Key of the submitter pseudonyms, shared by all workers (`serve` draws one; empty:
    #: a random one for this process).
    selfsubmit_secret: str = ""

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServiceConfig:
        raw = os.environ.get(ENV_CONFIG)
        return cls(**json.loads(raw)) if raw else cls()


class Metrics:
    """Prometheus metrics in a registry of the app's own (one per app, not global)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ridgeline_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ridgeline_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.matches = Counter(
            "ridgeline_matches_total",
            "Matches returned, by signal.",
            ["signal"],
            registry=self.registry,
        )
        self.index_age = Gauge(
            "ridgeline_index_age_seconds",
            "Seconds since the index was last synced with the change feed (worst worker).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.index_synced = Gauge(
            "ridgeline_index_synced_timestamp_seconds",
            "When the index was last synced with the change feed (Unix time, oldest worker).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )

    def synced(self, age: float) -> None:
        """Record a successful sync `age` seconds ago (called by the refresher)."""
        self.index_age.set(age)
        self.index_synced.set(time.time() - age)

    def exposition(self) -> bytes:
        """The text format: this worker's metrics, or every live worker's when the server
        runs several (`PROMETHEUS_MULTIPROC_DIR`, set by `ridgeline serve --workers N`)."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every request by its route template (plain ASGI: low overhead)."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, routes: Callable[[], Sequence[Any]] = list
    ) -> None:
        self.app = app
        self.metrics = metrics
        #: The app's routes: a mount sets no `scope["route"]`, so its prefix is found here.
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            label = route_template(scope, self.routes(), root_path)
            self.metrics.requests.labels(label, scope["method"], str(status["code"])).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - start)


def error_response(exc: RidgelineError) -> JSONResponse:
    """The JSON answer to an error: its own status, code, message and headers."""
    return JSONResponse(
        exc.to_json(),
        exc.http_status,
        headers=dict(exc.headers) or None,
    )


#: Starlette's own HTTP errors (no route, wrong method, ...) as Ridgeline errors; any
#: other status it raises is answered as a bad request (4xx) or an internal error.
_HTTP_ERRORS: dict[int, type[RidgelineError]] = {
    400: InvalidRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: TooLarge,
}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RidgelineError)
    async def ridgeline_error(_: Request, exc: RidgelineError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return error_response(InvalidRequest(problems or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        fallback = InvalidRequest if exc.status_code < 500 else RidgelineError
        kind = _HTTP_ERRORS.get(exc.status_code, fallback)
        return error_response(kind(str(exc.detail)))

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def unstorable(_: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot hold (too long, NUL, out of range) is the caller's
        # error; the request guard and the input models refuse most of them earlier.
        return error_response(InvalidRequest("a value does not fit its database column"))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return error_response(RidgelineError(f"internal error ({type(exc).__name__})"))


#: glibc's mallopt parameter number for the most malloc arenas (threads share them).
_M_ARENA_MAX = -8


def _libc() -> Any:
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas: by default every thread that hashes an upload may get
    one (8 per core), and each keeps its freed image buffers (`tune_malloc`)."""
    try:
        return bool(_libc().mallopt(_M_ARENA_MAX, arenas) == 1)
    except (OSError, AttributeError):
        return False


def trim_malloc() -> bool:
    """Give freed heap memory back to the OS (all arenas); False where not glibc."""
    try:
        return bool(_libc().malloc_trim(0))
    except (OSError, AttributeError):
        return False


class Refresher:
    """What this worker does after each index refresh: reload flood holds, re-check keys,
    record the sync in the metrics, and trim the C heap once no upload has been hashed
    for `trim_after_s`. The index owns the refresh thread and its timing.

    `tune_malloc` keeps freed image buffers for the next upload (fast under load);
    without a trim a burst of large uploads left the worker hundreds of MB larger for
    good (170 -> 662 MB over three bursts).
    """

    trim_after_s = 5.0

    def __init__(
        self,
        matcher: Matcher,
        verifier: KeyVerifier | None = None,
        on_synced: Callable[[float], None] | None = None,
        effects: Any = None,
    ) -> None:
        self.matcher = matcher
        #: Which lists have webhooks or report actions (`service.effects`), re-read here.
        self.effects = effects
        #: Called with the index age after each successful refresh (metrics).
        self.on_synced = on_synced
        #: Cached API keys are re-checked this often (revocations take effect within it).
        self.verifier = verifier
        self.key_interval = min(0.5, verifier.cache_seconds / 2) if verifier else 0.0
        self._keys_checked = 0.0
        self._trimmed_at = time.monotonic()

    def __call__(self, changes: int) -> None:
        """Index listener, run after every refresh."""
        self.reload_held()
        if self.effects is not None:
            self.effects.reload()
        now = time.monotonic()
        if self.verifier is not None and now - self._keys_checked >= self.key_interval:
            self.verifier.revalidate(self.matcher.store.session)
            self._keys_checked = now
        if self.on_synced is not None:
            self.on_synced(self.matcher.age())
        hashed = uploads.last_hashed()
        if hashed > self._trimmed_at and now - hashed >= self.trim_after_s:
            self._trimmed_at = now
            trim_malloc()

    def reload_held(self) -> None:
        from ridgeline.scan.flood import held_entry_ids

        with self.matcher.store.session() as s:
            self.matcher.held = held_entry_ids(s)


class ServiceApp(FastAPI):
    """The FastAPI app, with the lookup fast path in front of its middleware stack."""

    fast_lookup: FastLookup | None = None
    #: The JSON-lines access log around everything, fast path included (None: off).
    access_log: AccessLog | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.access_log is not None and scope["type"] == "http":
            await self.access_log(scope, receive, send)
            return
        await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_lookup
        if fast is not None and fast.handles(scope) and await fast.answer(scope, send):
            return
        await super().__call__(scope, receive, send)


def create_app(config: ServiceConfig | None = None, store: Store | None = None) -> FastAPI:
    """Build the API over `store` (or the one `config.db` names)."""
    config = config or ServiceConfig()
    store = store or Store.open(config.db)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_malloc()
        limit_malloc_arenas(MALLOC_ARENAS)
        # The index's thread polls the change feed; requests never do (unless it stalls).
        matcher = Matcher.open(store, config.index_dir, refresh_interval=config.refresh_interval_s)
        matcher.preload()  # map every signal's index before serving (no first-request stall)
        from ridgeline.service.effects import MatchEffects
        from ridgeline.webhooks import Deliverer

        deliverer = Deliverer(store, config.webhook_policy(), poll_s=config.webhook_poll_s)
        effects = MatchEffects(
            store, config.evidence_key_file, deliverer, viral_users=config.viral_users
        )
        effects.prepare()  # before any thread but this one touches the ORM
        # series and identification on every match; sightings written in the background
        from ridgeline.victims.annotate import SeriesAnnotator

        annotator = SeriesAnnotator(store)
        matcher.annotator, matcher.source = annotator, "service"
        refresher = Refresher(
            matcher, app.state.verifier, on_synced=metrics.synced, effects=effects
        )
        refresher.reload_held()
        matcher.index.add_listener(refresher)
        app.state.effects = effects
        app.state.matcher = matcher
        matcher.index.start_refresh()
        deliverer.start()
        scheduler = None
        if config.exchange_interval_s > 0 and os.environ.get(ENV_WORKER, "0") == "0":
            from ridgeline.exchange.live import Scheduler

            scheduler = Scheduler(store, config.exchange_interval_s)
            scheduler.start()
        app.state.exchange_scheduler = scheduler
        gc.freeze()  # start-up objects live forever: keep them out of every GC pass
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            matcher.index.stop_refresh()
            deliverer.stop()
            annotator.close()

    app = ServiceApp(
        title="Ridgeline",
        version=__version__,
        description="Hash, match and look up known CSAM by its fingerprints; manage lists.",
        lifespan=lifespan,
        docs_url=None,  # served from vendored files, not a CDN (service/docs_ui.py)
        redoc_url=None,
    )
    install_docs(app)
    app.state.config = config
    app.state.store = store
    app.state.metrics = metrics
    app.state.verifier = KeyVerifier(config.key_cache_s)
    app.state.disclosure = Disclosure(
        bytes.fromhex(config.disclosure_secret) if config.disclosure_secret else os.urandom(32),
        jitter=config.disclosure_jitter,
        probe_radius=config.probe_radius,
        probe_budget=config.probe_budget,
        probe_window_s=config.probe_window_s,
    )
    app.state.limiter = RateLimiter(config.default_rate_limit, process_table())
    app.state.matcher = None
    app.state.effects = None
    app.fast_lookup = FastLookup(app.state)
    if config.access_log:
        app.access_log = AccessLog(app._dispatch, app.state, routes=lambda: app.routes)
    _install_error_handlers(app)
    from ridgeline.service.routes_submit import API_PREFIX, SUBMIT_BODY_CAP

    app.add_middleware(
        RequestGuard,
        state=app.state,
        max_upload_bytes=config.max_upload_bytes,
        max_json_bytes=config.max_json_bytes,
        body_timeout_s=config.body_timeout_s,
        routes=lambda: app.routes,
        capped=[(API_PREFIX, SUBMIT_BODY_CAP)],
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=lambda: app.routes)

    public = {"openapi_extra": {"x-ridgeline-permission": PUBLIC}}

    @app.get("/healthz", tags=["health"], **public)  # type: ignore[arg-type]
    def healthz() -> HealthOut:
        """The process is up (says nothing about the index); `worker` says which answered."""
        return HealthOut(status="ok", worker=int(os.environ.get(ENV_WORKER, "0")))

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ReadyOut,
        responses={503: {"model": ErrorOut, "description": "Not ready or stale"}},
        **public,  # type: ignore[arg-type]
    )
    def readyz(request: Request) -> JSONResponse:
        """Ready when the index is loaded and fresh."""
        matcher: Matcher | None = request.app.state.matcher
        if matcher is None:
            return error_response(NotReady("index not loaded"))
        age = matcher.age()
        metrics.index_age.set(age)
        if age > config.ready_max_age_s:
            return error_response(IndexStale(f"index last synced {age:.1f}s ago"))
        return JSONResponse({"status": "ready", "index_age_s": round(age, 3)})

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={
            200: {
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                "description": "Prometheus text format",
            }
        },
        **public,  # type: ignore[arg-type]
    )
    def metrics_endpoint(request: Request) -> Response:
        """Prometheus metrics (of all workers together when there are several)."""
        matcher: Matcher | None = request.app.state.matcher
        if matcher is not None:
            metrics.synced(matcher.age())
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    from ridgeline.service.routes import register_routes
    from ridgeline.service.routes_intake import register_intake_routes
    from ridgeline.service.routes_reports import register_report_routes
    from ridgeline.service.routes_triage import register_triage_routes

    register_routes(app)
    register_report_routes(app)
    register_triage_routes(app)
    register_intake_routes(app)
    if config.selfsubmit:
        from ridgeline.service.routes_submit import register_submit_routes
        from ridgeline.submit import Limits

        register_submit_routes(
            app,
            secret=bytes.fromhex(config.selfsubmit_secret)
            if config.selfsubmit_secret
            else os.urandom(32),
            rate=config.selfsubmit_rate,
            limits=Limits(
                max_items=config.selfsubmit_max_items,
                max_batches=config.selfsubmit_window_batches,
                max_window_items=config.selfsubmit_window_items,
            ),
        )
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for `ridgeline serve` workers (config in RIDGELINE_SERVICE_CONFIG)."""
    return create_app(ServiceConfig.from_env())


Handler = Callable[..., Any]
