"""Evidence storage: AES-GCM at rest, key handling, binding, retention, no media in logs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select, text

from ridgeline import auditlog, evidence
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import BadInput, NotFound
from ridgeline.evidence.models import EvidenceBlob
from ridgeline.store import Store

KEY = evidence.EvidenceKey(bytes(range(32)))
OTHER = evidence.EvidenceKey(bytes(range(1, 33)))


def _benign_png(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _entries(session, n: int = 2):  # type: ignore[no-untyped-def]
    hl = L.create_list(session, "ev")
    return [
        L.add_entry(session, hl, {"md5": hashlib.md5(bytes([i])).hexdigest()}) for i in range(n)
    ]


def test_round_trip_encrypted_at_rest(store: Store) -> None:
    data = _benign_png()
    with store.session() as session:
        e, _ = _entries(session)
        blob = evidence.store_evidence(session, e.id, data, KEY, actor="ops")
        assert blob.media_type == "image/png" and blob.size == len(data)
        assert evidence.load_evidence(session, e.id, KEY) == data
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT ciphertext, nonce FROM evidence_blobs")).one()
    assert data not in bytes(stored[0]) and data[8:40] not in bytes(stored[0])
    assert len(bytes(stored[1])) == 12


def test_nonce_per_blob(store: Store) -> None:
    data = _benign_png()
    with store.session() as session:
        e, _ = _entries(session)
        a = evidence.store_evidence(session, e.id, data, KEY)
        b = evidence.store_evidence(session, e.id, data, KEY)
        assert a.nonce != b.nonce and a.ciphertext != b.ciphertext


def test_wrong_key_and_tampering_are_clear_errors(store: Store) -> None:
    with store.session() as session:
        e, _ = _entries(session)
        blob = evidence.store_evidence(session, e.id, _benign_png(), KEY)
        with pytest.raises(evidence.EvidenceKeyError, match="wrong key"):
            evidence.load_evidence(session, e.id, OTHER)
        blob_id = blob.id
    with store.engine.begin() as conn:
        ct = bytes(conn.execute(text("SELECT ciphertext FROM evidence_blobs")).scalar_one())
        flipped = bytes([ct[0] ^ 1]) + ct[1:]
        conn.execute(text("UPDATE evidence_blobs SET ciphertext = :c"), {"c": flipped})
    with (
        store.session() as session,
        pytest.raises(evidence.EvidenceKeyError, match="failed authentication"),
    ):
        evidence.decrypt_blob(evidence.get_blob(session, blob_id), KEY)


def test_blob_bound_to_its_entry(store: Store) -> None:
    with store.session() as session:
        e1, e2 = _entries(session)
        evidence.store_evidence(session, e1.id, _benign_png(), KEY)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE evidence_blobs SET entry_id = :e"), {"e": e2.id})
    with (
        store.session() as session,
        pytest.raises(evidence.EvidenceKeyError, match="moved to another entry"),
    ):
        evidence.load_evidence(session, e2.id, KEY)


def test_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(evidence.ENV_KEY, raising=False)
    monkeypatch.delenv(evidence.ENV_KEY_FILE, raising=False)
    with pytest.raises(evidence.EvidenceKeyError, match="no evidence key"):
        evidence.EvidenceKey.load()
    path = tmp_path / "evidence.key"
    made = evidence.generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert evidence.EvidenceKey.load(path).key_id == made.key_id
    with pytest.raises(Exception, match="refusing to overwrite"):
        evidence.generate_key_file(path)
    raw = tmp_path / "raw.key"
    raw.write_bytes(bytes(range(32)))
    assert evidence.EvidenceKey.from_file(raw).key_id == KEY.key_id
    monkeypatch.setenv(evidence.ENV_KEY, base64.b64encode(bytes(range(32))).decode())
    assert evidence.EvidenceKey.load().key_id == KEY.key_id
    monkeypatch.setenv(evidence.ENV_KEY, base64.b64encode(b"short").decode())
    with pytest.raises(evidence.EvidenceKeyError, match="must be 32 bytes"):
        evidence.EvidenceKey.load()
    monkeypatch.setenv(evidence.ENV_KEY, "!!not base64!!")
    with pytest.raises(evidence.EvidenceKeyError, match="not valid base64"):
        evidence.EvidenceKey.load()
    assert "00010203" not in repr(KEY)


def test_bad_input_refused(store: Store) -> None:
    with store.session() as session:
        e, _ = _entries(session)
        with pytest.raises(BadInput, match="empty"):
            evidence.store_evidence(session, e.id, b"", KEY)
        with pytest.raises(NotFound):
            evidence.store_evidence(session, 999, b"x", KEY)
        with pytest.raises(NotFound, match="no evidence"):
            evidence.load_evidence(session, e.id, KEY)


def test_purge_by_retention(store: Store) -> None:
    now = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    with store.session() as session:
        e, _ = _entries(session)
        evidence.store_evidence(
            session, e.id, _benign_png(1), KEY, now=now - dt.timedelta(days=400)
        )
        evidence.store_evidence(
            session, e.id, _benign_png(2), KEY, now=now - dt.timedelta(days=100)
        )
        assert evidence.purge(session, now=now) == 1  # default: one year
        assert len(evidence.list_evidence(session, e.id)) == 1
        assert evidence.purge(session, older_than_days=30, now=now) == 1
        assert evidence.list_evidence(session) == []
        purges = auditlog.records(session, action="evidence.purge")
        assert [json.loads(r.details)["purged"] for r in purges] == [1, 1]


def test_media_never_logged(store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _benign_png(3)
    media_file = tmp_path / "secret-media-name.png"
    media_file.write_bytes(data)
    caplog.set_level(logging.DEBUG)
    with store.session() as session:
        e, _ = _entries(session)
        evidence.store_evidence(session, e.id, media_file.read_bytes(), KEY)
        evidence.load_evidence(session, e.id, KEY)
        evidence.purge(session, older_than_days=0, now=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
        log_text = " ".join(r.details for r in auditlog.records(session))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "evidence blob" in messages  # it does log, only ids and counts
    for haystack in (messages, log_text):
        assert "secret-media-name" not in haystack and str(tmp_path) not in haystack
        assert data.hex()[:32] not in haystack and repr(data[:16]) not in haystack


def test_cli_keygen_add_ls_purge(tmp_path: Path, db_path: str) -> None:
    runner = CliRunner()
    key_path = str(tmp_path / "k.key")
    assert runner.invoke(main, ["evidence", "keygen", key_path]).exit_code == 0
    assert runner.invoke(main, ["lists", "create", "ev", "--db", db_path]).exit_code == 0
    add = runner.invoke(main, ["lists", "entries", "add", "ev", "md5:" + "b" * 32, "--db", db_path])
    assert add.exit_code == 0, add.output
    media = tmp_path / "m.png"
    media.write_bytes(_benign_png())
    ok = runner.invoke(main, ["evidence", "add", "1", str(media), "--key-file", key_path,
                              "--db", db_path, "--format", "json"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["media_type"] == "image/png"
    missing = runner.invoke(
        main,
        ["evidence", "add", "1", str(media), "--db", db_path],
        env={"RIDGELINE_EVIDENCE_KEY": "", "RIDGELINE_EVIDENCE_KEY_FILE": ""},
    )
    assert missing.exit_code == 1 and "no evidence key" in missing.output
    listed = runner.invoke(main, ["evidence", "ls", "--db", db_path, "--format", "jsonl"])
    assert len(listed.output.splitlines()) == 1
    kept = runner.invoke(main, ["evidence", "purge", "--db", db_path, "--format", "json"])
    assert json.loads(kept.output) == {"purged": 0, "older_than_days": 365}
    gone = runner.invoke(main, ["evidence", "purge", "--older-than", "0", "--db", db_path,
                                "--format", "json"])  # fmt: skip
    assert json.loads(gone.output)["purged"] == 1
    store = Store.open(db_path)
    with store.session() as session:
        assert session.scalars(select(EvidenceBlob)).all() == []
    store.close()
