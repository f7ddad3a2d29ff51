"""`/v1/reports` through the real app (TestClient) against the local CyberTipline
server: a provider drafts, a reporter completes and files; roles are enforced."""

from __future__ import annotations

import base64
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cybertip_server import LocalCyberTip
from ridgeline.evidence import generate_key_file
from ridgeline.reports import documents as docs
from ridgeline.reports import samples
from ridgeline.service.app import ServiceConfig, create_app
from ridgeline.service.keys import create_key
from ridgeline.store import Store

MEDIA = b"benign bytes for the API test"


@pytest.fixture
def api(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, LocalCyberTip, dict[str, dict[str, str]]]]:
    headers: dict[str, dict[str, str]] = {}
    with store.session() as s:
        for role in ("provider", "reporter", "curator", "analyst"):
            _, secret = create_key(s, f"{role}-key", role, rate_limit=1000)
            headers[role] = {"Authorization": f"Bearer {secret}"}
    key_file = Path(tempfile.mkdtemp()) / "evidence.key"
    generate_key_file(key_file)
    config = ServiceConfig()
    config.evidence_key_file = str(key_file)
    with LocalCyberTip() as server:
        monkeypatch.setenv("RIDGELINE_CYBERTIP_TEST_URL", server.base)
        monkeypatch.setenv("RIDGELINE_CYBERTIP_USERNAME", server.username)
        monkeypatch.setenv("RIDGELINE_CYBERTIP_PASSWORD", server.password)
        with TestClient(create_app(config, store), raise_server_exceptions=False) as client:
            yield client, server, headers


def draft_body() -> dict[str, object]:
    incomplete = docs.to_json(samples.rich_report())
    del incomplete["reporter"]
    details = docs.to_json(samples.file_details(hashlib.md5(MEDIA).hexdigest()))
    return {
        "report": incomplete,
        "files": [
            {
                "name": "upload.png",
                "content_base64": base64.b64encode(MEDIA).decode(),
                "file_details": details,
            }
        ],
        "origin": {"scan_run": 7},
    }


def test_provider_drafts_reporter_completes_and_files(
    api: tuple[TestClient, LocalCyberTip, dict[str, dict[str, str]]],
) -> None:
    client, server, h = api
    created = client.post("/v1/reports", json=draft_body(), headers=h["provider"])
    assert created.status_code == 200, created.text
    body = created.json()
    rid = body["id"]
    assert body["state"] == "draft"
    assert {p["path"] for p in body["problems"]} == {"report/reporter"}
    # providers only create drafts
    for method, url in (
        ("GET", f"/v1/reports/{rid}"),
        ("GET", "/v1/reports"),
        ("PATCH", f"/v1/reports/{rid}"),
        ("POST", f"/v1/reports/{rid}/file"),
    ):
        denied = client.request(method, url, headers=h["provider"], json={})
        assert denied.status_code == 403, (method, url)
    assert client.get("/v1/reports", headers=h["analyst"]).status_code == 403
    patched = client.patch(
        f"/v1/reports/{rid}",
        json={"report": {"reporter": docs.to_json(samples.reporter())}},
        headers=h["reporter"],
    )
    assert patched.status_code == 200 and patched.json()["state"] == "validated", patched.text
    filed = client.post(
        f"/v1/reports/{rid}/file", json={"environment": "test"}, headers=h["reporter"]
    )
    assert filed.status_code == 200, filed.text
    shown = filed.json()
    ncmec_id = next(iter(server.reports))
    assert (shown["state"], shown["reportId"]) == ("finished", ncmec_id)
    assert shown["fileIds"] == list(server.reports[ncmec_id].files)
    assert shown["origin"] == {"scan_run": 7}
    xml = client.get(f"/v1/reports/{rid}/xml", headers=h["curator"])
    assert docs.report_from_xml(xml.content) == docs.report_from_xml(server.reports[ncmec_id].xml)


def test_bad_documents_are_400_with_paths(
    api: tuple[TestClient, LocalCyberTip, dict[str, dict[str, str]]],
) -> None:
    client, _, h = api
    res = client.post(
        "/v1/reports", json={"report": {"incidentSummary": {"colour": 1}}}, headers=h["provider"]
    )
    assert res.status_code == 400
    assert "report/incidentSummary/colour" in res.json()["error"]["message"]
    res = client.post(
        "/v1/reports", json={"report_xml": "<report><x/></report>"}, headers=h["provider"]
    )
    assert res.status_code == 400 and "unknown element 'x'" in res.json()["error"]["message"]


def test_lost_submit_reply_over_the_api(
    api: tuple[TestClient, LocalCyberTip, dict[str, dict[str, str]]],
) -> None:
    client, server, h = api
    body = draft_body()
    body["report"] = docs.to_json(samples.rich_report())
    rid = client.post("/v1/reports", json=body, headers=h["curator"]).json()["id"]
    server.fail("/submit", "drop_after")
    res = client.post(f"/v1/reports/{rid}/file", json={}, headers=h["curator"])
    assert res.status_code == 409 and res.json()["error"]["code"] == "report_needs_attention"
    again = client.post(f"/v1/reports/{rid}/file", json={}, headers=h["curator"])
    assert again.status_code == 409 and server.count("/submit") == 1
    ncmec_id = next(iter(server.reports))
    resolved = client.post(
        f"/v1/reports/{rid}/resolve", json={"report_id": ncmec_id}, headers=h["reporter"]
    )
    assert resolved.json()["state"] == "submitted"
    # no body: a submitted report goes on in its own environment
    done = client.post(f"/v1/reports/{rid}/file", headers=h["reporter"])
    assert done.json()["state"] == "finished" and server.count("/submit") == 1
    listed = client.get("/v1/reports", params={"state": "finished"}, headers=h["reporter"])
    assert [r["id"] for r in listed.json()["reports"]] == [rid]
