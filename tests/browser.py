"""Shared browser-test helpers: Debian's Chromium under Playwright, a real server.

Import the fixtures into a test module (`from browser import browser, context`).
One Chromium runs per test session; each test gets a fresh context (cookies). The
browser is never downloaded: it is /usr/bin/chromium (`scripts/ensure-chromium`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from conftest import Served, free_port

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots land here (gitignored): $RIDGELINE_TEST_ARTIFACTS or tests/artifacts.
ARTIFACTS = Path(os.environ.get("RIDGELINE_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")


#: The one Playwright and Chromium of the process. Each test module that imports the
#: `browser` fixture gets a fixture definition of its own (session-scoped, but one per
#: module), and a second `sync_playwright()` while the first runs fails ("Sync API
#: inside the asyncio loop"): so every definition shares this one, closed by the last.
_shared: dict[str, Any] = {"users": 0}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium for the whole session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium (make test does)")
    if _shared["users"] == 0:
        p = sync_playwright().start()
        _shared["playwright"] = p
        _shared["browser"] = p.chromium.launch(
            executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True
        )
    _shared["users"] += 1
    try:
        yield _shared["browser"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared.pop("browser").close()
            _shared.pop("playwright").stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies) for one test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


@contextlib.contextmanager
def running_server(*args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`ridgeline ARGS...` ("{port}" becomes a free port) until /readyz answers; killed
    with its process group afterwards. For fixtures of any scope (the conftest
    `serve_process` fixture is per test)."""
    port = free_port()
    argv = [str(Path(sys.executable).parent / "ridgeline")]
    argv += [a.replace("{port}", str(port)) for a in args]
    with tempfile.NamedTemporaryFile(prefix="ridgeline-ui-", suffix=".log", delete=False) as log:
        name = log.name
    with open(name, "wb") as log_file:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, Path(name).read_text()
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        yield Served(proc, port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(name)


def login_with_key(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in with key").click()
    page.wait_for_url(f"{base}/ui/")


def login_with_password(page: Page, base: str, name: str, password: str) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(f"{base}/ui/")


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG to the artefacts folder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [v for v in violations if v.get("impact") in ("serious", "critical")]


def csp_errors(page: Page) -> list[str]:
    """Attach before navigating: console messages that report a CSP refusal."""
    found: list[str] = []
    page.on(
        "console",
        lambda m: found.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return found
