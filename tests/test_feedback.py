"""Provider feedback flows from a subscriber back to the list owner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ridgeline import feedback, releases
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import BadInput
from ridgeline.lists.models import Entry
from ridgeline.store import Store

MD5 = [f"{i:032x}" for i in range(1, 5)]


@pytest.fixture
def owner_and_provider(store: Store, tmp_path: Path) -> Iterator[tuple[Store, Store, list[int]]]:
    """Owner (parametrised store) releases a list; the provider (SQLite) pulls it."""
    provider = Store.open(tmp_path / "provider.db")
    with store.session() as session:
        src = L.create_list(session, "owned")
        ids = [L.add_entry(session, src, {"md5": m}).id for m in MD5[:3]]
    private, public = tmp_path / "k.key", tmp_path / "k.pub"
    releases.generate_keypair(private, public)
    with store.session() as session:
        releases.create_release(
            session,
            L.get_list(session, "owned"),
            releases.load_private_key(private),
            tmp_path / "rel",
        )
    with provider.session() as session:
        releases.pull_release(session, tmp_path / "rel", releases.load_public_key(public))
    yield store, provider, ids
    provider.close()


def provider_entry(provider: Store, md5: str) -> int:
    with provider.session() as session:
        for entry in session.scalars(select(Entry)):
            if entry.signals[0].value == md5:
                return entry.id
    raise AssertionError(md5)


def test_feedback_round_trip_to_owner(
    owner_and_provider: tuple[Store, Store, list[int]], tmp_path: Path
) -> None:
    owner, provider, ids = owner_and_provider
    with provider.session() as session:
        e0 = L.get_entry(session, provider_entry(provider, MD5[0]))
        e1 = L.get_entry(session, provider_entry(provider, MD5[1]))
        feedback.record_feedback(
            session, e0, provider="acme", kind="negative", reason="not-csam: cartoon"
        )
        feedback.record_feedback(session, e1, provider="acme", kind="affirmative")
        data = feedback.export_feedback(session)
    path = tmp_path / "fb.jsonl"
    path.write_bytes(data + b"{broken\n")
    with owner.session() as session:
        report = feedback.import_feedback(session, path)
    assert report.added == 2 and report.errors[0]["line"] == 3
    with owner.session() as session:
        summary = feedback.summary_for_entries(session, ids)
    assert summary[ids[0]]["negative"] == 1
    assert summary[ids[0]]["reasons"] == {"not-csam: cartoon": 1}
    assert summary[ids[1]]["affirmative"] == 1 and ids[2] not in summary
    with owner.session() as session:
        again = feedback.import_feedback(session, path)
    assert again.added == 0 and again.duplicates == 2  # re-import adds nothing twice


def test_feedback_matches_by_hash_without_release(store: Store, tmp_path: Path) -> None:
    with store.session() as session:
        hash_list = L.create_list(session, "own")
        entry = L.add_entry(session, hash_list, {"md5": MD5[3]})
    line = {
        "uid": "u1",
        "provider": "p",
        "kind": "negative",
        "reason": "damaged file",
        "at": "2026-01-01T00:00:00Z",
        "entry": {"signals": {"md5": MD5[3].upper()}},
    }
    unknown = dict(line, uid="u2", entry={"signals": {"md5": "f" * 32}})
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(unknown) + "\n")
    with store.session() as session:
        report = feedback.import_feedback(session, path)
    assert (report.added, report.unmatched) == (1, 1)
    with store.session() as session:
        assert feedback.list_summary(session, L.get_list(session, "own"))[0]["entry_id"] == entry.id


def test_negative_feedback_needs_reason(store: Store) -> None:
    with store.session() as session:
        entry = L.add_entry(session, L.create_list(session, "r"), {"md5": MD5[0]})
        with pytest.raises(BadInput, match="needs a reason"):
            feedback.record_feedback(session, entry, provider="p", kind="negative")
        with pytest.raises(BadInput, match="affirmative or negative"):
            feedback.record_feedback(session, entry, provider="p", kind="maybe")


def test_cli_feedback(db_path: str, tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["lists", "create", "c", "--db", db_path])
    runner.invoke(main, ["lists", "entries", "add", "c", f"md5:{MD5[0]}", "--db", db_path])
    result = runner.invoke(
        main,
        [
            "lists",
            "feedback",
            "1",
            "--negative",
            "--reason",
            "not-csam: cartoon",
            "--provider",
            "acme",
            "--db",
            db_path,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, ["lists", "feedback", "1", "--negative", "--provider", "acme", "--db", db_path]
    )
    assert result.exit_code == 2 and "needs a reason" in result.stderr
    out = tmp_path / "fb.jsonl"
    assert (
        runner.invoke(main, ["lists", "feedback-export", str(out), "--db", db_path]).exit_code == 0
    )
    owner_db = str(tmp_path / "owner.db")
    runner.invoke(main, ["lists", "create", "c", "--db", owner_db])
    runner.invoke(main, ["lists", "entries", "add", "c", f"md5:{MD5[0]}", "--db", owner_db])
    result = runner.invoke(
        main, ["lists", "feedback-import", str(out), "--db", owner_db, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 1
    result = runner.invoke(
        main, ["lists", "feedback-show", "c", "--db", owner_db, "--format", "json"]
    )
    assert json.loads(result.stdout)[0]["negative"] == 1
