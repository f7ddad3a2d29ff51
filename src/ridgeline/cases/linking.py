"""Linking received reports into cases, incrementally, as they arrive.

A case is a connected component of the graph whose nodes are reports and whose edges are
shared identifiers (`reports.identifiers`); each edge is stored in `case_links` with the
identifier that made it. Linking a batch is a union-find over the batch's reports and
the existing cases they touch (one grouped, indexed query per identifier kind), so the
cost of a batch depends on the batch, not on the database.

Weak identifiers must not chain the world together, hence the rules (docs/intake.md):

- the reporter's own contact details (the ESP's desk) never link (`identifiers.linkable`);
- an IP links only to a sighting within `ip_window` of its own time, never when either
  sighting is flagged `possibleProxy`;
- a file (md5/sha1/sha256, or a PDQ within `pdq_threshold`) seen in more than
  `viral_threshold` reports stops linking: those reports are bundled under the file
  (`file_bundles`) and the links it made earlier are removed, their cases re-split;
- a split by an analyst keeps the two sides apart: a later report that touches both joins
  one and its link to the other is recorded as `cut`.

Library functions flush and never commit.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from ridgeline.cases.models import (
    Case,
    CaseEvent,
    CaseLink,
    CaseReport,
    FileBundle,
    FileBundleReport,
)
from ridgeline.errors import BadInput
from ridgeline.index.hamming import HammingIndex, hex_to_rows, mapped_empty, rows_to_hex
from ridgeline.reports.identifiers import FILE_KINDS, Identifier, linkable
from ridgeline.reports.models import ReportIdentifier
from ridgeline.store.bulk import insert_rows, select_in
from ridgeline.timeutil import as_utc, utcnow

#: File identifiers counted (by exact value) for the viral rule.
EXACT_FILE_KINDS = ("md5", "sha1", "sha256", "pdq")
#: PostgreSQL advisory lock key of the linker.
LINK_LOCK = 7340213
CHUNK = 500
#: The linker's hot lookups, as driver SQL (`store.bulk.select_in`): the same statements
#: SQLAlchemy would write, without building and expanding a parameter per value.
_EXACT_SQL = (
    "SELECT report_identifiers.service, report_identifiers.device_type, "
    "report_identifiers.value, case_reports.case_id, max(report_identifiers.report_id) "
    "FROM report_identifiers JOIN case_reports "
    "ON case_reports.report_id = report_identifiers.report_id "
    "WHERE report_identifiers.kind = {p} AND report_identifiers.value IN ({in}) "
    "AND report_identifiers.role != 'reporter' GROUP BY report_identifiers.service, "
    "report_identifiers.device_type, report_identifiers.value, case_reports.case_id"
)
#: The ORM query this replaces, with `= false` for `IS false` (the column is NOT NULL).
_IPS_SQL = (
    "SELECT report_identifiers.value, report_identifiers.report_id, "
    "report_identifiers.event_at, report_identifiers.possible_proxy, case_reports.case_id "
    "FROM report_identifiers JOIN case_reports "
    "ON case_reports.report_id = report_identifiers.report_id "
    "WHERE report_identifiers.kind = {p} AND report_identifiers.value IN ({in}) "
    "AND report_identifiers.role != {p} AND report_identifiers.possible_proxy = {p} "
    "AND report_identifiers.event_at IS NOT NULL"
)
#: PDQ rows stored after a given id (`PdqNeighbours.refresh`).
_PDQ_SINCE_SQL = (
    "SELECT id, report_id, value FROM report_identifiers "
    "WHERE id > :last AND {kind} = 'pdq' ORDER BY id"
)
_CASE_OF_SQL = "SELECT report_id, case_id FROM case_reports WHERE report_id IN ({in})"
_BUNDLES_SQL = (
    "SELECT file_bundles.id, file_bundles.value FROM file_bundles "
    "WHERE file_bundles.kind = {p} AND file_bundles.value IN ({in})"
)
_FILE_COUNT_SQL = (
    "SELECT report_identifiers.value, count(distinct(report_identifiers.report_id)) "
    "FROM report_identifiers WHERE report_identifiers.kind = {p} "
    "AND report_identifiers.value IN ({in}) AND report_identifiers.role = 'file' "
    "GROUP BY report_identifiers.value HAVING count(distinct(report_identifiers.report_id)) > {p}"
)


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """The linking rules' parameters (documented defaults)."""

    #: Two sightings of one IP link only when at most this far apart.
    ip_window: dt.timedelta = dt.timedelta(hours=24)
    #: A file in more than this many reports bundles them instead of linking them.
    viral_threshold: int = 20
    #: PDQ hashes within this Hamming distance are the same picture (CONVENTIONS).
    pdq_threshold: int = 31

    def __post_init__(self) -> None:
        if self.ip_window < dt.timedelta(0):
            raise BadInput("the IP window must not be negative")
        if self.viral_threshold < 1:
            raise BadInput("the viral threshold must be at least 1")
        if not 0 <= self.pdq_threshold <= 256:
            raise BadInput("the PDQ threshold must be between 0 and 256")


@dataclass(frozen=True, slots=True)
class NewLink:
    report_a: int
    report_b: int
    kind: str
    value: str
    cut: bool = False


@dataclass
class LinkResult:
    """What linking a batch did."""

    #: Each new report's case.
    case_of: dict[int, int] = field(default_factory=dict)
    links: list[NewLink] = field(default_factory=list)
    new_cases: int = 0
    merged_cases: int = 0
    #: Files that became viral in this batch (kind, value).
    viral: list[tuple[str, str]] = field(default_factory=list)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}
        #: Existing case ids in each root's set (to honour analysts' splits).
        self.cases: dict[tuple[str, int], set[int]] = {}

    def add(self, node: tuple[str, int]) -> None:
        if node not in self.parent:
            self.parent[node] = node
            self.cases[node] = {node[1]} if node[0] == "c" else set()

    def find(self, node: tuple[str, int]) -> tuple[str, int]:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: tuple[str, int], b: tuple[str, int], apart: set[frozenset[int]]) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        ca, cb = self.cases[ra], self.cases[rb]
        if apart and any(frozenset((x, y)) in apart for x in ca for y in cb):
            return False
        self.parent[rb] = ra
        self.cases[ra] = ca | cb
        del self.cases[rb]
        return True


def _resolve(merged: dict[int, int], case_id: int) -> int:
    seen = 0
    while case_id in merged and seen < 10000:
        case_id = merged[case_id]
        seen += 1
    return case_id


def separations(session: Session) -> set[frozenset[int]]:
    """Pairs of current case ids an analyst split apart (merged cases resolved)."""
    events = session.execute(select(CaseEvent.details).where(CaseEvent.action == "split")).scalars()
    pairs = [(int(d["case_id"]), int(d["new_case_id"])) for d in events]
    if not pairs:
        return set()
    merged: dict[int, int] = {
        int(a): int(b)
        for a, b in session.execute(
            select(Case.id, Case.merged_into).where(Case.merged_into.is_not(None))
        )
        if b is not None
    }
    out: set[frozenset[int]] = set()
    for a, b in pairs:
        ra, rb = _resolve(merged, a), _resolve(merged, b)
        if ra != rb:
            out.add(frozenset((ra, rb)))
    return out


class PdqNeighbours:
    """The PDQ hashes of every stored report file, searchable by Hamming distance.

    Loaded once from `report_identifiers` and extended with each batch (rows with a
    higher id than the last seen are read first, so several intake processes stay
    correct); new rows go to a small scanned tail, rebuilt into the MIH index when large.

    Kept compact because it holds every stored PDQ hash for the life of an intake run
    (a million reports: some 300,000 hashes): the hashes as 32-byte rows and the report
    ids as an int64 array, nothing per hash in Python objects. A hit's stored hash is the
    hex of its row (stored values are canonical lower-case hex; one that is not is kept
    as it is in `odd`), and only the reports added since the last refresh are remembered
    to skip their rows (a batch is added before it is committed).
    """

    def __init__(self) -> None:
        self.last_id = 0
        self.base = HammingIndex(np.zeros((0, 32), dtype=np.uint8))
        self.base_reports = np.zeros(0, dtype=np.int64)
        #: The tail: the first `tail_n` rows of these buffers (grown by doubling).
        self.tail_rows = np.zeros((0, 32), dtype=np.uint8)
        self.tail_reports = np.zeros(0, dtype=np.int64)
        self.tail_n = 0
        #: Stored values that are not the lower-case hex of their row, by position
        #: (base rows first, then the tail's); empty for canonical values.
        self.odd: dict[int, str] = {}
        #: Reports added since the last `refresh` (their rows are skipped by the next).
        self.pending: set[int] = set()

    def __len__(self) -> int:
        return len(self.base) + self.tail_n

    @property
    def nbytes(self) -> int:
        """Memory the arrays hold (the tail's spare capacity included): the part of an
        intake process that grows with what is stored (bench/intake_million.py)."""
        base = self.base
        arrays: list[np.ndarray] = [base.hashes, base.layout, base.offsets, base.ids]
        arrays += [self.base_reports, self.tail_rows, self.tail_reports]
        return sum(int(a.nbytes) for a in arrays)

    def refresh(self, session: Session, exclude: set[int]) -> None:
        """Read PDQ rows stored since the last call (except the current batch's)."""
        # By the primary key's range: SQLite would otherwise take the identifier index
        # for `kind = 'pdq'` and read every PDQ row ever stored on every batch (a unary
        # plus on the column keeps an index from being used for that term).
        kind = "+kind" if session.get_bind().dialect.name == "sqlite" else "kind"
        rows = list(session.execute(text(_PDQ_SINCE_SQL.format(kind=kind)), {"last": self.last_id}))
        if rows:
            self.last_id = max(self.last_id, rows[-1][0])
        skip = self.pending
        self.pending = set()
        self._extend([(rid, v) for _, rid, v in rows if rid not in exclude and rid not in skip])

    def add(self, items: Sequence[tuple[int, str]]) -> None:
        """Hashes of the batch just linked (searched by the next batches)."""
        self._extend(items)
        self.pending.update(rid for rid, _ in items)

    def _extend(self, items: Sequence[tuple[int, str]]) -> None:
        if not items:
            return
        values = [v for _, v in items]
        rows = hex_to_rows(values)
        if "".join(values) != rows.tobytes().hex():  # some value not in canonical form
            at = len(self)
            for k, (v, h) in enumerate(zip(values, rows_to_hex(rows), strict=True)):
                if v != h:
                    self.odd[at + k] = v
        need = self.tail_n + len(items)
        if need > len(self.tail_reports):
            cap = max(need, 2 * len(self.tail_reports), 1024)
            grown = mapped_empty((cap, 32), np.uint8)
            grown[: self.tail_n] = self.tail_rows[: self.tail_n]
            reports = mapped_empty(cap, np.int64)
            reports[: self.tail_n] = self.tail_reports[: self.tail_n]
            self.tail_rows, self.tail_reports = grown, reports
        self.tail_rows[self.tail_n : need] = rows
        self.tail_reports[self.tail_n : need] = [rid for rid, _ in items]
        self.tail_n = need
        if self.tail_n > max(4096, len(self.base) // 4):
            self._rebuild()

    def _rebuild(self) -> None:
        # every array in its own mapping (`mapped_empty`): the ones replaced here are
        # given back to the system, not left as holes in the heap
        hashes = _joined(self.base.rows(), self.tail_rows[: self.tail_n])
        self.base = HammingIndex.build(hashes)
        self.base_reports = _joined(self.base_reports, self.tail_reports[: self.tail_n])
        self.tail_rows = np.zeros((0, 32), dtype=np.uint8)
        self.tail_reports = np.zeros(0, dtype=np.int64)
        self.tail_n = 0

    def _value(self, position: int, row: np.ndarray) -> str:
        return self.odd.get(position) or row.tobytes().hex()

    def search(self, values: Sequence[str], radius: int) -> list[list[tuple[int, str]]]:
        """For each query hash, the (report id, stored hash) within `radius`."""
        out: list[list[tuple[int, str]]] = [[] for _ in values]
        if not values:
            return out
        queries = hex_to_rows(list(values))
        hits = self.base.search(queries, radius)
        rows = self.base.rows()
        for q, r in zip(hits.query.tolist(), hits.row.tolist(), strict=True):
            out[q].append((int(self.base_reports[r]), self._value(r, rows[r])))
        if self.tail_n:
            tail = HammingIndex(self.tail_rows[: self.tail_n])
            hits = tail.search(queries, radius, method="scan")
            at = len(self.base)
            for q, r in zip(hits.query.tolist(), hits.row.tolist(), strict=True):
                row = self.tail_rows[r]
                out[q].append((int(self.tail_reports[r]), self._value(at + r, row)))
        return out


def _joined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.concatenate` of two arrays into a `mapped_empty` one."""
    return np.concatenate([a, b], out=mapped_empty((len(a) + len(b), *a.shape[1:]), a.dtype))


@dataclass(frozen=True, slots=True)
class _NearPdq:
    """A batch's PDQ search: stored hits per query, in-batch hits, near-viral queries."""

    found: list[list[tuple[int, str]]]
    batch_hits: Any
    viral: set[int]


def _key(i: Identifier) -> tuple[str, str | None, str]:
    return (i.kind, i.qualifier, i.value)


class Linker:
    """Links batches of new reports; holds the PDQ index between batches."""

    def __init__(self, config: LinkConfig | None = None) -> None:
        self.config = config or LinkConfig()
        self.pdq = PdqNeighbours()

    # ------------------------------------------------------------ queries

    def _existing_exact(
        self, session: Session, kind: str, values: Iterable[str]
    ) -> list[tuple[str | None, str | None, str, int, int]]:
        """(service, device_type, value, case_id, latest report) grouped by case."""
        out: list[tuple[str | None, str | None, str, int, int]] = []
        vals = sorted(set(values))
        for start in range(0, len(vals), CHUNK):
            out.extend(select_in(session, _EXACT_SQL, vals[start : start + CHUNK], before=(kind,)))
        return out

    def _existing_ips(
        self, session: Session, values: Iterable[str]
    ) -> list[tuple[str, int, dt.datetime | None, bool, int]]:
        """(value, report, event_at, possible_proxy, case_id) of stored sightings."""
        out: list[tuple[str, int, dt.datetime | None, bool, int]] = []
        vals = sorted(set(values))
        for start in range(0, len(vals), CHUNK):
            rows = select_in(
                session, _IPS_SQL, vals[start : start + CHUNK], before=("ip",),
                after=("reporter", False),
            )  # fmt: skip
            for value, rid, event_at, proxy, case_id in rows:
                if isinstance(event_at, str):  # SQLite: naive UTC text, as stored
                    event_at = dt.datetime.fromisoformat(event_at)
                out.append((value, rid, event_at, bool(proxy), case_id))
        return out

    # ------------------------------------------------------------ viral files

    def _viral(
        self,
        session: Session,
        new: Sequence[tuple[int, Sequence[Identifier]]],
        result: LinkResult,
    ) -> set[tuple[str, str]]:
        """Bundle reports under files in more than `viral_threshold` reports; returns the
        viral (kind, value) pairs, which then link nothing."""
        batch_files: dict[tuple[str, str], set[int]] = defaultdict(set)
        for rid, idents in new:
            for i in idents:
                if i.kind in EXACT_FILE_KINDS and i.role == "file":
                    batch_files[(i.kind, i.value)].add(rid)
        if not batch_files:
            return set()
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, value in batch_files:
            by_kind[kind].append(value)
        bundles: dict[tuple[str, str], int] = {}
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for kind, values in by_kind.items():
            for start in range(0, len(values), CHUNK):
                chunk = values[start : start + CHUNK]
                for bid, value in select_in(session, _BUNDLES_SQL, chunk, before=(kind,)):
                    bundles[(kind, value)] = bid
                rest = [v for v in chunk if (kind, v) not in bundles]
                if rest:
                    # Only files over the threshold matter: almost every value is in one
                    # report, and returning those rows costs more than the count.
                    threshold = (self.config.viral_threshold,)
                    for value, n in select_in(
                        session, _FILE_COUNT_SQL, rest, before=(kind,), after=threshold
                    ):
                        counts[(kind, value)] = int(n)
        batch_ids = {rid for rid, _ in new}
        viral: set[tuple[str, str]] = set()
        members: list[dict[str, int]] = []
        for key, rids in batch_files.items():
            if key in bundles:
                viral.add(key)
                bid = bundles[key]
                members += [{"bundle_id": bid, "report_id": r} for r in sorted(rids)]
                session.execute(
                    update(FileBundle)
                    .where(FileBundle.id == bid)
                    .values(report_count=FileBundle.report_count + len(rids))
                )
                continue
            # The batch's own rows are stored already and counted by the query.
            if counts.get(key, 0) <= self.config.viral_threshold:
                continue
            viral.add(key)
            result.viral.append(key)
            kind, value = key
            all_reports = sorted(
                set(
                    session.execute(
                        select(ReportIdentifier.report_id).where(
                            ReportIdentifier.kind == kind,
                            ReportIdentifier.value == value,
                            ReportIdentifier.role == "file",
                        )
                    ).scalars()
                )
            )
            bid = session.execute(
                insert(FileBundle)
                .values(kind=kind, value=value, report_count=len(all_reports), created_at=utcnow())
                .returning(FileBundle.id)
            ).scalar_one()
            members += [{"bundle_id": bid, "report_id": r} for r in all_reports]
            self._unlink(session, kind, value, exclude=batch_ids)
        insert_rows(
            session,
            FileBundleReport.__table__,  # type: ignore[arg-type]
            ("bundle_id", "report_id"),
            [(m["bundle_id"], m["report_id"]) for m in members],
        )
        return viral

    def _unlink(self, session: Session, kind: str, value: str, exclude: set[int]) -> None:
        """Remove the links a now-viral file made and re-split the cases they held."""
        rows = self._links_made_by(session, kind, [value])
        if not rows:
            return
        reports = {r[1] for r in rows} | {r[2] for r in rows}
        case_ids = set(
            session.execute(
                select(CaseReport.case_id).where(CaseReport.report_id.in_(sorted(reports)))
            ).scalars()
        )
        session.execute(delete(CaseLink).where(CaseLink.id.in_([r[0] for r in rows])))
        resplit(session, sorted(case_ids))

    def _links_made_by(
        self, session: Session, kind: str, values: Sequence[str]
    ) -> list[tuple[int, int, int]]:
        """(id, report_a, report_b) of the links these file values made, found through
        the reports holding them: a file's link always has an end holding its value
        (both ends for an exact file; for a PDQ link, the report whose hash is the
        link's value), so the links need no (kind, value) index, which cost a random
        insert for every link and only served this rare look-up."""
        wanted = {v[:400] for v in values}
        reports: set[int] = set()
        ordered = sorted(wanted)
        for start in range(0, len(ordered), CHUNK):
            reports.update(
                session.execute(
                    select(ReportIdentifier.report_id).where(
                        ReportIdentifier.kind == kind,
                        ReportIdentifier.value.in_(ordered[start : start + CHUNK]),
                    )
                ).scalars()
            )
        found: dict[int, tuple[int, int, int]] = {}
        held = sorted(reports)
        for start in range(0, len(held), CHUNK):
            chunk = held[start : start + CHUNK]
            for end in (CaseLink.report_a, CaseLink.report_b):
                for lid, a, b, value in session.execute(
                    select(CaseLink.id, CaseLink.report_a, CaseLink.report_b, CaseLink.value).where(
                        end.in_(chunk), CaseLink.kind == kind
                    )
                ):
                    if value in wanted:
                        found[int(lid)] = (int(lid), int(a), int(b))
        return [found[k] for k in sorted(found)]

    # ------------------------------------------------------------ near-viral pictures

    def _near_pdq(
        self,
        session: Session,
        pdqs: Sequence[tuple[int, str]],
        batch_ids: set[int],
        result: LinkResult,
    ) -> _NearPdq:
        """Search the batch's PDQ hashes against stored files and each other; a picture
        whose near copies are in more than the viral threshold of reports (earlier ones
        and this batch's) is viral like an exact file: its reports are bundled, the PDQ
        links its near copies made while it was rare are removed and their cases
        re-split (`_pdq_viral`)."""
        cfg = self.config
        self.pdq.refresh(session, exclude=batch_ids)
        found = self.pdq.search([v for _, v in pdqs], cfg.pdq_threshold)
        batch_hashes = HammingIndex(hex_to_rows([v for _, v in pdqs]))
        bhits = batch_hashes.search(batch_hashes.rows(), cfg.pdq_threshold, method="scan")
        in_batch: dict[int, set[int]] = defaultdict(set)
        near_values: dict[int, set[str]] = defaultdict(set)
        for q, r in zip(bhits.query.tolist(), bhits.row.tolist(), strict=True):
            if pdqs[q][0] != pdqs[r][0]:
                in_batch[q].add(pdqs[r][0])
                near_values[q].add(pdqs[r][1])
        viral = {
            q
            for q in range(len(pdqs))
            if len({r for r, _ in found[q]} | in_batch[q]) >= cfg.viral_threshold
        }
        if viral:
            groups = [
                (
                    pdqs[q][1],
                    {pdqs[q][0]} | in_batch[q] | {r for r, _ in found[q]},
                    {pdqs[q][1]} | near_values[q] | {v for _, v in found[q]},
                )
                for q in sorted(viral)
            ]
            self._pdq_viral(session, groups, result)
        return _NearPdq(found, bhits, viral)

    def _pdq_viral(
        self,
        session: Session,
        groups: Sequence[tuple[str, set[int], set[str]]],
        result: LinkResult,
    ) -> None:
        """Bundle each near-viral picture's reports (under a PDQ bundle within the
        threshold, else a new one keyed by the hash that tipped it over), remove the PDQ
        links made by any of its near copies and re-split the cases they held."""
        cfg = self.config
        bundles: list[tuple[int, str]] = [
            (int(b), str(v))
            for b, v in session.execute(
                select(FileBundle.id, FileBundle.value)
                .where(FileBundle.kind == "pdq")
                .order_by(FileBundle.id)
            )
        ]
        members: dict[int, set[int]] = {}
        for value, reports, values in groups:
            bid: int | None = None
            if bundles:
                index = HammingIndex(hex_to_rows([v for _, v in bundles]))
                hits = index.search(hex_to_rows([value]), cfg.pdq_threshold, method="scan")
                rows = sorted(set(hits.row.tolist()))
                if rows:
                    bid = int(bundles[rows[0]][0])
            if bid is None:
                bid = session.execute(
                    insert(FileBundle)
                    .values(kind="pdq", value=value, report_count=0, created_at=utcnow())
                    .returning(FileBundle.id)
                ).scalar_one()
                bundles.append((bid, value))
                result.viral.append(("pdq", value))
            if bid not in members:
                members[bid] = set(
                    session.execute(
                        select(FileBundleReport.report_id).where(FileBundleReport.bundle_id == bid)
                    ).scalars()
                )
            fresh = sorted(reports - members[bid])
            members[bid].update(fresh)
            insert_rows(
                session,
                FileBundleReport.__table__,  # type: ignore[arg-type]
                ("bundle_id", "report_id"),
                [(bid, r) for r in fresh],
            )
            session.execute(
                update(FileBundle)
                .where(FileBundle.id == bid)
                .values(report_count=FileBundle.report_count + len(fresh))
            )
            self._unlink_many(session, "pdq", sorted(values))

    def _unlink_many(self, session: Session, kind: str, values: Sequence[str]) -> None:
        """Remove the links these values made and re-split the cases they held."""
        rows = self._links_made_by(session, kind, values)
        if not rows:
            return
        reports = sorted({r[1] for r in rows} | {r[2] for r in rows})
        case_ids: set[int] = set()
        for start in range(0, len(reports), CHUNK):
            case_ids.update(
                session.execute(
                    select(CaseReport.case_id).where(
                        CaseReport.report_id.in_(reports[start : start + CHUNK])
                    )
                ).scalars()
            )
        ids = [r[0] for r in rows]
        for start in range(0, len(ids), CHUNK):
            session.execute(delete(CaseLink).where(CaseLink.id.in_(ids[start : start + CHUNK])))
        resplit(session, sorted(case_ids))

    # ------------------------------------------------------------ linking

    def link(
        self,
        session: Session,
        new: Sequence[tuple[int, Sequence[Identifier]]],
        *,
        now: dt.datetime | None = None,
    ) -> LinkResult:
        """Put each new report (already stored, with its identifiers) into a case."""
        at = as_utc(now or utcnow())
        result = LinkResult()
        if not new:
            return result
        cfg = self.config
        if session.get_bind().dialect.name == "postgresql":
            # One linker at a time: the next one waits for this commit and then sees it
            # (SQLite serialises writers already: the batch's first insert locks).
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LINK_LOCK})
        batch_ids = {rid for rid, _ in new}
        viral = self._viral(session, new, result)
        pdqs = [
            (rid, i.value)
            for rid, idents in new
            for i in idents
            if i.kind == "pdq" and linkable(i) and ("pdq", i.value) not in viral
        ]
        near = self._near_pdq(session, pdqs, batch_ids, result) if pdqs else None
        apart = separations(session)
        uf = _UnionFind()
        for rid, _ in new:
            uf.add(("r", rid))
        candidates: list[tuple[tuple[str, int], tuple[str, int], NewLink]] = []

        # Exact identifiers: within the batch (chained in order) and against stored cases.
        # One pass over the batch's identifiers with `linkable` and `_key` written out:
        # a batch of 1,000 reports has some 11,000 of them.
        exact: dict[tuple[str, str | None, str], list[int]] = defaultdict(list)
        ips: dict[str, list[tuple[dt.datetime, int]]] = defaultdict(list)
        for rid, idents in new:
            for i in idents:
                kind = i.kind
                if i.role == "reporter":
                    continue
                if kind == "ip":
                    if i.possible_proxy or i.event_at is None:
                        continue
                    ips[i.value].append((i.event_at, rid))
                elif kind in FILE_KINDS:
                    if kind == "pdq" or (kind, i.value) in viral:
                        continue  # PDQ is searched above (`_near_pdq`)
                    lst = exact[(kind, None, i.value)]
                    if not lst or lst[-1] != rid:
                        lst.append(rid)
                else:
                    if kind == "device":
                        qualifier = i.device_type
                    elif kind in ("screen_name", "esp_id"):
                        qualifier = i.service
                    else:
                        qualifier = None
                    lst = exact[(kind, qualifier, i.value)]
                    if not lst or lst[-1] != rid:
                        lst.append(rid)
        by_kind: dict[str, set[str]] = defaultdict(set)
        for kind, _, value in exact:
            by_kind[kind].add(value)
        for kind, values in by_kind.items():
            rows = self._existing_exact(session, kind, values)
            for service, device_type, value, case_id, latest in rows:
                qualifier = device_type if kind == "device" else service
                rids = exact.get((kind, qualifier, value))
                if not rids:
                    continue
                first = rids[0]
                label = f"{qualifier}/{value}" if qualifier else value
                candidates.append(
                    (("r", first), ("c", case_id), NewLink(latest, first, kind, label))
                )
        for (kind, qualifier, value), rids in exact.items():
            label = f"{qualifier}/{value}" if qualifier else value
            for a, b in itertools.pairwise(rids):
                candidates.append((("r", a), ("r", b), NewLink(a, b, kind, label)))

        # IPs: only sightings within the window of each other.
        window = cfg.ip_window
        if ips:
            stored: dict[str, list[tuple[dt.datetime, int, int]]] = defaultdict(list)
            for value, rid, event_at, _proxy, case_id in self._existing_ips(session, ips):
                if rid in batch_ids or event_at is None:
                    continue
                stored[value].append((as_utc(event_at), rid, case_id))
            for value, sightings in ips.items():
                sightings.sort()
                for (ta, a), (tb, b) in itertools.pairwise(sightings):
                    if a != b and tb - ta <= window:
                        candidates.append((("r", a), ("r", b), NewLink(a, b, "ip", value)))
                for t, rid in sightings:
                    best: dict[int, tuple[dt.timedelta, int]] = {}
                    for ts, other, case_id in stored.get(value, ()):
                        gap = abs(ts - t)
                        if gap <= window and (case_id not in best or gap < best[case_id][0]):
                            best[case_id] = (gap, other)
                    for case_id, (_gap, other) in best.items():
                        candidates.append(
                            (("r", rid), ("c", case_id), NewLink(other, rid, "ip", value))
                        )

        # PDQ: within the threshold of a stored file or of another file in the batch.
        if near is not None:
            found, bhits, near_viral = near.found, near.batch_hits, near.viral
            stored_reports = sorted({r for hits in found for r, _ in hits})
            case_of_stored: dict[int, int] = {}
            for start in range(0, len(stored_reports), CHUNK):
                chunk = stored_reports[start : start + CHUNK]
                case_of_stored.update(select_in(session, _CASE_OF_SQL, chunk))
            for q, ((rid, value), hits) in enumerate(zip(pdqs, found, strict=True)):
                if q in near_viral:
                    continue
                per_case: dict[int, int] = {}
                for other, _v in hits:
                    c = case_of_stored.get(other)
                    if c is not None and other not in batch_ids:
                        per_case[c] = max(per_case.get(c, 0), other)
                for case_id, other in per_case.items():
                    candidates.append(
                        (("r", rid), ("c", case_id), NewLink(other, rid, "pdq", value))
                    )
            for q, r in zip(bhits.query.tolist(), bhits.row.tolist(), strict=True):
                a, b = pdqs[q][0], pdqs[r][0]
                if q < r and a != b and q not in near_viral and r not in near_viral:
                    candidates.append((("r", a), ("r", b), NewLink(a, b, "pdq", pdqs[q][1])))

        # Union, honouring analysts' splits.
        links: list[NewLink] = []
        seen_links: set[tuple[int, int, str, str]] = set()
        for na, nb, lk in candidates:
            uf.add(na)
            uf.add(nb)
            ok = uf.union(na, nb, apart)
            key = (min(lk.report_a, lk.report_b), max(lk.report_a, lk.report_b), lk.kind, lk.value)
            if key in seen_links:
                continue
            seen_links.add(key)
            links.append(lk if ok else NewLink(lk.report_a, lk.report_b, lk.kind, lk.value, True))

        # Components -> cases: the oldest existing case survives; otherwise a new case.
        components: dict[tuple[str, int], list[int]] = defaultdict(list)
        for rid, _ in new:
            components[uf.find(("r", rid))].append(rid)
        merges: dict[int, list[int]] = {}
        targets: dict[tuple[str, int], int] = {}
        need_new: list[tuple[str, int]] = []
        for root, _members in components.items():
            existing = sorted(uf.cases.get(root, set()))
            if existing:
                targets[root] = existing[0]
                if len(existing) > 1:
                    merges[existing[0]] = existing[1:]
            else:
                need_new.append(root)
        if need_new:
            created = session.execute(
                insert(Case).returning(Case.id, sort_by_parameter_order=True),
                [
                    {"created_at": at, "updated_at": at, "state": "open", "report_count": 0}
                    for _ in need_new
                ],
            ).scalars()
            for root, cid in zip(need_new, created, strict=True):
                targets[root] = cid
            result.new_cases = len(need_new)
        for target, others in merges.items():
            session.execute(
                update(CaseReport).where(CaseReport.case_id.in_(others)).values(case_id=target)
            )
            moved = session.execute(
                select(func.coalesce(func.sum(Case.report_count), 0)).where(Case.id.in_(others))
            ).scalar_one()
            session.execute(
                update(Case)
                .where(Case.id.in_(others))
                .values(state="merged", merged_into=target, report_count=0, updated_at=at)
            )
            session.execute(
                update(Case)
                .where(Case.id == target)
                .values(report_count=Case.report_count + int(moved), updated_at=at)
            )
            result.merged_cases += len(others)
        placed: list[tuple[int, int]] = []
        added: dict[int, int] = defaultdict(int)
        for root, members in components.items():
            cid = targets[root]
            added[cid] += len(members)
            for rid in members:
                placed.append((rid, cid))
                result.case_of[rid] = cid
        conn = session.connection()
        insert_rows(session, CaseReport.__table__, ("report_id", "case_id"), placed)  # type: ignore[arg-type]
        cases_t: Any = Case.__table__
        conn.execute(
            update(cases_t)
            .where(cases_t.c.id == bindparam("cid"))
            .values(report_count=cases_t.c.report_count + bindparam("n"), updated_at=at),
            [{"cid": cid, "n": n} for cid, n in added.items()],
        )
        insert_rows(
            session,
            CaseLink.__table__,  # type: ignore[arg-type]
            ("report_a", "report_b", "kind", "value", "created_at", "cut"),
            [(lk.report_a, lk.report_b, lk.kind, lk.value[:400], at, lk.cut) for lk in links],
        )
        result.links = links
        if pdqs:
            self.pdq.add(pdqs)
        session.flush()
        return result


def link(
    session: Session,
    new: Sequence[tuple[int, Sequence[Identifier]]],
    config: LinkConfig | None = None,
) -> LinkResult:
    """Link one batch with a fresh `Linker` (an intake run keeps one `Linker` instead)."""
    return Linker(config).link(session, new)


def resplit(session: Session, case_ids: Sequence[int], *, now: dt.datetime | None = None) -> None:
    """Recompute cases from their remaining (uncut) links: the component holding the
    case's first report keeps the case id, every other component becomes a new case."""
    at = as_utc(now or utcnow())
    for case_id in case_ids:
        members = sorted(
            session.execute(select(CaseReport.report_id).where(CaseReport.case_id == case_id))
            .scalars()
            .all()
        )
        if len(members) < 2:
            continue
        mset = set(members)
        uf = _UnionFind()
        for m in members:
            uf.add(("r", m))
        for start in range(0, len(members), CHUNK):
            chunk = members[start : start + CHUNK]
            for a, b in session.execute(
                select(CaseLink.report_a, CaseLink.report_b).where(
                    CaseLink.report_a.in_(chunk), CaseLink.cut.is_(False)
                )
            ):
                if b in mset:
                    uf.union(("r", a), ("r", b), set())
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for m in members:
            groups[uf.find(("r", m))].append(m)
        if len(groups) < 2:
            continue
        ordered = sorted(groups.values(), key=lambda g: g[0])
        for group in ordered[1:]:
            cid = session.execute(
                insert(Case)
                .values(created_at=at, updated_at=at, state="open", report_count=len(group))
                .returning(Case.id)
            ).scalar_one()
            for start in range(0, len(group), CHUNK):
                session.execute(
                    update(CaseReport)
                    .where(CaseReport.report_id.in_(group[start : start + CHUNK]))
                    .values(case_id=cid)
                )
        session.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(report_count=len(ordered[0]), updated_at=at)
        )
    session.flush()
