"""What the local stand-ins for NCMEC, StopNCII and ThreatExchange share: a real HTTP
server on 127.0.0.1 in a thread, a log of requests, and faults on purpose.

A fault hits the Nth (and the following `times - 1`) request whose path starts with
`path`:

- "429": answer 429 with `Retry-After` (seconds) and do nothing;
- "500", "502", "503": answer that status and do nothing;
- "drop": close the connection without answering;
- "hang": hold the request (signal `hit`) until `release` is set, then drop it: a
  client killed meanwhile (kill -9) never sees an answer.

Each service's server implements `answer(request) -> Reply`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_http import LocalHTTP


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        """The path with its query string, as sent."""
        if not self.query:
            return self.path
        return f"{self.path}?{urllib.parse.urlencode(self.query)}"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, doc: Any) -> Reply:
        return cls(status, json.dumps(doc).encode())


@dataclass
class Fault:
    kind: str
    path: str
    nth: int
    times: int = 1
    retry_after: str = "1"
    seen: int = 0
    hits: int = 0
    hit: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class LocalExchange(LocalHTTP):
    """Base of the stand-ins: start with `with Server() as s:`, then `s.base`."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.faults: list[Fault] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(
        self, path: str, kind: str, nth: int = 1, *, times: int = 1, retry_after: str = "1"
    ) -> Fault:
        fault = Fault(kind, path, nth, times, retry_after)
        with self.lock:
            self.faults.append(fault)
        return fault

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path.startswith(path))

    def answer(self, request: Request) -> Reply:  # pragma: no cover - each service's own
        raise NotImplementedError

    def _fault_for(self, path: str) -> Fault | None:
        chosen = None
        with self.lock:
            for fault in self.faults:  # every fault counts every request on its path
                if path.startswith(fault.path):
                    fault.seen += 1
                    if chosen is None and fault.nth <= fault.seen < fault.nth + fault.times:
                        fault.hits += 1
                        chosen = fault
        return chosen

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(
            method,
            parts.path,
            dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        with self.lock:
            self.requests.append(request)
        fault = self._fault_for(parts.path)
        if fault is not None:
            if fault.kind in ("drop", "hang"):
                if fault.kind == "hang":
                    fault.hit.set()
                    fault.release.wait(120)
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(2)
                return
            status = int(fault.kind)
            reply = Reply.json(status, {"error": f"fault {fault.kind} on purpose"})
            if status == 429:
                reply.headers["Retry-After"] = fault.retry_after
            self._send(handler, reply)
            return
        with self.lock:
            reply = self.answer(request)
        self._send(handler, reply)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(reply.body)
        except OSError:
            pass
