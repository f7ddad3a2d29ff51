"""Review queue: exclusions, rotation, wellness (break, daily cap), blurred media, unblur."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from ridgeline import auditlog, evidence
from ridgeline import lists as L
from ridgeline.errors import Conflict, PermissionDenied, RidgelineError
from ridgeline.review import core as rc
from ridgeline.review import queue as rq
from ridgeline.review.models import ReviewView
from ridgeline.review.wellness import (
    BreakRequired,
    ExposureCapReached,
    WellnessPolicy,
    exposure_status,
    render_for_review,
)
from ridgeline.store import Store

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
POLICY = WellnessPolicy(break_after_minutes=120, break_minutes=15, daily_cap=300)


def _md5(i: int) -> str:
    return hashlib.md5(f"benign queue item {i}".encode()).hexdigest()


def _image(colour: bool = True) -> bytes:
    """A benign synthetic test card: colour bars and a sharp checkerboard."""
    y, x = np.mgrid[0:128, 0:128]
    rgb = np.zeros((128, 128, 3), dtype=np.uint8)
    rgb[..., 0] = (x * 2).astype(np.uint8)
    rgb[..., 1] = (((x // 8 + y // 8) % 2) * 255).astype(np.uint8)
    rgb[..., 2] = 255 - (y * 2).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb if colour else rgb[..., 1]).save(out, format="PNG")
    return out.getvalue()


def _list(session, quorum: int = 3, labels=("industry:A1",)):  # type: ignore[no-untyped-def]
    hl = L.create_list(session, "q", review_quorum=quorum)
    out = []
    for i, label in enumerate(labels):
        scheme, lab = label.split(":")
        out.append(L.add_entry(session, hl, {"md5": _md5(i)}, actor="sam",
                               classifications=[{"scheme": scheme, "label": lab}]))  # fmt: skip
    return out


def test_queue_serves_hashes_not_verdicts_and_repeats_open_item(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "ann")
        (entry,) = _list(session)
        item = rq.next_item(session, "ann", now=T0, policy=POLICY)
        assert item is not None and item.entry_id == entry.id
        assert item.signals == {"md5": _md5(0)} and not item.has_media
        assert "verdicts" not in item.to_json()
        again = rq.next_item(session, "ann", now=T0 + dt.timedelta(minutes=1), policy=POLICY)
        assert again is not None and again.entry_id == entry.id
        assert session.query(ReviewView).count() == 1


def test_exclusions_own_reviewed_and_categories(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "sam")
        rc.add_reviewer(session, "ann")
        rc.add_reviewer(session, "uki", categories=["uk:A"])
        (entry,) = _list(session)
        assert rq.next_item(session, "sam", now=T0, policy=POLICY) is None  # submitted it
        assert rq.next_item(session, "uki", now=T0, policy=POLICY) is None  # category
        rq.next_item(session, "ann", now=T0, policy=POLICY)
        rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"], now=T0)
        assert rq.next_item(session, "ann", now=T0, policy=POLICY) is None  # reviewed


def test_no_more_copies_than_verdicts_needed(store: Store) -> None:
    with store.session() as session:
        for name in ("a1", "a2", "a3"):
            rc.add_reviewer(session, name)
        _list(session, quorum=2)
        assert rq.next_item(session, "a1", now=T0, policy=POLICY) is not None
        assert rq.next_item(session, "a2", now=T0, policy=POLICY) is not None
        assert rq.next_item(session, "a3", now=T0, policy=POLICY) is None
        # a released item goes back to the queue
        assert rq.release_item(session, "a1", 1, now=T0)
        assert rq.next_item(session, "a3", now=T0, policy=POLICY) is not None
        # releasing what one does not hold (again, or never served) is an error
        with pytest.raises(Conflict, match="a1 does not hold entry 1: nothing to release"):
            rq.release_item(session, "a1", 1, now=T0)
        with pytest.raises(Conflict, match="does not hold entry 999"):
            rq.release_item(session, "a2", 999, now=T0)


def test_disputed_only_to_seniors_and_first(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "ann")
        rc.add_reviewer(session, "ben")
        rc.add_reviewer(session, "sue", senior=True)
        e1, e2 = _list(session, labels=("industry:A1", "industry:B1"))
        rc.submit_verdict(session, e2.id, "ann", "csam", ["industry:B1"], now=T0)
        rc.submit_verdict(session, e2.id, "ben", "not-csam", now=T0)
        assert e2.status == "disputed"
        item = rq.next_item(session, "sue", now=T0, policy=POLICY)
        assert item is not None and item.entry_id == e2.id and item.stage == "senior"
        ann_item = rq.next_item(session, "ann", now=T0, policy=POLICY)
        assert ann_item is not None and ann_item.entry_id == e1.id


def test_rotation_across_categories(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "ann")
        labels = ("industry:A1", "industry:A1", "industry:A1", "uk:A", "uk:A", "uk:B")
        _list(session, labels=labels)
        seen = []
        clock = T0
        for _ in range(6):
            item = rq.next_item(session, "ann", now=clock, policy=POLICY)
            assert item is not None
            seen.append(item.category)
            clock += dt.timedelta(seconds=30)
            rc.submit_verdict(session, item.entry_id, "ann", "not-csam", now=clock)
        assert rq.next_item(session, "ann", now=clock, policy=POLICY) is None
    # never the same category twice in a row while others are waiting
    assert seen[:3] == ["industry:A1", "uk:A", "uk:B"]
    assert seen[3:5] == ["industry:A1", "uk:A"]
    assert sorted(seen) == sorted(labels)


def test_break_enforced_after_cumulative_review(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "ann")
        _list(session, quorum=1, labels=["industry:A1"] * 40)
        clock = T0
        # 24 items of 5 minutes each = 2 hours of continuous review
        for _ in range(24):
            item = rq.next_item(session, "ann", now=clock, policy=POLICY)
            assert item is not None
            clock += dt.timedelta(minutes=5)
            rc.submit_verdict(session, item.entry_id, "ann", "not-csam", now=clock)
        with pytest.raises(BreakRequired, match="take a break until 11:15 UTC") as err:
            rq.next_item(session, "ann", now=clock, policy=POLICY)
        assert err.value.until == T0 + dt.timedelta(hours=2, minutes=15)
        assert isinstance(err.value, PermissionDenied)
        # still refused during the break, served again after it
        with pytest.raises(BreakRequired):
            rq.next_item(session, "ann", now=clock + dt.timedelta(minutes=10), policy=POLICY)
        after = rq.next_item(session, "ann", now=clock + dt.timedelta(minutes=15), policy=POLICY)
        assert after is not None
        status = exposure_status(session, rc.get_reviewer(session, "ann"),
                                 now=clock + dt.timedelta(minutes=16), policy=POLICY)  # fmt: skip
        assert status.review_minutes == pytest.approx(1.0)


def test_short_pauses_do_not_reset_review_time(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "ann", break_after_minutes=30)
        _list(session, quorum=1, labels=["industry:A1"] * 10)
        clock = T0
        for _ in range(3):  # 3 x 10 minutes with 5-minute gaps
            item = rq.next_item(session, "ann", now=clock, policy=POLICY)
            assert item is not None
            clock += dt.timedelta(minutes=10)
            rc.submit_verdict(session, item.entry_id, "ann", "not-csam", now=clock)
            clock += dt.timedelta(minutes=5)
        with pytest.raises(BreakRequired):
            rq.next_item(session, "ann", now=clock - dt.timedelta(minutes=5), policy=POLICY)


def test_daily_exposure_cap(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "ann", daily_cap=3)
        _list(session, quorum=1, labels=["industry:A1"] * 5)
        clock = T0
        for _ in range(3):
            item = rq.next_item(session, "ann", now=clock, policy=POLICY)
            assert item is not None
            rc.submit_verdict(session, item.entry_id, "ann", "not-csam", now=clock)
            clock += dt.timedelta(minutes=1)
        with pytest.raises(ExposureCapReached, match="daily exposure cap of 3"):
            rq.next_item(session, "ann", now=clock, policy=POLICY)
        tomorrow = T0 + dt.timedelta(days=1)
        assert rq.next_item(session, "ann", now=tomorrow, policy=POLICY) is not None


def test_wellness_policy_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIDGELINE_REVIEW_DAILY_CAP", "42")
    assert WellnessPolicy.from_env().daily_cap == 42
    monkeypatch.setenv("RIDGELINE_REVIEW_BREAK_AFTER_MINUTES", "0.5")  # fractions: tests
    assert WellnessPolicy.from_env().break_after_minutes == 0.5
    monkeypatch.setenv("RIDGELINE_REVIEW_BREAK_MINUTES", "soon")
    with pytest.raises(RidgelineError, match="number of minutes"):
        WellnessPolicy.from_env()
    monkeypatch.setenv("RIDGELINE_REVIEW_BREAK_MINUTES", "5")
    monkeypatch.setenv("RIDGELINE_REVIEW_DAILY_CAP", "4.5")
    with pytest.raises(RidgelineError, match="whole number"):
        WellnessPolicy.from_env()


def test_render_for_review_blurs_and_greys() -> None:
    original = Image.open(io.BytesIO(_image())).convert("L")
    blurred = Image.open(io.BytesIO(render_for_review(_image())))
    sharp = Image.open(io.BytesIO(render_for_review(_image(), unblurred=True)))
    colour = Image.open(io.BytesIO(render_for_review(_image(), unblurred=True, colour=True)))
    jpeg = render_for_review(_image(), fmt="JPEG")
    assert blurred.mode == "L" and sharp.mode == "L" and colour.mode == "RGB"
    assert jpeg[:3] == b"\xff\xd8\xff"

    def detail(img: Image.Image) -> float:
        a = np.asarray(img, dtype=float)
        return float(np.abs(np.diff(a, axis=1)).mean())

    assert detail(blurred) < detail(original) / 10
    assert detail(sharp) == pytest.approx(detail(original), rel=0.01)
    with pytest.raises(RidgelineError, match="not an image"):
        render_for_review(b"not an image at all")


def test_media_blurred_by_default_and_unblur_logged(store: Store) -> None:
    key = evidence.EvidenceKey(bytes(range(32)))
    with store.session() as session:
        rc.add_reviewer(session, "ann")
        rc.add_reviewer(session, "ben")
        (entry,) = _list(session)
        evidence.store_evidence(session, entry.id, _image(), key)
        with pytest.raises(PermissionDenied, match="not served"):
            rq.view_media(session, "ann", entry.id, key)
        item = rq.next_item(session, "ann", now=T0, policy=POLICY)
        assert item is not None and item.has_media and item.media_type == "image/png"
        view = Image.open(io.BytesIO(rq.view_media(session, "ann", entry.id, key)))
        assert view.mode == "L"
        assert auditlog.records(session, action="entry.unblur") == []
        sharp = rq.unblur(session, "ann", entry.id, key, reason="grading needs detail")
        assert Image.open(io.BytesIO(sharp)).mode == "L"
        logged = auditlog.records(session, action="entry.unblur")
        assert len(logged) == 1 and logged[0].actor == "ann"
        assert logged[0].to_json()["details"]["colour"] is False
        rq.unblur(session, "ann", entry.id, key, colour=True)
        assert len(auditlog.records(session, action="entry.unblur")) == 2
        with pytest.raises(PermissionDenied, match="not served"):
            rq.unblur(session, "ben", entry.id, key)
        assert auditlog.verify(session).ok
