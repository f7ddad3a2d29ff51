"""Tamper-evident log: an append-only, hash-chained record of every review, audit,
list change, entry change and unblur.

Each record stores `hash = sha256(prev_hash + canonical_json(record))`, so editing,
deleting or reordering any row breaks the chain from that row on and `verify` names the
first bad record. Truncating the *tail* leaves a shorter chain that is still
consistent; only an externally anchored head hash (`head()` written somewhere the
database's owner cannot rewrite, then `verify(expect_head=...)`) catches that.

The library offers no update or delete; the migration adds database triggers that
refuse UPDATE/DELETE (and TRUNCATE on PostgreSQL), so an attacker must first drop them.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, String, Text, event, select, text, type_coerce
from sqlalchemy.orm import Mapped, Session, mapped_column

from ridgeline.errors import BadInput, PermissionDenied
from ridgeline.store.models import Base
from ridgeline.timeutil import as_utc, isoformat, utcnow

GENESIS = "0" * 64
TABLE = "log_records"


class LogRecord(Base):
    """One entry of the tamper-evident log (never updated or deleted)."""

    __tablename__ = TABLE

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(200), index=True)
    #: Canonical JSON text of the details, kept verbatim so hashing never depends on
    #: how a backend re-serialises JSON.
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": isoformat(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": json.loads(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@event.listens_for(LogRecord, "before_update")
def _refuse_update(*_: Any) -> None:
    raise PermissionDenied("the tamper-evident log is append-only: records cannot be changed")


@event.listens_for(LogRecord, "before_delete")
def _refuse_delete(*_: Any) -> None:
    raise PermissionDenied("the tamper-evident log is append-only: records cannot be deleted")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _at_text(at: dt.datetime) -> str:
    # Microsecond precision survives both SQLite and PostgreSQL unchanged.
    return as_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(
    prev_hash: str,
    seq: int,
    at: dt.datetime,
    actor: str | None,
    action: str,
    subject: str | None,
    details: str,
) -> str:
    """sha256 over the previous hash and this record's canonical JSON."""
    body = _canonical(
        {
            "seq": seq,
            "at": _at_text(at),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _lock(session: Session) -> None:
    """Serialise appenders so two transactions never claim the same `seq`.

    On SQLite the driver opens a transaction only at the first write, so a head read
    before it ran outside any transaction: another process could append in between,
    and this append then failed on a taken `seq` (IntegrityError; measured: one append
    in ten with two concurrent writers, e.g. an import that added nothing beside
    intake). A write that changes nothing takes the database's write lock first.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7340142)"))
    elif bind.dialect.name == "sqlite":
        session.execute(text(f"UPDATE {LogRecord.__tablename__} SET seq = seq WHERE 0"))


#: session.info key: (transaction, seq, hash) of the last record this transaction appended.
_HEAD_CACHE = "ridgeline.auditlog.head"


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, _transaction: Any) -> None:
    """Any commit, rollback or savepoint end makes the cached head unsafe: re-read it."""
    session.info.pop(_HEAD_CACHE, None)


def _transaction_head(session: Session) -> tuple[int, str]:
    """The head as this transaction sees it, locking once per transaction.

    Within one transaction (after the lock on PostgreSQL, or after its first write on
    SQLite) nobody else can append, so the head is remembered instead of re-queried.
    """
    txn = session.get_transaction()
    cached = session.info.get(_HEAD_CACHE)
    if cached is not None and txn is not None and cached[0] is txn and txn.is_active:
        return cached[1], cached[2]
    _lock(session)
    return head(session)


def head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the newest record; (0, GENESIS) for an empty log."""
    row = session.execute(
        select(LogRecord.seq, LogRecord.hash).order_by(LogRecord.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def default_actor() -> str:
    """Who is running this process: the operating-system user (`uid:N` if it has no name).

    The default for every `--actor` and for library calls that name nobody, so the log
    never records a change by nobody. The HTTP API records `key:NAME` instead.
    """
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry (containers)
        return f"uid:{os.getuid()}"


def append(
    session: Session,
    actor: str | None,
    action: str,
    subject: str | None,
    details: Mapping[str, Any] | None = None,
    *,
    now: dt.datetime | None = None,
) -> LogRecord:
    """Append one record in the caller's transaction (it commits or rolls back with it).

    An empty `actor` is recorded as `default_actor()`, never as null. Never put media
    bytes or file paths in `details`.
    """
    if not action:
        raise BadInput("a log record needs an action")
    actor = actor or default_actor()
    seq, prev = _transaction_head(session)
    at = as_utc(now or utcnow())
    details_text = _canonical(dict(details or {}))
    record = LogRecord(
        seq=seq + 1,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=details_text,
        prev_hash=prev,
        hash=record_hash(prev, seq + 1, at, actor, action, subject, details_text),
    )
    session.add(record)
    session.info[_HEAD_CACHE] = (session.get_transaction(), record.seq, record.hash)
    return record


@dataclass
class VerifyResult:
    """Outcome of `verify`: `first_bad_seq` and `reason` are None when the log is intact."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
        }


def _stored_time(value: object) -> dt.datetime | None:
    """A stored record time as the ORM would load it, or None if it is not a time."""
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def verify(
    session: Session,
    *,
    expect_head: str | None = None,
    anchors: Sequence[tuple[int, str]] = (),
) -> VerifyResult:
    """Walk the chain from the first record; report the first edit, gap or reordering.

    With `expect_head` (a hash printed by `head` earlier and kept outside the database)
    the chain must still contain that record, which also catches a truncated tail.
    Each of `anchors` ((seq, hash) pairs from an anchor file) must be record `seq` with
    exactly that hash: a rewritten chain fails at the first anchored record it changed.
    """
    anchored = {int(seq): str(h).strip().lower() for seq, h in anchors}
    expected_seq = 1
    prev = GENESIS
    checked = 0
    found_anchor = expect_head is None
    anchor = (expect_head or "").strip().lower()
    # The time is read as stored and parsed here: on SQLite a garbage value ended the
    # whole verify in a traceback instead of naming the broken record (issue 17 #13).
    rows = session.execute(
        select(
            LogRecord.seq,
            type_coerce(LogRecord.at, String).label("at"),
            LogRecord.actor,
            LogRecord.action,
            LogRecord.subject,
            LogRecord.details,
            LogRecord.prev_hash,
            LogRecord.hash,
        )
        .order_by(LogRecord.seq)
        .execution_options(yield_per=2000)
    )
    for rec in rows:
        if rec.seq != expected_seq:
            reason = (
                f"record {expected_seq} is missing (next stored record is {rec.seq})"
                if rec.seq > expected_seq
                else f"record {rec.seq} is out of order"
            )
            return VerifyResult(False, checked, expected_seq, reason, expected_seq - 1, prev)
        if rec.prev_hash != prev:
            return VerifyResult(
                False,
                checked,
                rec.seq,
                f"record {rec.seq} does not link to record {rec.seq - 1} "
                "(a record was deleted, inserted or reordered)",
                rec.seq - 1,
                prev,
            )
        at = _stored_time(rec.at)
        if at is None:
            return VerifyResult(
                False,
                checked,
                rec.seq,
                f"record {rec.seq} has an unreadable time {str(rec.at)[:64]!r} (it was altered)",
                rec.seq - 1,
                prev,
            )
        recomputed = record_hash(prev, rec.seq, at, rec.actor, rec.action, rec.subject, rec.details)
        if recomputed != rec.hash:
            return VerifyResult(
                False,
                checked,
                rec.seq,
                f"record {rec.seq} was altered (its content no longer matches its hash)",
                rec.seq - 1,
                prev,
            )
        if rec.seq in anchored and anchored[rec.seq] != rec.hash:
            return VerifyResult(
                False,
                checked,
                rec.seq,
                f"record {rec.seq} differs from its anchored hash {anchored[rec.seq][:16]}…: "
                "the log was rewritten",
                rec.seq - 1,
                prev,
            )
        if not found_anchor and rec.hash == anchor:
            found_anchor = True
        prev = rec.hash
        checked += 1
        expected_seq += 1
    beyond = sorted(s for s in anchored if s >= expected_seq)
    if beyond:
        return VerifyResult(
            False,
            checked,
            expected_seq,
            f"anchored record {beyond[-1]} is not in the log (it ends at {expected_seq - 1}): "
            "the log was truncated",
            expected_seq - 1,
            prev,
        )
    if not found_anchor:
        return VerifyResult(
            False,
            checked,
            expected_seq,
            f"anchored head {anchor} is not in the log: the log was truncated or rewritten",
            expected_seq - 1,
            prev,
        )
    return VerifyResult(True, checked, None, None, expected_seq - 1, prev)


def records(
    session: Session,
    *,
    subject: str | None = None,
    action: str | None = None,
    since_seq: int = 0,
    limit: int | None = 100,
    newest_first: bool = False,
) -> list[LogRecord]:
    """Records, oldest first by default, filtered by subject (`entry:12`, `list:3`) or action."""
    query = select(LogRecord).where(LogRecord.seq > since_seq)
    if subject is not None:
        query = query.where(LogRecord.subject == subject)
    if action is not None:
        query = query.where(LogRecord.action == action)
    query = query.order_by(LogRecord.seq.desc() if newest_first else LogRecord.seq)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
