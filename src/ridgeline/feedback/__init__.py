"""Provider feedback on list entries: affirmative (it is what the list says) or negative.

A provider records feedback on entries it pulled (`record_feedback`), writes it to a
feedback file (`export_feedback`, JSON lines) and sends it to the list owner, who
imports it (`import_feedback`) and sees it per entry (`summary_for_entries`).
Entries are matched on the owner's side by the release uid (the owner's entry id)
when the provider's entry came from the owner's signed release, else by hash.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.errors import BadInput, RidgelineError
from ridgeline.feedback.models import Feedback
from ridgeline.lists.models import Entry, EntrySignal, HashList
from ridgeline.signals import get_signal
from ridgeline.timeutil import as_utc, isoformat, parse_iso, utcnow

KINDS = ("affirmative", "negative")
MAX_REASON = 500


def _check(kind: str, reason: str | None, provider: str) -> str | None:
    if kind not in KINDS:
        raise BadInput(f"feedback must be affirmative or negative, not {kind!r}")
    if not provider or not provider.strip():
        raise BadInput("feedback needs the provider's name")
    text = (reason or "").strip() or None
    if kind == "negative" and text is None:
        raise BadInput("negative feedback needs a reason (e.g. 'not-csam: cartoon')")
    if text is not None and len(text) > MAX_REASON:
        raise BadInput(f"reason is longer than {MAX_REASON} characters")
    return text


def record_feedback(
    session: Session,
    entry: Entry,
    *,
    provider: str,
    kind: str,
    reason: str | None = None,
    at: dt.datetime | None = None,
) -> Feedback:
    """Record this database's own feedback on an entry."""
    text = _check(kind, reason, provider)
    row = Feedback(
        entry_id=entry.id,
        provider=provider.strip(),
        kind=kind,
        reason=text,
        at=as_utc(at) if at else utcnow(),
        origin="local",
        uid=uuid.uuid4().hex,
    )
    session.add(row)
    session.flush()
    auditlog.append(session, provider, f"feedback.{kind}", f"entry:{entry.id}", {"reason": text})
    return row


def export_feedback(
    session: Session, *, hash_list: HashList | None = None, since: dt.datetime | None = None
) -> bytes:
    """This database's own feedback as JSON lines the list owner can import."""
    query = (
        select(Feedback, Entry)
        .join(Entry, Entry.id == Feedback.entry_id)
        .where(Feedback.origin == "local")
        .options(selectinload(Entry.signals))
        .order_by(Feedback.id)
    )
    if hash_list is not None:
        query = query.where(Entry.list_id == hash_list.id)
    if since is not None:
        query = query.where(Feedback.at >= since)
    lines = []
    for fb, entry in session.execute(query):
        lines.append(
            json.dumps(
                {
                    "uid": fb.uid,
                    "provider": fb.provider,
                    "kind": fb.kind,
                    "reason": fb.reason,
                    "at": isoformat(fb.at),
                    "entry": {
                        "origin_list": entry.origin_list,
                        "origin_entry_id": entry.origin_entry_id,
                        "signals": {s.signal: s.value for s in entry.signals},
                    },
                },
                sort_keys=True,
                ensure_ascii=False,
            )
        )
    return ("\n".join(lines) + "\n").encode() if lines else b""


@dataclass
class FeedbackImport:
    """What a feedback import did, with each rejected line and why."""

    read: int = 0
    added: int = 0
    duplicates: int = 0
    unmatched: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "added": self.added,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
            "errors": self.errors,
        }


def _match(session: Session, ref: dict[str, Any], only: HashList | None) -> list[int]:
    """Owner-side entries the provider's entry reference names."""
    origin_list, origin_id = ref.get("origin_list"), ref.get("origin_entry_id")
    if origin_list and origin_id and str(origin_id).isdigit():
        entry_id = session.scalar(
            select(Entry.id)
            .join(HashList, HashList.id == Entry.list_id)
            .where(HashList.name == origin_list, Entry.id == int(origin_id))
        )
        if entry_id is not None and (only is None or origin_list == only.name):
            return [entry_id]
    signals = ref.get("signals") or {}
    if not isinstance(signals, dict):
        raise BadInput("entry.signals must be an object")
    found: list[int] = []
    for name, value in signals.items():
        canonical = get_signal(name).normalize(value)
        query = (
            select(EntrySignal.entry_id)
            .join(Entry, Entry.id == EntrySignal.entry_id)
            .where(
                L.hash_is(get_signal(name).name, canonical),
                Entry.deleted_at.is_(None),
            )
        )
        if only is not None:
            query = query.where(Entry.list_id == only.id)
        for entry_id in session.scalars(query):
            if entry_id not in found:
                found.append(entry_id)
    return found


def import_feedback(
    session: Session, path: Path | str, *, hash_list: HashList | None = None
) -> FeedbackImport:
    """Import a provider's feedback file in the caller's transaction."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    report = FeedbackImport()
    known = set(session.scalars(select(Feedback.uid)))
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        report.read += 1
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("entry"), dict):
                raise BadInput("expected an object with an 'entry' reference")
            uid = str(obj.get("uid") or "")
            if not uid or len(uid) > 64:
                raise BadInput("missing or too long 'uid'")
            kind = str(obj.get("kind"))
            provider = str(obj.get("provider") or "")
            reason = _check(kind, obj.get("reason"), provider)
            at = parse_iso(str(obj["at"])) if obj.get("at") else utcnow()
            entry_ids = _match(session, obj["entry"], hash_list)
        except json.JSONDecodeError as exc:
            report.errors.append({"line": number, "error": f"malformed JSON: {exc.msg}"})
            continue
        except (RidgelineError, ValueError) as exc:
            report.errors.append({"line": number, "error": str(exc)})
            continue
        if not entry_ids:
            report.unmatched += 1
            continue
        for i, entry_id in enumerate(entry_ids):
            row_uid = uid if i == 0 else f"{uid[:48]}-{entry_id}"
            if row_uid in known:
                report.duplicates += 1
                continue
            known.add(row_uid)
            session.add(
                Feedback(
                    entry_id=entry_id,
                    provider=provider.strip(),
                    kind=kind,
                    reason=reason,
                    at=at,
                    origin=Path(path).name[:200],
                    uid=row_uid,
                )
            )
            report.added += 1
    session.flush()
    auditlog.append(
        session,
        None,
        "feedback.import",
        None,
        {k: v for k, v in report.to_json().items() if k != "errors"},
    )
    return report


def summary_for_entries(session: Session, entry_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Per entry: counts of affirmative and negative feedback, reasons and providers."""
    ids = list(entry_ids)
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 900):
        rows = session.scalars(
            select(Feedback).where(Feedback.entry_id.in_(ids[start : start + 900]))
        )
        for fb in rows:
            agg = out.setdefault(
                fb.entry_id,
                {
                    "entry_id": fb.entry_id,
                    "affirmative": 0,
                    "negative": 0,
                    "reasons": {},
                    "providers": [],
                },
            )
            agg[fb.kind] += 1
            if fb.reason:
                agg["reasons"][fb.reason] = agg["reasons"].get(fb.reason, 0) + 1
            if fb.provider not in agg["providers"]:
                agg["providers"].append(fb.provider)
    return out


def list_summary(session: Session, hash_list: HashList) -> list[dict[str, Any]]:
    """Feedback aggregates for every entry of a list that has any, most negative first."""
    ids = session.scalars(select(Entry.id).where(Entry.list_id == hash_list.id))
    rows = list(summary_for_entries(session, ids).values())
    rows.sort(key=lambda r: (-r["negative"], r["entry_id"]))
    return rows


__all__ = [
    "KINDS",
    "FeedbackImport",
    "export_feedback",
    "import_feedback",
    "list_summary",
    "record_feedback",
    "summary_for_entries",
]
