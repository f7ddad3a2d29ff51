"""The real HTTP server under every protocol stand-in (`exchange_server`,
`cybertip_server`): 127.0.0.1 on a port the OS picks, a thread per request, HTTP/1.1
keep-alive as the clients use it, started and stopped as a context manager.

A subclass implements `_handle(handler, method)`; its faults (anything with a `release`
event) are released on exit, so a request held on purpose never outlives the test.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self


class _Held(Protocol):
    release: threading.Event


class LocalHTTP:
    """Start with `with Server() as s:`; `s.port` is where it listens."""

    def __init__(self) -> None:
        self.faults: list[Any] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                outer._handle(self, "GET")

            def do_POST(self) -> None:
                outer._handle(self, "POST")

            def do_PUT(self) -> None:
                outer._handle(self, "PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        held: list[_Held] = self.faults
        for fault in held:
            fault.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError  # pragma: no cover - each stand-in's own
