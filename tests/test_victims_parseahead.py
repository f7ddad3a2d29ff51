"""`ridgeline victims import` parsing in a second process (`victims.feed`): the rows it
stores, the merge, the export and the bad lines it names are exactly those of the same
producer run in this process, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ridgeline.errors import BadInput
from ridgeline.store import Store
from ridgeline.store.models import Base
from ridgeline.victims import feed
from ridgeline.victims.registry import export_records, import_files, merges
from ridgeline.victims.synth import generate

#: columns that hold the time of the import itself
_CLOCK = {"imported_at", "created_at"}


def _victim_tables() -> list[sa.Table]:
    return [
        t
        for t in Base.metadata.sorted_tables
        if t.name.startswith("victim_") or t.name == "merged_victims"
    ]


def _dump(store: Store) -> dict[str, object]:
    """Every row of every victims table (but the import's own clock), the merge report
    and the export."""
    out: dict[str, object] = {}
    with store.engine.connect() as conn:
        for table in _victim_tables():
            cols = [c for c in table.columns if c.name not in _CLOCK]
            rows = conn.execute(sa.select(*cols).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    out["merges"] = list(merges(store))
    out["export"] = [json.dumps(r.to_json(), sort_keys=True) for r in export_records(store)]
    return out


def _empty(store: Store) -> None:
    """Back to no victims, ids starting from 1 again."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            names = ", ".join(t.name for t in _victim_tables())
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(_victim_tables()):
            conn.execute(table.delete())


def _files(tmp_path: Path) -> list[Path]:
    """A synthetic world's files, a file replacing some of its records, and one with
    bad lines among good ones."""
    paths = generate(11, 300).write(tmp_path / "world")
    lines = paths[0].read_text().splitlines()
    again = tmp_path / "again.jsonl"
    again.write_text("\n".join(lines[:25]) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            [
                lines[30].replace('"database":"', '"database":"X'),
                '{"database": "X", "victim_id": "b1"}',
                "",
                "not json",
                '{"database": "X", "victim_id": "b2", "first_seen": "2020-13-01"}',
                lines[31].replace('"database":"', '"database":"X'),
                '{"database": "X", "victim_id": "b3", "first_seen": "2021-01-01", '
                '"sightings": ["yesterday"]}',
                lines[30].replace('"database":"', '"database":"X'),
            ]
        )
        + "\n"
    )
    return [*paths, again, bad]


def test_second_process_stores_what_one_process_stores(store: Store, tmp_path: Path) -> None:
    paths = _files(tmp_path)
    ahead = import_files(store, paths, parse_ahead=True)
    got = _dump(store)
    _empty(store)
    inline = import_files(store, paths, parse_ahead=False)
    assert ahead == inline
    assert ahead.replaced == 25 and ahead.records > 300
    assert _dump(store) == got
    bad = str(paths[-1])
    assert [(e.source, e.line) for e in ahead.errors] == [
        (bad, 2),
        (bad, 4),
        (bad, 5),
        (bad, 7),
        (bad, 8),
    ]
    assert "first_seen is required" in ahead.errors[0].message
    assert "duplicate victim" in ahead.errors[-1].message


def test_frames_round_trip_every_column(tmp_path: Path) -> None:
    names = [str(p) for p in _files(tmp_path)]
    now = dt.datetime(2026, 12, 3, 15, 30, 0, 123456, tzinfo=dt.UTC)
    spec = feed.Spec([], 7, 11, now)
    direct = list(feed.prepared(feed._file_sources(names), spec))
    assert direct[0].first_id == 7 and direct[0].first_hash == 11
    # the records' times are integer microseconds (UtcMicros), the import's time too
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert direct[0].record_rows[0][-1] == (now - epoch) // dt.timedelta(microseconds=1)
    for p in direct:
        back = feed.decode(feed.encode(p))
        for name, value in vars(p).items():
            other = getattr(back, name)
            if hasattr(value, "dtype"):
                assert value.tolist() == other.tolist(), name
            else:
                assert value == other, name


@pytest.mark.parametrize("ahead", [True, False])
def test_unreadable_and_non_utf8_files_are_bad_input(
    sqlite_store: Store, tmp_path: Path, ahead: bool
) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(BadInput, match=r"cannot read .*missing\.jsonl"):
        import_files(sqlite_store, [missing], parse_ahead=ahead)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"database": "A", "victim_id": "\xe9", "first_seen": "2020-01-01"}\n')
    with pytest.raises(BadInput, match=r"latin\.jsonl: not UTF-8"):
        import_files(sqlite_store, [latin], parse_ahead=ahead)
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM victim_records")).scalar() == 0
