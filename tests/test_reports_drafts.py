"""Report drafts from matches, and the whole way from `ridgeline scan` to a finished
report on the local CyberTipline server, from the CLI."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from cybertip_server import LocalCyberTip
from ridgeline import lists as L
from ridgeline.evidence import EvidenceKey
from ridgeline.reports import core, drafts, samples
from ridgeline.reports import documents as docs
from ridgeline.scan.actions import set_list_actions
from ridgeline.store import Store

KEY = EvidenceKey(bytes(range(32)))
DATA = b"benign matched bytes"
HASHES = {
    "md5": hashlib.md5(DATA).hexdigest(),
    "sha1": hashlib.sha1(DATA).hexdigest(),
    "sha256": hashlib.sha256(DATA).hexdigest(),
    "pdq": "f" * 64,
}
UPLOAD = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)


def matched(*labels: str, data: bytes | None = DATA) -> drafts.MatchedFile:
    return drafts.MatchedFile(
        name="upload.jpg",
        hashes=HASHES,
        matches=tuple(
            drafts.MatchedEntry("known", i + 1, "md5", 0, (("industry", label), ("uk", "A")))
            for i, label in enumerate(labels)
        ),
        data=data,
        uploaded_at=UPLOAD,
        viewed_by_esp=True,
    )


def test_draft_carries_files_hashes_matches_and_context(sqlite_store: Store) -> None:
    context = drafts.UploadContext(
        user_id="uid-42",
        screen_name="uploader42",
        emails=("uploader@example.com",),
        ips=(
            drafts.IpEvent("192.0.2.10", "Upload", UPLOAD),
            drafts.IpEvent("198.51.100.2", "Login"),
        ),
        esp_service="Example Photos",
    )
    with sqlite_store.session() as s:
        row = drafts.draft_from_matches(
            s, drafts.DraftInput([matched("A1", "A1")], context), KEY, actor="scan"
        )
        report = core.report_of(row)
        details = core.details_of(row.files[0])
        problems = {p["path"] for p in row.problems}
        rid = row.id
        assert core.file_bytes(row.files[0], KEY) == DATA
        assert row.origin["matches"][0]["entries"][0]["classifications"][0] == {
            "scheme": "industry",
            "label": "A1",
        }
    assert details is not None
    assert details.industry_classification == "A1"
    assert {(h.hash_type, h.value) for h in details.original_file_hashes} == {
        ("MD5", HASHES["md5"]),
        ("SHA1", HASHES["sha1"]),
        ("SHA256", HASHES["sha256"]),
        ("PDQ", HASHES["pdq"]),
    }
    assert (
        details.ip_capture_event is not None and details.ip_capture_event.ip_address == "192.0.2.10"
    )
    assert details.file_viewed_by_esp is True and details.uploaded_to_esp_timestamp == UPLOAD
    (person,) = report.persons_reported
    assert person.esp_identifier == "uid-42" and person.screen_name == "uploader42"
    assert [e.value for e in person.person.emails] == ["uploader@example.com"]  # type: ignore[union-attr]
    assert [e.event_name for e in person.ip_capture_events] == ["Upload", "Login"]
    assert report.incident_summary.incident_date_time == UPLOAD  # type: ignore[union-attr]
    # nothing is guessed: the operator adds the reporter
    assert problems == {"report/reporter"}
    with sqlite_store.session() as s:
        edited = core.edit_report(s, rid, {"reporter": docs.to_json(samples.reporter())})
        assert edited.state == "validated"


def test_disagreeing_classifications_are_listed_not_chosen(sqlite_store: Store) -> None:
    with sqlite_store.session() as s:
        row = drafts.draft_from_matches(
            s, drafts.DraftInput([matched("A1", "B2")], reporter=samples.reporter()), KEY
        )
        details = core.details_of(row.files[0])
    assert details is not None and details.industry_classification is None
    assert "disagree on the industry classification: A1, B2" in details.additional_info[-1]


def test_batched_and_hash_only_drafts(sqlite_store: Store) -> None:
    draft = drafts.DraftInput([matched("A2", data=None)], reporter=samples.reporter(), batched=True)
    with sqlite_store.session() as s:
        row = drafts.draft_from_matches(s, draft, None)
        report = core.report_of(row)
        assert row.files == [] and row.state == "validated"
    assert (
        report.batched_report is not None and report.batched_report.reason == "VIRAL_POTENTIAL_MEME"
    )
    assert HASHES["sha256"] in (report.additional_info or "")


def test_a_hit_stores_the_digests_of_its_own_bytes(store: Store, tmp_path: Path) -> None:
    """The sink takes md5/sha1/sha256 from the hit's signals only where they are the
    bytes' own (the caller hashed these bytes, or their sha256 is the signals'); signals
    of other content never reach the file row, and a scanned file that changed since
    the scan is not attached."""
    from sqlalchemy import select

    from ridgeline.reports.models import CyberTipFile
    from ridgeline.scan.actions import ReportRequest

    sink = drafts.ReportSink(KEY, actor="t")
    other = b"some other content"
    on_disk = tmp_path / "seen.bin"
    on_disk.write_bytes(DATA)
    cases = [  # (data, path, hashed, signals)
        (DATA, None, True, HASHES),  # an upload: its signals are its own
        (DATA, None, False, HASHES),  # sha256 matches: md5/sha1 taken
        (other, None, False, HASHES),  # somebody else's signals: computed here
        (DATA, None, False, {"md5": HASHES["md5"]}),  # incomplete: computed here
        (None, str(on_disk), False, HASHES),  # a scanned file, still the same
    ]
    ids = []
    with store.transaction() as conn:
        for data, path, hashed, signals in cases:
            request = ReportRequest(name="f.bin", path=path, sha256=signals.get("sha256"),
                                    signals=dict(signals), matches=[], data=data,
                                    hashed=hashed)  # fmt: skip
            ids.append(sink(conn, request))
    on_disk.write_bytes(other)  # changed since the scan: not attached
    with store.transaction() as conn:
        changed = sink(conn, ReportRequest(name="f.bin", path=str(on_disk),
                                           sha256=HASHES["sha256"], signals=dict(HASHES),
                                           matches=[]))  # fmt: skip
    with store.session() as s:
        for report_id, (data, _, _, _) in zip(ids, cases, strict=True):
            f = s.scalars(select(CyberTipFile).where(CyberTipFile.report_id == report_id)).one()
            content = DATA if data is None else data
            assert (f.md5, f.sha1, f.sha256) == (
                hashlib.md5(content).hexdigest(),
                hashlib.sha1(content).hexdigest(),
                hashlib.sha256(content).hexdigest(),
            )
            assert core.file_bytes(f, KEY) == content
        assert s.scalars(select(CyberTipFile).where(CyberTipFile.report_id == changed)).all() == []


def test_a_report_document_is_validated_once_unless_its_time_is_to_come(store: Store) -> None:
    """Drafts that carry one report document store the same rows whether it was
    validated and encoded for them or for an earlier draft; a document whose incident
    time is still in the future is validated again (it becomes valid with time)."""
    report = samples.minimal_report()
    with store.transaction() as conn:
        ids = [core.insert_report(conn, report, [], KEY, actor="t", origin={"n": 1})
               for _ in range(2)]  # fmt: skip
    with store.session() as s:
        first, second = (core.get_report(s, i) for i in ids)
        assert (first.document, first.problems, first.state) == (
            second.document, second.problems, second.state
        )  # fmt: skip
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    summary = dataclasses.replace(report.incident_summary, incident_date_time=when)
    # a document of its own (kept parts are shared by the process's drafts)
    later = dataclasses.replace(report, incident_summary=summary, additional_info=uuid.uuid4().hex)
    hour = dt.timedelta(hours=1)
    early = core._report_part(later, when - hour, None)
    assert any("in the future" in p.message for p in early.problems)
    assert not any(
        "in the future" in p.message for p in core._report_part(later, when + hour, None).problems
    )
    assert core._report_part(later, when + 2 * hour, None) is core._report_part(later, when, None)


def test_hashes_from_signals() -> None:
    signals = {"md5": "a" * 32, "pdq": {"hash": "b" * 64, "quality": 90}, "vpdq": ["x"]}
    assert drafts.hashes_from_signals(signals) == {"md5": "a" * 32, "pdq": "b" * 64}


def test_from_scan_to_finished_report_on_the_cli(tmp_path: Path, db_path: str) -> None:
    """A provider: scan a folder (its report action makes the CyberTipline draft),
    add who reports and when, file it on the (local) test server."""
    tree = tmp_path / "uploads"
    tree.mkdir()
    (tree / "match.bin").write_bytes(DATA)
    (tree / "other.bin").write_bytes(b"unrelated benign bytes")
    store = Store.open(db_path)
    with store.session() as s:
        hl = L.create_list(s, "known")
        L.add_entry(
            s, hl, {"md5": HASHES["md5"]}, classifications=[{"scheme": "industry", "label": "B1"}]
        )
        set_list_actions(s, "known", ["flag", "report"])
    store.close()
    exe = str(Path(sys.executable).parent / "ridgeline")
    with LocalCyberTip() as server:
        env = {
            **os.environ,
            "RIDGELINE_DB": db_path,
            "RIDGELINE_EVIDENCE_KEY": base64.b64encode(bytes(range(32))).decode(),
            "RIDGELINE_CYBERTIP_USERNAME": server.username,
            "RIDGELINE_CYBERTIP_PASSWORD": server.password,
        }

        def ridgeline(*args: str) -> str:
            done = subprocess.run(
                [exe, *args], env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        rows = [
            json.loads(line)
            for line in ridgeline("scan", str(tree), "--format", "jsonl").splitlines()
        ]
        hit = next(r for r in rows if r.get("path", "").endswith("match.bin"))
        # the scan's report action made the CyberTipline draft itself
        created = {"id": next(a["report_id"] for a in hit["actions"] if a["action"] == "report")}
        draft = json.loads(ridgeline("reports", "show", str(created["id"]), "--format", "json"))
        assert draft["state"] == "draft" and draft["files"][0]["md5"] == HASHES["md5"]
        missing = {p["path"] for p in draft["problems"] if p["severity"] == "error"}
        assert any(p.startswith("report/reporter") for p in missing), missing
        # the operator completes it: who reports, when it happened (a JSON merge patch)
        patch = tmp_path / "complete.json"
        patch.write_text(
            json.dumps(
                {
                    "incidentSummary": {"incidentDateTime": "2026-02-01T09:00:00Z"},
                    "reporter": docs.to_json(samples.reporter()),
                }
            )
        )
        edited = json.loads(
            ridgeline("reports", "edit", str(created["id"]), str(patch), "--format", "json")
        )
        assert edited["state"] == "validated", edited
        rid = str(created["id"])
        filed = json.loads(
            ridgeline("reports", "file", rid, "--endpoint", server.base, "--format", "json")
        )
        assert filed["state"] == "finished"
        remote = server.reports[filed["reportId"]]
        (stored,) = remote.files.values()
        assert stored.md5 == HASHES["md5"] and stored.name == "match.bin"
        assert stored.details is not None
        sent = docs.file_details_from_xml(stored.details)
        assert sent.industry_classification == "B1" and sent.report_id == filed["reportId"]
        shown = json.loads(ridgeline("reports", "show", rid, "--format", "json"))
        assert shown["reportId"] == filed["reportId"] and shown["fileIds"] == [stored.file_id]
        assert shown["origin"]["source"] == "scan" and shown["origin"]["path"].endswith("match.bin")


def test_from_scan_converts_a_draft_row_of_an_older_version(tmp_path: Path, db_path: str) -> None:
    """Report drafts an earlier Ridgeline's scan stored as rows (`report_drafts`) still
    become CyberTipline drafts with `ridgeline reports from-scan`."""
    from click.testing import CliRunner

    from ridgeline.cli import main
    from ridgeline.scan.models import ReportDraft

    seen = tmp_path / "seen.bin"
    seen.write_bytes(DATA)
    store = Store.open(db_path)
    with store.session() as s:
        row = ReportDraft(
            status="draft",
            path=str(seen),
            sha256=HASHES["sha256"],
            signals={"md5": HASHES["md5"], "sha256": HASHES["sha256"]},
            matches=[{"list": "known", "entry_id": 3, "signal": "md5", "distance": 0,
                      "classifications": [{"scheme": "industry", "label": "B2"}]}],
            context={"source": "scan", "run_id": 1},
        )  # fmt: skip
        s.add(row)
        s.flush()
        legacy = row.id
    key_file = tmp_path / "k"
    key_file.write_text(base64.b64encode(bytes(range(32))).decode())
    res = CliRunner().invoke(
        main,
        ["reports", "from-scan", str(legacy), "--user-id", "uid-9", "--key-file", str(key_file),
         "--db", db_path, "--format", "json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with store.session() as s:
        made = core.get_report(s, json.loads(res.stdout)["id"])
        assert core.file_bytes(made.files[0], KEY) == DATA
        details = core.details_of(made.files[0])
        assert details is not None and details.industry_classification == "B2"
        assert made.origin["scan_draft_id"] == legacy
    store.close()


def test_a_hit_writes_the_rows_a_draft_writes(store: Store) -> None:
    """`insert_report` (a hit's three prepared INSERTs, on SQLite straight to the driver)
    stores what `create_report` (the ORM) stores, column for column, and the file
    decrypts; also with a file that has no details and a draft with no file."""
    from sqlalchemy import text

    context = drafts.UploadContext(user_id="uid-7", emails=("u7@example.com",))
    draft = drafts.DraftInput(files=[matched("A1"), matched("B2", data=b"other bytes")],
                              context=context)  # fmt: skip
    report, files, trail = drafts._draft_parts(draft, {"source": "test"})
    files.append(core.NewFile("plain.bin", b"no details here", None))
    with store.session() as s:
        orm_id = core.create_report(s, report, files, KEY, actor="t", origin=trail).id
    with store.transaction() as conn:
        fast_id = core.insert_report(conn, report, files, KEY, actor="t", origin=trail)
    with store.session() as s:
        hash_only = core.insert_report(s, report, [], KEY, actor="t", origin=trail)
    assert len({orm_id, fast_id, hash_only}) == 3
    moving = {"id", "report_id", "blob_uuid", "nonce", "ciphertext", "created_at",
              "updated_at", "at"}  # fmt: skip

    def rows(table: str, column: str, value: int) -> list[dict[str, object]]:
        with store.engine.connect() as c:
            found = c.execute(
                text(f"SELECT * FROM {table} WHERE {column} = :v ORDER BY id"), {"v": value}
            )
            return [{k: v for k, v in r._mapping.items() if k not in moving} for r in found]

    for table, column in [("cybertip_reports", "id"), ("cybertip_report_files", "report_id"),
                          ("cybertip_report_events", "report_id")]:  # fmt: skip
        assert rows(table, column, fast_id) == rows(table, column, orm_id), table
    assert len(rows("cybertip_report_files", "report_id", fast_id)) == 3
    assert rows("cybertip_report_files", "report_id", hash_only) == []
    with store.session() as s:
        row = core.get_report(s, fast_id)
        assert [core.file_bytes(f, KEY) for f in row.files] == [f.data for f in files]
        assert core.view(row).state == core.view(core.get_report(s, orm_id)).state
        # the times are one instant, read back as the ORM's are (aware or naive alike)
        orm_row = core.get_report(s, orm_id)
        assert row.created_at == row.updated_at
        assert type(row.created_at) is type(orm_row.created_at)
        assert (row.created_at.tzinfo is None) == (orm_row.created_at.tzinfo is None)
        for f in row.files:  # random blob ids in uuid4's form
            assert uuid.UUID(hex=f.blob_uuid).version == 4 and len(f.blob_uuid) == 32

    def stored(table: str, column: str, value: int) -> list[tuple[object, ...]]:
        times = "at" if table == "cybertip_report_events" else "created_at, updated_at"
        with store.engine.connect() as c:
            q = text(f"SELECT {times} FROM {table} WHERE {column} = :v")
            return [tuple(r) for r in c.execute(q, {"v": value})]

    # stored as SQLAlchemy stores them: same type and text shape (SQLite keeps text)
    for table, column in [("cybertip_reports", "id"), ("cybertip_report_events", "report_id")]:
        fast, orm = stored(table, column, fast_id), stored(table, column, orm_id)
        shape = [[type(v) for v in r] for r in orm]
        assert [[type(v) for v in r] for r in fast] == shape
        if store.dialect == "sqlite":
            assert [[len(str(v)) for v in r] for r in fast] == [
                [len(str(v)) for v in r] for r in orm
            ]
    assert (
        stored("cybertip_reports", "id", fast_id)[0][0]
        == stored("cybertip_report_events", "report_id", fast_id)[0][0]
    )
