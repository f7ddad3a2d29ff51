"""Reading cases, and the analyst's two decisions on them: split and merge.

Both decisions need a reason and are written to `case_events` and to the tamper-evident
log (`ridgeline.auditlog`) in the caller's transaction. A split cuts the links that
crossed between the two sides (kept, marked `cut`, so the record shows what was undone)
and is remembered: automatic linking never joins the two sides again (see `linking`).
A merge adds an `analyst` link carrying the reason.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.cases.linking import LinkConfig
from ridgeline.cases.models import (
    Case,
    CaseEvent,
    CaseLink,
    CaseReport,
    FileBundle,
    FileBundleReport,
)
from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.reports.identifiers import FILE_KINDS, Identifier
from ridgeline.reports.models import ReceivedReport, ReportIdentifier
from ridgeline.reports.received import identifiers_of
from ridgeline.store.bulk import select_in
from ridgeline.timeutil import as_utc, isoformat, utcnow

CHUNK = 500
#: Each report's case size (`linked_counts`).
_LINKED_SQL = (
    "SELECT case_reports.report_id, cases.report_count FROM case_reports "
    "JOIN cases ON cases.id = case_reports.case_id WHERE case_reports.report_id IN ({in})"
)


@dataclass(frozen=True, slots=True)
class LinkView:
    report_a: int
    report_b: int
    identifier: str
    value: str
    cut: bool = False
    created_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "report_a": self.report_a,
            "report_b": self.report_b,
            "identifier": self.identifier,
            "value": self.value,
        }
        if self.cut:
            out["cut"] = True
        return out


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """A case as `cases ls` lists it."""

    case_id: int
    reports: tuple[int, ...]
    links: tuple[LinkView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "reports": list(self.reports),
            "links": [lk.to_json() for lk in self.links],
        }


@dataclass(frozen=True, slots=True)
class CaseDetail:
    """A case as `cases show` gives it: reports, people, accounts, files, timeline."""

    case_id: int
    state: str
    created_at: dt.datetime
    reports: tuple[dict[str, Any], ...]
    people: tuple[dict[str, Any], ...]
    accounts: tuple[dict[str, Any], ...]
    files: tuple[dict[str, Any], ...]
    timeline: tuple[dict[str, Any], ...]
    links: tuple[LinkView, ...]
    bundles: tuple[dict[str, Any], ...] = ()
    decisions: tuple[dict[str, Any], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "state": self.state,
            "created_at": isoformat(self.created_at),
            "reports": list(self.reports),
            "people": list(self.people),
            "accounts": list(self.accounts),
            "files": list(self.files),
            "timeline": list(self.timeline),
            "links": [lk.to_json() for lk in self.links],
            "bundles": list(self.bundles),
            "decisions": list(self.decisions),
        }


# ---------------------------------------------------------------- reading


def get_case(session: Session, case_id: int) -> Case:
    row = session.get(Case, case_id)
    if row is None:
        raise NotFound(f"no case {case_id}")
    return row


def current_case(session: Session, case_id: int) -> Case:
    """The case, or the one it was merged into."""
    row = get_case(session, case_id)
    hops = 0
    while row.merged_into is not None and hops < 10000:
        row = get_case(session, row.merged_into)
        hops += 1
    return row


def case_of(session: Session, report_id: int) -> int:
    """The case a received report is in."""
    cid = session.execute(
        select(CaseReport.case_id).where(CaseReport.report_id == report_id)
    ).scalar_one_or_none()
    if cid is None:
        raise NotFound(f"received report {report_id} is in no case (no such report?)")
    return int(cid)


def linked_counts(session: Session, report_ids: Sequence[int]) -> dict[int, int]:
    """For each report, how many other reports are in its case."""
    out: dict[int, int] = {}
    ids = list(report_ids)
    for start in range(0, len(ids), CHUNK):
        # driver SQL (`select_in`): intake asks this for every batch, twice
        for rid, n in select_in(session, _LINKED_SQL, ids[start : start + CHUNK]):
            out[int(rid)] = max(int(n) - 1, 0)
    return out


def cases_with(session: Session, kind: str, value: str) -> list[int]:
    """Cases holding a report with this normalised identifier (any role but reporter)."""
    q = (
        select(CaseReport.case_id)
        .join(ReportIdentifier, ReportIdentifier.report_id == CaseReport.report_id)
        .where(
            ReportIdentifier.kind == kind,
            ReportIdentifier.value == value,
            ReportIdentifier.role != "reporter",
        )
        .distinct()
        .order_by(CaseReport.case_id)
    )
    return [int(c) for c in session.execute(q).scalars()]


def _members(session: Session, case_ids: Sequence[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {c: [] for c in case_ids}
    for start in range(0, len(case_ids), CHUNK):
        for rid, cid in session.execute(
            select(CaseReport.report_id, CaseReport.case_id)
            .where(CaseReport.case_id.in_(list(case_ids[start : start + CHUNK])))
            .order_by(CaseReport.report_id)
        ):
            out[int(cid)].append(int(rid))
    return out


def _links(session: Session, reports: Sequence[int]) -> list[CaseLink]:
    out: dict[int, CaseLink] = {}
    for start in range(0, len(reports), CHUNK):
        chunk = list(reports[start : start + CHUNK])
        for lk in session.execute(
            select(CaseLink).where(or_(CaseLink.report_a.in_(chunk), CaseLink.report_b.in_(chunk)))
        ).scalars():
            out[lk.id] = lk
    return [out[k] for k in sorted(out)]


def _link_view(lk: CaseLink) -> LinkView:
    return LinkView(lk.report_a, lk.report_b, lk.kind, lk.value, lk.cut, lk.created_at)


def list_cases(
    session: Session,
    *,
    limit: int = 100,
    after: int | None = None,
    min_reports: int = 1,
) -> list[CaseSummary]:
    """Open cases in id order (after `after`), with their reports and links."""
    q = (
        select(Case.id)
        .where(Case.state == "open", Case.report_count >= min_reports)
        .order_by(Case.id)
        .limit(limit)
    )
    if after is not None:
        q = q.where(Case.id > after)
    ids = [int(c) for c in session.execute(q).scalars()]
    members = _members(session, ids)
    everyone = sorted({r for rs in members.values() for r in rs})
    by_report: dict[int, int] = {r: c for c, rs in members.items() for r in rs}
    per_case: dict[int, list[LinkView]] = defaultdict(list)
    for lk in _links(session, everyone):
        c = by_report.get(lk.report_b)
        if c is not None and by_report.get(lk.report_a) == c:
            per_case[c].append(_link_view(lk))
    return [CaseSummary(c, tuple(members[c]), tuple(per_case[c])) for c in ids]


def summary(session: Session, case_id: int) -> CaseSummary:
    """One case's reports and links (a merged case answers with the case it went into)."""
    row = current_case(session, case_id)
    reports = _members(session, [row.id])[row.id]
    rset = set(reports)
    links = tuple(
        _link_view(lk)
        for lk in _links(session, reports)
        if lk.report_a in rset and lk.report_b in rset
    )
    return CaseSummary(row.id, tuple(reports), links)


def _people(docs: dict[int, dict[str, Any]], idents: dict[int, list[Identifier]]) -> list[Any]:
    people: list[dict[str, Any]] = []
    for rid, doc in docs.items():
        report = doc.get("report", {})
        for role, key, inner in (
            ("reported", "personOrUserReported", "personOrUserReportedPerson"),
            ("recipient", "intendedRecipient", "intendedRecipientPerson"),
            ("victim", "victim", "victimPerson"),
        ):
            for party in report.get(key, []) or []:
                person = party.get(inner) or {}
                entry: dict[str, Any] = {"report_id": rid, "role": role}
                for f in ("firstName", "lastName", "age", "dateOfBirth"):
                    if person.get(f) is not None:
                        entry[f] = person[f]
                for a in person.get("address", []) or []:
                    entry.setdefault("places", []).append(
                        {k: a[k] for k in ("city", "state", "nonUsaState", "country") if a.get(k)}
                    )
                loc = party.get("estimatedLocation")
                if loc:
                    entry["estimatedLocation"] = {
                        k: loc[k] for k in ("city", "region", "countryCode") if loc.get(k)
                    }
                entry["emails"] = sorted(
                    {i.value for i in idents.get(rid, []) if i.role == role and i.kind == "email"}
                )
                entry["phones"] = sorted(
                    {i.value for i in idents.get(rid, []) if i.role == role and i.kind == "phone"}
                )
                people.append(entry)
    return people


def show(session: Session, case_id: int) -> CaseDetail:
    """Everything about a case: reports, people, accounts, files and a timeline."""
    row = current_case(session, case_id)
    reports = _members(session, [row.id])[row.id]
    rset = set(reports)
    rows: dict[int, ReceivedReport] = {}
    for start in range(0, len(reports), CHUNK):
        for r in session.execute(
            select(ReceivedReport).where(ReceivedReport.id.in_(reports[start : start + CHUNK]))
        ).scalars():
            rows[r.id] = r
    idents = identifiers_of(session, reports)
    links = [
        _link_view(lk)
        for lk in _links(session, reports)
        if lk.report_a in rset and lk.report_b in rset
    ]
    report_views = []
    timeline: list[dict[str, Any]] = []
    for rid in reports:
        r = rows[rid]
        report_views.append(
            {
                "report_id": rid,
                "source": r.source,
                "received_at": isoformat(r.received_at),
                "incident_type": r.incident_type,
                "incident_at": isoformat(r.incident_at),
                "reporter": r.reporter,
                "files": r.file_count,
            }
        )
        if r.incident_at is not None:
            timeline.append(
                {
                    "at": isoformat(r.incident_at),
                    "event": "incident",
                    "report_id": rid,
                    "detail": r.incident_type,
                }
            )
        timeline.append({"at": isoformat(r.received_at), "event": "received", "report_id": rid})
    accounts: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    files: dict[tuple[str, str], dict[str, Any]] = {}
    for rid in reports:
        for i in idents.get(rid, []):
            if i.kind in ("screen_name", "esp_id", "profile_url") and i.role != "reporter":
                a = accounts.setdefault(
                    (i.kind, i.service, i.value),
                    {
                        "kind": i.kind,
                        "service": i.service,
                        "value": i.value,
                        "roles": set(),
                        "reports": set(),
                    },
                )
                a["roles"].add(i.role)
                a["reports"].add(rid)
            elif i.kind in FILE_KINDS:
                f = files.setdefault(
                    (i.kind, i.value), {"kind": i.kind, "value": i.value, "reports": set()}
                )
                f["reports"].add(rid)
            elif i.kind in ("ip", "device") and i.event_at is not None and i.role != "reporter":
                timeline.append(
                    {
                        "at": isoformat(i.event_at),
                        "event": f"{i.kind} seen",
                        "report_id": rid,
                        "detail": i.label,
                    }
                )
    for lk in links:
        if lk.created_at is not None:
            timeline.append(
                {
                    "at": isoformat(lk.created_at),
                    "event": "linked",
                    "report_id": lk.report_b,
                    "detail": f"{lk.identifier}:{lk.value} with report {lk.report_a}",
                }
            )
    bundles = []
    for start in range(0, len(reports), CHUNK):
        for b in session.execute(
            select(FileBundle)
            .join(FileBundleReport, FileBundleReport.bundle_id == FileBundle.id)
            .where(FileBundleReport.report_id.in_(reports[start : start + CHUNK]))
            .distinct()
        ).scalars():
            bundles.append(
                {"bundle_id": b.id, "kind": b.kind, "value": b.value, "reports": b.report_count}
            )
    decisions = [
        {
            "at": isoformat(e.at),
            "actor": e.actor,
            "action": e.action,
            "reason": e.reason,
            **e.details,
        }
        for e in session.execute(
            select(CaseEvent).where(CaseEvent.case_id == row.id).order_by(CaseEvent.id)
        ).scalars()
    ]
    for d in decisions:
        timeline.append({"at": d["at"], "event": d["action"], "detail": d["reason"]})
    timeline.sort(key=lambda t: (t["at"] or "", t["event"]))
    docs = {rid: rows[rid].document for rid in reports}
    return CaseDetail(
        case_id=row.id,
        state=row.state,
        created_at=row.created_at,
        reports=tuple(report_views),
        people=tuple(_people(docs, idents)),
        accounts=tuple(
            {**a, "roles": sorted(a["roles"]), "reports": sorted(a["reports"])}
            for a in accounts.values()
        ),
        files=tuple(
            {
                **f,
                "reports": sorted(f["reports"]),
                "bundled": any(_bundles_file(b, f) for b in bundles),
            }
            for f in files.values()
        ),
        timeline=tuple(timeline),
        links=tuple(links),
        bundles=tuple(
            {k: v for k, v in b.items()} for b in {b["bundle_id"]: b for b in bundles}.values()
        ),
        decisions=tuple(decisions),
    )


def _bundles_file(bundle: dict[str, Any], file: dict[str, Any]) -> bool:
    """A bundle holds the file: the same hash, or for PDQ a near copy (a near-viral
    picture's bundle is keyed by one of its copies)."""
    if bundle["kind"] != file["kind"]:
        return False
    if bundle["value"] == file["value"]:
        return True
    if file["kind"] != "pdq":
        return False
    try:
        apart = (int(bundle["value"], 16) ^ int(file["value"], 16)).bit_count()
    except ValueError:
        return False
    return apart <= LinkConfig().pdq_threshold


# ---------------------------------------------------------------- decisions


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise BadInput("a split or merge needs a reason (it is logged)")
    if len(text) > 2000:
        raise BadInput("the reason is longer than 2000 characters")
    return text


def _open(session: Session, case_id: int) -> Case:
    row = get_case(session, case_id)
    if row.state != "open":
        where = f" into case {row.merged_into}" if row.merged_into else ""
        raise Conflict(f"case {case_id} is {row.state}{where}; act on an open case")
    return row


def split(
    session: Session,
    case_id: int,
    report_ids: Sequence[int],
    reason: str,
    *,
    actor: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Move `report_ids` out of the case into a new one; returns the new case's id."""
    why = _reason(reason)
    at = as_utc(now or utcnow())
    row = _open(session, case_id)
    members = set(_members(session, [case_id])[case_id])
    moving = sorted(set(report_ids))
    if not moving:
        raise BadInput("name the reports to split off")
    stray = [r for r in moving if r not in members]
    if stray:
        raise BadInput(f"reports {stray} are not in case {case_id}")
    if len(moving) == len(members):
        raise BadInput("a split must leave at least one report in the case")
    mset = set(moving)
    new_id = session.execute(
        insert(Case)
        .values(created_at=at, updated_at=at, state="open", report_count=len(moving))
        .returning(Case.id)
    ).scalar_one()
    for start in range(0, len(moving), CHUNK):
        session.execute(
            update(CaseReport)
            .where(CaseReport.report_id.in_(moving[start : start + CHUNK]))
            .values(case_id=new_id)
        )
    cut = [
        lk.id
        for lk in _links(session, moving)
        if (lk.report_a in mset) != (lk.report_b in mset)
        and lk.report_a in members
        and lk.report_b in members
    ]
    if cut:
        session.execute(update(CaseLink).where(CaseLink.id.in_(cut)).values(cut=True))
    row.report_count = len(members) - len(moving)
    row.updated_at = at
    details = {"case_id": case_id, "new_case_id": new_id, "reports": moving, "cut_links": cut}
    session.add(CaseEvent(case_id=case_id, at=at, actor=actor, action="split", reason=why,
                          details=details))  # fmt: skip
    session.add(CaseEvent(case_id=new_id, at=at, actor=actor, action="split", reason=why,
                          details=details))  # fmt: skip
    auditlog.append(session, actor, "case.split", f"case:{case_id}", {**details, "reason": why})
    session.flush()
    return int(new_id)


def merge(
    session: Session,
    case_id: int,
    other_id: int,
    reason: str,
    *,
    actor: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Fold `other_id` into `case_id` (an `analyst` link records the reason)."""
    why = _reason(reason)
    at = as_utc(now or utcnow())
    if case_id == other_id:
        raise BadInput("a case cannot be merged with itself")
    keep, gone = _open(session, case_id), _open(session, other_id)
    members = _members(session, [case_id, other_id])
    if not members[other_id] or not members[case_id]:
        raise Conflict("both cases need at least one report to merge")
    session.execute(
        update(CaseReport).where(CaseReport.case_id == other_id).values(case_id=case_id)
    )
    session.add(
        CaseLink(
            report_a=members[case_id][0], report_b=members[other_id][0], kind="analyst",
            value=why[:400], created_at=at,
        )
    )  # fmt: skip
    keep.report_count = len(members[case_id]) + len(members[other_id])
    keep.updated_at = at
    gone.state, gone.merged_into, gone.report_count, gone.updated_at = "merged", case_id, 0, at
    details = {"case_id": case_id, "merged_case_id": other_id, "reports": members[other_id]}
    session.add(CaseEvent(case_id=case_id, at=at, actor=actor, action="merge", reason=why,
                          details=details))  # fmt: skip
    # An earlier split between the two is overridden: both now resolve to one case.
    auditlog.append(session, actor, "case.merge", f"case:{case_id}", {**details, "reason": why})
    session.flush()
    return case_id


def counts(session: Session) -> dict[str, int]:
    """Open cases, reports in cases, links, bundles (for statistics and the bench)."""
    return {
        "cases": int(
            session.execute(select(func.count()).where(Case.state == "open")).scalar_one()
        ),
        "reports": int(session.execute(select(func.count()).select_from(CaseReport)).scalar_one()),
        "links": int(session.execute(select(func.count()).select_from(CaseLink)).scalar_one()),
        "bundles": int(session.execute(select(func.count()).select_from(FileBundle)).scalar_one()),
    }
