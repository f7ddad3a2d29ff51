"""The intake pipeline: receive -> check -> store -> identifiers -> link -> (triage, route).

`Pipeline.ingest` takes a batch of received documents inside the caller's transaction and
returns one `Outcome` per document, in order. It flushes and never commits: the CLI and
the API commit the batch and only then print or answer, so an acknowledged report is a
stored one, and a process killed mid-batch loses nothing that was acknowledged (the
rerun stores the rest; keys already stored come back as duplicates).

A document's key is the client's Idempotency-Key, else `sha256:` + the digest of its
bytes; keys already stored are answered without parsing again. A document with any
error is refused with every problem and nothing of it is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.cases.linking import LinkConfig, Linker, PdqNeighbours
from ridgeline.cases.models import CaseReport
from ridgeline.errors import BadInput
from ridgeline.gcpause import gc_paused
from ridgeline.intake.sources import Incoming
from ridgeline.reports import documents, received
from ridgeline.reports.identifiers import DEFAULT_EMAIL_RULES, EmailRules, Identifier, extract
from ridgeline.reports.schema import Problem
from ridgeline.store.bulk import select_in
from ridgeline.timeutil import as_utc, isoformat, utcnow

Status = Literal["stored", "duplicate", "refused"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one document (the CLI's JSONL row)."""

    source: str
    report_id: int | None
    status: Status
    problems: tuple[Problem, ...] = ()
    case_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "report_id": self.report_id,
            "status": self.status,
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """Linking rules and identifier normalisation (docs/intake.md)."""

    link: LinkConfig = field(default_factory=LinkConfig)
    email_rules: EmailRules = DEFAULT_EMAIL_RULES


@dataclass(frozen=True, slots=True)
class Accepted:
    """A newly stored report, handed to the steps after linking (triage, routing)."""

    report_id: int
    parsed: received.Parsed
    identifiers: tuple[Identifier, ...]
    received_at: dt.datetime
    case_id: int


#: A step run on each batch's newly stored reports after linking (triage, routing).
Step = Callable[[Session, Sequence[Accepted]], None]


def _key(item: Incoming) -> tuple[str, str]:
    digest = received.sha256_of(item.data)
    return (item.idempotency_key or f"sha256:{digest}")[:200], digest


class Pipeline:
    """One intake run (a CLI invocation, a service process): keeps the linker's state."""

    def __init__(self, config: IntakeConfig | None = None, steps: Sequence[Step] = ()) -> None:
        self.config = config or IntakeConfig()
        self.linker = Linker(self.config.link)
        self.steps = list(steps)

    def ingest(
        self,
        session: Session,
        items: Sequence[Incoming],
        *,
        received_by: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[Outcome]:
        # A batch allocates a few hundred thousand short-lived objects (documents,
        # identifiers, rows) and no cycles worth collecting: the cyclic collector would
        # rescan everything alive several times per batch (a fifth of the CPU time).
        try:
            with gc_paused():
                return self._ingest(session, items, received_by, as_utc(now or utcnow()))
        except BaseException:
            # The batch rolls back with the caller's transaction: forget what the
            # linker learnt from it.
            self.linker.pdq = PdqNeighbours()
            raise

    def _ingest(
        self,
        session: Session,
        items: Sequence[Incoming],
        received_by: str | None,
        at: dt.datetime,
    ) -> list[Outcome]:
        keys = [_key(i) for i in items]
        known: dict[str, int] = {}
        wanted = sorted({k for k, _ in keys})
        for start in range(0, len(wanted), 500):
            known.update(select_in(session, received.KEYS_SQL, wanted[start : start + 500]))
        outcomes: list[Outcome | None] = [None] * len(items)
        to_store: list[received.ToStore] = []
        positions: list[int] = []
        idents: list[tuple[Identifier, ...]] = []
        for n, (item, (key, digest)) in enumerate(zip(items, keys, strict=True)):
            if key in known:
                outcomes[n] = Outcome(item.source, known[key], "duplicate")
                continue
            if item.error is not None:
                outcomes[n] = Outcome(
                    item.source, None, "refused", (Problem(item.source, item.error),)
                )
                continue
            try:
                parsed = received.parse_document(item.data, item.format)
            except documents.InvalidDocument as exc:
                outcomes[n] = Outcome(item.source, None, "refused", tuple(exc.problems))
                continue
            except BadInput as exc:
                outcomes[n] = Outcome(item.source, None, "refused", (Problem("report", str(exc)),))
                continue
            found, warnings = extract(parsed.report, parsed.files, rules=self.config.email_rules)
            if warnings:
                extra = tuple(Problem("identifiers", w, "warning") for w in warnings)
                parsed = received.Parsed(
                    parsed.report, parsed.files, parsed.document, parsed.format,
                    parsed.warnings + extra,
                )  # fmt: skip
            to_store.append(
                received.ToStore(
                    item.source, parsed, item.data, digest, key, received_by=received_by
                )
            )
            positions.append(n)
            idents.append(tuple(found))
        stored = received.store_many(session, to_store, now=at)
        new: list[tuple[int, tuple[Identifier, ...]]] = []
        fresh: list[tuple[int, received.ToStore, tuple[Identifier, ...]]] = []
        for pos, item_s, ids, res in zip(positions, to_store, idents, stored, strict=True):
            status: Status = "duplicate" if res.duplicate else "stored"
            outcomes[pos] = Outcome(item_s.source, res.report_id, status, item_s.parsed.warnings)
            if not res.duplicate:
                new.append((res.report_id, ids))
                fresh.append((res.report_id, item_s, ids))
        received.store_identifiers(session, new)
        linked = self.linker.link(session, new, now=at)
        accepted = [Accepted(rid, s.parsed, ids, at, linked.case_of[rid]) for rid, s, ids in fresh]
        for step in self.steps:
            step(session, accepted)
        session.flush()
        done: list[Outcome] = []
        for o in outcomes:
            assert o is not None
            if o.report_id is not None and o.status == "stored":
                o = Outcome(
                    o.source, o.report_id, o.status, o.problems, linked.case_of.get(o.report_id)
                )
            done.append(o)
        return done


def ingest(
    session: Session,
    items: Sequence[Incoming],
    config: IntakeConfig | None = None,
    *,
    received_by: str | None = None,
) -> list[Outcome]:
    """One batch through a fresh `Pipeline` with triage and routing (long runs keep one
    `Pipeline` instead)."""
    return Pipeline(config, default_steps()).ingest(session, items, received_by=received_by)


def default_steps(
    store: Any = None, *, triage_rules: str | None = None, city_db: str | None = None
) -> list[Step]:
    """The steps after linking: triage and routing (`ridgeline.referral`). `store` lets
    triage check the victims registry; `triage_rules` is a rules file (None: the
    documented defaults), `city_db` a MaxMind city database (None: RIDGELINE_GEOIP_CITY_DB,
    else country from iptocc only)."""
    from ridgeline.referral import Referral

    return [Referral(store, rules=triage_rules, city_db=city_db)]


__all__ = [
    "Accepted",
    "IntakeConfig",
    "Outcome",
    "Pipeline",
    "ReceivedView",
    "Step",
    "default_steps",
    "extras_of",
    "ingest",
    "report_view",
]


@dataclass(frozen=True, slots=True)
class ReceivedView:
    """A received report as `reports show --received` and `GET /v1/intake/{id}` give it."""

    report_id: int
    source: str
    received_at: dt.datetime
    received_by: str | None
    incident_type: str | None
    incident_at: dt.datetime | None
    reporter: str | None
    file_count: int
    case_id: int | None
    identifiers: tuple[Identifier, ...]
    warnings: tuple[dict[str, Any], ...]
    document: dict[str, Any]
    #: Keys added by the steps after linking (priority, reasons, available_to, ...).
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self, *, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "report_id": self.report_id,
            "source": self.source,
            "received_at": isoformat(self.received_at),
            "received_by": self.received_by,
            "incident_type": self.incident_type,
            "incident_at": isoformat(self.incident_at),
            "reporter": self.reporter,
            "files": self.file_count,
            "case_id": self.case_id,
            **self.extras,
        }
        if full:
            out["identifiers"] = [i.to_json() for i in self.identifiers]
            out["warnings"] = list(self.warnings)
            out["document"] = self.document
        return out


def report_view(session: Session, report_id: int, actor: str | None = None) -> ReceivedView:
    """Everything stored about one received report; the read is logged (`received.read`,
    by `actor`, default the OS user)."""
    row = received.get(session, report_id)
    auditlog.append(session, actor, "received.read", f"received:{report_id}")
    case_id = session.execute(
        select(CaseReport.case_id).where(CaseReport.report_id == report_id)
    ).scalar_one_or_none()
    idents = received.identifiers_of(session, [report_id])[report_id]
    return ReceivedView(
        report_id=row.id,
        source=row.source,
        received_at=row.received_at,
        received_by=row.received_by,
        incident_type=row.incident_type,
        incident_at=row.incident_at,
        reporter=row.reporter,
        file_count=row.file_count,
        case_id=int(case_id) if case_id is not None else None,
        identifiers=tuple(idents),
        warnings=tuple(row.warnings or ()),
        document=row.document,
        extras=extras_of(session, report_id),
    )


def extras_of(session: Session, report_id: int) -> dict[str, Any]:
    """What the later steps know of a report: priority, reasons, available_to, ..."""
    from ridgeline.referral import extras

    return extras(session, report_id)
