"""`POST /v1/intake` and `/v1/cases` on a real app over a real store (both backends)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ridgeline.reports import documents, samples
from ridgeline.reports.models import ReceivedReport
from ridgeline.service.app import ServiceConfig, create_app
from ridgeline.service.keys import create_key
from ridgeline.store import Store
from test_intake import doc


def _client(store: Store) -> tuple[TestClient, dict[str, dict[str, str]]]:
    keys = {}
    with store.session() as s:
        for role in ("intake", "analyst", "provider"):
            _, secret = create_key(s, f"{role}-key", role, rate_limit=1000)
            keys[role] = {"Authorization": f"Bearer {secret}"}
    return TestClient(create_app(ServiceConfig(), store)), keys


def _count(store: Store) -> int:
    with store.session() as s:
        return int(s.execute(select(func.count()).select_from(ReceivedReport)).scalar_one())


def test_intake_over_http(store: Store) -> None:
    client, keys = _client(store)
    with client:
        xml = documents.report_to_xml(samples.rich_report(7))
        headers = {**keys["intake"], "Content-Type": "application/xml", "Idempotency-Key": "a-1"}
        res = client.post("/v1/intake", content=xml, headers=headers)
        assert res.status_code == 201, res.text
        first: dict[str, Any] = res.json()
        assert first["status"] == "stored" and first["source"] == "http"
        again = client.post("/v1/intake", content=xml, headers=headers)
        assert again.status_code == 200
        assert again.json()["status"] == "duplicate"
        assert again.json()["report_id"] == first["report_id"]
        # bad: 422 with every problem, nothing stored
        bad = doc(email="user1@example.com")
        del bad["report"]["reporter"]
        bad["report"]["incidentSummary"]["incidentType"] = "nope"
        res = client.post("/v1/intake", json=bad, headers=keys["intake"])
        assert res.status_code == 422
        assert {p["path"] for p in res.json()["problems"]} >= {
            "report/reporter", "report/incidentSummary/incidentType",
        }  # fmt: skip
        assert _count(store) == 1
        # a batch as JSON lines: one row each, keys KEY:0, KEY:1
        lines = b"\n".join(json.dumps(doc(email="user2@example.com")).encode() for _ in range(3))
        batch_headers = {
            **keys["intake"], "Content-Type": "application/x-ndjson", "Idempotency-Key": "b",
        }  # fmt: skip
        res = client.post("/v1/intake", content=lines, headers=batch_headers)
        assert res.status_code == 200
        rows = res.json()["results"]
        assert [r["status"] for r in rows] == ["stored"] * 3
        assert (
            client.post("/v1/intake", content=lines, headers=batch_headers).json()["results"][2][
                "status"
            ]
            == "duplicate"
        )
        # a JSON list works the same way
        res = client.post(
            "/v1/intake", json=[doc(email="user3@example.com")], headers=keys["intake"]
        )
        assert res.json()["results"][0]["status"] == "stored"
        res = client.post("/v1/intake", content=b"x", headers={**keys["intake"],
                          "Content-Type": "text/plain"})  # fmt: skip
        assert res.status_code == 400 and res.json()["error"]["code"] == "invalid_request"
        # the intake role only sends; providers may not send
        assert client.get("/v1/cases", headers=keys["intake"]).status_code == 403
        assert client.post("/v1/intake", json=bad, headers=keys["provider"]).status_code == 403

        analyst = keys["analyst"]
        shown = client.get(f"/v1/intake/{rows[0]['report_id']}", headers=analyst).json()
        assert shown["case_id"] is not None
        assert shown["priority"] in (1, 2, 3, 4) and "available_to" in shown
        case_id = shown["case_id"]
        listed = client.get("/v1/cases", params={"min_reports": 2}, headers=analyst).json()
        case = next(c for c in listed["cases"] if c["case_id"] == case_id)
        assert sorted(case["reports"]) == sorted(r["report_id"] for r in rows)
        assert case["links"][0]["identifier"] == "email"
        found = client.get(
            "/v1/cases/lookup", params={"kind": "email", "value": "USER2@example.com"},
            headers=analyst,
        ).json()  # fmt: skip
        assert [c["case_id"] for c in found["cases"]] == [case_id]
        detail = client.get(f"/v1/cases/{case_id}", headers=analyst).json()
        assert len(detail["reports"]) == 3 and detail["timeline"]
        res = client.post(
            f"/v1/cases/{case_id}/split",
            json={"reports": [rows[2]["report_id"]], "reason": "two people"},
            headers=analyst,
        )
        assert res.status_code == 200, res.text
        new_id = res.json()["new_case_id"]
        res = client.post(
            f"/v1/cases/{case_id}/merge", json={"other": new_id, "reason": "one"}, headers=analyst
        )
        assert res.status_code == 200
        res = client.post(
            f"/v1/cases/{case_id}/merge", json={"other": new_id, "reason": "again"},
            headers=analyst,
        )  # fmt: skip
        assert res.status_code == 409 and res.json()["error"]["code"] == "conflict"
        assert client.get("/v1/cases/999999", headers=analyst).status_code == 404
