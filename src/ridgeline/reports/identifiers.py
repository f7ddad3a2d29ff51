"""The identifiers of a received report, normalised so that equal things compare equal.

CONVENTIONS ("Identifiers used for linking reports"): emails lower case, without dots or
`+tag` only for the providers that ignore them (`EmailRules`); phones in E.164
(`phonenumbers`, using the number's `countryCallingCode` when given and otherwise the
region of the person's own address); screen names and ESP ids with their service; IPs
with the time they were seen and the proxy flag; device ids with their type; file hashes
in the signals' canonical form. Each identifier keeps its `role`: the reporter's own
contact details are extracted (so they can be shown) but never link reports.

Pure functions over `reports.model` objects: no database, so the intake pipeline, the
tests and the triage/routing code can all call them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from ridgeline.errors import RidgelineError
from ridgeline.reports.model import (
    Address,
    AssociatedAccount,
    DeviceId,
    Email,
    FileDetails,
    IntendedRecipient,
    IpCaptureEvent,
    Person,
    PersonOrUserReported,
    Phone,
    Report,
    Victim,
)
from ridgeline.signals import normalize as normalize_signal

Kind = Literal[
    "email", "phone", "screen_name", "esp_id", "profile_url", "ip", "device", "md5", "sha1",
    "sha256", "pdq",
]  # fmt: skip
Role = Literal["reported", "recipient", "victim", "incident", "reporter", "file"]

KINDS: tuple[str, ...] = (
    "email", "phone", "screen_name", "esp_id", "profile_url", "ip", "device", "md5", "sha1",
    "sha256", "pdq",
)  # fmt: skip
FILE_KINDS = frozenset({"md5", "sha1", "sha256", "pdq"})
#: Kinds whose value means something only together with a qualifier (service or type).
QUALIFIED_KINDS = frozenset({"screen_name", "esp_id", "device"})


@dataclass(frozen=True, slots=True)
class EmailRules:
    """Which providers ignore dots and `+tags` in the local part, and domain aliases.

    The defaults are the large webmail providers that document the behaviour (Gmail
    ignores dots and `+tags`, googlemail.com is the same mailbox; Outlook/Hotmail/Live,
    iCloud, Fastmail and Proton deliver `name+tag` to `name`). Anything not listed keeps
    its dots and tags: dropping them elsewhere would join different people.
    """

    ignore_dots: frozenset[str] = frozenset({"gmail.com"})
    ignore_plus: frozenset[str] = frozenset(
        {
            "gmail.com",
            "outlook.com",
            "hotmail.com",
            "live.com",
            "icloud.com",
            "me.com",
            "fastmail.com",
            "proton.me",
            "protonmail.com",
        }
    )
    aliases: Mapping[str, str] = field(default_factory=lambda: {"googlemail.com": "gmail.com"})


DEFAULT_EMAIL_RULES = EmailRules()


@dataclass(frozen=True, slots=True)
class Identifier:
    """One normalised identifier of a report."""

    kind: str
    value: str
    role: str
    #: ESP service (screen names, ESP ids), lower case.
    service: str | None = None
    #: Device id type, upper case.
    device_type: str | None = None
    #: When it was seen (IPs, devices); an IP without its own time takes the incident time.
    event_at: dt.datetime | None = None
    possible_proxy: bool = False
    #: As written in the report.
    original: str | None = None

    @property
    def qualifier(self) -> str | None:
        """What the value needs to mean one thing: the service or the device type."""
        if self.kind == "device":
            return self.device_type
        if self.kind in ("screen_name", "esp_id"):
            return self.service
        return None

    @property
    def label(self) -> str:
        """The identifier as shown in links: `screen_name:svc/name`, `ip:192.0.2.1`."""
        q = self.qualifier
        return f"{self.kind}:{q}/{self.value}" if q else f"{self.kind}:{self.value}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "value": self.value, "role": self.role}
        if self.service is not None:
            out["service"] = self.service
        if self.device_type is not None:
            out["device_type"] = self.device_type
        if self.event_at is not None:
            out["event_at"] = self.event_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if self.possible_proxy:
            out["possible_proxy"] = True
        return out


class UnusableIdentifier(RidgelineError, ValueError):
    """An identifier that cannot be normalised (it is kept out of linking, with a warning)."""

    code = "unusable_identifier"
    http_status = 400
    exit_status = 2


# ---------------------------------------------------------------- emails

#: Plain ASCII addresses; for these email-validator's normal form is the address with
#: the domain lower-cased, which `normalise_email` then lower-cases entirely. Anything
#: else (Unicode, quoted local parts, odd dots) goes through email-validator itself.
_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
    re.IGNORECASE,
)


@lru_cache(maxsize=65536)
def _email_parts(address: str) -> tuple[str, str]:
    text = address.strip()
    if _SIMPLE_EMAIL.fullmatch(text) and len(text) <= 254 and text.index("@") <= 64:
        local, _, domain = text.rpartition("@")
        return local.lower(), domain.lower()
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise UnusableIdentifier(f"{address!r} is not an email address: {exc}") from None
    return result.local_part.lower(), result.domain.lower()


def normalise_email(address: str, rules: EmailRules = DEFAULT_EMAIL_RULES) -> str:
    """`First.Last+tag@GoogleMail.com` -> `firstlast@gmail.com`; other providers keep dots
    and tags (`a.b+c@example.com` -> `a.b+c@example.com`)."""
    local, domain = _email_parts(address)
    domain = rules.aliases.get(domain, domain)
    if domain in rules.ignore_plus and "+" in local:
        local = local.split("+", 1)[0]
    if domain in rules.ignore_dots:
        local = local.replace(".", "")
    return f"{local}@{domain}"


# ---------------------------------------------------------------- phones

_DIGITS = re.compile(r"\D+")


@lru_cache(maxsize=65536)
def _e164(number: str, calling_code: str | None, region: str | None) -> str:
    text = number.strip()
    if calling_code and not text.startswith("+"):
        text = calling_code.strip() + " " + text
        region = None
    try:
        parsed = phonenumbers.parse(text, region if not text.startswith("+") else None)
    except phonenumbers.NumberParseException as exc:
        raise UnusableIdentifier(
            f"{number!r} is not a phone number that can be put in E.164 "
            f"(give countryCallingCode or the person's country): {exc}"
        ) from None
    if not phonenumbers.is_possible_number(parsed):
        raise UnusableIdentifier(f"{number!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_phone(
    number: str, *, calling_code: str | None = None, region: str | None = None
) -> str:
    """E.164: `countryCallingCode` first, then `region` (ISO 3166 alpha-2 of the person's
    address), else the number must carry its own `+` code."""
    return _e164(number, calling_code, region.upper() if region else None)


def region_of(addresses: Iterable[Address]) -> str | None:
    """The first ISO country of a person's addresses (never the reporter's)."""
    for a in addresses:
        if a.country and len(a.country) == 2 and a.country.isalpha():
            return a.country.upper()
    return None


# ---------------------------------------------------------------- other kinds


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: Dotted-quad IPv4 already in canonical form (no leading zeros): `ipaddress` would give
#: the same text back, and most sightings are distinct, so the cache rarely helps them.
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


@lru_cache(maxsize=65536)
def normalise_ip(text: str) -> str:
    """Canonical text of an IP address (IPv4-mapped IPv6 as IPv4, IPv6 compressed)."""
    plain = text.strip()
    if _CANONICAL_IPV4.fullmatch(plain):
        return plain
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        raise UnusableIdentifier(f"{text!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.compressed


def normalise_name(text: str) -> str:
    """Screen names, services and ESP ids: trimmed, case-folded, inner white space single."""
    return " ".join(text.split()).casefold()


def normalise_device(id_type: str, value: str) -> tuple[str, str]:
    """(`IMEI`, `490154203237518`): type upper case; value without spaces, dashes or colons
    (MAC addresses and IMEIs are written with all three), upper case."""
    kind = " ".join(id_type.split()).upper()
    return kind, re.sub(r"[\s\-:.]", "", value).upper()


def normalise_url(text: str) -> str:
    """Profile URLs: scheme and host lower case, no trailing slash."""
    t = text.strip()
    m = re.match(r"(?i)^([a-z][a-z0-9+.-]*://)([^/?#]*)(.*)$", t)
    if not m:
        return t.rstrip("/")
    return (m.group(1).lower() + m.group(2).lower() + m.group(3)).rstrip("/")


_HASH_TYPES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha256": "sha256",
    "sha-256": "sha256",
    "pdq": "pdq",
}


def hash_kind(hash_type: str) -> str | None:
    """`MD5`, `SHA-256`, `pdq` -> the signal name; None for types we do not compare."""
    return _HASH_TYPES.get(hash_type.strip().lower())


# ---------------------------------------------------------------- extraction


@dataclass
class _Collector:
    rules: EmailRules
    incident_at: dt.datetime | None
    default_service: str | None
    out: list[Identifier] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seen: set[tuple[str, str, str, str | None, dt.datetime | None]] = field(default_factory=set)

    def add(self, ident: Identifier) -> None:
        key = (ident.kind, ident.value, ident.role, ident.qualifier, ident.event_at)
        if key not in self.seen:
            self.seen.add(key)
            self.out.append(ident)

    def emails(self, emails: Iterable[Email], role: str) -> None:
        for e in emails:
            if not e.value:
                continue
            try:
                value = normalise_email(e.value, self.rules)
            except UnusableIdentifier as exc:
                self.warnings.append(str(exc))
                continue
            self.add(Identifier("email", value, role, original=e.value))

    def phones(self, phones: Iterable[Phone], role: str, region: str | None) -> None:
        for p in phones:
            if not p.value:
                continue
            try:
                value = normalise_phone(p.value, calling_code=p.country_calling_code, region=region)
            except UnusableIdentifier as exc:
                self.warnings.append(str(exc))
                continue
            self.add(Identifier("phone", value, role, original=p.value))

    def person(self, person: Person | None, role: str) -> None:
        if person is None:
            return
        self.emails(person.emails, role)
        self.phones(person.phones, role, region_of(person.addresses))

    def account(
        self,
        role: str,
        service: str | None,
        screen_name: str | None,
        esp_identifier: str | None,
        profile_urls: Iterable[str],
    ) -> None:
        svc = normalise_name(service) if service else self.default_service
        if screen_name and screen_name.strip():
            self.add(
                Identifier(
                    "screen_name", normalise_name(screen_name), role, service=svc,
                    original=screen_name,
                )
            )  # fmt: skip
        if esp_identifier and esp_identifier.strip():
            self.add(
                Identifier(
                    "esp_id", esp_identifier.strip(), role, service=svc, original=esp_identifier
                )
            )
        for url in profile_urls:
            if url.strip():
                self.add(Identifier("profile_url", normalise_url(url), role, original=url))

    def ips(self, events: Iterable[IpCaptureEvent | None], role: str) -> None:
        for ev in events:
            if ev is None or not ev.ip_address:
                continue
            try:
                value = normalise_ip(ev.ip_address)
            except UnusableIdentifier as exc:
                self.warnings.append(str(exc))
                continue
            when = ev.date_time or self.incident_at
            self.add(
                Identifier(
                    "ip", value, role, event_at=_utc(when), possible_proxy=bool(ev.possible_proxy),
                    original=ev.ip_address,
                )
            )  # fmt: skip

    def devices(self, devices: Iterable[DeviceId], role: str) -> None:
        for d in devices:
            if not d.id_type or not d.id_value:
                continue
            kind, value = normalise_device(d.id_type, d.id_value)
            if value:
                self.add(
                    Identifier(
                        "device", value, role, device_type=kind, event_at=_utc(d.date_time),
                        original=d.id_value,
                    )
                )  # fmt: skip

    def associated(self, accounts: Iterable[AssociatedAccount], role: str) -> None:
        for a in accounts:
            service = a.esp_service or (a.platform.value if a.platform else None)
            self.account(role, service, a.screen_name, a.esp_identifier, a.profile_urls)
            self.emails(a.emails, role)
            self.phones(a.phones, role, region_of(a.addresses))
            self.ips(a.ip_capture_events, role)
            self.devices(a.device_ids, role)

    def party(self, p: PersonOrUserReported | IntendedRecipient | Victim, role: str) -> None:
        self.person(p.person, role)
        self.account(role, p.esp_service, p.screen_name, p.esp_identifier, p.profile_urls)
        self.ips(p.ip_capture_events, role)
        self.devices(p.device_ids, role)
        if isinstance(p, PersonOrUserReported | Victim):
            self.associated(p.associated_accounts, role)

    def file(self, f: FileDetails) -> None:
        pairs: list[tuple[str, str]] = [
            (h.hash_type, h.value) for h in f.original_file_hashes if h.hash_type and h.value
        ]
        for d in f.details:
            if d.type in (None, "HASH"):
                pairs += [(p.name, p.value) for p in d.pairs if p.name and p.value]
        for hash_type, value in pairs:
            kind = hash_kind(hash_type)
            if kind is None:
                continue
            try:
                canonical = normalize_signal(kind, value)
            except (RidgelineError, ValueError) as exc:
                self.warnings.append(f"file hash {hash_type}: {exc}")
                continue
            if kind == "pdq":
                canonical = canonical.split(",")[0]
            self.add(Identifier(kind, canonical, "file", original=value))
        # The uploader's IP and device as recorded with the file.
        self.ips([f.ip_capture_event], "file")
        self.devices(f.device_ids, "file")


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    if when is None:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def reporter_domain(report: Report) -> str | None:
    """The reporting ESP's email domain (reportingPerson's first email)."""
    rep = report.reporter
    person = rep.reporting_person if rep is not None else None
    if person is None:
        return None
    for e in person.emails:
        if e.value and "@" in e.value:
            return e.value.rsplit("@", 1)[1].strip().lower()
    return None


def esp_of(report: Report) -> str | None:
    """Who reported: incidentSummary/platform, else the reporter's email domain."""
    summary = report.incident_summary
    if summary is not None and summary.platform and summary.platform.strip():
        return normalise_name(summary.platform)
    return reporter_domain(report)


def extract(
    report: Report,
    files: Iterable[FileDetails] = (),
    *,
    rules: EmailRules = DEFAULT_EMAIL_RULES,
) -> tuple[list[Identifier], list[str]]:
    """Every identifier of a report and its files, normalised, in document order, with a
    warning for each value that could not be normalised (it is left out).

    A non-reporter identifier equal to one of the reporter's own contact details is left
    out as well: the ESP's desk address written into the suspect's record is still the
    desk, and would otherwise join every report that desk ever sent.
    """
    summary = report.incident_summary
    incident_at = _utc(summary.incident_date_time) if summary is not None else None
    c = _Collector(rules, incident_at, esp_of(report))
    rep = report.reporter
    if rep is not None:
        c.person(rep.reporting_person, "reporter")
        if rep.contact_person is not None:
            c.emails(rep.contact_person.emails, "reporter")
            c.phones(rep.contact_person.phones, "reporter", region_of(rep.contact_person.addresses))
    for p in report.persons_reported:
        c.party(p, "reported")
    for r in report.intended_recipients:
        c.party(r, "recipient")
    for v in report.victims:
        c.party(v, "victim")
    for d in report.internet_details:
        if d.email is not None:
            c.emails(d.email.email_addresses, "incident")
        if d.newsgroup is not None:
            c.emails(d.newsgroup.email_addresses, "incident")
        if d.cell_phone is not None and d.cell_phone.phone_number is not None:
            c.phones([d.cell_phone.phone_number], "incident", None)
        if d.peer2peer is not None:
            c.ips(d.peer2peer.ip_capture_events, "incident")
    for f in files:
        c.file(f)
    desk = {(i.kind, i.value) for i in c.out if i.role == "reporter"}
    kept = [i for i in c.out if i.role == "reporter" or (i.kind, i.value) not in desk]
    return kept, c.warnings


def linkable(ident: Identifier) -> bool:
    """Whether an identifier may link reports: never the reporter's, never a proxy IP,
    never an IP without any time."""
    if ident.role == "reporter":
        return False
    if ident.kind == "ip":
        return not ident.possible_proxy and ident.event_at is not None
    return True


def normalise_query(kind: str, value: str, rules: EmailRules = DEFAULT_EMAIL_RULES) -> str:
    """A value typed by an analyst, normalised as intake normalises it (phones need their
    `+` country code here: a search has no person's address to take the region from)."""
    if kind == "email":
        return normalise_email(value, rules)
    if kind == "phone":
        return normalise_phone(value)
    if kind == "ip":
        return normalise_ip(value)
    if kind == "screen_name":
        return normalise_name(value)
    if kind == "esp_id":
        return value.strip()
    if kind == "device":
        return normalise_device("", value)[1]
    if kind == "profile_url":
        return normalise_url(value)
    if kind in FILE_KINDS:
        canonical = normalize_signal(kind, value)
        return canonical.split(",")[0] if kind == "pdq" else canonical
    raise UnusableIdentifier(f"unknown identifier kind {kind!r} (known: {', '.join(KINDS)})")
