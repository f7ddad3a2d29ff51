"""What a match through the API sets off, on a real `ridgeline serve` (SQLite and
PostgreSQL) with a real local webhook receiver: signed webhook deliveries sent in the
background (retried with back-off, dead-lettered, replayed), and CyberTipline drafts
from `/v1/match` carrying the file, its hashes, the matched entries and the caller's
validated context; viral files batched."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from ridgeline import evidence as ev
from ridgeline import lists as L
from ridgeline import webhooks as W
from ridgeline.cli import main
from ridgeline.reports import core
from ridgeline.scan.actions import set_list_actions
from ridgeline.service.keys import create_key
from ridgeline.store import Store
from test_webhooks import Receiver

BAD = b"known bad upload (synthetic, benign bytes)\n"
LOOKED_UP = b"another listed file (synthetic)\n"
CONTEXT = {
    "user_id": "uid-42",
    "screen_name": "uploader42",
    "emails": ["Uploader@Example.com"],
    "ips": [
        {"ip": "192.0.2.10", "event": "Upload", "at": "2026-02-01T09:00:00Z"},
        {"ip": "2001:db8::1", "event": "Login"},
    ],
    "esp_service": "Example Photos",
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _wait(predicate: Callable[[], Any], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _setup(store: Store, receiver: Receiver, tmp_path: Path) -> dict[str, Any]:
    key_file = tmp_path / "evidence.key"
    ev.generate_key_file(key_file)
    with store.session() as s:
        known = L.create_list(s, "known")
        entry = L.add_entry(s, known, {"md5": md5(BAD)},
                            classifications=[{"scheme": "industry", "label": "A1"}])  # fmt: skip
        other = L.create_list(s, "other")
        looked = L.add_entry(s, other, {"md5": md5(LOOKED_UP)})
        set_list_actions(s, "known", ["flag", "report"])
        hook, secret = W.add_webhook(s, "known", receiver.url + "/hook")
        down, _ = W.add_webhook(s, "other", receiver.url + "/down")
        _, provider = create_key(s, "shop", "provider", rate_limit=1000)
        _, analyst = create_key(s, "analyst-1", "analyst", rate_limit=1000)
    return {
        "key_file": key_file,
        "entry": entry.id,
        "looked": looked.id,
        "hook": hook.id,
        "down": down.id,
        "secret": secret,
        "provider": {"Authorization": f"Bearer {provider}"},
        "analyst": {"Authorization": f"Bearer {analyst}"},
    }


def test_match_fires_webhooks_in_the_background_and_drafts_reports(
    store: Store, receiver: Receiver, tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    env = _setup(store, receiver, tmp_path)
    db = store.url
    receiver.script["/hook"] = [500, 503]  # two failures, then accepted
    receiver.delay["/hook"] = 1.5  # a slow receiver: requests never wait for it
    receiver.script["/down"] = [500] * 3  # fails every try: a dead letter
    server = serve_process(
        "serve", "--port", "{port}", "--db", db, "--evidence-key-file", str(env["key_file"]),
        "--webhook-base-delay", "0.2", "--webhook-max-attempts", "3", "--webhook-timeout", "5",
    )  # fmt: skip
    base, h = server.base, env["provider"]
    warm = httpx.post(f"{base}/v1/match", files={"file": ("w.bin", b"no match")}, headers=h)
    assert warm.status_code == 200 and warm.json()["actions"] == []

    # an upload that matches a list with a webhook and the report action
    started = time.monotonic()
    res = httpx.post(
        f"{base}/v1/match",
        files={"file": ("holiday.jpg", BAD)},
        data={"context": json.dumps(CONTEXT)},
        headers=h,
        timeout=30,
    )
    took = time.monotonic() - started
    assert res.status_code == 200, res.text
    body = res.json()
    assert [m["entry_id"] for m in body["matches"]] == [env["entry"]]
    actions = {a["action"]: a for a in body["actions"]}
    assert set(actions) == {"webhook", "report"} and actions["report"]["lists"] == ["known"]
    assert took < 1.0  # answered long before the slow receiver answered its first try
    report_id = actions["report"]["report_id"]
    (delivery_id,) = actions["webhook"]["deliveries"]

    # delivered in the background: two failures with back-off, then accepted
    calls = _wait(lambda: len(receiver.on("/hook")) == 3 and receiver.on("/hook"))
    assert calls[1]["at"] - calls[0]["at"] >= 0.2 * 0.9
    assert calls[2]["at"] - calls[1]["at"] >= 0.4 * 0.9
    assert {c["headers"]["X-Ridgeline-Delivery"] for c in calls} == {str(delivery_id)}
    assert len({c["body"] for c in calls}) == 1  # a retry sends the same bytes
    for c in calls:
        assert W.verify_signature(env["secret"], c["body"], c["headers"]["X-Ridgeline-Signature"])
    event = json.loads(calls[0]["body"])
    assert event["event"] == "match" and event["source"] == "api" and event["list"] == "known"
    assert event["route"] == "/v1/match" and event["sha256"] == hashlib.sha256(BAD).hexdigest()
    assert event["matches"][0]["entry_id"] == env["entry"]
    assert b"holiday" not in calls[0]["body"] and b"uid-42" not in calls[0]["body"]

    # the draft: the file (encrypted), its hashes, the matched entry, the context
    key = ev.EvidenceKey.load(env["key_file"])
    with store.session() as s:
        row = core.get_report(s, report_id)
        (f,) = row.files
        assert core.file_bytes(f, key) == BAD and f.file_name == "holiday.jpg"
        details = core.details_of(f)
        report = core.report_of(row)
        origin = dict(row.origin)
    assert details is not None and details.industry_classification == "A1"
    hashes = {h.hash_type: h.value for h in details.original_file_hashes}
    assert hashes["MD5"] == md5(BAD) and hashes["SHA1"] == hashlib.sha1(BAD).hexdigest()
    assert hashes["SHA256"] == hashlib.sha256(BAD).hexdigest()
    assert details.ip_capture_event is not None
    assert details.ip_capture_event.ip_address == "192.0.2.10"
    (person,) = report.persons_reported
    assert person.esp_identifier == "uid-42" and person.screen_name == "uploader42"
    assert person.person is not None and person.person.emails[0].value == "Uploader@example.com"
    assert [e.ip_address for e in person.ip_capture_events] == ["192.0.2.10", "2001:db8::1"]
    assert origin["key"] == "shop" and origin["source"] == "api"
    assert origin["matches"][0]["entries"][0]["classifications"] == [
        {"scheme": "industry", "label": "A1"}
    ]

    # the draft is a CyberTipline draft of /v1/reports, not readable by the provider
    shown = httpx.get(f"{base}/v1/reports/{report_id}", headers=h)
    assert shown.status_code == 403  # providers create drafts; reporters and curators read

    # hashes only (JSON): a draft with the hashes, no file; context validated
    res = httpx.post(
        f"{base}/v1/match",
        json={"signals": {"md5": md5(BAD)}, "context": {"user_id": "uid-7"}},
        headers=h,
    )
    assert res.status_code == 200, res.text
    hashed = next(a for a in res.json()["actions"] if a["action"] == "report")["report_id"]
    with store.session() as s:
        row = core.get_report(s, hashed)
        assert row.files == [] and md5(BAD) in (row.document.get("additionalInfo") or "")
        persons = row.document["personOrUserReported"]
        assert persons[0]["espIdentifier"] == "uid-7"

    # bad context: every problem named, nothing drafted
    with store.session() as s:
        before = len(core.list_reports(s))
    bad = {
        "emails": ["not-an-address"],
        "ips": [{"ip": "999.1.1.1"}, {"ip": "192.0.2.1", "event": "Dance"},
                {"ip": "192.0.2.2", "at": "2999-01-01T00:00:00Z"}],
        "nickname": "x",
    }  # fmt: skip
    res = httpx.post(
        f"{base}/v1/match", json={"signals": {"md5": md5(BAD)}, "context": bad}, headers=h
    )
    assert res.status_code == 400, res.text
    message = res.json()["error"]["message"]
    for part in ("context.emails[0]", "context.ips[0].ip", "context.ips[1].event",
                 "context.ips[2].at", "in the future", "nickname"):  # fmt: skip
        assert part in message, message
    with store.session() as s:
        assert len(core.list_reports(s)) == before

    # a role that may match but not draft reports: the webhook fires, no draft
    res = httpx.post(f"{base}/v1/match", json={"signals": {"md5": md5(BAD)}},
                     headers=env["analyst"])  # fmt: skip
    assert [a["action"] for a in res.json()["actions"]] == ["webhook"]

    # a lookup on a list with a webhook (the fast path): queued, delivered, dead-lettered
    res = httpx.get(
        f"{base}/v1/lookup", params={"signal": "md5", "value": md5(LOOKED_UP)}, headers=h
    )
    assert res.status_code == 200, res.text
    (looked_action,) = res.json()["actions"]
    assert looked_action["action"] == "webhook" and looked_action["lists"] == ["other"]
    (dead_id,) = looked_action["deliveries"]
    _wait(lambda: len(receiver.on("/down")) == 3)

    def dead() -> list[Any]:
        with store.session() as s:
            return [d.id for d in W.list_deliveries(s, "dead")]

    assert _wait(dead) == [dead_id]
    down = json.loads(receiver.on("/down")[0]["body"])
    assert down["route"] == "/v1/lookup" and down["value"] == md5(LOOKED_UP)
    # nothing matched: no actions key (the answer is as before)
    res = httpx.get(f"{base}/v1/lookup", params={"signal": "md5", "value": "0" * 32}, headers=h)
    assert res.json() == {"signal": "md5", "value": "0" * 32, "matches": []}

    # the receiver is back: `ridgeline webhooks replay` sends the dead letter again
    runner = CliRunner()
    out = runner.invoke(main, ["webhooks", "replay", str(dead_id), "--db", db, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["status"] == "delivered"
    assert len(receiver.on("/down")) == 4 and len({c["body"] for c in receiver.on("/down")}) == 1


def test_viral_file_from_many_users_is_batched(
    store: Store, receiver: Receiver, tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    env = _setup(store, receiver, tmp_path)
    server = serve_process(
        "serve", "--port", "{port}", "--db", store.url,
        "--evidence-key-file", str(env["key_file"]), "--viral-users", "3",
    )  # fmt: skip
    ids = []
    for user in ("u1", "u2", "u2", "u3"):
        res = httpx.post(
            f"{server.base}/v1/match",
            files={"file": ("meme.png", BAD)},
            data={"context": json.dumps({"user_id": user})},
            headers=env["provider"],
        )
        assert res.status_code == 200, res.text
        ids += [a["report_id"] for a in res.json()["actions"] if a["action"] == "report"]
    assert len(ids) == 4
    with store.session() as s:
        rows = [core.get_report(s, i) for i in ids]
        batched = ["batchedReport" in r.document for r in rows]
        viral = [bool((r.files[0].details or {}).get("fileAnnotations", {}).get("viral"))
                 for r in rows]  # fmt: skip
        first = rows[0].document.get("batchedReport")
    # the third distinct user makes the file viral: every draft of it is batched
    assert batched == [True, True, True, True] and viral == [True, True, True, True]
    assert first == {"reason": "VIRAL_POTENTIAL_MEME"}


def test_from_match_to_a_finished_report_through_the_api(
    store: Store, receiver: Receiver, tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    """Issue 12's end: a provider's upload drafts the report; a reporter completes it
    (JSON merge patch, validated again) and files it on the local CyberTipline."""
    import os

    from cybertip_server import LocalCyberTip
    from ridgeline.reports import documents as docs
    from ridgeline.reports import samples

    env = _setup(store, receiver, tmp_path)
    with store.session() as s:
        _, reporter = create_key(s, "ts-team", "reporter", rate_limit=1000)
    rh = {"Authorization": f"Bearer {reporter}"}
    with LocalCyberTip() as cybertip:
        server = serve_process(
            "serve", "--port", "{port}", "--db", store.url,
            "--evidence-key-file", str(env["key_file"]),
            env={**os.environ, "RIDGELINE_CYBERTIP_TEST_URL": cybertip.base,
                 "RIDGELINE_CYBERTIP_USERNAME": cybertip.username,
                 "RIDGELINE_CYBERTIP_PASSWORD": cybertip.password},
        )  # fmt: skip
        res = httpx.post(
            f"{server.base}/v1/match",
            files={"file": ("holiday.jpg", BAD)},
            data={"context": json.dumps(CONTEXT)},
            headers=env["provider"],
        )
        assert res.status_code == 200, res.text
        rid = next(a["report_id"] for a in res.json()["actions"] if a["action"] == "report")
        draft = httpx.get(f"{server.base}/v1/reports/{rid}", headers=rh).json()
        assert draft["state"] == "draft"  # the reporter is not known to the upload
        assert {p["path"] for p in draft["problems"] if p["severity"] == "error"} == {
            "report/reporter"
        }
        patched = httpx.patch(
            f"{server.base}/v1/reports/{rid}",
            json={"report": {"reporter": docs.to_json(samples.reporter())}},
            headers=rh,
        )
        assert patched.status_code == 200 and patched.json()["state"] == "validated", patched.text
        filed = httpx.post(
            f"{server.base}/v1/reports/{rid}/file",
            json={"environment": "test"},
            headers=rh,
            timeout=60,
        )
        assert filed.status_code == 200, filed.text
        shown = filed.json()
        assert shown["state"] == "finished"
        remote = cybertip.reports[shown["reportId"]]
        (sent,) = remote.files.values()
        assert sent.md5 == md5(BAD) and sent.name == "holiday.jpg"
        assert sent.details is not None
        details = docs.file_details_from_xml(sent.details)
        assert details.industry_classification == "A1"
        assert details.report_id == shown["reportId"] and details.file_id == sent.file_id
        report = docs.report_from_xml(remote.xml)
        assert report.persons_reported[0].esp_identifier == "uid-42"
        assert report.incident_summary is not None
        assert report.incident_summary.incident_date_time is not None  # the upload's time
