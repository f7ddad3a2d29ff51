"""Routing: where a received report points, and to which agency it is made available.

Places come from the report's subjects only: the reported person's (and associated
accounts') addresses, the ESP's estimated location of them, their IP capture events
(not those marked `possibleProxy`), the victims' and intended recipients' addresses and
locations, incident addresses and the files' upload IPs. Never from the reporter (the
ESP's own address says where the company is, not where a child is), nor from a law
enforcement contact already named in the report.

Each place goes to the agency of its (country, state) rule, else its country's rule,
else the fallback desk; a report with no place goes to the fallback desk. Every
availability keeps the reasons (which place, from which field, located how).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, NotFound
from ridgeline.reports.model import (
    COUNTRIES,
    US_STATES,
    Address,
    EstimatedLocation,
    FileDetails,
    IpCaptureEvent,
    Report,
)
from ridgeline.routing.geo import Geolocator, Place
from ridgeline.routing.models import FALLBACK, ReportAvailability, RoutingRule
from ridgeline.store.bulk import insert_rows
from ridgeline.timeutil import as_utc, isoformat, utcnow

#: The fallback desk's name when the rules table names none.
DEFAULT_FALLBACK = "fallback desk"
#: Core table: bulk inserts skip the ORM's per-row bookkeeping (intake writes 100,000s).
_AVAILABILITY: Table = ReportAvailability.__table__  # type: ignore[assignment]
_CHUNK = 5000
_COLUMNS = ("report_id", "agency", "why", "country", "state", "made_by", "made_available_at")


class BadRoutingRules(BadInput):
    """A routing-rules file that cannot be imported (the message names the line)."""

    code = "bad_routing_rules"

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        #: One entry per refused line (empty when the whole file is unreadable).
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Rule:
    country: str
    state: str | None
    agency: str

    def to_json(self) -> dict[str, Any]:
        return {"country": self.country, "state": self.state, "agency": self.agency}


@dataclass(frozen=True)
class RoutingTable:
    """The routing rules in memory: (country, STATE or "") -> agency, and the fallback."""

    rules: dict[tuple[str, str], str] = field(default_factory=dict)
    fallback: str = DEFAULT_FALLBACK

    def agency_for(self, place: Place) -> tuple[str, str]:
        """(agency, which rule) for a place."""
        if place.state:
            hit = self.rules.get((place.country, place.state.upper()))
            if hit:
                return hit, f"rule {place.country}/{place.state.upper()}"
        hit = self.rules.get((place.country, ""))
        if hit:
            return hit, f"rule {place.country}"
        return self.fallback, f"no rule for {place.text}: fallback desk"


@dataclass(frozen=True, slots=True)
class Availability:
    """A report is to be made available to `agency` for these reasons."""

    agency: str
    why: tuple[str, ...]
    country: str | None = None
    state: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "agency": self.agency,
            "why": list(self.why),
            "country": self.country,
            "state": self.state,
        }


# ---------------------------------------------------------------- rules table


def parse_rules_csv(text: str, *, source: str = "rules.csv") -> list[Rule]:
    """Rows `country,state,agency` (header required; state may be empty; `*` = fallback)."""
    reader = csv.DictReader(io.StringIO(text))
    need = {"country", "state", "agency"}
    header = {h.strip().lower() for h in (reader.fieldnames or [])}
    if not {"country", "agency"} <= header:
        raise BadRoutingRules(
            f"{source}: the first line must be the header country,state,agency "
            f"(found {','.join(reader.fieldnames or []) or 'nothing'})"
        )
    unknown = header - need
    if unknown:
        raise BadRoutingRules(f"{source}: unknown column(s) {', '.join(sorted(unknown))}")
    rules: list[Rule] = []
    seen: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    for n, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        country = row.get("country", "").upper()
        state = row.get("state", "")
        agency = row.get("agency", "")
        if not any(row.values()):
            continue
        if country != FALLBACK and (country not in COUNTRIES or not country):
            problems.append(f"line {n}: {country!r} is not an ISO 3166-1 alpha-2 country or *")
            continue
        if country == FALLBACK and state:
            problems.append(f"line {n}: the fallback row (*) takes no state")
            continue
        if country == "US" and state and state.upper() not in US_STATES:
            problems.append(f"line {n}: {state!r} is not a US state code (e.g. TX)")
            continue
        if not agency:
            problems.append(f"line {n}: the agency is empty")
            continue
        if len(agency) > 200 or len(state) > 100:
            problems.append(f"line {n}: agency (200) or state (100) is too long")
            continue
        key = (country, state.upper())
        if key in seen:
            problems.append(
                f"line {n}: {country}{'/' + state if state else ''} repeats line {seen[key]}"
            )
            continue
        seen[key] = n
        rules.append(Rule(country, state.upper() or None, agency))
    if problems:
        raise BadRoutingRules(f"{source}: " + "; ".join(problems), problems)
    return rules


def import_rules(
    session: Session,
    rules: Sequence[Rule],
    *,
    fallback: str | None = None,
    actor: str | None = None,
    source: str = "rules.csv",
) -> list[Rule]:
    """Replace the routing table with `rules` (logged). `fallback` names the desk
    unless the rules have a `*` row; without either, the desk is `DEFAULT_FALLBACK`."""
    if fallback is not None and not fallback.strip():
        raise BadInput("the fallback desk needs a name")
    if fallback is not None and any(r.country == FALLBACK for r in rules):
        raise BadInput("give the fallback desk either as a * row or as --fallback, not both")
    items = list(rules)
    if fallback is not None:
        items.append(Rule(FALLBACK, None, fallback.strip()))
    session.execute(delete(RoutingRule))
    now = utcnow()
    for r in items:
        session.add(
            RoutingRule(country=r.country, state=r.state or "", agency=r.agency, created_at=now)
        )
    auditlog.append(
        session,
        actor,
        "routing.import",
        "routing_rules",
        {"source": source, "rules": len(items), "fallback": fallback},
    )
    session.flush()
    return list_rules(session)


def import_file(
    session: Session, path: str | Path, *, fallback: str | None = None, actor: str | None = None
) -> list[Rule]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BadRoutingRules(f"cannot read {p}: {exc}") from None
    return import_csv(session, data, source=str(p), fallback=fallback, actor=actor)


def import_csv(
    session: Session,
    data: bytes,
    *,
    source: str = "rules.csv",
    fallback: str | None = None,
    actor: str | None = None,
) -> list[Rule]:
    """Replace the routing rules with a CSV file's bytes (the CLI's file, the UI's upload)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRoutingRules(f"cannot read {source}: {exc}") from None
    return import_rules(
        session, parse_rules_csv(text, source=source), fallback=fallback, actor=actor, source=source
    )


def list_rules(session: Session) -> list[Rule]:
    rows = session.scalars(select(RoutingRule).order_by(RoutingRule.country, RoutingRule.state))
    return [Rule(r.country, r.state or None, r.agency) for r in rows]


def load_table(session: Session) -> RoutingTable:
    """The routing table as `route` uses it (read once per intake batch)."""
    rules: dict[tuple[str, str], str] = {}
    fallback = DEFAULT_FALLBACK
    for r in session.scalars(select(RoutingRule)):
        if r.country == FALLBACK:
            fallback = r.agency
        else:
            rules[(r.country, (r.state or "").upper())] = r.agency
    return RoutingTable(rules, fallback)


# ---------------------------------------------------------------- places


def _address_place(a: Address) -> Place | None:
    country = (a.country or "").upper()
    state = (a.state or "").upper() or None
    if not country and state in US_STATES:
        country = "US"
    if not country or country not in COUNTRIES:
        return None
    if country != "US":
        state = (a.non_usa_state or "").strip() or None
    return Place(country, state, a.city, "address")


def _estimated_place(e: EstimatedLocation | None) -> Place | None:
    if e is None or not e.country_code:
        return None
    region = (e.region or "").strip() or None
    if e.country_code == "US" and region and region.upper() not in US_STATES:
        region = None
    return Place(e.country_code, region, e.city, "ESP estimate")


def _ip_place(ev: IpCaptureEvent, geo: Geolocator) -> tuple[Place | None, str]:
    ip = (ev.ip_address or "").strip()
    label = f"IP {ip}" + (f" ({ev.event_name})" if ev.event_name else "")
    if ev.possible_proxy:
        return None, label
    return geo.locate(ip), label


def places(
    report: Report, files: Sequence[FileDetails], geo: Geolocator
) -> Iterator[tuple[Place, str]]:
    """(place, where it came from) for every located subject of the report."""

    def subject(
        who: str,
        addresses: Iterable[Address],
        estimated: EstimatedLocation | None,
        events: Iterable[IpCaptureEvent],
    ) -> Iterator[tuple[Place, str]]:
        for a in addresses:
            p = _address_place(a)
            if p is not None:
                yield p, f"{who}'s address"
        p = _estimated_place(estimated)
        if p is not None:
            yield p, f"{who}'s location estimated by the ESP"
        for ev in events:
            p, label = _ip_place(ev, geo)
            if p is not None:
                yield p, f"{who}'s {label} ({p.source})"

    for person in report.persons_reported:
        addrs = person.person.addresses if person.person else ()
        yield from subject(
            "reported person", addrs, person.estimated_location, person.ip_capture_events
        )
        for acct in person.associated_accounts:
            yield from subject("associated account", acct.addresses, None, acct.ip_capture_events)
    for victim in report.victims:
        addrs = victim.person.addresses if victim.person else ()
        yield from subject("victim", addrs, victim.estimated_location, victim.ip_capture_events)
        for acct in victim.associated_accounts:
            yield from subject(
                "victim's associated account", acct.addresses, None, acct.ip_capture_events
            )
    for rec in report.intended_recipients:
        addrs = rec.person.addresses if rec.person else ()
        yield from subject(
            "intended recipient", addrs, rec.estimated_location, rec.ip_capture_events
        )
    for details in report.internet_details:
        if details.non_internet is not None:
            for a in details.non_internet.incident_addresses:
                p = _address_place(a)
                if p is not None:
                    yield p, "incident address"
        if details.peer2peer is not None:
            for ev in details.peer2peer.ip_capture_events:
                p, label = _ip_place(ev, geo)
                if p is not None:
                    yield p, f"peer-to-peer {label} ({p.source})"
    for i, f in enumerate(files):
        if f.ip_capture_event is not None:
            p, label = _ip_place(f.ip_capture_event, geo)
            if p is not None:
                yield p, f"file {i} upload {label} ({p.source})"


def route(
    report: Report, files: Sequence[FileDetails], table: RoutingTable, geo: Geolocator
) -> list[Availability]:
    """The agencies a report is to be made available to, each with its reasons."""
    return route_places(places(report, files, geo), table)


def route_places(found: Iterable[tuple[Place, str]], table: RoutingTable) -> list[Availability]:
    """`route` from a report's located subjects (`places`, worked out beforehand: intake
    locates them where it parses, and only the routing table is applied per batch)."""
    by_agency: dict[str, tuple[list[str], Place | None]] = {}
    for place, origin in found:
        agency, rule = table.agency_for(place)
        reasons = by_agency.setdefault(agency, ([], place))[0]
        text = f"{origin}: {place.text} ({rule})"
        if text not in reasons:
            reasons.append(text)
    if not by_agency:
        return [
            Availability(
                table.fallback,
                ("no located subject in the report (the reporter's address is never used)",),
            )
        ]
    return [
        Availability(
            agency, tuple(reasons), first.country if first else None, first.state if first else None
        )
        for agency, (reasons, first) in by_agency.items()
    ]


# ---------------------------------------------------------------- availability


@dataclass(frozen=True)
class StoredAvailability:
    report_id: int
    agency: str
    why: tuple[str, ...]
    country: str | None
    state: str | None
    made_by: str
    made_available_at: dt.datetime

    @classmethod
    def of(cls, row: ReportAvailability) -> StoredAvailability:
        return cls(
            row.report_id,
            row.agency,
            tuple(row.why or ()),
            row.country,
            row.state,
            row.made_by,
            as_utc(row.made_available_at),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "agency": self.agency,
            "at": isoformat(self.made_available_at),
            "why": list(self.why),
            "country": self.country,
            "state": self.state,
            "made_by": self.made_by,
        }


def record_many(
    session: Session,
    rows: Iterable[tuple[int, Sequence[Availability]]],
    *,
    at: dt.datetime | None = None,
) -> int:
    """Store the routing of newly received reports in bulk (COPY on PostgreSQL, one
    executemany on SQLite); returns rows written."""
    now = as_utc(at or utcnow())
    batch: list[tuple[Any, ...]] = []
    count = 0
    for report_id, availabilities in rows:
        for a in availabilities:
            batch.append((report_id, a.agency, list(a.why), a.country, a.state, "rules", now))
        if len(batch) >= _CHUNK:
            insert_rows(session, _AVAILABILITY, _COLUMNS, batch)
            count += len(batch)
            batch = []
    if batch:
        insert_rows(session, _AVAILABILITY, _COLUMNS, batch)
        count += len(batch)
    return count


def record(
    session: Session,
    report_id: int,
    availabilities: Sequence[Availability],
    *,
    at: dt.datetime | None = None,
) -> list[StoredAvailability]:
    """Store one report's routing (agencies it already has are kept as they were)."""
    have = {a.agency for a in available_to(session, report_id)}
    record_many(session, [(report_id, [a for a in availabilities if a.agency not in have])], at=at)
    return available_to(session, report_id)


def make_available(
    session: Session, report_id: int, agency: str, why: str, actor: str | None = None
) -> StoredAvailability:
    """An analyst makes a report available to another agency by hand (logged)."""
    if not agency.strip() or not why.strip():
        raise BadInput("making a report available needs an agency and a reason")
    if len(agency.strip()) > 200:
        raise BadInput("an agency's name is at most 200 characters")
    existing = session.scalar(
        select(ReportAvailability).where(
            ReportAvailability.report_id == report_id, ReportAvailability.agency == agency.strip()
        )
    )
    if existing is not None:
        return StoredAvailability.of(existing)
    actor = actor or auditlog.default_actor()
    row = ReportAvailability(
        report_id=report_id, agency=agency.strip(), why=[why.strip()], made_by=actor
    )
    session.add(row)
    auditlog.append(
        session,
        actor,
        "routing.make_available",
        f"received_report:{report_id}",
        {"agency": agency.strip(), "why": why.strip()},
    )
    session.flush()
    return StoredAvailability.of(row)


def available_to(session: Session, report_id: int) -> list[StoredAvailability]:
    """Every agency a report was made available to, earliest first."""
    rows = session.scalars(
        select(ReportAvailability)
        .where(ReportAvailability.report_id == report_id)
        .order_by(ReportAvailability.made_available_at, ReportAvailability.id)
    )
    return [StoredAvailability.of(r) for r in rows]


def is_available(session: Session, report_id: int, agency: str) -> bool:
    return (
        session.scalar(
            select(ReportAvailability.id).where(
                ReportAvailability.report_id == report_id, ReportAvailability.agency == agency
            )
        )
        is not None
    )


def reports_for(
    session: Session, agency: str, *, limit: int = 100, offset: int = 0
) -> list[StoredAvailability]:
    """The reports made available to an agency, newest first."""
    rows = session.scalars(
        select(ReportAvailability)
        .where(ReportAvailability.agency == agency)
        .order_by(ReportAvailability.made_available_at.desc(), ReportAvailability.report_id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [StoredAvailability.of(r) for r in rows]


def require_available(session: Session, report_id: int, agency: str) -> None:
    """NotFound (never Forbidden: do not reveal that it exists) unless available."""
    if not is_available(session, report_id, agency):
        raise NotFound(f"no received report {report_id} available to {agency}")
