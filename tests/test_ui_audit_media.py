"""Audit items' media in the web UI, in a real browser (tests/browser.py): an auditor
judges from the media, not from hashes alone (issue 11). Blurred greyscale by default,
an explicit unblur logged in the tamper-evident log, an item without evidence recorded
as damaged-file, breaks and daily caps enforced, an unregistered auditor told how to
register, and the review still blind."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from browser import (
    browser,  # noqa: F401  (fixture)
    login_with_password,
    running_server,
    screenshot,
    serious_violations,
)
from conftest import Served, fresh_pg_database
from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.audit import audit_report, create_audit, get_audit
from ridgeline.audit.models import AuditItem, AuditVerdict
from ridgeline.evidence import generate_key_file, store_evidence
from ridgeline.review.core import add_reviewer
from ridgeline.review.queue import next_item as queue_next_item
from ridgeline.review.queue import release_item
from ridgeline.review.wellness import render_for_review
from ridgeline.store import Store
from ridgeline.timeutil import utcnow
from ridgeline.ui.accounts import add_user

PASSWORD = "correct horse battery staple"
SOURCE = "audit-media-source"  # must never reach the auditor's page (blind)


def synthetic_png(seed: int, size: int = 128) -> bytes:
    """A benign image made in code: sharp coloured blocks."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class AuditSite:
    db: str
    key_file: str
    audit_id: int
    entry_ids: list[int]
    images: dict[int, bytes]  # entries with evidence
    missing: int  # the entry without evidence


def audit_site(tmp: Path, db: str | None = None) -> AuditSite:
    """A list of four entries, three with stored evidence, audited in full by two
    auditors per item; auditors `aud` (registered reviewer), `newaud` (not one),
    `capped` (daily cap 1) and `tired` (break after 1 minute; reviewed 5 minutes in the
    review queue just now, on another list)."""
    db = db or str(tmp / "ridgeline.db")
    key_file = tmp / "evidence.key"
    key = generate_key_file(key_file)
    with Store.open(db) as store, store.session() as s:
        queue = L.create_list(s, "queue-work", review_quorum=2, actor="test")
        work = L.add_entry(s, queue, {"md5": "0" * 31 + "7"}, actor="submitter")
        store_evidence(s, work.id, synthetic_png(99), key, media_type="image/png")
        hl = L.create_list(s, "audited", actor="test")
        ids, images = [], {}
        for n in range(4):
            image = synthetic_png(20 + n)
            entry = L.add_entry(
                s, hl, {"md5": hashlib.md5(image).hexdigest()}, source=SOURCE, actor="submitter"
            )
            ids.append(entry.id)
            if n != 2:
                store_evidence(s, entry.id, image, key, media_type="image/png", actor="submitter")
                images[entry.id] = image
        audit_id = create_audit(s, hl, mode="full", auditors_per_item=2, seed=4, actor="t").id
        add_reviewer(s, "aud")
        add_reviewer(s, "capped", daily_cap=1)
        add_reviewer(s, "tired", break_after_minutes=1, break_minutes=10)
        for name in ("aud", "newaud", "capped", "tired"):
            add_user(s, name, "auditor", PASSWORD)
        # `tired` reviewed in the review queue from 5 minutes ago until 20 s ago
        now = utcnow()
        held = queue_next_item(s, "tired", now=now - dt.timedelta(minutes=5))
        assert held is not None and held.entry_id == work.id
        release_item(s, "tired", work.id, now=now - dt.timedelta(seconds=20))
    return AuditSite(db, str(key_file), audit_id, ids, images, ids[2])


def serve(site: AuditSite) -> contextlib.AbstractContextManager[Served]:
    return running_server(
        "serve", "--port", "{port}", "--db", site.db, "--no-access-log",
        "--evidence-key-file", site.key_file,
    )  # fmt: skip


def fetch_in_page(page: Page) -> tuple[int, str, bytes]:
    """The page's own <img> source fetched from inside the page: status, cache-control,
    body."""
    got = page.evaluate(
        """async () => {
            const r = await fetch(document.getElementById("media").src);
            const body = new Uint8Array(await r.arrayBuffer());
            return [r.status, r.headers.get("cache-control"), Array.from(body)];
        }"""
    )
    return int(got[0]), str(got[1]), bytes(got[2])


def sharpest_step(img: Image.Image) -> float:
    """The largest jump between neighbouring pixels: ~160 at the blocks' sharp edges,
    single digits once blurred."""
    a = np.asarray(img.convert("L"), dtype=np.int16)
    return float(max(np.abs(np.diff(a, axis=0)).max(), np.abs(np.diff(a, axis=1)).max()))


def current_entry(page: Page) -> int:
    action = page.locator("#audit-form").get_attribute("action") or ""
    found = re.search(r"/items/(\d+)/verdict$", action)
    assert found, action
    return int(found.group(1))


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_audit_media_blurred_unblur_logged_damaged_file(
    tmp_path: Path,
    browser: Browser,  # noqa: F811
    backend: str,
) -> None:
    """A registered auditor sees each item's media blurred greyscale, unblurs one (logged
    in the tamper-evident log), the item without evidence is recorded as damaged-file
    and the page says so; an unregistered auditor is told how to register; blind."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_pg_database()) if backend == "postgresql" else None
        site = audit_site(tmp_path, url)
        served = stack.enter_context(serve(site))
        review = f"{served.base}/ui/audits/{site.audit_id}/review"

        ctx = stack.enter_context(contextlib.closing(browser.new_context()))
        page = ctx.new_page()
        login_with_password(page, served.base, "newaud", PASSWORD)
        page.goto(review)
        expect(page.locator("#not-reviewer")).to_contain_text("not a registered reviewer")
        expect(page.locator("#not-reviewer")).to_contain_text("ridgeline reviewers add newaud")
        expect(page.locator("#media")).to_have_count(0)  # no broken image
        expect(page.locator("#damaged")).to_have_count(0)  # nothing recorded for them
        assert SOURCE not in page.content()

        ctx = stack.enter_context(contextlib.closing(browser.new_context()))
        page = ctx.new_page()
        login_with_password(page, served.base, "aud", PASSWORD)
        page.goto(review)
        judged: list[int] = []
        notes: list[str] = []
        unblurred_entry = None
        while page.locator("#audit-done").count() == 0:
            expect(page.get_by_role("heading", level=1)).to_contain_text("blind review")
            html = page.content()
            assert SOURCE not in html and "submitter" not in html  # blind
            assert "pending" not in html and "confirmed" not in html  # no entry status
            if page.locator("#damaged").count():
                notes.append(page.locator("#damaged").inner_text())
            entry_id = current_entry(page)
            assert entry_id in site.images  # the one without evidence is never shown
            expect(page.locator("#media")).to_have_js_property("complete", True)
            status, cache, body = fetch_in_page(page)
            assert status == 200 and cache == "no-store"
            shown = Image.open(io.BytesIO(body))
            assert shown.mode == "L"  # greyscale
            original = Image.open(io.BytesIO(site.images[entry_id])).convert("L")
            assert sharpest_step(shown) < sharpest_step(original) / 10  # strongly blurred
            assert body == render_for_review(site.images[entry_id])
            if unblurred_entry is None:
                assert serious_violations(page) == []
                screenshot(page, "audit-review")  # docs/img/ui-audit-review.png
                page.get_by_role("button", name="Unblur (logged)").click()
                expect(page.get_by_text("Unblurred view: this was logged.")).to_be_visible()
                expect(page.locator("#media")).to_have_js_property("complete", True)
                _, _, body = fetch_in_page(page)
                sharp = Image.open(io.BytesIO(body))
                assert sharp.mode == "L" and sharpest_step(sharp) > sharpest_step(shown) * 10
                assert body == render_for_review(site.images[entry_id], unblurred=True)
                unblurred_entry = entry_id
            page.keyboard.press("v")
            expect(page.locator("#v-yes")).to_be_checked()
            with page.expect_navigation():
                page.keyboard.press("Enter")
            judged.append(entry_id)
        if page.locator("#damaged").count():
            notes.append(page.locator("#damaged").inner_text())
        assert sorted(judged) == sorted(site.images)
        assert notes == [f"Entry {site.missing} had no evidence stored: recorded as damaged-file."]
        # (every item after the unblurred one was checked blurred again above)
        page.goto(f"{served.base}/ui/audits/{site.audit_id}")
        expect(page.locator("#media-basis")).to_contain_text(
            "4 after viewing the item's media (or finding none stored), 0 from hashes alone"
        )
        # (the database is checked while it still exists: PostgreSQL's is dropped after)
        with Store.open(site.db) as store, store.session() as s:
            records = auditlog.records(s, action="audit.unblur", limit=None)
            # the page's <img> and the test's in-page fetch: each unblurred view is logged
            assert [r.actor for r in records] == ["aud", "aud"]
            assert {r.subject for r in records} == {f"audit:{site.audit_id}"}
            assert {json.loads(r.details)["entry_id"] for r in records} == {unblurred_entry}
            assert auditlog.verify(s).ok
            rows = s.execute(
                select(AuditItem.entry_id, AuditVerdict.auditor, AuditVerdict.verified,
                       AuditVerdict.reason)
                .join(AuditItem, AuditItem.id == AuditVerdict.item_id)
                .where(AuditVerdict.audit_id == site.audit_id)
            ).all()  # fmt: skip
            mine = {entry_id: (verified, reason) for entry_id, who, verified, reason in rows}
            assert {who for _, who, _, _ in rows} == {"aud"}
            assert mine == {
                **{e: (True, None) for e in site.images},
                site.missing: (False, "damaged-file"),
            }
            media = audit_report(s, get_audit(s, site.audit_id))["media"]
            assert media["verdicts_from_hashes_alone"] == 0  # damaged-file needs no view
            assert media["verdicts_after_viewing"] == 4


def test_audit_media_break_and_daily_cap(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    """An auditor due a break (after review-queue work) gets the break page and no media;
    one at their daily cap gets the limit page after their one item."""
    site = audit_site(tmp_path)
    with serve(site) as served, contextlib.ExitStack() as stack:
        review = f"{served.base}/ui/audits/{site.audit_id}/review"
        ctx = stack.enter_context(contextlib.closing(browser.new_context()))
        page = ctx.new_page()
        login_with_password(page, served.base, "tired", PASSWORD)
        response = page.goto(review)
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Take a break")
        expect(page.locator("#break-message")).to_contain_text("take a break until")
        expect(page.locator("#media")).to_have_count(0)
        some = next(iter(site.images))
        refused = page.request.get(f"{served.base}/ui/audits/{site.audit_id}/items/{some}/media")
        assert refused.status == 403 and not refused.body().startswith(b"\x89PNG")

        ctx = stack.enter_context(contextlib.closing(browser.new_context()))
        page = ctx.new_page()
        login_with_password(page, served.base, "capped", PASSWORD)
        page.goto(review)
        expect(page.locator("#media")).to_have_js_property("complete", True)
        expect(page.locator("#exposure-count")).to_have_text("0")  # counted on viewing
        page.keyboard.press("v")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text("Daily limit reached")
        expect(page.locator("#break-message")).to_contain_text("daily exposure cap of 1")
