"""Issue 17 probe defects on the data side, each a regression test on real stores.

Imports on SQLite and PostgreSQL (speed of a first import, lengths and NUL bytes),
hostile partner files (unterminated quotes, deep nesting, huge integers, UTF-16 DTDs,
oversized XML fields, short ICSE rows, endless inputs) and the tamper-evident log's
verify on a broken record.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ridgeline import auditlog, exchange
from ridgeline import lists as L
from ridgeline.errors import BadInput
from ridgeline.lists.models import Entry, EntrySignal
from ridgeline.store import Store


def _md5s(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def test_first_import_of_many_hashes_is_not_quadratic(store: Store, tmp_path: Path) -> None:
    """15k md5 in three batches: minutes on a fresh PostgreSQL before, seconds now."""
    hashes = _md5s(15000)
    path = tmp_path / "h.txt"
    path.write_text("\n".join([*hashes, hashes[0], hashes[14999]]) + "\n")
    started = time.perf_counter()
    with store.session() as session:
        big = L.create_list(session, "big")
        report = exchange.import_file(session, big, path, "txt", signal="md5")
    elapsed = time.perf_counter() - started
    assert (report.added, report.duplicates) == (15000, 2)
    # Was about 80 s here on PostgreSQL (quadratic); about 3 s now on a loaded machine.
    assert elapsed < 30, elapsed
    with store.session() as session:
        assert len(session.scalars(select(EntrySignal.id)).all()) == 15000


def _import(store: Store, path: Path, fmt: str, **kw: Any) -> dict[str, Any]:
    """Import into a fresh list through the writer the CLI uses for `fmt`."""
    with store.session() as session:
        hash_list = L.create_list(session, f"l{time.monotonic_ns()}")
        return exchange.import_file(session, hash_list, path, fmt, **kw).to_json()


def _stored(store: Store) -> list[tuple[str | None, str | None]]:
    with store.session() as session:
        rows = session.execute(select(Entry.origin_entry_id, Entry.note).order_by(Entry.id))
        return [tuple(r) for r in rows]


def _where(error: dict[str, Any]) -> str:
    return str(error["position"])


MD5 = [f"{i:032x}" for i in range(1, 9)]


def test_unterminated_quote_is_an_error_and_later_records_are_kept(
    store: Store, tmp_path: Path
) -> None:
    """Issue 17 item 5: the quote swallowed every later record into one note, silently."""
    native = tmp_path / "n.csv"
    native.write_text(f'md5,note\n{MD5[0]},a\n{MD5[1]},"never closed\n{MD5[2]},c\n{MD5[3]},d\n')
    report = _import(store, native, "csv")
    assert report["added"] == 3 and [(_where(e), e["error"][:20]) for e in report["errors"]] == [
        ("line 3", "a quoted field is ne")
    ]
    icse = tmp_path / "i.csv"
    icse.write_text(
        f'ID;MD5;Comment\na;{MD5[4]};fine\nb;{MD5[5]};"open\nc;{MD5[6]};later\nd;{MD5[7]};last\n'
    )
    report = _import(store, icse, "icse")
    assert report["added"] == 3 and [_where(e) for e in report["errors"]] == ["line 3"]
    assert "quoted field is never closed" in report["errors"][0]["error"]
    assert ("c", "later") in _stored(store) and ("d", "last") in _stored(store)


def test_icse_rows_with_too_few_fields_are_errors(store: Store, tmp_path: Path) -> None:
    """Issue 17 item 13: a short row was read with the missing columns empty."""
    icse = tmp_path / "short.csv"
    icse.write_text(f"ID;MD5;Category;Comment\na;{MD5[0]};uk:A;ok\nb;{MD5[1]}\n")
    report = _import(store, icse, "icse")
    assert report["added"] == 1
    assert report["errors"] == [{"position": "line 3", "error": "2 fields, the header has 4"}]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def test_deep_nesting_and_huge_integers_are_per_record_errors(store: Store, tmp_path: Path) -> None:
    """Issue 17 item 10: RecursionError / ValueError tracebacks lost every good record."""
    jsonl = tmp_path / "n.jsonl"
    jsonl.write_text(
        "\n".join(
            [
                json.dumps({"md5": MD5[0]}),
                f'{{"md5": "{MD5[1]}", "note": {_deep(100_000)}}}',
                f'{{"md5": "{MD5[2]}", "quality": {"9" * 10_000}}}',
                json.dumps({"md5": MD5[3], "origin_entry_id": "kept"}),
            ]
        )
        + "\n"
    )
    report = _import(store, jsonl, "jsonl")
    assert report["added"] == 2
    assert [(e["position"], e["error"]) for e in report["errors"]] == [
        ("line 2", "nested deeper than 64 levels"),
        ("line 3", "integer longer than 100 digits"),
    ]
    vics = tmp_path / "v.json"
    vics.write_text(
        '{"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media",'
        f'"value": [{{"MediaID": 1, "MD5": "{MD5[4]}"}},'
        f'{{"MediaID": 2, "MD5": "{MD5[5]}", "Extra": {_deep(50_000)}}},'
        f'{{"MediaID": 3, "MD5": "{MD5[6]}", "Category": {"1" * 5000}}},'
        f'{{"MediaID": 4, "MD5": "{MD5[7]}"}}]}}'
    )
    report = _import(store, vics, "vics")
    assert report["added"] == 2
    assert [(e["position"], e["error"]) for e in report["errors"]] == [
        ("/value/1", "nested deeper than 64 levels"),
        ("/value/2", "integer longer than 100 digits"),
    ]
    assert {"1", "4"} <= {origin for origin, _ in _stored(store)}


NCMEC_UTF16 = (
    '<?xml version="1.0" encoding="UTF-16"?>\n'
    '<!DOCTYPE q [<!ENTITY e "expanded">]>\n'
    "<queryResult><images><image><id>&e;</id><fingerprints>"
    f"<md5>{MD5[0]}</md5></fingerprints></image></images></queryResult>"
)


@pytest.mark.parametrize(
    ("encoding", "declared"), [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16LE")]
)
def test_dtd_is_refused_in_any_encoding(
    store: Store, tmp_path: Path, encoding: str, declared: str
) -> None:
    """Issue 17 item 11: a UTF-16 DOCTYPE passed the byte check; its entity was stored."""
    doc = tmp_path / "d.xml"
    doc.write_bytes(NCMEC_UTF16.replace("UTF-16", declared).encode(encoding))
    with pytest.raises(BadInput, match="line 2: XML with a DTD or entity declarations is refused"):
        _import(store, doc, "ncmec-xml")
    assert _stored(store) == []


def test_oversized_xml_fields_are_per_record_errors(store: Store, tmp_path: Path) -> None:
    """Issue 17 item 13: XML fields had no size cap."""
    doc = tmp_path / "big.xml"
    entries = [
        f"<image><id>{ident}</id><fingerprints><md5>{md5}</md5></fingerprints></image>"
        for ident, md5 in (("ok1", MD5[0]), ("x" * 100_000, MD5[1]), ("ok2", MD5[2]))
    ]
    doc.write_text(f"<queryResult><images>{''.join(entries)}</images></queryResult>")
    report = _import(store, doc, "ncmec-xml")
    assert report["added"] == 2
    assert report["errors"] == [
        {
            "position": "/queryResult/images[1]/image[2]",
            "error": "<id> holds 100000 characters; at most 4096 are read",
        }
    ]


def test_long_ids_and_nul_bytes_are_refused_alike_on_both_databases(
    store: Store, tmp_path: Path
) -> None:
    """Issue 17 item 4: SQLite stored 20 MB ids verbatim; on PostgreSQL one 201-character
    id aborted the whole partner import with a traceback."""
    icse = tmp_path / "long.csv"
    icse.write_text(f"ID;MD5\nok;{MD5[0]}\n{'i' * 201};{MD5[1]}\n{'i' * 200};{MD5[2]}\n")
    report = _import(store, icse, "icse")
    assert report["added"] == 2
    assert report["errors"] == [
        {
            "position": "line 3",
            "error": "origin_entry_id is 201 characters long; at most 200 are stored",
        }
    ]
    jsonl = tmp_path / "nul.jsonl"
    rows = [
        {"md5": MD5[3], "note": "fine"},
        {"md5": MD5[4], "note": "nul \u0000 inside"},
        {"md5": MD5[5], "origin_member": "m" * 20_000_000},
        {"md5": MD5[6], "note": "n" * 10_001},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = _import(store, jsonl, "jsonl")
    assert report["added"] == 1
    assert [(e["position"], e["error"]) for e in report["errors"]] == [
        ("line 2", "note contains a NUL byte"),
        ("line 3", "origin_member is 20000000 characters long; at most 200 are stored"),
        ("line 4", "note is 10001 characters long; at most 10000 are stored"),
    ]
    assert len(_stored(store)) == 3


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("ridgeline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ridgeline.cli"]


def test_import_refuses_devices_and_caps_standard_input(tmp_path: Path) -> None:
    """Issue 17 item 12: `lists import x /dev/zero` grew to 6.8 GB in 6 s."""
    db = str(tmp_path / "cli.db")
    subprocess.run([*_cli(), "lists", "create", "x", "--db", db], check=True, capture_output=True)
    for fmt in ("txt", "icse"):
        started = time.monotonic()
        done = subprocess.run(
            [*_cli(), "lists", "import", "x", "/dev/zero", "--format", fmt, "--signal", "md5",
             "--db", db],
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and time.monotonic() - started < 30
        assert b"/dev/zero: not a regular file" in done.stderr
    with open("/dev/zero", "rb") as zero:  # an endless pipe: refused at the cap
        done = subprocess.run(
            [*_cli(), "lists", "import", "x", "-", "--format", "txt", "--signal", "md5",
             "--db", db],
            stdin=zero, capture_output=True, timeout=60,
            env=os.environ | {"RIDGELINE_IMPORT_MAX_BYTES": "1000000"},
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert b"standard input: more than 1000000 bytes" in done.stderr
    done = subprocess.run(
        [*_cli(), "lists", "import", "x", "-", "--format", "txt", "--signal", "md5", "--db", db],
        input="\n".join(MD5).encode(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == len(MD5)


def test_log_verify_names_a_record_with_a_garbage_time(sqlite_store: Store) -> None:
    """Issue 17 item 13: `log verify` ended in a traceback (only SQLite can store this)."""
    with sqlite_store.session() as session:
        for i in range(3):
            auditlog.append(session, "tester", "test.event", f"thing:{i}", {"i": i})
    path = sqlite_store.engine.url.database
    assert path is not None
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER IF EXISTS log_records_no_update")  # what an attacker can do
    con.execute("UPDATE log_records SET at = 'garbage' WHERE seq = 2")
    con.commit()
    con.close()
    with sqlite_store.session() as session:
        result = auditlog.verify(session)
    assert not result.ok and result.first_bad_seq == 2 and result.checked == 1
    assert result.reason == "record 2 has an unreadable time 'garbage' (it was altered)"


def test_xml_in_an_encoding_expat_cannot_read_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="ncmec-xml: "):  # refused, never expanded
        exchange.parse_bytes(NCMEC_UTF16.replace("UTF-16", "UTF-32").encode("utf-32"), "ncmec-xml")
