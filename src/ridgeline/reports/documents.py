"""Report and fileDetails documents: XML and JSON in and out, and their validation.

`validate_report` / `validate_file_details` apply the schema's rules (required
elements, enumerations, patterns, lengths) and the rules NCMEC documents beyond the
XSD (SPEC.md section 6), returning every problem with its path, so an analyst sees
all of them at once and before anything is sent. The XML readers check structure
(unknown names, element order, repeats) the way the XSD would.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any

from ridgeline.errors import BadInput
from ridgeline.exchange.safexml import parse_xml
from ridgeline.reports import compiled, schema
from ridgeline.reports.model import (
    Email,
    FileDetails,
    IpCaptureEvent,
    Phone,
    Report,
)
from ridgeline.reports.schema import Node, Problem

SCHEMA_LOCATION = "https://report.cybertip.org/ispws/xsd"
_XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>'
_REPORT_OPEN = (
    '<report xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    f'xsi:noNamespaceSchemaLocation="{SCHEMA_LOCATION}">'
)
#: Placeholders a fileDetails draft may hold until filing fills the real ids in.
PLACEHOLDER = re.compile(r"@[A-Z_]+@")

_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_PHONE = re.compile(r"\+?[0-9][0-9 ().\-/]{2,30}")
_URL_BAD = re.compile(r"[\s\x00-\x1f\x7f]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


class InvalidDocument(BadInput):
    """A document that cannot be read into the schema; `problems` lists every reason."""

    code = "invalid_document"

    def __init__(self, what: str, problems: list[Problem]) -> None:
        shown = "; ".join(f"{p.path}: {p.message}" for p in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"{what}: {shown}{more}")
        self.problems = problems


# ---------------------------------------------------------------- XML


def report_to_xml(report: Report) -> bytes:
    """The `<report>` document, children in the schema's order."""
    out: list[str] = []
    compiled.write(report, "report", out)
    first = out[0]
    out[0] = _REPORT_OPEN if first == "<report>" else _REPORT_OPEN[:-1] + "/>"
    return (_XML_DECL + "".join(out)).encode()


def file_details_to_xml(details: FileDetails) -> bytes:
    """The `<fileDetails>` document (reportId and fileId must be filled in to send it)."""
    out: list[str] = []
    compiled.write(details, "fileDetails", out)
    return (_XML_DECL + "".join(out)).encode()


def _read(data: bytes, root_tag: str, cls: type, what: str) -> tuple[Any, list[Problem]]:
    root = parse_xml(data, what)
    problems: list[Problem] = []
    if root.tag != root_tag:
        raise InvalidDocument(
            what, [Problem(str(root.tag), f"the document must be a <{root_tag}>, not <{root.tag}>")]
        )
    if root_tag == "fileDetails":
        for child in list(root):
            if child.tag in ("reportId", "fileId") and PLACEHOLDER.fullmatch(
                (child.text or "").strip()
            ):
                root.remove(child)  # filled in at filing
    node = schema.from_xml(cls, root, root_tag, problems)
    return node, problems


def check_report_xml(data: bytes) -> list[Problem]:
    """Structural problems of a `<report>` document plus its validation problems."""
    try:
        node, problems = _read(data, "report", Report, "report")
    except InvalidDocument as exc:
        return exc.problems
    except BadInput as exc:
        return [Problem("report", str(exc))]
    return problems + validate_report(node)


def check_file_details_xml(data: bytes, *, for_filing: bool = True) -> list[Problem]:
    """Structural problems of a `<fileDetails>` document plus its validation problems."""
    try:
        node, problems = _read(data, "fileDetails", FileDetails, "fileDetails")
    except InvalidDocument as exc:
        return exc.problems
    except BadInput as exc:
        return [Problem("fileDetails", str(exc))]
    return problems + validate_file_details(node, for_filing=for_filing)


def report_from_xml(data: bytes) -> Report:
    """Read a `<report>`; `InvalidDocument` if it does not fit the schema's structure."""
    node, problems = _read(data, "report", Report, "report")
    if problems:
        raise InvalidDocument("report", problems)
    assert isinstance(node, Report)
    return node


def file_details_from_xml(data: bytes) -> FileDetails:
    """Read a `<fileDetails>` (ids may be placeholders such as `@REPORT_ID@`)."""
    node, problems = _read(data, "fileDetails", FileDetails, "fileDetails")
    if problems:
        raise InvalidDocument("fileDetails", problems)
    assert isinstance(node, FileDetails)
    return node


# ---------------------------------------------------------------- JSON


def to_json(node: Node) -> dict[str, Any]:
    """The document as JSON keyed by the schema's element and attribute names."""
    return schema.to_json(node)


def report_from_json(data: Any) -> Report:
    """A Report from its JSON form; `InvalidDocument` lists every unknown key or bad value."""
    node = _from_json(Report, data, "report")
    assert isinstance(node, Report)
    return node


def file_details_from_json(data: Any) -> FileDetails:
    """FileDetails from its JSON form."""
    node = _from_json(FileDetails, data, "fileDetails")
    assert isinstance(node, FileDetails)
    return node


def _from_json(cls: type, data: Any, root: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidDocument(root, [Problem(root, "expected a JSON object")])
    problems: list[Problem] = []
    node = schema.from_json(cls, data, root, problems)
    if problems:
        raise InvalidDocument(root, problems)
    return node


def merge_json(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_json(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------- validation


def _check_email(node: Email, path: str, problems: list[Problem]) -> None:
    if node.value is not None and not _EMAIL.fullmatch(node.value):
        problems.append(Problem(path, f"{node.value!r} is not an email address (name@example.com)"))


def _check_phone(node: Phone, path: str, problems: list[Problem]) -> None:
    if node.value is not None and not _PHONE.fullmatch(node.value):
        problems.append(
            Problem(path, f"{node.value!r} is not a phone number (digits, e.g. 555-0100)")
        )


def _is_ip(text: str) -> bool:
    """`ipaddress.ip_address(text)` succeeds; dotted IPv4 (the usual case) by a regex
    that accepts exactly what ipaddress accepts, which is several times quicker."""
    if _IPV4.fullmatch(text):
        return True
    try:
        if ":" in text:  # never IPv4, which ip_address would try first
            ipaddress.IPv6Address(text)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_ip(node: IpCaptureEvent, path: str, problems: list[Problem]) -> None:
    if node.ip_address is not None and not _is_ip(node.ip_address.strip()):
        problems.append(
            Problem(
                path + "/ipAddress",
                f"{node.ip_address!r} is not an IP address (NCMEC accepts it; check it)",
                "warning",
            )
        )
    if node.port is not None and not 0 <= node.port <= 65535:
        problems.append(Problem(path + "/port", f"port {node.port} is not between 0 and 65535"))


compiled.EXTRAS.update({Email: _check_email, Phone: _check_phone, IpCaptureEvent: _check_ip})


def validate_report(report: Report, *, now: dt.datetime | None = None) -> list[Problem]:
    """Every problem of a report, errors and warnings, in document order."""
    problems: list[Problem] = []
    compiled.check(report, "report", problems)
    summary = report.incident_summary
    if summary is not None and summary.incident_date_time is not None:
        when = summary.incident_date_time
        where = "report/incidentSummary/incidentDateTime"
        if when.tzinfo is None or when.utcoffset() is None:
            problems.append(
                Problem(where, "the incident time needs a time zone (e.g. 2026-01-31T13:45:00Z)")
            )
        elif when > (now or dt.datetime.now(dt.UTC)):
            problems.append(
                Problem(where, f"the incident time {when.isoformat()} is in the future")
            )
    reporter = report.reporter
    person = reporter.reporting_person if reporter is not None else None
    if person is not None and not person.emails:
        problems.append(
            Problem(
                "report/reporter/reportingPerson/email",
                "the reporting person's email is required (NCMEC contacts the reporter there)",
            )
        )
    if len(report.persons_reported) > 1:
        problems.append(
            Problem(
                "report/personOrUserReported[1]",
                f"at most one person or user reported per report; found "
                f"{len(report.persons_reported)} (file one report per suspect)",
            )
        )
    for i, details in enumerate(report.internet_details):
        page = details.web_page
        if page is None:
            continue
        for j, url in enumerate(page.urls):
            where = f"report/internetDetails[{i}]/webPageIncident/url[{j}]"
            if not url.strip():
                problems.append(Problem(where, "the URL is empty"))
            elif _URL_BAD.search(url):
                problems.append(
                    Problem(where, f"the URL {url!r} contains white space or control characters")
                )
    return problems


def validate_file_details(details: FileDetails, *, for_filing: bool = False) -> list[Problem]:
    """Every problem of a fileDetails document; `for_filing` also requires reportId/fileId
    (a draft's are filled in when the file is uploaded)."""
    problems: list[Problem] = []
    compiled.check(details, "fileDetails", problems)
    if not for_filing:
        problems = [
            p for p in problems if p.path not in ("fileDetails/reportId", "fileDetails/fileId")
        ]
    relevance = details.file_relevance or "Reported"
    if relevance != "Reported":
        if details.industry_classification is not None:
            problems.append(
                Problem(
                    "fileDetails/industryClassification",
                    f"only a 'Reported' file may carry an industry classification "
                    f"(this file is {relevance!r})",
                )
            )
        meme = details.potential_meme or (
            details.file_annotations is not None and details.file_annotations.potential_meme
        )
        if meme:
            problems.append(
                Problem(
                    "fileDetails/potentialMeme",
                    f"only a 'Reported' file may be marked as a potential meme "
                    f"(this file is {relevance!r})",
                )
            )
    return problems


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that block filing (warnings do not)."""
    return [p for p in problems if p.severity == "error"]
