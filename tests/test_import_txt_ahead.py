"""Big txt imports checked in a second process (`exchange.ahead.produce_txt`, issue 10:
10M PDQ hashes within 1.5x a plain sqlite3 insert): the parsing process normalises the
lines, computes their keys and drops a chunk's repeats, the writer looks the rest up
and inserts them. The second process, the same producer in the writer's process
(small files, `RIDGELINE_PARSE_AHEAD=0`) and the general path (standard input: lines
checked by the writer) give the same report and store the same rows, on SQLite and
PostgreSQL, for files with comments, blank lines, bad lines, uppercase hex, repeats
within a chunk and across chunks, hashes the list holds already, CRLF and a BOM; into
an empty list with the key index deferred (`lists.DeferredKeyIndex`: dropped on SQLite,
the hash rows held and written sorted on PostgreSQL) as without.
Benign synthetic hashes only.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ridgeline import exchange, parseahead
from ridgeline import lists as L
from ridgeline.errors import BadInput, NotFound
from ridgeline.exchange import ahead, apply, native
from ridgeline.exchange.records import stream_lines
from ridgeline.exchange.tombstones import apply_with_tombstones
from ridgeline.index.pack import RowPack
from ridgeline.lists import core as lists_core
from ridgeline.store import Store
from test_import_ahead import stored

#: Lines per chunk: the files span several.
CHUNK = 7
WAYS = ("child", "inline", "general")


def pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def tricky_txt(rng: random.Random, known: list[str]) -> bytes:
    """A txt file with every kind of line, CRLF endings and a UTF-8 BOM."""
    hashes = [pdq(rng) for _ in range(40)]
    hashes[35] = hashes[3][:16] + pdq(rng)[16:]  # another hash with a known key prefix
    lines = ["# a comment", "", *hashes[:5], "   ", hashes[0], "not a hash", hashes[1].upper()]
    lines += [known[0], "  " + hashes[5] + "  ", "#" + hashes[6], hashes[7][:-1], *hashes[8:30]]
    lines += [hashes[2], known[1].upper(), "g" * 64, *hashes[30:], hashes[30], ""]
    return b"\xef\xbb\xbf" + "\r\n".join(lines).encode()


def imported(
    store: Store,
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    signal: str = "pdq",
    signals: tuple[str, ...] = (),
    seed: tuple[str, ...] = (),
    **options: Any,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Reports (without list and batch) of `path` imported into a list per way, each
    list first holding `seed`; and how many rows each way's pack kept."""
    monkeypatch.setattr(ahead, "TXT_CHUNK", CHUNK)
    monkeypatch.setattr(native, "TXT_CHUNK", CHUNK)
    # every file is big enough to defer the key index (SQLite, into an empty list)
    monkeypatch.setattr(apply, "DEFER_INDEX_BYTES", 0)
    monkeypatch.setattr(apply, "DEFER_LINE_BYTES", 1)
    # PostgreSQL holds the hash rows instead, written sorted a few chunks at a time
    monkeypatch.setattr(lists_core, "HELD_KEY_ROWS", 10)
    reports: dict[str, Any] = {}
    packs: dict[str, int] = {}
    for way in WAYS:
        with store.session() as session:
            try:
                hash_list = L.get_list(session, way)
            except NotFound:
                hash_list = L.create_list(session, way, signals=signals)
                for value in seed:
                    L.add_entry(session, hash_list, {signal: value})
            pack = RowPack(hash_list.id, min_rows=1)
            if way == "general":
                parsed = native.parse_txt_lines(stream_lines(path), str(path), signal)
                report = apply_with_tombstones(session, hash_list, parsed, pack=pack, **options)
            else:
                monkeypatch.setattr(ahead, "MIN_BYTES", 0)
                monkeypatch.setenv(parseahead.ENV_SWITCH, "1" if way == "child" else "0")
                report = exchange.import_file(
                    session, hash_list, path, "txt", signal=signal, pack=pack, **options
                )
            data = report.to_json()
            data.pop("list")
            data.pop("batch")
            reports[way] = data
            packs[way] = -1 if pack.spoiled else len(pack)
    return reports, packs


def key_index(store: Store) -> list[Any]:
    """`ix_entry_signals_key` as the database defines it (deferred only on SQLite)."""
    with store.session() as session:
        if session.get_bind().dialect.name != "sqlite":
            query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_entry_signals_key'"
        else:
            query = "SELECT sql FROM sqlite_master WHERE name = 'ix_entry_signals_key'"
        return [row[0] for row in session.execute(text(query))]


def positions(store: Store, name: str) -> list[Any]:
    """The import ranges' position runs of the list, in order."""
    with store.session() as session:
        list_id = L.get_list(session, name).id
        rows = session.execute(
            text(
                "SELECT r.positions FROM import_ranges r JOIN import_batches b "
                "ON b.id = r.batch_id WHERE b.list_id = :l ORDER BY r.first_entry_id"
            ),
            {"l": list_id},
        ).all()
    out = []
    first: int | None = None
    for (runs,) in rows:
        for run in json.loads(runs) if isinstance(runs, str) else runs:
            first = run[0] if first is None else first
            out.append([run[0] - first, *run[1:]])  # ids relative to the list's first
    return out


@pytest.mark.skipif(not parseahead.available(), reason="one core: no second process")
def test_txt_ahead_stores_what_the_writer_stores(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    known = [pdq(rng), pdq(rng)]
    path = tmp_path / "hashes.txt"
    path.write_bytes(tricky_txt(rng, known))
    reports, packs = imported(store, path, monkeypatch, seed=tuple(known))
    assert reports["child"] == reports["inline"] == reports["general"]
    report = reports["child"]
    # 40 hashes, of which [6] is commented out and [7] cut short; repeats: [0], [1]
    # (uppercase), [2], [30] and the two the list holds (one uppercase); bad lines: "not
    # a hash", the short one, "g" * 64; hashes[5] has spaces around it
    assert (report["added"], report["duplicates"], report["read"]) == (38, 6, 38 + 6 + 3)
    assert [e["position"] for e in report["errors"]] == ["line 10", "line 15", "line 40"]
    rows = stored(store, "child")
    assert rows == stored(store, "inline") == stored(store, "general")
    assert len(rows) == 2 + 38
    assert positions(store, "child") == positions(store, "inline") == positions(store, "general")
    assert packs["child"] == packs["inline"] == packs["general"] == 38


@pytest.mark.skipif(not parseahead.available(), reason="one core: no second process")
def test_txt_ahead_into_an_empty_list(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty list the writer looks up only the keys whose prefix an earlier
    chunk had (`BarePart.known`): repeats across chunks are still found, and a new hash
    that shares a key prefix with an earlier one is still added."""
    rng = random.Random(7)
    known = [pdq(rng), pdq(rng)]
    path = tmp_path / "hashes.txt"
    path.write_bytes(tricky_txt(rng, known))
    index = key_index(store)
    reports, packs = imported(store, path, monkeypatch)
    assert key_index(store) == index and len(index) == 1  # deferred, then built again
    assert reports["child"] == reports["inline"] == reports["general"]
    assert (reports["child"]["added"], reports["child"]["duplicates"]) == (40, 4)
    rows = stored(store, "child")
    assert rows == stored(store, "inline") == stored(store, "general")
    assert packs["child"] == packs["inline"] == packs["general"] == 40


@pytest.mark.skipif(not parseahead.available(), reason="one core: no second process")
def test_txt_ahead_with_a_source_and_values_kept_as_text(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PhotoDNA (base64: the value is stored beside its key) with `--source`: the other
    shape of hash and entry rows, the same every way; no pack (SQL is their source)."""
    rng = random.Random(8)
    values = [base64.b64encode(rng.randbytes(144)).decode() for _ in range(20)]
    path = tmp_path / "pdna.txt"
    path.write_text("\n".join([*values, values[3], "x", *values[:2]]) + "\n")
    reports, packs = imported(
        store, path, monkeypatch, signal="photodna", seed=(values[5],), source="partner"
    )
    assert reports["child"] == reports["inline"] == reports["general"]
    assert (reports["child"]["added"], reports["child"]["duplicates"]) == (19, 4)
    rows = stored(store, "child")
    assert rows == stored(store, "inline") == stored(store, "general")
    assert {r[3] for r in rows[1:]} == {"partner"}  # the source column
    assert all(r[13][0][2] is not None for r in rows)  # values kept as text
    assert packs == {way: -1 for way in WAYS}


@pytest.mark.skipif(not parseahead.available(), reason="one core: no second process")
def test_txt_ahead_into_a_list_that_refuses_the_signal(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(9)
    path = tmp_path / "hashes.txt"
    path.write_text("\n".join(pdq(rng) for _ in range(10)) + "\n")
    reports, _ = imported(store, path, monkeypatch, signals=("md5",))
    for way, report in reports.items():  # the message names the list
        report["errors"] = [{**e, "error": e["error"].replace(way, "L")} for e in report["errors"]]
    assert reports["child"] == reports["inline"] == reports["general"]
    assert reports["child"]["added"] == 0 and len(reports["child"]["errors"]) == 10
    assert "takes md5, not pdq" in reports["child"]["errors"][0]["error"]


def test_txt_not_utf8_is_told_the_same_from_the_parsing_process(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes that are not UTF-8 stop the import with their offset, by the same class and
    message from the second process, the writer's process and the general path."""
    rng = random.Random(10)
    path = tmp_path / "bad.txt"
    path.write_bytes(("\n".join(pdq(rng) for _ in range(20)) + "\n").encode() + b"\xff\xfe\n")
    monkeypatch.setattr(ahead, "MIN_BYTES", 0)
    monkeypatch.setattr(apply, "DEFER_INDEX_BYTES", 0)
    monkeypatch.setattr(apply, "DEFER_LINE_BYTES", 1)
    index = key_index(sqlite_store)
    messages = []
    for way in WAYS:
        with pytest.raises(BadInput) as caught, sqlite_store.session() as session:
            hash_list = L.create_list(session, way)
            if way == "general":
                parsed = native.parse_txt_lines(stream_lines(path), str(path), "pdq")
                apply_with_tombstones(session, hash_list, parsed)
            else:
                monkeypatch.setenv(parseahead.ENV_SWITCH, "1" if way == "child" else "0")
                exchange.import_file(session, hash_list, path, "txt", signal="pdq")
        messages.append(str(caught.value))
    assert messages[0] == messages[1] == messages[2]
    assert "not UTF-8" in messages[0] and "byte 1300" in messages[0]
    assert key_index(sqlite_store) == index and len(index) == 1
    with sqlite_store.session() as session:
        assert [h.name for h in L.list_lists(session)] == []


def test_number_runs_are_the_position_runs() -> None:
    """`lists.core._number_runs` (numpy) makes the runs `_position_runs` makes."""
    from ridgeline.lists.core import _number_runs, _position_runs

    rng = random.Random(11)
    numbers = sorted(rng.sample(range(1, 400), 150))
    for ids in (list(range(5, 155)), [*range(5, 80), *range(90, 165)]):
        expected = _position_runs(ids, [f"line {n}" for n in numbers])
        assert _number_runs(ids, "line ", numbers) == expected


def test_prefixes_seen_by_the_parsing_process() -> None:
    """`ahead._Prefixes`: exactly the keys whose 8-byte prefix an earlier chunk had,
    across merged runs; keys of mixed widths are not tracked (all looked up)."""
    rng = random.Random(12)
    seen = ahead._Prefixes()
    chunks = [[rng.randbytes(32) for _ in range(50)] for _ in range(9)]
    earlier: set[bytes] = set()
    for chunk in chunks:
        chunk[7] = chunks[0][3][:8] + rng.randbytes(24)  # same prefix, another key
        expected = [i for i, key in enumerate(chunk) if key[:8] in earlier]
        assert seen.add(chunk) == expected
        earlier |= {key[:8] for key in chunk}
    assert ahead._Prefixes().add([b"a" * 16, b"b" * 32]) is None
