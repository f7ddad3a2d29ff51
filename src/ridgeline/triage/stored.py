"""Stored priorities: record (in bulk at intake), read, override with a reason, queue.

Library functions take a Session, flush and never commit. An override is logged in the
tamper-evident log in the same transaction, so a priority never changes unrecorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, select, update
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, NotFound
from ridgeline.store.bulk import insert_rows
from ridgeline.timeutil import as_utc, isoformat, utcnow
from ridgeline.triage.core import Assessment, Reason
from ridgeline.triage.models import TriagePriority
from ridgeline.triage.rules import PRIORITIES

_CHUNK = 5000
#: Core table: bulk inserts skip the ORM's per-row bookkeeping (intake writes 100,000s).
_TABLE: Table = TriagePriority.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StoredTriage:
    """A report's priority as stored: in force, computed, reasons, override."""

    report_id: int
    priority: int
    computed_priority: int
    reasons: tuple[Reason, ...]
    rules: str
    received_at: dt.datetime
    assessed_at: dt.datetime
    overridden_by: str | None
    overridden_at: dt.datetime | None
    override_reason: str | None

    @classmethod
    def of(cls, row: TriagePriority) -> StoredTriage:
        return cls(
            report_id=row.report_id,
            priority=row.priority,
            computed_priority=row.computed_priority,
            reasons=tuple(
                Reason(str(r["rule"]), r.get("priority"), str(r["detail"])) for r in row.reasons
            ),
            rules=row.rules,
            received_at=as_utc(row.received_at),
            assessed_at=as_utc(row.assessed_at),
            overridden_by=row.overridden_by,
            overridden_at=as_utc(row.overridden_at) if row.overridden_at else None,
            override_reason=row.override_reason,
        )

    @property
    def override(self) -> dict[str, Any] | None:
        if self.overridden_at is None:
            return None
        return {
            "by": self.overridden_by,
            "at": isoformat(self.overridden_at),
            "reason": self.override_reason,
            "computed_priority": self.computed_priority,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "priority": self.priority,
            "label": PRIORITIES[self.priority],
            "computed_priority": self.computed_priority,
            "reasons": [r.to_json() for r in self.reasons],
            "rules": self.rules,
            "received_at": isoformat(self.received_at),
            "assessed_at": isoformat(self.assessed_at),
            "override": self.override,
        }


def _row(
    report_id: int, received_at: dt.datetime, a: Assessment, at: dt.datetime
) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "priority": a.priority,
        "computed_priority": a.priority,
        "reasons": [r.to_json() for r in a.reasons],
        "rules": a.rules[:500],
        "received_at": as_utc(received_at),
        "assessed_at": at,
    }


_COLUMNS = (
    "report_id",
    "priority",
    "computed_priority",
    "reasons",
    "rules",
    "received_at",
    "assessed_at",
)


def record_many(
    session: Session,
    rows: Iterable[tuple[int, dt.datetime, Assessment]],
    *,
    at: dt.datetime | None = None,
) -> int:
    """Store the assessments of newly received reports in bulk (COPY on PostgreSQL, one
    executemany on SQLite, per chunk).

    The reports must not have a stored priority yet (intake calls this once per new
    report); use `record` to re-assess one that has.
    """
    now = as_utc(at or utcnow())
    batch: list[tuple[Any, ...]] = []
    count = 0
    for report_id, received_at, a in rows:
        batch.append(
            (
                report_id,
                a.priority,
                a.priority,
                [r.to_json() for r in a.reasons],
                a.rules[:500],
                as_utc(received_at),
                now,
            )
        )
        if len(batch) >= _CHUNK:
            insert_rows(session, _TABLE, _COLUMNS, batch)
            count += len(batch)
            batch = []
    if batch:
        insert_rows(session, _TABLE, _COLUMNS, batch)
        count += len(batch)
    return count


def record(
    session: Session,
    report_id: int,
    received_at: dt.datetime,
    assessment: Assessment,
    *,
    at: dt.datetime | None = None,
) -> StoredTriage:
    """Store (or replace) one report's computed priority; an override stays in force."""
    now = as_utc(at or utcnow())
    row = session.get(TriagePriority, report_id)
    values = _row(report_id, received_at, assessment, now)
    if row is None:
        row = TriagePriority(**values)
        session.add(row)
    else:
        for key, value in values.items():
            if key == "priority" and row.overridden_at is not None:
                continue
            setattr(row, key, value)
    session.flush()
    return StoredTriage.of(row)


def rerecord_many(
    session: Session,
    rows: Iterable[tuple[int, dt.datetime, Assessment]],
    *,
    at: dt.datetime | None = None,
) -> int:
    """Replace the computed priorities of reports triaged before, in one executemany
    (what `record` does one row at a time): an analyst's override stays in force."""
    now = as_utc(at or utcnow())
    params = [
        {
            "rid": report_id,
            "p": a.priority,
            "reasons": [r.to_json() for r in a.reasons],
            "rules": a.rules[:500],
            "received": as_utc(received_at),
            "at": now,
        }
        for report_id, received_at, a in rows
    ]
    if not params:
        return 0
    t: Any = _TABLE
    stmt = (
        update(t)
        .where(t.c.report_id == bindparam("rid"))
        .values(
            priority=case((t.c.overridden_at.is_(None), bindparam("p")), else_=t.c.priority),
            computed_priority=bindparam("p"),
            reasons=bindparam("reasons", type_=t.c.reasons.type),
            rules=bindparam("rules"),
            received_at=bindparam("received", type_=t.c.received_at.type),
            assessed_at=bindparam("at", type_=t.c.assessed_at.type),
        )
    )
    session.connection().execute(stmt, params)
    return len(params)


def current(session: Session, report_id: int) -> StoredTriage | None:
    """The stored priority of a report, or None if it was never triaged."""
    row = session.get(TriagePriority, report_id)
    return None if row is None else StoredTriage.of(row)


def current_many(session: Session, report_ids: Sequence[int]) -> dict[int, StoredTriage]:
    out: dict[int, StoredTriage] = {}
    ids = sorted(set(report_ids))
    for i in range(0, len(ids), 900):
        for row in session.scalars(
            select(TriagePriority).where(TriagePriority.report_id.in_(ids[i : i + 900]))
        ):
            out[row.report_id] = StoredTriage.of(row)
    return out


def override(
    session: Session,
    report_id: int,
    priority: int,
    reason: str,
    actor: str | None = None,
    *,
    at: dt.datetime | None = None,
) -> StoredTriage:
    """An analyst sets a report's priority, with a reason (logged, tamper-evident)."""
    if isinstance(priority, bool) or priority not in PRIORITIES:
        raise BadInput(f"priority must be 1, 2, 3 or 4, not {priority!r}")
    if not reason or not reason.strip():
        raise BadInput("an override needs a reason")
    row = session.get(TriagePriority, report_id)
    if row is None:
        raise NotFound(f"received report {report_id} has not been triaged")
    actor = actor or auditlog.default_actor()
    now = as_utc(at or utcnow())
    before = row.priority
    row.priority = priority
    row.overridden_by = actor
    row.overridden_at = now
    row.override_reason = reason.strip()
    auditlog.append(
        session,
        actor,
        "triage.override",
        f"received_report:{report_id}",
        {
            "from": before,
            "to": priority,
            "computed_priority": row.computed_priority,
            "reason": reason.strip(),
        },
        now=now,
    )
    session.flush()
    return StoredTriage.of(row)


def forget(session: Session, report_ids: Sequence[int]) -> None:
    """Drop stored priorities (when intake drops the reports themselves)."""
    for i in range(0, len(report_ids), 900):
        session.execute(
            delete(TriagePriority).where(TriagePriority.report_id.in_(report_ids[i : i + 900]))
        )


@dataclass(frozen=True)
class QueueRow:
    report_id: int
    priority: int
    received_at: dt.datetime
    overridden: bool
    top_reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "priority": self.priority,
            "label": PRIORITIES[self.priority],
            "received_at": isoformat(self.received_at),
            "overridden": self.overridden,
            "top_reason": self.top_reason,
        }


def queue(
    session: Session,
    *,
    priority: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[QueueRow]:
    """Triaged reports, most urgent first, then oldest first (the analysts' queue)."""
    if limit < 1 or offset < 0:
        raise BadInput("limit must be >= 1 and offset >= 0")
    query = select(TriagePriority).order_by(
        TriagePriority.priority, TriagePriority.received_at, TriagePriority.report_id
    )
    if priority is not None:
        if priority not in PRIORITIES:
            raise BadInput(f"priority must be 1, 2, 3 or 4, not {priority!r}")
        query = query.where(TriagePriority.priority == priority)
    out = []
    for row in session.scalars(query.offset(offset).limit(limit)):
        top = min(
            (r for r in row.reasons if r.get("priority") is not None),
            key=lambda r: int(r["priority"]),
            default=None,
        )
        out.append(
            QueueRow(
                report_id=row.report_id,
                priority=row.priority,
                received_at=as_utc(row.received_at),
                overridden=row.overridden_at is not None,
                top_reason=(
                    f"override: {row.override_reason}"
                    if row.overridden_at is not None
                    else (str(top["detail"]) if top else "")
                ),
            )
        )
    return out
