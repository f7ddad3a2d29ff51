"""Run the API in several worker processes that really share the load.

uvicorn's own `--workers` has every worker accept from one inherited socket. When a
client opens its connection pool at once (a load balancer, `wrk`, an httpx pool), the
first worker to wake accepts most or all of them and the others idle: measured here,
8 benchmark connections were split 8/0, 7/1 or 6/2 over two workers, and lookups/s
varied twofold between identical runs. On
Linux each worker therefore opens its own listening socket with `SO_REUSEPORT`, and
the kernel spreads new connections over the workers by a hash of the connection
(the `reuseport` of nginx and gunicorn). Elsewhere, and with one worker, uvicorn
runs as usual.

The supervisor holds the port bound (not listening, so it never receives a
connection) for as long as it runs, so a start-up with the port taken fails at once
with a clear error. It restarts a worker that dies and stops them all on SIGINT or
SIGTERM. Only processes of the same user can join a `SO_REUSEPORT` group (Linux).
It also creates the shared table of per-key rate-limit buckets that all workers use,
and a folder for prometheus_client's multiprocess mode, so that `/metrics` on any
worker reports the whole server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

from ridgeline.errors import Unavailable
from ridgeline.service.headertimeout import HEADER_TIMEOUT_S, protocol_class
from ridgeline.service.ratelimit import BucketTable, use_shared_table

log = logging.getLogger(__name__)

#: The uvicorn application factory every worker runs (config from the environment).
APP = "ridgeline.service.app:app_from_env"
#: Environment variable telling a worker its number (0-based), shown by `/healthz`.
ENV_WORKER = "RIDGELINE_WORKER"
#: prometheus_client's multiprocess mode: the folder where every worker keeps its
#: metric values, so that `/metrics` on any worker reports the whole server.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: A worker that dies sooner than this after starting is not restarted (it would loop).
MIN_UPTIME_S = 5.0
#: An idle keep-alive connection is closed after this many seconds (request bodies
#: have their own deadline: `ServiceConfig.body_timeout_s`, enforced by the guard).
KEEP_ALIVE_S = 5


@dataclass(frozen=True)
class ServeOptions:
    """Where and how `ridgeline serve` listens."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_level: str = "warning"
    backlog: int = 2048
    #: Seconds a worker gets to finish its requests on shutdown before it is killed.
    graceful_s: float = 10.0
    #: The uvicorn application factory (`ridgeline serve` names the one with the UI).
    app: str = APP
    #: Seconds a client has to send a request's headers (`service.headertimeout`).
    header_timeout_s: float = HEADER_TIMEOUT_S


def reuseport_supported() -> bool:
    """Whether workers can balance with `SO_REUSEPORT` (Linux only: BSDs don't balance)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return infos[0][0] if infos else socket.AF_INET


def bind_socket(opts: ServeOptions, *, listen: bool) -> socket.socket:
    """A `SO_REUSEPORT` socket bound to host:port, listening only when `listen`."""
    family = _family(opts.host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((opts.host, opts.port))
        if listen:
            sock.listen(opts.backlog)
    except OSError:
        sock.close()
        raise
    return sock


def check_port(opts: ServeOptions) -> None:
    """`RidgelineError` naming host:port when it cannot be bound (in use, no permission),
    before anything is started or announced."""
    try:
        bind_socket(opts, listen=False).close()
    except OSError as exc:
        raise Unavailable(
            f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}"
        ) from None


def _end_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when its supervisor dies.

    Without it a supervisor killed outright (OOM killer, SIGKILL) would leave its
    workers serving on their own, and a restarted server's workers would join the
    same `SO_REUSEPORT` group next to the orphans.
    """
    import ctypes
    import ctypes.util

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() == 1:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _run_worker(opts: ServeOptions, number: int, buckets: BucketTable) -> None:
    """Body of one worker process: its own listening socket, one uvicorn server."""
    import uvicorn

    os.environ[ENV_WORKER] = str(number)
    _end_with_parent()
    use_shared_table(buckets)  # per-key rate limits count across all workers
    sock = bind_socket(opts, listen=True)
    config = uvicorn.Config(
        opts.app,
        factory=True,
        log_level=opts.log_level,
        access_log=False,
        backlog=opts.backlog,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(opts.graceful_s),
        http=protocol_class(opts.header_timeout_s),
    )
    with quiet_exit_signals():
        uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def quiet_exit_signals() -> Iterator[None]:
    """Let SIGINT and SIGTERM end a uvicorn server cleanly, without a traceback.

    uvicorn catches both while it serves, shuts down gracefully, and then raises each
    caught signal again for the handler that was there before. By default that is
    asyncio's SIGINT handler, which cancels the server's task and ends in a
    KeyboardInterrupt traceback. Ctrl-C in a terminal reaches every worker, and the
    supervisor then also sends SIGTERM, so each worker sees two signals. With both
    signals ignored beforehand, the second delivery does nothing and the server
    returns normally. The previous handlers are restored afterwards.
    """
    names = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in names}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def serve(opts: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM; the worker config comes from the environment."""
    if opts.workers < 1:
        raise ValueError("workers must be at least 1")
    if opts.workers == 1 or not reuseport_supported():
        import uvicorn

        uvicorn.run(
            opts.app,
            factory=True,
            host=opts.host,
            port=opts.port,
            workers=opts.workers,
            log_level=opts.log_level,
            access_log=False,
            backlog=opts.backlog,
            timeout_keep_alive=KEEP_ALIVE_S,
            http=protocol_class(opts.header_timeout_s),
        )
        return
    Supervisor(opts).run()


class Supervisor:
    """Starts `opts.workers` processes, restarts any that die, stops them all on a signal."""

    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: dict[int, BaseProcess] = {}
        self.started: dict[int, float] = {}
        self.stopping = False
        self.buckets = BucketTable.shared(self.ctx)

    def _start(self, number: int) -> None:
        proc = self.ctx.Process(
            target=_run_worker,
            args=(self.opts, number, self.buckets),
            name=f"ridgeline-worker-{number}",
        )
        proc.start()
        self.procs[number] = proc
        self.started[number] = time.monotonic()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> None:
        try:
            holder = bind_socket(self.opts, listen=False)
        except OSError as exc:
            raise Unavailable(
                f"cannot listen on {self.opts.host}:{self.opts.port}: {exc.strerror or exc}"
            ) from None
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        own_metrics_dir = not os.environ.get(MULTIPROC_ENV)
        if own_metrics_dir:
            os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="ridgeline-metrics-")
        metrics_dir = os.environ[MULTIPROC_ENV]
        try:
            for number in range(self.opts.workers):
                self._start(number)
            while not self.stopping:
                time.sleep(0.2)
                for number, proc in list(self.procs.items()):
                    if proc.is_alive() or self.stopping:
                        continue
                    uptime = time.monotonic() - self.started[number]
                    if uptime < MIN_UPTIME_S:
                        raise Unavailable(
                            f"worker {number} exited with code {proc.exitcode} "
                            f"{uptime:.1f}s after starting; see its log above"
                        )
                    log.warning("worker %d exited (code %s); restarting", number, proc.exitcode)
                    self._forget_metrics(proc, metrics_dir)
                    self._start(number)
        finally:
            self._stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
            holder.close()
            if own_metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
                del os.environ[MULTIPROC_ENV]

    @staticmethod
    def _forget_metrics(proc: BaseProcess, metrics_dir: str) -> None:
        """Drop a dead worker's gauges (its counters stay: totals must not go down)."""
        from prometheus_client import multiprocess

        if proc.pid is not None:
            multiprocess.mark_process_dead(proc.pid, metrics_dir)

    def _stop(self) -> None:
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.opts.graceful_s + 2
        for proc in self.procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
