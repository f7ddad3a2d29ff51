"""The CyberTipline report model: typed documents, XML/JSON round trips, validation,
and storage on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ridgeline.errors import Conflict
from ridgeline.evidence import EvidenceKey
from ridgeline.reports import compiled, core, samples, schema
from ridgeline.reports import documents as docs
from ridgeline.reports import model as m
from ridgeline.reports.documents import InvalidDocument
from ridgeline.store import Store

#: `shared/` beside the checkout (searched upwards, so a worktree finds it too).
SHARED = next(
    (p / "shared" for p in Path(__file__).resolve().parents if (p / "shared").is_dir()),
    Path(__file__).resolve().parents[1].parent / "shared",
)
SPEC = SHARED / "reference" / "cybertipline"


def paths(problems: list[docs.Problem]) -> dict[str, str]:
    return {p.path: p.message for p in problems}


def test_incident_types_are_the_conventions_strings() -> None:
    conventions = (SHARED / "CONVENTIONS.md").read_text()
    section = conventions.split("## CyberTipline incident types (exact strings)")[1]
    listed = [line[2:].strip() for line in section.split("##")[0].splitlines() if line[:2] == "- "]
    assert tuple(listed) == m.INCIDENT_TYPES


def test_rich_report_round_trips_through_xml_and_json() -> None:
    report = samples.rich_report(3)
    assert docs.validate_report(report) == []
    xml = docs.report_to_xml(report)
    assert docs.check_report_xml(xml) == []  # the structural validator, always
    assert docs.report_from_xml(xml) == report
    assert docs.report_from_json(docs.to_json(report)) == report
    # element order of the root is the schema's
    root = ET.fromstring(xml)
    assert [c.tag for c in root] == [
        "incidentSummary",
        "internetDetails",
        "internetDetails",
        "lawEnforcement",
        "reporter",
        "personOrUserReported",
        "intendedRecipient",
        "victim",
        "additionalInfo",
    ]
    reported = root.find("personOrUserReported")
    assert reported is not None
    email = reported.find("personOrUserReportedPerson/email")
    assert email is not None and email.attrib == {"type": "Home", "verified": "true"}
    assert reported.findtext("ipCaptureEvent/ipAddress") == "192.0.2.4"
    assert root.attrib["{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation"]


def test_file_details_round_trip_and_order() -> None:
    details = dataclasses.replace(samples.file_details("a" * 32), report_id=7855764, file_id="f1")
    assert docs.validate_file_details(details, for_filing=True) == []
    xml = docs.file_details_to_xml(details)
    assert docs.check_file_details_xml(xml) == []
    assert docs.file_details_from_xml(xml) == details
    tags = [c.tag for c in ET.fromstring(xml)]
    assert tags[:2] == ["reportId", "fileId"]
    # the one ipCaptureEvent comes after industryClassification and originalFileHash
    assert tags.index("ipCaptureEvent") > tags.index("originalFileHash")
    assert tags.index("originalFileHash") > tags.index("industryClassification")


def test_special_characters_are_escaped() -> None:
    report = dataclasses.replace(samples.minimal_report(), additional_info='a < b & "c" > d')
    assert docs.report_from_xml(docs.report_to_xml(report)).additional_info == 'a < b & "c" > d'


def test_placeholders_in_file_details_drafts() -> None:
    xml = (
        b"<fileDetails><reportId>@REPORT_ID@</reportId><fileId>@FILE_ID@</fileId>"
        b"<fileViewedByEsp>true</fileViewedByEsp><industryClassification>B2"
        b"</industryClassification></fileDetails>"
    )
    details = docs.file_details_from_xml(xml)
    assert details.report_id is None and details.file_id is None
    assert details.industry_classification == "B2"
    assert docs.validate_file_details(details) == []
    assert set(paths(docs.validate_file_details(details, for_filing=True))) == {
        "fileDetails/reportId",
        "fileDetails/fileId",
    }


def test_structure_problems_of_xml_name_their_path() -> None:
    xml = (
        b"<report><reporter><reportingPerson><email>a@example.com</email>"
        b"</reportingPerson></reporter>"
        b"<incidentSummary><incidentType>Child Sex Tourism</incidentType>"
        b"<incidentDateTime>2020-01-01T00:00:00Z</incidentDateTime><colour/>"
        b"</incidentSummary><additionalInfo>x</additionalInfo><additionalInfo>y</additionalInfo>"
        b'<victim bogus="1"><victimPerson><age>ten</age></victimPerson></victim></report>'
    )
    with pytest.raises(InvalidDocument) as caught:
        docs.report_from_xml(xml)
    found = paths(caught.value.problems)
    assert "out of order" in found["report/incidentSummary"]
    assert "unknown element 'colour'" in found["report/incidentSummary/colour"]
    assert "only once" in found["report/additionalInfo"]
    assert "unknown attribute" in found["report/victim[0]/@bogus"]
    assert "whole number" in found["report/victim[0]/victimPerson/age"]
    assert "out of order" in found["report/victim[0]"]


def test_wrong_root_and_entities_are_refused() -> None:
    with pytest.raises(InvalidDocument, match="must be a <report>"):
        docs.report_from_xml(b"<fileDetails/>")
    with pytest.raises(docs.BadInput, match="DTD"):
        docs.report_from_xml(b'<!DOCTYPE x [<!ENTITY a "b">]><report/>')


def test_annotations_accept_empty_or_true_only() -> None:
    base = (
        b"<report><incidentSummary><incidentType>Child Sex Tourism</incidentType>"
        b"<reportAnnotations>%s</reportAnnotations>"
        b"<incidentDateTime>2020-01-01T00:00:00Z</incidentDateTime></incidentSummary>"
        b"<reporter><reportingPerson><email>a@example.com</email></reportingPerson></reporter>"
        b"</report>"
    )
    report = docs.report_from_xml(base % b"<spam/><sextortion>true</sextortion>")
    annotations = report.incident_summary.report_annotations  # type: ignore[union-attr]
    assert annotations == m.ReportAnnotations(sextortion=True, spam=True)  # any order (xs:all)
    with pytest.raises(InvalidDocument, match="empty or 'true'"):
        docs.report_from_xml(base % b"<spam>false</spam>")


def test_validation_rules_each_reported_with_path() -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    report = m.Report(
        incident_summary=m.IncidentSummary(
            incident_type="Child Sexual Molestation (not by family member)",
            escalate_to_high_priority="   ",
            incident_date_time=future,
            incident_date_time_description="x" * 3001,
        ),
        internet_details=(
            m.InternetDetails(web_page=m.WebPageIncident(urls=("https://example.com/a\tb",))),
            m.InternetDetails(),
            m.InternetDetails(
                email=m.EmailIncident(email_addresses=(m.Email("not-an-email"),)),
                chat_im=m.ChatImIncident(chat_client="x"),
            ),
        ),
        reporter=m.Reporter(
            reporting_person=m.Person(phones=(m.Phone("555-0101", country_calling_code="1"),)),
            terms_of_service="t" * 3001,
        ),
        persons_reported=(
            m.PersonOrUserReported(
                ip_capture_events=(m.IpCaptureEvent(ip_address="not-an-ip", event_name="Logon"),),
                associated_accounts=(m.AssociatedAccount(),),
            ),
            m.PersonOrUserReported(),
        ),
        victims=(m.Victim(),),
        additional_info="y" * 3001,
    )
    problems = docs.validate_report(report)
    found = paths(problems)
    summary = "report/incidentSummary"
    assert "not an allowed value" in found[f"{summary}/incidentType"]
    assert "must not be blank" in found[f"{summary}/escalateToHighPriority"]
    assert "in the future" in found[f"{summary}/incidentDateTime"]
    assert "3001 characters; at most 3000" in found[f"{summary}/incidentDateTimeDescription"]
    assert "white space" in found["report/internetDetails[0]/webPageIncident/url[0]"]
    assert "exactly one of" in found["report/internetDetails[1]"]
    assert "found 2" in found["report/internetDetails[2]"]
    assert "not an email" in found["report/internetDetails[2]/emailIncident/emailAddress[0]"]
    assert "email is required" in found["report/reporter/reportingPerson/email"]
    assert "e.g. +1" in found["report/reporter/reportingPerson/phone[0]/@countryCallingCode"]
    assert "at most 3000" in found["report/reporter/termsOfService"]
    reported = "report/personOrUserReported[0]"
    assert "'Logon' is not an allowed value" in found[f"{reported}/ipCaptureEvent[0]/eventName"]
    assert "the account type is required" in found[f"{reported}/associatedAccount[0]/@type"]
    assert "at most one person" in found["report/personOrUserReported[1]"]
    assert "the victim is required" in found["report/victim[0]/victimPerson"]
    assert "at most 3000" in found["report/additionalInfo"]
    warning = next(p for p in problems if p.path.endswith("ipCaptureEvent[0]/ipAddress"))
    assert warning.severity == "warning"
    assert warning not in docs.errors(problems)


def test_incident_time_needs_a_time_zone() -> None:
    report = samples.minimal_report(dt.datetime(2025, 5, 1, 12, 0))
    found = paths(docs.validate_report(report))
    assert "time zone" in found["report/incidentSummary/incidentDateTime"]


def test_missing_required_top_level_elements() -> None:
    found = paths(docs.validate_report(m.Report()))
    assert found == {
        "report/incidentSummary": "the incident summary is required (element missing)",
        "report/reporter": "the reporter is required (element missing)",
    }


def test_classification_only_on_reported_files() -> None:
    details = m.FileDetails(
        file_relevance="Supplemental Reported",
        industry_classification="A2",
        file_annotations=m.FileAnnotations(potential_meme=True),
        original_file_hashes=(m.OriginalFileHash("abc"),),
        details=(m.Details(type="EXIF"),),
    )
    found = paths(docs.validate_file_details(details))
    assert "only a 'Reported' file" in found["fileDetails/industryClassification"]
    assert "potential meme" in found["fileDetails/potentialMeme"]
    assert "hash type" in found["fileDetails/originalFileHash[0]/@hashType"]
    assert "name/value is required" in found["fileDetails/details[0]/nameValuePair"]
    both = m.FileDetails(potential_meme=True, file_annotations=m.FileAnnotations(viral=True))
    assert "may not both be given" in paths(docs.validate_file_details(both))["fileDetails"]


def test_json_input_lists_unknown_keys_and_bad_values() -> None:
    with pytest.raises(InvalidDocument) as caught:
        docs.report_from_json(
            {
                "incidentSummary": {"incidentDateTime": "yesterday", "colour": "red"},
                "victim": [{"victimPerson": {"age": "x"}}],
            }
        )
    found = paths(caught.value.problems)
    assert "date and time" in found["report/incidentSummary/incidentDateTime"]
    assert "unknown field 'colour'" in found["report/incidentSummary/colour"]
    assert "whole number" in found["report/victim[0]/victimPerson/age"]


def test_merge_patch() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    assert docs.merge_json(base, {"a": {"b": None, "e": 3}, "d": [2]}) == {
        "a": {"c": 2, "e": 3},
        "d": [2],
    }


def test_xsd_validation_when_available() -> None:
    """The public XSD (`GET {base}/xsd`, basic auth) is not redistributed; validate
    against it when a copy and a validator are on the machine."""
    xsd = os.environ.get("RIDGELINE_CYBERTIP_XSD") or str(SPEC / "cyber_tipline.xsd")
    if not Path(xsd).is_file():
        pytest.skip(
            f"the CyberTipline XSD is not on this machine ({xsd}); set RIDGELINE_CYBERTIP_XSD"
        )
    xmlschema = pytest.importorskip("xmlschema", reason="xmlschema is needed to check the XSD")
    validator = xmlschema.XMLSchema(xsd)
    validator.validate(docs.report_to_xml(samples.rich_report()).decode())
    details = dataclasses.replace(samples.file_details("a" * 32), report_id=1, file_id="f")
    validator.validate(docs.file_details_to_xml(details).decode())


# ---------------------------------------------------------------- storage


@pytest.fixture
def key() -> EvidenceKey:
    return EvidenceKey(bytes(range(32)))


def test_store_round_trip(store: Store, key: EvidenceKey) -> None:
    report = samples.rich_report(1)
    data = b"\x89PNG benign test bytes"
    fd = samples.file_details(hashlib.md5(data).hexdigest())
    with store.session() as session:
        row = core.create_report(
            session,
            report,
            [core.NewFile("a.png", data, fd), core.NewFile("b.bin", b"other")],
            key,
            actor="tester",
            origin={"scan_run": 1},
        )
        rid = row.id
    with store.session() as session:
        row = core.get_report(session, rid)
        assert row.state == "validated"
        assert core.report_of(row) == report
        assert [f.file_name for f in row.files] == ["a.png", "b.bin"]
        assert core.details_of(row.files[0]) == fd
        assert core.details_of(row.files[1]) is None
        assert core.file_bytes(row.files[0], key) == data
        assert row.files[0].md5 == hashlib.md5(data).hexdigest()
        assert row.files[0].ciphertext != data
        shown = core.view(row).to_json()
        assert shown["state"] == "validated"
        assert shown["reportId"] is None
        assert shown["fileIds"] == [None, None]
        assert shown["problems"] == [
            p.to_json() for p in docs.validate_report(report)
        ]  # warnings only
        listed = core.list_reports(session, state="validated")
        assert [r.id for r in listed] == [rid]


def test_wrong_key_is_named(sqlite_store: Store, key: EvidenceKey) -> None:
    with sqlite_store.session() as session:
        row = core.create_report(session, samples.minimal_report(), [core.NewFile("a", b"x")], key)
        with pytest.raises(core.EvidenceKeyError, match="wrong key"):
            core.file_bytes(row.files[0], EvidenceKey(bytes(32)))


def test_invalid_draft_is_kept_with_problems_and_edit_fixes_it(sqlite_store: Store) -> None:
    draft = dataclasses.replace(samples.minimal_report(), reporter=m.Reporter())
    with sqlite_store.session() as session:
        row = core.create_report(session, draft, [], None)
        assert row.state == "draft"
        assert "report/reporter/reportingPerson" in {p["path"] for p in row.problems}
        rid = row.id
    patch = {"reporter": {"reportingPerson": {"email": [{"value": "ts@example.com"}]}}}
    with sqlite_store.session() as session:
        row = core.edit_report(session, rid, patch, actor="op")
        assert row.state == "validated" and row.problems == []
    with sqlite_store.session() as session, pytest.raises(InvalidDocument, match="unknown field"):
        core.edit_report(session, rid, {"reporter": {"nickname": "x"}})


def test_purge_refuses_within_a_year_of_filing(sqlite_store: Store) -> None:
    with sqlite_store.session() as session:
        row = core.create_report(session, samples.minimal_report(), [], None)
        filed = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
        row.state = "finished"
        row.finished_at = filed
        row.keep_until = core.preserve_until(filed)
        rid = row.id
    with sqlite_store.session() as session, pytest.raises(Conflict, match="preserved until"):
        core.purge_report(session, rid, now=filed + dt.timedelta(days=364))
    with sqlite_store.session() as session:
        core.purge_report(session, rid, now=filed + dt.timedelta(days=366))
    with sqlite_store.session() as session, pytest.raises(core.NotFound):
        core.get_report(session, rid)


def test_purge_refuses_unknown_outcome_and_allows_unfiled_drafts(sqlite_store: Store) -> None:
    with sqlite_store.session() as session:
        lost = core.create_report(session, samples.minimal_report(), [], None)
        lost.state = "needs_attention"  # a lost /submit reply: kept until resolved
        draft = core.create_report(session, samples.minimal_report(), [], None)
        ids = lost.id, draft.id
    far = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
    with sqlite_store.session() as session, pytest.raises(Conflict):
        core.purge_report(session, ids[0], now=far)
    with sqlite_store.session() as session:
        core.purge_report(session, ids[1])


def _generic(node: m.Report | m.FileDetails, root: str) -> set[docs.Problem]:
    problems: list[docs.Problem] = []
    schema.check(node, root, problems)

    def extra(n: schema.Node, path: str) -> None:
        if type(n) in compiled.EXTRAS:
            compiled.EXTRAS[type(n)](n, path, problems)

    schema.walk(node, extra, root)
    return set(problems)


def test_generated_functions_agree_with_the_generic_engine() -> None:
    """The per-type generated writers/checkers (compiled.py) say exactly what the
    generic engine says, for valid and thoroughly invalid documents."""
    broken = m.Report(
        incident_summary=m.IncidentSummary(incident_type="x", escalate_to_high_priority=" "),
        internet_details=(
            m.InternetDetails(),
            m.InternetDetails(
                cell_phone=m.CellPhoneIncident(phone_number=m.Phone("abc", extension="x1"))
            ),
        ),
        reporter=m.Reporter(reporting_person=m.Person(emails=(m.Email("nope", type="Cell"),))),
        persons_reported=(
            m.PersonOrUserReported(
                ip_capture_events=(m.IpCaptureEvent(port=70000),),
                associated_accounts=(m.AssociatedAccount(type="Friend"),),
            ),
        ),
        victims=(m.Victim(),),
    )
    for report in (samples.rich_report(5), broken, m.Report()):
        out: list[str] = []
        schema.write_node(report, "report", out)
        assert docs.report_to_xml(report).endswith("".join(out[1:]).encode())
        problems: list[docs.Problem] = []
        compiled.check(report, "report", problems)
        assert set(problems) == _generic(report, "report")
    assert len(problems) == 2
    bad_fd = m.FileDetails(
        potential_meme=True,
        file_annotations=m.FileAnnotations(viral=True),
        industry_classification="C3",
        details=(m.Details(type="XMP"),),
    )
    for fd in (samples.file_details(), bad_fd):
        out = []
        schema.write_node(fd, "fileDetails", out)
        assert docs.file_details_to_xml(fd).endswith("".join(out).encode())
        problems = []
        compiled.check(fd, "fileDetails", problems)
        assert set(problems) == _generic(fd, "fileDetails")
    assert len(problems) >= 5


def test_fast_json_reader_agrees_with_the_full_one() -> None:
    """`schema.from_json` reads problem-free documents without paths; it must build the
    very nodes the full reader builds, and leave every problem to the full reader."""
    from ridgeline.intake import synthetic

    docs_json = [docs.to_json(samples.rich_report(5))]
    docs_json += [
        json.loads(line)["report"]
        for line in itertools.islice(synthetic.jsonl_lines(synthetic.Population(30)), 30)
    ]
    for data in docs_json:
        problems: list[docs.Problem] = []
        fast = schema.from_json(m.Report, data, "report", problems)
        full = schema._from_json_full(m.Report, data, "report", [])
        assert fast == full and problems == []
    bad = {
        "incidentSummary": {"incidentDateTime": "yesterday", "colour": "red"},
        "victim": [{"victimPerson": {"age": "x"}}, 3],
        "personOrUserReported": [{"ipCaptureEvent": [{"port": "7"}, {"port": True}]}],
    }
    problems, expected = [], []
    node = schema.from_json(m.Report, bad, "report", problems)
    assert node == schema._from_json_full(m.Report, bad, "report", expected)
    assert problems == expected and len(problems) >= 4
