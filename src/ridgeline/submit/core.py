"""Self-submission as library functions over a store session: submit, withdraw, status.

Rules this module keeps:

* Only hashes arrive (MD5 of the file, PDQ and its quality for images); no media, no
  name, no contact. The case number is the person's only handle: it is generated here
  unless they bring one, and stored only as its SHA-256.
* Everything goes on one list of purpose `SELF_SUBMITTED`, so providers receive it
  apart from reviewed lists; its matches are for human review only (the scan pipeline
  downgrades actions to flag, `/v1/match` marks them `review`).
* Abuse checks before anything is stored: at most `Limits.max_items` items a request,
  per-submitter limits over a sliding window (`Limits.window_s`), PDQ below the
  matchable quality refused, and a hash that matches an allow-list (widely shared,
  benign content) refused with that reason.
* Withdrawal tombstones every entry of the case through `lists.delete_entry`, so it
  reaches indexes, providers' change feeds and exports like any deletion.

Library functions flush and never commit (`Store.session()` is the transaction).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, Conflict, NotFound, RateLimited
from ridgeline.exchange import mark_withdrawn
from ridgeline.lists import SELF_SUBMITTED, add_entry, create_list, delete_entry
from ridgeline.lists.models import Entry, EntrySignal, HashList, stored_value
from ridgeline.matching import Matcher, Query
from ridgeline.signals import get_signal
from ridgeline.submit.models import SelfSubmission, SelfSubmissionBatch, SelfSubmissionEntry
from ridgeline.timeutil import as_utc, isoformat, utcnow

#: The one list that self-submitted hashes go on.
LIST_NAME = "self-submitted"
#: Who the list, the log and the entries name as the actor (never the person).
ACTOR = "self-submission"
#: Generated case numbers: "RL-" and four groups of four Crockford base-32 digits
#: (80 random bits), easy to read aloud and to copy.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CASE_CHARS = re.compile(r"[A-Z0-9-]+")
CASE_MIN, CASE_MAX = 12, 64

Outcome = Literal["added", "already-submitted", "refused"]


class SubmissionRefused(BadInput):
    """A self-submission the abuse checks refuse as a whole (too many items, nothing
    to submit)."""

    code = "submission_refused"


@dataclass(frozen=True)
class Limits:
    """Abuse limits of self-submission (per request and per submitter)."""

    #: Items (files) one request may carry.
    max_items: int = 50
    #: Requests that submit hashes, per submitter and window.
    max_batches: int = 10
    #: Items per submitter and window, all requests together.
    max_window_items: int = 200
    window_s: float = 86_400.0
    #: PDQ hashes below this quality match unrelated pictures: refused.
    min_pdq_quality: int = 50


@dataclass(frozen=True)
class Item:
    """The hashes of one file as the page computed them."""

    md5: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None

    def signals(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.md5 is not None:
            out["md5"] = self.md5
        if self.pdq is not None:
            out["pdq"] = self.pdq
        return out

    def queries(self) -> list[Query]:
        out = [Query("md5", self.md5)] if self.md5 is not None else []
        if self.pdq is not None:
            out.append(Query("pdq", self.pdq, self.pdq_quality))
        return out


def normalize_item(md5: str | None, pdq: str | None, quality: int | None) -> Item:
    """The canonical item, or `InvalidHash`/`BadInput` naming what is wrong."""
    md5_value = get_signal("md5").normalize(md5) if md5 is not None else None
    pdq_value = get_signal("pdq").normalize(pdq) if pdq is not None else None
    if md5_value is None and pdq_value is None:
        raise BadInput("an item needs an md5 or a pdq hash")
    if pdq_value is not None:
        if quality is None or not 0 <= quality <= 100:
            raise BadInput("a pdq hash needs its quality, a whole number from 0 to 100")
    elif quality is not None:
        raise BadInput("quality belongs to a pdq hash, and this item has none")
    return Item(md5_value, pdq_value, quality)


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item: added, already in this case, or refused (and why)."""

    index: int
    outcome: Outcome
    #: "allow-listed" (refused: matches widely shared benign content), "low-quality"
    #: (refused: a PDQ hash too plain to match safely, and no MD5) or
    #: "low-quality-pdq-dropped" (added with its MD5 only).
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "outcome": self.outcome, "reason": self.reason}


@dataclass(frozen=True)
class SubmissionResult:
    """The answer to a submission: the case number to keep and each item's outcome."""

    case_number: str
    new_case: bool
    items: tuple[ItemResult, ...]

    @property
    def added(self) -> int:
        return sum(1 for r in self.items if r.outcome == "added")

    def to_json(self) -> dict[str, Any]:
        return {
            "case_number": self.case_number,
            "new_case": self.new_case,
            "added": self.added,
            "items": [r.to_json() for r in self.items],
        }


@dataclass(frozen=True)
class CaseStatus:
    """A case as its holder may see it: state, live hashes, times."""

    status: str
    #: Items (entries) of the case still on the list.
    active_items: int
    created_at: dt.datetime
    withdrawn_at: dt.datetime | None
    #: Entries withdrawn by this call (0 for a status query or a repeated withdrawal).
    withdrawn_now: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "active_items": self.active_items,
            "created_at": isoformat(self.created_at),
            "withdrawn_at": isoformat(self.withdrawn_at),
            "withdrawn_now": self.withdrawn_now,
        }


def new_case_number() -> str:
    digits = "".join(secrets.choice(_CROCKFORD) for _ in range(16))
    return "RL-" + "-".join(digits[i : i + 4] for i in range(0, 16, 4))


def normalize_case_number(raw: str) -> str:
    """Upper case, spaces removed; `BadInput` unless 12-64 letters, digits and dashes."""
    value = re.sub(r"\s+", "", raw).upper()
    if not CASE_MIN <= len(value) <= CASE_MAX or not _CASE_CHARS.fullmatch(value):
        raise BadInput(
            f"a case number has {CASE_MIN} to {CASE_MAX} letters, digits and dashes "
            "(like RL-7K2M-9QXD-4H8T-C3VA)"
        )
    return value


def case_key(case_number: str) -> str:
    """What is stored for a case number: its SHA-256 (the number itself never is)."""
    return hashlib.sha256(normalize_case_number(case_number).encode()).hexdigest()


def pseudonym(secret: bytes, address: str) -> str:
    """A keyed pseudonym of a network address: enough to count one submitter's requests,
    not to recover the address without the secret."""
    return hmac.new(secret, address.encode(), hashlib.sha256).hexdigest()


def self_submitted_list(session: Session) -> HashList:
    """The self-submitted list, created on first use (by whichever worker is first)."""
    found = session.scalar(select(HashList).where(HashList.name == LIST_NAME))
    if found is not None:
        if found.purpose != SELF_SUBMITTED:
            raise Conflict(
                f"a list named {LIST_NAME!r} exists with purpose {found.purpose!r}, "
                f"not {SELF_SUBMITTED!r}; rename it to enable self-submission"
            )
        return found
    try:
        with session.begin_nested():
            return create_list(
                session,
                LIST_NAME,
                purpose=SELF_SUBMITTED,
                signals=["md5", "pdq"],
                owner="self-submission",
                description=(
                    "Hashes that people computed on their own devices from their own images "
                    "and videos. No media, never reviewed: flag matches for human review, "
                    "never act on them automatically."
                ),
                actor=ACTOR,
            )
    except IntegrityError:  # another worker created it first
        return session.scalars(select(HashList).where(HashList.name == LIST_NAME)).one()


def allow_list_check(matcher: Matcher) -> Callable[[Item], bool]:
    """An abuse check for `submit`: does the item match an enabled allow-list entry?"""

    def allow_listed(item: Item) -> bool:
        return any(m.purpose == "allow" for m in matcher.match(item.queries()))

    return allow_listed


def _check_window(
    session: Session, submitter: str, items: int, limits: Limits, now: dt.datetime
) -> None:
    since = now - dt.timedelta(seconds=limits.window_s)
    batches, sent, oldest = session.execute(
        select(
            func.count(SelfSubmissionBatch.id),
            func.coalesce(func.sum(SelfSubmissionBatch.items), 0),
            func.min(SelfSubmissionBatch.at),
        ).where(SelfSubmissionBatch.submitter == submitter, SelfSubmissionBatch.at > since)
    ).one()
    if batches + 1 > limits.max_batches or int(sent) + items > limits.max_window_items:
        wait = limits.window_s
        if oldest is not None:
            wait = max(1.0, (as_utc(oldest) - since).total_seconds())
        hours = limits.window_s / 3600
        raise RateLimited(
            f"this connection has sent the most a submitter may send in {hours:g} hours "
            f"({limits.max_batches} submissions or {limits.max_window_items} files); "
            "please try again later",
            wait,
        )


def _case(session: Session, case_number: str) -> SelfSubmission | None:
    return session.scalar(
        select(SelfSubmission).where(SelfSubmission.case_key == case_key(case_number))
    )


def _case_signals(session: Session, case: SelfSubmission) -> set[tuple[str, str]]:
    rows = session.execute(
        select(EntrySignal.signal, EntrySignal.key, EntrySignal.text_value)
        .join(SelfSubmissionEntry, SelfSubmissionEntry.entry_id == EntrySignal.entry_id)
        .join(Entry, Entry.id == EntrySignal.entry_id)
        .where(SelfSubmissionEntry.submission_id == case.id, Entry.deleted_at.is_(None))
    )
    return {(signal, stored_value(key, text)) for signal, key, text in rows}


def submit(
    session: Session,
    items: Sequence[Item],
    *,
    submitter: str,
    case_number: str | None = None,
    limits: Limits | None = None,
    allow_listed: Callable[[Item], bool] | None = None,
    now: dt.datetime | None = None,
) -> SubmissionResult:
    """Put the items' hashes on the self-submitted list under a case number.

    `submitter` is the pseudonym the per-submitter limits count (`pseudonym`);
    `allow_listed` is the allow-list check (`allow_list_check`). A case number the
    person brings is used as given (a new case, or more hashes for theirs); without
    one a new number is generated. Raises `SubmissionRefused`, `RateLimited` or
    `Conflict` (a withdrawn case) before anything is stored.
    """
    limits = limits or Limits()
    now = now or utcnow()
    if not items:
        raise SubmissionRefused("nothing to submit: choose at least one file")
    if len(items) > limits.max_items:
        raise SubmissionRefused(
            f"{len(items)} files in one submission; at most {limits.max_items} at a time"
        )
    number = normalize_case_number(case_number) if case_number else new_case_number()
    case = _case(session, number)
    if case is not None and case.status == "withdrawn":
        raise Conflict(
            "this case number was withdrawn; its hashes cannot come back. Submit without "
            "a case number to get a new one"
        )
    _check_window(session, submitter, len(items), limits, now)
    hash_list = self_submitted_list(session)
    new_case = case is None
    if case is None:
        case = SelfSubmission(case_key=case_key(number), status="active", list_id=hash_list.id)
        session.add(case)
        session.flush()
    have = _case_signals(session, case)
    results: list[ItemResult] = []
    for index, item in enumerate(items):
        pairs = set(item.signals().items())
        if pairs <= have:
            results.append(ItemResult(index, "already-submitted"))
            continue
        reason = None
        if item.pdq is not None and (item.pdq_quality or 0) < limits.min_pdq_quality:
            if item.md5 is None:
                results.append(ItemResult(index, "refused", "low-quality"))
                continue
            # too plain to match safely by PDQ: the exact MD5 alone is still useful
            item, reason = Item(md5=item.md5), "low-quality-pdq-dropped"
            pairs = set(item.signals().items())
            if pairs <= have:
                results.append(ItemResult(index, "already-submitted", reason))
                continue
        if allow_listed is not None and allow_listed(item):
            results.append(ItemResult(index, "refused", "allow-listed"))
            continue
        entry = add_entry(
            session,
            hash_list,
            item.signals(),
            status="confirmed",
            source=ACTOR,
            actor=ACTOR,
            qualities={"pdq": item.pdq_quality} if item.pdq_quality is not None else None,
        )
        session.add(SelfSubmissionEntry(submission_id=case.id, entry_id=entry.id))
        have |= pairs
        results.append(ItemResult(index, "added", reason))
    result = SubmissionResult(number, new_case, tuple(results))
    session.add(
        SelfSubmissionBatch(
            submission_id=case.id,
            submitter=submitter,
            at=now,
            items=len(items),
            accepted=result.added,
        )
    )
    session.flush()
    auditlog.append(
        session,
        ACTOR,
        "selfsubmit.submit",
        f"self-submission:{case.id}",
        {"items": len(items), "added": result.added, "new_case": new_case},
    )
    return result


def _require(session: Session, case_number: str) -> SelfSubmission:
    case = _case(session, case_number)
    if case is None:
        raise NotFound("no submission has this case number; check it and try again")
    return case


def _active_items(session: Session, case: SelfSubmission) -> int:
    return int(
        session.scalar(
            select(func.count(SelfSubmissionEntry.id))
            .join(Entry, Entry.id == SelfSubmissionEntry.entry_id)
            .where(SelfSubmissionEntry.submission_id == case.id, Entry.deleted_at.is_(None))
        )
        or 0
    )


def _status(case: SelfSubmission, active: int, withdrawn_now: int = 0) -> CaseStatus:
    withdrawn = as_utc(case.withdrawn_at) if case.withdrawn_at is not None else None
    return CaseStatus(case.status, active, as_utc(case.created_at), withdrawn, withdrawn_now)


def case_status(session: Session, case_number: str) -> CaseStatus:
    """The state of a case (`NotFound` for an unknown number)."""
    case = _require(session, case_number)
    return _status(case, _active_items(session, case))


def withdraw(session: Session, case_number: str, *, now: dt.datetime | None = None) -> CaseStatus:
    """Withdraw every hash of a case: each entry is tombstoned (`lists.delete_entry`),
    which the index, the change feed and exports carry like any deletion. The case
    stays, marked withdrawn, so the number cannot bring the hashes back. Withdrawing
    again is harmless."""
    case = _require(session, case_number)
    entries = session.scalars(
        select(Entry)
        .join(SelfSubmissionEntry, SelfSubmissionEntry.entry_id == Entry.id)
        .where(SelfSubmissionEntry.submission_id == case.id, Entry.deleted_at.is_(None))
        .order_by(Entry.id)
    ).all()
    for entry in entries:
        delete_entry(session, entry, actor=ACTOR, reason="withdrawn by the person who submitted it")
    mark_withdrawn(session, [e.id for e in entries])  # StopNCII exports say Withdrawn
    if case.status != "withdrawn":
        case.status = "withdrawn"
        case.withdrawn_at = now or utcnow()
    session.flush()
    auditlog.append(
        session,
        ACTOR,
        "selfsubmit.withdraw",
        f"self-submission:{case.id}",
        {"withdrawn": len(entries)},
    )
    return _status(case, 0, len(entries))
