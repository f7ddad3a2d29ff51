"""What partners' files mean (issue 10, problems 1-8): categories and profiles, data
kept per fingerprint, order-independent deletions, watermarks, partner dates and
identities, valid exports, threatexchange/HMA formats, series and victim columns, and
exports that never ship unreviewed entries. Files are written here by hand from the
public descriptions of each format, with benign synthetic hashes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.exchange.tombstones import waiting_count
from ridgeline.lists.models import Entry
from ridgeline.store import Store
from ridgeline.timeutil import utcnow

BENIGN = b"a benign text file made in the test\n"
BENIGN_MD5 = hashlib.md5(BENIGN).hexdigest()
MD5_B = hashlib.md5(b"another benign file").hexdigest()
MD5_C = hashlib.md5(b"a third benign file").hexdigest()
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"

CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{}/$metadata#Media"


def cli(store: Store, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--db", store.url])
    return result.exit_code, result.stdout, result.stderr


def vics_doc(profile: str, media: list[dict[str, Any]]) -> bytes:
    return json.dumps({"@odata.context": CONTEXT.format(profile), "value": media}).encode()


def statuses(store: Store, name: str) -> dict[str | None, str]:
    """origin id -> status of the list's live entries."""
    with store.session() as session:
        hash_list = L.get_list(session, name)
        return {
            origin: status
            for origin, status in session.execute(
                select(Entry.origin_entry_id, Entry.status).where(
                    Entry.list_id == hash_list.id, Entry.deleted_at.is_(None)
                )
            )
        }


def matchable_md5s(store: Store, name: str) -> set[str]:
    with store.session() as session:
        views = L.read_entries(session, L.get_list(session, name), matchable_at=utcnow())
        return {v.signals["md5"] for v in views if "md5" in v.signals}


# --- 1: non-CSAM categories never become matchable block entries -------------------


def test_vics_category_0_and_4_never_match(store: Store, tmp_path: Path) -> None:
    doc = tmp_path / "national.json"
    doc.write_bytes(
        vics_doc(
            "US",
            [
                {"MediaID": 1, "Category": 0, "MD5": BENIGN_MD5.upper()},
                {"MediaID": 2, "Category": 4, "MD5": MD5_B.upper()},
                {"MediaID": 3, "Category": 1, "MD5": MD5_C.upper()},
            ],
        )
    )
    benign = tmp_path / "benign.txt"
    benign.write_bytes(BENIGN)
    assert cli(store, "lists", "create", "national")[0] == 0
    code, out, err = cli(
        store, "lists", "import", "national", str(doc), "--format", "vics", "--output", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["added"], report["not_listable"], report["reference"]) == (1, 2, 0)
    assert matchable_md5s(store, "national") == {MD5_C}
    code, out, err = cli(
        store, "match", "--list", "national", "--signal", "md5", "--format", "jsonl", BENIGN_MD5
    )
    assert code == 0, err
    assert [json.loads(line)["matches"] for line in out.splitlines() if line.strip()] == [[]]
    # `scan` of the files themselves: the Category 0 one is no match, Category 1 is.
    listed = tmp_path / "listed.txt"
    listed.write_bytes(b"a third benign file")
    code, out, err = cli(
        store, "scan", str(benign), str(listed), "--list", "national", "--format", "jsonl"
    )
    assert code == 0, err
    rows = {Path(r["path"]).name: r["matches"] for r in map(json.loads, out.splitlines())}
    assert rows["benign.txt"] == [] and rows["listed.txt"][0]["list"] == "national"

    # Kept for reference if asked: stored, never matchable.
    assert cli(store, "lists", "create", "ref")[0] == 0
    code, out, err = cli(
        store,
        "lists",
        "import",
        "ref",
        str(doc),
        "--format",
        "vics",
        "--not-listable",
        "reference",
        "--output",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["reference"] == 2
    assert statuses(store, "ref") == {"1": "reference", "2": "reference", "3": "confirmed"}
    assert matchable_md5s(store, "ref") == {MD5_C}


def test_not_csam_label_in_our_csv_is_not_listed(store: Store, tmp_path: Path) -> None:
    doc = tmp_path / "ours.csv"
    doc.write_text(
        f"md5,classifications,origin_entry_id\n{BENIGN_MD5},ridgeline:not-csam,a\n"
        f"{MD5_B},ridgeline:csam,b\n"
    )
    with store.session() as session:
        report = exchange.import_file(session, L.create_list(session, "o"), doc, "csv")
    assert (report.added, report.not_listable) == (1, 1)
    assert matchable_md5s(store, "o") == {MD5_B}


# --- 2: category schemes and profiles -----------------------------------------------


def test_vics_profiles_map_to_their_scheme_and_survive_round_trips(
    store: Store, tmp_path: Path
) -> None:
    for profile, scheme in (("UK", "vics-uk"), ("CA", "vics-ca")):
        doc = tmp_path / f"{profile}.json"
        doc.write_bytes(vics_doc(profile, [{"MediaID": 7, "Category": 1, "MD5": MD5_C}]))
        with store.session() as session:
            hash_list = L.create_list(session, profile)
            exchange.import_file(session, hash_list, doc, "vics")
            (view,) = L.read_entries(session, hash_list)
            assert [dict(c) for c in view.classifications] == [{"scheme": scheme, "label": "1"}]
            out = json.loads(exchange.export_list(session, hash_list, "vics"))
            assert f"/2.0.xml/{profile}/$metadata" in out["@odata.context"]
            assert out["value"][0]["Category"] == 1
            icse = exchange.export_list(session, hash_list, "icse").decode()
            assert f"{scheme}:1" in icse and "vics-us" not in icse
            # Asked for the US profile, a UK/CA code is not passed off as a US one.
            us = json.loads(exchange.export_list(session, hash_list, "vics", vics_profile="US"))
            assert "Category" not in us["value"][0]
        back = tmp_path / f"{profile}-back.json"
        with store.session() as session:
            back.write_bytes(exchange.export_list(session, L.get_list(session, profile), "vics"))
            again = L.create_list(session, profile + "-again")
            exchange.import_file(session, again, back, "vics")
            (view,) = L.read_entries(session, again)
            assert [dict(c) for c in view.classifications] == [{"scheme": scheme, "label": "1"}]


# --- 8: exports carry only listable entries and say what they left out -------------


def test_export_of_review_list_ships_no_pending_entries(store: Store, tmp_path: Path) -> None:
    with store.session() as session:
        reviewed = L.create_list(session, "reviewed", review_quorum=3)
        L.add_entry(session, reviewed, {"md5": BENIGN_MD5}, origin_entry_id="p1")
        confirmed = L.add_entry(session, reviewed, {"md5": MD5_B}, origin_entry_id="c1")
        L.set_entry_status(session, confirmed, "confirmed", actor="t")
        L.add_entry(session, reviewed, {"pdq": PDQ}, origin_entry_id="c2")
    assert statuses(store, "reviewed")["p1"] == "pending"
    # StopNCII, threatexchange and HMA carry no image MD5s (checked below).
    no_image_md5 = ("stopncii", "te-lines", "te-csv", "hma-json")
    for fmt in [f for f in exchange.EXPORT_FORMATS if f not in no_image_md5]:
        out = tmp_path / f"reviewed.{fmt}"
        code, _, err = cli(store, "lists", "export", "reviewed", "--format", fmt, "--out", str(out))
        assert code == 0, err
        assert "not written: 2 (status pending)" in err  # p1 and the unconfirmed PDQ entry
        assert "wrote 1 entries" in err
        assert BENIGN_MD5 not in out.read_text().lower()
        assert cli(store, "lists", "create", f"open-{fmt}")[0] == 0
        code, _, err = cli(store, "lists", "import", f"open-{fmt}", str(out), "--format", fmt)
        assert code == 0, err
        assert matchable_md5s(store, f"open-{fmt}") == {MD5_B}
    # Asked for, pending entries are written, and the formats that cannot carry a
    # PDQ-only entry say so.
    out = tmp_path / "all.json"
    code, _, err = cli(
        store,
        "lists",
        "export",
        "reviewed",
        "--format",
        "vics",
        "--status",
        "pending,confirmed",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert "wrote 2 entries" in err
    assert "not written: 1 (no hash the format carries (pdq))" in err
    with store.session() as session:
        result = exchange.export_report(
            session, L.get_list(session, "reviewed"), "stopncii", statuses=["pending", "confirmed"]
        )
    assert result.written == 1  # the PDQ entry; image MD5s are not StopNCII's
    assert result.not_carried == {"image MD5 (StopNCII carries video MD5s only)": 2}
    assert len(json.loads(result.data)["hashRecords"]) == 1


# --- 3: no data loss on import ----------------------------------------------------

NCMEC_NS = "https://hashsharing.ncmec.org/hashsharing/v2"


def ncmec_doc(body: str) -> bytes:
    return f'<?xml version="1.0"?><queryResult xmlns="{NCMEC_NS}">{body}</queryResult>'.encode()


def test_ncmec_unknown_and_bad_fingerprints_keep_the_rest(store: Store, tmp_path: Path) -> None:
    doc = tmp_path / "page.xml"
    doc.write_bytes(
        ncmec_doc(
            "<images><image><id>e1</id><member id='7'>Member Seven</member>"
            "<timestamp>2025-03-01T10:00:00Z</timestamp><fingerprints>"
            f"<md5>{MD5_B}</md5><tmk-pdqf>AAAA</tmk-pdqf><videntifier>BBBB</videntifier>"
            "<netclean>CCCC</netclean></fingerprints></image>"
            "<image><id>e2</id><member id='7'/><fingerprints>"
            f"<md5>{MD5_C}</md5><sha1>not-a-sha1</sha1></fingerprints></image></images>"
        )
    )
    with store.session() as session:
        hash_list = L.create_list(session, "n")
        report = exchange.import_file(session, hash_list, doc, "ncmec-xml")
        assert report.added == 2
        assert [e["position"] for e in report.errors] == ["/queryResult/images[1]/image[2]"]
        assert "skipped; the rest kept" in report.errors[0]["error"]
        out = exchange.export_list(session, hash_list, "ncmec-xml").decode()
    assert matchable_md5s(store, "n") == {MD5_B, MD5_C}
    assert "<tmk-pdqf>AAAA</tmk-pdqf>" in out and "<netclean>CCCC</netclean>" in out


def test_deletion_before_its_older_entry_wins(store: Store, tmp_path: Path) -> None:
    doc = tmp_path / "page.xml"
    doc.write_bytes(
        ncmec_doc(
            "<images><deletedImage><id>e1</id><member id='7'/>"
            "<timestamp>2025-05-01T00:00:00Z</timestamp></deletedImage>"
            "<image><id>e1</id><member id='7'/><timestamp>2025-04-01T00:00:00Z</timestamp>"
            f"<fingerprints><md5>{MD5_B}</md5></fingerprints></image>"
            "<image><id>e2</id><member id='7'/><timestamp>2025-06-01T00:00:00Z</timestamp>"
            f"<fingerprints><md5>{MD5_C}</md5></fingerprints></image>"
            "<deletedImage><id>e2</id><member id='7'/>"
            "<timestamp>2025-05-15T00:00:00Z</timestamp></deletedImage></images>"
        )
    )
    with store.session() as session:
        report = exchange.import_file(session, L.create_list(session, "d"), doc, "ncmec-xml")
    assert (report.added, report.deleted, report.deletions_unmatched) == (2, 1, 0)
    # e1 was deleted after it was listed; e2 was listed again after its deletion.
    assert matchable_md5s(store, "d") == {MD5_C}


def test_deletion_in_an_earlier_file_waits_for_its_entry(store: Store, tmp_path: Path) -> None:
    """Across files (or feed pages) too: a deletion that came first waits for its entry
    and wins by timestamp; a newer entry wins over an older deletion."""
    first, second = tmp_path / "first.xml", tmp_path / "second.xml"
    first.write_bytes(
        ncmec_doc(
            "<images><deletedImage><id>e1</id><member id='7'/>"
            "<timestamp>2025-05-01T00:00:00Z</timestamp></deletedImage>"
            "<deletedImage><id>e2</id><member id='7'/>"
            "<timestamp>2025-05-01T00:00:00Z</timestamp></deletedImage></images>"
        )
    )
    second.write_bytes(
        ncmec_doc(
            "<images><image><id>e1</id><member id='7'/><timestamp>2025-04-01T00:00:00Z"
            f"</timestamp><fingerprints><md5>{MD5_B}</md5></fingerprints></image>"
            "<image><id>e2</id><member id='7'/><timestamp>2025-06-01T00:00:00Z</timestamp>"
            f"<fingerprints><md5>{MD5_C}</md5></fingerprints></image></images>"
        )
    )
    with store.session() as session:
        hash_list = L.create_list(session, "w")
        before = exchange.import_file(session, hash_list, first, "ncmec-xml")
        assert before.deletions_unmatched == 2
        assert waiting_count(session, hash_list) == 2
    with store.session() as session:
        hash_list = L.get_list(session, "w")
        after = exchange.import_file(session, hash_list, second, "ncmec-xml")
        assert (after.added, after.deleted) == (2, 1)
        assert waiting_count(session, hash_list) == 0  # both settled
        tombstoned = exchange.export_report(session, hash_list, "ncmec-xml", include_deleted=True)
    # e1 (older than its deletion) is gone; e2 (newer) stays.
    assert matchable_md5s(store, "w") == {MD5_C}
    assert tombstoned.deletions == 1
    assert b"<deletedImage>" in tombstoned.data and b"2025-05-01T00:00:00Z" in tombstoned.data


def test_since_last_never_skips_an_unseen_entry_of_an_unordered_page(
    store: Store, tmp_path: Path
) -> None:
    page1, page2 = tmp_path / "p1.xml", tmp_path / "p2.xml"
    page1.write_bytes(
        ncmec_doc(
            "<images><image><id>e1</id><member id='7'/><timestamp>2025-06-01T00:00:00Z"
            f"</timestamp><fingerprints><md5>{MD5_B}</md5></fingerprints></image></images>"
        )
    )
    page2.write_bytes(
        ncmec_doc(
            "<images><image><id>e2</id><member id='7'/><timestamp>2025-01-01T00:00:00Z"
            f"</timestamp><fingerprints><md5>{MD5_C}</md5></fingerprints></image></images>"
        )
    )
    assert cli(store, "lists", "create", "w")[0] == 0
    for page in (page1, page2):
        code, _, err = cli(store, "lists", "import", "w", str(page), "--since", "last")
        assert code == 0, err
    assert matchable_md5s(store, "w") == {MD5_B, MD5_C}


def test_vics_alternative_hashes_lenient_offsets_and_utf16(store: Store, tmp_path: Path) -> None:
    media = [
        {
            "MediaID": 5,
            "Category": 1,
            "MD5": MD5_B,
            "DateUpdated": "2025-02-03T04:05:06+01:00Z",
            "AlternativeHashes": [
                {"HashName": "PDQ", "HashValue": PDQ},
                {"HashName": "SHA256", "HashValue": "ab" * 32},
                {"HashName": "FutureHash", "HashValue": "zz"},
            ],
        }
    ]
    for encoding in ("utf-16-le", "utf-16-be"):
        bom = b"\xff\xfe" if encoding.endswith("le") else b"\xfe\xff"
        doc = tmp_path / f"{encoding}.json"
        doc.write_bytes(bom + vics_doc("US", media).decode().encode(encoding))
        with store.session() as session:
            hash_list = L.create_list(session, encoding)
            report = exchange.import_file(session, hash_list, doc, "vics")
            assert (report.added, report.errors) == (1, [])
            (view,) = L.read_entries(session, hash_list)
            assert dict(view.signals) == {"md5": MD5_B, "pdq": PDQ, "sha256": "ab" * 32}
            out = json.loads(exchange.export_list(session, hash_list, "vics"))
    (item,) = out["value"]
    assert item["DateUpdated"] == "2025-02-03T03:05:06Z"  # the partner's date, not ours
    assert {"HashName": "PDQ", "HashValue": PDQ} in item["AlternativeHashes"]
    assert {"HashName": "FutureHash", "HashValue": "zz"} in item["AlternativeHashes"]


# --- 4: partners' dates and identities are kept; ours is configurable --------------


def test_partner_dates_kept_and_member_identity_configurable(store: Store, tmp_path: Path) -> None:
    doc = tmp_path / "page.xml"
    doc.write_bytes(
        ncmec_doc(
            "<images><image><id>e1</id><member id='7'>Member Seven</member>"
            "<timestamp>2024-11-05T06:07:08Z</timestamp>"
            f"<fingerprints><md5>{MD5_B}</md5></fingerprints></image></images>"
        )
    )
    icse = tmp_path / "icse.csv"
    icse.write_text(f"ID;MD5;Added\ni1;{MD5_C};2023-09-10T11:12:13Z\n")
    stop = tmp_path / "stop.json"
    stop.write_text(
        json.dumps(
            {
                "hashRecords": [
                    {
                        "signalType": "ImagePDQ",
                        "hashValue": PDQ,
                        "hashStatus": "Active",
                        "lastModtimestamp": 1700000000,
                    }
                ]
            }
        )
    )
    with store.session() as session:
        hash_list = L.create_list(session, "dates", owner="Our Org")
        exchange.import_file(session, hash_list, doc, "ncmec-xml")
        exchange.import_file(session, hash_list, icse, "icse")
        exchange.import_file(session, hash_list, stop, "stopncii")
        L.add_entry(session, hash_list, {"md5": BENIGN_MD5})
    out = tmp_path / "out.xml"
    code, _, err = cli(
        store,
        "lists",
        "export",
        "dates",
        "--format",
        "ncmec-xml",
        "--out",
        str(out),
        "--member-id",
        "4242",
        "--member-name",
        "Example Hotline",
    )
    assert code == 0, err
    xml = out.read_text()
    assert f'xmlns="{NCMEC_NS}"' in xml
    assert "<timestamp>2024-11-05T06:07:08Z</timestamp>" in xml
    assert '<member id="7">Member Seven</member>' in xml
    assert '<member id="4242">Example Hotline</member>' in xml
    with store.session() as session:
        hash_list = L.get_list(session, "dates")
        icse_out = exchange.export_list(session, hash_list, "icse").decode()
        stop_out = json.loads(exchange.export_list(session, hash_list, "stopncii"))
    assert "2023-09-10T11:12:13Z" in icse_out
    assert stop_out["hashRecords"][0]["lastModtimestamp"] == 1700000000


# --- 5: exports valid for each format's readers ------------------------------------


def test_vics_export_types(store: Store) -> None:
    with store.session() as session:
        hash_list = L.create_list(session, "types")
        L.add_entry(session, hash_list, {"md5": MD5_B}, origin_entry_id="abc-1")
        L.add_entry(session, hash_list, {"pdq": PDQ})
        v20 = json.loads(exchange.export_list(session, hash_list, "vics", vics_cases=True))
        v13 = json.loads(exchange.export_list(session, hash_list, "vics", vics_version="1.3"))
    for doc in (v20, v13):
        (case,) = doc["value"]
        assert "CaseID" not in case  # no case: no "CaseID": null
        (media,) = case["Media"]  # the PDQ-only entry is not written without a hash
        assert isinstance(media["MediaID"], int) and media["MD5"] == MD5_B.upper()
    assert v13["odata.metadata"].endswith("#Cases")


def test_stopncii_withdrawal_clears_cases_and_feedback(store: Store, tmp_path: Path) -> None:
    first, withdraw = tmp_path / "a.json", tmp_path / "b.json"
    record = {"signalType": "ImagePDQ", "hashValue": PDQ, "lastModtimestamp": 1700000000}
    first.write_text(
        json.dumps(
            {
                "hashRecords": [
                    record
                    | {
                        "hashStatus": "Active",
                        "caseNumbers": {"c1": "Active"},
                        "CSPFeedbacks": [{"x": 1}],
                    }
                ]
            }
        )
    )
    withdraw.write_text(
        json.dumps(
            {"hashRecords": [record | {"hashStatus": "Withdrawn", "lastModtimestamp": 1700000500}]}
        )
    )
    with store.session() as session:
        hash_list = L.create_list(session, "ncii")
        exchange.import_file(session, hash_list, first, "stopncii")
        assert exchange.import_file(session, hash_list, withdraw, "stopncii").deleted == 1
        doc = json.loads(exchange.export_list(session, hash_list, "stopncii", include_deleted=True))
    (out,) = doc["hashRecords"]
    assert out["hashStatus"] == "Withdrawn"
    assert out["caseNumbers"] == {} and out["CSPFeedbacks"] == []
    assert out["lastModtimestamp"] == 1700000500


# --- 7: series, victim identified, case numbers and member names are columns -------


def test_series_victim_case_and_member_are_shown_and_filtered(store: Store, tmp_path: Path) -> None:
    vics = tmp_path / "cases.json"
    vics.write_text(
        json.dumps(
            {
                "@odata.context": CONTEXT.format("US").replace("#Media", "#Cases"),
                "value": [
                    {
                        "CaseID": 77,
                        "Media": [
                            {
                                "MediaID": 1,
                                "Category": 1,
                                "MD5": MD5_B,
                                "Series": "Sunflower",
                                "VictimIdentified": True,
                            },
                            {
                                "MediaID": 2,
                                "Category": 1,
                                "MD5": MD5_C,
                                "Series": "Other",
                                "VictimIdentified": "false",
                            },
                        ],
                    }
                ],
            }
        )
    )
    ncmec = tmp_path / "n.xml"
    ncmec.write_bytes(
        ncmec_doc(
            "<images><image><id>e1</id><member id='7'>Member Seven</member>"
            f"<fingerprints><md5>{BENIGN_MD5}</md5></fingerprints></image></images>"
        )
    )
    assert cli(store, "lists", "create", "meta")[0] == 0
    for path, fmt in ((vics, "vics"), (ncmec, "ncmec-xml")):
        code, _, err = cli(store, "lists", "import", "meta", str(path), "--format", fmt)
        assert code == 0, err

    def ls(*args: str) -> list[dict[str, Any]]:
        code, out, err = cli(store, "lists", "entries", "ls", "meta", "--format", "jsonl", *args)
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    (sun,) = ls("--series", "Sunflower")
    assert sun["signals"] == {"md5": MD5_B} and sun["victim_identified"] is True
    assert sun["case_numbers"] == ["77"]
    assert [r["signals"]["md5"] for r in ls("--victim-not-identified")] == [MD5_C]
    assert [r["signals"]["md5"] for r in ls("--victim-identified")] == [MD5_B]
    for member in ("Member Seven", "7"):
        (row,) = ls("--member", member)
        assert row["signals"] == {"md5": BENIGN_MD5} and row["member"] == "Member Seven"
    code, out, err = cli(store, "lists", "entries", "show", str(sun["id"]), "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["series"], shown["victim_identified"]) == ("Sunflower", True)
    code, out, err = cli(store, "lists", "entries", "ls", "meta")  # the table has the columns
    assert code == 0, err
    assert "series" in out and "Sunflower" in out


# --- 5 and 6: threatexchange's own parsers read our exports; its formats both ways --


def test_threatexchange_parsers_accept_ncmec_and_stopncii_exports(store: Store) -> None:
    import enum
    import xml.etree.ElementTree as ET
    from io import BytesIO

    import dacite
    from threatexchange.exchanges.clients.ncmec.hash_api import GetEntriesResponse, _XMLWrapper
    from threatexchange.exchanges.clients.stopncii.api import FetchHashesResponse

    with store.session() as session:
        hash_list = L.create_list(session, "te")
        L.add_entry(session, hash_list, {"md5": MD5_B, "pdq": PDQ})
        gone = L.add_entry(session, hash_list, {"pdq": "0f" * 32})
        L.delete_entry(session, gone, actor="t", reason="test")
        xml = exchange.export_list(session, hash_list, "ncmec-xml", include_deleted=True)
        ncii = exchange.export_list(session, hash_list, "stopncii", include_deleted=True)
    it = ET.iterparse(BytesIO(xml))  # as threatexchange's NCMEC client reads a response
    for _, el in it:
        el.tag = el.tag.partition("}")[2] or el.tag
    parsed = GetEntriesResponse.from_xml(_XMLWrapper(it.root), 0)
    assert [(u.deleted, u.member_id, u.fingerprints.get("md5")) for u in parsed.updates] == [
        (False, 0, MD5_B),
        (True, 0, None),
    ]
    assert parsed.max_timestamp > 0
    doc = json.loads(ncii)
    response = dacite.from_dict(
        FetchHashesResponse,
        {**doc, "hashRecords": []},
        config=dacite.Config(cast=[enum.Enum, set]),
    )
    from threatexchange.exchanges.clients.stopncii.api import StopNCIIHashRecord

    records = [
        dacite.from_dict(StopNCIIHashRecord, r, config=dacite.Config(cast=[enum.Enum, set]))
        for r in doc["hashRecords"]
    ]
    assert response.count == 2
    assert sorted(r.hashStatus.value for r in records) == ["Active", "Deleted"]


def test_threatexchange_lines_and_dataset_csv_both_ways(store: Store, tmp_path: Path) -> None:
    from threatexchange.exchanges.impl.file_api import (
        FileCollaborationConfig,
        LocalFileSignalExchangeAPI,
    )

    lines = tmp_path / "te.txt"
    lines.write_text(f"pdq {PDQ}\nvideo_md5 {MD5_B}\nurl https://example.com/\n")
    dataset = tmp_path / "dataset.csv"
    dataset.write_text(
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{'0f' * 32},Sample,POSITIVE_CLASS,a b\n"
        f"video_md5,{MD5_C},Sample,NEGATIVE_CLASS,\n"
    )
    with store.session() as session:
        hash_list = L.create_list(session, "tel")
        r1 = exchange.import_file(session, hash_list, lines, "te-lines")
        r2 = exchange.import_file(session, hash_list, dataset, "te-csv")
        assert (r1.added, [e["position"] for e in r1.errors]) == (2, ["line 3"])
        assert (r2.added, r2.not_listable) == (1, 1)  # a negative opinion is not listed
        out_lines = exchange.export_list(session, hash_list, "te-lines")
        out_csv = exchange.export_list(session, hash_list, "te-csv")
    assert matchable_md5s(store, "tel") == {MD5_B}
    exported = tmp_path / "out.txt"
    exported.write_bytes(out_lines)
    collab = FileCollaborationConfig(name="ours", filename=str(exported), signal_type=None)
    api = LocalFileSignalExchangeAPI.for_collab(collab)
    (delta,) = list(api.fetch_iter([], None))
    assert set(delta.updates) == {("pdq", PDQ), ("video_md5", MD5_B), ("pdq", "0f" * 32)}
    back = tmp_path / "back.csv"
    back.write_bytes(out_csv)
    with store.session() as session:
        again = L.create_list(session, "tel-again")
        report = exchange.import_file(session, again, back, "te-csv")
    assert (report.added, report.errors) == (3, [])


def test_hma_bank_content_both_ways(store: Store, tmp_path: Path) -> None:
    """HMA's curation API answers `{"id", "signals"}` and takes a bare signals object;
    our export is one content a line that threatexchange's signal types accept."""
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    bank = tmp_path / "bank.jsonl"
    bank.write_text(
        json.dumps({"id": 1234, "signals": {"pdq": PDQ, "video_md5": MD5_B}})
        + "\n"
        + json.dumps({"pdq": "0f" * 32})
        + "\n"
        + json.dumps({"id": 9, "signals": {"url": "https://example.com/"}})
        + "\n"
    )
    array = tmp_path / "bank.json"
    array.write_text(json.dumps([{"id": 5, "signals": {"video_md5": MD5_C}}]))
    with store.session() as session:
        hash_list = L.create_list(session, "hma")
        report = exchange.import_file(session, hash_list, bank, "hma-json")
        assert report.added == 2 and [e["position"] for e in report.errors] == ["line 3"]
        assert exchange.import_file(session, hash_list, array, "hma-json").added == 1
        result = exchange.export_report(session, hash_list, "hma-json")
    contents = [json.loads(line) for line in result.data.decode().splitlines()]
    assert result.written == 3
    by_type = {k: v for c in contents for k, v in c["signals"].items() if k == "pdq"}
    assert set(by_type.values()) <= {PDQ, "0f" * 32}
    names = {PdqSignal.get_name(): PdqSignal, VideoMD5Signal.get_name(): VideoMD5Signal}
    seen = set()
    for content in contents:
        assert isinstance(content["id"], int)
        for kind, value in content["signals"].items():
            assert names[kind].validate_signal_str(value) == value  # HMA's own check
            seen.add((kind, value))
    assert seen == {("pdq", PDQ), ("video_md5", MD5_B), ("pdq", "0f" * 32), ("video_md5", MD5_C)}
    back = tmp_path / "back.jsonl"
    back.write_bytes(result.data)
    with store.session() as session:
        again = L.create_list(session, "hma-again")
        report = exchange.import_file(session, again, back, "hma-json")
        assert (report.added, report.errors) == (3, [])
        md5_entries = exchange.export_report(session, again, "te-lines").data.decode()
    assert f"video_md5 {MD5_B}" in md5_entries and f"video_md5 {MD5_C}" in md5_entries


def test_hma_content_as_its_get_answer_keeps_bank_and_disables(
    store: Store, tmp_path: Path
) -> None:
    """`GET /c/bank/<bank>/content/<id>?include_signals=true` answers the content's config
    (HMA's BankContentResponse): `bank` is an object, `disable_until_ts` is 1 when
    enabled, 0 when disabled, else the time it is disabled until. A content HMA does
    not match must not become a matchable block entry."""
    far = int(utcnow().timestamp()) + 86_400

    def content(i: int, md5: str, disabled: int) -> dict[str, Any]:
        return {
            "id": i,
            "disable_until_ts": disabled,
            "collab_metadata": {"EXAMPLE_COLLAB": [f"key-{i}"]},
            "original_media_uri": None,
            "bank": {"name": "EXAMPLE_BANK", "matching_enabled_ratio": 1.0},
            "signals": {"video_md5": md5},
        }

    bank = tmp_path / "contents.json"
    bank.write_text(
        json.dumps([content(1, BENIGN_MD5, 1), content(2, MD5_B, 0), content(3, MD5_C, far)])
    )
    with store.session() as session:
        hash_list = L.create_list(session, "hma-get")
        report = exchange.import_file(session, hash_list, bank, "hma-json")
        assert (report.added, report.not_listable, report.errors) == (1, 2, [])
        views = L.read_entries(session, hash_list)
        assert [(v.origin_entry_id, v.origin_list) for v in views] == [("1", "EXAMPLE_BANK")]
        again = L.create_list(session, "hma-get-kept")
        report = exchange.import_file(session, again, bank, "hma-json", not_listable="reference")
        assert (report.added, report.reference) == (3, 2)  # two kept as reference
    assert matchable_md5s(store, "hma-get") == {BENIGN_MD5}
    assert matchable_md5s(store, "hma-get-kept") == {BENIGN_MD5}
