"""Flood control: an entry that suddenly matches too often is held for review.

A wrongly listed hash of something common (a logo, a meme) would otherwise fire
actions on every upload. Matches are counted per entry in fixed time windows in
the store, so every scanner and API worker shares one count; past the limit the
entry is held and its matches are recorded but fire no actions until released.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.scan.models import FloodCounter, FloodHold
from ridgeline.timeutil import isoformat, utcnow


@dataclass(frozen=True)
class FloodPolicy:
    """At most `max_matches` matches of one entry per `window_s` seconds."""

    max_matches: int = 1000
    window_s: int = 60
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.max_matches < 1:
            raise BadInput("flood control: max matches must be at least 1")
        if self.window_s < 1:
            raise BadInput("flood control: window must be at least 1 second")

    def to_json(self) -> dict[str, Any]:
        return {"max_matches": self.max_matches, "window_s": self.window_s, "enabled": self.enabled}


def held_entries(session: Session, entry_ids: Iterable[int]) -> set[int]:
    """Which of these entries are currently held."""
    ids = set(entry_ids)
    if not ids:
        return set()
    rows = session.scalars(
        select(FloodHold.entry_id).where(FloodHold.entry_id.in_(ids), FloodHold.status == "held")
    )
    return set(rows)


def count_matches(
    session: Session,
    entries: dict[int, int | None],
    policy: FloodPolicy,
    now: float | None = None,
) -> set[int]:
    """Count one match for each entry (id -> list id); return those held now.

    An entry over the limit gets a hold row (once); held entries stay held until
    someone releases them.
    """
    if not entries:
        return set()
    held = held_entries(session, entries)
    if not policy.enabled:
        return held
    now = time.time() if now is None else now
    window = int(now // policy.window_s) * policy.window_s
    for entry_id, list_id in entries.items():
        count = _increment(session, entry_id, window)
        if count > policy.max_matches and entry_id not in held:
            session.add(
                FloodHold(
                    entry_id=entry_id,
                    list_id=list_id,
                    count=count,
                    window_s=policy.window_s,
                    status="held",
                )
            )
            session.flush()
            held.add(entry_id)
    return held


def _increment(session: Session, entry_id: int, window: int) -> int:
    for _ in range(3):
        result = session.execute(
            update(FloodCounter)
            .where(FloodCounter.entry_id == entry_id, FloodCounter.window_start == window)
            .values(count=FloodCounter.count + 1)
            .returning(FloodCounter.count)
        ).first()
        if result is not None:
            return int(result[0])
        try:
            with session.begin_nested():
                session.add(FloodCounter(entry_id=entry_id, window_start=window, count=1))
            return 1
        except IntegrityError:
            continue  # another writer created it first: update it instead
    raise Conflict(f"flood control: could not count a match of entry {entry_id}")


def held_entry_ids(session: Session) -> frozenset[int]:
    """Entries flood control holds now (their matches are flagged `held`)."""
    return frozenset(session.scalars(select(FloodHold.entry_id).where(FloodHold.status == "held")))


def list_holds(session: Session, status: str | None = "held") -> list[FloodHold]:
    """Holds, newest first (all of them when `status` is None)."""
    query = select(FloodHold).order_by(FloodHold.id.desc())
    if status:
        query = query.where(FloodHold.status == status)
    return list(session.scalars(query))


def release_hold(session: Session, hold_id: int, actor: str | None = None) -> FloodHold:
    """Release a hold after review: the entry's matches fire actions again."""
    hold = session.get(FloodHold, hold_id)
    if hold is None:
        raise NotFound(f"no flood hold {hold_id}")
    if hold.status != "held":
        raise Conflict(f"flood hold {hold_id} is already {hold.status}")
    hold.status = "released"
    hold.released_at = utcnow()
    hold.released_by = actor
    # Start counting afresh so the release is not immediately undone.
    session.execute(
        update(FloodCounter).where(FloodCounter.entry_id == hold.entry_id).values(count=0)
    )
    session.flush()
    return hold


def hold_to_json(hold: FloodHold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "entry_id": hold.entry_id,
        "list_id": hold.list_id,
        "status": hold.status,
        "count": hold.count,
        "window_s": hold.window_s,
        "held_at": isoformat(hold.held_at),
        "released_at": isoformat(hold.released_at),
        "released_by": hold.released_by,
    }
