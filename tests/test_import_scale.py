"""Imports at scale (issue 10 item 10): a killed import leaves nothing half-applied and
reruns to completion with no duplicates; bulk-imported entries keep their history,
times, submitter and change-feed rows in the compact representation (migration 0012);
existing rows are converted by the migration."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from kill9 import kill_at, writing
from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.index.match import MatchIndex
from ridgeline.lists.models import Change, Entry, EntrySignal, ImportBatch, ListCount
from ridgeline.store import Store

RIDGELINE = str(Path(sys.executable).parent / "ridgeline")


def _pdq(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def _db_arg(store: Store) -> str:
    url = store.engine.url
    if store.dialect == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=False)


def _counts(store: Store, name: str) -> dict[str, int]:
    with store.session() as s:
        hl = L.get_list(s, name)
        entries = s.scalar(select(func.count()).where(Entry.list_id == hl.id)) or 0
        keys = s.execute(
            select(func.count(), func.count(sa.distinct(EntrySignal.key)))
            .join(Entry, Entry.id == EntrySignal.entry_id)
            .where(Entry.list_id == hl.id)
        ).one()
        return {
            "entries": int(entries),
            "hashes": int(keys[0]),
            "distinct": int(keys[1]),
            "counted": int(s.get(ListCount, hl.id).entries),  # type: ignore[union-attr]
            "batches": int(s.scalar(select(func.count()).where(ImportBatch.list_id == hl.id)) or 0),
            "changes": int(s.scalar(select(func.count()).where(Change.list_id == hl.id)) or 0),
        }


def test_killed_import_leaves_nothing_and_reruns_without_duplicates(
    store: Store, tmp_path: Path
) -> None:
    """kill -9 of a real `ridgeline lists import` mid-way: nothing of it is stored; the
    rerun adds everything once; a third run adds nothing."""
    hashes = _pdq(120_000, seed=10)
    first = tmp_path / "first.txt"
    first.write_text("\n".join(hashes[:1000]) + "\n")
    full = tmp_path / "full.txt"
    full.write_text("\n".join(hashes) + "\n")
    with store.session() as s:
        L.create_list(s, "big")
    db = _db_arg(store)
    command = [RIDGELINE, "lists", "import", "big", "--signal", "pdq", "--db", db,
               "--output", "json"]  # fmt: skip
    subprocess.run([*command[:4], str(first), *command[4:]], check=True, capture_output=True)
    before = _counts(store, "big")
    assert before["entries"] == before["counted"] == 1000

    # killed in its open transaction once some batches are written: at a crash point, not
    # by watching the log grow (a fast import can finish between two looks)
    kill_at("lists.import.batch@3", [*command[:4], str(full), *command[4:]])
    if store.dialect == "postgresql":  # the server ends the orphaned transaction
        deadline = time.monotonic() + 60
        while writing(store, db) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _counts(store, "big") == before  # nothing half-applied

    done = subprocess.run([*command[:4], str(full), *command[4:]], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    report = __import__("json").loads(done.stdout)
    assert (report["added"], report["duplicates"]) == (119_000, 1000)
    after = _counts(store, "big")
    assert after["entries"] == after["hashes"] == after["distinct"] == after["counted"]
    assert after["entries"] == 120_000
    assert after["batches"] == 2
    # one change row per inserted range, not per entry
    assert after["changes"] < 100

    again = subprocess.run([*command[:4], str(full), *command[4:]], capture_output=True)
    assert again.returncode == 0
    assert __import__("json").loads(again.stdout)["added"] == 0
    assert _counts(store, "big")["entries"] == 120_000


def test_bulk_entries_keep_history_times_and_submitter(store: Store, tmp_path: Path) -> None:
    """History, entry views, exports and the index read the compact rows as before."""
    hashes = _pdq(5, seed=11)
    txt = tmp_path / "h.txt"
    txt.write_text("# a comment\n" + "\n".join([hashes[0], hashes[1], hashes[0], *hashes[2:]]))
    with store.session() as s:
        hl = L.create_list(s, "p")
        report = exchange.import_file(s, hl, txt, "txt", signal="pdq", actor="importer")
    assert (report.added, report.duplicates) == (5, 1)
    with store.session() as s:
        hl = L.get_list(s, "p")
        entries = L.list_entries(s, hl)
        assert [e.signals[0].value for e in entries] == hashes
        by_line = {}
        for entry in entries:
            (event,) = L.entry_history(s, entry.id)
            view = L.event_to_json(event)
            assert view["action"] == "import" and view["actor"] == "importer"
            assert view["details"]["batch"] == report.batch
            assert view["details"]["format"] == "txt"
            assert view["details"]["status"] == "confirmed"
            by_line[entry.signals[0].value] = view["details"]["position"]
            shown = L.entry_to_json(entry)
            assert shown["created_at"] and shown["updated_at"] == shown["created_at"]
            assert shown["submitted_by"] == "importer"
            assert shown["provenance"]["import_batch"] == report.batch
        # line 1 is the comment, line 4 the repeated hash
        assert by_line == {hashes[0]: "line 2", hashes[1]: "line 3", hashes[2]: "line 5",
                           hashes[3]: "line 6", hashes[4]: "line 7"}  # fmt: skip
        # a later change is the entry's own event, after the import
        L.set_entry_enabled(s, entries[0], False, actor="reviewer", reason="check")
        history = [e.action for e in L.entry_history(s, entries[0].id)]
        assert history == ["import", "disable"]
        items = exchange.export_items(s, hl)
        assert {i.signals["pdq"] for i in items} == set(hashes)
        assert all(i.updated_at is not None for i in items)
        ranges = s.execute(
            select(Change.entry_id, Change.last_entry_id).where(
                Change.list_id == hl.id, Change.op == "add"
            )
        ).all()
        assert ranges == [(entries[0].id, entries[-1].id)]


def test_index_follows_a_range_change_row(store: Store, tmp_path: Path) -> None:
    """A match index built before an import sees the new entries after a refresh."""
    old, new = _pdq(2, seed=12)
    with store.session() as s:
        hl = L.create_list(s, "p")
        L.add_entry(s, hl, {"pdq": old})
    index = MatchIndex.open(store, tmp_path / "index")
    try:
        index.load(["pdq"])
        assert index.match("pdq", [new]) == [[]]
        txt = tmp_path / "h.txt"
        txt.write_text(new + "\n")
        with store.session() as s:
            exchange.import_file(s, L.get_list(s, "p"), txt, "txt", signal="pdq")
        index.refresh()
        (found,) = index.match("pdq", [new])
        assert [m.distance for m in found] == [0]
    finally:
        index.close()


def test_migration_converts_stored_hashes(tmp_path: Path) -> None:
    """Rows written before 0012 (text value and lookup key) read and match after it."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, migrate=False)
    old.migrate("0011")
    pdq = _pdq(1, seed=13)[0]
    long_value = "x" * 300
    with old.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO lists (id, name, purpose, enabled, signals, thresholds, "
                             "review_quorum, created_at, updated_at) VALUES (1, 'old', 'block', 1, "
                             "'[]', '{}', 0, '2026-01-01', '2026-01-01')"))  # fmt: skip
        conn.execute(sa.text("INSERT INTO entries (id, list_id, status, enabled, classifications, "
                             "created_at, updated_at) VALUES (1, 1, 'confirmed', 1, '[]', "
                             "'2026-01-01', '2026-01-01'), (2, 1, 'confirmed', 1, '[]', "
                             "'2026-01-01', '2026-01-01')"))  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO entry_signals (entry_id, signal, value, lookup_key) VALUES "
                "(1, 'pdq', :pdq, :pdq), (2, 'vpdq', :long, :digest)"
            ),
            {"pdq": pdq, "long": long_value, "digest": "sha256:0"},
        )
    old.close()
    with Store(url) as store, store.session() as s:
        rows = s.execute(select(EntrySignal.entry_id, EntrySignal.text_value)).all()
        assert sorted(rows) == [(1, None), (2, long_value)]  # hex kept as 32 raw bytes
        assert [
            sig.value for e in L.list_entries(s, L.get_list(s, "old")) for sig in e.signals
        ] == [
            pdq,
            long_value,
        ]
        hits = L.live_entry_keys(s, L.get_list(s, "old"), [("pdq", bytes.fromhex(pdq))])
        assert hits == [(1, "pdq", bytes.fromhex(pdq))]
        assert s.scalar(select(func.length(EntrySignal.key)).where(EntrySignal.entry_id == 1)) == 32


@pytest.mark.parametrize("n", [3])
def test_bare_lines_report_bad_hashes_by_line(store: Store, tmp_path: Path, n: int) -> None:
    """Streamed txt still rejects a bad line by its number and keeps the rest."""
    hashes = _pdq(n, seed=14)
    txt = tmp_path / "h.txt"
    txt.write_bytes(
        ("\ufeff" + hashes[0] + "\r\nnot-a-hash\r\n" + "\r\n".join(hashes[1:])).encode()
    )
    with store.session() as s:
        report = exchange.import_file(s, L.create_list(s, "p"), txt, "txt", signal="pdq")
    assert report.added == n and report.read == n + 1
    assert [e["position"] for e in report.errors] == ["line 2"]
