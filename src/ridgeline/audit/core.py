"""List audits: draw a reproducible sample, collect blind independent verdicts, act.

An audit samples the listed entries of a list (those that can match now, by
`ridgeline.lists.matchable_clause`: nothing on a disabled list): all of them,
a simple random sample, or a stratified one (proportional allocation by source or by
classification), sized for a target margin at the chosen confidence. The sample is
drawn with a seeded generator over entries in id order, so the same list, parameters
and seed give the same sample.

Auditors must be independent: nobody who submitted, reviewed or changed an entry may
audit it. They work blind: `next_item` shows the hashes only, never the entry's
classification or another auditor's verdict.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ridgeline import auditlog
from ridgeline.audit.models import Audit, AuditItem, AuditVerdict
from ridgeline.audit.stats import sample_size, z_value
from ridgeline.errors import BadInput, Conflict, NotFound, PermissionDenied
from ridgeline.lists import matchable_clause, set_entry_enabled, set_entry_status
from ridgeline.lists.models import Entry, EntryEvent, HashList, ImportBatch
from ridgeline.timeutil import utcnow

MODES = ("full", "random", "stratified")
STRATA = ("source", "classification")
#: Exception reasons, after NCMEC's published audit of its hash list.
REASONS = ("not-legal-definition", "cartoon-anime", "damaged-file", "indeterminate-age", "other")


def _stratum(entry: Entry, strata: str) -> str:
    if strata == "source":
        return entry.source or "(none)"
    classes = entry.classifications or []
    if not classes:
        return "unclassified"
    first = sorted(f"{c['scheme']}:{c['label']}" for c in classes)[0]
    return first


def _allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Proportional allocation with largest remainders; every non-empty stratum gets one."""
    total = sum(sizes.values())
    if total == 0:
        return {k: 0 for k in sizes}
    exact = {k: n * v / total for k, v in sizes.items()}
    alloc = {k: int(x) for k, x in exact.items()}
    short = n - sum(alloc.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - alloc[k]), k))[:short]:
        alloc[k] += 1
    for k, v in sizes.items():
        alloc[k] = min(v, max(alloc[k], 1 if v else 0))
    return alloc


def create_audit(
    session: Session,
    hash_list: HashList,
    *,
    mode: str = "random",
    margin: float = 0.01,
    confidence: float = 0.95,
    expected_p: float = 0.5,
    seed: int | None = None,
    auditors_per_item: int = 2,
    strata: str = "source",
    actor: str | None = None,
) -> Audit:
    """Create an audit and draw its sample (see the module docstring)."""
    if mode not in MODES:
        raise BadInput(f"audit mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "stratified" and strata not in STRATA:
        raise BadInput(f"strata must be one of {', '.join(STRATA)}, not {strata!r}")
    if auditors_per_item < 1:
        raise BadInput("an audit needs at least one auditor per item")
    if seed is None:
        seed = secrets.randbelow(2**31)
    try:
        z_value(confidence)  # every report uses it, whatever the mode or the list's size
        now = utcnow()
        entries = list(
            session.scalars(
                select(Entry)
                .where(Entry.list_id == hash_list.id, matchable_clause(now))
                .order_by(Entry.id)
            )
        )
        population = len(entries)
        n = (
            population
            if mode == "full"
            else sample_size(population, margin, confidence, expected_p)
        )
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    rng = random.Random(seed)
    chosen: list[tuple[Entry, str]] = []
    if mode == "full":
        chosen = [(e, _stratum(e, strata) if strata else "") for e in entries]
    elif mode == "random":
        chosen = [(e, "") for e in rng.sample(entries, n)]
    else:
        groups: dict[str, list[Entry]] = {}
        for e in entries:
            groups.setdefault(_stratum(e, strata), []).append(e)
        alloc = _allocate({k: len(v) for k, v in groups.items()}, n)
        for key in sorted(groups):
            chosen += [(e, key) for e in rng.sample(groups[key], alloc[key])]
    audit = Audit(
        list_id=hash_list.id,
        mode=mode,
        strata=strata if mode == "stratified" else None,
        margin=margin,
        confidence=confidence,
        expected_p=expected_p,
        seed=seed,
        auditors_per_item=auditors_per_item,
        population=population,
        sample_size=len(chosen),
        created_by=actor,
        state="open",
        params={},
    )
    session.add(audit)
    session.flush()
    order = list(range(len(chosen)))
    rng.shuffle(order)  # serve items in a random order, not grouped by stratum
    session.add_all(
        AuditItem(audit_id=audit.id, entry_id=e.id, stratum=s, position=order[i])
        for i, (e, s) in enumerate(chosen)
    )
    session.flush()
    auditlog.append(
        session,
        actor,
        "audit.create",
        f"audit:{audit.id}",
        {
            "list": hash_list.name,
            "mode": mode,
            "seed": seed,
            "population": population,
            "sample_size": len(chosen),
            "margin": margin,
            "confidence": confidence,
        },
    )
    return audit


def audit_warnings(audit: Audit, list_name: str) -> list[str]:
    """What an operator should hear about a new audit (an empty sample audits nothing)."""
    if audit.population == 0:
        return [
            f"list {list_name!r} has no listed entries (confirmed, enabled, not deleted): "
            f"audit {audit.id} has nothing to sample"
        ]
    return []


def get_audit(session: Session, audit_id: int) -> Audit:
    """An audit by id, or `NotFound`."""
    audit = session.get(Audit, audit_id)
    if audit is None:
        raise NotFound(f"no audit {audit_id}")
    return audit


def sampled_entry_ids(session: Session, audit: Audit) -> list[int]:
    """The sample, in serving order (for reproducibility checks and reports)."""
    return list(
        session.scalars(
            select(AuditItem.entry_id)
            .where(AuditItem.audit_id == audit.id)
            .order_by(AuditItem.position)
        )
    )


def people_who_touched(session: Session, entry_ids: Sequence[int]) -> dict[int, set[str]]:
    """Per entry: who submitted, changed or reviewed it (not eligible to audit it)."""
    out: dict[int, set[str]] = {i: set() for i in entry_ids}
    ids = list(entry_ids)
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        for entry_id, who, importer in session.execute(
            select(Entry.id, Entry.submitted_by, ImportBatch.actor)
            .outerjoin(ImportBatch, ImportBatch.id == Entry.batch_id)
            .where(Entry.id.in_(chunk))
        ):
            for person in (who, importer):
                if person:
                    out[entry_id].add(person)
        for entry_id, who in session.execute(
            select(EntryEvent.entry_id, EntryEvent.actor).where(
                EntryEvent.entry_id.in_(chunk), EntryEvent.actor.is_not(None)
            )
        ):
            if who:
                out[entry_id].add(who)
        for entry_id, who in _reviewers(session, chunk):
            out[entry_id].add(who)
    return out


def _reviewers(session: Session, chunk: list[int]) -> list[tuple[int, str]]:
    try:
        from ridgeline.review.models import Verdict
    except ImportError:  # review area not installed
        return []
    return [
        (e, r)
        for e, r in session.execute(
            select(Verdict.entry_id, Verdict.reviewer).where(Verdict.entry_id.in_(chunk))
        )
    ]


def _check_open(audit: Audit) -> None:
    if audit.state != "open":
        raise Conflict(f"audit {audit.id} is {audit.state}")


def next_item(session: Session, audit: Audit, auditor: str) -> dict[str, Any] | None:
    """The next item this auditor may review, blind; None when nothing is left for them."""
    _check_open(audit)
    auditor = auditor.strip()
    if not auditor:
        raise BadInput("an auditor needs a name")
    counts = dict(
        session.execute(
            select(AuditVerdict.item_id, func.count())
            .where(AuditVerdict.audit_id == audit.id)
            .group_by(AuditVerdict.item_id)
        ).all()
    )
    mine = set(
        session.scalars(
            select(AuditVerdict.item_id).where(
                AuditVerdict.audit_id == audit.id, AuditVerdict.auditor == auditor
            )
        )
    )
    open_items = [
        item
        for item in session.scalars(
            select(AuditItem).where(AuditItem.audit_id == audit.id).order_by(AuditItem.position)
        )
        if item.id not in mine and counts.get(item.id, 0) < audit.auditors_per_item
    ]
    for start in range(0, len(open_items), 200):
        batch = open_items[start : start + 200]
        touched = people_who_touched(session, [i.entry_id for i in batch])
        for item in batch:
            if auditor in touched[item.entry_id]:
                continue
            entry = session.get(Entry, item.entry_id, options=[selectinload(Entry.signals)])
            if entry is None:
                continue
            # Blind: hashes only. No classification, status, source or other verdicts.
            return {
                "audit_id": audit.id,
                "item_id": item.id,
                "entry_id": entry.id,
                "signals": {s.signal: s.value for s in entry.signals},
            }
    return None


def submit_verdict(
    session: Session,
    audit: Audit,
    auditor: str,
    entry_id: int,
    *,
    verified: bool,
    reason: str | None = None,
    note: str | None = None,
) -> AuditVerdict:
    """Record an auditor's verdict: verified, or an exception with one of `REASONS`."""
    _check_open(audit)
    auditor = auditor.strip()
    if not auditor:
        raise BadInput("an auditor needs a name")
    item = session.scalar(
        select(AuditItem).where(AuditItem.audit_id == audit.id, AuditItem.entry_id == entry_id)
    )
    if item is None:
        raise NotFound(f"entry {entry_id} is not in audit {audit.id}")
    if verified and reason is not None:
        raise BadInput("a verified item takes no exception reason")
    if not verified and reason not in REASONS:
        raise BadInput(f"an exception needs a reason: one of {', '.join(REASONS)}")
    if auditor in people_who_touched(session, [entry_id])[entry_id]:
        raise PermissionDenied(
            f"{auditor} submitted, reviewed or changed entry {entry_id}: an audit must be "
            "independent"
        )
    verdicts = list(session.scalars(select(AuditVerdict).where(AuditVerdict.item_id == item.id)))
    if any(v.auditor == auditor for v in verdicts):
        raise Conflict(f"{auditor} already audited entry {entry_id}")
    if len(verdicts) >= audit.auditors_per_item:
        raise Conflict(f"entry {entry_id} already has {audit.auditors_per_item} audit verdicts")
    verdict = AuditVerdict(
        audit_id=audit.id,
        item_id=item.id,
        auditor=auditor,
        verified=verified,
        reason=reason,
        note=note,
    )
    session.add(verdict)
    session.flush()
    auditlog.append(
        session,
        auditor,
        "audit.verdict",
        f"audit:{audit.id}",
        {"entry_id": entry_id, "verified": verified, "reason": reason},
    )
    return verdict


def item_outcomes(session: Session, audit: Audit) -> list[dict[str, Any]]:
    """Per sampled item: its verdicts and outcome.

    `verified` when every auditor verified it, `exception` when every auditor found an
    exception (reason: the most common one), `disagreement` otherwise, and `incomplete`
    until it has `auditors_per_item` verdicts.
    """
    items = list(
        session.scalars(
            select(AuditItem).where(AuditItem.audit_id == audit.id).order_by(AuditItem.position)
        )
    )
    verdicts: dict[int, list[AuditVerdict]] = {}
    for v in session.scalars(
        select(AuditVerdict).where(AuditVerdict.audit_id == audit.id).order_by(AuditVerdict.id)
    ):
        verdicts.setdefault(v.item_id, []).append(v)
    out = []
    for item in items:
        vs = verdicts.get(item.id, [])
        if len(vs) < audit.auditors_per_item:
            outcome, reason = "incomplete", None
        elif all(v.verified for v in vs):
            outcome, reason = "verified", None
        elif not any(v.verified for v in vs):
            reasons = [str(v.reason) for v in vs]
            outcome = "exception"
            reason = max(sorted(set(reasons)), key=reasons.count)
        else:
            outcome = "disagreement"
            reason = next(str(v.reason) for v in vs if not v.verified)
        out.append(
            {
                "item_id": item.id,
                "entry_id": item.entry_id,
                "stratum": item.stratum,
                "outcome": outcome,
                "reason": reason,
                "verdicts": [
                    {"auditor": v.auditor, "verified": v.verified, "reason": v.reason} for v in vs
                ],
            }
        )
    return out


def apply_findings(
    session: Session,
    audit: Audit,
    *,
    action: str = "disable",
    dispute_disagreements: bool = False,
    actor: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Act on exceptions through the normal entry paths: disable or retire each one.

    With `dispute_disagreements`, items the auditors disagree on are marked `disputed`
    so that the review process (a senior reviewer) decides them. An audit with items
    still missing verdicts is a `Conflict` unless `force` (its findings are partial).
    """
    if action not in ("disable", "retire"):
        raise BadInput(f"action must be disable or retire, not {action!r}")
    outcomes = item_outcomes(session, audit)
    incomplete = sum(1 for row in outcomes if row["outcome"] == "incomplete")
    if incomplete and not force:
        raise Conflict(
            f"audit {audit.id} has {incomplete} of {len(outcomes)} item(s) without all "
            "their verdicts: finish them, or pass --force to act on the findings so far"
        )
    changed: list[int] = []
    disputed: list[int] = []
    for row in outcomes:
        entry = session.get(Entry, row["entry_id"])
        if entry is None or entry.deleted_at is not None:
            continue
        why = f"audit {audit.id}: {row['reason']}"
        if row["outcome"] == "exception":
            if action == "disable" and entry.enabled:
                set_entry_enabled(session, entry, False, actor=actor, reason=why)
                changed.append(entry.id)
            elif action == "retire" and entry.status != "retired":
                set_entry_status(session, entry, "retired", actor=actor, reason=why)
                changed.append(entry.id)
        elif (
            row["outcome"] == "disagreement"
            and dispute_disagreements
            and entry.status == "confirmed"
        ):
            set_entry_status(session, entry, "disputed", actor=actor, reason=why)
            disputed.append(entry.id)
    result = {
        "audit": audit.id,
        "action": action,
        "changed": changed,
        "disputed": disputed,
        "incomplete": incomplete,
    }
    auditlog.append(session, actor, "audit.apply", f"audit:{audit.id}", result)
    return result


def close_audit(session: Session, audit: Audit, *, actor: str | None = None) -> Audit:
    """Stop accepting verdicts."""
    audit.state = "closed"
    session.flush()
    auditlog.append(session, actor, "audit.close", f"audit:{audit.id}", {})
    return audit
