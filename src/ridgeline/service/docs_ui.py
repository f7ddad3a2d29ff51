"""`/docs` (Swagger UI) and `/redoc` served from files inside the installed packages.

FastAPI's defaults load Swagger UI and ReDoc from a CDN, so the pages are blank
offline or behind a strict egress policy. The assets come from the `fastapi-offline`
package (Swagger UI, ReDoc and a favicon, vendored there) and are served under
`/docs/static/`; the pages reference nothing outside this server.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC_URL = "/docs/static"


def static_dir() -> str:
    """The folder of vendored assets inside the `fastapi_offline` package."""
    return str(files("fastapi_offline") / "static")


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, `/redoc` and `/docs/static/*` (app must be made with docs_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} API"

    async def swagger(_: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.png",
        )

    async def redoc(_: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=title,
            redoc_js_url=f"{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.router.routes.insert(0, Mount(STATIC_URL, StaticFiles(directory=static_dir())))
    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
