"""`/submit-hashes/`: the public self-submission page, its files and its three calls.

No key: the person has none, and must not need one. What stands in for the key's
protections instead:

* the request guard caps these bodies at `SUBMIT_BODY_CAP` (a few KiB of hashes, never
  a file) before any route reads them, and refuses multipart bodies outright;
* a token bucket per network address (`ServiceConfig.selfsubmit_rate` requests a
  second, all workers together) on every call, and the per-submitter window limits of
  `ridgeline.submit.Limits` counted in the store (all workers together);
* the address itself is never stored: only `submit.pseudonym(secret, address)`.

The page is sent with a Content-Security-Policy that lets it talk only to this server.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ConfigDict, Field
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ridgeline.errors import BadInput, InvalidHash, RateLimited
from ridgeline.matching import Matcher
from ridgeline.service.auth import PERMISSION_KEY, PUBLIC
from ridgeline.service.ratelimit import BucketTable, process_table
from ridgeline.service.schemas import Body, ErrorOut
from ridgeline.submit import (
    Item,
    Limits,
    allow_list_check,
    case_status,
    normalize_item,
    pseudonym,
    submit,
    withdraw,
)
from ridgeline.submit.page import CONTENT_SECURITY_POLICY, choose_language, render_page, static_dir

PREFIX = "/submit-hashes"
API_PREFIX = f"{PREFIX}/api/"
#: Largest body the submission calls take: 50 items of hashes is under 8 KiB.
SUBMIT_BODY_CAP = 32 << 10
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class ItemIn(Body):
    """The hashes of one file, computed in the browser."""

    model_config = ConfigDict(extra="forbid")

    md5: str | None = Field(default=None, max_length=64, description="MD5 of the file")
    pdq: str | None = Field(default=None, max_length=80, description="PDQ of the image")
    quality: int | None = Field(default=None, description="PDQ quality, 0-100")


class SubmitIn(Body):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(max_length=1000, description="One object per file")
    case_number: str | None = Field(
        default=None, max_length=80, description="The person's case number; omitted: a new one"
    )


class CaseIn(Body):
    model_config = ConfigDict(extra="forbid")

    case_number: str = Field(max_length=80)


class ItemResultOut(Body):
    index: int
    outcome: str = Field(description="added, already-submitted or refused")
    reason: str | None = Field(description="allow-listed, low-quality or low-quality-pdq-dropped")


class SubmitOut(Body):
    case_number: str
    new_case: bool
    added: int
    items: list[ItemResultOut]


class CaseOut(Body):
    status: str = Field(description="active or withdrawn")
    active_items: int
    created_at: str
    withdrawn_at: str | None
    withdrawn_now: int


def _items(raw: list[ItemIn]) -> list[Item]:
    out = []
    for n, item in enumerate(raw, 1):
        try:
            out.append(normalize_item(item.md5, item.pdq, item.quality))
        except (BadInput, InvalidHash) as exc:
            raise BadInput(f"item {n}: {exc}") from None
    return out


#: Set in every self-submission bucket id, above any API key's id, so that addresses and
#: keys can share the workers' one table without taking each other's tokens (ids stay
#: below 2**53: exact as the table's doubles).
_ADDRESS_BIT = 1 << 50


class SubmitGate:
    """Per-address request limits and the pseudonym of the address (one per app).

    The buckets are the workers' shared table when the server runs several (an address
    gets `rate` a second from the whole server, not from each worker), else local."""

    def __init__(self, secret: bytes, rate: float, table: BucketTable | None = None) -> None:
        self.secret = secret
        self.rate = rate
        self.table = table or process_table() or BucketTable.local()

    def submitter(self, request: Request) -> str:
        """The caller's pseudonym, after taking a token from its bucket."""
        address = request.client.host if request.client else "unknown"
        name = pseudonym(self.secret, address)
        slot = int.from_bytes(hashlib.sha256(name.encode()).digest()[:6], "big") | _ADDRESS_BIT
        wait = self.table.take(slot, self.rate, time.monotonic())
        if wait > 0:
            raise RateLimited(
                f"too many requests from this connection; please wait {wait:.0f} seconds", wait
            )
        return name


def register_submit_routes(app: FastAPI, *, secret: bytes, rate: float, limits: Limits) -> None:
    """Add the page, its static files and the submission calls to `app`."""
    gate = SubmitGate(secret, rate)
    public: dict[str, Any] = {"openapi_extra": {PERMISSION_KEY: PUBLIC}}
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut},
        413: {"model": ErrorOut}, 429: {"model": ErrorOut},
    }  # fmt: skip
    app.router.routes.insert(0, Mount(f"{PREFIX}/static", StaticFiles(directory=static_dir())))

    async def page_redirect(_: Request) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    app.add_route(PREFIX, page_redirect, include_in_schema=False)

    @app.get(
        f"{PREFIX}/",
        tags=["self-submission"],
        response_class=HTMLResponse,
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
        **public,
    )
    def page(request: Request, lang: str | None = None) -> HTMLResponse:
        """The self-submission page (English or Spanish: `?lang=en|es`, else the
        browser's Accept-Language)."""
        code = choose_language(lang, request.headers.get("accept-language"))
        return HTMLResponse(render_page(code), headers={**_PAGE_HEADERS, "Content-Language": code})

    @app.post(
        f"{API_PREFIX}submissions",
        tags=["self-submission"],
        response_model=SubmitOut,
        responses=errors,
        **public,
    )
    def submissions(body: SubmitIn, request: Request) -> JSONResponse:
        """Put the hashes of the person's files on the self-submitted list under a case
        number (a new one unless `case_number` is given)."""
        submitter = gate.submitter(request)
        items = _items(body.items)
        matcher: Matcher | None = request.app.state.matcher
        store = request.app.state.store
        with store.session() as s:
            result = submit(
                s,
                items,
                submitter=submitter,
                case_number=body.case_number,
                limits=limits,
                allow_listed=allow_list_check(matcher) if matcher is not None else None,
            )
        if matcher is not None:
            matcher.refresh()  # matchable in this worker now; the others within a second
        return JSONResponse(result.to_json(), headers={"Cache-Control": "no-store"})

    @app.post(
        f"{API_PREFIX}status",
        tags=["self-submission"],
        response_model=CaseOut,
        responses=errors,
        **public,
    )
    def status(body: CaseIn, request: Request) -> JSONResponse:
        """The state of a case: active with how many files, or withdrawn."""
        gate.submitter(request)
        with request.app.state.store.session() as s:
            found = case_status(s, body.case_number)
        return JSONResponse(found.to_json(), headers={"Cache-Control": "no-store"})

    @app.post(
        f"{API_PREFIX}withdraw",
        tags=["self-submission"],
        response_model=CaseOut,
        responses=errors,
        **public,
    )
    def withdraw_case(body: CaseIn, request: Request) -> JSONResponse:
        """Withdraw every hash of a case (it reaches providers as deletions)."""
        gate.submitter(request)
        with request.app.state.store.session() as s:
            found = withdraw(s, body.case_number)
        matcher: Matcher | None = request.app.state.matcher
        if matcher is not None:
            matcher.refresh()
        return JSONResponse(found.to_json(), headers={"Cache-Control": "no-store"})
