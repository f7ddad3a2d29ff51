"""Exchange formats: round trips, tolerant parsing with positions, transactions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import BadInput
from ridgeline.exchange.models import ExchangeMeta
from ridgeline.lists.models import Entry, HashList
from ridgeline.store import Store

DATA = Path(__file__).parent / "data" / "exchange"


def entries_of(session: Session, name: str, *, deleted: bool = False) -> list[tuple[Any, ...]]:
    """Comparable view of a list: hashes, labels and provenance (not ids or times)."""
    hash_list = L.get_list(session, name)
    query = select(Entry).where(Entry.list_id == hash_list.id).options(selectinload(Entry.signals))
    if not deleted:
        query = query.where(Entry.deleted_at.is_(None))
    out = []
    for e in session.scalars(query):
        out.append(
            (
                tuple(sorted((s.signal, s.value) for s in e.signals)),
                tuple(sorted((c["scheme"], c["label"]) for c in e.classifications)),
                e.source,
                e.origin_list,
                e.origin_member,
                e.origin_entry_id,
                e.note,
            )
        )
    return sorted(out)


def import_into(store: Store, name: str, path: Path, fmt: str, **kw: Any) -> dict[str, Any]:
    with store.session() as session:
        try:
            hash_list = L.get_list(session, name)
        except Exception:
            hash_list = L.create_list(session, name)
        report = exchange.import_exchange(session, hash_list, path, fmt, **kw)
        return report.to_json()


def export_of(store: Store, name: str, fmt: str, **kw: Any) -> bytes:
    with store.session() as session:
        return exchange.export_list(session, L.get_list(session, name), fmt, **kw)


def round_trip(
    store: Store,
    tmp_path: Path,
    fmt: str,
    src: Path,
    import_kw: dict[str, Any] | None = None,
    **export_kw: Any,
) -> None:
    import_into(store, "a", src, fmt, **(import_kw or {}))
    data = export_of(store, "a", fmt, **export_kw)
    out = tmp_path / f"export.{fmt}"
    out.write_bytes(data)
    report = import_into(store, "b", out, fmt, **(import_kw or {}))
    assert report["errors"] == []
    with store.session() as session:
        a, b = entries_of(session, "a"), entries_of(session, "b")
    assert a and a == b


# --- NCMEC ------------------------------------------------------------------------


def test_ncmec_import_keeps_md5_sha1_pdna_pdq_member_and_reports_positions(store: Store) -> None:
    report = import_into(store, "ncmec", DATA / "ncmec_entries.xml", "ncmec-xml")
    assert report["added"] == 3
    positions = {e["position"]: e["error"] for e in report["errors"]}
    assert positions["/queryResult/images[1]/image[3]"] == "entry has no <id>"
    assert "invalid md5" in positions["/queryResult/images[1]/image[4]"]
    with store.session() as session:
        rows = entries_of(session, "ncmec")
        first = next(r for r in rows if r[5] == "img-1001")
        assert dict(first[0]).keys() == {"md5", "sha1", "photodna", "pdq"}
        assert dict(first[0])["md5"] == "122a7012a986655a7e9843892512258e"  # canonical
        assert first[1] == (("industry", "A1"),)
        assert first[2] == "ncmec" and first[4] == "42"
        video = next(r for r in rows if r[5] == "vid-2001")
        entry_id = session.scalar(select(Entry.id).where(Entry.origin_entry_id == "vid-2001"))
        meta = session.get(ExchangeMeta, entry_id)
        assert meta is not None and meta.data["entry_type"] == "video"
        assert video[4] == "7"


def test_ncmec_round_trip(store: Store, tmp_path: Path) -> None:
    round_trip(store, tmp_path, "ncmec-xml", DATA / "ncmec_entries.xml")
    text = export_of(store, "a", "ncmec-xml").decode()
    assert "<video>" in text and "<pdna>" in text and "<sha1>" in text


def test_ncmec_incremental_since_last_and_deletions_tombstone(store: Store) -> None:
    import_into(store, "inc", DATA / "ncmec_entries.xml", "ncmec-xml")
    with store.session() as session:
        assert exchange.last_timestamp(session, L.get_list(session, "inc"), "ncmec-xml") is not None
    report = import_into(store, "inc", DATA / "ncmec_update.xml", "ncmec-xml", since="last")
    assert report["skipped_older"] == 1  # img-1001 re-sent with an older timestamp
    assert report["added"] == 1 and report["deleted"] == 1
    assert report["max_timestamp"] == "2026-02-01T09:00:00Z"
    with store.session() as session:
        live = {r[5] for r in entries_of(session, "inc")}
        assert "img-1002" not in live and "img-1005" in live
        tomb = session.scalar(select(Entry).where(Entry.origin_entry_id == "img-1002"))
        assert tomb is not None and tomb.deleted_at is not None  # kept as a tombstone
    # Tombstones go out as deletions when asked.
    text = export_of(store, "inc", "ncmec-xml", include_deleted=True).decode()
    assert "<deletedImage>" in text


def test_ncmec_refuses_dtd_and_entities_and_stores_nothing(store: Store, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n<queryResult>&lol2;</queryResult>'
    )
    with pytest.raises(BadInput, match="DTD or entity"):
        import_into(store, "x", bomb, "ncmec-xml")
    with store.session() as session:
        assert session.scalar(select(HashList).where(HashList.name == "x")) is None


def test_malformed_xml_names_line_and_keeps_existing(store: Store, tmp_path: Path) -> None:
    import_into(store, "keep", DATA / "ncmec_entries.xml", "ncmec-xml")
    broken = tmp_path / "broken.xml"
    broken.write_text("<queryResult>\n<images>\n<image><id>1</id>\n</images>")
    with pytest.raises(BadInput, match=r"malformed XML at line 4"):
        import_into(store, "keep", broken, "ncmec-xml")
    with store.session() as session:
        assert len(entries_of(session, "keep")) == 3


def test_import_is_one_transaction(store: Store) -> None:
    """A failure after records were written (here: any error in the block) keeps nothing."""
    import_into(store, "tx", DATA / "vics20_cases.json", "vics", not_listable="list")
    with pytest.raises(RuntimeError), store.session() as session:
        hash_list = L.get_list(session, "tx")
        report = exchange.import_exchange(
            session, hash_list, DATA / "ncmec_entries.xml", "ncmec-xml"
        )
        assert report.added == 3  # written in this transaction...
        raise RuntimeError("crash before commit")
    with store.session() as session:
        rows = entries_of(session, "tx")
        assert {r[2] for r in rows} == {"vics"}  # ...and gone; the old entries are intact
        assert len(rows) == 3


def test_import_puts_back_the_sqlite_page_cache(store: Store) -> None:
    """The larger page cache an import of records takes is for that import only."""
    with store.session() as session:
        conn = session.connection()
        if conn.dialect.name != "sqlite":
            pytest.skip("SQLite's page cache")
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        hash_list = L.create_list(session, "cache")
        report = exchange.import_exchange(
            session, hash_list, DATA / "ncmec_entries.xml", "ncmec-xml"
        )
        assert report.added == 3
        assert session.connection().exec_driver_sql("PRAGMA cache_size").scalar() == before


# --- VICS -------------------------------------------------------------------------


def test_vics_13_import_maps_categories_and_keeps_original(store: Store) -> None:
    report = import_into(store, "v", DATA / "vics13.json", "vics", not_listable="list")
    assert report["added"] == 3
    assert [e["position"] for e in report["errors"]] == ["/value/2"]  # MD5 "zz"
    with store.session() as session:
        rows = entries_of(session, "v")
        assert {r[5]: r[1] for r in rows}["2"] == (("vics-us", "3"),)
        entry_id = session.scalar(select(Entry.id).where(Entry.origin_entry_id == "1"))
        meta = session.get(ExchangeMeta, entry_id)
        assert meta is not None
        assert meta.data["category"] == 1 and meta.data["fields"]["MediaSize"] == 2835


def test_vics_13_round_trip(store: Store, tmp_path: Path) -> None:
    round_trip(
        store,
        tmp_path,
        "vics",
        DATA / "vics13.json",
        {"not_listable": "list"},
        vics_version="1.3",
    )
    doc = json.loads(export_of(store, "a", "vics", vics_version="1.3"))
    assert doc["odata.metadata"].endswith("1.3.xml#Cases")  # as the public 1.x writers
    media = {m["MediaID"]: m for case in doc["value"] for m in case["Media"]}
    assert media[1]["Category"] == 1 and media[1]["IsPrecategorized"] == "true"


def test_vics_20_media_round_trip_and_positions(store: Store, tmp_path: Path) -> None:
    report = import_into(store, "m", DATA / "vics20_media.json", "vics")
    assert [e["position"] for e in report["errors"]] == ["/value/2", "/value/3"]
    round_trip(store, tmp_path, "vics", DATA / "vics20_media.json", vics_profile="US")
    doc = json.loads(export_of(store, "a", "vics"))
    assert doc["@odata.context"].endswith("2.0.xml/US/$metadata#Media")


def test_vics_20_cases_round_trip_keeps_unmapped_category(store: Store, tmp_path: Path) -> None:
    report = import_into(store, "c", DATA / "vics20_cases.json", "vics", not_listable="list")
    assert [e["position"] for e in report["errors"]] == ["/value/1/Media/1"]
    round_trip(
        store,
        tmp_path,
        "vics",
        DATA / "vics20_cases.json",
        {"not_listable": "list"},
        vics_cases=True,
    )
    doc = json.loads(export_of(store, "a", "vics", vics_cases=True))
    assert doc["@odata.context"].endswith("#Cases")
    by_case = {c["CaseID"]: c["Media"] for c in doc["value"]}
    assert {m["MediaID"] for m in by_case[501]} == {20, 21}
    assert by_case[502][0]["Category"] == 7  # not a vics-us label, kept as read
    with store.session() as session:
        row = next(r for r in entries_of(session, "c") if r[5] == "22")
        assert row[1] == ()  # no invented classification


def test_vics_malformed_json_reports_line(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"odata.metadata": "x",\n "value": [\n {"MD5": }\n]}')
    with pytest.raises(BadInput, match="line 3, column"):
        import_into(store, "bad", bad, "vics")


# --- ICSE -------------------------------------------------------------------------


def test_icse_import_positions_and_round_trip(store: Store, tmp_path: Path) -> None:
    report = import_into(store, "i", DATA / "icse.csv", "icse")
    assert [e["position"] for e in report["errors"]] == ["line 4", "line 5"]
    assert report["added"] == 3
    round_trip(store, tmp_path, "icse", DATA / "icse.csv")
    text = export_of(store, "a", "icse").decode()
    assert text.splitlines()[0].startswith("ID;MD5;SHA1;")
    assert "uk:A|industry:A1" in text and "baseline" in text


def test_icse_deleted_status_tombstones(store: Store, tmp_path: Path) -> None:
    import_into(store, "d", DATA / "icse.csv", "icse")
    update = tmp_path / "upd.csv"
    update.write_text("ID;MD5;Contributor;Status\nicse-1;;NCB-Lyon;deleted\n")
    report = import_into(store, "d", update, "icse")
    assert report["deleted"] == 1
    with store.session() as session:
        assert "icse-1" not in {r[5] for r in entries_of(session, "d")}


# --- StopNCII ---------------------------------------------------------------------


def test_stopncii_import_withdrawn_removes_and_round_trip(store: Store, tmp_path: Path) -> None:
    report = import_into(store, "s", DATA / "stopncii.json", "stopncii")
    assert report["added"] == 3
    assert [e["position"] for e in report["errors"]] == ["/hashRecords/2", "/hashRecords/3"]
    report = import_into(store, "s", DATA / "stopncii_withdraw.json", "stopncii")
    assert report["deleted"] == 1
    with store.session() as session:
        assert len(entries_of(session, "s")) == 2
    round_trip(store, tmp_path, "stopncii", DATA / "stopncii.json")
    doc = json.loads(export_of(store, "s", "stopncii", include_deleted=True))
    statuses = {r["hashValue"][:8]: r["hashStatus"] for r in doc["hashRecords"]}
    assert statuses["f8f8f0ce"] == "Withdrawn"  # as the partner said, not "Deleted"


def test_stopncii_json_lines(store: Store, tmp_path: Path) -> None:
    lines = tmp_path / "records.jsonl"
    lines.write_text(
        '{"signalType": "VideoMD5", "hashValue": "3c0e1762545a280af1bba448694a1b06",'
        ' "hashStatus": "Active", "lastModtimestamp": 1767225600}\n'
        "{not json}\n"
    )
    report = import_into(store, "j", lines, "stopncii")
    assert report["added"] == 1
    assert report["errors"][0]["position"] == "line 2"


# --- our CSV and JSONL ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_native_round_trip_keeps_provenance(store: Store, tmp_path: Path, fmt: str) -> None:
    import_into(store, "a", DATA / "ncmec_entries.xml", "ncmec-xml")
    import_into(store, "a", DATA / "vics20_cases.json", "vics", not_listable="list")
    with store.session() as session:
        L.add_entry(
            session,
            L.get_list(session, "a"),
            {"sha256": "c0df06e147f75777336ca5636fe0215d97bebc55ddf32991b2b37f8bc1896212"},
            classifications=[{"scheme": "uk", "label": "B"}, {"scheme": "industry", "label": "B1"}],
            source="icse",
            origin_list="baseline",
            origin_member="NCB-Lyon",
            origin_entry_id="x-9",
            note='comma, quote " and pipe | kept',
        )
    out = tmp_path / f"a.{fmt}"
    out.write_bytes(export_of(store, "a", fmt))
    with store.session() as session:
        b = L.create_list(session, "b")
        report = exchange.import_file(session, b, out, fmt, not_listable="list")
        assert report.errors == []
    with store.session() as session:
        a_rows, b_rows = entries_of(session, "a"), entries_of(session, "b")
    assert a_rows == b_rows and len(a_rows) == 7


# --- CLI --------------------------------------------------------------------------


def test_cli_import_export(db_path: str, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["lists", "create", "cli", "--db", db_path]).exit_code == 0
    result = runner.invoke(
        main,
        [
            "lists",
            "import",
            "cli",
            str(DATA / "vics13.json"),
            "--format",
            "vics",
            "--db",
            db_path,
            "--output",
            "json",
        ],
    )
    assert result.exit_code == 1  # one record rejected
    assert "vics13.json:/value/2: invalid md5" in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["added"], summary["not_listable"]) == (2, 1)  # Category 0 not listed
    out = tmp_path / "cli.xml"
    result = runner.invoke(
        main,
        ["lists", "export", "cli", "--format", "ncmec-xml", "--out", str(out), "--db", db_path],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 entries and 0 deletions" in result.stderr
    assert b"<queryResult" in out.read_bytes()
    result = runner.invoke(main, ["lists", "import", "cli", str(out), "--db", db_path])
    assert result.exit_code == 0, result.output  # .xml -> ncmec-xml, all duplicates
    assert json.loads(result.stdout)["duplicates"] == 2


def test_same_file_duplicate_update_and_delete(store: Store, tmp_path: Path) -> None:
    """Records refer to entries added earlier in the same file (still pending insert)."""
    doc = tmp_path / "same.xml"
    doc.write_text(
        "<queryResult><images>"
        '<image><id>n1</id><member id="1"/><fingerprints><md5>'
        + "a"
        * 32
        + "</md5></fingerprints></image>"
        '<image><id>n2</id><member id="1"/><fingerprints><md5>'
        + "a"
        * 32
        + "</md5></fingerprints></image>"
        '<image><id>n3</id><member id="1"/><fingerprints><md5>'
        + "b"
        * 32
        + "</md5></fingerprints></image>"
        '<image><id>n3</id><member id="1"/><classification>B1</classification>'
        "<fingerprints><md5>" + "b" * 32 + "</md5></fingerprints></image>"
        '<deletedImage><id>n1</id><member id="1"/></deletedImage>'
        "</images></queryResult>"
    )
    report = import_into(store, "same", doc, "ncmec-xml")
    assert (report["added"], report["duplicates"], report["updated"], report["deleted"]) == (
        2,
        1,
        1,
        1,
    )
    with store.session() as session:
        rows = entries_of(session, "same")
    assert [(r[5], r[1]) for r in rows] == [("n3", (("industry", "B1"),))]
