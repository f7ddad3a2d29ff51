"""Synthetic received reports for the bench, the tests and the docs.

People are `userN@example.com`, phones `2xx-555-01xx`, IPs from the documentation
ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), file hashes are
digests of counters; nothing describes any real person or content. The population is
built so that linking has something to do: users appear in several reports (a long
tail), a few ESP desks report everything (their contact details must not link), some
users share a carrier-grade NAT address (flagged `possibleProxy` or far apart in time),
and a handful of meme files are in many reports (viral: bundled, not linked).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

INCIDENT_TYPES = (
    "Child Pornography (possession, manufacture, and distribution)",
    "Child Pornography (possession, manufacture, and distribution)",
    "Child Pornography (possession, manufacture, and distribution)",
    "Online Enticement of Children for Sexual Acts",
    "Child Sex Trafficking",
    "Unsolicited Obscene Material Sent to a Child",
)
ESPS = ("Example Photos", "Example Chat", "Example Video", "Example Social")
STATES = ("IL", "TX", "GA", "CA", "NY", "FL", "WA")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Population:
    """Parameters of the synthetic population."""

    reports: int
    seed: int = 13
    #: Distinct users per report (the rest are repeat appearances).
    users_per_report: float = 0.6
    #: Viral meme files (each in many reports).
    memes: int = 5
    #: Share of reports that carry a meme.
    meme_share: float = 0.02
    #: Share of files with a PDQ hash.
    pdq_share: float = 0.3


def _hex(*parts: object, n: int = 64) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:n]


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _phone(k: int) -> str:
    return f"{200 + (k // 100) % 700}-555-01{k % 100:02d}"


def _imei(k: int) -> str:
    return f"35{k:013d}"


def report_json(n: int, pop: Population, rng: random.Random) -> dict[str, Any]:
    """The n-th synthetic report as `{"report": ..., "files": [...]}` (schema JSON)."""
    users = max(1, int(pop.reports * pop.users_per_report))
    # A long tail: most users once, some many times.
    u = int(users * (rng.random() ** 1.5))
    esp = ESPS[u % len(ESPS)]
    # Five minutes apart, closer for a large population: every time stays within
    # 300 days of START, in the past (a future incident time is refused).
    step = min(300, 300 * 86400 // max(pop.reports, 1))
    when = START + dt.timedelta(seconds=n * step + rng.randint(0, 240) * 60)
    ip_events: list[dict[str, Any]] = [
        {
            "ipAddress": f"2001:db8:{u >> 16:x}:{u & 0xFFFF:x}::1",
            "eventName": "Upload",
            "dateTime": _iso(when),
        },
    ]
    if rng.random() < 0.1:  # a shared carrier-grade NAT address, mostly flagged as such
        ip_events.append(
            {
                "ipAddress": f"203.0.113.{rng.randrange(256)}",
                "eventName": "Login",
                "dateTime": _iso(when),
                "possibleProxy": rng.random() < 0.9,
            }
        )
    person: dict[str, Any] = {
        "email": [{"value": f"user{u}@example.com", "type": "Home"}],
        "address": [
            {
                "type": "Home",
                "city": "Springfield",
                "state": STATES[u % len(STATES)],
                "country": "US",
            }
        ],
    }
    if u % 3 == 0:
        person["phone"] = [{"value": _phone(u), "type": "Mobile"}]
    if u % 5 == 0:
        person["email"].append({"value": f"User{u}.Alt@Example.com", "type": "Recovery"})
    suspect: dict[str, Any] = {
        "personOrUserReportedPerson": person,
        "espIdentifier": f"uid-{u}",
        "espService": esp,
        "screenName": f"user_{u}",
        "ipCaptureEvent": ip_events,
    }
    if u % 4 == 0:
        suspect["deviceId"] = [{"idType": "IMEI", "idValue": _imei(u)}]
    summary: dict[str, Any] = {
        "incidentType": INCIDENT_TYPES[n % len(INCIDENT_TYPES)],
        "platform": esp,
        "incidentDateTime": _iso(when),
    }
    if n % 50 == 0:
        summary["escalateToHighPriority"] = "Ongoing contact with a minor suspected"
    desk = esp.lower().replace(" ", "-")
    report: dict[str, Any] = {
        "incidentSummary": summary,
        "reporter": {
            "reportingPerson": {
                "firstName": "Riley",
                "lastName": "Analyst",
                "email": [{"value": f"trust-safety@{desk}.example.com", "type": "Work"}],
                "phone": [{"value": "555-0100", "type": "Work", "countryCallingCode": "+1"}],
            }
        },
        "personOrUserReported": [suspect],
    }
    if n % 7 == 0:
        report["victim"] = [{"victimPerson": {"age": 12 + n % 5}}]
    files = []
    for j in range(1 + (n % 3 == 0)):
        if rng.random() < pop.meme_share:
            key: tuple[object, ...] = ("meme", rng.randrange(pop.memes))
        else:
            key = ("file", u, rng.randrange(3))
        hashes = [
            {"value": _hex(*key, "md5", n=32), "hashType": "MD5"},
            {"value": _hex(*key, "sha1", n=40), "hashType": "SHA1"},
            {"value": _hex(*key, "sha256"), "hashType": "SHA256"},
        ]
        if rng.random() < pop.pdq_share:
            hashes.append({"value": _hex(*key, "pdq"), "hashType": "PDQ"})
        files.append(
            {
                "originalFileName": f"upload-{n}-{j}.jpg",
                "fileViewedByEsp": rng.random() < 0.7,
                "publiclyAvailable": rng.random() < 0.1,
                "fileRelevance": "Reported",
                "originalFileHash": hashes,
            }
        )
    return {"report": report, "files": files}


def reports(pop: Population) -> Iterator[dict[str, Any]]:
    """The population's reports in arrival order."""
    rng = random.Random(pop.seed)
    for n in range(pop.reports):
        yield report_json(n, pop, rng)


def jsonl_lines(pop: Population) -> Iterator[bytes]:
    """The reports as JSONL lines (what `reports intake x.jsonl` reads)."""
    for doc in reports(pop):
        yield json.dumps(doc, separators=(",", ":")).encode()
