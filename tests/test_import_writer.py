"""One import writer for every format: our own txt/csv/jsonl take the same options as
the partner formats (`--since`, `--source`, `--confirmed-elsewhere`), give the same
report, the same history, log and sync records, and the same de-duplication; on a real
SQLite file and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ridgeline import auditlog, exchange
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import BadInput
from ridgeline.exchange.models import SyncState
from ridgeline.lists.models import Entry
from ridgeline.store import Store

MD5 = [f"{i:032x}" for i in range(1, 9)]


def _cli(store: Store, *args: str) -> tuple[int, dict[str, object], str]:
    result = CliRunner().invoke(main, [*args, "--db", store.url, "--output", "json"])
    out = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, out, result.stderr


def _entries(store: Store, name: str) -> dict[str, Entry]:
    with store.session() as s:
        hl = L.get_list(s, name)
        return {e.signals[0].value: e for e in L.list_entries(s, hl)}


def test_native_csv_import_takes_since_source_and_confirmed_elsewhere(
    store: Store, tmp_path: Path
) -> None:
    with store.session() as s:
        L.create_list(s, "reviewed", review_quorum=3)
    first = tmp_path / "partner.csv"
    first.write_text(
        "md5,classifications,source,timestamp\n"
        f"{MD5[0]},industry:A1,,2026-01-01T00:00:00Z\n"
        f"{MD5[1]},,hotline,2026-02-01T00:00:00Z\n"
        f"{MD5[2]},,,2025-06-01T00:00:00Z\n"
        "not-a-hash,,,2026-02-01T00:00:00Z\n"
        f"{MD5[3]},,,\n"
    )
    code, report, stderr = _cli(
        store, "lists", "import", "reviewed", str(first), "--source", "partner-x",
        "--since", "2026-01-01T00:00:00Z", "--confirmed-elsewhere",
    )  # fmt: skip
    assert code == 1  # the bad line
    assert f"{first}:line 5: invalid md5 hash 'not-a-hash'" in stderr
    assert report["added"] == 3 and report["skipped_older"] == 1 and report["errors"] == 1
    assert report["source"] == "partner-x" and report["format"] == "csv"
    assert report["max_timestamp"] == "2026-02-01T00:00:00Z"
    entries = _entries(store, "reviewed")
    assert set(entries) == {MD5[0], MD5[1], MD5[3]}  # MD5[2] older than --since
    assert {e.status for e in entries.values()} == {"confirmed"}  # despite quorum 3
    assert entries[MD5[0]].source == "partner-x" and entries[MD5[1]].source == "hotline"
    assert entries[MD5[0]].classifications == [{"scheme": "industry", "label": "A1"}]
    with store.session() as s:
        (state,) = s.scalars(select(SyncState))
        assert state.source == "partner-x" and state.format == "csv"
        (history,) = L.entry_history(s, entries[MD5[0]].id)
        assert history.action == "import"
        assert history.details["position"] == "line 2" and history.details["format"] == "csv"
        (logged,) = auditlog.records(s, action="list.import")
        assert json.loads(logged.details)["confirmed_elsewhere"] is True
        assert json.loads(logged.details)["status"] == "confirmed"

    # the next file from the same source continues where the last one stopped
    second = tmp_path / "partner-2.csv"
    second.write_text(
        "md5,timestamp\n"
        f"{MD5[4]},2026-01-15T00:00:00Z\n"  # older than what partner-x sent last
        f"{MD5[5]},2026-03-01T00:00:00Z\n"
    )
    code, report, _ = _cli(
        store, "lists", "import", "reviewed", str(second), "--source", "partner-x",
        "--since", "last",
    )  # fmt: skip
    # Feed pages are not in time order: a record older than the watermark that the
    # list has not seen is applied, not skipped.
    assert code == 0 and report["added"] == 2 and report["skipped_older"] == 0
    entries = _entries(store, "reviewed")
    assert entries[MD5[5]].status == "pending"  # no --confirmed-elsewhere this time
    assert MD5[4] in entries
    code, report, _ = _cli(
        store, "lists", "import", "reviewed", str(second), "--source", "partner-x",
        "--since", "last",
    )  # fmt: skip
    assert code == 0 and report["skipped_older"] == 1  # seen before and older: skipped


def test_native_jsonl_and_txt_take_the_same_options(store: Store, tmp_path: Path) -> None:
    jsonl = tmp_path / "h.jsonl"
    jsonl.write_text(
        json.dumps({"signals": {"md5": MD5[0]}, "timestamp": "2026-01-02T00:00:00Z"})
        + "\n"
        + json.dumps({"md5": MD5[1], "timestamp": "2025-01-01T00:00:00Z"})
        + "\n[1]\n"
    )
    txt = tmp_path / "h.txt"
    txt.write_text(f"# partner drop\n{MD5[2]}\n{MD5[0]}\n")
    with store.session() as s:
        hl = L.create_list(s, "reviewed", review_quorum=2)
        r1 = exchange.import_file(
            s, hl, jsonl, "jsonl", source="drop", since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            confirmed_elsewhere=True,
        )  # fmt: skip
        r2 = exchange.import_file(s, hl, txt, "txt", signal="md5", source="drop", since="last")
    assert (r1.added, r1.skipped_older, r1.errors) == (
        1,
        1,
        [{"position": "line 3", "error": "expected a JSON object"}],
    )
    assert (r2.added, r2.duplicates) == (1, 1)  # txt lines carry no time: always applied
    assert type(r1) is type(r2) is exchange.ImportReport
    entries = _entries(store, "reviewed")
    assert entries[MD5[0]].status == "confirmed" and MD5[1] not in entries
    assert entries[MD5[2]].status == "pending" and entries[MD5[2]].source == "drop"
    with store.session() as s:
        hl = L.get_list(s, "reviewed")
        later = tmp_path / "later.jsonl"
        later.write_text(
            json.dumps({"md5": MD5[3], "timestamp": "2025-12-31T00:00:00Z"})
            + "\n"
            + json.dumps({"md5": MD5[4], "timestamp": "2026-01-03T00:00:00Z"})
            + "\n"
        )
        r3 = exchange.import_file(s, hl, later, "jsonl", source="drop", since="last")
    # Pages are not in time order: an unseen record older than the watermark is kept.
    assert (r3.added, r3.skipped_older) == (2, 0)


# HMA bank content carries no image MD5 (only PDQ, vPDQ and video MD5), so its round
# trip is tested in test_exchange_meaning.py with the signals it carries.
@pytest.mark.parametrize("fmt", [f for f in exchange.IMPORT_FORMATS if f != "hma-json"])
def test_one_writer_for_every_format(store: Store, tmp_path: Path, fmt: str) -> None:
    """Every format, ours and the partners', is written by the same writer: the same
    report, initial status rule, history event, log record, sync state and de-duplication."""
    with store.session() as s:
        seed = L.create_list(s, "seed")
        for value in MD5[:3]:
            # StopNCII and threatexchange carry video MD5s only: the seeds are videos' there.
            video = fmt in ("stopncii", "te-lines", "te-csv")
            origin = f"VideoMD5:{value}" if video else value[-4:]
            L.add_entry(s, seed, {"md5": value}, origin_member="m", origin_entry_id=origin)
        data = (
            "\n".join(MD5[:3]).encode()
            if fmt == "txt"
            else exchange.export_list(s, seed, fmt, member_name="Member")
        )
    path = tmp_path / f"file.{fmt}"
    path.write_bytes(data)
    with store.session() as s:
        hl = L.create_list(s, "into", review_quorum=2)
        report = exchange.import_file(
            s, hl, path, fmt, signal="md5", source=f"src-{fmt}", confirmed_elsewhere=True
        )
        again = exchange.import_file(s, hl, path, fmt, signal="md5", source=f"src-{fmt}")
    assert isinstance(report, exchange.ImportReport) and report.format == fmt
    assert (report.added, report.errors) == (3, [])
    assert again.added == 0 and again.duplicates + again.updated == 3
    with store.session() as s:
        hl = L.get_list(s, "into")
        entries = L.list_entries(s, hl)
        assert {e.status for e in entries} == {"confirmed"}
        assert {e.batch_name for e in entries} == {report.batch}
        events = [ev for e in entries for ev in L.entry_history(s, e.id)]
        assert {(ev.action, ev.details["format"], ev.details["batch"]) for ev in events} == {
            ("import", fmt, report.batch)
        }
        assert all(ev.details["position"] for ev in events)
        logged = list(auditlog.records(s, action="list.import", subject=f"list:{hl.id}"))
        assert [json.loads(r.details)["batch"] for r in logged] == [report.batch, again.batch]
        assert s.scalars(select(SyncState.source).where(SyncState.list_id == hl.id)).all() == [
            f"src-{fmt}"
        ]


def test_failed_import_stores_nothing(store: Store, tmp_path: Path) -> None:
    """A file that cannot be read as its format is refused before anything is written;
    bad lines are reported by number and the good ones kept."""
    broken = tmp_path / "b.csv"
    broken.write_bytes(b"md5\n" + MD5[0].encode() + b"\n\xff\xfe\n")
    with store.session() as s:
        hl = L.create_list(s, "t")
        with pytest.raises(BadInput, match="not UTF-8"):
            exchange.import_file(s, hl, broken, "csv")
    with store.session() as s:
        assert s.scalars(select(Entry)).all() == []
        assert list(auditlog.records(s, action="list.import")) == []
    mixed = tmp_path / "m.csv"
    mixed.write_text(f'md5,note\n{MD5[0]},ok\n"{MD5[1]},unterminated\n')
    with store.session() as s:
        report = exchange.import_file(s, L.get_list(s, "t"), mixed, "csv")
    assert report.added == 1 and report.errors == [
        {"position": "line 3", "error": "a quoted field is never closed (the file ends inside it)"}
    ]


def test_duplicates_are_per_list_and_ignore_tombstones(store: Store, tmp_path: Path) -> None:
    """A hash is a duplicate only when a live entry of the same list holds it."""
    with store.session() as s:
        other = L.create_list(s, "other")
        L.add_entry(s, other, {"md5": MD5[0]})
        hl = L.create_list(s, "into")
        gone = L.add_entry(s, hl, {"md5": MD5[1]})
        L.delete_entry(s, gone)
        L.add_entry(s, hl, {"md5": MD5[2], "sha1": "a" * 40})
    path = tmp_path / "h.csv"
    path.write_text(f"md5,sha1\n{MD5[0]},\n{MD5[1]},\n{MD5[3]},{'A' * 40}\n{MD5[0]},\n")
    with store.session() as s:
        report = exchange.import_file(s, L.get_list(s, "into"), path, "csv")
    # MD5[0] is on another list only, MD5[1] only on a tombstone; the sha1 (any case)
    # is held by a live entry; the second MD5[0] row repeats one this file added
    assert (report.added, report.duplicates) == (2, 2)
    assert set(_entries(store, "into")) == {MD5[0], MD5[1], MD5[2]}
