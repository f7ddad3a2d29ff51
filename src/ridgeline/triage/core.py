"""Assessing a received report: the facts a rule needs, and the pure rule evaluation.

`assess` is pure and fast (no I/O: the intake bench runs it on 100,000 reports); the
facts that need the database (list matches, unidentified series, linked reports) are
gathered for a whole batch by `gather_facts` in a few queries. Every rule that fires
leaves a `Reason`, so a priority is always explained by the rules behind it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ridgeline.lists.matchable import matchable_clause
from ridgeline.lists.models import KEY_PREFIX, Entry, EntrySignal, entry_key
from ridgeline.reports.model import FileDetails, Person, Report
from ridgeline.timeutil import as_utc, utcnow
from ridgeline.triage.rules import PRIORITIES, TriageRules

if TYPE_CHECKING:
    from ridgeline.store import Store

#: fileDetails originalFileHash hashType -> CONVENTIONS signal name.
HASH_TYPES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha256": "sha256",
    "sha-256": "sha256",
}
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class Item:
    """One received report as triage sees it."""

    report: Report
    files: Sequence[FileDetails] = ()
    received_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class TriageFacts:
    """What the database knows about a report (gathered in batches by `gather_facts`)."""

    #: files that carry at least one md5/sha1/sha256
    files_with_hashes: int = 0
    #: of those, files with a hash on a live (matchable) list entry
    files_on_lists: int = 0
    #: files with hashes on no list and not marked potential meme or viral by the ESP
    #: (None: count every file without a list match, as when facts are built by hand)
    new_files: int | None = None
    #: series (database:series) of the report's files whose victim is not identified
    unidentified_series: tuple[str, ...] = ()
    #: other reports linked to this one (case linking)
    linked_reports: int = 0
    received_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    """A rule that fired: its name, the priority it gives (None: no effect) and why."""

    rule: str
    priority: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "priority": self.priority, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Assessment:
    """The priority the rules give a report, and every reason behind it."""

    priority: int
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    rules: str = "defaults"

    @property
    def label(self) -> str:
        return PRIORITIES[self.priority]

    def to_json(self) -> dict[str, Any]:
        return {
            "priority": self.priority,
            "label": self.label,
            "reasons": [r.to_json() for r in self.reasons],
            "rules": self.rules,
        }


#: One file as the facts need it: its matchable (signal, value) hashes, and whether the
#: ESP marked it a potential meme or viral.
FileFacts = tuple[tuple[tuple[str, str], ...], bool]


@dataclass(frozen=True, slots=True)
class Pre:
    """What the rules take from a report itself, worked out without the database.

    `prepare` is pure, so intake computes it where it parses (a second process for a
    bulk run, `ridgeline.parseahead`) and sends it instead of the report; `finish` adds
    the facts only the database knows. `assess` is `finish(prepare(...))`, so the two
    ways give the same assessment.
    """

    #: escalation, incident type and annotation reasons (they come first)
    head: tuple[Reason, ...]
    #: victim age and access to children reasons (after the file rules)
    tail: tuple[Reason, ...]
    incident_at: dt.datetime | None
    #: one entry per file (`FileFacts`)
    files: tuple[FileFacts, ...]
    #: why the report would be informational if no other rule fired
    lower: tuple[str, ...]


# ---------------------------------------------------------------- facts


def file_hashes(details: FileDetails) -> list[tuple[str, str]]:
    """(signal, canonical value) of a file's originalFileHash elements we can match."""
    out = []
    for h in details.original_file_hashes:
        signal = HASH_TYPES.get((h.hash_type or "").strip().lower())
        value = (h.value or "").strip().lower()
        if signal and value:
            out.append((signal, value))
    return out


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _listed(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
    """(signal, value) -> live entry ids holding it, in a few IN queries per signal."""
    found: dict[tuple[str, str], list[int]] = {}
    if not keys:
        return found
    if session.scalar(select(EntrySignal.id).limit(1)) is None:
        return found  # no list holds anything: skip the lookups
    clause = matchable_clause(utcnow())
    by_signal: dict[str, list[str]] = {}
    for signal, value in keys:
        by_signal.setdefault(signal, []).append(value)
    for signal, values in by_signal.items():
        # the lookup index holds the stored key's first KEY_PREFIX bytes (lists.models)
        wanted = {entry_key(v): v for v in values}
        prefixes = sorted({k[:KEY_PREFIX] for k in wanted})
        for chunk in _chunks(prefixes):
            rows = session.execute(
                select(EntrySignal.key, EntrySignal.entry_id)
                .join(Entry, Entry.id == EntrySignal.entry_id)
                .where(
                    EntrySignal.signal == signal,
                    func.substr(EntrySignal.key, 1, KEY_PREFIX).in_(chunk),
                    clause,
                )
            )
            for key, entry_id in rows:
                hit = wanted.get(bytes(key))
                if hit is not None:
                    found.setdefault((signal, hit), []).append(int(entry_id))
    return found


def file_facts(files: Sequence[FileDetails]) -> tuple[FileFacts, ...]:
    """Each file's matchable hashes and meme flag (what `facts_of` looks up)."""
    return tuple((tuple(file_hashes(f)), _meme(f)) for f in files)


def gather_facts(
    session: Session,
    items: Sequence[Item],
    *,
    linked_reports: Sequence[int] | None = None,
    store: Store | None = None,
) -> list[TriageFacts]:
    """The facts of each item, in order: list matches in batched queries, and (with a
    `store`) the victims registry's series status of matched entries and file sha256s.

    `linked_reports[i]` is the number of other reports linked to item i (from case
    linking); omitted means none known yet.
    """
    return facts_of(
        session,
        [file_facts(item.files) for item in items],
        [item.received_at for item in items],
        linked_reports=linked_reports,
        store=store,
    )


def facts_of(
    session: Session,
    files: Sequence[Sequence[FileFacts]],
    received_at: Sequence[dt.datetime | None],
    *,
    linked_reports: Sequence[int] | None = None,
    store: Store | None = None,
) -> list[TriageFacts]:
    """`gather_facts` for reports given by their files' facts (`Pre.files`)."""
    if linked_reports is not None and len(linked_reports) != len(files):
        raise ValueError("linked_reports must have one count per item")
    keys = {h for per_report in files for hashes, _ in per_report for h in hashes}
    listed = _listed(session, keys)
    status: Mapping[int | str, list[Any]] = {}
    if store is not None:
        from ridgeline.victims.registry import series_status

        entry_ids = {e for ids in listed.values() for e in ids}
        shas = {v for s, v in keys if s == "sha256"}
        if entry_ids or shas:
            status = series_status(store, entry_ids=entry_ids, sha256s=shas)
    out = []
    for i, per_report in enumerate(files):
        with_hashes = on_lists = new = 0
        unidentified: set[str] = set()
        for hashes, meme in per_report:
            if not hashes:
                continue
            with_hashes += 1
            entries = [e for h in hashes for e in listed.get(h, ())] if listed else []
            if entries:
                on_lists += 1
            elif not meme:
                new += 1
            if status:
                owners: list[int | str] = [*entries, *(v for s, v in hashes if s == "sha256")]
                for owner in owners:
                    for st in status.get(owner, ()):
                        if not st.identified:
                            unidentified.add(f"{st.database}:{st.series}")
        out.append(
            TriageFacts(
                files_with_hashes=with_hashes,
                files_on_lists=on_lists,
                new_files=new,
                unidentified_series=tuple(sorted(unidentified)),
                linked_reports=int(linked_reports[i]) if linked_reports is not None else 0,
                received_at=received_at[i],
            )
        )
    return out


# ---------------------------------------------------------------- the rules

_KEYWORD_RE: dict[tuple[str, ...], re.Pattern[str] | None] = {}


def _keyword_re(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    if keywords not in _KEYWORD_RE:
        _KEYWORD_RE[keywords] = (
            re.compile(r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")\b")
            if keywords
            else None
        )
    return _KEYWORD_RE[keywords]


def _age(person: Person | None, on: dt.datetime | None) -> int | None:
    if person is None:
        return None
    if person.age is not None:
        return person.age
    if person.date_of_birth is not None and on is not None:
        day = as_utc(on).date()
        dob = person.date_of_birth
        return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))
    return None


def _free_text(report: Report) -> Iterable[str]:
    summary = report.incident_summary
    if summary is not None:
        yield summary.escalate_to_high_priority or ""
        yield summary.incident_date_time_description or ""
    yield report.additional_info or ""
    for p in report.persons_reported:
        yield p.additional_info or ""
        yield p.profile_bio or ""
    for r in report.intended_recipients:
        yield from r.additional_info
    for v in report.victims:
        yield v.additional_info or ""
    for d in report.internet_details:
        for part in (d.email, d.newsgroup, d.chat_im, d.online_gaming):
            if part is not None:
                yield part.content or ""
                yield part.additional_info or ""


def _meme(f: FileDetails) -> bool:
    notes = f.file_annotations
    return bool(f.potential_meme or (notes is not None and (notes.potential_meme or notes.viral)))


def _excerpt(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def assess(
    report: Report, files: Sequence[FileDetails], facts: TriageFacts, rules: TriageRules
) -> Assessment:
    """The priority of one report under `rules`, with the reason for every rule that fired.

    The most urgent priority among the rules that fired wins (or `default_priority`
    when none did); a combination of rules may give a more urgent one; a recent
    incident raises an already raised priority; `informational` lowers a report to 4
    only when no other rule fired.
    """
    return finish(prepare(report, files, rules), facts, rules)


def prepare(report: Report, files: Sequence[FileDetails], rules: TriageRules) -> Pre:
    """The rules' findings on the report itself (`Pre`): everything but its facts."""
    head: list[Reason] = []
    tail: list[Reason] = []
    summary = report.incident_summary
    incident_at = summary.incident_date_time if summary is not None else None
    if summary is not None:
        if (
            rules.escalation is not None
            and summary.escalate_to_high_priority
            and summary.escalate_to_high_priority.strip()
        ):
            head.append(
                Reason(
                    "escalation",
                    rules.escalation,
                    "escalated by the reporter: " + _excerpt(summary.escalate_to_high_priority),
                )
            )
        kind = summary.incident_type
        prio = rules.incident_types.get(kind) if kind is not None else None
        if prio is not None:
            head.append(Reason("incident_type", prio, f"incident type: {kind}"))
        notes = summary.report_annotations
        if notes is not None:
            for name, prio in rules.annotations.items():
                if prio is not None and getattr(notes, name, False):
                    head.append(Reason(name, prio, f"report annotation: {name.replace('_', ' ')}"))

    young = []
    for v in report.victims:
        age = _age(v.person, incident_at)
        if age is not None and age < rules.victim_age_under:
            young.append(f"victim aged {age}")
    minors = []
    for r in report.intended_recipients:
        age = _age(r.person, incident_at)
        if age is not None and age < 18:
            minors.append(age)
            if age < rules.victim_age_under:
                young.append(f"intended recipient aged {age}")
    if young and rules.victim_age is not None:
        tail.append(
            Reason(
                "victim_age",
                rules.victim_age,
                f"{', '.join(young)} (under {rules.victim_age_under})",
            )
        )

    access = []
    pattern = _keyword_re(rules.access_keywords)
    if pattern is not None:
        for text in _free_text(report):
            if text:
                hit = pattern.search(text.lower())
                if hit:
                    access.append(f"the report mentions {hit.group(0)!r}")
                    break
    if minors:
        access.append(f"the reported user was in contact with a minor (aged {min(minors)})")
    if access and rules.access_to_children is not None:
        tail.append(
            Reason(
                "access_to_children",
                rules.access_to_children,
                "access to children: " + "; ".join(access),
            )
        )

    lower = []
    if rules.informational_batched and report.batched_report is not None:
        lower.append(f"batched report ({report.batched_report.reason or 'no reason'})")
    if (
        rules.informational_all_meme
        and files
        and all(
            f.potential_meme
            or (
                f.file_annotations is not None
                and (f.file_annotations.potential_meme or f.file_annotations.viral)
            )
            for f in files
        )
    ):
        lower.append("every file is marked as a potential meme or viral")
    if rules.informational_empty and not files and not report.persons_reported:
        lower.append("no files and no reported person")
    return Pre(tuple(head), tuple(tail), incident_at, file_facts(files), tuple(lower))


def finish(pre: Pre, facts: TriageFacts, rules: TriageRules) -> Assessment:
    """The assessment from a report's own findings (`prepare`) and its facts."""
    reasons: list[Reason] = list(pre.head)

    new_files = (
        facts.files_with_hashes - facts.files_on_lists
        if facts.new_files is None
        else facts.new_files
    )
    if new_files > 0 and not facts.files_on_lists and rules.new_material is not None:
        reasons.append(
            Reason(
                "new_material",
                rules.new_material,
                f"apparently new material: none of {facts.files_with_hashes} file(s) "
                "matched a hash list (a child who may still be abused)"
                + (
                    f"; {facts.files_with_hashes - new_files} marked meme or viral"
                    if facts.files_with_hashes > new_files
                    else ""
                ),
            )
        )
    if facts.unidentified_series and rules.unidentified_series is not None:
        reasons.append(
            Reason(
                "unidentified_series",
                rules.unidentified_series,
                "file(s) of a series whose victim is not identified: "
                + ", ".join(facts.unidentified_series[:5]),
            )
        )
    reasons += pre.tail
    if facts.linked_reports >= rules.linked_at_least and rules.linked_reports is not None:
        reasons.append(
            Reason(
                "linked_reports",
                rules.linked_reports,
                f"linked to {facts.linked_reports} other report(s) "
                f"(at least {rules.linked_at_least})",
            )
        )

    if rules.combinations:
        fired = {r.rule for r in reasons}
        for combo in rules.combinations:
            if all(name in fired for name in combo.when):
                reasons.append(
                    Reason("combination", combo.priority, " and ".join(combo.when) + " together")
                )
    raised = [r.priority for r in reasons if r.priority is not None]
    priority = min(raised) if raised else rules.default_priority
    incident_at = pre.incident_at
    if raised and priority > 1 and rules.recency_raise and incident_at is not None:
        received = facts.received_at
        if received is not None:
            age_days = (as_utc(received) - as_utc(incident_at)).total_seconds() / 86400
            if 0 <= age_days <= rules.recency_days:
                new = max(1, priority - rules.recency_raise)
                reasons.append(
                    Reason(
                        "recency",
                        new,
                        f"incident {age_days:.1f} day(s) before intake "
                        f"(within {rules.recency_days}): raised from {priority} to {new}",
                    )
                )
                priority = new
    if not raised and pre.lower:
        priority = 4
        reasons.append(Reason("informational", 4, "; ".join(pre.lower)))
    if not reasons:
        reasons.append(Reason("default", priority, f"no rule fired: default priority {priority}"))
    return Assessment(priority, tuple(reasons), rules.source)
