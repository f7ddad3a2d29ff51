"""MatchIndex over a real store (SQLite and PostgreSQL): lists, updates, files, signals."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ridgeline import lists as L
from ridgeline.errors import BadInput, InvalidHash, NotFound
from ridgeline.index import IndexFile, MatchIndex
from ridgeline.index.match import _PackedRows
from ridgeline.lists import entry_matchable_clause
from ridgeline.lists.models import Entry, HashList
from ridgeline.signals.pdq import hamming
from ridgeline.store import Store
from ridgeline.timeutil import utcnow


def rand_hash(rng: np.random.Generator) -> str:
    return bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()


def flip(h: str, nbits: int) -> str:
    """`h` with its lowest `nbits` bits flipped (distance exactly nbits)."""
    return f"{int(h, 16) ^ ((1 << nbits) - 1):064x}"


def open_index(store: Store, tmp_path: Path, **kw: Any) -> MatchIndex:
    return MatchIndex.open(store, tmp_path / "index", **kw)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def test_matches_name_list_and_entry_at_exact_distances(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    hashes = [rand_hash(rng) for _ in range(60)]
    with store.session() as s:
        bl = L.create_list(s, "block")
        ids = [L.add_entry(s, bl, {"pdq": h}).id for h in hashes]
    index = open_index(store, tmp_path)
    found = index.match("pdq", [hashes[0], flip(hashes[1], 31), flip(hashes[2], 32), "F" * 64])
    assert [(m.entry_id, m.distance, m.list_name) for m in found[0]] == [(ids[0], 0, "block")]
    assert [(m.entry_id, m.distance) for m in found[1]] == [(ids[1], 31)]
    assert found[2] == [] and found[3] == []
    assert found[0][0].threshold == 31 and found[0][0].purpose == "block"
    assert index.stats()["signals"]["pdq"]["rows"] == 60


def test_per_list_thresholds_apply(store: Store, tmp_path: Path, rng: np.random.Generator) -> None:
    h = rand_hash(rng)
    with store.session() as s:
        strict = L.create_list(s, "strict", thresholds={"pdq": 10})
        wide = L.create_list(s, "wide", thresholds={"pdq": 64})
        L.add_entry(s, strict, {"pdq": h})
        L.add_entry(s, wide, {"pdq": h})
    index = open_index(store, tmp_path)
    assert {m.list_name for m in index.match("pdq", [flip(h, 10)])[0]} == {"strict", "wide"}
    assert [m.list_name for m in index.match("pdq", [flip(h, 50)])[0]] == ["wide"]
    assert index.match("pdq", [flip(h, 65)])[0] == []
    assert [m.list_name for m in index.match("pdq", [h], lists=["strict"])[0]] == ["strict"]
    with store.session() as s:
        L.update_list(s, L.get_list(s, "strict"), thresholds={"pdq": 20})
    index.refresh()
    assert {m.list_name for m in index.match("pdq", [flip(h, 15)])[0]} == {"strict", "wide"}


def test_disabled_deleted_and_unconfirmed_entries_and_disabled_lists_never_match(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    hs = [rand_hash(rng) for _ in range(4)]
    with store.session() as s:
        bl = L.create_list(s, "block")
        entries = [L.add_entry(s, bl, {"pdq": h}) for h in hs]
        L.set_entry_enabled(s, entries[0], False)  # disabled before the build
    index = open_index(store, tmp_path)
    assert index.match("pdq", [hs[0]])[0] == []
    with store.session() as s:
        L.set_entry_enabled(s, L.get_entry(s, entries[1].id), False)
        L.delete_entry(s, L.get_entry(s, entries[2].id))
        L.set_entry_status(s, L.get_entry(s, entries[3].id), "retired")
    index.refresh()
    assert index.match("pdq", hs) == [[], [], [], []]
    with store.session() as s:
        L.set_entry_enabled(s, L.get_entry(s, entries[0].id), True)
    index.refresh()
    assert [m.entry_id for m in index.match("pdq", [hs[0]])[0]] == [entries[0].id]
    with store.session() as s:
        L.update_list(s, L.get_list(s, "block"), enabled=False)
    index.refresh()
    assert index.match("pdq", [hs[0]])[0] == []
    with store.session() as s:
        L.update_list(s, L.get_list(s, "block"), enabled=True)
    index.refresh()
    assert len(index.match("pdq", [hs[0]])[0]) == 1


def test_allow_list_suppresses_block_matches(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    h, other = rand_hash(rng), rand_hash(rng)
    with store.session() as s:
        bl = L.create_list(s, "block")
        al = L.create_list(s, "benign", purpose="allow", thresholds={"pdq": 8})
        L.add_entry(s, bl, {"pdq": h})
        L.add_entry(s, bl, {"pdq": other})
        L.add_entry(s, al, {"pdq": h})
    index = open_index(store, tmp_path)
    found = index.match("pdq", [h, flip(h, 20), other], lists=["block"])
    assert [(m.list_name, m.purpose) for m in found[0]] == [("benign", "allow")]
    assert [m.list_name for m in found[1]] == ["block"]  # beyond the allow list's threshold
    assert [m.list_name for m in found[2]] == ["block"]
    with store.session() as s:
        L.update_list(s, L.get_list(s, "benign"), enabled=False)
    index.refresh()
    assert [m.list_name for m in index.match("pdq", [h])[0]] == ["block"]


def test_low_quality_pdq_is_not_matched(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    good, poor = rand_hash(rng), rand_hash(rng)
    with store.session() as s:
        bl = L.create_list(s, "block")
        L.add_entry(s, bl, {"pdq": good}, qualities={"pdq": 90})
        L.add_entry(s, bl, {"pdq": poor}, qualities={"pdq": 20})
    index = open_index(store, tmp_path)
    assert index.match("pdq", [poor])[0] == []
    assert index.match("pdq", [good], qualities=[49])[0] == []
    assert len(index.match("pdq", [good], qualities=[50])[0]) == 1
    assert len(index.match("pdq", [good], qualities=[None])[0]) == 1


def test_new_entry_from_another_process_matches_within_one_second(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    base = [rand_hash(rng) for _ in range(50)]
    new = rand_hash(rng)
    with store.session() as s:
        bl = L.create_list(s, "block")
        for h in base:
            L.add_entry(s, bl, {"pdq": h})
    index = open_index(store, tmp_path)
    assert index.match("pdq", [new])[0] == []
    script = textwrap.dedent(
        f"""
        from ridgeline import lists as L
        from ridgeline.store import Store
        with Store.open({store.url!r}) as store:
            with store.session() as s:
                L.add_entry(s, L.get_list(s, "block"), {{"pdq": {new!r}}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy())
    committed = time.monotonic()
    while not index.match("pdq", [new])[0]:
        assert time.monotonic() - committed < 1.0, "new entry not visible within 1 s"
        time.sleep(0.02)
    assert index.stats()["signals"]["pdq"]["delta_rows"] == 1


def test_compaction_folds_the_delta_into_a_new_file(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    first = [rand_hash(rng) for _ in range(30)]
    later = [rand_hash(rng) for _ in range(30)]
    with store.session() as s:
        bl = L.create_list(s, "block")
        early = [L.add_entry(s, bl, {"pdq": h}) for h in first]
    index = open_index(store, tmp_path, compact_rows=10)
    index.load(["pdq"])
    with store.session() as s:
        bl = L.get_list(s, "block")
        for h in later:
            L.add_entry(s, bl, {"pdq": h})
        L.delete_entry(s, L.get_entry(s, early[0].id))
    index.refresh()  # 30 delta rows > compact_rows: compaction starts in the background
    index.wait_for_compaction(30)
    stats = index.stats()["signals"]["pdq"]
    assert stats["rows"] == 59 and stats["delta_rows"] == 0 and stats["tombstones"] == 0
    expected: list[list[int]] = [[]] + [[1]] * 29 + [[1]] * 30
    got = [[len(ms)] if ms else [] for ms in index.match("pdq", first + later)]
    assert got == expected
    reopened = open_index(store, tmp_path)
    assert [[len(ms)] if ms else [] for ms in reopened.match("pdq", first + later)] == expected
    assert reopened.rebuilt == {} and reopened.stats()["signals"]["pdq"]["delta_rows"] == 0


def test_corrupt_or_foreign_file_is_rebuilt_from_the_store(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    hs = [rand_hash(rng) for _ in range(20)]
    with store.session() as s:
        bl = L.create_list(s, "block")
        for h in hs:
            L.add_entry(s, bl, {"pdq": h})
    index = open_index(store, tmp_path)
    index.load(["pdq"])
    path = index.path_for("pdq")
    header = IndexFile.open(path).header
    entries = next(d for d in header["sections"] if d["name"] == "entries")
    raw = bytearray(path.read_bytes())
    raw[entries["offset"] + 5] ^= 0x01  # would silently name the wrong entry
    path.write_bytes(bytes(raw))
    again = open_index(store, tmp_path)
    assert all(len(ms) == 1 for ms in again.match("pdq", hs))
    assert "checksum" in again.rebuilt["pdq"]
    path.write_bytes(path.read_bytes()[:-4096])  # truncated
    third = open_index(store, tmp_path)
    assert all(len(ms) == 1 for ms in third.match("pdq", hs))
    assert "size" in third.rebuilt["pdq"]
    assert open_index(store, tmp_path).rebuilt == {}  # the rebuilt file is good
    with Store.open(tmp_path / "other.db") as other:  # same index directory, other database
        with other.session() as s:
            L.create_list(s, "block")
        foreign = open_index(other, tmp_path)
        assert foreign.match("pdq", hs[:1]) == [[]]
        assert "another database" in foreign.rebuilt["pdq"]


def test_disable_with_expiry_matches_again_after_it(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    h = rand_hash(rng)
    with store.session() as s:
        e = L.add_entry(s, L.create_list(s, "block"), {"pdq": h})
    index = open_index(store, tmp_path, refresh_interval=0.05)
    assert len(index.match("pdq", [h])[0]) == 1
    with store.session() as s:
        L.set_entry_enabled(
            s, L.get_entry(s, e.id), False, until=utcnow() + dt.timedelta(seconds=1)
        )
    time.sleep(0.1)
    assert index.match("pdq", [h])[0] == []
    index.compact()  # the file now lacks the entry
    time.sleep(1.1)
    assert len(index.match("pdq", [h])[0]) == 1
    # a process that opens the file after the disable expired sees the entry too
    later = open_index(store, tmp_path)
    assert len(later.match("pdq", [h])[0]) == 1 and later.rebuilt == {}


def test_sql_rule_mirrors_is_matchable(store: Store) -> None:
    now = utcnow()
    with store.session() as s:
        bl = L.create_list(s, "block", review_quorum=1)
        states: list[dict[str, Any]] = [
            dict(status="confirmed"),
            dict(status="pending"),
            dict(status="rejected"),
            dict(status="confirmed", enabled=False),
            dict(status="confirmed", enabled=False, until=now - dt.timedelta(hours=1)),
            dict(status="confirmed", enabled=False, until=now + dt.timedelta(hours=1)),
            dict(status="confirmed", deleted=True),
        ]
        for i, st in enumerate(states):
            e = L.add_entry(s, bl, {"md5": f"{i:032x}"}, status=str(st["status"]))
            if "enabled" in st:
                L.set_entry_enabled(s, e, False, until=st.get("until"))
            if st.get("deleted"):
                L.delete_entry(s, e)
    with store.session() as s:
        sql = set(s.scalars(select(Entry.id).where(entry_matchable_clause(now))))
        hl = s.scalars(select(HashList)).one()
        rule = {e.id for e in s.scalars(select(Entry)) if L.is_matchable(e, hl, now)}
    assert sql == rule and len(rule) == 2


def test_exact_digests(store: Store, tmp_path: Path) -> None:
    data = [f"benign file {i}".encode() for i in range(5)]
    with store.session() as s:
        bl = L.create_list(s, "block")
        other = L.create_list(s, "other")
        for d in data:
            L.add_entry(
                s,
                bl,
                {
                    "md5": hashlib.md5(d).hexdigest(),
                    "sha1": hashlib.sha1(d).hexdigest(),
                    "sha256": hashlib.sha256(d).hexdigest(),
                },
            )
        L.add_entry(s, other, {"md5": hashlib.md5(data[0]).hexdigest()})
    index = open_index(store, tmp_path)
    for name in ("md5", "sha1", "sha256"):
        values = [hashlib.new(name, d).hexdigest().upper() + " " for d in data]
        found = index.match(name, [*values, hashlib.new(name, b"nothing").hexdigest()])
        assert [len(ms) for ms in found] == [2 if name == "md5" else 1] + [1] * 4 + [0]
        assert all(m.distance == 0 and m.signal == name for ms in found for m in ms)
    with pytest.raises(InvalidHash, match="md5"):
        index.match("md5", ["xyz"])


def test_photodna_euclidean_range(store: Store, tmp_path: Path, rng: np.random.Generator) -> None:
    vec = rng.integers(0, 200, 144, dtype=np.uint8)
    b64 = base64.b64encode(vec.tobytes()).decode()
    near = vec.copy()
    near[:4] += 3  # distance sqrt(36) = 6
    with store.session() as s:
        bl = L.create_list(s, "block", thresholds={"photodna": 6})
        L.add_entry(s, bl, {"photodna": b64})
    index = open_index(store, tmp_path)
    q = base64.b64encode(near.tobytes()).decode()
    far = near.copy()
    far[5] += 1  # sqrt(37) > 6
    found = index.match("photodna", [q, base64.b64encode(far.tobytes()).decode()])
    assert [m.distance for m in found[0]] == [6.0] and found[1] == []


def _video(hashes: list[str], quality: int = 90) -> str:
    return "".join(f"{i},{quality},{h},{i * 0.5:.3f}\n" for i, h in enumerate(hashes))


def test_vpdq_video_matching(store: Store, tmp_path: Path, rng: np.random.Generator) -> None:
    frames = [rand_hash(rng) for _ in range(10)]
    other = [rand_hash(rng) for _ in range(10)]
    with store.session() as s:
        bl = L.create_list(s, "videos")
        e = L.add_entry(s, bl, {"vpdq": _video(frames)})
        L.add_entry(s, bl, {"vpdq": _video(other)})
    index = open_index(store, tmp_path)
    same = _video([flip(h, 5) for h in frames])
    partial = _video(frames[:5] + [rand_hash(rng) for _ in range(5)])  # 50 % of frames
    found = index.match("vpdq", [same, partial, _video([rand_hash(rng)])])
    assert [(m.entry_id, m.distance) for m in found[0]] == [(e.id, 0.0)]
    assert found[1] == [] and found[2] == []
    with store.session() as s:
        L.update_list(s, L.get_list(s, "videos"), thresholds={"vpdq": 60})
    index.refresh()
    assert [m.distance for m in index.match("vpdq", [partial])[0]] == [50.0]


def test_dihedral_variants_in_one_call(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    target = rand_hash(rng)
    with store.session() as s:
        e = L.add_entry(s, L.create_list(s, "block"), {"pdq": target})
    index = open_index(store, tmp_path)
    variants = [rand_hash(rng) for _ in range(8)]
    variants[5] = flip(target, 3)
    variants[2] = flip(target, 9)
    found = index.match_dihedral("pdq", [variants, [rand_hash(rng) for _ in range(8)]])
    assert [(m.entry_id, m.distance, m.query_variant) for m in found[0]] == [(e.id, 3, 5)]
    assert found[1] == []


def test_bad_requests_say_what_is_wrong(store: Store, tmp_path: Path) -> None:
    index = open_index(store, tmp_path)
    with pytest.raises(InvalidHash, match="pdq"):
        index.match("pdq", ["12"])
    with pytest.raises(NotFound, match="nope"):
        index.match("pdq", ["0" * 64], lists=["nope"])
    with pytest.raises(BadInput, match="qualities"):
        index.match("pdq", ["0" * 64], qualities=[1, 2])
    with pytest.raises(BadInput, match="sequence"):
        index.match("pdq", "0" * 64)
    assert index.match("pdq", []) == []


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "disable", "enable", "delete", "compact"]), st.integers(0, 10**6)
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, seed=st.integers(0, 2**32 - 1))
def test_updates_and_compaction_always_equal_brute_force(
    ops: list[tuple[str, int]], seed: int
) -> None:
    """After any mix of adds, disables, deletes and compactions, results equal brute force."""
    rng = np.random.default_rng(seed)
    centre = rand_hash(rng)
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "r.db") as store:
        with store.session() as s:
            bl = L.create_list(s, "block", thresholds={"pdq": 40})
            for _ in range(20):
                L.add_entry(
                    s,
                    bl,
                    {
                        "pdq": flip(rand_hash(rng), 0)
                        if rng.random() < 0.5
                        else flip(centre, int(rng.integers(0, 60)))
                    },
                )
        index = MatchIndex.open(store, Path(tmp) / "index", auto_compact=False)
        index.load(["pdq"])
        for op, arg in ops:
            with store.session() as s:
                ids = list(s.scalars(select(Entry.id).order_by(Entry.id)))
                entry = L.get_entry(s, ids[arg % len(ids)])
                if op == "add":
                    for _ in range(arg % 5 + 1):
                        L.add_entry(
                            s,
                            L.get_list(s, "block"),
                            {"pdq": flip(centre, int(rng.integers(0, 60)))},
                        )
                elif op in ("disable", "enable") and entry.deleted_at is None:
                    L.set_entry_enabled(s, entry, op == "enable")
                elif op == "delete":
                    L.delete_entry(s, entry)
            index.refresh()
            if op == "compact":
                index.compact()
            queries = [centre, flip(centre, 20), rand_hash(rng)]
            with store.session() as s:
                hl = L.get_list(s, "block")
                expected = [
                    sorted(
                        e.id
                        for e in s.scalars(select(Entry))
                        if L.is_matchable(e, hl) and hamming(e.signals[0].value, q) <= 40
                    )
                    for q in queries
                ]
            got = [sorted(m.entry_id for m in ms) for ms in index.match("pdq", queries)]
            assert got == expected, (op, index.stats())


def test_a_reader_switches_to_a_file_another_index_compacted(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    hs = [rand_hash(rng) for _ in range(10)]
    with store.session() as s:
        bl = L.create_list(s, "block")
        L.add_entry(s, bl, {"pdq": hs[0]})
    writer = open_index(store, tmp_path, auto_compact=False)
    reader = open_index(store, tmp_path, auto_compact=False, refresh_interval=0.05)
    writer.load(["pdq"])
    reader.load(["pdq"])
    with store.session() as s:
        bl = L.get_list(s, "block")
        for h in hs[1:]:
            L.add_entry(s, bl, {"pdq": h})
    writer.refresh()
    writer.compact()
    assert writer.stats()["signals"]["pdq"]["rows"] == 10
    deadline = time.monotonic() + 5
    while reader.stats()["signals"]["pdq"]["rows"] != 10:
        assert time.monotonic() < deadline, "reader never picked up the new file"
        reader.refresh()
        time.sleep(0.1)
    assert reader.stats()["signals"]["pdq"]["delta_rows"] == 0
    assert all(len(ms) == 1 for ms in reader.match("pdq", hs))


def test_background_refresh_owns_timing_and_tells_listeners(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    """With `start_refresh` the index's own thread reads the feed every `refresh_interval`
    and tells its listeners; `close()` stops it."""
    with store.session() as s:
        hl = L.create_list(s, "known")
    index = open_index(store, tmp_path, refresh_interval=0.05)
    heard: list[int] = []
    index.add_listener(heard.append)
    index.load(["md5"])
    index.start_refresh()
    try:
        digest = f"{int(rng.integers(1, 2**62)):032x}"
        with store.session() as s:
            entry = L.add_entry(s, L.get_list(s, hl.name), {"md5": digest})
        deadline = time.monotonic() + 5
        while not any(heard) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(heard), "the background refresher never reported the new entry"
        assert index.age() < 1.0
        (found,) = index.match("md5", [digest])
        assert [m.entry_id for m in found] == [entry.id]
    finally:
        index.close()
    assert index.refresh_error is None
    calls = len(heard)
    time.sleep(0.2)
    assert len(heard) == calls  # close() stopped the thread


def test_packed_build_holds_exactly_the_matchable_rows(
    store: Store,
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The build reads hex-keyed signals as packed bytes (issue 10: 23 s per 1M rows
    row by row); it must index what the matchable rule and the quality gate allow,
    entry by entry, in entry order, across lists, for PDQ and a digest alike, with
    its entry ranges read on two threads (ID_RANGE 7: six ranges; the other tests
    read one)."""
    monkeypatch.setattr(_PackedRows, "ID_RANGE", 7)
    expected: dict[str, set[tuple[int, int, str]]] = {"pdq": set(), "md5": set()}
    with store.session() as s:
        lists = [L.create_list(s, "one"), L.create_list(s, "two")]
        for i in range(40):
            hl = lists[i % 2]
            h, md5 = rand_hash(rng), hashlib.md5(str(i).encode()).hexdigest()
            quality = [None, 90, 20, 50][i % 4]
            qualities = {} if quality is None else {"pdq": quality}
            entry = L.add_entry(s, hl, {"pdq": h, "md5": md5}, qualities=qualities)
            live = True
            if i % 5 == 1:
                L.set_entry_enabled(s, entry, False)
                live = False
            elif i % 5 == 2:
                L.delete_entry(s, entry)
                live = False
            elif i % 5 == 3:
                L.set_entry_status(s, entry, "retired")
                live = False
            if live:
                expected["md5"].add((entry.id, hl.id, md5))
                if quality is None or quality >= 50:
                    expected["pdq"].add((entry.id, hl.id, h))
    index = open_index(store, tmp_path, threads=2)
    index.load(["pdq", "md5"])
    for name, want in expected.items():
        si = index._signals[name]
        rows = si.main.rows()
        got = {
            (int(e), int(li), bytes(rows[i]).hex())
            for i, (e, li) in enumerate(zip(si.entries, si.lists, strict=True))
        }
        assert got == want, name
        assert list(si.entries) == sorted(si.entries)
    assert len(expected["pdq"]) == 12 and len(expected["md5"]) == 16
