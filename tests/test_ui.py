"""The web UI in a real browser: Debian's Chromium under Playwright against a real
`ridgeline serve` (tests/browser.py). Pages by role, login and sessions, CSRF, the
review flow with wellness, audits, lists and search, accessibility, screenshots."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

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
from ridgeline import lists as L
from ridgeline.audit import create_audit
from ridgeline.evidence import generate_key_file, store_evidence
from ridgeline.review.core import add_reviewer
from ridgeline.review.wellness import render_for_review
from ridgeline.service.auth import POLICY
from ridgeline.service.keys import ROLES, create_key
from ridgeline.store import Store
from ridgeline.ui.accounts import add_user
from ridgeline.ui.app import PAGES
from ridgeline.ui.web import PUBLIC, SESSION, UI_POLICY
from ui_samples import seed_clearinghouse

PASSWORD = "correct horse battery staple"
BENIGN = [f"ridgeline ui benign file {i}\n".encode() for i in range(6)]


def synthetic_png(seed: int = 3, size: int = 96) -> bytes:
    """A benign image made in code: coloured blocks."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def ridgeline(*args: str) -> str:
    exe = str(Path(sys.executable).parent / "ridgeline")
    return subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Site:
    base: str
    db: str
    keys: dict[str, str]
    entry_ids: list[int]
    audit_id: int
    run_id: int
    release_key: str = ""
    list_name: str = "ui-lists"
    extra: dict[str, int] = field(default_factory=dict)


def build_site(db: str, tmp: Path) -> tuple[dict[str, str], list[int], int, str]:
    """Seed `db`: a key per role, a list with a signed release, an audit, a scan with a
    match, victims. Returns the keys, the entry ids, the audit id, the release key id."""
    from ridgeline.victims.registry import import_files
    from ridgeline.victims.synth import generate

    store = Store.open(db)
    key = generate_key_file(tmp / "evidence.key")  # serve --evidence-key-file (audit media)
    with store.session() as s:
        keys = {
            role: create_key(
                s, role, role, agency="Example Agency" if role == "law-enforcement" else None
            )[1]
            for role in ROLES
        }
        for name in ("admin", "reviewer", "auditor"):
            add_reviewer(s, name)
        hl = L.create_list(s, "ui-lists", description="benign test hashes", actor="test")
        ids = [
            L.add_entry(
                s, hl, {"md5": hashlib.md5(b).hexdigest()}, source="ui-test", actor="test"
            ).id
            for b in BENIGN
        ]
        for n, entry_id in enumerate(ids):  # auditors judge from the media, not hashes alone
            store_evidence(s, entry_id, synthetic_png(n), key, media_type="image/png", actor="test")
        audit_id = create_audit(s, hl, mode="full", auditors_per_item=1, seed=1, actor="t").id
    import_files(store, generate(seed=5, n=150).write(tmp / "victims"))
    store.close()
    seed_clearinghouse(db)  # received reports, a case, triage, routing to Example Agency
    scan_dir = tmp / "scan"
    scan_dir.mkdir()
    (scan_dir / "match.txt").write_bytes(BENIGN[0])
    (scan_dir / "other.txt").write_bytes(b"nothing known\n")
    ridgeline("scan", str(scan_dir), "--db", db, "--format", "json")
    made = json.loads(
        ridgeline("lists", "keygen", "--out", str(tmp / "release"), "--format", "json")
    )
    ridgeline("lists", "release", "ui-lists", "--key", str(tmp / "release.key"),
              "--out", str(tmp / "releases"), "--db", db)  # fmt: skip
    return keys, ids, audit_id, str(made["key_id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server (two workers: sessions must hold in each) for the read-mostly tests.
    The review flow and the break get servers of their own."""
    tmp = tmp_path_factory.mktemp("ui-site")
    db = str(tmp / "ridgeline.db")
    keys, ids, audit_id, release_key = build_site(db, tmp)
    args = ("serve", "--port", "{port}", "--db", db, "--workers", "2", "--no-access-log",
            "--evidence-key-file", str(tmp / "evidence.key"))  # fmt: skip
    with running_server(*args) as served:
        yield Site(served.base, db, keys, ids, audit_id, run_id=1, release_key=release_key)


def get_pages(site: Site, method: str = "GET") -> list[tuple[str, str]]:
    """(url path, permission) of every page answering `method`, with real ids filled in."""
    values = {
        "{entry_id:int}": str(site.entry_ids[0]),
        "{name}": site.list_name,
        "{audit_id:int}": str(site.audit_id),
        "{run_id:int}": str(site.run_id),
        "{hold_id:int}": "1",
        "{item_id:int}": "1",
        # the first sample report: in case 1, made available to the LE key's agency,
        # its file 0 viewed by the ESP (open to the agency)
        "{report_id:int}": "1",
        "{case_id:int}": "1",
        "{position:int}": "0",
    }
    out = []
    for p in PAGES:
        # The media route needs an item served to the viewer: the review flow covers it.
        if method not in p.methods or p.permission == PUBLIC or p.path.endswith("/media"):
            continue
        path = p.path
        for k, v in values.items():
            path = path.replace(k, v)
        assert "{" not in path, path
        out.append((f"/ui{path}", p.permission))
    return out


def allowed(role: str, permission: str) -> bool:
    if permission == SESSION:
        return True
    return role in (POLICY.get(permission) or UI_POLICY[permission])


def test_every_page_by_every_role(site: Site, browser: Browser) -> None:  # noqa: F811
    """Each page loads (200) for the roles its permission allows and is refused (403)
    for the others; anonymous visitors are sent to the login page."""
    pages = get_pages(site)
    assert len(pages) >= 15
    posts = get_pages(site, "POST")
    assert len(posts) >= 10
    anon = browser.new_context()
    try:
        page = anon.new_page()
        for path, _ in pages:
            page.goto(site.base + path)
            assert page.url == f"{site.base}/ui/login", path
    finally:
        anon.close()
    for role in ROLES:
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            login_with_key(page, site.base, site.keys[role])
            for path, permission in pages:
                response = page.goto(site.base + path)
                assert response is not None
                want = 200 if allowed(role, permission) else 403
                assert response.status == want, (role, path, response.status, page.content())
                headers = response.headers
                assert "script-src 'self'" in headers["content-security-policy"]
                assert "frame-ancestors 'none'" in headers["content-security-policy"]
                assert headers["x-frame-options"] == "DENY"
                assert headers["referrer-policy"] == "no-referrer"
                assert headers["x-content-type-options"] == "nosniff"
            # every state-changing page refuses the roles it does not allow, even with
            # the session's own CSRF token (allowed roles: the flows below)
            token = page.locator("input[name=csrf]").first.get_attribute("value")
            assert token
            for path, permission in posts:
                if not allowed(role, permission):
                    answer = page.request.post(site.base + path, form={"csrf": token})
                    assert answer.status == 403, (role, path, answer.status)
            nav = page.get_by_role("navigation", name="Main")
            expect(nav.get_by_role("link", name="Lists")).to_have_count(
                1 if allowed(role, "lists:read") else 0
            )
        finally:
            ctx.close()


def test_password_login_logout_and_revocation(
    site: Site,
    context: BrowserContext,  # noqa: F811
) -> None:
    """A password user logs in and out; disabling them ends their session at once, and
    a revoked API key ends the sessions made with it."""
    ridgeline("users", "add", "pat", "--role", "analyst", "--password", PASSWORD, "--db", site.db)
    listed = ridgeline("users", "ls", "--db", site.db, "--format", "json")
    assert '"pat"' in listed and "password" not in listed
    page = context.new_page()
    page.goto(f"{site.base}/ui/login")
    page.get_by_label("Name", exact=True).fill("pat")
    page.get_by_label("Password").fill("wrong password here")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong name or password")
    login_with_password(page, site.base, "pat", PASSWORD)
    page.get_by_role("button", name="Log out").click()
    # guessing: after 5 failures the name is refused, even with the right password
    for _ in range(5):
        page.get_by_label("Name", exact=True).fill("pat")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("Wrong name or password")
    page.get_by_label("Name", exact=True).fill("pat")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed logins")
    with Store.open(site.db).session() as s:
        add_user(s, "pat2", "analyst", PASSWORD)
    login_with_password(page, site.base, "pat2", PASSWORD)
    cookie = next(c for c in context.cookies() if c["name"] == "rl_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert not cookie["secure"]  # plain HTTP here; Secure when served over TLS
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{site.base}/ui/login")
    page.goto(f"{site.base}/ui/lists")
    assert page.url == f"{site.base}/ui/login"  # the old cookie no longer works
    login_with_password(page, site.base, "pat2", PASSWORD)
    ridgeline("users", "disable", "pat2", "--db", site.db)
    page.goto(f"{site.base}/ui/lists")
    assert page.url == f"{site.base}/ui/login"
    # a session made with an API key ends with the key
    with Store.open(site.db).session() as s:
        key_row, secret = create_key(s, "temp-analyst", "analyst")
        key_id = key_row.id
    login_with_key(page, site.base, secret)
    ridgeline("keys", "revoke", str(key_id), "--db", site.db)
    page.goto(f"{site.base}/ui/lists")
    assert page.url == f"{site.base}/ui/login"


def test_csrf_less_post_is_refused(site: Site, context: BrowserContext) -> None:  # noqa: F811
    page = context.new_page()
    login_with_key(page, site.base, site.keys["curator"])
    entry = site.entry_ids[1]
    url = f"{site.base}/ui/entries/{entry}/enabled"
    assert page.request.post(url, form={"enabled": "no"}).status == 403
    assert page.request.post(url, form={"enabled": "no", "csrf": "forged"}).status == 403
    page.goto(f"{site.base}/ui/entries/{entry}")
    expect(page.locator("#entry-enabled")).to_have_text("yes")
    # anonymous: refused before the body is read
    anon = context.browser.new_context()  # type: ignore[union-attr]
    try:
        answer = anon.request.post(url, form={"enabled": "no"})
        assert answer.status == 401
    finally:
        anon.close()
    # the form itself carries the token and works
    page.get_by_label("Reason").fill("test disable")
    page.get_by_role("button", name="Disable this entry").click()
    expect(page.locator("#entry-enabled")).to_have_text("no")
    expect(page.locator("#history")).to_contain_text("disable by key:curator")
    page.get_by_role("button", name="Enable this entry").click()
    expect(page.locator("#entry-enabled")).to_have_text("yes")


def test_lists_search_by_hash_and_by_file(
    site: Site,
    context: BrowserContext,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = context.new_page()
    login_with_key(page, site.base, site.keys["analyst"])
    page.goto(f"{site.base}/ui/lists")
    page.get_by_role("link", name="ui-lists").click()
    expect(page.locator("#entries tbody tr")).to_have_count(len(BENIGN))
    releases = page.locator("#releases tbody tr")
    expect(releases).to_have_count(1)
    expect(releases).to_contain_text("snapshot: 6")
    expect(releases).to_contain_text(site.release_key)  # the signing key's id
    page.goto(f"{site.base}/ui/search")
    page.get_by_label("Signal").select_option("md5")
    page.get_by_label("Hash", exact=True).fill(hashlib.md5(BENIGN[2]).hexdigest().upper())
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#matches tbody tr")).to_have_count(1)
    expect(page.locator("#matches")).to_contain_text(str(site.entry_ids[2]))
    upload = tmp_path / "probe.txt"
    upload.write_bytes(BENIGN[3])
    page.get_by_label("File (hashed on the server, not kept)").set_input_files(str(upload))
    page.get_by_role("button", name="Hash and search").click()
    expect(page.locator("#matches")).to_contain_text(str(site.entry_ids[3]))
    expect(page.get_by_text(hashlib.sha256(BENIGN[3]).hexdigest())).to_be_visible()
    page.get_by_role("link", name=str(site.entry_ids[3])).click()
    expect(page.locator("#history")).to_contain_text("create by test")
    expect(page.get_by_role("button", name=re.compile("able this entry"))).to_have_count(0)


def blind_review(page: Page, items: int, exception_first: bool) -> None:
    """Answer every item of the blind audit page with the keyboard.

    Each Enter submits the form and the next item arrives at the same URL, so the next
    key press must wait for that page's load event: pressed earlier, it lands on the old
    page or on the new one before its deferred ui.js has attached the shortcuts, and is
    lost (the flake seen once in a full run). The page goto above has loaded already."""
    for n in range(items):
        expect(page.get_by_role("heading", level=1)).to_contain_text("blind review")
        assert "ui-test" not in page.content()  # blind: no source, status or verdicts
        expect(page.locator("#media")).to_have_js_property("complete", True)
        assert page.locator("#media").evaluate("img => img.naturalWidth") > 0  # shown
        if n == 0 and exception_first:
            page.keyboard.press("x")
            expect(page.locator("#v-no")).to_be_checked()
            page.get_by_label("Exception reason").select_option("damaged-file")
            page.locator("body").focus()
        else:
            page.keyboard.press("v")
            expect(page.locator("#v-yes")).to_be_checked()
        with page.expect_navigation(wait_until="load"):
            page.keyboard.press("Enter")
    expect(page.locator("#audit-done")).to_be_visible()


def test_audit_create_blind_review_and_results(
    site: Site,
    browser: Browser,  # noqa: F811
) -> None:
    """An auditor creates an audit with two auditors per item; both review blind; the
    results show the verified share with its intervals, kappa and the exceptions."""
    with Store.open(site.db).session() as s:
        add_user(s, "aud2", "auditor", PASSWORD)
        add_reviewer(s, "aud2")  # auditors see the media, so they are registered reviewers
    first, second = browser.new_context(), browser.new_context()
    try:
        page = first.new_page()
        login_with_key(page, site.base, site.keys["auditor"])
        page.goto(f"{site.base}/ui/audits")
        page.get_by_label("List").select_option("ui-lists")
        page.get_by_label("Sampling").select_option("full")
        page.get_by_label("Auditors per item").fill("2")
        page.get_by_label("Seed (optional)").fill("7")
        page.get_by_role("button", name="Create audit").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("of ui-lists (open)")
        results = page.url
        page.get_by_role("link", name="Review blind").click()
        blind_review(page, len(BENIGN), exception_first=True)
        other = second.new_page()
        login_with_password(other, site.base, "aud2", PASSWORD)
        other.goto(results + "/review")
        blind_review(other, len(BENIGN), exception_first=False)
        page.goto(results)
        expect(page.locator("#verified-share")).to_contain_text("83.3% (5 of 6)")
        expect(page.locator("#verified-share")).to_contain_text("Wilson interval")
        expect(page.locator("#kappa")).to_contain_text("6 pairs, observed 0.83")
        expect(page.locator("#kappa")).to_contain_text("Cohen's kappa")
        expect(page.locator("#media-basis")).to_contain_text(
            "12 after viewing the item's media (or finding none stored), 0 from hashes alone"
        )
        expect(page.locator("#exceptions")).to_contain_text("disagreement")
        expect(page.get_by_role("list").filter(has_text="disagreement")).to_be_visible()
        screenshot(page, "audit-results")
    finally:
        first.close()
        second.close()


def test_pages_are_accessible_with_strict_csp(
    site: Site,
    context: BrowserContext,  # noqa: F811
) -> None:
    """axe-core finds no serious or critical violation on any page; the CSP blocks
    nothing the pages need (no inline script or style); a screenshot of each page."""
    page = context.new_page()
    refused = csp_errors(page)
    page.goto(f"{site.base}/ui/login")
    assert serious_violations(page) == []
    screenshot(page, "login")
    login_with_key(page, site.base, site.keys["admin"])
    for path, _ in get_pages(site):
        page.goto(site.base + path)
        assert serious_violations(page) == [], path
        screenshot(page, path.removeprefix("/ui/") or "dashboard")
    assert refused == []


def test_every_page_loads_on_postgresql(
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    """The same pages over PostgreSQL (the role matrix above runs on SQLite)."""
    with fresh_pg_database() as url:
        keys, ids, audit_id, release_key = build_site(url, tmp_path)
        key_file = str(tmp_path / "evidence.key")
        args = ("serve", "--port", "{port}", "--db", url, "--no-access-log",
                "--evidence-key-file", key_file)  # fmt: skip
        with running_server(*args) as served:
            pg = Site(served.base, url, keys, ids, audit_id, run_id=1, release_key=release_key)
            ctx = browser.new_context()
            try:
                page = ctx.new_page()
                # admins use every page but the agency view, which law enforcement uses
                for role in ("law-enforcement", "admin"):
                    page.context.clear_cookies()
                    login_with_key(page, pg.base, keys[role])
                    for path, permission in get_pages(pg):
                        if allowed(role, permission):
                            response = page.goto(pg.base + path)
                            assert response is not None and response.status == 200, path
                page.goto(f"{pg.base}/ui/lists/ui-lists")
                expect(page.locator("#releases")).to_contain_text(release_key)
                page.goto(f"{pg.base}/ui/victims")
                expect(page.locator("#indicator-summary")).to_contain_text("known victims")
            finally:
                ctx.close()


# --- the review flow, on servers of its own --------------------------------------


@dataclass
class ReviewSite:
    base: str
    db: str
    entry_id: int
    image: bytes
    keys: dict[str, str]


def review_site(
    tmp: Path, names: list[str], *, disputed: bool = False, db: str | None = None
) -> tuple[str, int, bytes, dict[str, str], str]:
    """A list with quorum 3 and one pending entry with benign synthetic media; with
    `disputed`, first an entry two reviewers disagreed on (for a senior)."""
    from ridgeline.review.core import submit_verdict
    from ridgeline.review.queue import next_item

    db = db or str(tmp / "ridgeline.db")
    key_file = tmp / "evidence.key"
    key = generate_key_file(key_file)
    image = synthetic_png()
    with Store.open(db).session() as s:
        hl = L.create_list(s, "ui-review", review_quorum=3, actor="test")
        if disputed:
            other = L.add_entry(s, hl, {"md5": "0" * 31 + "1"}, actor="submitter")
            store_evidence(s, other.id, synthetic_png(9), key, media_type="image/png")
            for name, decision in (("x1", "csam"), ("x2", "not-csam")):
                add_reviewer(s, name)
                item = next_item(s, name)
                assert item is not None and item.entry_id == other.id
                submit_verdict(
                    s, other.id, name, decision, ["industry:A1"] if decision == "csam" else []
                )
            assert L.get_entry(s, other.id).status == "disputed"
            add_reviewer(s, "sen", senior=True, reviewer=False)
            add_user(s, "sen", "reviewer", PASSWORD)
        entry = L.add_entry(
            s, hl, {"md5": hashlib.md5(image).hexdigest()}, source="ui-test", actor="submitter"
        )
        store_evidence(s, entry.id, image, key, media_type="image/png", actor="submitter")
        keys = {"analyst": create_key(s, "ann", "analyst")[1]}
        for name in names:
            add_reviewer(s, name)
        add_user(s, "rev1", "reviewer", PASSWORD)
        add_user(s, "rev2", "reviewer", PASSWORD)
        keys["rev3"] = create_key(s, "rev3", "reviewer")[1]
        entry_id = entry.id
    return db, entry_id, image, keys, str(key_file)


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_review_flow_three_reviewers_confirm(
    tmp_path: Path,
    browser: Browser,  # noqa: F811
    backend: str,
) -> None:
    """Three reviewers confirm an entry in the browser (blurred by default, keyboard
    verdicts, others' verdicts hidden until one's own); unblurring is logged; a fourth
    user sees the entry listed; a disputed entry goes to the senior reviewer."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_pg_database()) if backend == "postgresql" else None
        review_flow(tmp_path, browser, url)


def review_flow(tmp_path: Path, browser: Browser, url: str | None) -> None:  # noqa: F811
    db, entry_id, image, keys, key_file = review_site(
        tmp_path, ["rev1", "rev2", "rev3"], disputed=True, db=url
    )
    args = ("serve", "--port", "{port}", "--db", db, "--evidence-key-file", key_file)
    with running_server(*args, "--no-access-log") as served:
        base = served.base
        for n, who in enumerate(["rev1", "rev2", "rev3"]):
            ctx = browser.new_context()
            try:
                page = ctx.new_page()
                if who == "rev3":
                    login_with_key(page, base, keys["rev3"])
                else:
                    login_with_password(page, base, who, PASSWORD)
                page.goto(f"{base}/ui/review/{entry_id}")
                expect(page.get_by_text("submit your own verdict")).to_be_visible()
                page.goto(f"{base}/ui/review")
                expect(page.get_by_role("heading", level=1)).to_have_text(
                    f"Review entry {entry_id}"
                )
                media = page.request.get(f"{base}/ui/review/{entry_id}/media")
                assert media.body() == render_for_review(image)  # blurred greyscale
                expect(page.locator("#exposure-count")).to_have_text("1")
                expect(page.locator("#timer")).to_be_visible()
                if n == 0:
                    screenshot(page, "review")
                    assert serious_violations(page) == []
                    # the keys below need the reloaded page's ui.js: wait for its load
                    with page.expect_navigation(wait_until="load"):
                        page.get_by_role("button", name="Unblur (logged)").click()
                    expect(page.get_by_text("Unblurred view: this was logged.")).to_be_visible()
                    expect(page.locator("#media")).to_have_js_property("complete", True)
                    media = page.request.get(f"{base}/ui/review/{entry_id}/media")
                    assert media.body() == render_for_review(image, unblurred=True)
                page.keyboard.press("c")
                expect(page.locator("#d-csam")).to_be_checked()
                page.keyboard.press("1")
                expect(page.locator("#i-A1")).to_be_checked()
                page.keyboard.press("Enter")
                page.wait_for_url(f"{base}/ui/review/{entry_id}")
                expect(page.get_by_role("table")).to_contain_text(who)  # now visible
                want = "confirmed" if n == 2 else "pending"
                expect(page.get_by_role("heading", level=1)).to_contain_text(want)
                if n == 2:
                    screenshot(page, "review-status")
            finally:
                ctx.close()
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            login_with_key(page, base, keys["analyst"])
            page.goto(f"{base}/ui/lists/ui-review")
            row = page.locator("#entries tbody tr").filter(
                has=page.get_by_role("link", name=str(entry_id), exact=True)
            )
            expect(row).to_contain_text("confirmed")
            page.goto(f"{base}/ui/entries/{entry_id}")
            expect(page.locator("#entry-status")).to_have_text("confirmed")
            history = page.locator("#history")
            expect(history).to_contain_text("unblur by rev1 (unblurred view)")
            screenshot(page, "entry")
            response = page.goto(f"{base}/ui/review")
            assert response is not None and response.status == 403  # analysts do not review
        finally:
            ctx.close()
        # the disputed entry goes to the senior reviewer only, verdicts still hidden
        disputed = entry_id - 1
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            login_with_password(page, base, "sen", PASSWORD)
            page.goto(f"{base}/ui/review/{disputed}")
            expect(page.get_by_text("submit your own verdict")).to_be_visible()
            page.goto(f"{base}/ui/review")
            expect(page.get_by_role("heading", level=1)).to_have_text(f"Review entry {disputed}")
            expect(page.get_by_text("senior (disputed)")).to_be_visible()
            page.keyboard.press("n")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/ui/review/{disputed}")
            expect(page.get_by_role("table")).to_contain_text("x2")
            expect(page.get_by_role("heading", level=1)).not_to_contain_text("disputed")
        finally:
            ctx.close()
    with Store.open(db).session() as s:
        events = [e for e in L.entry_history(s, entry_id) if e.action == "unblur"]
        # each unblurred view is logged: the page's image and the test's own fetch
        assert [e.actor for e in events] == ["rev1", "rev1"]


def test_review_break_is_enforced(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    """After the configured review time (3 s here) the page's timer reloads it and the
    queue refuses until the break is over."""
    db, entry_id, _, _, key_file = review_site(tmp_path, ["rev1"])
    env = {
        "RIDGELINE_REVIEW_BREAK_AFTER_MINUTES": "0.05",
        "RIDGELINE_REVIEW_BREAK_MINUTES": "10",
    }
    args = ("serve", "--port", "{port}", "--db", db, "--evidence-key-file", key_file)
    with running_server(*args, "--no-access-log", env=env) as served:
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            login_with_password(page, served.base, "rev1", PASSWORD)
            page.goto(f"{served.base}/ui/review")
            expect(page.get_by_role("heading", level=1)).to_have_text(f"Review entry {entry_id}")
            expect(page.locator("#break-message")).to_contain_text(
                "take a break until", timeout=15_000
            )
            screenshot(page, "break")
            response = page.goto(f"{served.base}/ui/review")
            assert response is not None and response.status == 403
        finally:
            ctx.close()


def test_scan_matches_quarantine_restore_and_flood_hold(
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    """A curator reads a scan's matches with their explanations, restores a quarantined
    file, and releases a flood hold, in the browser."""
    db = str(tmp_path / "ridgeline.db")
    with Store.open(db).session() as s:
        hl = L.create_list(s, "ui-scan", actor="test")
        for b in BENIGN[:2]:
            L.add_entry(s, hl, {"md5": hashlib.md5(b).hexdigest()}, source="ui-test", actor="t")
        curator = create_key(s, "cur", "curator")[1]
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir()
    many.mkdir()
    (one / "match.txt").write_bytes(BENIGN[0])
    for n in range(3):
        (many / f"copy{n}.txt").write_bytes(BENIGN[1])
    quarantine = tmp_path / "quarantine"
    ridgeline("scan", str(one), "--db", db, "--action", "quarantine",
              "--quarantine-dir", str(quarantine))  # fmt: skip
    assert not (one / "match.txt").exists()
    ridgeline("scan", str(many), "--db", db, "--flood-max", "1")
    args = ("serve", "--port", "{port}", "--db", db, "--no-access-log")
    with running_server(*args) as served:
        ctx = browser.new_context()
        try:
            page = ctx.new_page()
            login_with_key(page, served.base, curator)
            page.get_by_role("link", name="Scans", exact=True).click()
            page.locator("table a").last.click()  # the first run
            expect(page.get_by_role("table")).to_contain_text("on ui-scan: md5 distance 0")
            page.get_by_role("link", name="Quarantine", exact=True).click()
            row = page.locator("tbody tr").filter(has_text="match.txt")
            with page.expect_navigation(wait_until="load"):
                row.get_by_role("button", name="Restore").click()
            expect(page.locator("tbody tr").filter(has_text="match.txt")).to_contain_text(
                "restored"
            )
            assert (one / "match.txt").read_bytes() == BENIGN[0]
            page.get_by_role("link", name="Flood holds", exact=True).click()
            held = page.locator("tbody tr").filter(has_text="held")
            expect(held).to_have_count(1)
            with page.expect_navigation(wait_until="load"):
                held.get_by_role("button", name="Release").click()
            expect(page.locator("tbody tr")).to_contain_text("released_by: key:cur")
            assert serious_violations(page) == []
        finally:
            ctx.close()
