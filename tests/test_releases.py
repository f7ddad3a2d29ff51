"""Signed releases: publish, pull, and every refusal (tamper, wrong key, order)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ridgeline import lists as L
from ridgeline import releases
from ridgeline.cli import main
from ridgeline.lists.models import Entry
from ridgeline.releases import ReleaseRefused
from ridgeline.releases.models import PulledRelease
from ridgeline.store import Store

MD5 = [f"{i:032x}" for i in range(1, 8)]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "pub.key", tmp_path / "pub.pub"
    releases.generate_keypair(private, public)
    return private, public


def publish(store: Store, out: Path, private: Path) -> releases.ReleaseResult:
    with store.session() as session:
        return releases.create_release(
            session, L.get_list(session, "src"), releases.load_private_key(private), out
        )


def live(store: Store, name: str) -> dict[str, str]:
    """md5 -> origin uid of the live entries of a list."""
    with store.session() as session:
        hash_list = L.get_list(session, name)
        out = {}
        for e in session.scalars(
            select(Entry).where(Entry.list_id == hash_list.id, Entry.deleted_at.is_(None))
        ):
            out[e.signals[0].value] = str(e.origin_entry_id)
        return out


def pull(store: Store, source: Path, public: Path, snapshot: bool = False) -> dict[str, Any]:
    with store.session() as session:
        return releases.pull_release(
            session, source, releases.load_public_key(public), snapshot=snapshot
        ).to_json()


@pytest.fixture
def two_stores(tmp_path: Path, store: Store) -> Iterator[tuple[Store, Store]]:
    """The subscriber is the parametrised store (pulls are checked on SQLite and
    PostgreSQL); the publisher a separate SQLite file (publishing on PostgreSQL is
    covered by tests/test_feedback.py)."""
    publisher = Store.open(tmp_path / "publisher.db")
    with publisher.session() as session:
        src = L.create_list(session, "src", owner="Example Clearinghouse")
        for md5 in MD5[:3]:
            L.add_entry(
                session, src, {"md5": md5}, classifications=[{"scheme": "industry", "label": "A1"}]
            )
    yield publisher, store
    publisher.close()


def test_release_snapshot_delta_and_pull_in_order(
    two_stores: tuple[Store, Store], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    pub, sub = two_stores
    private, public = keys
    out = tmp_path / "rel"
    first = publish(pub, out, private)
    assert first.version == 1 and first.manifest["counts"]["snapshot"] == 3
    assert pull(sub, out, public)["applied"][0]["kind"] == "snapshot"
    assert set(live(sub, "src")) == set(MD5[:3])
    # Change the list: add one, delete one, disable one (disabled entries are not listed).
    with pub.session() as session:
        src = L.get_list(session, "src")
        L.add_entry(session, src, {"md5": MD5[3]})
        ids = {e.signals[0].value: e for e in session.scalars(select(Entry))}
        L.delete_entry(session, ids[MD5[0]])
        L.set_entry_enabled(session, ids[MD5[1]], False)
    second = publish(pub, out, private)
    assert second.manifest["counts"] == {"snapshot": 2, "upserts": 1, "deletes": 2}
    assert second.manifest["previous_version"] == 1
    applied = pull(sub, out, public)["applied"]
    assert [a["kind"] for a in applied] == ["delta"]
    assert set(live(sub, "src")) == {MD5[2], MD5[3]}
    assert pull(sub, out, public)["applied"] == []  # up to date
    with sub.session() as session:
        assert session.scalar(select(PulledRelease.version).order_by(PulledRelease.id.desc())) == 2


def test_tampered_file_is_refused_and_nothing_changes(
    two_stores: tuple[Store, Store], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    pub, sub = two_stores
    private, public = keys
    result = publish(pub, tmp_path / "rel", private)
    snapshot = result.files["snapshot"]
    data = bytearray(snapshot.read_bytes())
    data[-5] ^= 1
    snapshot.write_bytes(bytes(data))
    with pytest.raises(ReleaseRefused, match="tampered"):
        pull(sub, tmp_path / "rel", public)
    with sub.session() as session:
        assert session.scalar(select(Entry.id)) is None
        assert session.scalar(select(PulledRelease.id)) is None


def test_altered_manifest_fails_signature(
    two_stores: tuple[Store, Store], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    pub, sub = two_stores
    private, public = keys
    result = publish(pub, tmp_path / "rel", private)
    doc = json.loads(result.files["manifest"].read_text())
    doc["manifest"]["counts"]["snapshot"] = 99
    result.files["manifest"].write_text(json.dumps(doc))
    with pytest.raises(ReleaseRefused, match="signature does not verify"):
        pull(sub, result.files["manifest"], public)


def test_wrong_key_is_refused(
    two_stores: tuple[Store, Store], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    pub, sub = two_stores
    private, _public = keys
    other_private, other_public = tmp_path / "other.key", tmp_path / "other.pub"
    releases.generate_keypair(other_private, other_public)
    publish(pub, tmp_path / "rel", private)
    with pytest.raises(ReleaseRefused, match="not the trusted key"):
        pull(sub, tmp_path / "rel", other_public)


def test_out_of_order_and_replay_are_refused_snapshot_resets(
    two_stores: tuple[Store, Store], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    pub, sub = two_stores
    private, public = keys
    first = publish(pub, tmp_path / "r1", private)
    with pub.session() as session:
        L.add_entry(session, L.get_list(session, "src"), {"md5": MD5[4]})
    publish(pub, tmp_path / "r2", private)
    with pub.session() as session:
        L.add_entry(session, L.get_list(session, "src"), {"md5": MD5[5]})
    third = publish(pub, tmp_path / "r3", private)
    pull(sub, first.files["manifest"], public)
    with pytest.raises(ReleaseRefused, match="does not follow"):
        pull(sub, third.files["manifest"], public)  # delta 3 on top of 1: gap
    with pytest.raises(ReleaseRefused, match="replay"):
        pull(sub, first.files["manifest"], public)
    assert set(live(sub, "src")) == set(MD5[:3])  # refusals changed nothing
    applied = pull(sub, third.files["manifest"], public, snapshot=True)["applied"]
    assert applied[0]["kind"] == "snapshot" and applied[0]["version"] == 3
    assert set(live(sub, "src")) == {*MD5[:3], MD5[4], MD5[5]}


def test_cli_keygen_release_pull(db_path: str, tmp_path: Path) -> None:
    runner = CliRunner()
    prefix = str(tmp_path / "k")
    result = runner.invoke(main, ["lists", "keygen", "--out", prefix, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k.key").stat().st_mode & 0o077 == 0
    runner.invoke(main, ["lists", "create", "rel", "--db", db_path])
    runner.invoke(main, ["lists", "entries", "add", "rel", f"md5:{MD5[0]}", "--db", db_path])
    out = tmp_path / "out"
    result = runner.invoke(
        main,
        [
            "lists",
            "release",
            "rel",
            "--key",
            prefix + ".key",
            "--out",
            str(out),
            "--db",
            db_path,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "rel-v1.delta.jsonl",
        "rel-v1.manifest.json",
        "rel-v1.snapshot.jsonl.gz",
    ]
    other_db = str(tmp_path / "other.db")
    assert runner.invoke(main, ["db", "init", "--db", other_db]).exit_code == 0
    result = runner.invoke(
        main,
        [
            "lists",
            "pull",
            str(out),
            "--trust",
            prefix + ".pub",
            "--db",
            other_db,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["applied"][0]["added"] == 1
    releases.generate_keypair(tmp_path / "x.key", tmp_path / "x.pub")
    result = runner.invoke(
        main, ["lists", "pull", str(out), "--trust", str(tmp_path / "x.pub"), "--db", other_db]
    )
    assert result.exit_code == 1 and "not the trusted key" in result.stderr
