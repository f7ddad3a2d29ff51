"""The UI mounted on the service app: `ridgeline serve` runs `app_from_env` here.

`ui` sits above `service` in the layers: the API knows nothing of the UI, and the UI
reuses the API's state (store, key verifier, matcher, config) and its POLICY.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ridgeline.service.app import ServiceConfig, create_app
from ridgeline.store import Store
from ridgeline.ui import clearinghouse, pages  # noqa: F401  (registers the pages)
from ridgeline.ui.accounts import LoginThrottle
from ridgeline.ui.web import PAGES, PREFIX, UiGate, endpoint

__all__ = ["PAGES", "app_from_env", "create_app_with_ui", "mount_ui", "ui_app"]


def ui_app(state: Any) -> UiGate:
    """The UI as an ASGI app over the service's state (sessions checked first)."""
    state.ui_throttle = LoginThrottle()
    static = StaticFiles(directory=str(files("ridgeline.ui") / "static"))
    routes: list[Any] = [Route(p.path, endpoint(state, p), methods=list(p.methods)) for p in PAGES]
    routes.append(Mount("/static", app=static, name="static"))
    return UiGate(Starlette(routes=routes), state)


def mount_ui(app: FastAPI) -> FastAPI:
    """Serve the UI under `/ui/` of the service app (same workers, same state)."""
    app.mount(PREFIX, ui_app(app.state))
    return app


def create_app_with_ui(config: ServiceConfig | None = None, store: Store | None = None) -> FastAPI:
    return mount_ui(create_app(config, store))


def app_from_env() -> FastAPI:
    """uvicorn factory for `ridgeline serve` workers: the API plus the UI."""
    return mount_ui(create_app(ServiceConfig.from_env()))
