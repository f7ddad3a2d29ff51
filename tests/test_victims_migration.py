"""Migrations 0022 (victim hashes keyed by a short integer, the records' unique key as an
index) and 0023 (registry times as integer microseconds, the records' derived status
and first-seen source dropped) on a store holding victims: down to 0021 and up again
keeps every row, the keys it computes are the import's, and the merge is the same."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from migrate_to import migrate_to
from ridgeline.fastread import HEAD_REVISION
from ridgeline.store import Store
from ridgeline.store.models import Base
from ridgeline.victims.feed import hash_key
from ridgeline.victims.registry import import_records, merges, rebuild
from ridgeline.victims.synth import generate

_TIMES = {"first_seen", "identified_at", "imported_at", "traded_since", "created_at"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(value: Any) -> Any:
    """A stored time in any revision's form (text or datetime, integer microseconds
    since 0023) as integer microseconds."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def _rows(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every victims table's rows as stored, read through reflection (the models are
    the newest revision's), times as microseconds; the records' `status` and
    `first_seen_source` (before 0023) checked against what they are derived from."""
    out = {}
    names = [t.name for t in Base.metadata.sorted_tables]
    with store.engine.connect() as conn:
        meta = sa.MetaData()
        for name in names:
            if not (name.startswith("victim_") or name == "merged_victims"):
                continue
            table = sa.Table(name, meta, autoload_with=conn)
            cols = [c for c in table.columns if c.name not in {"key", "status"}]
            if name == "victim_records":
                cols = [c for c in cols if c.name != "first_seen_source"]
                if "status" in table.c:
                    derived = conn.execute(
                        sa.select(sa.func.count()).where(
                            (table.c.status == "identified")
                            != table.c.identified_at.is_not(None)
                            | (table.c.first_seen_source != table.c.database)
                        )
                    ).scalar()
                    assert derived == 0
            query = sa.select(*cols).order_by(*table.primary_key.columns)
            out[name] = [
                tuple(_micros(v) if c.name in _TIMES else v for c, v in zip(cols, r, strict=True))
                for r in conn.execute(query)
            ]
    return out


def _indexes(store: Store, table: str) -> set[str]:
    inspector = sa.inspect(store.engine)
    names = {str(i["name"]) for i in inspector.get_indexes(table)}
    uniques = inspector.get_unique_constraints(table)
    return names | {f"unique:{','.join(u['column_names'])}" for u in uniques}


def test_down_and_up_keeps_every_record(store: Store, tmp_path: Path) -> None:
    world = generate(3, 150)
    import json

    lines = [json.dumps(r) for r in world.json_records()]
    lines.append(
        json.dumps(
            {
                "database": "Z",
                "victim_id": "odd",
                "first_seen": "2020-01-01",
                "hashes": [{"signal": "md5", "value": "ab" * 16}],
            }
        )
    )
    result = import_records(store, [("synth", lines)])
    assert result.errors == ()
    before, report = _rows(store), list(merges(store))
    with store.engine.connect() as conn:
        keys = conn.execute(sa.text("SELECT value, key FROM victim_hashes ORDER BY id")).all()
    assert keys and all(k == hash_key(v) for v, k in keys)

    migrate_to(store, "0022")
    assert store.current_revision() == "0022"
    cols = {c["name"] for c in sa.inspect(store.engine).get_columns("victim_records")}
    assert {"status", "first_seen_source"} <= cols
    assert "unique:database,series_key" in _indexes(store, "victim_series")
    assert _rows(store) == before

    migrate_to(store, "0021")
    assert store.current_revision() == "0021"
    hashes = _indexes(store, "victim_hashes")
    assert "ix_victim_hashes_value" in hashes and "ix_victim_hashes_key" not in hashes
    assert {"unique:database,victim_key", "ix_victim_records_merged"} <= _indexes(
        store, "victim_records"
    )
    cols = {c["name"] for c in sa.inspect(store.engine).get_columns("victim_hashes")}
    assert "key" not in cols
    assert _rows(store) == before

    migrate_to(store, HEAD_REVISION)
    assert store.current_revision() == HEAD_REVISION
    assert "ix_victim_hashes_key" in _indexes(store, "victim_hashes")
    records = _indexes(store, "victim_records")
    assert {"ux_victim_records_key", "ix_victim_records_merged"} <= records
    assert "unique:database,victim_key" not in records
    series = _indexes(store, "victim_series")
    assert "ux_victim_series_key" in series and "unique:database,series_key" not in series
    assert _rows(store) == before
    with store.engine.connect() as conn:
        again = conn.execute(sa.text("SELECT value, key FROM victim_hashes ORDER BY id")).all()
    assert again == keys
    assert rebuild(store) == (result.victims, result.merges)
    assert list(merges(store)) == report
