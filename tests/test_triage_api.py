"""Triage, routing, statistics and law-enforcement access through a real
`ridgeline serve` process, on SQLite and PostgreSQL: the role matrix, agency-bound keys,
the Wilson file gate over HTTP, and every view in the tamper-evident log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ridgeline import auditlog, routing
from ridgeline.reports.model import Address
from ridgeline.service.keys import create_key
from ridgeline.store import Store
from test_referral import RULES, doc, ingest
from triage_samples import TRAFFICKING, make_file, make_report

ROLES = {
    "admin": None,
    "analyst": None,
    "auditor": None,
    "provider": None,
    "tx": "Texas ICAC Task Force",
    "fed": "US federal desk",
}


def test_role_matrix_and_le_access(store: Store, serve_process: Callable[..., Any]) -> None:
    with store.session() as s:
        routing.import_rules(s, RULES)
    tx, ny = ingest(
        store,
        [
            doc(
                make_report(incident_type=TRAFFICKING, user="alpha",
                            address=Address(state="TX", country="US")),
                [make_file(1, viewed=True), make_file(2, viewed=False)],
            ),
            doc(make_report(user="beta", address=Address(state="NY", country="US"))),
        ],
    )  # fmt: skip
    keys: dict[str, dict[str, str]] = {}
    with store.session() as s:
        for name, agency in ROLES.items():
            role = "law-enforcement" if agency else name
            _, secret = create_key(s, f"{name}-key", role, rate_limit=1000, agency=agency)
            keys[name] = {"Authorization": f"Bearer {secret}"}
    server = serve_process("serve", "--port", "{port}", "--db", store.url)
    base = server.base

    def get(path: str, who: str, **kw: Any) -> httpx.Response:
        return httpx.get(f"{base}/v1{path}", headers=keys[who], timeout=30, **kw)

    def post(path: str, who: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{base}/v1{path}", headers=keys[who], json=body, timeout=30)

    matrix = {
        "/triage/queue": {"admin": 200, "analyst": 200, "auditor": 403, "provider": 403, "tx": 403},
        f"/triage/{tx}": {"analyst": 200, "tx": 403, "provider": 403},
        "/routing/rules": {"analyst": 200, "tx": 403, "provider": 403},
        "/stats/intake": {"auditor": 200, "analyst": 200, "tx": 403, "provider": 403},
        "/le/reports": {"tx": 200, "fed": 200, "admin": 403, "analyst": 403, "provider": 403},
    }
    for path, expected in matrix.items():
        for who, status in expected.items():
            r = get(path, who)
            assert r.status_code == status, (path, who, r.text)
            if status == 403:
                assert r.json()["error"]["code"] == "forbidden"

    queue = get("/triage/queue", "analyst").json()["reports"]
    assert [q["report_id"] for q in queue] == [tx, ny] and queue[0]["priority"] == 1
    r = post(f"/triage/{ny}/override", "analyst", {"priority": 2, "reason": "ESP phoned: urgent"})
    assert r.status_code == 200 and r.json()["override"]["computed_priority"] == 3
    assert post(f"/triage/{ny}/override", "tx", {"priority": 1, "reason": "x"}).status_code == 403
    assert (
        post(f"/triage/{ny}/override", "analyst", {"priority": 7, "reason": "x"}).status_code == 400
    )
    assert get("/stats/intake", "auditor").json()["by_priority"] == {"1": 1, "2": 1, "3": 0, "4": 0}

    # each agency sees its own reports only; another's answers 404
    assert [r["report_id"] for r in get("/le/reports", "tx").json()["reports"]] == [tx]
    assert [r["report_id"] for r in get("/le/reports", "fed").json()["reports"]] == [ny]
    assert get(f"/le/reports/{ny}", "tx").status_code == 404
    assert get(f"/le/reports/{tx}", "fed").status_code == 404
    view = get(f"/le/reports/{tx}", "tx").json()
    assert [f["locked"] for f in view["files"]] == [False, True]
    assert view["made_available"]["agency"] == "Texas ICAC Task Force"
    assert view["preservation"]["days_left"] > 300
    assert get(f"/le/reports/{tx}/files/0", "tx").json()["details"]["fileName"] == "file1.jpg"
    locked = get(f"/le/reports/{tx}/files/1", "tx")
    assert locked.status_code == 403 and locked.json()["error"]["code"] == "file_locked"
    assert (
        post(f"/le/reports/{tx}/legal-process", "analyst", {"reference": "W-1"}).status_code == 403
    )
    lp = post(
        f"/le/reports/{tx}/legal-process",
        "tx",
        {"kind": "warrant", "reference": "W-1", "files": [1]},
    )
    assert lp.status_code == 201, lp.text
    assert lp.json()["agency"] == "Texas ICAC Task Force"
    assert get(f"/le/reports/{tx}/files/1", "tx").json()["details"]["fileName"] == "file2.jpg"
    text = get(f"/le/reports/{tx}/preservation", "tx", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain") and "alpha" in text.text
    assert get(f"/le/reports/{tx}/preservation", "tx").json()["requesting_agency"] == (
        "Texas ICAC Task Force"
    )

    with store.session() as s:
        log = [
            (r.actor, r.action, r.subject, json.loads(r.details).get("agency"))
            for r in s.query(auditlog.LogRecord).order_by(auditlog.LogRecord.seq)
            if r.action.startswith(("le.", "triage."))
        ]
        assert auditlog.verify(s).ok
    tx_agency = "Texas ICAC Task Force"
    assert log == [
        ("key:analyst-key", "triage.override", f"received_report:{ny}", None),
        ("key:tx-key", "le.view_report", f"received_report:{tx}", tx_agency),
        ("key:tx-key", "le.view_file", f"received_report:{tx}/file:0", tx_agency),
        ("key:tx-key", "le.file_refused", f"received_report:{tx}/file:1", tx_agency),
        ("key:tx-key", "le.legal_process", f"received_report:{tx}", tx_agency),
        ("key:tx-key", "le.view_file", f"received_report:{tx}/file:1", tx_agency),
        ("key:tx-key", "le.preservation_request", f"received_report:{tx}", tx_agency),
        ("key:tx-key", "le.preservation_request", f"received_report:{tx}", tx_agency),
    ]


def test_law_enforcement_keys_need_an_agency(store: Store) -> None:
    with store.session() as s:
        with pytest.raises(Exception, match="needs --agency"):
            create_key(s, "le", "law-enforcement")
        with pytest.raises(Exception, match="only law-enforcement keys"):
            create_key(s, "an", "analyst", agency="X")
