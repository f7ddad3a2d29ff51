"""Lists and entries as library functions over a store session.

Every change to an entry is written to its history (`entry_events`) and to the
change feed (`changes`) that match indexes poll to update in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ridgeline.errors import Conflict, NotFound, RidgelineError
from ridgeline.signals import get_signal
from ridgeline.store.models import Change, Entry, EntryEvent, EntrySignal, HashList, lookup_key
from ridgeline.timeutil import as_utc, isoformat, utcnow

ENTRY_STATUSES = ("pending", "confirmed", "rejected", "disputed", "retired")
LIST_PURPOSES = ("block", "allow")


def record_event(
    session: Session, entry: Entry, action: str, actor: str | None, **details: Any
) -> None:
    """Append to an entry's history."""
    session.add(EntryEvent(entry_id=entry.id, action=action, actor=actor, details=details))


def record_change(session: Session, list_id: int, entry_id: int | None, op: str) -> None:
    """Append to the change feed that indexes poll (op: add, update, remove)."""
    session.add(Change(list_id=list_id, entry_id=entry_id, op=op))


def create_list(
    session: Session,
    name: str,
    *,
    purpose: str = "block",
    thresholds: Mapping[str, float] | None = None,
    signals: Sequence[str] = (),
    owner: str | None = None,
    description: str | None = None,
    review_quorum: int = 0,
) -> HashList:
    """Create a list; names are unique."""
    name = name.strip()
    if not name:
        raise RidgelineError("a list needs a name")
    if purpose not in LIST_PURPOSES:
        raise RidgelineError(f"purpose must be one of {', '.join(LIST_PURPOSES)}, not {purpose!r}")
    if review_quorum < 0:
        raise RidgelineError("review quorum cannot be negative")
    if session.scalar(select(HashList.id).where(HashList.name == name)) is not None:
        raise Conflict(f"a list named {name!r} already exists")
    for signal in [*signals, *(thresholds or {})]:
        get_signal(signal)  # raises UnknownSignal
    hash_list = HashList(
        name=name,
        purpose=purpose,
        thresholds={k: float(v) for k, v in (thresholds or {}).items()},
        signals=list(signals),
        owner=owner,
        description=description,
        review_quorum=review_quorum,
        enabled=True,
    )
    session.add(hash_list)
    session.flush()
    return hash_list


def get_list(session: Session, name_or_id: str | int) -> HashList:
    """A list by name (or numeric id), or `NotFound`."""
    if isinstance(name_or_id, int):
        found = session.get(HashList, name_or_id)
    else:
        found = session.scalar(select(HashList).where(HashList.name == name_or_id))
    if found is None:
        raise NotFound(f"no list named {name_or_id!r}")
    return found


def list_lists(session: Session) -> list[HashList]:
    """All lists, by name."""
    return list(session.scalars(select(HashList).order_by(HashList.name)))


def update_list(
    session: Session,
    hash_list: HashList,
    *,
    enabled: bool | None = None,
    thresholds: Mapping[str, float] | None = None,
    review_quorum: int | None = None,
    description: str | None = None,
) -> HashList:
    """Change list settings; indexes see enable/threshold changes through the feed."""
    if enabled is not None:
        hash_list.enabled = enabled
    if thresholds is not None:
        for signal in thresholds:
            get_signal(signal)
        hash_list.thresholds = {**(hash_list.thresholds or {}), **thresholds}
    if review_quorum is not None:
        hash_list.review_quorum = review_quorum
    if description is not None:
        hash_list.description = description
    hash_list.updated_at = utcnow()
    session.flush()
    record_change(session, hash_list.id, None, "update")
    return hash_list


def normalize_signals(hash_list: HashList, signals: Mapping[str, Any]) -> dict[str, str]:
    """Validate an entry's hashes for the list (raises `InvalidHash` / `UnknownSignal`)."""
    out: dict[str, str] = {}
    for name, value in signals.items():
        signal = get_signal(name)
        if hash_list.signals and signal.name not in hash_list.signals:
            raise RidgelineError(
                f"list {hash_list.name!r} takes {', '.join(hash_list.signals)}, not {signal.name}"
            )
        out[signal.name] = signal.normalize(value)
    if not out:
        raise RidgelineError("an entry needs at least one hash")
    return out


def add_entry(
    session: Session,
    hash_list: HashList,
    signals: Mapping[str, Any],
    *,
    status: str | None = None,
    classifications: Sequence[Mapping[str, str]] = (),
    source: str | None = None,
    origin_list: str | None = None,
    origin_member: str | None = None,
    origin_entry_id: str | None = None,
    import_batch: str | None = None,
    note: str | None = None,
    actor: str | None = None,
    qualities: Mapping[str, int] | None = None,
) -> Entry:
    """Add an entry. With no review policy it is confirmed (matchable) at once;
    with one it starts `pending` unless the caller records another status."""
    values = normalize_signals(hash_list, signals)
    if status is None:
        status = "confirmed" if hash_list.review_quorum == 0 else "pending"
    if status not in ENTRY_STATUSES:
        raise RidgelineError(f"status must be one of {', '.join(ENTRY_STATUSES)}")
    entry = Entry(
        list_id=hash_list.id,
        status=status,
        enabled=True,
        classifications=[validate_classification(c) for c in classifications],
        source=source,
        origin_list=origin_list,
        origin_member=origin_member,
        origin_entry_id=origin_entry_id,
        import_batch=import_batch,
        note=note,
        submitted_by=actor,
    )
    entry.signals = [
        EntrySignal(
            signal=name,
            value=value,
            lookup_key=lookup_key(value),
            quality=(qualities or {}).get(name),
        )
        for name, value in values.items()
    ]
    session.add(entry)
    session.flush()
    record_event(session, entry, "create", actor, status=status, signals=values)
    record_change(session, hash_list.id, entry.id, "add")
    return entry


def validate_classification(item: Mapping[str, str]) -> dict[str, str]:
    """A classification must carry its scheme (CONVENTIONS.md), never a bare code."""
    from ridgeline.classifications import validate

    if "scheme" not in item or "label" not in item:
        raise RidgelineError(f"classification {dict(item)!r} needs a scheme and a label")
    return validate(item["scheme"], item["label"])


def get_entry(session: Session, entry_id: int) -> Entry:
    """An entry by id (with its hashes), or `NotFound`."""
    entry = session.get(Entry, entry_id, options=[selectinload(Entry.signals)])
    if entry is None:
        raise NotFound(f"no entry {entry_id}")
    return entry


def set_entry_enabled(
    session: Session,
    entry: Entry,
    enabled: bool,
    *,
    until: dt.datetime | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> Entry:
    """Enable or disable an entry; a disable may expire at `until`."""
    if entry.deleted_at is not None:
        raise Conflict(f"entry {entry.id} is deleted")
    entry.enabled = enabled
    entry.disabled_until = None if enabled else until
    session.flush()
    record_event(
        session,
        entry,
        "enable" if enabled else "disable",
        actor,
        until=isoformat(until),
        reason=reason,
    )
    record_change(session, entry.list_id, entry.id, "add" if enabled else "remove")
    return entry


def set_entry_status(
    session: Session,
    entry: Entry,
    status: str,
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> Entry:
    """Move an entry through its review states and tell the indexes."""
    if status not in ENTRY_STATUSES:
        raise RidgelineError(f"status must be one of {', '.join(ENTRY_STATUSES)}")
    old = entry.status
    entry.status = status
    session.flush()
    record_event(session, entry, "status", actor, old=old, new=status, reason=reason)
    record_change(session, entry.list_id, entry.id, "add" if status == "confirmed" else "remove")
    return entry


def delete_entry(
    session: Session, entry: Entry, *, actor: str | None = None, reason: str | None = None
) -> Entry:
    """Tombstone an entry: never matched again, kept for history and for syncing deletions."""
    if entry.deleted_at is None:
        entry.deleted_at = utcnow()
        session.flush()
        record_event(session, entry, "delete", actor, reason=reason)
        record_change(session, entry.list_id, entry.id, "remove")
    return entry


def is_matchable(entry: Entry, hash_list: HashList, now: dt.datetime | None = None) -> bool:
    """Whether an entry may produce matches right now."""
    if not hash_list.enabled or entry.deleted_at is not None or entry.status != "confirmed":
        return False
    if entry.enabled:
        return True
    until = entry.disabled_until
    return until is not None and as_utc(until) <= (now or utcnow())


def list_to_json(hash_list: HashList, *, entry_count: int | None = None) -> dict[str, Any]:
    """JSON view of a list's settings."""
    out: dict[str, Any] = {
        "id": hash_list.id,
        "name": hash_list.name,
        "owner": hash_list.owner,
        "description": hash_list.description,
        "purpose": hash_list.purpose,
        "enabled": hash_list.enabled,
        "signals": hash_list.signals or [],
        "thresholds": hash_list.thresholds or {},
        "review_quorum": hash_list.review_quorum,
        "created_at": isoformat(hash_list.created_at),
    }
    if entry_count is not None:
        out["entries"] = entry_count
    return out


def entry_to_json(entry: Entry) -> dict[str, Any]:
    """JSON view of an entry with its hashes and provenance."""
    return {
        "id": entry.id,
        "list_id": entry.list_id,
        "status": entry.status,
        "enabled": entry.enabled,
        "disabled_until": isoformat(entry.disabled_until),
        "signals": {s.signal: s.value for s in entry.signals},
        "classifications": entry.classifications or [],
        "source": entry.source,
        "provenance": {
            "origin_list": entry.origin_list,
            "origin_member": entry.origin_member,
            "origin_entry_id": entry.origin_entry_id,
            "import_batch": entry.import_batch,
        },
        "created_at": isoformat(entry.created_at),
        "deleted_at": isoformat(entry.deleted_at),
    }
