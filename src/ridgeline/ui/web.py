"""The UI's HTTP plumbing: the session gate, CSRF, security headers and page routes.

Rules this module keeps:

* Every page names one permission of `ridgeline.service.auth.POLICY` (or `SESSION`:
  any logged-in role, or `PUBLIC`), recorded in `PAGES` so a test walks them all.
* The session is checked before the request body is read (`UiGate`, as the API's
  request guard does for keys): an anonymous POST is answered 401 at once and its
  connection closed; the body caps of the guard in front still apply.
* Every state-changing request is a POST carrying the session's CSRF token.
* Every answer carries a strict Content-Security-Policy (only same-origin files: no
  inline script or style), frame-ancestors 'none', X-Frame-Options, no referrer,
  nosniff and no-store.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ridgeline.errors import BadInput, RidgelineError
from ridgeline.service.auth import POLICY
from ridgeline.ui.accounts import LiveSession, load_session

PREFIX = "/ui"
COOKIE = "rl_session"
LOGIN_COOKIE = "rl_login"
PUBLIC = "public"
#: Any logged-in role.
SESSION = "session"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

templates = Environment(
    loader=PackageLoader("ridgeline.ui", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

#: Nav items: (path, label, permission).
NAV = [
    ("/ui/", "Dashboard", SESSION),
    ("/ui/review", "Review", "review"),
    ("/ui/audits", "Audits", "audit"),
    ("/ui/lists", "Lists", "lists:read"),
    ("/ui/search", "Search", "lists:read"),
    ("/ui/scans", "Scans", "scans"),
    ("/ui/holds", "Flood holds", "flood"),
    ("/ui/quarantine", "Quarantine", "scans"),
    ("/ui/victims", "Victims", "victims"),
    ("/ui/reports", "Reports", "reports:read"),
    ("/ui/intake", "Received", "intake:read"),
    ("/ui/intake/upload", "Take in", "intake"),
    ("/ui/triage", "Triage", "triage:read"),
    ("/ui/cases", "Cases", "cases:read"),
    ("/ui/routing", "Routing", "routing:read"),
    ("/ui/le", "Agency reports", "le:read"),
]

#: The UI's own permissions beyond the API's (no API yet): victims and the indicator;
#: changing where reports go (`ridgeline routing import` and `make-available`).
UI_POLICY: dict[str, frozenset[str]] = {
    "victims": frozenset({"admin", "analyst", "law-enforcement", "curator"}),
    "routing:write": frozenset({"admin", "analyst"}),
}


def redirect(path: str) -> RedirectResponse:
    """After a POST, the page to show (303: the browser GETs it)."""
    return RedirectResponse(path, 303)


def int_field(value: str, name: str) -> int:
    """A form field that must be a whole number, refused by its name otherwise."""
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"{name} must be a whole number, not {value!r}") from None


def allowed(role: str, permission: str) -> bool:
    if permission in (PUBLIC, SESSION):
        return True
    roles = POLICY.get(permission) or UI_POLICY.get(permission)
    if roles is None:
        raise KeyError(f"no policy for permission {permission!r}")
    return role in roles


@dataclass
class Ctx:
    """What a page handler gets: the request, the session, the form and the service state."""

    request: Request
    session: LiveSession
    state: Any
    form: FormData | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def can(self, permission: str) -> bool:
        return allowed(self.session.role, permission)

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def render(self, template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, template, self.session, http_status=http_status, **values)


def render(
    request: Request,
    template: str,
    session: LiveSession | None,
    *,
    http_status: int = 200,
    **values: Any,
) -> HTMLResponse:
    nav = [
        (path, label)
        for path, label, perm in NAV
        if session is not None and allowed(session.role, perm)
    ]
    html = templates.get_template(template).render(
        session=session,
        csrf=session.csrf if session else "",
        nav=nav,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, http_status)


@dataclass(frozen=True)
class Page:
    path: str
    methods: tuple[str, ...]
    permission: str
    handler: Callable[..., Any]


#: Every UI route with its permission (the permission test walks these).
PAGES: list[Page] = []


def page(
    path: str, permission: str, *, methods: tuple[str, ...] = ("GET",)
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a page handler (a plain function, run in the thread pool)."""
    if permission not in (PUBLIC, SESSION):
        allowed("admin", permission)  # KeyError for a permission without a policy

    def register(fn: Callable[..., Response]) -> Callable[..., Response]:
        PAGES.append(Page(path, methods, permission, fn))
        return fn

    return register


def error_page(request: Request, session: LiveSession | None, exc: RidgelineError) -> Response:
    return render(
        request,
        "error.html",
        session,
        http_status=exc.http_status,
        code=exc.code,
        message=str(exc),
    )


def endpoint(state: Any, item: Page) -> Callable[[Request], Any]:
    """The Starlette endpoint for a page: role check, CSRF check, then the handler."""

    async def run(request: Request) -> Response:
        session: LiveSession | None = request.scope.get("state", {}).get("ui_session")
        if item.permission == PUBLIC:
            public_form = (
                await request.form(max_files=0, max_fields=20)
                if (request.method == "POST")
                else None
            )
            return await run_in_threadpool(item.handler, request, state, public_form)
        assert session is not None  # the gate let no anonymous request through
        if not allowed(session.role, item.permission):
            from ridgeline.errors import Forbidden

            return error_page(
                request,
                session,
                Forbidden(f"role {session.role!r} may not use this page (needs {item.permission})"),
            )
        form = None
        if request.method == "POST":
            form = await request.form(max_files=1, max_fields=50)
            token = form.get("csrf")
            if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
                from ridgeline.errors import Forbidden

                return error_page(
                    request, session, Forbidden("missing or wrong CSRF token: reload the page")
                )
        ctx = Ctx(request, session, state, form, dict(request.path_params))
        try:
            return await run_in_threadpool(item.handler, ctx)
        except RidgelineError as exc:
            return error_page(request, session, exc)
        finally:
            if form is not None:
                await form.close()

    return run


def relative(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def is_public(path: str) -> bool:
    return path == "/login" or path.startswith("/static/")


class UiGate:
    """Security headers on every answer; the session looked up before the body is read."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        if not is_public(relative(scope)):
            request = Request(scope)
            token = request.cookies.get(COOKIE, "")
            live = None
            if token:
                live = await run_in_threadpool(self._load, token)
            if live is None:
                await self._refuse(scope, secured)
                return
            scope.setdefault("state", {})["ui_session"] = live
        await self.app(scope, receive, secured)

    def _load(self, token: str) -> LiveSession | None:
        with self.state.store.session() as s:
            return load_session(s, token)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if scope["method"] in ("GET", "HEAD"):
            response: Response = RedirectResponse(f"{PREFIX}/login", 303)
        else:
            response = HTMLResponse(
                "<!doctype html><title>Log in</title><p>Your session has ended: "
                '<a href="/ui/login">log in</a>.</p>',
                401,
                headers={"connection": "close"},  # the body is never read
            )
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def new_token() -> str:
    return secrets.token_urlsafe(24)
