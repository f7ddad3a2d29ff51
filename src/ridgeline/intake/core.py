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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog, parseahead
from ridgeline.cases.linking import LinkConfig, Linker, PdqNeighbours
from ridgeline.cases.models import CaseReport
from ridgeline.gcpause import gc_paused
from ridgeline.intake import prepare
from ridgeline.intake.prepare import Prepared, Preparer
from ridgeline.intake.sources import Incoming, from_paths
from ridgeline.referral import Inputs, Referral
from ridgeline.reports import received
from ridgeline.reports.identifiers import DEFAULT_EMAIL_RULES, EmailRules, Identifier
from ridgeline.reports.schema import Problem
from ridgeline.store import GrowingTables, batch_checkpoints
from ridgeline.store.bulk import select_in
from ridgeline.timeutil import as_utc, isoformat, utcnow

if TYPE_CHECKING:
    from ridgeline.store import Store

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
    identifiers: tuple[Identifier, ...]
    received_at: dt.datetime
    case_id: int
    #: what the triage and routing step takes from the report (`prepare.Prepared`)
    referral: Inputs | None = None
    #: the parsed report when it was parsed in this process (None: in a second one)
    parsed: received.Parsed | None = None


#: A step run on each batch's newly stored reports after linking (triage, routing).
Step = Callable[[Session, Sequence[Accepted]], None]

#: Below this many documents (or bytes of files) a second process costs more to start
#: than it saves: the run prepares in-process (the same producer, `parseahead.run_inline`).
PARSE_AHEAD_MIN_ITEMS = 2000
PARSE_AHEAD_MIN_BYTES = 1 << 20
#: What the linker and triage look up per batch (`GrowingTables`); not the received
#: reports themselves (looked up by a unique key, and their documents make ANALYZE slow).
INTAKE_TABLES = (
    "report_identifiers",
    "cases",
    "case_reports",
    "case_links",
    "file_bundles",
    "file_bundle_reports",
    "triage_priorities",
    "report_availability",
)


def _key(item: Incoming) -> tuple[str, str]:
    digest = received.sha256_of(item.data)
    return (item.idempotency_key or f"sha256:{digest}")[:200], digest


class Pipeline:
    """One intake run (a CLI invocation, a service process): keeps the linker's state."""

    def __init__(self, config: IntakeConfig | None = None, steps: Sequence[Step] = ()) -> None:
        self.config = config or IntakeConfig()
        self.linker = Linker(self.config.link)
        self.steps = list(steps)
        referral = next((s for s in self.steps if isinstance(s, Referral)), None)
        self.preparer = Preparer(self.config.email_rules, referral)

    def ingest(
        self,
        session: Session,
        items: Sequence[Incoming],
        *,
        received_by: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[Outcome]:
        """Store one batch in the caller's transaction (see the module's docstring)."""
        # A batch allocates a few hundred thousand short-lived objects (documents,
        # identifiers, rows) and no cycles worth collecting: the cyclic collector would
        # rescan everything alive several times per batch (a fifth of the CPU time).
        with gc_paused():
            # keys already stored are answered without parsing again
            keys = [_key(i) for i in items]
            known = self._known(session, [k for k, _ in keys])
            prepared: list[Prepared] = []
            parsed: list[received.Parsed | None] = []
            for item, (key, digest) in zip(items, keys, strict=True):
                if key in known:
                    prepared.append(Prepared(item.source, key, digest, ()))
                    parsed.append(None)
                else:
                    one, doc = self.preparer.prepare(item)
                    prepared.append(one)
                    parsed.append(doc)
            return self._guarded(session, prepared, parsed, known, received_by, now)

    def ingest_prepared(
        self,
        session: Session,
        prepared: Sequence[Prepared],
        *,
        received_by: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[Outcome]:
        """`ingest` for documents prepared beforehand (`Preparer`, possibly in a second
        process): what is left needs the store."""
        with gc_paused():
            known = self._known(session, [p.key for p in prepared])
            return self._guarded(session, prepared, None, known, received_by, now)

    def run(
        self,
        store: Store,
        *,
        items: Sequence[Incoming] | None = None,
        paths: Sequence[str] | None = None,
        fmt: str | None = None,
        batch: int = 1000,
        received_by: str | None = None,
        parse_ahead: bool | None = None,
    ) -> Iterator[list[Outcome]]:
        """Take in `items` (or the documents under `paths`), one transaction per `batch`;
        yields each batch's outcomes only after its commit, so a yielded `stored` is a
        stored report. Big inputs are prepared in a second process
        (`ridgeline.parseahead`) while this one writes; small ones, one core or
        `RIDGELINE_PARSE_AHEAD=0` run the same producer in this process
        (`parse_ahead` True or False decides instead of the input's size)."""
        if (items is None) == (paths is None):
            raise ValueError("give either items or paths")
        if paths is not None:
            from_paths(list(paths), fmt)  # a missing path is refused before anything
        if parse_ahead is None:
            parse_ahead = (
                len(items) >= PARSE_AHEAD_MIN_ITEMS
                if items is not None
                else prepare.size_of(paths or ()) >= PARSE_AHEAD_MIN_BYTES
            )
        job = prepare.job(self.preparer.spec(), batch, items=items, paths=paths, fmt=fmt)
        if parse_ahead and parseahead.available():
            # the argument is made in parts as it is sent: the input is not held twice
            with parseahead.frames(prepare.PRODUCER, job) as frames:
                del job
                yield from self._write(store, frames, received_by)
        else:
            arg = b"".join(job)
            yield from self._write(store, parseahead.run_inline(prepare.PRODUCER, arg), received_by)

    def _write(
        self, store: Store, frames: Iterable[bytes], received_by: str | None
    ) -> Iterator[list[Outcome]]:
        growing = GrowingTables(store, INTAKE_TABLES)
        for frame in frames:
            with gc_paused():  # tens of thousands of small objects, no cycles
                prepared = prepare.decode(frame)
            with store.session() as session:
                # batch after batch: checkpoint every few batches, not after each commit
                batch_checkpoints(session.connection())
                outcomes = self.ingest_prepared(session, prepared, received_by=received_by)
            growing.grew(sum(o.status == "stored" for o in outcomes))
            # committed: only now may they be answered
            yield outcomes

    def _known(self, session: Session, keys: Sequence[str]) -> dict[str, int]:
        known: dict[str, int] = {}
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), 500):
            known.update(select_in(session, received.KEYS_SQL, wanted[start : start + 500]))
        return known

    def _guarded(
        self,
        session: Session,
        prepared: Sequence[Prepared],
        parsed: Sequence[received.Parsed | None] | None,
        known: dict[str, int],
        received_by: str | None,
        now: dt.datetime | None,
    ) -> list[Outcome]:
        try:
            return self._ingest(
                session, prepared, parsed, known, received_by, as_utc(now or utcnow())
            )
        except BaseException:
            # The batch rolls back with the caller's transaction: forget what the
            # linker learnt from it.
            self.linker.pdq = PdqNeighbours()
            raise

    def _ingest(
        self,
        session: Session,
        prepared: Sequence[Prepared],
        parsed: Sequence[received.Parsed | None] | None,
        known: dict[str, int],
        received_by: str | None,
        at: dt.datetime,
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(prepared)
        rows: dict[str, received.Row] = {}
        keys: list[str] = []
        positions: list[int] = []
        for n, p in enumerate(prepared):
            if p.key in known:
                outcomes[n] = Outcome(p.source, known[p.key], "duplicate")
                continue
            r = p.row
            if r is None:
                outcomes[n] = Outcome(p.source, None, "refused", p.problems)
                continue
            if p.key not in rows:
                rows[p.key] = (
                    r.source, p.key, p.sha256, at, received_by, r.format, r.document, r.raw,
                    r.incident_type, r.incident_at, r.reporter, r.file_count, r.warnings,
                )  # fmt: skip
            keys.append(p.key)
            positions.append(n)
        stored = received.store_rows(session, keys, rows)
        new: list[tuple[int, tuple[Identifier, ...]]] = []
        fresh: list[int] = []
        for pos, res in zip(positions, stored, strict=True):
            p = prepared[pos]
            status: Status = "duplicate" if res.duplicate else "stored"
            outcomes[pos] = Outcome(p.source, res.report_id, status, p.problems)
            if not res.duplicate:
                new.append((res.report_id, p.identifiers))
                fresh.append(pos)
        received.store_identifiers(session, new)
        linked = self.linker.link(session, new, now=at)
        accepted = [
            Accepted(
                rid, ids, at, linked.case_of[rid], prepared[pos].referral,
                parsed[pos] if parsed is not None else None,
            )
            for (rid, ids), pos in zip(new, fresh, strict=True)
        ]  # fmt: skip
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
