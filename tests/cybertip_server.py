"""A local stand-in for NCMEC's CyberTipline reporting API (a real HTTP server on
127.0.0.1 in a thread), speaking the protocol of SPEC.md sections 1-3.

It checks HTTP Basic credentials, validates what it receives with the same structural
and schema rules as the client (`ridgeline.reports.documents`), keeps reports, files
and their states, and can fail the Nth request to a path in several ways, so tests can
drive every step of the filing state machine through failures:

- "drop_before": close the connection without doing anything;
- "drop_after": do the work, then close the connection without answering (lost reply);
- "hang_after": do the work, then hold the connection until released (for kill -9),
  then drop it; "hold_reply": the same but answer once released;
- "error500": answer HTTP 500 with responseCode 1000 without doing anything;
- "garbage500": answer HTTP 500 with an HTML page (no responseCode);
- "unauthorized": answer 401 as for bad credentials;
- "bad_md5": do the upload but report a different MD5;
- "reject4100": answer HTTP 400, responseCode 4100 with a Xerces message (as exttest does
  for a schema violation the client did not catch).

Behaviours no public source settles (SPEC.md section 8) are chosen here: a validation
failure answers HTTP 400 with responseCode 4100 (as exttest did in 2026); errors on
/finish use `reportResponse`; a repeated /fileinfo replaces the earlier details.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import itertools
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_http import LocalHTTP
from ridgeline.reports import documents as docs
from ridgeline.reports.schema import Problem


@dataclass
class StoredFile:
    file_id: str
    name: str
    md5: str
    size: int
    details: bytes | None = None


@dataclass
class StoredReport:
    report_id: int
    xml: bytes
    user: str
    state: str = "open"  # open, finished, retracted
    files: dict[str, StoredFile] = field(default_factory=dict)


@dataclass
class Fault:
    kind: str
    path: str
    nth: int
    hit: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def _reply(code: int, description: str = "", **fields: Any) -> bytes:
    parts = [f"<responseCode>{code}</responseCode>"]
    parts.append(f"<responseDescription>{description or 'Success'}</responseDescription>")
    for name in ("reportId", "fileId", "hash"):
        if fields.get(name) is not None:
            parts.append(f"<{name}>{fields[name]}</{name}>")
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><reportResponse>'
        + "".join(parts)
        + "</reportResponse>"
    ).encode()


class LocalCyberTip(LocalHTTP):
    """The server and its state; use as a context manager."""

    def __init__(self, username: str = "esp-user", password: str = "esp-secret") -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.reports: dict[int, StoredReport] = {}
        self.requests: list[tuple[str, int]] = []  # (path, HTTP status or 0 if dropped)
        self.faults: list[Fault] = []
        self._counts: dict[str, int] = {}
        self._ids = itertools.count(7855764)
        self._file_ids = itertools.count(1)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ control

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ispws"

    def fail(self, path: str, kind: str, nth: int = 1) -> Fault:
        """Fail the `nth` request (1-based) to `path` in the way `kind` names."""
        fault = Fault(kind, path, nth)
        self.faults.append(fault)
        return fault

    def count(self, path: str) -> int:
        """Requests received for `path` (answered, failed or dropped)."""
        return self._counts.get(path, 0)

    # ------------------------------------------------------------ dispatch

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        if not parsed.path.startswith("/ispws/"):
            self._send(handler, 404, b"not found")
            return
        path = parsed.path[len("/ispws") :]
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            nth = self._counts.get(path, 0) + 1
            self._counts[path] = nth
            fault = next((f for f in self.faults if f.path == path and f.nth == nth), None)
        if fault is not None:
            fault.hit.set()
        kind = fault.kind if fault else None
        if kind == "drop_before":
            self._drop(handler, path)
            return
        if kind == "error500":
            self._send(handler, 500, _reply(1000, "Server Error"), path)
            return
        if kind == "reject4100":
            message = (
                "Validation failed [1,638] - cvc-complex-type.2.4.a: Invalid content was found "
                "starting with element 'ipCaptureEvent'."
            )
            self._send(handler, 400, _reply(4100, message), path)
            return
        if kind == "garbage500":
            self._send(handler, 500, b"<html><body>Internal error</body></html>", path)
            return
        if kind == "unauthorized" or not self._authorized(handler):
            self._send(
                handler,
                401,
                _reply(1000, "Authentication Required"),
                path,
                {"WWW-Authenticate": 'Basic realm="ESP Web Services"'},
            )
            return
        user = self.username
        with self._lock:
            status, answer = self._route(method, path, handler, body, user, kind)
        if kind == "drop_after":
            self._drop(handler, path)
            return
        if kind == "hold_reply" and fault is not None:
            fault.release.wait(60)  # answer late (another client acts meanwhile)
        if kind == "hang_after" and fault is not None:
            fault.release.wait(60)
            self._drop(handler, path)
            return
        self._send(handler, status, answer, path)

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        header = handler.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return user == self.username and password == self.password

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        path: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.requests.append((path, status))
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml;charset=ISO-8859-1")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _drop(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        self.requests.append((path, 0))
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------ protocol

    def _route(
        self,
        method: str,
        path: str,
        handler: BaseHTTPRequestHandler,
        body: bytes,
        user: str,
        kind: str | None,
    ) -> tuple[int, bytes]:
        ctype = handler.headers.get("Content-Type") or ""
        if path == "/status" and method == "GET":
            return 200, _reply(0, f"Remote User : {user}, Remote Ip : 127.0.0.1")
        if method != "POST":
            return 405, _reply(4000, "Invalid request")
        if path == "/submit":
            if not ctype.startswith("text/xml"):
                return 400, _reply(4000, f"expected text/xml, got {ctype!r}")
            problems = docs.errors(docs.check_report_xml(body))
            if problems:
                return 400, _reply(4100, "Validation failed " + _describe(problems))
            report_id = next(self._ids)
            self.reports[report_id] = StoredReport(report_id, body, user)
            return 200, _reply(0, reportId=report_id)
        if path == "/upload":
            fields, files = _multipart(ctype, body)
            report = self._open(fields.get("id"))
            if isinstance(report, tuple):
                return report
            if "file" not in files:
                return 400, _reply(4200, "Malformed file submittal: no file part")
            name, data = files["file"]
            file_id = hashlib.md5(f"file-{next(self._file_ids)}".encode()).hexdigest()
            md5 = hashlib.md5(data).hexdigest()
            report.files[file_id] = StoredFile(file_id, name, md5, len(data))
            shown = "0" * 32 if kind == "bad_md5" else md5
            return 200, _reply(0, reportId=report.report_id, fileId=file_id, hash=shown)
        if path == "/fileinfo":
            if not ctype.startswith("text/xml"):
                return 400, _reply(4000, f"expected text/xml, got {ctype!r}")
            problems = docs.errors(docs.check_file_details_xml(body, for_filing=True))
            if problems:
                return 400, _reply(4100, "Validation failed " + _describe(problems))
            details = docs.file_details_from_xml(body)
            report = self._open(str(details.report_id))
            if isinstance(report, tuple):
                return report
            stored = report.files.get(details.file_id or "")
            if stored is None:
                return 404, _reply(5002, "File does not exist")
            stored.details = body
            return 200, _reply(0, reportId=report.report_id, fileId=stored.file_id)
        if path in ("/finish", "/retract"):
            fields, _ = _multipart(ctype, body)
            report = self._open(fields.get("id"))
            if isinstance(report, tuple):
                return report
            if path == "/retract":
                report.state = "retracted"
                return 200, _reply(0, reportId=report.report_id)
            report.state = "finished"
            ids = "".join(f"<fileId>{i}</fileId>" for i in report.files)
            return 200, (
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><reportDoneResponse>'
                f"<responseCode>0</responseCode><reportId>{report.report_id}</reportId>"
                f"<files>{ids}</files></reportDoneResponse>"
            ).encode()
        return 404, _reply(1210, "Resource not found")

    def _open(self, raw_id: str | None) -> StoredReport | tuple[int, bytes]:
        """The open report `raw_id`, or the error answer (5001, 5101, 5102)."""
        if raw_id is None or not raw_id.strip().isdigit():
            return 400, _reply(4000, "Invalid request: id")
        report = self.reports.get(int(raw_id))
        if report is None:
            return 404, _reply(5001, "Report does not exist")
        if report.state == "retracted":
            return 409, _reply(5101, "Report already retracted")
        if report.state == "finished":
            return 409, _reply(5102, "Report already finished")
        return report


def _describe(problems: list[Problem]) -> str:
    return "- " + "; ".join(f"{p.path}: {p.message}" for p in problems[:5])


def _multipart(ctype: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Form fields and files of a multipart/form-data or urlencoded body."""
    if ctype.startswith("application/x-www-form-urlencoded"):
        pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"))
        return dict(pairs), {}
    if not ctype.startswith("multipart/form-data"):
        return {}, {}
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (filename, payload)
        else:
            fields[str(name)] = payload.decode()
    return fields, files
