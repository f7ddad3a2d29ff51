"""Reviewers and multi-review: K independent agreeing verdicts list an entry.

Rules (all enforced here, so every UI and API gets them):

- a reviewer never reviews an entry twice, nor an entry they submitted;
- a reviewer only reviews entries in categories they may see;
- K agreeing first-stage verdicts (same decision and same classifications) with a
  decision of `csam` or `exploitative` confirm the entry (matchable); K unanimous
  `not-csam` reject it; any disagreement, or K agreeing `unknown`, makes it `disputed`;
- a disputed entry waits for a senior reviewer, whose verdict decides (`unknown` from a
  senior leaves it disputed for another senior);
- nobody sees other verdicts on an entry before their own is in (`entry_review_view`).

Every verdict is written to the entry's history and to the tamper-evident log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.classifications import validate as validate_label
from ridgeline.errors import BadInput, Conflict, NotFound, PermissionDenied
from ridgeline.lists.core import (
    get_entry,
    record_event,
    set_entry_classifications,
    set_entry_status,
    update_list,
    validate_classification,
)
from ridgeline.lists.models import Entry, HashList
from ridgeline.review.models import Reviewer, ReviewView, Verdict
from ridgeline.timeutil import as_utc, isoformat, utcnow

DECISIONS = ("csam", "exploitative", "not-csam", "unknown")
#: Decisions that list an entry once agreed.
LISTING_DECISIONS = frozenset({"csam", "exploitative"})
REVIEWABLE = ("pending", "disputed")


# --- reviewers -------------------------------------------------------------------------


def _check_limits(daily_cap: int | None, break_after: int | None, break_len: int | None) -> None:
    for label, value in (
        ("daily cap", daily_cap),
        ("break-after minutes", break_after),
        ("break minutes", break_len),
    ):
        if value is not None and value <= 0:
            raise BadInput(f"{label} must be a positive number, not {value}")


def _check_categories(categories: Sequence[str]) -> list[str]:
    out: list[str] = []
    for raw in categories:
        text = raw.strip()
        if not text:
            continue
        if text == "unclassified" or text.startswith("list:"):
            out.append(text)
            continue
        if ":" not in text:
            raise BadInput(f"category {raw!r}: expected scheme:label, list:NAME or unclassified")
        scheme, label = text.split(":", 1)
        checked = validate_label(scheme, label)
        out.append(f"{checked['scheme']}:{checked['label']}")
    return out


def add_reviewer(
    session: Session,
    name: str,
    *,
    senior: bool = False,
    reviewer: bool = True,
    categories: Sequence[str] = (),
    daily_cap: int | None = None,
    break_after_minutes: int | None = None,
    break_minutes: int | None = None,
    actor: str | None = None,
) -> Reviewer:
    """Create a reviewer record (identity is a plain string id until auth lands)."""
    name = name.strip()
    if not name:
        raise BadInput("a reviewer needs a name")
    if not (senior or reviewer):
        raise BadInput(f"reviewer {name!r} needs at least one role: reviewer or senior")
    _check_limits(daily_cap, break_after_minutes, break_minutes)
    if session.scalar(select(Reviewer.id).where(Reviewer.name == name)) is not None:
        raise Conflict(f"a reviewer named {name!r} already exists")
    row = Reviewer(
        name=name,
        is_reviewer=reviewer,
        is_senior=senior,
        active=True,
        categories=_check_categories(categories),
        daily_cap=daily_cap,
        break_after_minutes=break_after_minutes,
        break_minutes=break_minutes,
    )
    session.add(row)
    session.flush()
    auditlog.append(session, actor, "reviewer.add", f"reviewer:{name}", reviewer_to_json(row))
    return row


def get_reviewer(session: Session, name: str) -> Reviewer:
    """A reviewer by name, or `NotFound`."""
    found = session.scalar(select(Reviewer).where(Reviewer.name == name.strip()))
    if found is None:
        raise NotFound(f"no reviewer named {name!r} (add one with `ridgeline reviewers add`)")
    return found


def list_reviewers(session: Session) -> list[Reviewer]:
    """All reviewers by name."""
    return list(session.scalars(select(Reviewer).order_by(Reviewer.name)))


_UNSET: Any = object()


def update_reviewer(
    session: Session,
    name: str,
    *,
    senior: bool | None = None,
    reviewer: bool | None = None,
    active: bool | None = None,
    categories: Sequence[str] | None = None,
    daily_cap: int | None = _UNSET,
    break_after_minutes: int | None = _UNSET,
    break_minutes: int | None = _UNSET,
    actor: str | None = None,
) -> Reviewer:
    """Change a reviewer's roles, categories or wellness settings (None resets a limit)."""
    row = get_reviewer(session, name)
    before = reviewer_to_json(row)
    _check_limits(
        None if daily_cap is _UNSET else daily_cap,
        None if break_after_minutes is _UNSET else break_after_minutes,
        None if break_minutes is _UNSET else break_minutes,
    )
    new_reviewer = row.is_reviewer if reviewer is None else reviewer
    new_senior = row.is_senior if senior is None else senior
    if not (new_reviewer or new_senior):
        raise BadInput(f"reviewer {name!r} needs at least one role: reviewer or senior")
    row.is_reviewer, row.is_senior = new_reviewer, new_senior
    if active is not None:
        row.active = active
    if categories is not None:
        row.categories = _check_categories(categories)
    if daily_cap is not _UNSET:
        row.daily_cap = daily_cap
    if break_after_minutes is not _UNSET:
        row.break_after_minutes = break_after_minutes
    if break_minutes is not _UNSET:
        row.break_minutes = break_minutes
    session.flush()
    after = reviewer_to_json(row)
    changed = {k: {"old": before[k], "new": after[k]} for k in after if after[k] != before[k]}
    if changed:
        auditlog.append(
            session, actor, "reviewer.update", f"reviewer:{row.name}", {"changed": changed}
        )
    return row


def reviewer_to_json(row: Reviewer) -> dict[str, Any]:
    """JSON view of a reviewer's roles and settings."""
    return {
        "name": row.name,
        "reviewer": row.is_reviewer,
        "senior": row.is_senior,
        "active": row.active,
        "categories": list(row.categories or []),
        "daily_cap": row.daily_cap,
        "break_after_minutes": row.break_after_minutes,
        "break_minutes": row.break_minutes,
    }


# --- categories ------------------------------------------------------------------------


def entry_categories(entry: Entry, hash_list: HashList) -> list[str]:
    """Tags an entry can be routed by: its classifications, its list, or `unclassified`."""
    tags = [f"{c['scheme']}:{c['label']}" for c in entry.classifications or []]
    tags.append(f"list:{hash_list.name}")
    if not entry.classifications:
        tags.append("unclassified")
    return tags


def primary_category(entry: Entry) -> str:
    """The category the queue rotates over: the first classification, or `unclassified`."""
    for c in entry.classifications or []:
        return f"{c['scheme']}:{c['label']}"
    return "unclassified"


def may_see(reviewer: Reviewer, entry: Entry, hash_list: HashList) -> bool:
    """Whether the reviewer's categories admit this entry (no categories: everything)."""
    allowed = reviewer.categories or []
    return not allowed or any(tag in allowed for tag in entry_categories(entry, hash_list))


# --- verdicts --------------------------------------------------------------------------


@dataclass
class VerdictOutcome:
    """What a verdict did: the verdict and the entry's status after it."""

    entry_id: int
    reviewer: str
    decision: str
    stage: str
    status: str
    verdicts: int
    quorum: int
    changed: bool = False
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "reviewer": self.reviewer,
            "decision": self.decision,
            "stage": self.stage,
            "status": self.status,
            "verdicts": self.verdicts,
            "quorum": self.quorum,
            "status_changed": self.changed,
            "reason": self.reason,
        }


def quorum_for(hash_list: HashList) -> int:
    """K for the list; a pending entry on a list with no policy needs one verdict."""
    return max(1, hash_list.review_quorum)


def _class_key(classes: Sequence[Mapping[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset((c["scheme"], c["label"]) for c in classes)


def _normalise_verdict(
    decision: str, classifications: Sequence[Mapping[str, str] | str]
) -> tuple[str, list[dict[str, str]]]:
    text = str(decision).strip().lower()
    if text not in DECISIONS:
        raise BadInput(f"verdict must be one of {', '.join(DECISIONS)}, not {decision!r}")
    classes: list[dict[str, str]] = []
    for item in classifications:
        if isinstance(item, str):
            from ridgeline.classifications import parse

            classes.append(parse(item))
        else:
            classes.append(validate_classification(item))
    classes = [c for c in classes if c["scheme"] != "ridgeline"]
    if text in LISTING_DECISIONS and not classes:
        raise BadInput(f"a {text} verdict needs a classification with its scheme, e.g. industry:A1")
    unique: list[dict[str, str]] = []
    for c in classes:
        if c not in unique:
            unique.append(c)
    return text, sorted(unique, key=lambda c: (c["scheme"], c["label"]))


def verdicts_for(session: Session, entry_id: int) -> list[Verdict]:
    """All verdicts on an entry, oldest first (not for showing to reviewers; see
    `entry_review_view`)."""
    return list(
        session.scalars(
            select(Verdict).where(Verdict.entry_id == entry_id).order_by(Verdict.at, Verdict.id)
        )
    )


def check_may_review(session: Session, reviewer: Reviewer, entry: Entry) -> str:
    """Raise `PermissionDenied`/`Conflict` unless `reviewer` may review `entry` now;
    returns the stage ("review" or "senior") their verdict would count in."""
    if not reviewer.active:
        raise PermissionDenied(f"reviewer {reviewer.name!r} is deactivated")
    if entry.deleted_at is not None:
        raise Conflict(f"entry {entry.id} is deleted")
    if entry.status not in REVIEWABLE:
        raise Conflict(f"entry {entry.id} is {entry.status}; it is not awaiting review")
    if entry.submitter is not None and entry.submitter == reviewer.name:
        raise PermissionDenied(
            f"reviewer {reviewer.name!r} submitted entry {entry.id} and cannot review it"
        )
    already = session.scalar(
        select(Verdict.id).where(Verdict.entry_id == entry.id, Verdict.reviewer == reviewer.name)
    )
    if already is not None:
        raise PermissionDenied(f"reviewer {reviewer.name!r} has already reviewed entry {entry.id}")
    if not may_see(reviewer, entry, entry.hash_list):
        raise PermissionDenied(
            f"reviewer {reviewer.name!r} may not review entry {entry.id}: its categories "
            f"({', '.join(entry_categories(entry, entry.hash_list))}) are not among theirs"
        )
    if entry.status == "disputed":
        if not reviewer.is_senior:
            raise PermissionDenied(
                f"entry {entry.id} is disputed: only a senior reviewer may decide it"
            )
        return "senior"
    if not reviewer.is_reviewer:
        raise PermissionDenied(
            f"{reviewer.name!r} is a senior-only reviewer; pending entries need a reviewer role"
        )
    return "review"


def submit_verdict(
    session: Session,
    entry_id: int,
    reviewer_name: str,
    decision: str,
    classifications: Sequence[Mapping[str, str] | str] = (),
    *,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> VerdictOutcome:
    """Record one reviewer's verdict and move the entry when the rules say so."""
    now = as_utc(now or utcnow())
    reviewer = get_reviewer(session, reviewer_name)
    entry = get_entry(session, entry_id)
    decision, classes = _normalise_verdict(decision, classifications)
    stage = check_may_review(session, reviewer, entry)
    view = session.scalar(
        select(ReviewView)
        .where(
            ReviewView.reviewer == reviewer.name,
            ReviewView.entry_id == entry.id,
            ReviewView.ended_at.is_(None),
        )
        .order_by(ReviewView.id.desc())
        .limit(1)
    )
    dwell: float | None = None
    if view is not None:
        view.ended_at = now
        dwell = max(0.0, (now - as_utc(view.started_at)).total_seconds())
    verdict = Verdict(
        entry_id=entry.id,
        reviewer=reviewer.name,
        stage=stage,
        decision=decision,
        classifications=classes,
        note=note,
        at=now,
        dwell_seconds=dwell,
    )
    session.add(verdict)
    try:
        session.flush()
    except IntegrityError:  # a concurrent verdict by the same reviewer won the race
        raise PermissionDenied(
            f"reviewer {reviewer.name!r} has already reviewed entry {entry.id}"
        ) from None
    record_event(
        session,
        entry,
        "verdict",
        reviewer.name,
        stage=stage,
        decision=decision,
        classifications=classes,
        note=note,
    )
    return _decide(session, entry, verdict, reviewer.name)


Decision = tuple[str | None, str | None, list[dict[str, str]] | None]


def _first_stage_rule(first_stage: Sequence[Verdict], k: int) -> Decision:
    """(new status, reason, agreed classifications) from the first-stage verdicts."""
    keys = {(v.decision, _class_key(v.classifications or [])) for v in first_stage}
    if len(keys) > 1:
        return "disputed", "reviewers disagree; a senior reviewer decides", None
    if not first_stage or len(first_stage) < k:
        return None, None, None
    agreed = first_stage[0]
    if agreed.decision in LISTING_DECISIONS:
        classes = [*agreed.classifications, {"scheme": "ridgeline", "label": agreed.decision}]
        return "confirmed", f"{k} independent reviewers agreed: {agreed.decision}", classes
    if agreed.decision == "not-csam":
        return "rejected", f"{k} independent reviewers agreed: not-csam", None
    return "disputed", f"{k} reviewers could not decide (unknown); a senior reviewer decides", None


def _apply(session: Session, entry: Entry, decision: Decision, actor: str | None) -> bool:
    new_status, reason, classes = decision
    if new_status is None or new_status == entry.status:
        return False
    if classes is not None:
        set_entry_classifications(session, entry, classes, actor=actor, reason="agreed in review")
    set_entry_status(session, entry, new_status, actor=actor, reason=reason)
    return True


def _decide(session: Session, entry: Entry, verdict: Verdict, actor: str) -> VerdictOutcome:
    k = quorum_for(entry.hash_list)
    first_stage = [v for v in verdicts_for(session, entry.id) if v.stage == "review"]
    outcome = VerdictOutcome(
        entry.id,
        verdict.reviewer,
        verdict.decision,
        verdict.stage,
        entry.status,
        len(first_stage),
        k,
    )
    decision: Decision = (None, None, None)
    if verdict.stage == "senior":
        if verdict.decision in LISTING_DECISIONS:
            label = {"scheme": "ridgeline", "label": verdict.decision}
            decision = (
                "confirmed",
                f"senior reviewer {verdict.reviewer} confirmed the disputed entry",
                [*verdict.classifications, label],
            )
        elif verdict.decision == "not-csam":
            decision = ("rejected", f"senior reviewer {verdict.reviewer} rejected it", None)
    else:
        decision = _first_stage_rule(first_stage, k)
    outcome.changed = _apply(session, entry, decision, actor)
    outcome.status = entry.status
    outcome.reason = decision[1]
    return outcome


def reevaluate_list(
    session: Session, hash_list: HashList, *, actor: str | None = None
) -> list[int]:
    """Apply the rules again to a list's pending entries (after its quorum changed), so
    entries that already have enough agreeing verdicts do not wait forever."""
    k = quorum_for(hash_list)
    changed: list[int] = []
    pending = session.scalars(
        select(Entry)
        .where(
            Entry.list_id == hash_list.id,
            Entry.status == "pending",
            Entry.status != "confirmed",  # the partial index ix_entries_unconfirmed
            Entry.deleted_at.is_(None),
            Entry.id.in_(select(Verdict.entry_id)),
        )
        .order_by(Entry.id)
    ).all()
    for entry in pending:
        first_stage = [v for v in verdicts_for(session, entry.id) if v.stage == "review"]
        if _apply(session, entry, _first_stage_rule(first_stage, k), actor):
            changed.append(entry.id)
    return changed


def set_review_quorum(
    session: Session, hash_list: HashList, quorum: int, *, actor: str | None = None
) -> list[int]:
    """Change a list's review quorum and decide, under the new quorum, the pending
    entries that already hold enough agreeing verdicts; returns their ids.

    The change itself is `ridgeline.lists.update_list`'s (validated, logged); deciding
    the waiting entries is review's, so it lives here and lists does not import review.
    """
    update_list(session, hash_list, review_quorum=quorum, actor=actor)
    return reevaluate_list(session, hash_list, actor=actor)


def verdict_to_json(v: Verdict) -> dict[str, Any]:
    return {
        "reviewer": v.reviewer,
        "stage": v.stage,
        "decision": v.decision,
        "classifications": list(v.classifications or []),
        "note": v.note,
        "at": isoformat(v.at),
    }


@dataclass
class ReviewStatus:
    """An entry's review state as one viewer may see it."""

    entry_id: int
    list_name: str
    status: str
    quorum: int
    verdict_count: int
    verdicts: list[dict[str, Any]] | None = None
    hidden_reason: str | None = None
    tally: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "list": self.list_name,
            "status": self.status,
            "quorum": self.quorum,
            "verdict_count": self.verdict_count,
            "tally": self.tally,
            "verdicts": self.verdicts,
            "hidden": self.hidden_reason,
        }


def entry_review_view(session: Session, entry_id: int, viewer: str | None = None) -> ReviewStatus:
    """An entry's review state; other verdicts stay hidden until the viewer's own is in.

    With no viewer (an operator's overview) verdicts are shown only once review is over
    (status no longer pending or disputed), so nobody can peek while it is open.
    """
    entry = get_entry(session, entry_id)
    hash_list = entry.hash_list
    all_verdicts = verdicts_for(session, entry.id)
    status = ReviewStatus(
        entry.id, hash_list.name, entry.status, quorum_for(hash_list), len(all_verdicts)
    )
    if viewer is not None:
        get_reviewer(session, viewer)
        visible = any(v.reviewer == viewer for v in all_verdicts)
        hidden = f"submit your own verdict on entry {entry.id} to see the others"
    else:
        visible = entry.status not in REVIEWABLE
        hidden = "verdicts are hidden while review is open"
    if visible:
        status.verdicts = [verdict_to_json(v) for v in all_verdicts]
        for v in all_verdicts:
            status.tally[v.decision] = status.tally.get(v.decision, 0) + 1
    else:
        status.hidden_reason = hidden
    return status


def pending_counts(session: Session) -> dict[str, int]:
    """Entries awaiting review by status (for dashboards)."""
    rows = session.execute(
        select(Entry.status, func.count())
        .where(
            Entry.status.in_(REVIEWABLE),
            Entry.status != "confirmed",  # the partial index ix_entries_unconfirmed
            Entry.deleted_at.is_(None),
        )
        .group_by(Entry.status)
    ).all()
    return {str(s): int(n) for s, n in rows}
