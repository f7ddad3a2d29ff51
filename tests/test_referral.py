"""Intake -> triage -> routing in one pipeline (the `Referral` step), and what a
law-enforcement agency may see of the result (Wilson file gate, legal process,
preservation, every view logged), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ridgeline import auditlog, routing, tipstats, triage
from ridgeline.errors import BadInput, NotFound
from ridgeline.intake import Incoming, IntakeConfig, Pipeline
from ridgeline.referral import Referral, extras
from ridgeline.reports.documents import to_json
from ridgeline.reports.model import Address, FileDetails, Report
from ridgeline.routing import access
from ridgeline.store import Store
from triage_samples import TRAFFICKING, make_file, make_report

RULES = routing.parse_rules_csv(
    "country,state,agency\nUS,TX,Texas ICAC Task Force\n"
    "US,,US federal desk\n*,,International desk\n"
)


def doc(report: Report, files: list[FileDetails] = ()) -> bytes:  # type: ignore[assignment]
    return json.dumps({"report": to_json(report), "files": [to_json(f) for f in files]}).encode()


def ingest(store: Store, docs: list[bytes]) -> list[int]:
    pipeline = Pipeline(IntakeConfig(), [Referral(store)])
    with store.session() as s:
        out = pipeline.ingest(s, [Incoming(f"d{i}.json", d, "json") for i, d in enumerate(docs)])
    assert all(o.status == "stored" for o in out), [o.problems for o in out]
    return [o.report_id for o in out if o.report_id is not None]


@pytest.fixture
def routed(store: Store) -> tuple[Store, list[int]]:
    with store.session() as s:
        routing.import_rules(s, RULES)
    ids = ingest(
        store,
        [
            doc(
                make_report(
                    incident_type=TRAFFICKING,
                    user="alpha",
                    address=Address(state="TX", country="US"),
                    reporter_address=Address(state="CA", country="US"),
                ),
                [
                    make_file(1, viewed=True),
                    make_file(2, viewed=False),
                    make_file(3, viewed=None, public=True),
                ],
            ),
            doc(make_report(user="beta", address=Address(state="NY", country="US"))),
            doc(make_report(user="gamma", batched=True), [make_file(4, meme=True)]),
        ],
    )
    return store, ids


def test_intake_triages_and_routes(routed: tuple[Store, list[int]]) -> None:
    store, (tx, ny, meme) = routed
    with store.session() as s:
        e = extras(s, tx)
        assert e["priority"] == 1
        assert [r["rule"] for r in e["reasons"]] == ["incident_type", "new_material"]
        assert [a["agency"] for a in e["available_to"]] == ["Texas ICAC Task Force"]
        assert e["available_to"][0]["why"] == ["reported person's address: US/TX (rule US/TX)"]
        assert e["preservation_until"] is not None
        assert [a["agency"] for a in extras(s, ny)["available_to"]] == ["US federal desk"]
        m = extras(s, meme)
        assert m["priority"] == 4 and m["available_to"][0]["agency"] == "International desk"
        assert [q.report_id for q in triage.queue(s)] == [tx, ny, meme]
        st = tipstats.compute(s).to_json()
    assert st["reports"] == 3
    assert st["by_priority"] == {"1": 1, "2": 0, "3": 1, "4": 1}
    assert (st["referral"], st["informational"], st["untriaged"]) == (2, 1, 0)
    assert st["by_agency"] == {
        "International desk": 1,
        "Texas ICAC Task Force": 1,
        "US federal desk": 1,
    }
    assert st["by_country"] == {"US": 2, "unknown": 1}
    assert st["by_incident_type"][TRAFFICKING] == 1
    assert st["intake_to_triage"]["count"] == 3 and st["intake_to_triage"]["max_s"] >= 0
    assert st["intake_to_availability"]["count"] == 3


def test_linked_reports_raise_the_earlier_reports_of_a_case(store: Store) -> None:
    first = ingest(store, [doc(make_report(user="shared", info=f"a{i}")) for i in range(3)])
    with store.session() as s:
        assert {triage.current(s, i).priority for i in first} == {3}  # type: ignore[union-attr]
        triage.override(s, first[0], 4, "duplicate of an older report", actor="analyst-a")
    later = ingest(store, [doc(make_report(user="shared", info=f"b{i}")) for i in range(3)])
    with store.session() as s:
        for rid in first[1:] + later:
            stored = triage.current(s, rid)
            assert stored is not None and stored.priority == 2, rid
            assert "linked to 5 other report(s)" in stored.reasons[-1].detail
        kept = triage.current(s, first[0])
        assert kept is not None and (kept.priority, kept.computed_priority) == (4, 2)


def test_le_sees_only_its_reports_and_wilson_locks_files(routed: tuple[Store, list[int]]) -> None:
    store, (tx, ny, _meme) = routed
    agency = "Texas ICAC Task Force"
    with store.session() as s:
        assert [a.report_id for a in routing.reports_for(s, agency)] == [tx]
        with pytest.raises(NotFound):
            access.view_report(s, ny, agency, "key:tx")
        view = access.view_report(s, tx, agency, "key:tx").to_json()
    files = view["files"]
    assert [f["locked"] for f in files] == [False, True, False]
    assert files[0]["why"] == "viewed by the reporting ESP"
    assert files[2]["why"] == "publicly available"
    assert "United States v. Wilson" in files[1]["why"] and files[1]["details"] is None
    assert files[0]["details"]["fileName"] == "file1.jpg"
    assert view["preservation"]["days_left"] > 300 and not view["preservation"]["expired"]
    with store.session() as s, pytest.raises(access.FileLocked):
        access.view_file(s, tx, 1, agency, "key:tx")
    with store.session() as s:
        access.log_refusal(s, tx, 1, agency, "key:tx")
        with pytest.raises(BadInput, match="kind"):
            access.enter_legal_process(s, tx, agency, kind="letter", reference="x", actor="key:tx")
        with pytest.raises(NotFound):  # another agency's report
            access.enter_legal_process(s, ny, agency, kind="warrant", reference="W-1", actor="k")
        access.enter_legal_process(
            s, tx, agency, kind="subpoena", reference="S-7", actor="key:tx"
        )  # a subpoena does not open it
    with store.session() as s, pytest.raises(access.FileLocked):
        access.view_file(s, tx, 1, agency, "key:tx")
    with store.session() as s:
        access.enter_legal_process(
            s, tx, agency, kind="warrant", reference="W-2026-0042", actor="key:tx",
            issued_on=dt.date(2026, 12, 1), files=[1],
        )  # fmt: skip
    with store.session() as s:
        opened = access.view_file(s, tx, 1, agency, "key:tx")
        assert opened.why.startswith("warrant W-2026-0042")
        assert opened.details is not None and opened.details["fileName"] == "file2.jpg"
        req = access.preservation_request(s, tx, agency, "key:tx")
        actions = [
            (r.action, r.subject)
            for r in s.query(auditlog.LogRecord).order_by(auditlog.LogRecord.seq)
            if r.action.startswith("le.")
        ]
        assert auditlog.verify(s).ok
    assert actions == [
        ("le.view_report", f"received_report:{tx}"),
        ("le.file_refused", f"received_report:{tx}/file:1"),
        ("le.legal_process", f"received_report:{tx}"),
        ("le.legal_process", f"received_report:{tx}"),
        ("le.view_file", f"received_report:{tx}/file:1"),
        ("le.preservation_request", f"received_report:{tx}"),
    ]
    body = req.to_json()
    assert body["requesting_agency"] == agency
    assert body["accounts"][0]["screen_name"] == "alpha"
    assert [f["locked"] for f in body["files"]] == [False, False, False]
    assert "18 U.S.C. 2258A(h)" in req.to_text() and "alpha" in req.to_text()
