"""Intake and case linking on SQLite and PostgreSQL: stored, duplicate, refused; the
linking rules (reporter's desk, IP window, proxies, viral files, PDQ); splits and merges
in the tamper-evident log; the CLI's JSONL rows, folders and zips."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select

from ridgeline import auditlog, cases, intake
from ridgeline.cases.models import CaseLink, CaseReport, FileBundle, FileBundleReport
from ridgeline.cli import main
from ridgeline.intake import synthetic
from ridgeline.reports import documents, received, samples
from ridgeline.reports.models import ReceivedReport, ReportIdentifier
from ridgeline.store import Store

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def doc(
    *,
    email: str | None = None,
    phone: str | None = None,
    screen: str | None = None,
    service: str = "Example Photos",
    ip: str | None = None,
    ip_at: dt.datetime = T0,
    proxy: bool = False,
    md5: str | None = None,
    pdq: str | None = None,
    desk: str = "trust-safety@example.com",
    when: dt.datetime = T0,
) -> dict[str, Any]:
    """A report with exactly the identifiers asked for (plus a unique note)."""
    person: dict[str, Any] = {
        "address": [{"type": "Home", "city": "Springfield", "state": "IL", "country": "US"}]
    }
    if email:
        person["email"] = [{"value": email}]
    if phone:
        person["phone"] = [{"value": phone}]
    suspect: dict[str, Any] = {"personOrUserReportedPerson": person, "espService": service}
    if screen:
        suspect["screenName"] = screen
    if ip:
        suspect["ipCaptureEvent"] = [
            {"ipAddress": ip, "dateTime": _iso(ip_at), "possibleProxy": proxy}
        ]
    files = []
    hashes = []
    if md5:
        hashes.append({"value": md5, "hashType": "MD5"})
    if pdq:
        hashes.append({"value": pdq, "hashType": "PDQ"})
    if hashes:
        files.append({"fileViewedByEsp": True, "originalFileHash": hashes})
    return {
        "report": {
            "incidentSummary": {
                "incidentType": "Child Pornography (possession, manufacture, and distribution)",
                "platform": "Example Platform",
                "incidentDateTime": _iso(when),
            },
            "reporter": {"reportingPerson": {"email": [{"value": desk}]}},
            "personOrUserReported": [suspect],
            "additionalInfo": f"note {uuid.uuid4().hex}",
        },
        "files": files,
    }


def take(store: Store, *docs: dict[str, Any], pipeline: intake.Pipeline | None = None) -> list[Any]:
    items = [
        intake.Incoming(f"d{i}.json", json.dumps(d).encode(), "json") for i, d in enumerate(docs)
    ]
    p = pipeline or intake.Pipeline()
    with store.session() as s:
        return p.ingest(s, items)


def case_of(store: Store, report_id: int) -> int:
    with store.session() as s:
        return cases.case_of(s, report_id)


def test_stored_duplicate_refused_and_nothing_of_a_refused_report_kept(store: Store) -> None:
    good = doc(email="user1@example.com")
    bad = doc(email="user2@example.com")
    bad["report"]["incidentSummary"]["incidentType"] = "Child Porn"
    del bad["report"]["reporter"]
    bad["files"] = [{"fileRelevance": "Supplemental Reported", "industryClassification": "A1"}]
    out = take(store, good, bad)
    assert [o.status for o in out] == ["stored", "refused"]
    paths = {p.path for p in out[1].problems}
    # every problem at once: the enumeration, the missing reporter, the file rule
    assert "report/incidentSummary/incidentType" in paths
    assert "report/reporter" in paths
    assert "fileDetails[0]/industryClassification" in paths
    assert out[1].report_id is None
    again = take(store, good)
    assert again[0].status == "duplicate" and again[0].report_id == out[0].report_id
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(ReceivedReport)).scalar_one() == 1
        n_ids = s.execute(select(func.count()).select_from(ReportIdentifier)).scalar_one()
        assert n_ids == 2  # the suspect's email and the reporter's desk
        row = received.get(s, out[0].report_id)
        report, _files = received.document_of(row)
        assert report.persons_reported[0].person is not None
        assert (row.incident_type or "").startswith("Child Pornography")
    assert out[0].to_json() == {
        "source": "d0.json", "report_id": out[0].report_id, "status": "stored", "problems": [],
    }  # fmt: skip


def test_idempotency_key_and_concurrent_duplicate_in_one_batch(store: Store) -> None:
    d = json.dumps(doc(email="user3@example.com")).encode()
    items = [
        intake.Incoming("a", d, "json", idempotency_key="k-1"),
        intake.Incoming("b", d, "json", idempotency_key="k-1"),
        intake.Incoming("c", d, "json", idempotency_key="k-2"),
    ]
    with store.session() as s:
        out = intake.Pipeline().ingest(s, items)
    assert [o.status for o in out] == ["stored", "duplicate", "stored"]
    assert out[0].report_id == out[1].report_id != out[2].report_id


def test_xml_submission_with_file_details(store: Store) -> None:
    report = samples.rich_report(4)
    fd = samples.file_details("a" * 32, "b" * 64)
    data = intake.submission(documents.report_to_xml(report), [documents.file_details_to_xml(fd)])
    with store.session() as s:
        out = intake.Pipeline().ingest(s, [intake.Incoming("sub.xml", data, "xml")])
    assert out[0].status == "stored", out[0].problems
    rid = out[0].report_id
    assert rid is not None
    with store.session() as s:
        row = received.get(s, rid)
        assert row.file_count == 1 and row.format == "xml"
        assert received.raw_of(row) == data
        _, files = received.document_of(row)
        assert files[0].original_file_hashes[0].value == "a" * 32
        view = intake.report_view(s, rid).to_json()
    assert view["case_id"] is not None
    kinds = {(i["kind"], i["role"]) for i in view["identifiers"]}
    assert ("md5", "file") in kinds and ("email", "reporter") in kinds


def test_links_record_the_identifier_and_the_reporter_never_links(store: Store) -> None:
    a = take(store, doc(email="Jane.Doe@Example.com", desk="desk@example.com"))[0]
    b = take(store, doc(email="jane.doe@example.com", desk="desk@example.com"))[0]
    # shares only the desk address with a and b: stays alone
    c = take(store, doc(email="user4@example.com", desk="desk@example.com"))[0]
    assert case_of(store, a.report_id) == case_of(store, b.report_id)
    assert case_of(store, c.report_id) != case_of(store, a.report_id)
    with store.session() as s:
        summary = cases.summary(s, case_of(store, a.report_id))
    assert summary.to_json()["links"] == [
        {"report_a": a.report_id, "report_b": b.report_id, "identifier": "email",
         "value": "jane.doe@example.com"}
    ]  # fmt: skip


def test_ip_links_only_within_the_window_and_never_through_a_proxy(store: Store) -> None:
    base = take(store, doc(ip="198.51.100.20", ip_at=T0))[0]
    near = take(store, doc(ip="198.51.100.20", ip_at=T0 + dt.timedelta(hours=23)))[0]
    far = take(store, doc(ip="198.51.100.20", ip_at=T0 + dt.timedelta(hours=60)))[0]
    proxy = take(store, doc(ip="198.51.100.20", ip_at=T0 + dt.timedelta(hours=1), proxy=True))[0]
    assert case_of(store, near.report_id) == case_of(store, base.report_id)
    assert case_of(store, far.report_id) != case_of(store, base.report_id)
    assert case_of(store, proxy.report_id) != case_of(store, base.report_id)
    # a wider window (configurable) links the far one
    wide = intake.Pipeline(
        intake.IntakeConfig(link=cases.LinkConfig(ip_window=dt.timedelta(hours=48)))
    )
    later = take(store, doc(ip="198.51.100.20", ip_at=T0 + dt.timedelta(hours=66)), pipeline=wide)
    assert case_of(store, later[0].report_id) == case_of(store, far.report_id)


def test_phone_screen_name_with_service_and_pdq_within_threshold(store: Store) -> None:
    a = take(store, doc(phone="312-555-0161", screen="Night_Owl"))[0]
    b = take(store, doc(phone="+1 (312) 555-0161"))[0]  # same number, E.164
    c = take(store, doc(screen="night_owl", service="Example Chat"))[0]  # other service
    d = take(store, doc(screen="NIGHT_OWL"))[0]  # same service, other case
    assert case_of(store, b.report_id) == case_of(store, a.report_id)
    assert case_of(store, c.report_id) != case_of(store, a.report_id)
    assert case_of(store, d.report_id) == case_of(store, a.report_id)
    pdq = "a5" * 32
    near = format(int(pdq, 16) ^ ((1 << 20) - 1), "064x")  # 20 bits apart
    far = format(int(pdq, 16) ^ (((1 << 40) - 1) << 100), "064x")  # 40 (60) bits apart
    p1 = take(store, doc(pdq=pdq))[0]
    p2 = take(store, doc(pdq=near))[0]
    p3 = take(store, doc(pdq=far))[0]
    assert case_of(store, p2.report_id) == case_of(store, p1.report_id)
    assert case_of(store, p3.report_id) != case_of(store, p1.report_id)


def test_a_viral_file_bundles_and_unlinks(store: Store) -> None:
    meme = hashlib.md5(b"meme").hexdigest()
    cfg = intake.IntakeConfig(link=cases.LinkConfig(viral_threshold=3))
    p = intake.Pipeline(cfg)
    first = [take(store, doc(email=f"user{50 + i}@example.com", md5=meme), pipeline=p)[0]
             for i in range(3)]  # fmt: skip
    # three reports: at the threshold, the file still links them
    assert len({case_of(store, o.report_id) for o in first}) == 1
    fourth = take(store, doc(email="user60@example.com", md5=meme), pipeline=p)[0]
    everyone = [*first, fourth]
    # now viral: nobody is linked by it any more, all four are bundled under it
    assert len({case_of(store, o.report_id) for o in everyone}) == 4
    with store.session() as s:
        bundle = s.execute(select(FileBundle)).scalar_one()
        assert (bundle.kind, bundle.value, bundle.report_count) == ("md5", meme, 4)
        assert (
            s.execute(
                select(func.count()).select_from(CaseLink).where(CaseLink.value == meme)
            ).scalar_one()
            == 0
        )
        shown = cases.show(s, case_of(store, fourth.report_id)).to_json()
    assert shown["bundles"][0]["value"] == meme
    assert shown["files"][0]["bundled"] is True
    # links by other identifiers survive the re-split
    again = take(store, doc(email="user50@example.com", md5=meme), pipeline=p)[0]
    assert case_of(store, again.report_id) == case_of(store, first[0].report_id)


def test_linking_is_incremental_and_merges_cases(store: Store) -> None:
    a = take(store, doc(email="user70@example.com"))[0]
    b = take(store, doc(phone="312-555-0170"))[0]
    assert case_of(store, a.report_id) != case_of(store, b.report_id)
    # one report carrying both joins the two cases; the oldest case survives
    c = take(store, doc(email="user70@example.com", phone="312-555-0170"))[0]
    keep = case_of(store, a.report_id)
    assert case_of(store, b.report_id) == keep == case_of(store, c.report_id)
    with store.session() as s:
        assert cases.current_case(s, case_of(store, c.report_id)).id == keep
        assert cases.linked_counts(s, [a.report_id]) == {a.report_id: 2}
        assert cases.cases_with(s, "phone", "+13125550170") == [keep]


def test_split_and_merge_with_reasons_in_the_log(store: Store) -> None:
    a = take(store, doc(email="user80@example.com", ip="192.0.2.80"))[0]
    b = take(store, doc(email="user81@example.com", ip="192.0.2.80"))[0]
    case_id = case_of(store, a.report_id)
    assert case_of(store, b.report_id) == case_id
    with store.session() as s, pytest.raises(Exception, match="needs a reason"):
        cases.split(s, case_id, [b.report_id], " ")
    with store.session() as s:
        new_id = cases.split(s, case_id, [b.report_id], "shared school IP", actor="analyst-1")
    assert case_of(store, b.report_id) == new_id
    # the split holds: a later report sharing the IP with both joins only one side
    c = take(store, doc(email="user81@example.com", ip="192.0.2.80"))[0]
    assert case_of(store, c.report_id) in (case_id, new_id)
    assert case_of(store, a.report_id) != case_of(store, b.report_id)
    with store.session() as s:
        cut = s.execute(select(CaseLink).where(CaseLink.cut.is_(True))).scalars().all()
        assert cut, "the crossing links are kept, marked cut"
        cases.merge(s, case_id, new_id, "same person after all", actor="analyst-2")
    assert case_of(store, b.report_id) == case_id
    with store.session() as s:
        shown = cases.show(s, new_id).to_json()  # a merged case answers with the survivor
        assert shown["case_id"] == case_id
        assert [d["action"] for d in shown["decisions"]] == ["split", "merge"]
        logged = [(r.action, r.actor) for r in auditlog.records(s)]
        assert ("case.split", "analyst-1") in logged and ("case.merge", "analyst-2") in logged
        assert auditlog.verify(s).first_bad_seq is None
        assert any(lk["identifier"] == "analyst" for lk in shown["links"])


def test_case_show_gives_people_accounts_files_and_a_timeline(store: Store) -> None:
    a = take(store, doc(email="user90@example.com", screen="user_90", md5="c" * 32,
                        ip="203.0.113.90"))[0]  # fmt: skip
    take(store, doc(email="user90@example.com", when=T0 + dt.timedelta(days=1)))
    with store.session() as s:
        shown = cases.show(s, case_of(store, a.report_id)).to_json()
    assert len(shown["reports"]) == 2
    assert shown["people"][0]["emails"] == ["user90@example.com"]
    assert shown["people"][0]["places"] == [{"city": "Springfield", "state": "IL", "country": "US"}]
    assert shown["accounts"][0]["value"] == "user_90"
    assert shown["files"][0]["value"] == "c" * 32
    events = [t["event"] for t in shown["timeline"]]
    assert events.count("incident") == 2 and "ip seen" in events and "linked" in events
    assert [t["at"] for t in shown["timeline"]] == sorted(t["at"] for t in shown["timeline"])


def test_cli_intake_folder_zip_jsonl_and_cases(tmp_path: Path, db_path: str) -> None:
    folder = tmp_path / "in"
    (folder / "one").mkdir(parents=True)
    report = samples.rich_report(1)
    (folder / "one" / "report.xml").write_bytes(documents.report_to_xml(report))
    (folder / "one" / "fileDetails-0.xml").write_bytes(
        documents.file_details_to_xml(samples.file_details("d" * 32))
    )
    (folder / "two.json").write_text(json.dumps(doc(email="user1@example.com")))
    (folder / "bad.json").write_text(json.dumps({"report": {"bogus": 1}}))
    (folder / "notes.txt").write_text("not a report")
    lines = [json.dumps(doc(email="user1@example.com")) for _ in range(2)]
    with zipfile.ZipFile(tmp_path / "batch.zip", "w") as zf:
        zf.writestr("many.jsonl", "\n".join(lines) + "\n")
        zf.writestr("r/report.xml", documents.report_to_xml(samples.rich_report(2)))
    runner = CliRunner()
    args = ["reports", "intake", str(folder), str(tmp_path / "batch.zip"), "--db", db_path]
    res = runner.invoke(main, args)
    assert res.exit_code == 2, res.output  # one refused
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["status"] for r in rows} == {"stored", "refused"}
    by_source = {r["source"]: r for r in rows}
    assert by_source[f"{folder}/one"]["status"] == "stored"
    assert by_source[f"{folder}/bad.json"]["problems"][0]["path"] == "report/bogus"
    assert by_source[f"{tmp_path}/batch.zip!many.jsonl:1"]["status"] == "stored"
    assert set(rows[0]) == {"source", "report_id", "status", "problems"}
    # rerun: the file's sha256 makes every repeat a duplicate
    again = runner.invoke(main, args)
    rows2 = [json.loads(line) for line in again.stdout.splitlines()]
    assert {r["status"] for r in rows2} == {"duplicate", "refused"}
    res = runner.invoke(main, ["cases", "ls", "--format", "jsonl", "--db", db_path])
    found = [json.loads(line) for line in res.stdout.splitlines()]
    linked = [c for c in found if len(c["reports"]) > 1]
    assert linked and {"case_id", "reports", "links"} == set(linked[0])
    assert linked[0]["links"][0]["identifier"]
    case_id = linked[0]["case_id"]
    res = runner.invoke(main, ["cases", "show", str(case_id), "--format", "json", "--db", db_path])
    assert json.loads(res.stdout)["case_id"] == case_id
    res = runner.invoke(
        main, ["cases", "find", "email", "USER1@example.com", "--format", "jsonl", "--db", db_path]
    )
    assert json.loads(res.stdout.splitlines()[0])["case_id"] == case_id
    rid = linked[0]["reports"][0]
    res = runner.invoke(
        main, ["reports", "show", "--received", str(rid), "--format", "json", "--db", db_path]
    )
    shown = json.loads(res.stdout)
    assert shown["case_id"] == case_id
    # triaged and routed in the same intake run
    assert shown["priority"] in (1, 2, 3, 4) and shown["reasons"]
    assert shown["available_to"]
    other = linked[0]["reports"][1]
    res = runner.invoke(
        main,
        [
            "cases",
            "split",
            str(case_id),
            "--report",
            str(other),
            "--reason",
            "two people",
            "--format",
            "json",
            "--db",
            db_path,
        ],
    )
    assert res.exit_code == 0, res.output
    new_id = json.loads(res.stdout)["new_case_id"]
    res = runner.invoke(
        main,
        ["cases", "merge", str(case_id), str(new_id), "--reason", "one person", "--db", db_path],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["reports", "intake", str(tmp_path / "nothing"), "--db", db_path])
    assert res.exit_code == 2 and "no such file" in res.output


def test_synthetic_population_links_and_bundles(store: Store) -> None:
    """A small day: users in several reports are linked, memes are bundled, desks never
    link (every report shares its ESP's desk address and phone)."""
    pop = synthetic.Population(reports=600, memes=2, meme_share=0.1)
    items = [
        intake.Incoming(f"s:{n}", line, "json") for n, line in enumerate(synthetic.jsonl_lines(pop))
    ]
    p = intake.Pipeline()
    for start in range(0, len(items), 200):
        with store.session() as s:
            out = p.ingest(s, items[start : start + 200])
        assert {o.status for o in out} == {"stored"}, [o.problems for o in out][:3]
    with store.session() as s:
        counts = cases.core.counts(s)
        biggest = max(cases.list_cases(s, limit=10000), key=lambda c: len(c.reports))
        desk_links = s.execute(
            select(func.count()).select_from(CaseLink).where(CaseLink.value.like("%trust-safety%"))
        ).scalar_one()
    assert counts["reports"] == 600
    assert counts["bundles"] >= 2
    assert 1 < counts["cases"] < 600
    assert desk_links == 0
    assert len(biggest.reports) < 100  # no giant component through desks or memes


def _near(base: str, k: int) -> str:
    """A near copy of `base`: five bits of its own flipped (copies are <= 10 apart)."""
    return format(int(base, 16) ^ (0b11111 << (5 * k)), "064x")


def test_a_near_viral_picture_bundles_and_resplits(store: Store) -> None:
    """Near PDQ copies (no two hashes equal) count together for the viral rule: when the
    picture tips over, its reports are bundled under one PDQ bundle, the PDQ links made
    while it was rare are removed and the cases re-split; other links survive."""
    base = "5a" * 32
    cfg = intake.IntakeConfig(link=cases.LinkConfig(viral_threshold=3))
    p = intake.Pipeline(cfg)
    first = [take(store, doc(email=f"user{90 + i}@example.com", pdq=_near(base, i)), pipeline=p)[0]
             for i in range(3)]  # fmt: skip
    assert len({case_of(store, o.report_id) for o in first}) == 1
    with store.session() as s:
        assert (
            s.execute(
                select(func.count()).select_from(CaseLink).where(CaseLink.kind == "pdq")
            ).scalar_one()
            >= 2
        )
    # a fourth near copy: more than three reports hold the picture
    fourth = take(store, doc(email="user90@example.com", pdq=_near(base, 3)), pipeline=p)[0]
    everyone = [*first, fourth]
    with store.session() as s:
        bundle = s.execute(select(FileBundle)).scalar_one()
        assert bundle.kind == "pdq" and bundle.report_count == 4
        members = set(
            s.execute(
                select(FileBundleReport.report_id).where(FileBundleReport.bundle_id == bundle.id)
            ).scalars()
        )
        pdq_links = s.execute(
            select(func.count()).select_from(CaseLink).where(CaseLink.kind == "pdq")
        ).scalar_one()
    assert members == {o.report_id for o in everyone}
    assert pdq_links == 0
    # re-split: only the shared email still links the fourth to the first
    assert case_of(store, fourth.report_id) == case_of(store, first[0].report_id)
    assert len({case_of(store, o.report_id) for o in everyone}) == 3
    with store.session() as s:
        shown = cases.show(s, case_of(store, fourth.report_id)).to_json()
    assert [b["kind"] for b in shown["bundles"]] == ["pdq"]
    assert [f["bundled"] for f in shown["files"] if f["kind"] == "pdq"] == [True, True]
    # a fifth copy joins the bundle and links nobody
    fifth = take(store, doc(email="user99@example.com", pdq=_near(base, 4)), pipeline=p)[0]
    with store.session() as s:
        assert s.execute(select(FileBundle.report_count)).scalar_one() == 5
    assert case_of(store, fifth.report_id) not in {case_of(store, o.report_id) for o in everyone}


def _partition(store: Store) -> set[frozenset[str]]:
    """The cases as sets of report sources (ids may differ between databases)."""
    from ridgeline.cases.models import CaseReport

    with store.session() as s:
        rows = s.execute(
            select(CaseReport.case_id, ReceivedReport.source).join(
                ReceivedReport, ReceivedReport.id == CaseReport.report_id
            )
        ).all()
        bundles = s.execute(
            select(FileBundle.kind, FileBundle.value, ReceivedReport.source)
            .join(FileBundleReport, FileBundleReport.bundle_id == FileBundle.id)
            .join(ReceivedReport, ReceivedReport.id == FileBundleReport.report_id)
        ).all()
    groups: dict[int, set[str]] = {}
    for case_id, source in rows:
        groups.setdefault(case_id, set()).add(source)
    out = {frozenset(g) for g in groups.values()}
    # bundles: which reports share a viral exact file
    by_bundle: dict[tuple[str, str], set[str]] = {}
    for kind, value, source in bundles:
        if kind != "pdq":
            by_bundle.setdefault((kind, value), set()).add(source)
    return out | {frozenset({f"bundle:{k}:{v}", *m}) for (k, v), m in by_bundle.items()}


def test_batch_size_and_backend_give_the_same_cases(store: Store, tmp_path: Path) -> None:
    """The same reports taken in as one batch (on each backend) and in batches of 7 (on
    SQLite) end in the same cases and bundles, near-viral pictures included."""
    pop = synthetic.Population(reports=300, memes=2, meme_share=0.08)
    lines = list(synthetic.jsonl_lines(pop))
    base = "3c" * 32
    for k in range(6):  # a picture passed around as near copies, tipping over at 4
        extra = doc(email=f"user{200 + k % 3}@example.com", pdq=_near(base, k))
        lines.insert(40 * k + 5, json.dumps(extra).encode())
    items = [intake.Incoming(f"s:{n}", line, "json") for n, line in enumerate(lines)]
    cfg = intake.IntakeConfig(link=cases.LinkConfig(viral_threshold=3))
    with store.session() as s:
        out = intake.Pipeline(cfg).ingest(s, items)
    assert {o.status for o in out} == {"stored"}
    other = Store.open(tmp_path / "small-batches.db")
    try:
        p = intake.Pipeline(cfg)
        for start in range(0, len(items), 7):
            with other.session() as s:
                p.ingest(s, items[start : start + 7])
        assert _partition(other) == _partition(store)
    finally:
        other.close()
    with store.session() as s:
        assert cases.core.counts(s)["bundles"] >= 3


def test_group_writer_shares_transactions_and_answers_after_commit(store: Store) -> None:
    """Requests arriving while a transaction is being written go into the next one
    together; each gets its own outcomes, only once they are committed; a failing
    transaction fails every request in it and stores nothing."""
    import threading

    gate = threading.Event()
    entered = threading.Event()
    failing: set[str] = set()

    def hold(_s: Any, accepted: Any) -> None:
        entered.set()
        gate.wait(30)
        if any(a.parsed.report.additional_info in failing for a in accepted):
            raise RuntimeError("step failed")

    writer = intake.GroupWriter(store, intake.Pipeline(steps=[hold]))

    def items(tag: str, n: int) -> list[intake.Incoming]:
        return [
            intake.Incoming(f"{tag}{i}", json.dumps(doc(email=f"user{tag}{i}@example.com"))
                            .encode(), "json")
            for i in range(n)
        ]  # fmt: skip

    results: dict[str, Any] = {}

    def send(tag: str, n: int) -> None:
        try:
            results[tag] = writer.ingest(items(tag, n), received_by="key:test")
        except Exception as exc:  # the test reads it
            results[tag] = exc

    first = threading.Thread(target=send, args=("a", 2))
    first.start()
    assert entered.wait(30)
    others = [threading.Thread(target=send, args=(t, 3)) for t in ("b", "c")]
    for t in others:
        t.start()
    deadline = dt.datetime.now() + dt.timedelta(seconds=30)
    while writer.waiting < 2 and dt.datetime.now() < deadline:
        threading.Event().wait(0.01)
    assert writer.waiting == 2
    with store.session() as s:  # nothing committed while the transaction is open
        assert s.execute(select(func.count()).select_from(ReceivedReport)).scalar_one() == 0
    gate.set()
    for t in [first, *others]:
        t.join(30)
    assert (writer.transactions, writer.requests) == (2, 3)
    for tag, n in (("a", 2), ("b", 3), ("c", 3)):
        got = results[tag]
        assert [o.source for o in got] == [f"{tag}{i}" for i in range(n)]
        assert {o.status for o in got} == {"stored"}
    ids = [o.report_id for tag in "abc" for o in results[tag]]
    assert len(set(ids)) == 8
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(ReceivedReport)).scalar_one() == 8
    # a failure fails the whole transaction and nothing of it is stored
    bad = items("d", 1)
    failing.add(json.loads(bad[0].data)["report"]["additionalInfo"])
    with pytest.raises(RuntimeError, match="step failed"):
        writer.ingest(bad, received_by="key:test")
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(ReceivedReport)).scalar_one() == 8


def _planned_rows(store: Store, table: str) -> float | None:
    """PostgreSQL's row estimate of `table` (-1 until ANALYZE); None on SQLite."""
    if store.dialect != "postgresql":
        return None
    with store.engine.connect() as c:
        return float(
            c.exec_driver_sql(
                f"SELECT reltuples FROM pg_class WHERE relname = '{table}'"
            ).scalar_one()
        )


def test_a_run_keeps_the_planner_statistics_of_what_it_grows(store: Store) -> None:
    """On PostgreSQL a run analyzes the linker's tables each time it has doubled what it
    stored (from 2,000 reports on): planned as empty, the per-batch identifier lookups
    scanned everything written so far (100,000 reports: 211 s of SQL instead of 78 s).
    SQLite keeps no statistics (no sqlite_stat1 appears)."""
    from ridgeline.store import GrowingTables

    pop = synthetic.Population(reports=3500)
    items = [
        intake.Incoming(f"g:{n}", line, "json") for n, line in enumerate(synthetic.jsonl_lines(pop))
    ]
    before = _planned_rows(store, "report_identifiers")
    p = intake.Pipeline(steps=intake.default_steps(store))
    done = [len(out) for out in p.run(store, items=items[:1500], batch=500, parse_ahead=False)]
    assert done == [500, 500, 500]
    assert _planned_rows(store, "report_identifiers") == before  # under 2,000: not yet
    again = list(p.run(store, items=items[:1500], batch=1500, parse_ahead=False))  # new run
    assert {o.status for o in again[0]} == {"duplicate"}
    assert _planned_rows(store, "report_identifiers") == before  # nothing stored in it
    list(p.run(store, items=items[1500:], batch=500, parse_ahead=False))  # 2,000 new
    growing = GrowingTables(store, ("case_reports",), first=10)
    growing.grew(9)
    if store.dialect == "postgresql":
        with store.session() as s:
            identifiers = s.execute(select(func.count()).select_from(ReportIdentifier)).scalar()
        assert _planned_rows(store, "report_identifiers") == identifiers
        assert _planned_rows(store, "case_reports") == 3500  # analyzed by the run
        with store.session() as s:
            s.execute(delete(CaseReport).where(CaseReport.report_id > 3000))
        growing.grew(1)
        assert _planned_rows(store, "case_reports") == 3000
        assert growing.next_at == 20
    else:
        growing.grew(1)
        with store.engine.connect() as c:
            stat = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
            assert c.exec_driver_sql(stat).scalar_one() == 0


def test_the_service_writer_keeps_the_planner_statistics_too(store: Store) -> None:
    """`POST /v1/intake`'s writer (one per server process) analyzes like a run does: a new
    server's tables grow as fast as a bulk job's."""
    pop = synthetic.Population(reports=2000)
    items = [
        intake.Incoming(f"w:{n}", line, "json") for n, line in enumerate(synthetic.jsonl_lines(pop))
    ]
    before = _planned_rows(store, "case_reports")
    writer = intake.GroupWriter(store, intake.Pipeline(steps=intake.default_steps(store)))
    for start in range(0, 1500, 500):
        writer.ingest(items[start : start + 500])
    assert _planned_rows(store, "case_reports") == before
    writer.ingest(items[1500:])
    if store.dialect == "postgresql":
        assert _planned_rows(store, "case_reports") == 2000
