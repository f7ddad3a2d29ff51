"""Per-list match webhooks against a real local receiver: signature, retries with
back-off, dead letters, replay, and the CLI."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ridgeline import lists as L
from ridgeline import webhooks as W
from ridgeline.cli import main
from ridgeline.scan.pipeline import ScanOptions, scan
from ridgeline.store import Store

BAD = b"known bad (synthetic)\n"


class Receiver:
    """A real HTTP server on loopback that records every POST and answers with the
    next status of its path's script (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.script: dict[str, list[int]] = {}
        #: Seconds a path makes the sender wait before it answers (a slow receiver).
        self.delay: dict[str, float] = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body,
                     "at": time.monotonic()}
                )  # fmt: skip
                plan = receiver.script.get(self.path, [])
                status = plan.pop(0) if plan else 200
                time.sleep(receiver.delay.get(self.path, 0))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _until_settled(store: Store, policy: W.RetryPolicy, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with store.session() as s:
            W.deliver_due(s, policy)
            if not W.list_deliveries(s, "pending"):
                return
        time.sleep(0.02)
    raise AssertionError("deliveries still pending")


def test_scan_match_is_pushed_signed_and_retried_with_backoff(
    store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    with store.session() as s:
        known = L.create_list(s, "known")
        entry = L.add_entry(s, known, {"md5": hashlib.md5(BAD).hexdigest()},
                            classifications=[{"scheme": "industry", "label": "A1"}])  # fmt: skip
        L.create_list(s, "other")
        hook, secret = W.add_webhook(s, "known", receiver.url + "/hook")
        W.add_webhook(s, "other", receiver.url + "/other")  # no match there: never called
    receiver.script["/hook"] = [500, 503]  # two failures, then accepted
    (tmp_path / "bad.bin").write_bytes(BAD)
    (tmp_path / "ok.bin").write_bytes(b"harmless\n")
    policy = W.RetryPolicy(max_attempts=5, base_delay_s=0.2, timeout_s=5)
    summary = scan(store, [tmp_path], ScanOptions(webhook_policy=policy))
    assert summary.matched == 1
    assert len(receiver.on("/hook")) == 1  # tried once at the end of the scan
    _until_settled(store, policy)
    calls = receiver.on("/hook")
    assert len(calls) == 3 and receiver.on("/other") == []
    assert calls[1]["at"] - calls[0]["at"] >= 0.2 * 0.9  # back-off: 0.2 s, then 0.4 s
    assert calls[2]["at"] - calls[1]["at"] >= 0.4 * 0.9
    bodies = {c["body"] for c in calls}
    ids = {c["headers"]["X-Ridgeline-Delivery"] for c in calls}
    assert len(bodies) == 1 and len(ids) == 1  # a retry is the same delivery, same bytes
    body = calls[0]["body"]
    for c in calls:
        assert W.verify_signature(secret, body, c["headers"]["X-Ridgeline-Signature"])
    assert not W.verify_signature("wrong", body, calls[0]["headers"]["X-Ridgeline-Signature"])
    event = json.loads(body)
    assert event["event"] == "match" and event["list"] == "known"
    assert event["run_id"] == summary.run_id and event["sha256"] == hashlib.sha256(BAD).hexdigest()
    assert event["matches"][0]["entry_id"] == entry.id
    assert event["matches"][0]["classifications"] == [{"scheme": "industry", "label": "A1"}]
    assert str(tmp_path) not in body.decode()  # no file paths
    with store.session() as s:
        (row,) = W.list_deliveries(s, "delivered")
        assert row.attempts == 3 and row.webhook_id == hook.id


def test_dead_letters_replay_and_cli(db_path: str, receiver: Receiver, tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        res = runner.invoke(main, [*args, "--db", db_path, "--format", "json"])
        assert res.exit_code == code, (args, res.output)
        return json.loads(res.stdout) if res.stdout.strip() else None

    run("lists", "create", "known")
    run("lists", "entries", "add", "known", "md5:" + hashlib.md5(BAD).hexdigest())
    added = run("webhooks", "add", "known", receiver.url + "/down")
    secret, hook_id = added["secret"], added["id"]
    listed = run("webhooks", "ls")
    assert listed == [{k: v for k, v in added.items() if k != "secret"}]  # no secret shown
    receiver.script["/down"] = [500] * 3
    (tmp_path / "bad.bin").write_bytes(BAD)
    assert runner.invoke(main, ["scan", str(tmp_path), "--db", db_path]).exit_code == 0
    out = run("webhooks", "deliver", "--now", "--wait", "--base-delay", "0.05",
              "--max-attempts", "3")  # fmt: skip
    assert out == {"delivered": 0, "retry": 1, "dead": 1, "pending": 0}
    (dead,) = run("webhooks", "ls", "--deliveries", "dead")
    assert dead["attempts"] == 3 and dead["last_error"] == "HTTP 500"
    assert len(receiver.on("/down")) == 3
    replayed = run("webhooks", "replay", str(dead["id"]))  # the receiver is fine again
    assert replayed["status"] == "delivered" and replayed["id"] == dead["id"]
    assert run("webhooks", "ls", "--deliveries", "dead") == []
    calls = receiver.on("/down")
    assert len(calls) == 4 and len({c["body"] for c in calls}) == 1
    tested = run("webhooks", "test", str(hook_id))
    assert tested["status"] == "delivered"
    last = receiver.on("/down")[-1]
    assert last["headers"]["X-Ridgeline-Event"] == "test"
    assert W.verify_signature(secret, last["body"], last["headers"]["X-Ridgeline-Signature"])
    receiver.script["/down"] = [500]
    assert run("webhooks", "test", str(hook_id), code=1)["status"] == "pending"
    res = runner.invoke(main, ["webhooks", "add", "known", "ftp://x", "--db", db_path])
    assert res.exit_code == 2 and "http:// or https://" in res.stderr
