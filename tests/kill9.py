"""The one kill -9 harness of the crash tests (issue 17): start a real `ridgeline`
subprocess in a session of its own, kill its whole process group with SIGKILL, and
(with `kill_at`) do it at a named crash point (`ridgeline.crashpoint`) so the kill
lands at the same step on every run instead of after a guessed sleep."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ridgeline.crashpoint import ENV, MARK
from ridgeline.store import Store

RIDGELINE = str(Path(sys.executable).parent / "ridgeline")


def start(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """`ridgeline ARGS...` (or ARGS as given when it starts with a path) in a new session."""
    argv = list(args) if args and os.path.isabs(args[0]) else [RIDGELINE, *args]
    return subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr, start_new_session=True)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and every child of its session (pool workers); reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, f"exited on its own with {proc.returncode}"


@dataclass
class Killed:
    """What a process printed before it was killed at `point`."""

    point: str
    stdout: bytes
    stderr: str


def kill_at(
    point: str,
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Killed:
    """Run `ridgeline ARGS...` until it reaches crash point `point` (`NAME` or `NAME@N`),
    then kill -9 it there. Fails if it ends, or does not get there, first."""
    run_env = dict(os.environ if env is None else env)
    run_env[ENV] = point
    name = point.partition("@")[0]
    with tempfile.TemporaryFile() as out:
        proc = start(args, env=run_env, stdout=out.fileno())
        assert proc.stderr is not None
        lines: list[str] = []
        there = threading.Event()

        def read() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode(errors="replace")
                lines.append(line)
                if line.strip() == f"{MARK} {name}":
                    there.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while not there.wait(0.05) and proc.poll() is None and timeout > 0:
                timeout -= 0.05
            if not there.is_set():
                reader.join(10)
                raise AssertionError(
                    f"never reached crash point {point} (exit {proc.poll()}): "
                    + "".join(lines)[-2000:]
                )
            kill9(proc)
        finally:
            if proc.poll() is None:
                kill9(proc)
            reader.join(10)
            proc.stderr.close()
        out.seek(0)
        return Killed(point, out.read(), "".join(lines))


def writing(store: Store, db: str) -> bool:
    """Whether a killed-to-be import has written part of its uncommitted transaction:
    the SQLite write-ahead log has grown, or another PostgreSQL backend holds a xid."""
    if store.dialect == "sqlite":
        wal = Path(db + "-wal")
        return wal.exists() and wal.stat().st_size > 2_000_000
    with store.engine.connect() as conn:
        busy = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
            )
        ).scalar()
    return bool(busy)
