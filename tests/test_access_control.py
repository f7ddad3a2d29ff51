"""Rotation and revocation against a real two-worker `ridgeline serve`: a revoked key
and the UI sessions made with it stop working in every worker within a second, a
rotated-in key works at once; disabling a UI user ends their session at once. The
endpoint x role matrices themselves are in test_service.py (API, with the reads that
must be logged) and test_ui.py (every UI page in a browser)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ridgeline.service.keys import create_key
from ridgeline.store import Store
from ridgeline.ui.accounts import add_user, disable_user

WORKERS = 2
LOOKUP = {"signal": "md5", "value": "0" * 32}


def _probe(base: str, headers: dict[str, str], path: str = "/v1/lookup") -> tuple[int, int]:
    """(worker, status) over one fresh connection: /healthz names the worker, then the
    request goes down the same keep-alive connection to the same worker."""
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        worker = int(client.get("/healthz").json()["worker"])
        params = LOOKUP if path == "/v1/lookup" else None
        res = client.get(path, params=params, follow_redirects=False)
        return worker, res.status_code


def _until_every_worker(base: str, probe: Callable[[], tuple[int, int]]) -> dict[int, int]:
    seen: dict[int, int] = {}
    for _ in range(200):
        worker, status = probe()
        seen[worker] = status
        if len(seen) == WORKERS:
            return seen
    raise AssertionError(f"only workers {sorted(seen)} answered")


def _login(base: str, key: str) -> dict[str, str]:
    """A UI session cookie made with an API key (the login form, double-submit CSRF)."""
    with httpx.Client(base_url=base, timeout=10) as client:
        client.get("/ui/login")
        csrf = client.cookies["rl_login"]
        res = client.post("/ui/login", data={"api_key": key, "login_csrf": csrf})
        assert res.status_code in (302, 303), res.text
        return {"Cookie": f"rl_session={client.cookies['rl_session']}"}


def _login_password(base: str, name: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=10) as client:
        client.get("/ui/login")
        csrf = client.cookies["rl_login"]
        form = {"name": name, "password": password, "login_csrf": csrf}
        res = client.post("/ui/login", data=form)
        assert res.status_code in (302, 303), res.text
        return {"Cookie": f"rl_session={client.cookies['rl_session']}"}


def _watch(
    base: str, probes: dict[str, tuple[dict[str, str], str]], seconds: float
) -> dict[str, list[tuple[float, int, int]]]:
    """Probe each (headers, path) on fresh connections for `seconds`: (t, worker, status)."""
    t0 = time.monotonic()
    out: dict[str, list[tuple[float, int, int]]] = {name: [] for name in probes}
    while time.monotonic() - t0 < seconds:
        for name, (headers, path) in probes.items():
            worker, status = _probe(base, headers, path)
            out[name].append((time.monotonic() - t0, worker, status))
    return out


def _last_ok(samples: list[tuple[float, int, int]], ok: set[int]) -> float:
    return max((t for t, _, status in samples if status in ok), default=0.0)


def test_rotation_and_revocation_reach_every_worker_within_a_second(
    store: Store, serve_process: Callable[..., Any]
) -> None:
    with store.session() as s:
        _, admin = create_key(s, "admin", "admin", rate_limit=10_000)
        old_row, old = create_key(s, "provider-2025", "curator", rate_limit=10_000)
        old_id = old_row.id
        add_user(s, "pat", "analyst", "correct horse battery staple")
    server = serve_process("serve", "--port", "{port}", "--db", store.url,
                           "--workers", str(WORKERS), "--no-access-log")  # fmt: skip
    base = server.base
    as_admin = {"Authorization": f"Bearer {admin}"}
    as_old = {"Authorization": f"Bearer {old}"}
    # the old key is verified and cached in every worker, and has UI sessions there
    assert set(_until_every_worker(base, lambda: _probe(base, as_old)).values()) == {200}
    session = _login(base, old)
    assert set(_until_every_worker(base, lambda: _probe(base, session, "/ui/")).values()) == {200}
    # rotation: a new key for the same holder works at once, in every worker
    made = httpx.post(f"{base}/v1/keys", headers=as_admin, timeout=10,
                      json={"name": "provider-2026", "role": "curator"})  # fmt: skip
    assert made.status_code == 201, made.text
    as_new = {"Authorization": f"Bearer {made.json()['key']}"}
    assert set(_until_every_worker(base, lambda: _probe(base, as_new)).values()) == {200}
    # revoke the old one
    res = httpx.delete(f"{base}/v1/keys/{old_id}", headers=as_admin, timeout=10)
    assert res.status_code == 200 and res.json()["revoked_at"], res.text
    seen = _watch(base, {"old": (as_old, "/v1/lookup"), "new": (as_new, "/v1/lookup"),
                         "ui": (session, "/ui/")}, seconds=2.5)  # fmt: skip
    for name in ("old", "ui"):
        assert {w for _, w, _ in seen[name]} == set(range(WORKERS)), seen[name]
    assert _last_ok(seen["old"], {200}) < 1.0, seen["old"]
    assert _last_ok(seen["ui"], {200}) < 1.0, seen["ui"]
    assert [s for t, _, s in seen["old"] if t >= 1.0] and all(
        s == 401 for t, _, s in seen["old"] if t >= 1.0
    )
    assert all(s in (302, 303) for t, _, s in seen["ui"] if t >= 1.0)  # back to the login
    assert all(s == 200 for _, _, s in seen["new"])
    # a disabled UI user's session ends at once in every worker
    pat = _login_password(base, "pat", "correct horse battery staple")
    assert set(_until_every_worker(base, lambda: _probe(base, pat, "/ui/")).values()) == {200}
    with store.session() as s:
        disable_user(s, "pat")
    seen = _watch(base, {"pat": (pat, "/ui/")}, seconds=1.0)
    assert all(s in (302, 303) for _, _, s in seen["pat"]), seen["pat"]
    assert {w for _, w, _ in seen["pat"]} == set(range(WORKERS))


def test_self_submission_rate_counts_across_workers(
    tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    """An address gets `--self-submit-rate` requests a second from the whole server: with
    two workers it must not get twice the burst by landing on each in turn."""
    Store.open(tmp_path / "submit.db").close()
    server = serve_process("serve", "--port", "{port}", "--db", str(tmp_path / "submit.db"),
                           "--workers", str(WORKERS), "--no-access-log",
                           "--self-submit-rate", "1")  # fmt: skip
    body = {"case_number": "RL-0000-0000-0000"}
    seen: list[tuple[int, int]] = []
    t0 = time.monotonic()
    for _ in range(200):
        with httpx.Client(base_url=server.base, timeout=10) as client:
            worker = int(client.get("/healthz").json()["worker"])
            res = client.post("/submit-hashes/api/status", json=body)
            seen.append((worker, res.status_code))
        if len(seen) >= 8 and {w for w, _ in seen} == set(range(WORKERS)):
            break
    elapsed = time.monotonic() - t0
    assert {w for w, _ in seen} == set(range(WORKERS)), seen
    passed = [s for _, s in seen if s != 429]
    # one bucket of 2 tokens for the server, refilled at 1 a second while we asked
    assert 1 <= len(passed) <= 2 + int(elapsed) + 1, (seen, elapsed)
