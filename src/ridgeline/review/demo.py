"""A list built through multi-review, for the demo: benign synthetic hashes only.

Three reviewers work the queue (K=3): two entries are confirmed, one is rejected by
unanimous `not-csam`, one draws disagreement and goes to a senior, who confirms it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.lists.core import add_entry, create_list, get_entry
from ridgeline.review.core import add_reviewer, submit_verdict
from ridgeline.review.queue import next_item
from ridgeline.review.wellness import WellnessPolicy
from ridgeline.timeutil import utcnow

DEMO_REVIEWERS = ("demo-alice", "demo-bob", "demo-carol")
DEMO_SENIOR = "demo-dana"
DEMO_SUBMITTER = "demo-sam"

# What each reviewer says about each demo entry (by position), as (decision, classification).
_PLAN: dict[int, dict[str, tuple[str, str | None]]] = {
    0: {r: ("csam", "industry:A1") for r in DEMO_REVIEWERS},
    1: {r: ("csam", "industry:B2") for r in DEMO_REVIEWERS},
    2: {r: ("not-csam", None) for r in DEMO_REVIEWERS},
    3: {
        "demo-alice": ("csam", "industry:B1"),
        "demo-bob": ("not-csam", None),
        "demo-carol": ("csam", "industry:B1"),
    },
}


def build_reviewed_list(
    session: Session,
    name: str = "demo-reviewed",
    *,
    hashes: Sequence[Mapping[str, str]] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Create reviewers and a K=3 list, review four entries through the queue, and
    return a summary: each entry's status and verdict trail, and the log check.

    `hashes` gives the four entries' signals (e.g. PDQ hashes of the demo's images);
    by default they are md5 digests of fixed benign strings.
    """
    now = now or utcnow()
    if hashes is None:
        hashes = [
            {"md5": hashlib.md5(f"ridgeline benign demo item {i}".encode()).hexdigest()}
            for i in range(len(_PLAN))
        ]
    if len(hashes) != len(_PLAN):
        raise ValueError(f"the demo reviews exactly {len(_PLAN)} entries")
    for reviewer in DEMO_REVIEWERS:
        add_reviewer(session, reviewer, actor="demo")
    add_reviewer(session, DEMO_SENIOR, senior=True, reviewer=False, actor="demo")
    hash_list = create_list(
        session,
        name,
        review_quorum=3,
        actor="demo",
        description="built through multi-review (demo)",
    )
    entries = []
    for signals, label in zip(
        hashes, ["industry:A1", "industry:B2", None, "industry:B1"], strict=True
    ):
        scheme_label = (
            [] if label is None else [dict(zip(("scheme", "label"), label.split(":"), strict=True))]
        )
        entries.append(
            add_entry(
                session,
                hash_list,
                signals,
                classifications=scheme_label,
                actor=DEMO_SUBMITTER,
                source="demo",
            )
        )
    position = {e.id: i for i, e in enumerate(entries)}
    policy = WellnessPolicy()
    clock = now
    trail: dict[int, list[str]] = {e.id: [] for e in entries}
    for reviewer in DEMO_REVIEWERS:
        while (item := next_item(session, reviewer, now=clock, policy=policy)) is not None:
            clock += dt.timedelta(seconds=40)
            decision, label = _PLAN[position[item.entry_id]][reviewer]
            outcome = submit_verdict(
                session, item.entry_id, reviewer, decision, [label] if label else [], now=clock
            )
            trail[item.entry_id].append(f"{reviewer}: {decision} -> {outcome.status}")
    while (item := next_item(session, DEMO_SENIOR, now=clock, policy=policy)) is not None:
        clock += dt.timedelta(seconds=60)
        outcome = submit_verdict(
            session,
            item.entry_id,
            DEMO_SENIOR,
            "csam",
            ["industry:B1"],
            note="senior decision on a disputed entry",
            now=clock,
        )
        trail[item.entry_id].append(f"{DEMO_SENIOR} (senior): csam -> {outcome.status}")
    check = auditlog.verify(session)
    return {
        "list": hash_list.name,
        "quorum": hash_list.review_quorum,
        "entries": [
            {"entry_id": e.id, "status": get_entry(session, e.id).status, "trail": trail[e.id]}
            for e in entries
        ],
        "log": check.to_json(),
    }
