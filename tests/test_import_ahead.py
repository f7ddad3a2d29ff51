"""Big NCMEC XML and VICS JSON imports read in a second process (`exchange.ahead`,
issue 10: 1M records in <= 60 s): the parsing process checks the records and sends
the rows, the writer inserts them. Both ways of running the producer (a second
process, and in the writer's process for small files or `RIDGELINE_PARSE_AHEAD=0`)
and the general path (records applied by the writer itself, still taken when
deletions wait in the list) store the same rows and report the same, on SQLite and
PostgreSQL, with the tricky records of `test_import_stream` (a bad fingerprint,
deletions before and after their entries, a re-sent entry, a deletion that waits,
non-listable categories, rejects by position). Benign synthetic hashes only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ridgeline import exchange, parseahead
from ridgeline import lists as L
from ridgeline.errors import BadInput, NotFound
from ridgeline.exchange import ahead, ncmec, vics
from ridgeline.exchange.records import stream_chunks
from ridgeline.exchange.tombstones import apply_with_tombstones
from ridgeline.store import Store
from test_import_stream import CONTEXT, md5, ncmec_doc, vics_media

#: Records per part: the files span several.
PART = 300
STREAMED = {ncmec.NAME: ncmec.parse_stream, vics.NAME: vics.parse_stream}


def stored(store: Store, name: str) -> list[tuple[Any, ...]]:
    """Every stored value of the list's entries that does not name the import (ids,
    times, batch), in id order, with their hashes and kept format facts."""
    with store.session() as session:
        list_id = L.get_list(session, name).id
        conn = session.connection()
        signals: dict[int, list[tuple[Any, ...]]] = {}
        for entry_id, *row in conn.execute(
            text(
                "SELECT s.entry_id, s.signal, s.key, s.value, s.quality FROM entry_signals s "
                "JOIN entries e ON e.id = s.entry_id WHERE e.list_id = :l ORDER BY s.id"
            ),
            {"l": list_id},
        ):
            signals.setdefault(entry_id, []).append((row[0], bytes(row[1]), *row[2:]))
        metas: dict[int, Any] = dict(
            conn.execute(
                text(
                    "SELECT m.entry_id, m.data FROM exchange_meta m "
                    "JOIN entries e ON e.id = m.entry_id WHERE e.list_id = :l"
                ),
                {"l": list_id},
            ).all()
        )
        out = []
        for entry_id, *row in conn.execute(
            text(
                "SELECT id, status, enabled, classifications, source, origin_list, "
                "origin_member, origin_entry_id, note, series, victim_identified, "
                "case_numbers, origin_member_name, deleted_at IS NOT NULL FROM entries "
                "WHERE list_id = :l ORDER BY id"
            ),
            {"l": list_id},
        ):
            meta = metas.get(entry_id)
            out.append(
                (
                    *(json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for v in row),
                    tuple(signals.get(entry_id, [])),
                    json.loads(meta) if isinstance(meta, str) else meta,
                )
            )
        return out


def three_ways(
    store: Store, path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> dict[str, Any]:
    """Reports (without list and batch) of the file imported in a second process, by the
    same producer inline, and by the general path, each into its own list."""
    reports: dict[str, Any] = {}
    monkeypatch.setattr(ahead, "PART", PART)  # parts of the same records every way
    for way in ("child", "inline", "general"):
        with store.session() as session:
            try:
                hash_list = L.get_list(session, way)  # imported again
            except NotFound:
                hash_list = L.create_list(session, way)
            if way == "general":
                parsed = STREAMED[fmt](stream_chunks(path), str(path), part=PART)
                report = apply_with_tombstones(session, hash_list, parsed, **options)
            else:
                monkeypatch.setattr(ahead, "MIN_BYTES", 0)
                monkeypatch.setenv(parseahead.ENV_SWITCH, "1" if way == "child" else "0")
                report = exchange.import_file(session, hash_list, path, fmt, **options)
            data = report.to_json()
            data.pop("list")
            data.pop("batch")
            reports[way] = data
    return reports


@pytest.mark.skipif(not parseahead.available(), reason="one core: no second process")
def test_ncmec_ahead_stores_what_the_writer_stores(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 3 * PART + 100
    path = tmp_path / "page.xml"
    path.write_bytes(ncmec_doc(n))
    reports = three_ways(store, path, ncmec.NAME, monkeypatch)
    assert reports["child"] == reports["inline"] == reports["general"]
    assert (reports["child"]["added"], reports["child"]["updated"]) == (n, 1)
    assert reports["child"]["deletions_unmatched"] == 1
    assert len(reports["child"]["errors"]) == 2
    rows = stored(store, "child")
    assert rows == stored(store, "inline") == stored(store, "general")
    assert len(rows) == n and sum(1 for r in rows if r[12]) == 1  # one deleted


@pytest.mark.skipif(not parseahead.available(), reason="one core: no second process")
def test_vics_ahead_stores_what_the_writer_stores(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 3 * PART + 50
    path = tmp_path / "set.json"
    doc = {"@odata.context": CONTEXT.format("UK", "Media"), "value": vics_media(n)}
    path.write_text(json.dumps(doc))
    reports = three_ways(store, path, vics.NAME, monkeypatch, not_listable="reference")
    assert reports["child"] == reports["inline"] == reports["general"]
    assert reports["child"]["reference"] == reports["child"]["not_listable"] > 300
    rows = stored(store, "child")
    assert rows == stored(store, "inline") == stored(store, "general")
    assert {r[0] for r in rows} == {"confirmed", "reference"}


@pytest.mark.skipif(not parseahead.available(), reason="one core: no second process")
def test_ahead_into_a_list_that_holds_some_of_the_records(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list that is not empty: every part is looked up, the part with a known record
    goes through the general path (a duplicate), the others are inserted as sent."""
    n = 3 * PART + 50
    media = vics_media(n)
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"@odata.context": CONTEXT.format("US", "Media"), "value": media}))
    known = [dict(media[1]), dict(media[2], MD5=md5(-2))]  # the same, and a changed hash
    first = json.dumps({"@odata.context": CONTEXT.format("US", "Media"), "value": known})
    for way in ("child", "inline", "general"):
        with store.session() as session:
            hash_list = L.create_list(session, way)
            exchange.import_bytes(session, hash_list, first.encode(), vics.NAME)
    reports = three_ways(store, path, vics.NAME, monkeypatch)
    assert reports["child"] == reports["inline"] == reports["general"]
    assert reports["child"]["duplicates"] == 1  # media 1 (VICS ids are no origin ids)
    assert stored(store, "child") == stored(store, "inline") == stored(store, "general")


def test_a_malformed_file_is_told_the_same_from_the_parsing_process(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken document is refused with its line and column, by the same class, from
    the second process as from the writer's own reading; nothing is stored."""
    path = tmp_path / "broken.xml"
    path.write_bytes(ncmec_doc(50).replace(b"</h:image>\n", b"</h:imag>\n", 7))
    monkeypatch.setattr(ahead, "MIN_BYTES", 0)
    messages = []
    for switch in ("1", "0"):
        monkeypatch.setenv(parseahead.ENV_SWITCH, switch)
        with pytest.raises(BadInput) as caught, sqlite_store.session() as session:
            hash_list = L.create_list(session, f"broken{switch}")
            exchange.import_file(session, hash_list, path, ncmec.NAME)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "line" in messages[0] and "column" in messages[0]
    with sqlite_store.session() as session:
        assert [h.name for h in L.list_lists(session)] == []
