"""Shared fixtures: a real SQLite file and a real PostgreSQL database for store tests,
and real `ridgeline serve` processes for the tests of serving.

`make test` runs pytest under scripts/with-postgres, which sets RIDGELINE_TEST_PG_URL
to a running server (the machine's own, or a private one it starts). Each test run
creates its own database on that server and drops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ridgeline.config import resolve_db_url
from ridgeline.store import Store

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference`: benign PDQ/vPDQ conformance data beside the checkout."""
    if not REFERENCE.is_dir():
        pytest.fail(f"reference data not found at {REFERENCE} (../shared must sit beside the repo)")
    return REFERENCE


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "ridgeline_test") -> Iterator[str]:
    """A new, empty PostgreSQL database of its own (RIDGELINE_TEST_PG_URL's server),
    dropped afterwards; skips when no server is configured."""
    base = os.environ.get("RIDGELINE_TEST_PG_URL")
    if not base:
        pytest.skip("RIDGELINE_TEST_PG_URL not set: run the suite through `make test`")
    admin_url = make_url(resolve_db_url(base))
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session."""
    with fresh_pg_database() as url:
        yield url


def _reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store: a real SQLite file, then a real PostgreSQL database."""
    if request.param == "sqlite":
        s = Store.open(tmp_path / "ridgeline.db")
    else:
        url = request.getfixturevalue("pg_server_url")
        _reset_postgres(url)
        s = Store.open(url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def pg_store(pg_server_url: str) -> Iterator[Store]:
    """A migrated, empty PostgreSQL store only (for tests about PostgreSQL itself)."""
    _reset_postgres(pg_server_url)
    s = Store.open(pg_server_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store only (for tests that are not about the backend)."""
    s = Store.open(tmp_path / "ridgeline.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A fresh, initialised SQLite database for CLI tests (`--db`), as `db init` leaves it:
    only `db init` and `lists create` may create a database from the CLI."""
    path = tmp_path / "cli.db"
    Store.open(path).close()
    return str(path)


@dataclass
class Served:
    """A `ridgeline serve` process started by the `serve_process` fixture, ready to answer."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _port_block() -> Iterator[int]:
    """This test process's own ports: a block of 1,000 per pytest-xdist worker, below
    Linux's ephemeral range, walked from a random start. A port the kernel hands out
    (bind to 0) could be handed to another worker before our server binds it, and that
    worker's server would then answer our /readyz."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = 20_000 + 1_000 * (int(worker) % 12 if worker.isdigit() else 0)
    start = int.from_bytes(os.urandom(2)) % 1_000
    while True:
        for offset in range(1_000):
            yield first + (start + offset) % 1_000


_PORTS = _port_block()


def free_port() -> int:
    """A port of this process's block that nothing listens on now."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use, or still closing
                continue
            return port
    raise AssertionError("unreachable: the block is walked forever")


@pytest.fixture
def serve_process() -> Iterator[Callable[..., Served]]:
    """Start `ridgeline ARGS...` (a `serve` command line; "{port}" becomes a free port)
    in a session of its own, and wait until /readyz answers 200. Whatever is still
    running at the end of the test is killed with its whole process group."""
    started: list[subprocess.Popen[bytes]] = []
    logs: list[str] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        port = free_port()
        argv = [str(Path(sys.executable).parent / "ridgeline")]
        argv += [a.replace("{port}", str(port)) for a in args]
        # stderr goes to a file, not a pipe: nobody drains a pipe while the test runs, and
        # the access log (a line per request) would fill it and stall the server.
        with tempfile.NamedTemporaryFile(
            prefix="ridgeline-serve-", suffix=".log", delete=False
        ) as log:
            logs.append(log.name)
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
        proc.stderr = open(log.name, "rb")  # noqa: SIM115  (read by tests, closed below)
        started.append(proc)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return Served(proc, port)
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    for name in logs:
        with contextlib.suppress(OSError):
            os.unlink(name)
