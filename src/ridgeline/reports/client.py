"""The CyberTipline reporting API ("ispws") over HTTP Basic (SPEC.md sections 1-3).

Calls return a `Reply` decided on `responseCode`, not on the HTTP status. Transport
failures are split by what they mean for retrying: `NotSent` (no connection was made,
so nothing can have happened) and `ReplyLost` (the request may have reached NCMEC).
Credentials live only in the `Endpoint` object: never in the database, never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import httpx

from ridgeline.errors import RidgelineError
from ridgeline.exchange.safexml import parse_xml

BASES = {
    "production": "https://report.cybertip.org/ispws",
    "test": "https://exttest.cybertip.org/ispws",
}
ENV_USER = "RIDGELINE_CYBERTIP_USERNAME"
ENV_PASSWORD = "RIDGELINE_CYBERTIP_PASSWORD"
ENV_TIMEOUT = "RIDGELINE_CYBERTIP_TIMEOUT"
XML_TYPE = "text/xml; charset=utf-8"

#: Response codes (SPEC.md section 3).
SUCCESS = 0
ALREADY_RETRACTED = 5101
ALREADY_FINISHED = 5102
REPORT_NOT_FOUND = 5001
FILE_NOT_FOUND = 5002
VALIDATION_FAILED = 4100
MALFORMED_XML = 4110
CODES = {
    1000: "server error",
    1001: "malformed report submittal",
    1100: "save failed",
    1110: "upload failed",
    1111: "file upload failed",
    1210: "resource not found",
    1300: "update failed",
    2000: "authentication required",
    3000: "not authorized",
    3100: "not authorized for submissions",
    3300: "not authorized for updates",
    4000: "invalid request",
    4100: "validation failed",
    4110: "malformed XML submittal",
    4200: "malformed file submittal",
    5001: "report does not exist",
    5002: "file does not exist",
    5101: "report already retracted",
    5102: "report already finished",
}


class CyberTipError(RidgelineError):
    """A CyberTipline call that did not succeed (an upstream failure: 502)."""

    code = "cybertip"
    http_status = 502


class NotSent(CyberTipError):
    """No connection could be made: the request certainly did not arrive."""

    code = "cybertip_not_sent"


class ReplyLost(CyberTipError):
    """The request was (or may have been) sent but no usable answer came back."""

    code = "cybertip_reply_lost"


class AuthFailed(CyberTipError):
    """HTTP 401: the credentials were refused (whatever the body says)."""

    code = "cybertip_auth"


class CredentialsMissing(CyberTipError):
    """No credentials configured for the environment (the server is not set up: 503)."""

    code = "cybertip_credentials"
    http_status = 503


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to file. The password is never shown by repr()."""

    environment: str
    base_url: str
    username: str
    password: str = field(repr=False)


def endpoint_for(
    environment: str = "test",
    *,
    base_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> Endpoint:
    """The endpoint of `environment` with credentials from the arguments or the
    environment: `RIDGELINE_CYBERTIP_<ENV>_USERNAME`/`_PASSWORD` first (separate test
    and production credentials), then `RIDGELINE_CYBERTIP_USERNAME`/`_PASSWORD`.
    `RIDGELINE_CYBERTIP_<ENV>_URL` overrides the base URL (a local test server)."""
    if environment not in BASES:
        raise CyberTipError(f"unknown environment {environment!r}; use test or production")
    env = environment.upper()
    user = (
        username or os.environ.get(f"RIDGELINE_CYBERTIP_{env}_USERNAME") or os.environ.get(ENV_USER)
    )
    secret = (
        password
        or os.environ.get(f"RIDGELINE_CYBERTIP_{env}_PASSWORD")
        or os.environ.get(ENV_PASSWORD)
    )
    if not user or not secret:
        raise CredentialsMissing(
            f"no CyberTipline credentials for the {environment} environment: set "
            f"{ENV_USER} and {ENV_PASSWORD} (or RIDGELINE_CYBERTIP_{env}_USERNAME/_PASSWORD)"
        )
    base = base_url or os.environ.get(f"RIDGELINE_CYBERTIP_{env}_URL") or BASES[environment]
    return Endpoint(environment, base.rstrip("/"), user, secret)


@dataclass(frozen=True)
class Reply:
    """A parsed answer: `code` 0 is success, anything else an error."""

    http_status: int
    code: int
    description: str
    report_id: int | None = None
    file_id: str | None = None
    hash: str | None = None
    file_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    def explain(self) -> str:
        meaning = CODES.get(self.code, "error")
        text = f"NCMEC answered {self.code} ({meaning})"
        if self.description and self.description.lower() != "success":
            text += f": {self.description}"
        return text


def parse_reply(status: int, body: bytes) -> Reply | None:
    """The reply in `body`, or None if it has no readable responseCode."""
    if not body.strip():
        return None
    try:
        root = parse_xml(body, "CyberTipline response")
    except RidgelineError:
        return None
    code_text = root.findtext("responseCode")
    if code_text is None:
        return None
    try:
        code = int(code_text.strip())
    except ValueError:
        return None
    report_text = (root.findtext("reportId") or "").strip()
    files = root.find("files")
    file_ids = tuple((e.text or "").strip() for e in files.iter("fileId")) if files else ()
    return Reply(
        http_status=status,
        code=code,
        description=(root.findtext("responseDescription") or "").strip(),
        report_id=int(report_text) if report_text.isdigit() else None,
        file_id=(root.findtext("fileId") or "").strip() or None,
        hash=(root.findtext("hash") or "").strip().lower() or None,
        file_ids=file_ids,
    )


class CyberTipClient:
    """One connection pool to an endpoint; each method is one protocol call."""

    def __init__(self, endpoint: Endpoint, *, timeout: float | None = None) -> None:
        self.endpoint = endpoint
        if timeout is None:
            timeout = float(os.environ.get(ENV_TIMEOUT) or 120)
        self._http = httpx.Client(
            base_url=endpoint.base_url,
            auth=httpx.BasicAuth(endpoint.username, endpoint.password),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            headers={"User-Agent": "ridgeline-cybertip"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CyberTipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: object) -> Reply:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise NotSent(f"cannot reach {self.endpoint.base_url}{path}: {exc}") from None
        except httpx.HTTPError as exc:
            raise ReplyLost(
                f"no answer from {self.endpoint.base_url}{path} ({type(exc).__name__}: {exc})"
            ) from None
        if response.status_code == 401:
            raise AuthFailed(
                f"NCMEC refused the {self.endpoint.environment} credentials of user "
                f"{self.endpoint.username!r} (HTTP 401)"
            )
        reply = parse_reply(response.status_code, response.content)
        if reply is None:
            raise ReplyLost(
                f"{self.endpoint.base_url}{path} answered HTTP {response.status_code} "
                "without a readable responseCode"
            )
        return reply

    def status(self) -> Reply:
        return self._call("GET", "/status")

    def submit(self, report_xml: bytes) -> Reply:
        return self._call("POST", "/submit", content=report_xml, headers={"Content-Type": XML_TYPE})

    def upload(self, report_id: int, file_name: str, data: bytes) -> Reply:
        return self._call(
            "POST",
            "/upload",
            data={"id": str(report_id)},
            files={"file": (file_name, data, "application/octet-stream")},
        )

    def fileinfo(self, details_xml: bytes) -> Reply:
        return self._call(
            "POST", "/fileinfo", content=details_xml, headers={"Content-Type": XML_TYPE}
        )

    def finish(self, report_id: int) -> Reply:
        return self._call("POST", "/finish", data={"id": str(report_id)})

    def retract(self, report_id: int) -> Reply:
        return self._call("POST", "/retract", data={"id": str(report_id)})
