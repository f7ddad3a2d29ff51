"""Statistics over received reports: what came in, how it was prioritised and routed,
and how long it took (intake to triage, intake to availability).

Counts come from SQL aggregates; the durations are read as two columns and summarised
here. "Informational" is priority 4 (the triage rules' `informational` outcome or an
analyst's override); every other priority is a referral. Charts are optional: matplotlib
is imported only when they are asked for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ridgeline.reports.models import ReceivedReport
from ridgeline.routing.models import ReportAvailability
from ridgeline.timeutil import as_utc, isoformat
from ridgeline.triage.models import TriagePriority
from ridgeline.triage.rules import PRIORITIES

CHART_FORMATS = ("png", "svg")


@dataclass(frozen=True)
class Durations:
    """Seconds from intake to an event, over the reports that reached it."""

    count: int
    median_s: float | None
    p90_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, values: list[float]) -> Durations:
        if not values:
            return cls(0, None, None, None)
        values.sort()

        def q(p: float) -> float:
            return round(values[min(len(values) - 1, int(p * (len(values) - 1) + 0.5))], 3)

        return cls(len(values), q(0.5), q(0.9), round(values[-1], 3))

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "median_s": self.median_s,
            "p90_s": self.p90_s,
            "max_s": self.max_s,
        }


@dataclass(frozen=True)
class Stats:
    since: dt.datetime | None
    until: dt.datetime | None
    reports: int
    by_incident_type: dict[str, int]
    by_priority: dict[int, int]
    referral: int
    informational: int
    untriaged: int
    by_agency: dict[str, int]
    by_country: dict[str, int]
    intake_to_triage: Durations
    intake_to_availability: Durations

    def to_json(self) -> dict[str, Any]:
        return {
            "since": isoformat(self.since),
            "until": isoformat(self.until),
            "reports": self.reports,
            "by_incident_type": self.by_incident_type,
            "by_priority": {str(k): v for k, v in self.by_priority.items()},
            "referral": self.referral,
            "informational": self.informational,
            "untriaged": self.untriaged,
            "by_agency": self.by_agency,
            "by_country": self.by_country,
            "intake_to_triage": self.intake_to_triage.to_json(),
            "intake_to_availability": self.intake_to_availability.to_json(),
        }


def _window(query: Any, since: dt.datetime | None, until: dt.datetime | None) -> Any:
    if since is not None:
        query = query.where(ReceivedReport.received_at >= as_utc(since))
    if until is not None:
        query = query.where(ReceivedReport.received_at < as_utc(until))
    return query


def _sorted(counts: dict[Any, int]) -> dict[Any, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def compute(
    session: Session, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> Stats:
    """Counts and durations over reports received in [since, until)."""
    total = session.scalar(_window(select(func.count(ReceivedReport.id)), since, until)) or 0
    by_type = {
        (t or "unknown"): int(n)
        for t, n in session.execute(
            _window(
                select(ReceivedReport.incident_type, func.count()).group_by(
                    ReceivedReport.incident_type
                ),
                since,
                until,
            )
        )
    }
    joined = select(TriagePriority.priority, func.count()).join(
        ReceivedReport, ReceivedReport.id == TriagePriority.report_id
    )
    by_priority = {
        int(p): int(n)
        for p, n in session.execute(_window(joined, since, until).group_by(TriagePriority.priority))
    }
    avail = select(
        ReportAvailability.agency, func.count(func.distinct(ReportAvailability.report_id))
    )
    avail = avail.join(ReceivedReport, ReceivedReport.id == ReportAvailability.report_id)
    by_agency = {
        str(a): int(n)
        for a, n in session.execute(
            _window(avail, since, until).group_by(ReportAvailability.agency)
        )
    }
    country = select(
        ReportAvailability.country, func.count(func.distinct(ReportAvailability.report_id))
    ).join(ReceivedReport, ReceivedReport.id == ReportAvailability.report_id)
    by_country = {
        (c or "unknown"): int(n)
        for c, n in session.execute(
            _window(country, since, until).group_by(ReportAvailability.country)
        )
    }
    triage_times = [
        (as_utc(a) - as_utc(r)).total_seconds()
        for r, a in session.execute(
            _window(
                select(ReceivedReport.received_at, TriagePriority.assessed_at).join(
                    TriagePriority, TriagePriority.report_id == ReceivedReport.id
                ),
                since,
                until,
            )
        )
    ]
    first = (
        select(
            ReportAvailability.report_id,
            func.min(ReportAvailability.made_available_at).label("first"),
        )
        .group_by(ReportAvailability.report_id)
        .subquery()
    )
    avail_times = [
        (as_utc(a) - as_utc(r)).total_seconds()
        for r, a in session.execute(
            _window(
                select(ReceivedReport.received_at, first.c.first).join(
                    first, first.c.report_id == ReceivedReport.id
                ),
                since,
                until,
            )
        )
    ]
    triaged = sum(by_priority.values())
    informational = by_priority.get(4, 0)
    return Stats(
        since=since,
        until=until,
        reports=int(total),
        by_incident_type=_sorted(by_type),
        by_priority={p: by_priority.get(p, 0) for p in PRIORITIES},
        referral=triaged - informational,
        informational=informational,
        untriaged=int(total) - triaged,
        by_agency=_sorted(by_agency),
        by_country=_sorted(by_country),
        intake_to_triage=Durations.of(triage_times),
        intake_to_availability=Durations.of(avail_times),
    )


def write_charts(
    stats: Stats, directory: Path, formats: tuple[str, ...] = CHART_FORMATS
) -> list[Path]:
    """Bar charts (priority, incident type, agency, country) as PNG and/or SVG."""
    bad = [f for f in formats if f not in CHART_FORMATS]
    if bad or not formats:
        from ridgeline.errors import BadInput

        raise BadInput(f"chart formats are {', '.join(CHART_FORMATS)}, not {', '.join(bad)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    charts: list[tuple[str, str, dict[str, int]]] = [
        (
            "priority",
            "Received reports by priority",
            {f"{p} {PRIORITIES[p]}": n for p, n in stats.by_priority.items()},
        ),
        ("incident_type", "Received reports by incident type", stats.by_incident_type),
        ("agency", "Reports made available, by agency", stats.by_agency),
        ("country", "Reports made available, by country", stats.by_country),
    ]
    for name, title, counts in charts:
        labels = list(counts)[:20] or ["(none)"]
        values = [counts.get(k, 0) for k in labels]
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 1.5))
        ax.barh(labels[::-1], values[::-1], color="#4a6fa5")
        ax.set_title(title)
        ax.set_xlabel("reports")
        for ext in formats:
            path = directory / f"{name}.{ext}"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            written.append(path)
        plt.close(fig)
    return written
