"""Victims import at scale: a killed import leaves nothing half-applied and a rerun
completes without duplicates; packed sightings, the merge's columns and the batch
parser give the same answers as the careful paths."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import sqlalchemy as sa

from kill9 import kill_at, writing
from ridgeline.indicator.data import _load_rows, load_table, table_from_records
from ridgeline.store import Store
from ridgeline.victims.merge import components, merge_components
from ridgeline.victims.records import (
    LineError,
    _all_plain,
    _one_time,
    _plain,
    fast_times,
    lower_hex,
    parse_batches,
    parse_lines,
)
from ridgeline.victims.registry import add_sightings, export_records, import_records
from ridgeline.victims.synth import generate

RIDGELINE = str(Path(sys.executable).parent / "ridgeline")


def _db_arg(store: Store) -> str:
    url = store.engine.url
    if store.dialect == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=False)


def _state(store: Store) -> dict[str, object]:
    """Everything an import writes, counted (and the merge's columns by digest)."""
    with store.engine.connect() as conn:
        one = lambda sql: conn.execute(sa.text(sql)).scalar()  # noqa: E731
        blob = one("SELECT data FROM victim_columns WHERE name = 'merged'")
        return {
            "records": one("SELECT COUNT(*) FROM victim_records"),
            "keys": one(
                "SELECT COUNT(*) FROM (SELECT DISTINCT database, victim_key FROM victim_records) k"
            ),
            "packs": one("SELECT COUNT(*) FROM victim_sighting_packs"),
            "sightings": one("SELECT COALESCE(SUM(count), 0) FROM victim_sighting_packs"),
            "hashes": one("SELECT COUNT(*) FROM victim_hashes"),
            "series": one("SELECT COUNT(*) FROM victim_series"),
            "record_series": one("SELECT COUNT(*) FROM victim_record_series"),
            "victims": one("SELECT COUNT(*) FROM merged_victims"),
            "unmerged": one("SELECT COUNT(*) FROM victim_records WHERE merged_id IS NULL"),
            "merges": one("SELECT COUNT(*) FROM victim_merges"),
            "columns": hashlib.sha256(bytes(blob)).hexdigest() if blob is not None else None,
            # an import may rebuild an index in its transaction: a kill must not lose it
            "indexes": sorted(
                conn.execute(
                    sa.text(
                        "SELECT name FROM sqlite_master WHERE type = 'index' "
                        "AND tbl_name LIKE 'victim%'"
                        if store.dialect == "sqlite"
                        else "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'victim%'"
                    )
                ).scalars()
            ),
        }


def test_killed_import_leaves_nothing_and_reruns_without_duplicates(
    store: Store, tmp_path: Path
) -> None:
    """kill -9 of a real `ridgeline victims import` of three databases mid-way: nothing
    of it is stored (the first database's earlier import stays as it was); the rerun
    imports every record once and merges them to the generator's victims; a third run
    replaces every record and changes nothing."""
    world = generate(5, 25_000, sightings_per_record=6.0)
    paths = world.write(tmp_path / "synth")
    lines = {p.name: p.read_text().splitlines() for p in paths}
    total = sum(len(v) for v in lines.values())
    sightings = sum(len(json.loads(x)["sightings"]) for v in lines.values() for x in v)
    db = _db_arg(store)
    europol = [p for p in paths if p.name == "EUROPOL.jsonl"]
    command = [RIDGELINE, "victims", "import", "--db", db, "--format", "json"]
    subprocess.run([*command, *map(str, europol)], check=True, capture_output=True)
    before = _state(store)
    assert before["records"] == len(lines["EUROPOL.jsonl"]) and before["unmerged"] == 0

    proc = subprocess.Popen(
        [*command, *map(str, paths)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 300
        while not writing(store, db):
            assert proc.poll() is None, "the import finished before it could be killed"
            assert time.monotonic() < deadline, "the import never started writing"
            time.sleep(0.02)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    if store.dialect == "postgresql":  # the server ends the orphaned transaction
        deadline = time.monotonic() + 60
        while writing(store, db) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _state(store) == before  # nothing half-applied

    done = subprocess.run([*command, *map(str, paths)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["records"] == total and report["bad_lines"] == 0
    assert report["replaced"] == len(lines["EUROPOL.jsonl"])
    assert report["victims"] == int(world.known.sum())
    after = _state(store)
    assert after["records"] == after["keys"] == total
    assert after["sightings"] == sightings
    assert after["victims"] == int(world.known.sum()) and after["unmerged"] == 0
    assert after["merges"] == total - int(world.known.sum())

    again = subprocess.run([*command, *map(str, paths)], capture_output=True)
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout)["replaced"] == total
    final = _state(store)
    assert {k: v for k, v in final.items() if k != "columns"} == {
        k: v for k, v in after.items() if k != "columns"
    }


def test_killed_with_the_hash_index_dropped_keeps_it(store: Store, tmp_path: Path) -> None:
    """A big import into few stored hashes and records drops their key indexes (the
    hashes' and the records' unique (database, victim_key)) from its second batch and
    builds them again before the merge: killed there, the store keeps the indexes and
    nothing of the import; the rerun imports and merges everything."""
    world = generate(4, 120)
    paths = world.write(tmp_path / "synth")  # one batch per database file
    command = ["victims", "import", "--db", _db_arg(store), "--format", "json"]
    before = _state(store)
    kill_at("victims.import.chunk@2", [*command, *map(str, paths)])
    assert _state(store) == before
    assert "ix_victim_hashes_key" in before["indexes"]  # type: ignore[operator]
    assert "ux_victim_records_key" in before["indexes"]  # type: ignore[operator]
    from ridgeline.victims.bulk import import_files

    result = import_files(store, paths)
    after = _state(store)
    assert after["indexes"] == before["indexes"]
    assert after["records"] == result.records == int(world.captured.sum())
    assert after["victims"] == int(world.known.sum()) and after["unmerged"] == 0
    assert after["merges"] == result.merges == result.records - result.victims


def test_packed_sightings_columns_and_rows_agree(store: Store) -> None:
    """The merge's columns equal the row-by-row reading and the table computed straight
    from the parsed records; a match sighting after the merge shows through them; the
    export gives back each record's sightings in the file's order."""
    world = generate(11, 3000, sightings_per_record=2.0)
    lines = [json.dumps(r) for r in world.json_records()]
    result = import_records(store, [("synth", lines)])
    assert result.errors == ()
    packed, rows = load_table(store), _load_rows(store)
    direct = table_from_records(
        [r for r in parse_lines(lines, "x") if not isinstance(r, LineError)]
    )
    for table in (rows, direct):
        assert packed.databases == table.databases
        for name in ("db_first", "identified", "traded_since"):
            assert np.array_equal(getattr(packed, name), getattr(table, name)), name
        for name in ("age_band", "gender", "region"):
            assert getattr(packed, name).tolist() == getattr(table, name).tolist(), name
    exported = sorted(json.dumps(r.to_json(), sort_keys=True) for r in export_records(store))
    assert exported == sorted(json.dumps(json.loads(x), sort_keys=True) for x in lines)
    # a victim below five occasions sighted through its series until it is traded
    with store.engine.connect() as conn:
        mid, sid, occasions = conn.execute(
            sa.text(
                "SELECT m.id, rs.series_id, m.occasions FROM merged_victims m "
                "JOIN victim_records r ON r.merged_id = m.id "
                "JOIN victim_record_series rs ON rs.record_id = r.id "
                "WHERE m.traded_since IS NULL AND m.records = 1 ORDER BY m.id LIMIT 1"
            )
        ).one()
    base = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    for k in range(5 - occasions):
        add_sightings(store, [sid], base + dt.timedelta(days=k), "match")
    after = load_table(store)
    assert packed.traded_since[mid - 1] == -1
    assert after.traded_since[mid - 1] == int(
        (
            base + dt.timedelta(days=4 - occasions) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        ).total_seconds()
    )
    assert np.array_equal(after.traded_since, _load_rows(store).traded_since)


def test_batch_parser_equals_the_careful_one_line_by_line() -> None:
    """`parse_batches` (fast path, vectorised sightings) accepts and rejects exactly what
    `parse_lines` does, with the same records, times and messages."""
    good = [json.dumps(r) for r in generate(3, 300).json_records()]
    odd = [
        json.dumps({"database": " NCMEC ", "victim_id": "a1", "first_seen": "2019-03-01"}),
        json.dumps(
            {
                "database": "N",
                "victim_id": "a2",
                "first_seen": "2019-03-01T01:00:00+01:00",
                "sightings": ["2019-03-01", "2020-02-29T10:00:00.5Z", "2021-01-01T00:00:00Z"],
                "hashes": [{"signal": "SHA256", "value": "A" * 64}],
            }
        ),
        json.dumps(
            {
                "database": "N",
                "victim_id": "a3",
                "first_seen": "2019-03-01",
                "sightings": ["2019-02-29T00:00:00Z"],
            }
        ),
        json.dumps(
            {"database": "N", "victim_id": "a4", "first_seen": "2019-03-01", "sightings": [5]}
        ),
        json.dumps({"database": "N", "victim_id": "a2", "first_seen": "2019-03-01"}),
        json.dumps({"database": "N", "victim_id": "a3", "first_seen": "2019-03-01"}),
        json.dumps({"database": ["N"], "victim_id": "a5", "first_seen": "2019-03-01"}),
        json.dumps(
            {
                "database": "N",
                "victim_id": "a6",
                "first_seen": "2019-03-01",
                "region": "de",
                "gender": "x",
            }
        ),
        json.dumps(
            {
                "database": "N",
                "victim_id": "a7",
                "first_seen": "2019-03-01",
                "sightings": ["２019-03-01T00:00:00Z"],
            }
        ),
        "not json",
        "",
        # msgspec decodes these (or refuses them) where json would: the same outcome
        json.dumps(
            {
                "database": "N",
                "victim_id": "a8",
                "first_seen": "2019-03-01T00:00:00Z",
                "same_as": [
                    {"database": "M", "victim_id": "7"},
                    {"database": "M", "victim_id": "7"},
                ],
            }
        ),
        '{"database": "X", "database": "N", "victim_id": "a9", "first_seen": "2019-03-01"}',
        '{"database": "N", "victim_id": "\\ud800", "first_seen": "2019-03-01"}',
        '{"database": "N", "victim_id": "b1", "first_seen": "2019-03-01", "same_as": [{}]}',
        '{"database": "N", "victim_id": "b2", "first_seen": "2019-03-01", "age_band": 3}',
    ]
    lines = good[:150] + odd + good[150:]
    careful = list(parse_lines(lines, "f"))
    batches = list(parse_batches(lines, "f", size=7))
    errors = [e for b in batches for e in b.errors]
    assert errors == [e for e in careful if isinstance(e, LineError)]
    assert len(errors) >= 7
    records = [r for r in careful if not isinstance(r, LineError)]
    rows = [r for b in batches for r in b.rows()]
    assert len(rows) == len(records)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    times = np.concatenate([b.times for b in batches])
    counts = np.concatenate([b.counts for b in batches])
    assert counts.tolist() == [len(r.sightings) for r in records]
    assert times.tolist() == [
        int((t - epoch).total_seconds()) for r in records for t in r.sightings
    ]
    for row, record in zip(rows, records, strict=True):
        expected = dataclasses.asdict(record)
        del expected["sightings"]
        assert row._asdict() == expected


def test_vectorised_times_equal_datetime() -> None:
    """`fast_times` gives what `datetime.fromisoformat` gives, and sends everything else
    (other forms, impossible dates, non-strings) the slow way."""
    rng = random.Random(2)
    epoch = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    values: list[object] = [
        (epoch + dt.timedelta(seconds=rng.randrange(315537897599))).isoformat()[:19] + "Z"
        for _ in range(20_000)
    ]
    values += ["2020-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "9999-12-31T23:59:59Z",
               "2019-02-29T00:00:00Z", "2019-13-01T00:00:00Z", "2019-03-01T24:00:00Z",
               "0000-01-01T00:00:00Z", "2019-03-01", None, 7, "2019-03-01T00:00:00+01:00",
               "2019-03-01T00:00:00ZZ", "1900-02-29T00:00:00Z", "2019-00-01T00:00:00Z",
               "2019-01-00T00:00:00Z", "2019-1/-01T00:00:00Z", "2019-01-01T00:00:60Z",
               "2019-01-01T00:00:0:Z", "2019-01-01 00:00:00Z"]  # fmt: skip
    out, slow = fast_times(values)
    assert not slow[:20_000].any()
    assert out[:20_000].tolist() == [_one_time(v) for v in values[:20_000]]
    assert slow[20_000:].tolist() == [False] * 3 + [True] * 16
    assert out[20_000:20_003].tolist() == [_one_time(v) for v in values[20_000:20_003]]


def test_batch_checks_equal_their_per_value_forms() -> None:
    """`lower_hex` (a batch's joined digests) and `_all_plain` (a batch's strings) say
    what the per-value checks say, Unicode whitespace and odd lengths included."""
    texts = ["", "00ff", "0a" * 32, "0A", "0a 0b", "0a\n", "0", "0g", "\u00e9\u00e9", "0a\u00a0"]
    for text in texts:
        expected = bytes.fromhex(text) if re.fullmatch("(?:[0-9a-f]{2})*", text) else None
        assert lower_hex(text) == expected, text
    for values in (
        ["a", "b c"],
        ["a ", "b"],
        ["a", "\tb"],
        ["a", "\u00a0b"],
        ["a\u2028"],
        ["x\x00y"],
        ["x\x1f"],
        [""],
        ["x" * 201],
        ["x" * 200],
    ):
        assert _all_plain(values, 200) == all(_plain(v, 200) for v in values), values


def test_components_equal_networkx_and_union_find_order() -> None:
    """Components equal networkx's; the joins form a spanning forest and are the edges a
    sequential union-find in the same order would keep."""
    rng = random.Random(4)
    for _ in range(200):
        n = rng.randint(1, 80)
        edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 90))]
        a = np.array([e[0] for e in edges], dtype=np.int64)
        b = np.array([e[1] for e in edges], dtype=np.int64)
        comp, count, joined = components(n, a, b)
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from(edges)
        truth = sorted(sorted(c) for c in nx.connected_components(graph))
        assert count == len(truth)
        assert sorted(sorted(np.flatnonzero(comp == k).tolist()) for k in range(count)) == truth
        assert [comp[c[0]] for c in sorted(truth)] == list(range(count))  # by lowest record
        parent = list(range(n))

        def find(x: int, parent: list[int] = parent) -> int:
            while parent[x] != x:
                x = parent[x]
            return x

        kept = []
        for k, (x, y) in enumerate(edges):
            rx, ry = find(x), find(y)
            if rx != ry:
                parent[max(rx, ry)] = min(rx, ry)
                kept.append(k)
        assert joined.tolist() == kept
        assert len(kept) == n - count
    merged = merge_components(np.array([0, 1, 1]), [("sha256", "x", [0, 1, 2])], [])
    assert merged.count == 1 and [(j.a, j.b) for j in merged.joins] == [(0, 1), (0, 2)]


def _flip(value: str, bits: int, start: int = 0) -> str:
    """A PDQ hex string with `bits` bits flipped (from bit `start` on)."""
    number = int(value, 16) ^ (((1 << bits) - 1) << start)
    return f"{number:064x}"


def test_near_pdq_hashes_merge_across_databases(store: Store) -> None:
    """PDQ hashes within the default threshold (31 bits) merge records of different
    databases (CONVENTIONS); farther ones, or near ones in one database, do not; the
    merge report names the pair; the in-memory table agrees."""
    base = f"{random.Random(8).getrandbits(256):064x}"

    def line(db: str, vid: str, pdq: str) -> str:
        return json.dumps(
            {
                "database": db,
                "victim_id": vid,
                "first_seen": "2020-01-01T00:00:00Z",
                "hashes": [{"signal": "pdq", "value": pdq}],
            }
        )

    lines = [
        line("A", "1", base),
        line("B", "1", _flip(base, 10)),  # 10 bits: the same picture
        line("C", "1", _flip(base, 40, 100)),  # 40 bits from A's, 50 from B's: not
        line("A", "2", _flip(base, 12, 200)),  # near A/1 but in A too: not by itself
        line("A", "3", _flip(_flip(base, 40, 100), 5)),  # near C/1: merges with it
    ]
    result = import_records(store, [("f", lines)])
    assert result.errors == ()
    # {A/1, B/1, A/2 (near B/1? 22 bits from it: yes)}, {C/1, A/3}
    assert result.victims == 2
    with store.engine.connect() as conn:
        groups = conn.execute(
            sa.text(
                "SELECT merged_id, database || '/' || victim_key FROM victim_records "
                "ORDER BY merged_id, id"
            )
        ).all()
    by_victim: dict[int, list[str]] = {}
    for merged, key in groups:
        by_victim.setdefault(int(merged), []).append(str(key))
    assert sorted(by_victim.values()) == [["A/1", "B/1", "A/2"], ["C/1", "A/3"]]
    from ridgeline.victims.registry import merges

    details = [m.detail for m in merges(store)]
    assert len(details) == 3 and all(d.startswith("pdq:") and "bits)" in d for d in details)
    direct = table_from_records(
        [r for r in parse_lines(lines, "f") if not isinstance(r, LineError)]
    )
    assert len(direct) == 2


def test_hashes_grouped_in_memory_equal_the_database_grouping(store: Store) -> None:
    """An import into a store without hashes groups its hashes in memory (exact keys of
    their hex digits); the merge it gives equals the one grouped by the database
    (`rebuild`), with md5, sha1, sha256 and pdq values shared across and within
    databases, values alike in their first 16 digits, and a record replaced in the
    same import (its hashes gone)."""
    from ridgeline.victims.registry import merges, rebuild

    rng = random.Random(5)
    digits = {"md5": 32, "sha1": 40, "sha256": 64, "pdq": 64}
    pool = [(s, f"{rng.getrandbits(4 * n):0{n}x}") for s, n in digits.items() for _ in range(12)]
    twin = pool[-1][1][:16] + "0" * 48  # same first word as another sha256/pdq value
    pool += [("sha256", twin), ("pdq", twin), ("sha256", pool[30][1][:16] + "f" * 48)]

    def source(name: str, seed: int) -> tuple[str, list[str]]:
        r = random.Random(seed)
        lines = []
        for db in ("A", "B", "C"):
            for k in range(15):
                hashes = [{"signal": s, "value": v} for s, v in r.sample(pool, 2)]
                lines.append(
                    json.dumps(
                        {
                            "database": db,
                            "victim_id": f"{db}{k}",
                            "first_seen": f"2020-01-{k + 1:02d}T00:00:00Z",
                            "hashes": hashes,
                        }
                    )
                )
        return name, lines

    first, second = source("one", 1), source("two", 2)
    result = import_records(store, [first, ("two", second[1][:10])])  # 10 replaced
    assert result.errors == () and result.replaced == 10 and result.merges > 0

    def merged() -> tuple[list[object], list[tuple[str, str, int]]]:
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT database, victim_key, merged_id FROM victim_records ORDER BY id")
            ).all()
        return list(merges(store)), [tuple(r) for r in rows]

    in_memory = merged()
    assert rebuild(store) == (result.victims, result.merges)
    assert merged() == in_memory
