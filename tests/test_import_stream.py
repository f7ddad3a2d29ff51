"""Streamed NCMEC XML and VICS JSON imports (issue 10: both were read whole, 4 GB RSS
at 1M records): a file is read a part at a time and applied as it is read, and the
result is what reading it whole gave, meaning checks and positions included.

Each file here is larger than one part (`ncmec.PART`, `vics.PART`) so deletions,
re-sent records and errors fall in different parts. Benign synthetic hashes only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.errors import BadInput
from ridgeline.exchange import ncmec, vics
from ridgeline.exchange.tombstones import waiting_count
from ridgeline.lists.models import Entry
from ridgeline.store import Store

CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{}/$metadata#{}"


def md5(i: int) -> str:
    return hashlib.md5(f"benign {i}".encode()).hexdigest()


def sha1(i: int) -> str:
    return hashlib.sha1(f"benign {i}".encode()).hexdigest()


def ncmec_doc(n: int) -> bytes:
    """n image entries, a deletion of entry 3 before it (older: it wins) and of entry
    n-2 (newer than the entry's record further on: the record wins), a re-sent entry
    past the first part, a bad fingerprint, a tmk-pdqf element and a deleted entry
    that names nothing yet (it waits)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<h:queryResult xmlns:h="urn:example">\n']
    out.append("<h:deletedImages>")
    out.append(
        '<h:deletedImage><h:id>e3</h:id><h:member id="7">Example</h:member>'
        "<h:timestamp>2026-02-01T00:00:00Z</h:timestamp></h:deletedImage>"
    )
    out.append(
        f'<h:deletedImage><h:id>e{n - 2}</h:id><h:member id="7">Example</h:member>'
        "<h:timestamp>2026-01-01T00:00:00Z</h:timestamp></h:deletedImage>"
    )
    out.append(
        '<h:deletedImage><h:id>later</h:id><h:member id="7">Example</h:member>'
        "<h:timestamp>2026-03-01T00:00:00Z</h:timestamp></h:deletedImage>"
    )
    out.append("</h:deletedImages>\n<h:images>")
    for i in range(n):
        stamp = "2026-01-15T00:00:00Z" if i == n - 2 else "2025-12-01T00:00:00Z"
        fingerprints = f"<h:md5>{md5(i)}</h:md5><h:sha1>{sha1(i)}</h:sha1>"
        if i == 10:
            fingerprints = f"<h:md5>not-a-hash</h:md5><h:sha1>{sha1(i)}</h:sha1>"
        if i == 11:
            fingerprints += "<h:tmk-pdqf>AAAA</h:tmk-pdqf>"
        out.append(
            f'<h:image><h:id>e{i}</h:id><h:member id="7">Example</h:member>'
            f"<h:timestamp>{stamp}</h:timestamp><h:classification>A1</h:classification>"
            f"<h:fingerprints>{fingerprints}</h:fingerprints></h:image>\n"
        )
    # Entry 5 sent again in a later part, with a new sha1: an update, not a new entry.
    out.append(
        '<h:image><h:id>e5</h:id><h:member id="7">Example</h:member>'
        "<h:timestamp>2025-12-02T00:00:00Z</h:timestamp>"
        f"<h:fingerprints><h:md5>{md5(5)}</h:md5><h:sha1>{sha1(-5)}</h:sha1></h:fingerprints>"
        "</h:image>\n"
    )
    out.append("<h:image><h:member id='7'/></h:image>")  # no id: rejected by position
    out.append("</h:images>\n</h:queryResult>\n")
    return "".join(out).encode()


def vics_media(n: int) -> list[dict[str, Any]]:
    media: list[dict[str, Any]] = [
        {"MediaID": i, "Category": [1, 2, 0, 4, 3][i % 5], "MD5": md5(i).upper()} for i in range(n)
    ]
    media[7]["DateUpdated"] = "2026-01-01T00:00:00+01:00Z"  # lenient offset
    media[8] = {"MediaID": 8, "Category": True, "MD5": md5(8)}  # bad category
    media[n - 3] = {
        "MediaID": n - 3,
        "Category": 1,
        "AlternativeHashes": [
            {"HashName": "SHA256", "HashValue": hashlib.sha256(b"x").hexdigest()}
        ],
    }
    media[n - 2] = {"MediaID": n - 2, "Category": 1, "MD5": md5(n - 2), "Extra": "DEEP"}
    return media


def entries(store: Store, name: str) -> list[tuple[Any, ...]]:
    with store.session() as session:
        hash_list = L.get_list(session, name)
        views = L.read_entries(session, hash_list, include_deleted=True)
        status = dict(
            session.execute(
                select(Entry.id, Entry.status).where(Entry.list_id == hash_list.id)
            ).all()
        )
        return sorted(
            (
                v.origin_entry_id,
                tuple(sorted(v.signals.items())),
                tuple(sorted((c["scheme"], c["label"]) for c in v.classifications)),
                v.deleted,
                status[v.entry_id],
            )
            for v in views
        )


def both_ways(
    store: Store, path: Path, fmt: str, suffix: str = "", **options: Any
) -> tuple[Any, Any]:
    """The report of a streamed import into `streamed` and of the whole-file reader
    into `whole` (names + `suffix`), without the fields naming the list and batch."""
    reports = []
    with store.session() as session:
        one = L.create_list(session, "streamed" + suffix)
        two = L.create_list(session, "whole" + suffix)
        streamed = exchange.import_file(session, one, path, fmt, **options)
        whole = exchange.import_bytes(
            session, two, path.read_bytes(), fmt, what=str(path), **options
        )
        for report in (streamed, whole):
            data = report.to_json()
            for key in ("list", "batch"):
                data.pop(key)
            # A streamed file's parse errors come part by part, in file order.
            data["errors"] = sorted(data["errors"], key=lambda e: (e["position"], e["error"]))
            reports.append(data)
    return reports[0], reports[1]


def test_streamed_ncmec_equals_whole_file_reading(store: Store, tmp_path: Path) -> None:
    n = ncmec.PART + 2_000
    path = tmp_path / "page.xml"
    path.write_bytes(ncmec_doc(n))
    streamed, whole = both_ways(store, path, "ncmec-xml")
    assert streamed == whole
    assert streamed["read"] == n + 5
    assert (streamed["added"], streamed["updated"], streamed["deleted"]) == (n, 1, 1)
    assert streamed["skipped_older"] == 1  # the deletion older than entry n-2's record
    assert streamed["deletions_unmatched"] == 1
    errors = {e["position"]: e["error"] for e in streamed["errors"]}
    assert "(skipped; the rest kept)" in errors["/queryResult/images[1]/image[11]"]
    assert "no <id>" in errors[f"/queryResult/images[1]/image[{n + 2}]"]
    assert entries(store, "streamed") == entries(store, "whole")
    with store.session() as session:
        for name in ("streamed", "whole"):
            assert waiting_count(session, L.get_list(session, name)) == 1
    got = {e[0]: e for e in entries(store, "streamed")}
    assert got["e3"][3] is True and got[f"e{n - 2}"][3] is False
    assert dict(got["e5"][1])["sha1"] == sha1(-5)


def test_streamed_vics_equals_whole_file_reading(store: Store, tmp_path: Path) -> None:
    n = vics.PART + 1_500
    path = tmp_path / "set.json"
    doc = {"@odata.context": CONTEXT.format("US", "Media"), "value": vics_media(n)}
    # Nested past what the decoder can take: only that record is rejected.
    path.write_text(json.dumps(doc, indent=1).replace('"DEEP"', "[" * 5000 + "]" * 5000))
    for choice in ("skip", "reference"):
        streamed, whole = both_ways(store, path, "vics", choice, not_listable=choice)
        assert streamed == whole
        unlisted = sum(
            1 for m in doc["value"] if m["Category"] in (0, 4) and m["Category"] is not True
        )
        assert streamed["not_listable"] == unlisted > 4_000  # categories 0 and 4
        assert streamed["reference"] == (unlisted if choice == "reference" else 0)
        errors = {e["position"]: e["error"] for e in streamed["errors"]}
        assert "Category must be a number" in errors["/value/8"]
        assert "nested deeper" in errors[f"/value/{n - 2}"]
        assert entries(store, "streamed" + choice) == entries(store, "whole" + choice)
    kept = {e[0]: e for e in entries(store, "streamedreference")}
    assert kept["2"][4] == "reference" and kept["0"][4] == "confirmed"
    assert dict(kept[str(n - 3)][1]) == {"sha256": hashlib.sha256(b"x").hexdigest()}


def test_streamed_vics_runs_decoded_at_once_read_as_item_by_item() -> None:
    """The runs of media msgspec decodes at once (`JsonStream.items`) give the records
    and errors of the careful reading, whatever lies where a run is cut: a "}," in a
    string, nested hashes, NaN, a long integer, a marker string, a non-object."""
    odd: list[Any] = [
        {"MediaID": 1, "MD5": md5(1), "Note": 'x},{"MD5": 1}'},
        {"MediaID": 2, "MediaFiles": [{"MD5": md5(2)}, {"SHA1": sha1(2)}]},
        {
            "MediaID": 3,
            "MD5": md5(3),
            "AlternativeHashes": [
                {"HashName": "PDQ", "HashValue": "f" * 64},
                {"HashName": "X", "HashValue": "1"},
            ],
        },
        {"MediaID": 4, "MD5": md5(4), "Big": 10**120},
        {"MediaID": 5, "MD5": md5(5), "F": float("nan")},
        {"MediaID": 6, "MD5": md5(6), "Note": "\x00ridgeline: nested deeper than 64 levels"},
        [7],
        {"MediaID": 8, "MD5": md5(8), "DateUpdated": "2026-01-01T00:00:00+01:00Z"},
        {"MediaID": 9, "MD5": md5(9), "DateUpdated": "not a date"},
    ]
    media = [dict(m, Category=1) for m in vics_media(300)]
    for at, item in enumerate(odd):
        media.insert(at * 37, item)
    doc = {"@odata.context": CONTEXT.format("US", "Media"), "value": media}
    for indent in (None, 1):
        data = json.dumps(doc, indent=indent).encode()
        whole = vics.parse(data)
        assert len(whole.errors) >= 4  # the long integer, marker, non-object, bad date
        for size in (64, 1 << 20):
            chunks = [data[i : i + size] for i in range(0, len(data), size)]
            parts = list(vics.parse_stream(chunks).parts or ())
            assert [r for p in parts for r in p.records] == whole.records
            assert [e for p in parts for e in p.errors] == whole.errors


def test_streamed_vics_cases_and_a_context_after_the_value(store: Store, tmp_path: Path) -> None:
    cases = [
        {
            "CaseID": c,
            "Media": [
                {"MediaID": c * 10 + j, "Category": 1, "MD5": md5(c * 10 + j)} for j in range(3)
            ],
        }
        for c in range(1, 4)
    ]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"@odata.context": CONTEXT.format("UK", "Cases"), "value": cases}))
    streamed, whole = both_ways(store, path, "vics")
    assert streamed == whole and streamed["added"] == 9
    assert entries(store, "streamed") == entries(store, "whole")
    assert {e[2] for e in entries(store, "streamed")} == {(("vics-uk", "1"),)}
    # `value` before the context: read whole, the same result.
    late = tmp_path / "late.json"
    late.write_text(
        '{"value": '
        + json.dumps(cases)
        + ', "@odata.context": "'
        + CONTEXT.format("UK", "Cases")
        + '"}'
    )
    with store.session() as session:
        hl = L.create_list(session, "late")
        report = exchange.import_file(session, hl, late, "vics")
    assert report.added == 9


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        (
            "vics",
            b'{"@odata.context": "x#Media", "value": [{"MD5": "a"},\n {"MD5": }]}',
            "malformed JSON at line 2, column 10",
        ),
        (
            "vics",
            b'{"@odata.context": "x#Media", "value": [{"MD5": "a"}] } extra',
            "malformed JSON at line 1, column 57",
        ),
        ("vics", b'{"@odata.context": "x#Media", "value": [{"MD5": "\xff"}]}', "not UTF-8 text"),
        (
            "ncmec-xml",
            b"<queryResult>\n<images>\n<image><id>1</id>\n</images>",
            "malformed XML at line 4, column 3",
        ),
        (
            "ncmec-xml",
            b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]><queryResult/>',
            "line 2: XML with a DTD",
        ),
        ("ncmec-xml", b"<other/>", "root element is <other>"),
    ],
)
def test_a_broken_streamed_file_says_where_and_writes_nothing(
    store: Store, tmp_path: Path, fmt: str, data: bytes, message: str
) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(ncmec_doc(3))
    with store.session() as session:
        exchange.import_file(session, L.create_list(session, "kept"), good, "ncmec-xml")
    bad = tmp_path / "bad"
    bad.write_bytes(data)
    with pytest.raises(BadInput, match=message), store.session() as session:
        exchange.import_file(session, L.get_list(session, "kept"), bad, fmt)
    assert len(entries(store, "kept")) == 4


def test_parts_are_read_as_they_are_applied(tmp_path: Path) -> None:
    """The readers take input only as parts are asked for: the first part comes after
    a small share of the file's chunks, not after all of them."""
    n = 3 * ncmec.PART
    xml = ncmec_doc(n)
    media = json.dumps(
        {"@odata.context": CONTEXT.format("US", "Media"), "value": vics_media(n)}
    ).encode()
    for parse, data in ((ncmec.parse_stream, xml), (vics.parse_stream, media)):
        size = 64 * 1024
        total = (len(data) + size - 1) // size
        taken = 0

        def chunks(data: bytes = data, size: int = size) -> Iterator[bytes]:
            nonlocal taken
            for start in range(0, len(data), size):
                taken += 1
                yield data[start : start + size]

        parts = iter(parse(chunks()).parts or ())
        first = next(parts)
        assert len(first.records) + len(first.errors) >= ncmec.PART
        assert taken < total / 2, (parse, taken, total)
        rest = sum(len(p.records) + len(p.errors) for p in parts)
        assert len(first.records) + len(first.errors) + rest >= n
        assert taken == total
