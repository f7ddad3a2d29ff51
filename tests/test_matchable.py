"""The matchable rule is one rule: `is_matchable` (Python) and `matchable_clause` /
`entry_matchable_clause` (SQL) agree on every entry state, on a real SQLite file and
on PostgreSQL; and nothing outside `ridgeline.lists` writes entry state."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ridgeline import lists as L
from ridgeline.lists.models import Entry, EntrySignal, HashList
from ridgeline.store import Store
from ridgeline.timeutil import utcnow

#: Offsets (seconds) of a disable's end from "now": past, exactly now, future, far off.
OFFSETS = st.one_of(st.none(), st.sampled_from([-86400, -1, 0, 1, 86400]), st.integers(-5, 5))
ENTRY = st.fixed_dictionaries(
    {
        "status": st.sampled_from(L.ENTRY_STATUSES),
        "enabled": st.booleans(),
        "until": OFFSETS,
        "deleted": st.booleans(),
    }
)
#: A few lists, each enabled or not, each with some entries in any state.
LISTS = st.lists(
    st.tuples(st.booleans(), st.lists(ENTRY, min_size=1, max_size=8)), min_size=1, max_size=3
)
#: "now" in UTC and in other zones: the rule compares instants, not wall clocks.
ZONES = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                         dt.timezone(dt.timedelta(hours=-8))])  # fmt: skip

_run = 0


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lists=LISTS, zone=ZONES)
def test_is_matchable_agrees_with_the_sql_clause(
    store: Store, lists: list[tuple[bool, list[dict[str, Any]]]], zone: dt.tzinfo
) -> None:
    """Every state an entry row can hold, including ones the API never makes (enabled
    with a leftover `disabled_until`, a deleted pending entry), is judged the same."""
    global _run
    _run += 1
    now = utcnow().replace(microsecond=0)
    list_ids = []
    with store.session() as s:
        for n, (list_enabled, entries) in enumerate(lists):
            hl = L.create_list(s, f"p{_run}-{n}")
            list_ids.append(hl.id)
            for i, state in enumerate(entries):
                until = state["until"]
                value = f"{_run:08x}{n:08x}{i:016x}"
                s.add(
                    Entry(
                        list_id=hl.id,
                        status=state["status"],
                        enabled=state["enabled"],
                        disabled_until=None if until is None else now + dt.timedelta(seconds=until),
                        deleted_at=now if state["deleted"] else None,
                        signals=[EntrySignal(signal="md5", value=value)],
                    )
                )
            L.update_list(s, hl, enabled=list_enabled)
    at = now.astimezone(zone)
    with store.session() as s:
        ours = Entry.list_id.in_(list_ids)
        rows = list(s.scalars(select(Entry).where(ours).options(selectinload(Entry.hash_list))))
        by_rule = {e.id for e in rows if L.is_matchable(e, e.hash_list, at)}
        by_sql = set(s.scalars(select(Entry.id).where(ours, L.matchable_clause(at))))
        entry_part = set(s.scalars(select(Entry.id).where(ours, L.entry_matchable_clause(at))))
        enabled_lists = set(
            s.scalars(select(HashList.id).where(HashList.id.in_(list_ids), HashList.enabled))
        )
        # the entry part alone: as if every list were enabled (the index checks lists itself)
        entry_rule = {e.id for e in rows if L.is_matchable(e, _ENABLED_LIST, at)}
    assert by_sql == by_rule
    assert entry_part == entry_rule
    assert by_rule == {i for i in entry_part if i in enabled_lists_of(rows, enabled_lists)}


#: A list that is enabled: what the entry part of the rule assumes.
_ENABLED_LIST = HashList(name="enabled", enabled=True)


def enabled_lists_of(rows: list[Entry], enabled_lists: set[int]) -> set[int]:
    """Ids of the entries that sit on an enabled list."""
    return {e.id for e in rows if e.list_id in enabled_lists}


def test_timed_disables_are_the_entries_that_come_back_alone(store: Store) -> None:
    """`timed_disables` names exactly the disabled entries that become matchable later."""
    now = utcnow()
    with store.session() as s:
        hl = L.create_list(s, "timed")
        plan = {"soon": 60, "past": -60, "forever": None, "later": 7200}
        ids = {}
        for i, (name, offset) in enumerate(plan.items()):
            e = L.add_entry(s, hl, {"md5": f"{i:032x}"})
            until = None if offset is None else now + dt.timedelta(seconds=offset)
            L.set_entry_enabled(s, e, False, until=until)
            ids[name] = e.id
        gone = L.add_entry(s, hl, {"md5": f"{9:032x}"})
        L.set_entry_enabled(s, gone, False, until=now + dt.timedelta(seconds=60))
        L.delete_entry(s, gone)
    with store.session() as s:
        coming = {i for i, _ in s.execute(L.timed_disables(ending_after=now))}
        due = {i for i, _ in s.execute(L.timed_disables(ending_by=now))}
        window = L.timed_disables(ending_after=now, ending_by=now + dt.timedelta(hours=1))
        within_hour = {i for i, _ in s.execute(window)}
        among = {i for i, _ in s.execute(L.timed_disables(entry_ids=[ids["soon"], ids["past"]]))}
    assert coming == {ids["soon"], ids["later"]}
    assert due == {ids["past"]} and within_hour == {ids["soon"]}
    assert among == {ids["soon"], ids["past"]}


def test_disable_until_in_another_zone_is_the_same_instant(store: Store) -> None:
    """A disable's end given in another time zone ends at that instant on every backend."""
    now = utcnow()
    ahead = dt.timezone(dt.timedelta(hours=9))
    with store.session() as s:
        hl = L.create_list(s, "zones")
        e = L.add_entry(s, hl, {"md5": "0" * 32})
        L.set_entry_enabled(s, e, False, until=(now + dt.timedelta(minutes=5)).astimezone(ahead))
        entry_id = e.id
    with store.session() as s:
        matchable = set(s.scalars(select(Entry.id).where(L.matchable_clause(now))))
        later = now + dt.timedelta(minutes=6)
        later_ids = set(s.scalars(select(Entry.id).where(L.matchable_clause(later))))
        assert entry_id not in matchable and entry_id in later_ids
        e = L.get_entry(s, entry_id)
        assert not L.is_matchable(e, e.hash_list, now) and L.is_matchable(e, e.hash_list, later)


SRC = Path(__file__).resolve().parents[1] / "src" / "ridgeline"
#: Ways code writes entry state: new entry or hash rows, bulk inserts, status and
#: enabled assignments, tombstones.
WRITES = re.compile(
    r"\bEntry\(|\bEntrySignal\(|insert\(Entry\b|insert\(EntrySignal\b|"
    r"\bentry\.(status|enabled|disabled_until|deleted_at|signals|classifications)\s*=(?!=)"
)


def test_only_lists_writes_entry_state() -> None:
    """Entry rows, their hashes and their state are written by `ridgeline.lists` alone
    (imports of every format included); other packages call its functions."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(("lists/", "store/")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WRITES.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_matchable_rule_is_written_once() -> None:
    """No module outside `ridgeline.lists` spells the rule's parts in SQL again."""
    spelled = re.compile(r'Entry\.status\s*==\s*"confirmed"|Entry\.disabled_until\s*[<>]')
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        if not path.relative_to(SRC).as_posix().startswith("lists/")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line)
    ]
    assert offenders == []
