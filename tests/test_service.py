"""The HTTP API: every endpoint x role, errors as JSON, limits, rate limits, URL
fetching, keys, health and metrics; hot updates across real uvicorn workers."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from intake_api_samples import INTAKE_SAMPLES
from report_api_samples import REPORT_SAMPLES
from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.audit import create_audit
from ridgeline.audit import next_item as audit_next_item
from ridgeline.cli import main
from ridgeline.evidence import generate_key_file, store_evidence
from ridgeline.review.core import add_reviewer
from ridgeline.review.queue import next_item
from ridgeline.scan.models import FloodHold
from ridgeline.service.app import ServiceConfig, create_app
from ridgeline.service.auth import PERMISSION_KEY, POLICY, PUBLIC
from ridgeline.service.keys import ROLES, create_key
from ridgeline.service.workers import MIN_UPTIME_S
from ridgeline.store import Store
from triage_api_samples import AGENCY, TRIAGE_SAMPLES

BAD = b"known bad (synthetic)\n"
BAD_MD5 = hashlib.md5(BAD).hexdigest()


def png(seed: int = 1, size: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


class Env:
    """A real app over a real store, with one key per role."""

    def __init__(self, store: Store, config: ServiceConfig | None = None) -> None:
        self.store = store
        self.keys: dict[str, str] = {}
        with store.session() as s:
            for role in ROLES:
                agency = AGENCY if role == "law-enforcement" else None
                _, self.keys[role] = create_key(
                    s, f"{role}-key", role, rate_limit=1000, agency=agency
                )
            hl = L.create_list(s, "known")
            self.entry_id = L.add_entry(
                s, hl, {"md5": BAD_MD5}, classifications=[{"scheme": "industry", "label": "A2"}],
                source="unit-test",
            ).id  # fmt: skip
        self.key_file = Path(tempfile.mkdtemp()) / "evidence.key"
        self.evidence_key = generate_key_file(self.key_file)
        with store.session() as s:
            for role in ROLES:
                add_reviewer(s, f"{role}-key")
            L.create_list(s, "queue", review_quorum=1)
        config = config or ServiceConfig()
        config.evidence_key_file = str(self.key_file)
        self.app = create_app(config, store)

    def served_entry(self, role: str | None) -> int:
        """A pending entry with media, served to this role's reviewer (real queue)."""
        with self.store.session() as s:
            entry = L.add_entry(s, L.get_list(s, "queue"), {"md5": uuid.uuid4().hex})
            store_evidence(s, entry.id, png(9), self.evidence_key, media_type="image/png")
            if role is None:
                return entry.id
            item = next_item(s, f"{role}-key")
            assert item is not None
            return item.entry_id

    def audit_item(self, role: str | None) -> tuple[int, int]:
        with self.store.session() as s:
            audit = create_audit(s, L.get_list(s, "known"), mode="full")
            if role is None:
                return audit.id, self.entry_id
            item = audit_next_item(s, audit, f"{role}-key")
            assert item is not None
            return audit.id, int(item["entry_id"])

    def audit_media_item(self) -> tuple[int, int]:
        """An audit (of a list of its own) whose one item has media in evidence."""
        with self.store.session() as s:
            hl = L.create_list(s, f"audited-{uuid.uuid4().hex[:8]}")
            entry = L.add_entry(s, hl, {"md5": uuid.uuid4().hex})
            store_evidence(s, entry.id, png(9), self.evidence_key, media_type="image/png")
            return create_audit(s, hl, mode="full").id, entry.id

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
def env(store: Store) -> Iterator[tuple[Env, TestClient]]:
    e = Env(store)
    with TestClient(e.app, raise_server_exceptions=False) as client:
        yield e, client


def _new_hold(e: Env) -> int:
    with e.store.session() as s:
        hold = FloodHold(entry_id=e.entry_id, status="held", count=5)
        s.add(hold)
        s.flush()
        return hold.id


def _new_entry(e: Env) -> int:
    with e.store.session() as s:
        return L.add_entry(s, L.get_list(s, "known"), {"md5": uuid.uuid4().hex}).id


def _new_key(e: Env) -> int:
    with e.store.session() as s:
        return create_key(s, "throwaway", "provider")[0].id


def _new_scan(e: Env) -> int:
    """A real scan run over one known-bad file (matches list `known`)."""
    from ridgeline.scan.pipeline import ScanOptions, scan

    folder = Path(tempfile.mkdtemp())
    (folder / "bad.bin").write_bytes(BAD)
    (folder / "ok.bin").write_bytes(b"harmless\n")
    return scan(e.store, [folder], ScanOptions(actions=["flag"])).run_id


#: A valid request for every endpoint (method, path template) -> kwargs for httpx.
SAMPLES: dict[tuple[str, str], Callable[[Env, str | None], dict[str, Any]]] = {
    ("POST", "/v1/hash"): lambda e, r: {"url": "/v1/hash", "files": {"file": ("a.png", png())}},
    ("POST", "/v1/match"): lambda e, r: {"url": "/v1/match", "json": {"signals": {"md5": BAD_MD5}}},
    ("GET", "/v1/lookup"): lambda e, r: {
        "url": "/v1/lookup",
        "params": {"signal": "md5", "value": BAD_MD5},
    },
    ("GET", "/v1/lists"): lambda e, r: {"url": "/v1/lists"},
    ("POST", "/v1/lists"): lambda e, r: {"url": "/v1/lists", "json": {"name": uuid.uuid4().hex}},
    ("GET", "/v1/lists/{name}"): lambda e, r: {"url": "/v1/lists/known"},
    ("GET", "/v1/lists/{name}/entries"): lambda e, r: {"url": "/v1/lists/known/entries"},
    ("POST", "/v1/lists/{name}/entries"): lambda e, r: {
        "url": "/v1/lists/known/entries",
        "json": {"signals": {"sha1": hashlib.sha1(uuid.uuid4().bytes).hexdigest()}},
    },
    ("GET", "/v1/entries/{entry_id}"): lambda e, r: {"url": f"/v1/entries/{e.entry_id}"},
    ("POST", "/v1/entries/{entry_id}/enabled"): lambda e, r: {
        "url": f"/v1/entries/{_new_entry(e)}/enabled",
        "json": {"enabled": False, "reason": "test"},
    },
    ("DELETE", "/v1/entries/{entry_id}"): lambda e, r: {"url": f"/v1/entries/{_new_entry(e)}"},
    ("GET", "/v1/lists/{name}/actions"): lambda e, r: {"url": "/v1/lists/known/actions"},
    ("PUT", "/v1/lists/{name}/actions"): lambda e, r: {
        "url": "/v1/lists/known/actions",
        "json": {"actions": ["flag", "report"]},
    },
    ("GET", "/v1/flood/holds"): lambda e, r: {"url": "/v1/flood/holds"},
    ("POST", "/v1/flood/holds/{hold_id}/release"): lambda e, r: {
        "url": f"/v1/flood/holds/{_new_hold(e)}/release"
    },
    ("GET", "/v1/keys"): lambda e, r: {"url": "/v1/keys"},
    ("POST", "/v1/keys"): lambda e, r: {
        "url": "/v1/keys",
        "json": {"name": "k", "role": "provider"},
    },
    ("DELETE", "/v1/keys/{key_id}"): lambda e, r: {"url": f"/v1/keys/{_new_key(e)}"},
    ("GET", "/v1/review/next"): lambda e, r: (e.served_entry(None), {"url": "/v1/review/next"})[1],
    ("GET", "/v1/review/pending"): lambda e, r: {"url": "/v1/review/pending"},
    ("POST", "/v1/review/{entry_id}/verdict"): lambda e, r: {
        "url": f"/v1/review/{e.served_entry(r)}/verdict",
        "json": {"decision": "csam", "classifications": [{"scheme": "industry", "label": "A1"}]},
    },
    ("GET", "/v1/scans"): lambda e, r: {"url": "/v1/scans"},
    ("GET", "/v1/scans/{run_id}"): lambda e, r: {"url": f"/v1/scans/{_new_scan(e)}"},
    ("POST", "/v1/review/{entry_id}/release"): lambda e, r: {
        "url": f"/v1/review/{e.served_entry(r)}/release"
    },
    ("GET", "/v1/review/{entry_id}/media"): lambda e, r: {
        "url": f"/v1/review/{e.served_entry(r)}/media"
    },
    ("POST", "/v1/audits"): lambda e, r: {
        "url": "/v1/audits",
        "json": {"list": "known", "mode": "full"},
    },
    ("GET", "/v1/audits/{audit_id}"): lambda e, r: {"url": f"/v1/audits/{e.audit_item(None)[0]}"},
    ("GET", "/v1/audits/{audit_id}/next"): lambda e, r: {
        "url": f"/v1/audits/{e.audit_item(None)[0]}/next"
    },
    ("POST", "/v1/audits/{audit_id}/items/{entry_id}/verdict"): lambda e, r: {
        "url": "/v1/audits/{}/items/{}/verdict".format(*e.audit_item(r)),
        "json": {"verified": True},
    },
    ("GET", "/v1/audits/{audit_id}/items/{entry_id}/media"): lambda e, r: {
        "url": "/v1/audits/{}/items/{}/media".format(*e.audit_media_item())
    },
    ("POST", "/v1/audits/{audit_id}/close"): lambda e, r: {
        "url": f"/v1/audits/{e.audit_item(None)[0]}/close"
    },
}

SAMPLES.update(REPORT_SAMPLES)
SAMPLES.update(TRIAGE_SAMPLES)
SAMPLES.update(INTAKE_SAMPLES)


def api_routes(app: Any) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            perm = (route.openapi_extra or {}).get(PERMISSION_KEY)
            out.extend((m, route.path, perm) for m in sorted(route.methods or ()))
    return out


def test_every_endpoint_by_every_role(store: Store) -> None:
    """Every endpoint x every role (401 without a key, 403 or 2xx with one), on
    SQLite and PostgreSQL."""
    e = Env(store)
    with TestClient(e.app, raise_server_exceptions=False) as client:
        _matrix(e, client)


#: Routes whose response models belong to the match work (issue 9 point 2), not yet typed.
UNTYPED_MATCH_ROUTES = {("POST", "/v1/match"), ("GET", "/v1/lookup")}


def openapi_path(spec: dict[str, Any], path: str) -> str | None:
    """The path template in `spec` that a concrete request path matches."""
    for template in spec["paths"]:
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
            return str(template)
    return None


def assert_matches_openapi(
    spec: dict[str, Any], method: str, path: str, res: httpx.Response
) -> None:
    """The real answer validates against what /openapi.json says `method path` answers."""
    responses = spec["paths"][path][method.lower()]["responses"]
    documented = responses.get(str(res.status_code)) or responses.get("default")
    assert documented is not None, f"{method} {path} answered {res.status_code}, not documented"
    content = documented.get("content", {})
    ctype = res.headers.get("content-type", "").split(";")[0]
    if ctype != "application/json":
        assert any(c.split(";")[0] == ctype for c in content), (method, path, ctype, content)
        return
    schema = content["application/json"]["schema"]
    if (method, path) not in UNTYPED_MATCH_ROUTES and 200 <= res.status_code < 300:
        assert schema, f"{method} {path} documents no response body"
    validator = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
    errors = sorted(validator.iter_errors(res.json()), key=str)
    assert not errors, f"{method} {path} {res.status_code}: {errors[0].message}"


#: Reads of evidence or of a report, and the log action each must leave (issue 17 point 4).
READS_LOGGED = {
    ("GET", "/v1/intake/{report_id}"): "received.read",
    ("GET", "/v1/reports/{report_id}"): "report.read",
    ("GET", "/v1/reports/{report_id}/xml"): "report.read",
    ("GET", "/v1/review/{entry_id}/media"): "evidence.view",
    ("GET", "/v1/audits/{audit_id}/items/{entry_id}/media"): "evidence.view",
    ("GET", "/v1/le/reports/{report_id}"): "le.view_report",
    ("GET", "/v1/le/reports/{report_id}/files/{position}"): "le.view_file",
}


def _assert_read_logged(e: Env, seq_before: int, action: str, method: str, path: str) -> None:
    with e.store.session() as s:
        actions = s.scalars(
            select(auditlog.LogRecord.action).where(auditlog.LogRecord.seq > seq_before)
        ).all()
    assert action in actions, (method, path, actions)


def _matrix(e: Env, client: TestClient) -> None:
    routes = api_routes(e.app)
    assert len(routes) >= 20
    spec = client.get("/openapi.json").json()
    for method, path, perm in routes:
        assert perm is not None, f"{method} {path} has no permission policy"
        if perm == PUBLIC:
            # health, and the self-submission page with its calls (its own body caps and
            # per-address limits: tests/test_selfsubmit.py)
            assert path in ("/healthz", "/readyz", "/metrics") or path.startswith(
                "/submit-hashes/"
            ), f"{path} must not be public"
            continue
        assert perm in POLICY
        assert (method, path) in SAMPLES, f"add a sample request for {method} {path}"
        sample = SAMPLES[(method, path)]
        res = client.request(method, **sample(e, None))
        assert res.status_code == 401, (method, path)
        assert res.json()["error"]["code"] == "unauthenticated"
        assert_matches_openapi(spec, method, path, res)
        for role in ROLES:
            allowed = role in POLICY[perm]
            request = sample(e, role if allowed else None)
            with e.store.session() as s:
                seq_before = auditlog.head(s)[0]
            res = client.request(method, headers=e.headers(role), **request)
            assert_matches_openapi(spec, method, path, res)
            if allowed:
                assert 200 <= res.status_code < 300, (method, path, role, res.text)
                if (method, path) in READS_LOGGED:
                    _assert_read_logged(e, seq_before, READS_LOGGED[method, path], method, path)
            else:
                assert res.status_code == 403, (method, path, role, res.text)
                assert res.json()["error"]["code"] == "forbidden"


def test_providers_never_read_list_contents() -> None:
    for perm, roles in POLICY.items():
        if "provider" in roles:
            assert perm in ("hash", "match", "reports:draft"), perm


def test_lookup_and_match_explain_provenance(env: tuple[Env, TestClient]) -> None:
    e, client = env
    h = e.headers("provider")
    res = client.get(
        "/v1/lookup", params={"signal": "MD5", "value": f"  {BAD_MD5.upper()} "}, headers=h
    )
    assert res.status_code == 200
    (m,) = res.json()["matches"]
    assert m["list"] == "known" and m["entry_id"] == e.entry_id and m["distance"] == 0
    assert m["classifications"] == [{"scheme": "industry", "label": "A2"}]
    assert m["provenance"]["source"] == "unit-test" and m["held"] is False
    res = client.post("/v1/match", files={"file": ("x.bin", BAD)}, headers=h)
    body = res.json()
    assert body["signals"]["md5"] == BAD_MD5 and body["matches"][0]["entry_id"] == e.entry_id
    res = client.post(
        "/v1/match", files={"file": ("x.png", png(3))}, data={"dihedral": "true"}, headers=h
    )
    assert res.status_code == 200 and "dihedral" in res.json()["signals"]["pdq"]
    res = client.post(
        "/v1/match", json={"signals": {"md5": [BAD_MD5, "0" * 32]}, "lists": ["known"]}, headers=h
    )
    assert len(res.json()["matches"]) == 1


def _lookup_count(client: TestClient, status: int) -> float:
    prefix = f'ridgeline_http_requests_total{{method="GET",route="/v1/lookup",status="{status}"}} '
    lines = [x for x in client.get("/metrics").text.splitlines() if x.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_lookup_fast_path_answers_exactly_like_the_route(env: tuple[Env, TestClient]) -> None:
    """The first call with a key goes through FastAPI (argon2, then cached); later calls take
    the plain-ASGI fast path. Both must answer byte for byte alike and both be counted."""
    e, client = env
    with e.store.session() as s:
        _, provider = create_key(s, "fresh-provider", "provider")
        _, reviewer = create_key(s, "fresh-reviewer", "reviewer")
    pdq = "f" * 64
    with e.store.session() as s:
        L.add_entry(s, L.get_list(s, "known"), {"pdq": pdq}, source="fast-path-test")
    time.sleep(0.6)  # the background refresher picks the entry up
    queries: list[Any] = [
        {"signal": "md5", "value": BAD_MD5},
        {"signal": "md5", "value": BAD_MD5, "list": ["queue"]},
        {"signal": "pdq", "value": pdq[:-1] + "e", "quality": "90"},
        {"signal": "pdq", "value": pdq, "list": ["known", "queue"]},
    ]
    for params in queries:
        slow = client.get("/v1/lookup", params=params, headers={"X-API-Key": provider})
        fast = client.get("/v1/lookup", params=params, headers={"X-API-Key": provider})
        assert slow.status_code == fast.status_code == 200
        assert slow.content == fast.content and slow.headers["content-type"] == "application/json"
    # near matches carry their distance for list readers only (service.disclosure)
    for key, distance in ((provider, None), (e.keys["curator"], 1)):
        for _ in range(2):  # route, then fast path
            res = client.get("/v1/lookup", params=queries[2], headers={"X-API-Key": key})
            assert res.json()["matches"][0]["distance"] == distance
    before = _lookup_count(client, 200)
    client.get("/v1/lookup", params=queries[0], headers={"Authorization": f"Bearer {provider}"})
    assert _lookup_count(client, 200) == before + 1
    # a role without `match`: 403 from the route, then the same 403 from the fast path
    first = client.get("/v1/lookup", params=queries[0], headers={"X-API-Key": reviewer})
    again = client.get("/v1/lookup", params=queries[0], headers={"X-API-Key": reviewer})
    assert first.status_code == again.status_code == 403
    assert first.json() == again.json() and again.json()["error"]["code"] == "forbidden"
    # odd input with a cached key still gets the route's errors
    bad = client.get(
        "/v1/lookup", params={"signal": "pdq", "value": "x"}, headers=e.headers("admin")
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_hash"
    bad = client.get(
        "/v1/lookup", params={**queries[0], "quality": "101"}, headers={"X-API-Key": provider}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


def test_upload_pdq_mode(env: tuple[Env, TestClient]) -> None:
    e, client = env
    h = e.headers("provider")
    image = png(5, size=600)  # fast mode only differs from exact above 256 pixels a side
    hashes = {}
    for mode in ("exact", "fast"):
        for path in ("/v1/hash", "/v1/match"):
            res = client.post(
                path, files={"file": ("a.png", image)}, data={"mode": mode}, headers=h
            )
            assert res.status_code == 200, res.text
            hashes[mode, path] = res.json()["signals"]["pdq"]["hash"]
    default = client.post("/v1/match", files={"file": ("a.png", image)}, headers=h).json()
    assert default["signals"]["pdq"]["hash"] == hashes["exact", "/v1/match"]
    assert hashes["exact", "/v1/hash"] == hashes["exact", "/v1/match"]
    assert hashes["fast", "/v1/hash"] == hashes["fast", "/v1/match"]
    distance = bin(int(hashes["exact", "/v1/hash"], 16) ^ int(hashes["fast", "/v1/hash"], 16))
    assert distance.count("1") <= 16
    for path in ("/v1/hash", "/v1/match"):
        res = client.post(path, files={"file": ("a.png", image)}, data={"mode": "quick"}, headers=h)
        assert res.status_code == 400 and res.json()["error"]["code"] == "invalid_request"


def test_errors_are_json_with_stable_codes(env: tuple[Env, TestClient]) -> None:
    e, client = env
    h = e.headers("admin")
    cases = [
        (
            client.get("/v1/lookup", params={"signal": "pdq", "value": "xyz"}, headers=h),
            400,
            "invalid_hash",
        ),
        (
            client.get("/v1/lookup", params={"signal": "nope", "value": "x"}, headers=h),
            400,
            "unknown_signal",
        ),
        (client.get("/v1/lookup", params={"signal": "md5"}, headers=h), 400, "invalid_request"),
        (
            client.post("/v1/match", json={"signals": {"sha256": "12"}}, headers=h),
            400,
            "invalid_hash",
        ),
        (
            client.post(
                "/v1/match", content=b"{not json", headers={**h, "content-type": "application/json"}
            ),
            400,
            "invalid_request",
        ),
        (client.post("/v1/match", json={}, headers=h), 400, "invalid_request"),
        (client.get("/v1/lists/none", headers=h), 404, "not_found"),
        (client.get("/v1/nothing", headers=h), 404, "not_found"),
        (client.post("/v1/lists", json={"name": "known"}, headers=h), 409, "conflict"),
        (
            client.post("/v1/lists/known/entries", json={"signals": {"pdq": "zz"}}, headers=h),
            400,
            "invalid_hash",
        ),
        (client.post("/v1/keys", json={"name": "x", "role": "king"}, headers=h), 400, "bad_input"),
        (client.post("/v1/lists", json={"name": "p", "purpose": "x"}, headers=h), 400, "bad_input"),
        (
            client.post(
                f"/v1/entries/{e.entry_id}/enabled",
                json={"enabled": False, "until": "x"},
                headers=h,
            ),
            400,
            "bad_input",
        ),
        (
            client.post("/v1/audits", json={"list": "known", "confidence": 2}, headers=h),
            400,
            "bad_input",
        ),
        (
            client.get("/v1/lists", headers={"X-API-Key": "rl_000000000000_wrong"}),
            401,
            "invalid_key",
        ),
        (client.post("/v1/hash", files={"file": ("e", b"")}, headers=h), 400, "bad_input"),
        (
            client.post("/v1/hash", files={"file": ("t.png", png()[:70])}, headers=h),
            400,
            "bad_input",
        ),
        (
            client.post("/v1/match", json={"url": "http://example.org/a.jpg"}, headers=h),
            400,
            "url_fetch_disabled",
        ),
    ]
    spec = client.get("/openapi.json").json()
    for res, status, code in cases:
        assert res.status_code == status, res.text
        assert res.json()["error"]["code"] == code, res.text
        assert res.json()["error"]["message"]
        template = openapi_path(spec, res.request.url.path)
        if template is not None:
            assert_matches_openapi(spec, res.request.method, template, res)


def test_upload_limits_and_type_sniffing(store: Store) -> None:
    e = Env(
        store, ServiceConfig(max_upload_bytes=4000, max_pixels=100 * 100, upload_kinds=["image"])
    )
    with TestClient(e.app) as client:
        h = e.headers("provider")
        res = client.post("/v1/hash", files={"file": ("big.bin", os.urandom(5000))}, headers=h)
        assert res.status_code == 413 and res.json()["error"]["code"] == "too_large"
        res = client.post(
            "/v1/hash", files={"file": ("fake.png", b"not an image at all")}, headers=h
        )
        assert res.status_code == 415 and res.json()["error"]["code"] == "unsupported_type"
        res = client.post("/v1/hash", files={"file": ("wide.png", png(size=200))}, headers=h)
        assert res.status_code == 413, res.text
        res = client.post("/v1/hash", files={"file": ("ok.png", png(size=64))}, headers=h)
        assert res.status_code == 200 and res.json()["kind"] == "image"


def test_rate_limit_per_key_and_revocation(store: Store) -> None:
    e = Env(store, ServiceConfig(key_cache_s=0.5))
    with TestClient(e.app) as client:
        _rate_limit_and_revoke(e, client)


def _rate_limit_and_revoke(e: Env, client: TestClient) -> None:
    with e.store.session() as s:
        key_row, slow = create_key(s, "slow", "provider", rate_limit=1)
    params = {"signal": "md5", "value": BAD_MD5}
    codes = [
        client.get("/v1/lookup", params=params, headers={"X-API-Key": slow}).status_code
        for _ in range(4)
    ]
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    res = client.get("/v1/lookup", params=params, headers={"X-API-Key": slow})
    assert res.json()["error"]["code"] == "rate_limited" and int(res.headers["retry-after"]) >= 1
    # other keys are unaffected
    assert client.get("/v1/lookup", params=params, headers=e.headers("provider")).status_code == 200
    res = client.delete(f"/v1/keys/{key_row.id}", headers=e.headers("admin"))
    assert res.json()["revoked_at"]
    time.sleep(0.6)  # verified keys are cached per process for key_cache_s
    res = client.get("/v1/lookup", params=params, headers={"X-API-Key": slow})
    assert res.status_code == 401


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    body = png(5)

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def test_url_fetch_only_from_allow_list(sqlite_store: Store) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        e = Env(sqlite_store, ServiceConfig(fetch_allow_hosts=[f"127.0.0.1:{port}"]))
        with TestClient(e.app) as client:
            h = e.headers("provider")
            res = client.post(
                "/v1/match", json={"url": f"http://127.0.0.1:{port}/a.png"}, headers=h
            )
            assert res.status_code == 200, res.text
            assert res.json()["signals"]["pdq"]["quality"] >= 50
            res = client.post(
                "/v1/match", json={"url": f"http://localhost:{port}/a.png"}, headers=h
            )
            assert res.status_code == 403 and res.json()["error"]["code"] == "url_not_allowed"
            res = client.post(
                "/v1/match", json={"url": f"http://127.0.0.1:{port}/redirect"}, headers=h
            )
            assert res.status_code == 502 and res.json()["error"]["code"] == "fetch_failed"
            res = client.post("/v1/match", json={"url": "file:///etc/passwd"}, headers=h)
            assert res.status_code == 400 and res.json()["error"]["code"] == "bad_url"
    finally:
        server.shutdown()


def test_health_metrics_and_openapi(env: tuple[Env, TestClient]) -> None:
    e, client = env
    assert client.get("/healthz").json() == {"status": "ok", "worker": 0}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client.get(
        "/v1/lookup", params={"signal": "md5", "value": BAD_MD5}, headers=e.headers("provider")
    )
    assert client.get("/docs/static/swagger-ui.css").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    text = client.get("/metrics").text
    assert 'ridgeline_http_requests_total{method="GET",route="/v1/lookup",status="200"}' in text
    # a mount (static files) is labelled by its prefix, a path no route takes `unmatched`
    assert 'ridgeline_http_requests_total{method="GET",route="/docs/static",status="200"}' in text
    assert 'ridgeline_http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert 'ridgeline_matches_total{signal="md5"}' in text
    spec = client.get("/openapi.json").json()
    assert "/v1/match" in spec["paths"] and "/v1/lookup" in spec["paths"]
    assert spec["paths"]["/v1/lookup"]["get"][PERMISSION_KEY] == "match"
    for path in ("/healthz", "/readyz", "/metrics"):
        assert_matches_openapi(spec, "GET", path, client.get(path))
    # every route but the match ones names its response body (a model, or a media type)
    for method, path, _ in api_routes(e.app):
        if (method, path) in UNTYPED_MATCH_ROUTES:
            continue
        ok = {k: v for k, v in spec["paths"][path][method.lower()]["responses"].items() if k < "3"}
        assert ok, (method, path)
        for answer in ok.values():
            content = answer["content"]
            assert all(c.get("schema") for c in content.values()), (method, path, content)


def test_real_server_answers_as_its_openapi_says(
    db_path: str, tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    """A real `ridgeline serve`: each answer, good or bad, validates against the schema
    /openapi.json gives for its route and status."""
    runner = CliRunner()
    made = runner.invoke(
        main, ["keys", "create", "--role", "admin", "--db", db_path, "--format", "json"]
    )
    admin = json.loads(made.stdout)["key"]
    assert runner.invoke(main, ["lists", "create", "known", "--db", db_path]).exit_code == 0
    assert runner.invoke(main, ["reviewers", "add", "admin", "--db", db_path]).exit_code == 0
    server = serve_process(
        "serve", "--port", "{port}", "--db", db_path, "--index-dir", str(tmp_path / "index")
    )
    h = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=server.base, timeout=10) as c:
        spec = c.get("/openapi.json").json()
        entry = c.post("/v1/lists/known/entries", json={"signals": {"md5": BAD_MD5}}, headers=h)
        assert entry.status_code == 201, entry.text
        entry_id = entry.json()["id"]
        key_id = c.post("/v1/keys", json={"name": "p", "role": "provider"}, headers=h).json()["id"]
        audit = c.post("/v1/audits", json={"list": "known", "mode": "full"}, headers=h)
        assert audit.status_code == 201, audit.text
        audit_id = audit.json()["id"]
        answers = [
            entry,
            audit,
            c.get("/healthz"),
            c.get("/readyz"),
            c.get("/metrics"),
            c.get("/v1/lists", headers=h),
            c.post("/v1/lists", json={"name": "other", "purpose": "allow"}, headers=h),
            c.post("/v1/lists", json={"name": "bad", "purpose": "nope"}, headers=h),
            c.post("/v1/lists", json={"name": 3}, headers=h),
            c.get("/v1/lists/known", headers=h),
            c.get("/v1/lists/missing", headers=h),
            c.get("/v1/lists/known/entries", params={"limit": 1}, headers=h),
            c.get(f"/v1/entries/{entry_id}", headers=h),
            c.post(f"/v1/entries/{entry_id}/enabled", json={"enabled": True}, headers=h),
            c.post(f"/v1/entries/{entry_id}/enabled", json={"enabled": 1, "until": "x"}, headers=h),
            c.get("/v1/lists/known/actions", headers=h),
            c.put("/v1/lists/known/actions", json={"actions": ["flag"]}, headers=h),
            c.get("/v1/flood/holds", params={"all": True}, headers=h),
            c.get("/v1/scans", headers=h),
            c.get("/v1/scans/999", headers=h),
            c.post("/v1/flood/holds/999/release", headers=h),
            c.get("/v1/keys", headers=h),
            c.delete(f"/v1/keys/{key_id}", headers=h),
            c.get("/v1/review/pending", headers=h),
            c.get("/v1/review/next", headers=h),
            c.get(f"/v1/audits/{audit_id}/next", headers=h),
            c.get(f"/v1/audits/{audit_id}", headers=h),
            c.post(f"/v1/audits/{audit_id}/close", headers=h),
            c.post("/v1/hash", files={"file": ("a.png", png())}, headers=h),
            c.get("/v1/lookup", params={"signal": "md5", "value": BAD_MD5}, headers=h),
            c.get("/v1/lists"),
            c.get("/v1/lists", headers={"X-API-Key": "rl_000000000000_wrong"}),
            c.delete(f"/v1/entries/{entry_id}", headers=h),
        ]
    statuses = set()
    for res in answers:
        template = openapi_path(spec, res.request.url.path)
        assert template is not None, res.request.url
        assert_matches_openapi(spec, res.request.method, template, res)
        statuses.add(res.status_code)
    assert {200, 201, 400, 401, 404} <= statuses, statuses


def test_keys_cli_shows_secret_once(db_path: str) -> None:
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "keys",
            "create",
            "--role",
            "provider",
            "--name",
            "acme",
            "--db",
            db_path,
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    created = json.loads(res.stdout)
    assert created["key"].startswith("rl_") and created["role"] == "provider"
    res = runner.invoke(main, ["keys", "list", "--db", db_path, "--format", "json"])
    (listed,) = json.loads(res.stdout)
    assert "key" not in listed and created["key"].split("_")[2] not in res.stdout
    res = runner.invoke(main, ["keys", "create", "--role", "emperor", "--db", db_path])
    assert res.exit_code == 2
    res = runner.invoke(
        main, ["keys", "revoke", str(listed["id"]), "--db", db_path, "--format", "json"]
    )
    assert json.loads(res.stdout)["revoked_at"]


@pytest.mark.slow
def test_hot_update_visible_in_every_worker_within_a_second(
    store: Store, tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    """Two real workers on SQLite and on PostgreSQL: an entry added through the API is
    matched by both within a second; connections spread over both; a dead worker is
    replaced."""
    db = store.url
    store.close()
    runner = CliRunner()
    admin = json.loads(
        runner.invoke(
            main, ["keys", "create", "--role", "admin", "--db", db, "--format", "json"]
        ).stdout
    )["key"]
    slow = json.loads(
        runner.invoke(
            main,
            ["keys", "create", "--role", "provider", "--rate-limit", "5", "--db", db,
             "--format", "json"],
        ).stdout
    )["key"]  # fmt: skip
    assert runner.invoke(main, ["lists", "create", "live", "--db", db]).exit_code == 0
    server = serve_process(
        "serve", "--port", "{port}", "--workers", "2", "--db", db, "--rate-limit", "1000",
        "--index-dir", str(tmp_path / "index"),
    )  # fmt: skip
    started = time.monotonic()
    proc, base = server.proc, server.base
    h = {"Authorization": f"Bearer {admin}"}
    try:
        value = hashlib.sha256(b"hot update").hexdigest()
        params = {"signal": "sha256", "value": value}
        for _ in range(6):  # warm both workers' key caches; nothing matches yet
            assert httpx.get(f"{base}/v1/lookup", params=params, headers=h).json()["matches"] == []
        res = httpx.post(
            f"{base}/v1/lists/live/entries", json={"signals": {"sha256": value}}, headers=h
        )
        assert res.status_code == 201, res.text
        added = time.monotonic()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - added)))
        seen = set()
        for _ in range(16):  # fresh connections spread over both workers
            with httpx.Client() as c:
                body = c.get(f"{base}/v1/lookup", params=params, headers=h).json()
            assert [m["list"] for m in body["matches"]] == ["live"], body
            seen.add(body["matches"][0]["entry_id"])
        assert len(seen) == 1
        # connections opened together are spread over both workers (SO_REUSEPORT)
        clients = [httpx.Client(base_url=base) for _ in range(16)]
        try:
            workers = {c.get("/healthz").json()["worker"] for c in clients}
        finally:
            for c in clients:
                c.close()
        assert workers == {0, 1}
        # a key's rate limit is one budget across the workers (burst 10, then 5/s)
        codes = []
        began = time.monotonic()
        for _ in range(30):
            with httpx.Client(base_url=base) as c:
                r = c.get("/v1/lookup", params=params, headers={"X-API-Key": slow})
                codes.append(r.status_code)
        elapsed = time.monotonic() - began
        assert set(codes) <= {200, 429}
        if elapsed < 3.5:  # 30 requests faster than burst + refill must meet the limit
            assert 429 in codes, (codes, elapsed)
        assert codes.count(200) <= 10 + 5 * elapsed + 1, (codes, elapsed)
        # /metrics on either worker counts every worker's requests
        lookups_ok = 6 + 16 + codes.count(200)
        with httpx.Client(base_url=base) as c:
            families = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").text)}
        counted = sum(
            sample.value
            for sample in families["ridgeline_http_requests"].samples
            if sample.name.endswith("_total")
            and sample.labels == {"route": "/v1/lookup", "method": "GET", "status": "200"}
        )
        assert lookups_ok - 2 <= counted <= lookups_ok, (counted, lookups_ok)
        (synced,) = families["ridgeline_index_synced_timestamp_seconds"].samples
        assert time.time() - 5 < synced.value <= time.time() + 1
        # a worker that dies is replaced, and both answer again
        time.sleep(max(0.0, MIN_UPTIME_S + 0.5 - (time.monotonic() - started)))
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGKILL)
        deadline = time.monotonic() + 40
        workers = set()
        while workers != {0, 1}:
            assert time.monotonic() < deadline, f"only workers {workers} answer after a crash"
            try:
                with httpx.Client(base_url=base) as c:
                    workers.add(c.get("/healthz").json()["worker"])
            except httpx.HTTPError:
                pass
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def _init_db(path: Path) -> str:
    """A database as `ridgeline db init` makes it (serve does not create one)."""
    Store.open(path).close()
    return str(path)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_refuses_a_taken_port_before_saying_it_listens(tmp_path: Path, workers: int) -> None:
    """A port already in use is a clear error, reported before any "listening" line."""
    db = _init_db(tmp_path / "t.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run(
            [str(Path(sys.executable).parent / "ridgeline"), "serve", "--port", str(port),
             "--workers", str(workers), "--db", db],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr
    assert "ridgeline API on" not in res.stderr, res.stderr


def test_access_log_is_json_lines_without_hashes(
    tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    """Every request, fast path included: time, key prefix, role, route, status, latency;
    never the key's secret, a hash from the query or path, or anything from a body."""
    db = _init_db(tmp_path / "a.db")
    store = Store.open(db)
    with store.session() as s:
        _, provider = create_key(s, "acme", "provider")
        _, admin = create_key(s, "ops", "admin")
        L.add_entry(s, L.create_list(s, "known"), {"md5": BAD_MD5})
    store.close()
    server = serve_process("serve", "--port", "{port}", "--db", db)
    base = server.base
    lookup = httpx.get(f"{base}/v1/lookup", params={"signal": "md5", "value": BAD_MD5},
                       headers={"Authorization": f"Bearer {provider}"})  # fmt: skip
    assert lookup.status_code == 200 and lookup.json()["matches"]
    assert httpx.get(f"{base}/v1/lists", headers={"X-API-Key": admin}).status_code == 200
    forbidden = httpx.get(f"{base}/v1/lists", headers={"Authorization": f"Bearer {provider}"})
    assert forbidden.status_code == 403
    assert httpx.get(f"{base}/v1/lists").status_code == 401
    entry = httpx.get(f"{base}/v1/entries/1", headers={"X-API-Key": admin})
    assert entry.status_code == 200
    upload = httpx.post(f"{base}/v1/hash", files={"file": ("x.bin", BAD)},
                        headers={"X-API-Key": provider})  # fmt: skip
    assert upload.status_code == 200
    os.killpg(server.proc.pid, signal.SIGINT)
    server.proc.wait(timeout=30)
    assert server.proc.stderr is not None
    err = server.proc.stderr.read().decode()
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    by_route = {(r["route"], r["status"]): r for r in records}
    fast = by_route["/v1/lookup", 200]
    assert fast["key"] == provider[: len("rl_") + 12] and fast["role"] == "provider"
    assert fast["method"] == "GET" and fast["latency_ms"] >= 0
    assert fast["time"].endswith("Z") and set(fast) == {
        "time", "worker", "key", "role", "method", "route", "status", "latency_ms"
    }  # fmt: skip
    assert by_route["/v1/lists", 200]["role"] == "admin"
    assert by_route["/v1/lists", 403]["role"] == "provider"
    assert by_route["/v1/lists", 401]["key"] is None and by_route["/v1/lists", 401]["role"] is None
    assert ("/v1/entries/{entry_id}", 200) in by_route and ("/v1/hash", 200) in by_route
    assert ("/readyz", 200) in by_route
    assert BAD_MD5 not in err and hashlib.sha256(BAD).hexdigest() not in err
    assert provider not in err and admin not in err  # prefixes only, never the secret


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_the_server_cleanly(
    tmp_path: Path, workers: int, serve_process: Callable[..., Any]
) -> None:
    """Ctrl-C (SIGINT to the whole process group) ends every worker: exit 0, no traceback."""
    server = serve_process(
        "serve", "--port", "{port}", "--workers", str(workers), "--db", _init_db(tmp_path / "c.db")
    )
    os.killpg(server.proc.pid, signal.SIGINT)
    assert server.proc.wait(timeout=30) == 0
    assert server.proc.stderr is not None
    err = server.proc.stderr.read().decode()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.base}/healthz", timeout=1)


@pytest.mark.slow
def test_workers_stop_when_the_supervisor_is_killed(
    tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    """A supervisor killed outright (SIGKILL, OOM) leaves no orphan workers serving."""
    server = serve_process(
        "serve", "--port", "{port}", "--workers", "2", "--db", _init_db(tmp_path / "k.db")
    )
    pid = server.proc.pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(children) >= 2
    server.proc.kill()
    server.proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while alive := [c for c in children if _running(c)]:
        assert time.monotonic() < deadline, f"workers {alive} outlived their supervisor"
        time.sleep(0.2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.base}/healthz", timeout=1)


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_docs_pages_load_offline_from_the_package(env: tuple[Env, TestClient]) -> None:
    """/docs and /redoc reference only this server; every asset they name is served."""
    import re

    _, client = env
    for page in ("/docs", "/redoc"):
        res = client.get(page)
        assert res.status_code == 200 and "text/html" in res.headers["content-type"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", res.text)
        urls += re.findall(r"""url: ?["']([^"']+)["']""", res.text)
        assert urls, page
        assert not [u for u in urls if "//" in u], (page, urls)  # no CDN, no other host
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100, (page, url)
    assert client.get("/docs/static/swagger-ui-bundle.js").content.startswith(b"/*")


def test_classifications_are_one_documented_shape(env: tuple[Env, TestClient]) -> None:
    """Entries and verdicts take `{scheme, label}` objects, the OpenAPI says so, and the
    entries endpoint is documented (its route and every body field in docs/service.md)."""
    e, client = env
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["Classification"]["required"] == ["scheme", "label"]
    item = {"$ref": "#/components/schemas/Classification"}
    assert schemas["EntryIn"]["properties"]["classifications"]["items"] == item
    assert schemas["VerdictIn"]["properties"]["classifications"]["items"] == item
    every = {  # answers too: a match's classifications were a second, look-alike component
        name: props["classifications"]["items"]
        for name, schema in schemas.items()
        if "classifications" in (props := schema.get("properties", {}))
    }
    assert {"EntryIn", "EntryOut", "MatchOut", "VerdictIn"} <= set(every)
    assert all(items == item for items in every.values()), every
    post = spec["paths"]["/v1/lists/{name}/entries"]["post"]
    assert "{scheme, label}" in post["description"]
    h = e.headers("admin")
    one = {"scheme": "industry", "label": "A1"}
    res = client.post("/v1/lists/known/entries", headers=h,
                      json={"signals": {"md5": "d" * 32}, "classifications": [one]})  # fmt: skip
    assert res.status_code == 201 and res.json()["classifications"] == [one]
    as_text = {"signals": {"md5": "e" * 32}, "classifications": ["industry:A1"]}
    res = client.post("/v1/lists/known/entries", headers=h, json=as_text)
    assert res.status_code == 400, res.text  # strings are not a second shape
    entry_id = e.served_entry("reviewer")
    res = client.post(f"/v1/review/{entry_id}/verdict", headers=e.headers("reviewer"),
                      json={"decision": "csam", "classifications": ["industry:A1"]})  # fmt: skip
    assert res.status_code == 400
    res = client.post(f"/v1/review/{entry_id}/verdict", headers=e.headers("reviewer"),
                      json={"decision": "csam", "classifications": [one]})  # fmt: skip
    assert res.status_code == 200, res.text
    doc = (Path(__file__).resolve().parents[1] / "docs" / "service.md").read_text()
    assert "POST /v1/lists/{name}/entries" in doc
    for field in schemas["EntryIn"]["properties"]:
        assert f"`{field}`" in doc, field


def test_scans_through_the_api(env: tuple[Env, TestClient]) -> None:
    """`/v1/scans` and `/v1/scans/{id}` answer what `ridgeline scans ls|show` shows."""
    e, client = env
    run_id = _new_scan(e)
    h = e.headers("curator")
    runs = client.get("/v1/scans", headers=h).json()["runs"]
    assert runs[0]["id"] == run_id and runs[0]["counts"]["matched"] == 1
    shown = client.get(f"/v1/scans/{run_id}", params={"files": "matches"}, headers=h).json()
    assert [Path(f["path"]).name for f in shown["files"]] == ["bad.bin"]
    assert shown["files"][0]["matches"][0]["list"] == "known"
    everything = client.get(f"/v1/scans/{run_id}", headers=h).json()["files"]
    assert sorted(Path(f["path"]).name for f in everything) == ["bad.bin", "ok.bin"]
    missing = client.get("/v1/scans/999999", headers=h)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/v1/scans", headers=e.headers("provider")).status_code == 403


def test_a_small_upload_is_held_as_spooled() -> None:
    """`spooled_upload(held=...)`: an upload of one chunk is kept (the bytes the file
    holds: a `report` draft does not read it back); a larger one is not."""
    from ridgeline.service.uploads import CHUNK, spooled_upload

    small, large = b"benign upload bytes\n" * 10, b"x" * (CHUNK + 1)
    for data, kept in ((small, [small]), (large, [])):
        held: list[bytes] = []
        with spooled_upload(io.BytesIO(data), CHUNK * 2, ["file"], held=held) as path:
            assert Path(path).read_bytes() == data
        assert held == kept
