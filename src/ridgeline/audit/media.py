"""Audit items' media, served exactly as the review queue serves it.

An auditor judging from hashes alone verifies nothing: the audit in the seeds looked at
the images themselves, with the same wellness protections as review. So an auditor
who views an item's media must be a registered reviewer (`ridgeline reviewers add`,
for their break and daily-cap settings), gets the blurred greyscale rendering by
default, and an unblurred or colour view is logged (`audit.unblur` in the
tamper-evident log; not in the entry's history, which would make the auditor one who
"touched" the entry). Breaks and daily caps are checked before anything is decrypted,
and each item viewed counts as one exposure. The blindness rules stay: only items this
auditor may still judge (sampled, not judged by them yet, never touched by them) are
shown. An item with no evidence stored is recorded at once as an exception with
reason `damaged-file`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog, evidence
from ridgeline.audit.core import _check_open, people_who_touched, submit_verdict
from ridgeline.audit.models import Audit, AuditItem, AuditVerdict
from ridgeline.errors import Conflict, NotFound, PermissionDenied
from ridgeline.review.core import get_reviewer
from ridgeline.review.models import ReviewView
from ridgeline.review.wellness import WellnessPolicy, check_wellness, render_for_review
from ridgeline.timeutil import as_utc, isoformat, utcnow


@dataclass(frozen=True)
class AuditMedia:
    """A rendering to show, or None with `damaged_file` when no evidence exists."""

    entry_id: int
    image: bytes | None
    unblurred: bool
    damaged_file: bool


def view_item_media(
    session: Session,
    audit: Audit,
    auditor: str,
    entry_id: int,
    key: evidence.EvidenceKey,
    *,
    unblurred: bool = False,
    colour: bool = False,
    reason: str | None = None,
    now: dt.datetime | None = None,
    policy: WellnessPolicy | None = None,
) -> AuditMedia:
    """The item's media for this auditor: blurred greyscale unless asked (and logged)."""
    _check_open(audit)
    now = as_utc(now or utcnow())
    reviewer = get_reviewer(session, auditor.strip())
    if not reviewer.active:
        raise PermissionDenied(f"reviewer {reviewer.name!r} is deactivated")
    item = session.scalar(
        select(AuditItem).where(AuditItem.audit_id == audit.id, AuditItem.entry_id == entry_id)
    )
    if item is None:
        raise NotFound(f"entry {entry_id} is not in audit {audit.id}'s sample")
    judged = session.scalar(
        select(AuditVerdict.id).where(
            AuditVerdict.item_id == item.id, AuditVerdict.auditor == reviewer.name
        )
    )
    if judged is not None:
        raise Conflict(f"{reviewer.name} already audited entry {entry_id}")
    if reviewer.name in people_who_touched(session, [entry_id])[entry_id]:
        raise PermissionDenied(
            f"{reviewer.name} submitted, changed or reviewed entry {entry_id}: "
            "they may not audit it"
        )
    check_wellness(session, reviewer, now=now, policy=policy)  # breaks and daily cap
    blob = evidence.latest_blob(session, entry_id)
    if blob is None:
        submit_verdict(session, audit, reviewer.name, entry_id, verified=False,
                       reason="damaged-file", note="no evidence stored")  # fmt: skip
        return AuditMedia(entry_id, None, False, True)
    wants_sharp = unblurred or colour
    image = render_for_review(
        evidence.decrypt_blob(blob, key), unblurred=wants_sharp, colour=colour
    )
    seen = session.scalar(
        select(ReviewView.id).where(
            ReviewView.reviewer == reviewer.name,
            ReviewView.entry_id == entry_id,
            ReviewView.category == f"audit:{audit.id}",
        )
    )
    if seen is None:  # one exposure per item; closed at once (it is not a queue lease)
        session.add(ReviewView(reviewer=reviewer.name, entry_id=entry_id,
                               category=f"audit:{audit.id}", started_at=now, ended_at=now,
                               unblurred=wants_sharp))  # fmt: skip
    auditlog.append(session, reviewer.name, "evidence.view", f"entry:{entry_id}",
                    {"blob_id": blob.id, "unblurred": wants_sharp, "colour": colour,
                     "via": f"audit:{audit.id}", "at": isoformat(now)})  # fmt: skip
    if wants_sharp:
        auditlog.append(session, reviewer.name, "audit.unblur", f"audit:{audit.id}",
                        {"entry_id": entry_id, "colour": colour, "blob_id": blob.id,
                         "reason": reason, "at": isoformat(now)})  # fmt: skip
    session.flush()
    return AuditMedia(entry_id, image, wants_sharp, False)


def media_views(session: Session, audit: Audit) -> set[tuple[str, int]]:
    """(auditor, entry_id) for every audit item whose media that auditor was shown.

    A verdict without a view was judged from hashes alone: the report counts those
    (`media` in `audit_report`) so a "verified" share says what it rests on.
    """
    rows = session.execute(
        select(ReviewView.reviewer, ReviewView.entry_id).where(
            ReviewView.category == f"audit:{audit.id}"
        )
    )
    return {(str(reviewer), int(entry_id)) for reviewer, entry_id in rows}


def viewed_media(session: Session, audit: Audit, auditor: str, entry_id: int) -> bool:
    """Whether `auditor` was shown this audit item's media (`view_item_media`)."""
    seen = session.scalar(
        select(ReviewView.id).where(
            ReviewView.reviewer == auditor.strip(),
            ReviewView.entry_id == entry_id,
            ReviewView.category == f"audit:{audit.id}",
        )
    )
    return seen is not None
