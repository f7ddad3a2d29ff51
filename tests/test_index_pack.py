"""Import packs (`ridgeline.index.pack`): a txt import's rows read back without SQL,
only while the database still says the same (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.index import IndexFile, MatchIndex
from ridgeline.index.fileformat import CHUNK, Pieces, section_checksum
from ridgeline.index.match import default_directory, store_id
from ridgeline.index.pack import PACK_DIR, RowPack
from ridgeline.lists.models import Entry, EntrySignal, entry_key
from ridgeline.store import Store


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's default index directory is the user cache: keep it in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def rand_hash(rng: np.random.Generator) -> str:
    return bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()


def flip(h: str, nbits: int) -> str:
    return f"{int(h, 16) ^ ((1 << nbits) - 1):064x}"


def import_txt(store: Store, tmp_path: Path, name: str, hashes: list[str]) -> Path | None:
    """`lists import` as the CLI does it: import, commit, then write the pack."""
    txt = tmp_path / f"{name}.txt"
    txt.write_text("".join(h.upper() + "\n" for h in hashes))  # normalized on the way in
    with store.session() as s:
        hl = L.get_list(s, name)
        pack = RowPack(hl.id, min_rows=1)
        exchange.import_file(s, hl, txt, "txt", signal="pdq", pack=pack)
    with store.session() as s:
        return pack.write(s, default_directory(store), store_id(store))


def packs(store: Store) -> list[Path]:
    return sorted((default_directory(store) / PACK_DIR).glob("*.rlpack"))


def build(store: Store, directory: Path) -> tuple[MatchIndex, dict[str, Any]]:
    index = MatchIndex.open(store, directory)
    index.load(["pdq"])
    si = index._signals["pdq"]
    arrays = {
        "rows": np.asarray(si.main.rows()).copy(),
        "entries": np.asarray(si.entries).copy(),
        "lists": np.asarray(si.lists).copy(),
    }
    return index, arrays


def found(index: MatchIndex, queries: list[str]) -> list[list[tuple[int, float, str]]]:
    return [
        [(m.entry_id, m.distance, m.list_name) for m in ms] for ms in index.match("pdq", queries)
    ]


def test_pack_build_equals_the_sql_build_until_an_edit_invalidates_it(
    store: Store, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    before, imported, after = (
        [rand_hash(rng) for _ in range(k)] for k in (7, 300, 5)
    )  # rows around the pack's entries: read from SQL
    with store.session() as s:
        other = L.create_list(s, "other")
        L.create_list(s, "big")
        for h in before:
            L.add_entry(s, other, {"pdq": h})
    written = import_txt(store, tmp_path, "big", imported)
    assert written is not None and packs(store) == [written]
    with store.session() as s:
        other = L.get_list(s, "other")
        for h in after:
            L.add_entry(s, other, {"pdq": h})
    queries = [flip(h, 3) for h in imported[:20] + before + after] + [rand_hash(rng)]

    with_pack, a = build(store, tmp_path / "a")
    assert with_pack.from_packs == {"pdq": 300}
    assert packs(store) == []  # folded into the index file
    import_txt(store, tmp_path, "big", [])  # nothing new: no pack
    without, b = build(store, tmp_path / "b")
    assert without.from_packs == {"pdq": 0}
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert found(with_pack, queries) == found(without, queries)
    assert len(a["entries"]) == 312

    # A second import's pack, then an edit to one of its entries: the pack is stale.
    second = [rand_hash(rng) for _ in range(50)]
    assert import_txt(store, tmp_path, "big", second) is not None
    with store.session() as s:
        big = L.get_list(s, "big")
        victim = s.scalar(
            select(EntrySignal.entry_id).where(EntrySignal.key == entry_key(second[0]))
        )
        L.delete_entry(s, s.get(Entry, victim))
    stale, c = build(store, tmp_path / "c")
    assert stale.from_packs == {"pdq": 0}
    assert packs(store) == []  # dropped, not used
    fresh, d = build(store, tmp_path / "d")
    for k in c:
        assert np.array_equal(c[k], d[k]), k
    queries += [second[0], flip(second[1], 2)]
    assert found(stale, queries) == found(fresh, queries)
    assert found(stale, [second[0]]) == [[]] and len(c["entries"]) == 361
    assert big.id in set(c["lists"].tolist())


def test_list_change_or_damage_drops_the_pack(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    hashes = [rand_hash(rng) for _ in range(40)]
    with store.session() as s:
        L.create_list(s, "big")
    path = import_txt(store, tmp_path, "big", hashes)
    assert path is not None
    with store.session() as s:
        L.update_list(s, L.get_list(s, "big"), thresholds={"pdq": 20})
    index, a = build(store, tmp_path / "a")
    assert index.from_packs == {"pdq": 0}
    assert packs(store) == [] and len(a["entries"]) == 40
    assert found(index, [flip(hashes[0], 21)]) == [[]]

    path = import_txt(store, tmp_path, "big", [rand_hash(rng) for _ in range(30)])
    assert path is not None
    rows_at = next(d for d in IndexFile.open(path).header["sections"] if d["name"] == "rows")
    raw = bytearray(path.read_bytes())
    raw[rows_at["offset"] + 5] ^= 0xFF  # a damaged row
    path.write_bytes(bytes(raw))
    index, b = build(store, tmp_path / "b")
    assert index.from_packs == {"pdq": 0}
    assert packs(store) == [] and len(b["entries"]) == 70
    _, c = build(store, tmp_path / "c")
    for k in b:
        assert np.array_equal(b[k], c[k]), k


def test_unconfirmed_or_small_imports_keep_no_pack(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with store.session() as s:
        L.create_list(s, "reviewed", review_quorum=1)
    assert import_txt(store, tmp_path, "reviewed", [rand_hash(rng) for _ in range(20)]) is None
    with store.session() as s:
        hl = L.create_list(s, "small")
        pack = RowPack(hl.id)  # default minimum
        txt = tmp_path / "small.txt"
        txt.write_text(rand_hash(rng) + "\n")
        exchange.import_file(s, hl, txt, "txt", signal="pdq", pack=pack)
    with store.session() as s:
        assert pack.write(s, default_directory(store), store_id(store)) is None
    assert packs(store) == []


def test_pieces_checksum_equals_the_joined_sections() -> None:
    """A pack's rows are written as CHUNK pieces: same checksum as one array."""
    rng = np.random.default_rng(8)
    joined = rng.integers(0, 256, 2 * CHUNK + 1000, dtype=np.uint8)
    parts = [joined[:CHUNK], joined[CHUNK : 2 * CHUNK], joined[2 * CHUNK :]]
    assert Pieces(parts, joined.dtype, joined.shape).checksum() == section_checksum(joined)
    small = joined[:5000]
    assert Pieces([small], small.dtype, small.shape).checksum() == section_checksum(small)
