"""The intake step after linking: triage each new report and route it to its agencies.

Intake (`ridgeline.intake.Pipeline`) runs its steps on every batch of newly stored
reports inside the batch's transaction; `Referral` is that step for triage and
routing, so a report is acknowledged with its priority, reasons and availability
already stored. It reads the rules, the routing table and the city database once, and
works a batch in a few queries (list matches, victims series, linked-report counts)
and two bulk inserts. `extras` is what a received report's `show` adds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import routing, triage
from ridgeline.cases.core import linked_counts
from ridgeline.cases.models import Case, CaseReport
from ridgeline.reports import received
from ridgeline.reports.model import FileDetails, Report
from ridgeline.reports.models import ReceivedReport
from ridgeline.routing.access import preservation_until
from ridgeline.timeutil import as_utc, isoformat
from ridgeline.triage.models import TriagePriority

if TYPE_CHECKING:
    from ridgeline.store import Store


@dataclass(frozen=True, slots=True)
class Inputs:
    """What this step takes from a report itself, worked out where it is parsed (a
    second process for a bulk intake): the triage rules' findings and the located
    subjects. Only the facts, the routing table and the inserts are left per batch."""

    triage: triage.Pre
    places: tuple[tuple[routing.Place, str], ...]


class AcceptedLike(Protocol):
    """What intake hands its steps for each new report (`intake.Accepted`)."""

    @property
    def report_id(self) -> int: ...
    @property
    def received_at(self) -> dt.datetime: ...
    @property
    def case_id(self) -> int: ...
    @property
    def referral(self) -> Inputs | None: ...


class Referral:
    """Triage and routing of each batch of newly received reports (an intake step).

    `store` enables the victims-registry check (an unidentified victim's series);
    `rules` is a triage rules file (None: the documented defaults); `city_db` a
    MaxMind-format city database (None: RIDGELINE_GEOIP_CITY_DB, else iptocc only).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        rules: str | Path | triage.TriageRules | None = None,
        city_db: str | Path | None = None,
    ) -> None:
        self.store = store
        self.rules = rules if isinstance(rules, triage.TriageRules) else triage.load_rules(rules)
        self.geo = routing.Geolocator(city_db)
        self.table: routing.RoutingTable | None = None

    def inputs(self, report: Report, files: Sequence[FileDetails]) -> Inputs:
        """The report's `Inputs` under this step's rules and geolocator (pure)."""
        return Inputs(
            triage.prepare(report, files, self.rules),
            tuple(routing.places(report, files, self.geo)),
        )

    def __call__(self, session: Session, accepted: Sequence[AcceptedLike]) -> None:
        if not accepted:
            return
        # The routing table is read per batch: an import takes effect on the next batch.
        table = routing.load_table(session)
        ids = [a.report_id for a in accepted]
        counts = linked_counts(session, ids)
        inputs = []
        for a in accepted:
            if a.referral is None:
                raise ValueError("intake hands the referral step each report's Inputs")
            inputs.append(a.referral)
        facts = triage.facts_of(
            session,
            [i.triage.files for i in inputs],
            [a.received_at for a in accepted],
            linked_reports=[counts.get(i, 0) for i in ids],
            store=self.store,
        )
        rules = self.rules
        triage.record_many(
            session,
            [
                (a.report_id, a.received_at, triage.finish(i.triage, f, rules))
                for a, i, f in zip(accepted, inputs, facts, strict=True)
            ],
        )
        routing.record_many(
            session,
            [
                (a.report_id, routing.route_places(i.places, table))
                for a, i in zip(accepted, inputs, strict=True)
            ],
        )
        self.reassess_linked(session, {a.case_id for a in accepted}, set(ids))

    def reassess_linked(
        self,
        session: Session,
        case_ids: Collection[int],
        skip: Collection[int] = (),
    ) -> list[int]:
        """Re-assess earlier reports of these cases that now have enough linked reports
        for the `linked_reports` rule but were triaged before (their override, if any,
        stays in force). Returns the re-assessed report ids."""
        if self.rules.linked_reports is None or not case_ids:
            return []
        big = list(
            session.scalars(
                select(Case.id).where(
                    Case.id.in_(sorted(case_ids)), Case.report_count > self.rules.linked_at_least
                )
            )
        )
        if not big:
            return []
        stale = [
            int(rid)
            for rid, reasons in session.execute(
                select(TriagePriority.report_id, TriagePriority.reasons)
                .join(CaseReport, CaseReport.report_id == TriagePriority.report_id)
                .where(CaseReport.case_id.in_(big))
            )
            if rid not in skip and not any(r.get("rule") == "linked_reports" for r in reasons)
        ]
        if not stale:
            return []
        # One query for the documents and one executemany for the new priorities: a
        # batch that joins a large case re-assesses hundreds of earlier reports.
        rows: dict[int, ReceivedReport] = {}
        for start in range(0, len(stale), 500):
            chunk = stale[start : start + 500]
            rows.update(
                (r.id, r)
                for r in session.scalars(select(ReceivedReport).where(ReceivedReport.id.in_(chunk)))
            )
        docs = [received.document_of(rows[rid]) for rid in stale]
        items = [
            triage.Item(report, files, as_utc(rows[rid].received_at))
            for rid, (report, files) in zip(stale, docs, strict=True)
        ]
        counts = linked_counts(session, stale)
        facts = triage.gather_facts(
            session, items, linked_reports=[counts.get(i, 0) for i in stale], store=self.store
        )
        triage.rerecord_many(
            session,
            [
                (rid, as_utc(it.received_at or rows[rid].received_at),
                 triage.assess(it.report, it.files, f, self.rules))
                for rid, it, f in zip(stale, items, facts, strict=True)
            ],
        )  # fmt: skip
        return stale

    def close(self) -> None:
        self.geo.close()


def extras(session: Session, report_id: int) -> dict[str, Any]:
    """What a received report's `show` adds: priority, reasons, available_to, preservation."""
    stored = triage.current(session, report_id)
    row = session.get(ReceivedReport, report_id)
    return {
        "priority": stored.priority if stored else None,
        "priority_label": triage.PRIORITIES[stored.priority] if stored else None,
        "reasons": [r.to_json() for r in stored.reasons] if stored else [],
        "override": stored.override if stored else None,
        "available_to": [a.to_json() for a in routing.available_to(session, report_id)],
        "preservation_until": isoformat(preservation_until(row.received_at)) if row else None,
    }


__all__ = ["AcceptedLike", "Inputs", "Referral", "extras"]
