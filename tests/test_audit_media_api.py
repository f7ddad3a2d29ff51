"""Issue 11 point 15 over HTTP: `GET /v1/audits/{id}/items/{entry}/media` on a real
`ridgeline serve` (SQLite and PostgreSQL) serves audit media as the review queue does:
blurred greyscale by default, unblur logged in the tamper-evident log, breaks and daily
caps enforced, blindness kept, and `damaged-file` recorded when no evidence exists."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from ridgeline import audit as A
from ridgeline import auditlog
from ridgeline import evidence as ev
from ridgeline import lists as L
from ridgeline.review.core import add_reviewer
from ridgeline.review.models import ReviewView
from ridgeline.service.keys import create_key
from ridgeline.store import Store
from ridgeline.timeutil import utcnow


def _card() -> bytes:
    """A benign test card: stripes and checks, made in code."""
    y, x = np.mgrid[0:96, 0:96]
    rgb = np.stack([(x * 8) % 256, (y * 8) % 256, ((x // 4 + y // 4) % 2) * 255], -1)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _edges(png: bytes) -> float:
    """Mean difference between neighbouring pixels: small when blurred."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(np.abs(np.diff(pixels, axis=1)).mean())


def test_audit_media_over_http_like_review(
    store: Store, tmp_path: Path, serve_process: Callable[..., Any]
) -> None:
    key_file = tmp_path / "evidence.key"
    key = ev.generate_key_file(key_file)
    with store.session() as s:
        hl = L.create_list(s, "c")
        with_media = L.add_entry(s, hl, {"md5": "1" * 32}, actor="curator").id
        without = L.add_entry(s, hl, {"md5": "2" * 32}, actor="curator").id
        elsewhere = L.add_entry(s, L.create_list(s, "other"), {"md5": "3" * 32}).id
        ev.store_evidence(s, with_media, _card(), key, media_type="image/png")
        for name, settings in (
            ("ann", {}),
            ("cap", {"daily_cap": 1}),
            ("brk", {"break_after_minutes": 1, "break_minutes": 60}),
            ("curator", {}),
        ):
            add_reviewer(s, name, **settings)  # type: ignore[arg-type]
        # brk has reviewed for ten minutes without a break (elsewhere, not this list)
        now = utcnow()
        s.add(ReviewView(reviewer="brk", entry_id=elsewhere, category="review",
                         started_at=now - dt.timedelta(minutes=10), ended_at=now,
                         unblurred=False))  # fmt: skip
        audit_id = A.create_audit(s, hl, mode="full", auditors_per_item=2).id
        keys = {n: create_key(s, n, "auditor", rate_limit=1000)[1]
                for n in ("ann", "cap", "brk", "curator")}  # fmt: skip
    server = serve_process(
        "serve", "--port", "{port}", "--db", store.url, "--evidence-key-file", str(key_file)
    )  # fmt: skip

    def get(who: str, entry: int, **params: Any) -> httpx.Response:
        return httpx.get(
            f"{server.base}/v1/audits/{audit_id}/items/{entry}/media",
            params=params,
            headers={"Authorization": f"Bearer {keys[who]}"},
            timeout=30,
        )

    # blurred greyscale by default, never cached
    res = get("ann", with_media)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "image/png"
    assert res.headers["cache-control"] == "no-store"
    blurred = Image.open(io.BytesIO(res.content))
    assert blurred.mode == "L"
    # unblurred on request: still greyscale, sharper, and logged with the reason
    sharp = get("ann", with_media, unblurred="true", reason="grading")
    assert sharp.status_code == 200 and Image.open(io.BytesIO(sharp.content)).mode == "L"
    assert _edges(sharp.content) > 2 * _edges(res.content)
    colour = get("ann", with_media, colour="true", reason="colour needed")
    assert Image.open(io.BytesIO(colour.content)).mode == "RGB"
    with store.session() as s:
        unblurs = [r for r in auditlog.records(s) if r.action == "audit.unblur"]
        assert [r.actor for r in unblurs] == ["ann", "ann"]
        assert [json.loads(r.details)["reason"] for r in unblurs] == ["grading", "colour needed"]
        assert auditlog.verify(s).ok  # the tamper-evident chain holds
    # no evidence: 404 damaged_file, and the exception is recorded
    res = get("ann", without)
    assert res.status_code == 404 and res.json()["error"]["code"] == "damaged_file"
    with store.session() as s:
        outcomes = {o["entry_id"]: o for o in A.item_outcomes(s, A.get_audit(s, audit_id))}
        assert outcomes[without]["verdicts"] == [
            {"auditor": "ann", "verified": False, "reason": "damaged-file"}
        ]
    # blindness: a judged item is not shown again; the curator never sees their entries
    res = httpx.post(
        f"{server.base}/v1/audits/{audit_id}/items/{with_media}/verdict",
        json={"verified": True},
        headers={"Authorization": f"Bearer {keys['ann']}"},
    )
    assert res.status_code == 200, res.text
    assert res.json()["viewed_media"] is True  # ann looked before judging
    report = httpx.get(f"{server.base}/v1/audits/{audit_id}",
                       headers={"Authorization": f"Bearer {keys['ann']}"}, timeout=30)  # fmt: skip
    assert report.status_code == 200, report.text
    assert report.json()["media"] == {  # the damaged-file verdict came from a view too
        "verdicts_after_viewing": 2, "verdicts_from_hashes_alone": 0,
        "verified_from_hashes_alone": 0,
    }  # fmt: skip
    assert get("ann", with_media).status_code == 409
    res = get("curator", with_media)
    assert res.status_code == 403 and "may not audit it" in res.json()["error"]["message"]
    # the daily cap and breaks, as in review
    assert get("cap", with_media).status_code == 200
    res = get("cap", without)
    assert res.status_code == 403 and res.json()["error"]["code"] == "exposure_cap"
    res = get("brk", with_media)
    assert res.status_code == 403 and res.json()["error"]["code"] == "break_required"
    # not in the sample / no such audit
    assert get("ann", elsewhere).status_code == 404
    res = httpx.get(
        f"{server.base}/v1/audits/999/items/{with_media}/media",
        headers={"Authorization": f"Bearer {keys['ann']}"},
    )
    assert res.status_code == 404
