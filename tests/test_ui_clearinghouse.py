"""The clearinghouse pages in a real browser (Debian's Chromium under Playwright, a real
`ridgeline serve`, on SQLite and on PostgreSQL): taking in a report file with its
problems listed, received reports with their priority, reasons and routing, the triage
queue and an override, a case with the identifier behind each link and a split and a
merge, and what a law-enforcement user of one agency sees. Every decision is checked in
the tamper-evident log; axe-core checks each page."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from browser import (
    browser,  # noqa: F401  (fixture)
    context,  # noqa: F401  (fixture)
    csp_errors,
    login_with_key,
    login_with_password,
    running_server,
    screenshot,
    serious_violations,
)
from conftest import fresh_pg_database
from ridgeline import auditlog
from ridgeline.service.keys import create_key
from ridgeline.store import Store
from ridgeline.ui.accounts import add_user
from ridgeline.ui.app import PAGES
from ridgeline.ui.web import allowed
from ui_samples import AGENCY, OTHER, SAMPLES, Seeded, report_doc, seed_clearinghouse

PASSWORD = "correct horse battery staple"
ROLES_USED = ("admin", "analyst", "provider", "intake", "reviewer", "curator")


@dataclass
class Clearing:
    base: str
    db: str
    keys: dict[str, str]
    seeded: Seeded

    def rid(self, name: str) -> int:
        return self.seeded.reports[name]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def clearing(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clearing]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            db = stack.enter_context(fresh_pg_database())
        else:
            db = str(tmp_path_factory.mktemp("ui-clearing") / "ridgeline.db")
        store = Store.open(db)
        with store.session() as s:
            keys = {role: create_key(s, role, role)[1] for role in ROLES_USED}
            keys["le-other"] = create_key(s, "le-other", "law-enforcement", agency=OTHER)[1]
            add_user(s, "dana", "analyst", PASSWORD)
            add_user(s, "lee", "law-enforcement", PASSWORD, agency=AGENCY)
        store.close()
        seeded = seed_clearinghouse(db)
        args = ("serve", "--port", "{port}", "--db", db, "--no-access-log")
        with running_server(*args) as served:
            yield Clearing(served.base, db, keys, seeded)


@dataclass(frozen=True)
class Logged:
    actor: str | None
    subject: str | None
    details: dict[str, Any]


def audit_records(db: str, action: str) -> list[Logged]:
    """The tamper-evident log's records of one action, oldest first."""
    with Store.open(db).session() as s:
        return [
            Logged(r.actor, r.subject, json.loads(r.details))
            for r in auditlog.records(s, action=action, limit=None)
        ]


def clearinghouse_paths(c: Clearing) -> list[tuple[str, str]]:
    """(path, permission) of every GET page of the clearinghouse module."""
    values = {"{report_id:int}": str(c.rid("linked_a")), "{case_id:int}": str(c.seeded.linked_case),
              "{position:int}": "0"}  # fmt: skip
    out = []
    for p in PAGES:
        if "GET" not in p.methods or p.handler.__module__ != "ridgeline.ui.clearinghouse":
            continue
        path = p.path
        for k, v in values.items():
            path = path.replace(k, v)
        out.append((f"/ui{path}", p.permission))
    assert len(out) >= 10
    return out


def test_roles_reach_only_their_pages(clearing: Clearing, browser: Browser) -> None:  # noqa: F811
    """Providers, reviewers and curators reach no clearinghouse page (and see no link to
    one); the intake role may only take reports in; analysts work intake, triage and
    cases but not the agency view; law enforcement reaches only the agency view."""
    paths = clearinghouse_paths(clearing)
    logins: dict[str, str] = dict(clearing.keys)
    for role, key in [*logins.items()]:
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            login_with_key(page, clearing.base, key)
            role_name = "law-enforcement" if role == "le-other" else role
            for path, permission in paths:
                response = page.goto(clearing.base + path)
                assert response is not None
                if path.startswith("/ui/le/") and role == "le-other":
                    # linked_a is not available to the other agency: not found, not 403
                    assert response.status == 404, (role, path, response.status)
                    continue
                want = 200 if allowed(role_name, permission) else 403
                assert response.status == want, (role, path, response.status)
            page.goto(clearing.base + "/ui/")
            nav = page.get_by_role("navigation", name="Main")
            for label, permission in (("Received", "intake:read"), ("Triage", "triage:read"),
                                      ("Cases", "cases:read"), ("Agency reports", "le:read"),
                                      ("Take in", "intake")):  # fmt: skip
                expect(nav.get_by_role("link", name=label, exact=True)).to_have_count(
                    1 if allowed(role_name, permission) else 0
                )
        finally:
            ctx.close()


def test_take_in_a_file_and_read_the_report(
    clearing: Clearing,
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The intake role uploads a JSONL file: the good reports are stored, the bad one is
    refused with its problems listed; an analyst finds the new report with its priority,
    every reason, where it was routed and why, and each file's state under Wilson."""
    good = report_doc(20, user=40, state="TX", files=[False])
    upload = tmp_path / "incoming.jsonl"
    upload.write_text(
        json.dumps(good)
        + "\n"
        + json.dumps({"report": {"incidentSummary": {}}, "files": []})
        + "\n"
    )
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        login_with_key(page, clearing.base, clearing.keys["intake"])
        page.get_by_role("link", name="Take in", exact=True).click()
        page.get_by_label("Report file").set_input_files(str(upload))
        page.get_by_role("button", name="Take in", exact=True).click()
        rows = page.locator("#results tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("incoming.jsonl:0")
        expect(rows.nth(0)).to_contain_text("stored")
        expect(rows.nth(1)).to_contain_text("refused")
        expect(rows.nth(1).locator("li")).not_to_have_count(0)  # every problem listed
        expect(rows.nth(1)).to_contain_text("error")
        new_id = int(rows.nth(0).locator("td").nth(2).inner_text())
        assert serious_violations(page) == []
        screenshot(page, "clearing-upload")
        # the same file again: a duplicate, nothing stored twice
        page.get_by_label("Report file").set_input_files(str(upload))
        page.get_by_role("button", name="Take in", exact=True).click()
        expect(page.locator("#results tbody tr").nth(0)).to_contain_text("duplicate")
        assert page.goto(f"{clearing.base}/ui/intake/{new_id}").status == 403  # type: ignore[union-attr]
    finally:
        ctx.close()
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        login_with_password(page, clearing.base, "dana", PASSWORD)
        page.get_by_role("link", name="Received", exact=True).click()
        page.get_by_role("link", name=str(new_id), exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Received report {new_id}")
        expect(page.locator("#priority")).to_contain_text("Priority 2: urgent")
        expect(page.locator("#reasons")).to_contain_text("apparently new material")
        routing = page.locator("#routing")
        expect(routing).to_contain_text(OTHER)
        expect(routing).to_contain_text("reported person's address: US/TX (rule US/TX)")
        files = page.locator("#files tbody tr")
        expect(files).to_have_count(1)
        expect(files).to_contain_text("locked until a warrant")
        expect(files).to_contain_text("United States v. Wilson")
        expect(page.locator("#identifiers")).to_contain_text("user40@example.com")
        expect(page.locator("#preserve-until")).to_contain_text("18 U.S.C. 2258A(h)")
        assert serious_violations(page) == []
        screenshot(page, "clearing-report")
    finally:
        ctx.close()


def test_triage_queue_and_override(clearing: Clearing, context: BrowserContext) -> None:  # noqa: F811
    """The queue is sorted by priority with its reasons; an override needs a reason, is
    shown with the report and written to the tamper-evident log under the user's name."""
    page = context.new_page()
    login_with_password(page, clearing.base, "dana", PASSWORD)
    # the dashboard counts received reports by priority
    expect(page.locator("#dash-priorities")).to_contain_text(
        "1 a child may be in imminent danger: 1"
    )
    page.get_by_role("link", name="Triage", exact=True).click()
    rows = page.locator("#queue tbody tr")
    first = rows.nth(0)
    urgent = clearing.rid("urgent")
    expect(first).to_contain_text(f"{urgent}")
    expect(first).to_contain_text("1 (a child may be in imminent danger)")
    expect(first).to_contain_text("escalated by the reporter")
    priorities = [
        int(t.split(" ", 1)[0]) for t in rows.locator("td:nth-child(2)").all_inner_texts()
    ]
    assert priorities == sorted(priorities)
    assert serious_violations(page) == []
    screenshot(page, "clearing-triage")
    lone = clearing.rid("lone")
    page.get_by_role("link", name=str(lone), exact=True).click()
    # without a reason: the browser's required field, and the server refuses it too
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{clearing.base}/ui/triage/{lone}/override", form={"csrf": token or "", "priority": "4"}
    )
    assert answer.status == 400 and "needs a reason" in answer.text()
    page.get_by_label("Set priority").select_option("4")
    page.get_by_label("Reason (logged)").fill("duplicate of an earlier report, already referred")
    page.get_by_role("button", name="Override priority").click()
    expect(page.locator("#priority")).to_contain_text("Priority 4: informational")
    expect(page.locator("#priority")).to_contain_text("the rules gave 2")
    expect(page.locator("#override")).to_contain_text("user:dana")
    page.goto(f"{clearing.base}/ui/triage?priority=4")
    expect(page.locator("#queue")).to_contain_text("override: duplicate of an earlier report")
    logged = [
        r
        for r in audit_records(clearing.db, "triage.override")
        if r.subject == f"received_report:{lone}"
    ]
    assert [(r.actor, r.details["from"], r.details["to"]) for r in logged] == [("user:dana", 2, 4)]


def test_case_links_split_and_merge(clearing: Clearing, context: BrowserContext) -> None:  # noqa: F811
    """A case shows its reports and the identifier behind each link (table and graph);
    an analyst splits a report off with a reason and merges it back with a reason; both
    decisions are listed with the case and logged."""
    case_id = clearing.seeded.linked_case
    a, b, c = clearing.rid("linked_a"), clearing.rid("linked_b"), clearing.rid("linked_c")
    page = context.new_page()
    login_with_key(page, clearing.base, clearing.keys["analyst"])
    page.goto(f"{clearing.base}/ui/cases?kind=email&value=USER1@example.com")
    page.get_by_role("link", name=str(case_id), exact=True).click()
    expect(page.locator("#case-reports tbody tr")).to_have_count(3)
    links = page.locator("#links")
    expect(links).to_contain_text("user1@example.com")
    expect(links).to_contain_text("+13125550101")
    expect(links).to_contain_text("192.0.2.1")
    graph = page.locator("#case-graph svg")
    expect(graph.locator("g.node")).to_have_count(3)
    expect(graph.locator("g.edge")).to_have_count(2)  # a-b and b-c, each with 5 identifiers
    expect(graph.locator("g.edge title").first).to_contain_text("email user1@example.com")
    assert serious_violations(page) == []
    screenshot(page, "clearing-case")
    # a split needs a reason: refused by the server without one
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{clearing.base}/ui/cases/{case_id}/split", form={"csrf": token or "", "reports": str(c)}
    )
    assert answer.status == 400 and "needs a reason" in answer.text()
    page.get_by_label(f"Split off report {c}").check()
    page.get_by_label("Reason for the split (logged)").fill(
        "same shared family account, two people"
    )
    page.get_by_role("button", name="Split the ticked reports into a new case").click()
    expect(page.locator("#case-reports tbody tr")).to_have_count(1)  # the new case
    new_case = int(page.url.rsplit("/", 1)[1])
    assert new_case != case_id
    expect(page.locator("#decisions")).to_contain_text(
        "split by key:analyst: same shared family account"
    )
    page.goto(f"{clearing.base}/ui/cases/{case_id}")
    expect(page.locator("#case-reports tbody tr")).to_have_count(2)
    expect(graph.locator("g.edge")).to_have_count(1)  # b-c was cut by the split
    expect(page.locator("#decisions")).to_contain_text("split by key:analyst")
    page.get_by_label("Merge case number").fill(str(new_case))
    page.get_by_label("Reason for the merge (logged)").fill("confirmed one person by the provider")
    page.get_by_role("button", name="Merge into this case").click()
    expect(page.locator("#case-reports tbody tr")).to_have_count(3)
    expect(page.locator("#decisions")).to_contain_text("merge by key:analyst: confirmed one person")
    page.goto(f"{clearing.base}/ui/cases/{new_case}")
    expect(page.locator("#merged-note")).to_contain_text(
        f"Case {new_case} was merged into this case"
    )
    splits = audit_records(clearing.db, "case.split")
    merges = audit_records(clearing.db, "case.merge")
    assert [(r.actor, r.details["reports"], r.details["reason"]) for r in splits] == [
        ("key:analyst", [c], "same shared family account, two people")
    ]
    assert [(r.actor, r.details["merged_case_id"]) for r in merges] == [("key:analyst", new_case)]
    shown = page.locator("#case-reports tbody a").all_inner_texts()
    assert sorted(int(t) for t in shown) == sorted([a, b, c])  # the merged case's reports


def test_law_enforcement_sees_only_its_agency(
    clearing: Clearing,
    browser: Browser,  # noqa: F811
) -> None:
    """A user bound to an agency lists and opens only its reports (another agency's
    report is "not found"); a file the ESP did not view is metadata only, and opening it
    is refused and logged, until a warrant is entered; the preservation deadline and the
    preservation request; every view is in the tamper-evident log."""
    a, texas = clearing.rid("linked_a"), clearing.rid("texas")
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        refused = csp_errors(page)
        login_with_password(page, clearing.base, "lee", PASSWORD)
        page.get_by_role("link", name="Agency reports", exact=True).click()
        listed = {
            int(t) for t in page.locator("#le-reports tbody tr td:first-child").all_inner_texts()
        }
        mine = {rid for name, rid in clearing.seeded.reports.items() if name != "texas"}
        assert mine <= listed and texas not in listed
        expect(page.locator("#le-reports")).to_contain_text("days left")
        assert serious_violations(page) == []
        response = page.goto(f"{clearing.base}/ui/le/{texas}")
        assert response is not None and response.status == 404
        for blocked in ("/ui/intake", f"/ui/intake/{a}", "/ui/triage", "/ui/cases", "/ui/routing"):
            response = page.goto(clearing.base + blocked)
            assert response is not None and response.status == 403, blocked
        page.goto(f"{clearing.base}/ui/le/{a}")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Report {a} for {AGENCY}")
        files = page.locator("#le-files tbody tr")
        expect(files).to_have_count(2)
        expect(files.nth(0)).to_contain_text("viewed by the reporting ESP")
        expect(files.nth(1)).to_contain_text("Locked")
        expect(files.nth(1)).to_contain_text("a warrant is required")
        locked_name = SAMPLES["linked_a"]["files"][1]["originalFileName"]
        locked_md5 = SAMPLES["linked_a"]["files"][1]["originalFileHash"][0]["value"]
        assert locked_name not in page.content() and locked_md5 not in page.content()
        expect(page.locator("#preservation")).to_contain_text("days left")
        assert serious_violations(page) == []
        screenshot(page, "clearing-le-report")
        response = page.goto(f"{clearing.base}/ui/le/{a}/files/1")
        assert response is not None and response.status == 403
        assert locked_md5 not in page.content()
        page.goto(f"{clearing.base}/ui/le/{a}")
        page.get_by_label("Reference (warrant number)").fill("W-2026-0042")
        page.get_by_label("Files covered (optional, e.g. 1, 2; empty: all)").fill("1")
        page.get_by_role("button", name="Enter legal process (logged)").click()
        expect(page.locator("#legal-process")).to_contain_text("warrant W-2026-0042 for files 1")
        expect(files.nth(1)).to_contain_text("warrant W-2026-0042")
        page.get_by_role("link", name=locked_name).click()
        expect(page.locator("#file-details")).to_contain_text(locked_md5)
        page.goto(f"{clearing.base}/ui/le/{a}")
        page.get_by_role("link", name="Preservation request to the provider").click()
        expect(page.locator("#preservation-text")).to_contain_text("18 U.S.C. 2258A(h)")
        expect(page.locator("#preservation-text")).to_contain_text(f"From: {AGENCY}")
        assert refused == []
    finally:
        ctx.close()
    subject = f"received_report:{a}"
    views = [r for r in audit_records(clearing.db, "le.view_report") if r.actor == "user:lee"]
    assert len(views) >= 3 and all(r.details["agency"] == AGENCY for r in views)
    assert [
        r.subject for r in audit_records(clearing.db, "le.file_refused") if r.actor == "user:lee"
    ] == [f"{subject}/file:1"]
    assert [r.details["reference"] for r in audit_records(clearing.db, "le.legal_process")
            if r.actor == "user:lee"] == ["W-2026-0042"]  # fmt: skip
    assert any(r.subject == f"{subject}/file:1" for r in audit_records(clearing.db, "le.view_file"))
    assert any(r.actor == "user:lee" for r in audit_records(clearing.db, "le.preservation_request"))


def test_clearinghouse_pages_are_accessible(
    clearing: Clearing,
    browser: Browser,  # noqa: F811
) -> None:
    """axe-core finds no serious or critical violation on any clearinghouse page, for an
    admin and for law enforcement; the CSP refuses nothing the pages use."""
    for who in ("admin", "le"):
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            refused = csp_errors(page)
            if who == "le":
                login_with_password(page, clearing.base, "lee", PASSWORD)
            else:
                login_with_key(page, clearing.base, clearing.keys["admin"])
            role = "law-enforcement" if who == "le" else "admin"
            for path, permission in clearinghouse_paths(clearing):
                if not allowed(role, permission):
                    continue
                response = page.goto(clearing.base + path)
                assert response is not None and response.status == 200, (who, path)
                assert serious_violations(page) == [], (who, path)
                screenshot(page, f"clearing-{who}-{path.removeprefix('/ui/')}")
            assert refused == []
        finally:
            ctx.close()


def test_law_enforcement_without_agency_is_refused(clearing: Clearing) -> None:
    """A law-enforcement user must be bound to an agency (as a key must)."""
    from ridgeline.errors import BadInput

    with Store.open(clearing.db).session() as s, pytest.raises(BadInput, match="needs --agency"):
        add_user(s, "nobody", "law-enforcement", PASSWORD)
    with (
        Store.open(clearing.db).session() as s,
        pytest.raises(BadInput, match="only law-enforcement"),
    ):
        add_user(s, "nobody", "analyst", PASSWORD, agency=AGENCY)


def test_analyst_makes_a_report_available_by_hand(
    clearing: Clearing,
    browser: Browser,  # noqa: F811
) -> None:
    """An analyst makes the Texas report (routed to the other agency) available to one
    more agency, with a reason: the reason and the analyst are shown with its routing, the
    decision is logged, and the law-enforcement user of that agency now sees the report.
    Without a reason or a CSRF token it is refused; law enforcement may not do it."""
    texas = clearing.rid("texas")
    ctx = browser.new_context()
    try:
        lee = ctx.new_page()
        login_with_password(lee, clearing.base, "lee", PASSWORD)
        assert lee.goto(f"{clearing.base}/ui/le/{texas}").status == 404  # type: ignore[union-attr]
        token = lee.locator("input[name=csrf]").first.get_attribute("value") or ""
        answer = lee.request.post(
            f"{clearing.base}/ui/intake/{texas}/make-available",
            form={"csrf": token, "agency": AGENCY, "reason": "ours now"},
        )
        assert answer.status == 403  # law enforcement cannot widen its own access
        analyst = browser.new_context()
        try:
            page = analyst.new_page()
            login_with_password(page, clearing.base, "dana", PASSWORD)
            page.goto(f"{clearing.base}/ui/intake/{texas}")
            routing = page.locator("#routing tbody tr")
            expect(routing).to_have_count(1)
            expect(routing).to_contain_text(OTHER)
            url = f"{clearing.base}/ui/intake/{texas}/make-available"
            token = page.locator("input[name=csrf]").first.get_attribute("value") or ""
            answer = page.request.post(url, form={"csrf": token, "agency": AGENCY})
            assert answer.status == 400 and "needs an agency and a reason" in answer.text()
            answer = page.request.post(url, form={"agency": AGENCY, "reason": "no token"})
            assert answer.status == 403 and "CSRF" in answer.text()
            page.get_by_label("Make available to agency").fill(AGENCY)
            page.get_by_label("Why it goes to that agency (logged)").fill(
                "the reported person moved to Illinois"
            )
            page.get_by_role("button", name="Make available").click()
            expect(routing).to_have_count(2)
            added = routing.filter(has_text=AGENCY)
            expect(added).to_contain_text("the reported person moved to Illinois")
            expect(added).to_contain_text("user:dana")
            assert serious_violations(page) == []
            screenshot(page, "clearing-make-available")
        finally:
            analyst.close()
        lee.goto(f"{clearing.base}/ui/le")
        expect(lee.locator("#le-reports")).to_contain_text(str(texas))
        response = lee.goto(f"{clearing.base}/ui/le/{texas}")
        assert response is not None and response.status == 200
        expect(lee.get_by_role("heading", level=1)).to_have_text(f"Report {texas} for {AGENCY}")
    finally:
        ctx.close()
    logged = audit_records(clearing.db, "routing.make_available")
    assert [(r.actor, r.subject, r.details) for r in logged] == [
        (
            "user:dana",
            f"received_report:{texas}",
            {"agency": AGENCY, "why": "the reported person moved to Illinois"},
        )
    ]


def test_routing_rules_import(
    clearing: Clearing,
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    """An analyst replaces the routing rules with a CSV file, as `ridgeline routing
    import` does: a file with bad lines changes nothing and lists every bad line; a good
    one replaces the rules (logged). Law enforcement sees no form and is refused."""
    bad = tmp_path / "bad.csv"
    bad.write_text("country,state,agency\nUS,IL,Example Agency\nXX,,Nowhere\nUS,ZZ,Nobody\n")
    good = tmp_path / "rules.csv"
    good.write_text(
        f"country,state,agency\nUS,IL,{AGENCY}\nUS,TX,{OTHER}\nUS,CA,California desk\n"
        "CA,,Canadian desk\n*,,Federal desk\n"
    )
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        login_with_password(page, clearing.base, "dana", PASSWORD)
        page.get_by_role("link", name="Routing", exact=True).click()
        before = page.locator("#rules tbody").inner_text()
        page.get_by_label("Rules file").set_input_files(str(bad))
        page.get_by_role("button", name="Import the rules (logged)").click()
        problems = page.locator("#import-problems")
        expect(problems).to_contain_text("Nothing was imported")
        expect(problems.locator("li")).to_have_count(2)
        expect(problems.locator("li").nth(0)).to_contain_text(
            "line 3: 'XX' is not an ISO 3166-1 alpha-2 country"
        )
        expect(problems.locator("li").nth(1)).to_contain_text("line 4: 'ZZ' is not a US state")
        assert page.locator("#rules tbody").inner_text() == before
        assert serious_violations(page) == []
        screenshot(page, "clearing-routing-problems")
        page.get_by_label("Rules file").set_input_files(str(good))
        page.get_by_role("button", name="Import the rules (logged)").click()
        expect(page.locator("#imported")).to_contain_text("Imported rules.csv: 5 rule(s)")
        rows = page.locator("#rules tbody tr")
        expect(rows).to_have_count(5)
        expect(page.locator("#rules")).to_contain_text("California desk")
        expect(page.locator("#rules")).to_contain_text("Federal desk")
        assert serious_violations(page) == []
        screenshot(page, "clearing-routing")
    finally:
        ctx.close()
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        login_with_password(page, clearing.base, "lee", PASSWORD)
        token = page.locator("input[name=csrf]").first.get_attribute("value") or ""
        answer = page.request.post(
            f"{clearing.base}/ui/routing/import",
            multipart={
                "csrf": token,
                "file": {"name": "x.csv", "mimeType": "text/csv", "buffer": good.read_bytes()},
            },
        )
        assert answer.status == 403
    finally:
        ctx.close()
    logged = audit_records(clearing.db, "routing.import")
    mine = [r for r in logged if r.actor == "user:dana"]
    assert [(r.details["source"], r.details["rules"]) for r in mine] == [("rules.csv", 5)]
