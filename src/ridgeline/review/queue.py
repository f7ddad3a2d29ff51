"""The review queue API that the CLI and the HTTP API call.

`next_item` serves one entry at a time to a reviewer: it applies the exclusion rules
(own submissions, already reviewed, categories, disputed only to seniors), the wellness
checks (break, daily cap) and rotation (round-robin over categories, so nobody is fed
one category continuously). Media are only ever served through `view_media`, blurred
and greyscale unless the reviewer explicitly unblurs, which is logged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ridgeline import auditlog, evidence
from ridgeline.errors import Conflict, NotFound, PermissionDenied, RidgelineError
from ridgeline.evidence.models import EvidenceBlob
from ridgeline.lists.core import get_entry, record_event
from ridgeline.lists.models import Entry, HashList, ImportBatch
from ridgeline.review.core import (
    check_may_review,
    get_reviewer,
    may_see,
    primary_category,
    quorum_for,
)
from ridgeline.review.models import Reviewer, ReviewView, Verdict
from ridgeline.review.wellness import (
    ExposureStatus,
    WellnessPolicy,
    check_wellness,
    exposure_status,
    render_for_review,
)
from ridgeline.timeutil import as_utc, isoformat, utcnow

#: How many waiting entries one `next_item` call considers.
CANDIDATE_WINDOW = 5000


@dataclass
class QueueItem:
    """One entry served for review: its hashes and a media handle, never other verdicts."""

    entry_id: int
    list_name: str
    status: str
    stage: str
    category: str
    signals: dict[str, str]
    quorum: int
    served_at: dt.datetime
    media_id: int | None
    media_type: str | None
    exposure: ExposureStatus | None = None
    #: The entry row itself, for library callers (not part of the JSON view).
    entry: Entry | None = None

    @property
    def has_media(self) -> bool:
        return self.media_id is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "list": self.list_name,
            "status": self.status,
            "stage": self.stage,
            "category": self.category,
            "signals": self.signals,
            "quorum": self.quorum,
            "served_at": isoformat(self.served_at),
            "has_media": self.has_media,
            "media_id": self.media_id,
            "media_type": self.media_type,
            "exposure": self.exposure.to_json() if self.exposure else None,
        }


def _item(
    session: Session,
    reviewer: Reviewer,
    entry: Entry,
    view: ReviewView,
    stage: str,
    exposure: ExposureStatus | None,
) -> QueueItem:
    blob = evidence.latest_blob(session, entry.id)
    return QueueItem(
        entry_id=entry.id,
        list_name=entry.hash_list.name,
        status=entry.status,
        stage=stage,
        category=view.category,
        signals={s.signal: s.value for s in entry.signals},
        quorum=quorum_for(entry.hash_list),
        served_at=as_utc(view.started_at),
        media_id=blob.id if blob else None,
        media_type=blob.media_type if blob else None,
        exposure=exposure,
        entry=entry,
    )


def _open_view(
    session: Session, reviewer: Reviewer, now: dt.datetime, lease: dt.timedelta
) -> ReviewView | None:
    return session.scalar(
        select(ReviewView)
        .where(
            ReviewView.reviewer == reviewer.name,
            ReviewView.ended_at.is_(None),
            ReviewView.started_at > now - lease,
        )
        .order_by(ReviewView.started_at.desc(), ReviewView.id.desc())
        .limit(1)
    )


def _rotate(categories: Sequence[str], last: str | None) -> list[str]:
    """Categories in round-robin order starting after the one served last."""
    ordered = sorted(categories)
    if last is None:
        return ordered
    after = [c for c in ordered if c > last]
    return after + [c for c in ordered if c <= last]


def next_item(
    session: Session,
    reviewer_name: str,
    *,
    now: dt.datetime | None = None,
    policy: WellnessPolicy | None = None,
) -> QueueItem | None:
    """The next entry for this reviewer, or None when nothing is waiting for them.

    Raises `BreakRequired` / `ExposureCapReached` (both `PermissionDenied`) when the
    reviewer must stop. Calling it again before submitting returns the same item.
    """
    now = as_utc(now or utcnow())
    pol = policy or WellnessPolicy.from_env()
    reviewer = get_reviewer(session, reviewer_name)
    if not reviewer.active:
        raise PermissionDenied(f"reviewer {reviewer.name!r} is deactivated")
    lease = dt.timedelta(minutes=pol.for_reviewer(reviewer).max_item_minutes)
    exposure = check_wellness(session, reviewer, now=now, policy=pol)

    current = _open_view(session, reviewer, now, lease)
    if current is not None:
        entry = get_entry(session, current.entry_id)
        try:
            stage = check_may_review(session, reviewer, entry)
        except RidgelineError:  # decided meanwhile, or rules changed: drop it
            current.ended_at = now
        else:
            return _item(session, reviewer, entry, current, stage, exposure)

    wanted = []
    if reviewer.is_reviewer:
        wanted.append("pending")
    if reviewer.is_senior:
        wanted.append("disputed")
    reviewed = select(Verdict.entry_id).where(Verdict.reviewer == reviewer.name)
    candidates = list(
        session.scalars(
            select(Entry)
            .join(HashList, HashList.id == Entry.list_id)
            .options(selectinload(Entry.signals))
            .where(
                Entry.status.in_(wanted),
                Entry.status != "confirmed",  # the partial index ix_entries_unconfirmed
                Entry.deleted_at.is_(None),
                (Entry.submitted_by.is_(None)) | (Entry.submitted_by != reviewer.name),
                Entry.batch_id.is_(None)
                | Entry.batch_id.not_in(
                    select(ImportBatch.id).where(ImportBatch.actor == reviewer.name)
                ),
                Entry.id.not_in(reviewed),
            )
            .order_by(Entry.id)
            .limit(CANDIDATE_WINDOW)
        )
    )
    candidates = [e for e in candidates if may_see(reviewer, e, e.hash_list)]
    if not candidates:
        return None
    ids = [e.id for e in candidates]
    done = dict(
        session.execute(
            select(Verdict.entry_id, func.count())
            .where(Verdict.entry_id.in_(ids), Verdict.stage == "review")
            .group_by(Verdict.entry_id)
        ).all()
    )
    in_hand = dict(
        session.execute(
            select(ReviewView.entry_id, func.count(func.distinct(ReviewView.reviewer)))
            .where(
                ReviewView.entry_id.in_(ids),
                ReviewView.ended_at.is_(None),
                ReviewView.started_at > now - lease,
                ReviewView.reviewer != reviewer.name,
            )
            .group_by(ReviewView.entry_id)
        ).all()
    )

    def has_room(e: Entry) -> bool:
        # Do not hand out more copies of a pending entry than verdicts it still needs.
        if e.status != "pending":
            return in_hand.get(e.id, 0) == 0
        return done.get(e.id, 0) + in_hand.get(e.id, 0) < quorum_for(e.hash_list)

    candidates = [e for e in candidates if has_room(e)]
    if not candidates:
        return None
    # Seniors clear disputes first: they block listing.
    disputed = [e for e in candidates if e.status == "disputed"]
    pool = disputed or candidates
    by_category: dict[str, Entry] = {}
    for e in pool:
        by_category.setdefault(primary_category(e), e)
    last = session.scalar(
        select(ReviewView.category)
        .where(ReviewView.reviewer == reviewer.name)
        .order_by(ReviewView.started_at.desc(), ReviewView.id.desc())
        .limit(1)
    )
    category = _rotate(list(by_category), last)[0]
    entry = by_category[category]
    stage = check_may_review(session, reviewer, entry)
    view = ReviewView(
        reviewer=reviewer.name,
        entry_id=entry.id,
        category=category,
        started_at=now,
        unblurred=False,
    )
    session.add(view)
    session.flush()
    exposure = exposure_status(session, reviewer, now=now, policy=pol)
    return _item(session, reviewer, entry, view, stage, exposure)


def release_item(
    session: Session, reviewer_name: str, entry_id: int, *, now: dt.datetime | None = None
) -> bool:
    """Hand an item back without a verdict (it returns to the queue for others).

    `Conflict` when the reviewer does not hold the item (never served to them, or
    already decided or released): a silent `False` hid typos in the entry id.
    """
    now = as_utc(now or utcnow())
    reviewer = get_reviewer(session, reviewer_name)
    views = list(
        session.scalars(
            select(ReviewView).where(
                ReviewView.reviewer == reviewer.name,
                ReviewView.entry_id == entry_id,
                ReviewView.ended_at.is_(None),
            )
        )
    )
    if not views:
        raise Conflict(f"{reviewer.name} does not hold entry {entry_id}: nothing to release")
    for view in views:
        view.ended_at = now
    session.flush()
    return True


def view_media(
    session: Session,
    reviewer_name: str,
    entry_id: int,
    key: evidence.EvidenceKey,
    *,
    unblurred: bool = False,
    colour: bool = False,
    reason: str | None = None,
    fmt: str = "PNG",
    now: dt.datetime | None = None,
) -> bytes:
    """The entry's media for a reviewer it was served to: blurred greyscale by default.

    Unblurring (and colour) is logged to the entry's history and the tamper-evident log.
    """
    now = as_utc(now or utcnow())
    reviewer = get_reviewer(session, reviewer_name)
    if not reviewer.active:
        raise PermissionDenied(f"reviewer {reviewer.name!r} is deactivated")
    if colour and not unblurred:
        unblurred = True
    view = session.scalar(
        select(ReviewView)
        .where(ReviewView.reviewer == reviewer.name, ReviewView.entry_id == entry_id)
        .order_by(ReviewView.started_at.desc(), ReviewView.id.desc())
        .limit(1)
    )
    if view is None:
        raise PermissionDenied(
            f"entry {entry_id} was not served to reviewer {reviewer.name!r}; "
            "take it from the queue (`review next`) first"
        )
    entry = get_entry(session, entry_id)
    blob = evidence.latest_blob(session, entry.id)
    if blob is None:
        raise NotFound(f"entry {entry_id} has no evidence stored")
    rendered = render_for_review(
        evidence.decrypt_blob(blob, key), unblurred=unblurred, colour=colour, fmt=fmt
    )
    # every read of evidence is in the tamper-evident log, blurred or not
    auditlog.append(session, reviewer.name, "evidence.view", f"entry:{entry.id}",
                    {"blob_id": blob.id, "unblurred": unblurred, "colour": colour,
                     "via": "review", "at": isoformat(now)})  # fmt: skip
    if unblurred:
        view.unblurred = True
        record_event(
            session,
            entry,
            "unblur",
            reviewer.name,
            colour=colour,
            blob_id=blob.id,
            reason=reason,
            at=isoformat(now),
        )
    return rendered


def unblur(
    session: Session,
    reviewer_name: str,
    entry_id: int,
    key: evidence.EvidenceKey,
    *,
    colour: bool = False,
    reason: str | None = None,
    fmt: str = "PNG",
    now: dt.datetime | None = None,
) -> bytes:
    """The explicit, logged unblurred view (greyscale unless `colour`)."""
    return view_media(
        session,
        reviewer_name,
        entry_id,
        key,
        unblurred=True,
        colour=colour,
        reason=reason,
        fmt=fmt,
        now=now,
    )


def media_blob(session: Session, entry_id: int) -> EvidenceBlob | None:
    """The blob `QueueItem.media_id` refers to (metadata only)."""
    return evidence.latest_blob(session, entry_id)
