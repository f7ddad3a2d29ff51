"""The one matchable rule: which entries may produce matches, in Python and in SQL.

An entry is matchable when its list is enabled, it is not deleted, its status is
`confirmed`, and it is enabled or its timed disable (`disabled_until`) has run out.
Entries carry no expiry of their own; the only expiry is that of a timed disable.

`is_matchable` (one entry in hand), `matchable_clause` (whole rule, for any query over
`entries`) and `entry_matchable_clause` (the entry part, for indexes that check the
list at query time) are the only places the rule is written; a property test checks
that the Python predicate and the SQL agree on SQLite and PostgreSQL. This module
depends on the store models only, so the index can use it without the rest of lists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import ColumnElement, Select, and_, or_, select

from ridgeline.lists.models import Entry, HashList
from ridgeline.timeutil import as_utc, utcnow

#: The status an entry must have to match.
MATCHABLE_STATUS = "confirmed"


def is_matchable(entry: Entry, hash_list: HashList, now: dt.datetime | None = None) -> bool:
    """Whether an entry may produce matches right now (see the module docstring)."""
    if not hash_list.enabled or entry.deleted_at is not None:
        return False
    if entry.status != MATCHABLE_STATUS:
        return False
    if entry.enabled:
        return True
    until = entry.disabled_until
    return until is not None and as_utc(until) <= as_utc(now or utcnow())


def entry_matchable_clause(now: dt.datetime) -> ColumnElement[bool]:
    """SQL for the entry part of `is_matchable`; the list's `enabled` is not checked.

    `now` is compared as an instant: it is turned to UTC first, because SQLite stores and
    compares times as UTC wall-clock text (found by the property test in test_matchable).
    """
    now = as_utc(now)
    return and_(
        Entry.deleted_at.is_(None),
        Entry.status == MATCHABLE_STATUS,
        or_(
            Entry.enabled.is_(True),
            and_(Entry.disabled_until.is_not(None), Entry.disabled_until <= now),
        ),
    )


def matchable_clause(now: dt.datetime) -> ColumnElement[bool]:
    """SQL for the whole of `is_matchable`, usable in any query over `entries`."""
    enabled_lists = select(HashList.id).where(HashList.enabled.is_(True))
    return and_(entry_matchable_clause(now), Entry.list_id.in_(enabled_lists))


def timed_disables(
    *,
    ending_after: dt.datetime | None = None,
    ending_by: dt.datetime | None = None,
    entry_ids: Iterable[int] | None = None,
) -> Select[int, dt.datetime | None]:
    """`(id, disabled_until)` of live entries whose disable ends on its own, optionally
    only those ending in `(ending_after, ending_by]` or among `entry_ids`.

    When such a disable ends the entry becomes matchable without a change-feed row;
    indexes use this to know when to look again, `expire_disables` to re-enable.
    """
    ending_after = None if ending_after is None else as_utc(ending_after)
    ending_by = None if ending_by is None else as_utc(ending_by)
    stmt = select(Entry.id, Entry.disabled_until).where(
        Entry.enabled.is_(False),
        Entry.disabled_until.is_not(None),
        Entry.deleted_at.is_(None),
    )
    if ending_after is not None:
        stmt = stmt.where(Entry.disabled_until > ending_after)
    if ending_by is not None:
        stmt = stmt.where(Entry.disabled_until <= ending_by)
    if entry_ids is not None:
        stmt = stmt.where(Entry.id.in_(list(entry_ids)))
    return stmt.order_by(Entry.id)
