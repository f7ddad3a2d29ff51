"""Chain of custody (issue 17, "Build and show" 6): report packages with a signed
manifest of hashes, filed reports' hashes in the tamper-evident log, and log-head
anchors (by hand and on `serve`'s schedule); each tamper is detected, on SQLite and
PostgreSQL, through the real `ridgeline` command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import Served
from cybertip_server import LocalCyberTip
from kill9 import RIDGELINE
from ridgeline import auditlog, custody, releases
from ridgeline.store import Store
from test_auditlog import _drop_triggers
from test_reports_cli import KEY, make_documents


def _run(
    *args: str, env: dict[str, str] | None = None, check: int = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([RIDGELINE, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == check, (done.stdout, done.stderr)
    return done


@pytest.fixture
def cybertip() -> Iterator[LocalCyberTip]:
    with LocalCyberTip(password="custody-secret-7c2") as s:
        yield s


@pytest.fixture
def filed(
    store: Store, cybertip: LocalCyberTip, tmp_path: Path
) -> tuple[dict[str, str], int, Path]:
    """A two-file report filed at the local CyberTipline server; (env, id, media)."""
    env = dict(os.environ, RIDGELINE_DB=store.url, RIDGELINE_EVIDENCE_KEY=KEY,
               RIDGELINE_CYBERTIP_USERNAME=cybertip.username,
               RIDGELINE_CYBERTIP_PASSWORD=cybertip.password)  # fmt: skip
    report, media, details = make_documents(tmp_path)
    other = tmp_path / "other.bin"
    other.write_bytes(b"a second benign file")
    created = _run("reports", "create", "--xml", str(report), "--file", str(media),
                   "--file-details", str(details), "--file", str(other), "--format", "json",
                   env=env)  # fmt: skip
    rid = int(json.loads(created.stdout)["id"])
    _run("reports", "file", str(rid), "--endpoint", cybertip.base, env=env)
    return env, rid, media


def _keys(tmp_path: Path, name: str = "custody") -> tuple[Path, Path]:
    private, public = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
    releases.generate_keypair(private, public)
    return private, public


def _rewrite_chain(store: Store, first_seq: int) -> None:
    """What an attacker who owns the database can do: edit a record and recompute every
    hash after it, so the chain is consistent again."""
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE log_records SET actor = 'mallory' WHERE seq = :s"),
                     {"s": first_seq})  # fmt: skip
    with store.session() as s:
        rows = auditlog.records(s, limit=None)
    prev = auditlog.GENESIS
    with store.engine.begin() as conn:
        for r in rows:
            digest = auditlog.record_hash(prev, r.seq, r.at, r.actor, r.action, r.subject,
                                          r.details)  # fmt: skip
            conn.execute(text("UPDATE log_records SET prev_hash = :p, hash = :h WHERE seq = :s"),
                         {"p": prev, "h": digest, "s": r.seq})  # fmt: skip
            prev = digest


def test_filed_report_package_is_signed_and_tamper_is_detected(
    store: Store, filed: tuple[dict[str, str], int, Path], tmp_path: Path
) -> None:
    env, rid, media = filed
    private, public = _keys(tmp_path)
    pkg = tmp_path / "pkg"
    _run("reports", "export", str(rid), "--out", str(pkg), "--sign-key", str(private),
         "--media", "--actor", "exporter", env=env)  # fmt: skip
    names = sorted(p.name for p in pkg.iterdir())
    assert names == ["fileDetails-0.xml", "manifest.json", "media-0-upload.png",
                     "media-1-other.bin", "report.xml"]  # fmt: skip
    assert (pkg / "media-0-upload.png").read_bytes() == media.read_bytes()
    verify = ["log", "verify-package", str(pkg), "--trust", str(public), "--format", "json"]
    good = json.loads(_run(*verify, "--check-log", env=env).stdout)
    assert good["ok"] and good["files"] == 4 and good["problems"] == []
    subject = good["subject"]
    assert subject["state"] == "finished"
    assert subject["files"][0]["sha256"] == hashlib.sha256(media.read_bytes()).hexdigest()
    # The filed report's hashes are in the chained log: what was submitted and filed.
    actions = {r["action"]: r for r in subject["log_records"]}
    assert {"report.submitted", "report.finished"} <= set(actions)
    with store.session() as s:
        (finished,) = auditlog.records(s, action="report.finished")
        (submitted,) = auditlog.records(s, action="report.submitted")
        (exported,) = auditlog.records(s, action="report.export")
    assert [f["md5"] for f in finished.to_json()["details"]["files"]] == [
        f["md5"] for f in subject["files"]
    ]
    report_xml = (pkg / "report.xml").read_bytes()
    assert submitted.to_json()["details"]["sha256"] == hashlib.sha256(report_xml).hexdigest()
    assert exported.actor == "exporter" and exported.to_json()["details"]["media"] is True

    def refused(*args: str) -> str:
        return _run(*verify, *args, env=env, check=1).stderr

    # A changed file, an added file, a removed file.
    original = (pkg / "report.xml").read_bytes()
    (pkg / "report.xml").write_bytes(original.replace(b"<report", b"<report ", 1))
    assert "report.xml: sha256 does not match the manifest (altered)" in refused()
    (pkg / "report.xml").write_bytes(original)
    (pkg / "extra.png").write_bytes(b"planted")
    assert "extra.png: not in the manifest (added)" in refused()
    (pkg / "extra.png").unlink()
    kept = (pkg / "media-1-other.bin").read_bytes()
    (pkg / "media-1-other.bin").unlink()
    assert "media-1-other.bin: missing" in refused()
    (pkg / "media-1-other.bin").write_bytes(kept)
    # An edited manifest (a file's recorded md5), then one re-signed with another key.
    manifest = pkg / "manifest.json"
    document = json.loads(manifest.read_bytes())
    saved = manifest.read_bytes()
    document["manifest"]["subject"]["files"][0]["md5"] = "0" * 32
    manifest.write_text(json.dumps(document))
    assert "the signature does not verify: the manifest was altered" in refused()
    other_private, _ = _keys(tmp_path, "mallory")
    mallory = tmp_path / "mallory-pkg"
    _run("reports", "export", str(rid), "--out", str(mallory), "--sign-key",
         str(other_private), env=env)  # fmt: skip
    assert (
        "not the trusted key"
        in _run(
            "log", "verify-package", str(mallory), "--trust", str(public), env=env, check=1
        ).stderr
    )
    unsigned = tmp_path / "unsigned"
    _run("reports", "export", str(rid), "--out", str(unsigned), env=env)
    assert (
        "the manifest is not signed"
        in _run(
            "log", "verify-package", str(unsigned), "--trust", str(public), env=env, check=1
        ).stderr
    )
    manifest.write_bytes(saved)
    assert json.loads(_run(*verify, env=env).stdout)["ok"]
    # The database's log rewritten after the export, every hash recomputed so that the
    # chain alone verifies: the package's records no longer match it.
    _rewrite_chain(store, finished.seq)
    assert json.loads(_run("log", "verify", "--format", "json", env=env).stdout)["ok"]
    problems = refused("--check-log")
    assert f"log record {finished.seq} is different in this database's log" in problems


def test_anchor_file_catches_a_rewritten_or_truncated_log(store: Store, tmp_path: Path) -> None:
    env = dict(os.environ, RIDGELINE_DB=store.url)
    anchors = tmp_path / "anchors.jsonl"
    for name in ("a", "b", "c"):
        _run("lists", "create", name, env=env)
        line = json.loads(_run("log", "head", "--out", str(anchors), "--format", "json",
                               env=env).stdout)  # fmt: skip
        assert set(line) == {"seq", "hash", "at"}
    assert len(anchors.read_text().splitlines()) == 3
    ok = json.loads(_run("log", "verify", "--anchors", str(anchors), "--format", "json",
                         env=env).stdout)  # fmt: skip
    assert ok["ok"] and ok["checked"] >= 3
    with store.session() as s:
        seq, _ = auditlog.head(s)
    _rewrite_chain(store, 1)
    assert json.loads(_run("log", "verify", "--format", "json", env=env).stdout)["ok"]
    bad = _run("log", "verify", "--anchors", str(anchors), env=env, check=1)
    assert "differs from its anchored hash" in bad.stderr and "rewritten" in bad.stderr
    with store.engine.begin() as conn:  # the tail cut off as well
        conn.execute(text("DELETE FROM log_records WHERE seq = :s"), {"s": seq})
    with store.session() as s:
        fresh = custody.anchor_line(s)
    assert fresh["seq"] == seq - 1
    cut = tmp_path / "cut.jsonl"
    custody.append_anchor(cut, {"seq": seq, "hash": "f" * 64, "at": "x"})
    truncated = _run("log", "verify", "--anchors", str(cut), env=env, check=1)
    assert f"anchored record {seq} is not in the log" in truncated.stderr
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    assert (
        "line 1: not an anchor line"
        in _run("log", "verify", "--anchors", str(garbage), env=env, check=2).stderr
    )


def test_serve_anchors_the_log_head_on_a_schedule(
    store: Store, serve_process: Callable[..., Served], tmp_path: Path
) -> None:
    env = dict(os.environ, RIDGELINE_DB=store.url)
    _run("lists", "create", "first", env=env)
    anchors = tmp_path / "serve-anchors.jsonl"
    serve_process("serve", "--port", "{port}", "--db", store.url, "--workers", "2",
                  "--anchor-file", str(anchors), "--anchor-every", "0.2")  # fmt: skip

    def lines() -> list[dict[str, object]]:
        if not anchors.exists():
            return []
        return [json.loads(x) for x in anchors.read_text().splitlines()]

    deadline = time.monotonic() + 30
    while not lines() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [x["seq"] for x in lines()] == [1]  # at start; no new line while nothing changes
    time.sleep(0.6)
    assert len(lines()) == 1
    _run("lists", "create", "second", env=env)
    while len(lines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [x["seq"] for x in lines()] == [1, 2]  # one writer, whatever the workers
    with store.session() as s:
        assert lines()[-1]["hash"] == auditlog.head(s)[1]
    assert json.loads(_run("log", "verify", "--anchors", str(anchors), "--format", "json",
                           env=env).stdout)["ok"]  # fmt: skip
