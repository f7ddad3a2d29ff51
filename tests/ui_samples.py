"""Benign synthetic received reports for the UI's clearinghouse pages (tests and the
screenshots in docs/ui.md): example.com addresses, 555-01xx phones, documentation IP
ranges, hashes of counters. Routing sends Illinois to `AGENCY` and Texas to `OTHER`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ridgeline import routing
from ridgeline.intake import Incoming, Pipeline, default_steps
from ridgeline.store import Store

AGENCY = "Example Agency"
OTHER = "Other Agency"
FALLBACK = "Example fallback desk"


def _hashes(key: str) -> list[dict[str, str]]:
    return [
        {"value": hashlib.md5(key.encode()).hexdigest(), "hashType": "MD5"},
        {"value": hashlib.sha256(key.encode()).hexdigest(), "hashType": "SHA256"},
    ]


def report_doc(
    n: int,
    *,
    user: int,
    state: str,
    files: list[bool],
    escalate: str | None = None,
    victim_age: int | None = None,
) -> dict[str, Any]:
    """A schema-JSON report: user `user` in US state `state`, one file per flag in
    `files` (whether the ESP viewed it)."""
    when = f"2026-11-{1 + n:02d}T10:00:00Z"
    summary: dict[str, Any] = {
        "incidentType": "Child Pornography (possession, manufacture, and distribution)",
        "platform": "Example Photos",
        "incidentDateTime": when,
    }
    if escalate:
        summary["escalateToHighPriority"] = escalate
    report: dict[str, Any] = {
        "incidentSummary": summary,
        "reporter": {
            "reportingPerson": {
                "firstName": "Riley",
                "lastName": "Analyst",
                "email": [{"value": "trust-safety@photos.example.com", "type": "Work"}],
            }
        },
        "personOrUserReported": [
            {
                "personOrUserReportedPerson": {
                    "email": [{"value": f"user{user}@example.com", "type": "Home"}],
                    "phone": [{"value": f"312-555-01{user:02d}", "type": "Mobile"}],
                    "address": [
                        {"type": "Home", "city": "Springfield", "state": state, "country": "US"}
                    ],
                },
                "espIdentifier": f"uid-{user}",
                "espService": "Example Photos",
                "screenName": f"user_{user}",
                "ipCaptureEvent": [
                    {"ipAddress": f"192.0.2.{user}", "eventName": "Upload", "dateTime": when}
                ],
            }
        ],
    }
    if victim_age is not None:
        report["victim"] = [{"victimPerson": {"age": victim_age}}]
    docs = [
        {
            "originalFileName": f"upload-{n}-{j}.jpg",
            "fileViewedByEsp": viewed,
            "publiclyAvailable": False,
            "fileRelevance": "Reported",
            "originalFileHash": _hashes(f"ui-sample-file-{n}-{j}"),
        }
        for j, viewed in enumerate(files)
    ]
    return {"report": report, "files": docs}


#: name -> document. `linked_*` share user 1's email, phone and IP (one case).
SAMPLES: dict[str, dict[str, Any]] = {
    "linked_a": report_doc(1, user=1, state="IL", files=[True, False]),
    "linked_b": report_doc(2, user=1, state="IL", files=[True]),
    "linked_c": report_doc(3, user=1, state="IL", files=[True]),
    "texas": report_doc(4, user=2, state="TX", files=[False]),
    "urgent": report_doc(
        5,
        user=3,
        state="IL",
        files=[True],
        escalate="Ongoing contact with a minor suspected",
        victim_age=12,
    ),
    "lone": report_doc(6, user=4, state="IL", files=[True]),
}


@dataclass(frozen=True)
class Seeded:
    """Report ids by sample name, and the case of the linked reports."""

    reports: dict[str, int]
    linked_case: int


def seed_clearinghouse(db: str) -> Seeded:
    """Routing rules, then the samples through the real intake pipeline."""
    store = Store.open(db)
    try:
        with store.session() as s:
            routing.import_rules(
                s,
                [routing.Rule("US", "IL", AGENCY), routing.Rule("US", "TX", OTHER)],
                fallback=FALLBACK,
                actor="test",
            )
        pipeline = Pipeline(steps=default_steps(store))
        docs = [
            Incoming(f"sample:{name}", json.dumps(doc).encode(), "json")
            for name, doc in SAMPLES.items()
        ]
        with store.session() as s:
            outcomes = pipeline.ingest(s, docs, received_by="test")
        ids = {}
        for name, o in zip(SAMPLES, outcomes, strict=True):
            assert o.status == "stored" and o.report_id is not None, o
            ids[name] = o.report_id
        from ridgeline import cases

        with store.session() as s:
            case = cases.case_of(s, ids["linked_a"])
            assert cases.case_of(s, ids["linked_b"]) == case, "samples did not link"
        return Seeded(ids, case)
    finally:
        store.close()
