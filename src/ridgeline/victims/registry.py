"""The registry's library API: import and export `victims.jsonl`, merge, link, sight.

Imports and the merge are in `victims.bulk` (one transaction, bulk rows, packed
sightings; re-exported here); this module reads the registry back and records what
matches and reports add: series links and sightings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, delete, insert, or_, select, update

from ridgeline.errors import BadInput, NotFound
from ridgeline.store import Store
from ridgeline.victims.bulk import (
    EPOCH,
    ImportResult,
    _executemany,
    _utc,
    from_seconds,
    import_files,
    import_records,
    rebuild,
    to_seconds,
)
from ridgeline.victims.feed import CHUNK
from ridgeline.victims.models import (
    MergedVictim,
    Series,
    SeriesLink,
    Sighting,
    SightingPack,
    TradedUpdate,
    VictimHash,
    VictimLink,
    VictimMerge,
    VictimRecord,
    VictimSeries,
)
from ridgeline.victims.records import Record

__all__ = [
    "EPOCH",
    "ImportResult",
    "from_seconds",
    "import_files",
    "import_records",
    "rebuild",
    "to_seconds",
]


@dataclass(frozen=True)
class MergeReason:
    """One line of `ridgeline victims merges`."""

    victim: int
    a: str
    b: str
    reason: str
    detail: str


def merges(store: Store) -> list[MergeReason]:
    """What was merged and why: one line per join (a spanning tree of each victim)."""
    with store.session() as s:
        a = VictimRecord.__table__.alias("a")
        b = VictimRecord.__table__.alias("b")
        rows = s.execute(
            select(
                VictimMerge.merged_id,
                a.c.database,
                a.c.victim_key,
                b.c.database,
                b.c.victim_key,
                VictimMerge.reason,
                VictimMerge.detail,
            )
            .join(a, a.c.id == VictimMerge.record_a)
            .join(b, b.c.id == VictimMerge.record_b)
            .order_by(VictimMerge.merged_id, VictimMerge.id)
        ).all()
    return [MergeReason(r[0], f"{r[1]}/{r[2]}", f"{r[3]}/{r[4]}", r[5], r[6]) for r in rows]


def export_records(store: Store) -> Iterator[Record]:
    """Every record as imported (hashes, links, sightings, series), by database and id."""
    with store.engine.connect() as conn:
        recs = conn.execute(select(VictimRecord).order_by(VictimRecord.id)).all()
        for i in range(0, len(recs), CHUNK):
            part = recs[i : i + CHUNK]
            ids = [r.id for r in part]
            hashes: dict[int, list[tuple[str, str]]] = {}
            for rid, sig, val in conn.execute(
                select(VictimHash.record_id, VictimHash.signal, VictimHash.value)
                .where(VictimHash.record_id.in_(ids))
                .order_by(VictimHash.id)
            ):
                hashes.setdefault(rid, []).append((sig, val))
            links: dict[int, list[tuple[str, str]]] = {}
            for rid, db, vid in conn.execute(
                select(VictimLink.record_id, VictimLink.database, VictimLink.victim_key)
                .where(VictimLink.record_id.in_(ids))
                .order_by(VictimLink.id)
            ):
                links.setdefault(rid, []).append((db, vid))
            sights: dict[int, list[dt.datetime]] = {}
            for rid, blob in conn.execute(
                select(SightingPack.record_id, SightingPack.times).where(
                    SightingPack.record_id.in_(ids)
                )
            ):
                sights[rid] = [from_seconds(t) for t in np.frombuffer(blob, dtype="<i8").tolist()]
            series: dict[int, list[str]] = {}
            for rid, key in conn.execute(
                select(VictimSeries.record_id, Series.series_key)
                .join(Series, Series.id == VictimSeries.series_id)
                .where(VictimSeries.record_id.in_(ids))
                .order_by(Series.series_key)
            ):
                series.setdefault(rid, []).append(key)
            for r in part:
                yield Record(
                    database=r.database,
                    victim_id=r.victim_key,
                    first_seen=_utc(r.first_seen),
                    identified_at=_utc(r.identified_at) if r.identified_at else None,
                    identifying_agency=r.identifying_agency,
                    age_band=r.age_band,
                    gender=r.gender,
                    region=r.region,
                    series=tuple(series.get(r.id, ())),
                    hashes=tuple(hashes.get(r.id, ())),
                    same_as=tuple(links.get(r.id, ())),
                    sightings=tuple(sights.get(r.id, ())),
                )


def _series(conn: Connection, database: str, series_key: str) -> int:
    sid = conn.execute(
        select(Series.id).where(Series.database == database, Series.series_key == series_key)
    ).scalar()
    if sid is None:
        raise NotFound(f"no series {series_key!r} in database {database!r}")
    return int(sid)


def link_series(
    store: Store,
    database: str,
    series_key: str,
    *,
    by: str,
    entry_id: int | None = None,
    report_draft_id: int | None = None,
    sha256: str | None = None,
) -> int:
    """Say that a list entry or a reported file shows this series; returns the link id."""
    if entry_id is None and report_draft_id is None and sha256 is None:
        raise BadInput("link a series to an entry, a report draft or a file's sha256")
    with store.engine.begin() as conn:
        sid = _series(conn, database, series_key)
        row = conn.execute(
            insert(SeriesLink).returning(SeriesLink.id),
            {
                "series_id": sid,
                "entry_id": entry_id,
                "report_draft_id": report_draft_id,
                "sha256": sha256,
                "linked_by": by,
                "created_at": dt.datetime.now(dt.UTC),
            },
        ).scalar_one()
    return int(row)


def add_sightings(store: Store, series_ids: Iterable[int], at: dt.datetime, source: str) -> int:
    """A match or report of a series is a sighting of each of its victims' records."""
    return add_sightings_many(store, [(sid, at, source) for sid in series_ids])


def add_sightings_many(store: Store, sightings: Iterable[tuple[int, dt.datetime, str]]) -> int:
    """Many `(series id, time, source)` sightings in one transaction (a buffered flush).

    Each becomes a sighting of every record of the series (the same record, time and
    source once); the merged victims' occasions and `traded_since` are brought up to
    date for the victims touched. Returns the sighting rows written.
    """
    return record_sightings(store, sightings)[0]


def record_sightings(
    store: Store, sightings: Iterable[tuple[int, dt.datetime, str]]
) -> tuple[int, int]:
    """`add_sightings_many`, also returning how many victims became actively traded."""
    wanted: dict[int, set[tuple[int, str]]] = {}
    for sid, at, source in sightings:
        wanted.setdefault(int(sid), set()).add((to_seconds(_utc(at)), source))
    if not wanted:
        return 0, 0
    ids = sorted(wanted)
    with store.engine.begin() as conn:
        pairs: list[tuple[int, int]] = []
        for i in range(0, len(ids), 5000):
            pairs += [
                (int(r), int(sid))
                for r, sid in conn.execute(
                    select(VictimSeries.record_id, VictimSeries.series_id).where(
                        VictimSeries.series_id.in_(ids[i : i + 5000])
                    )
                ).all()
            ]
        rows = sorted({(r, t, src) for r, sid in pairs for t, src in wanted[sid]})
        _executemany(
            conn,
            "INSERT INTO victim_sightings (record_id, seen_at, source) VALUES (?, ?, ?)",
            rows,
        )
        traded = _refresh_occasions(conn, sorted({r for r, _ in pairs}))
    return len(rows), traded


def _refresh_occasions(conn: Connection, record_ids: list[int]) -> int:
    """Recount the distinct occasions (and the fifth) of the merged victims of records;
    returns how many became actively traded."""
    if not record_ids:
        return 0
    became = 0
    merged: set[int] = set()
    for i in range(0, len(record_ids), 5000):
        merged.update(
            int(m or 0)
            for m in conn.execute(
                select(VictimRecord.merged_id).where(
                    VictimRecord.id.in_(record_ids[i : i + 5000]),
                    VictimRecord.merged_id.is_not(None),
                )
            ).scalars()
        )
    todo = sorted(merged)
    for i in range(0, len(todo), 2000):
        part = todo[i : i + 2000]
        times: dict[int, set[int]] = {m: set() for m in part}
        recs = conn.execute(
            select(VictimRecord.id, VictimRecord.merged_id, VictimRecord.first_seen).where(
                VictimRecord.merged_id.in_(part)
            )
        ).all()
        before = set(
            conn.execute(
                select(MergedVictim.id).where(
                    MergedVictim.id.in_(part), MergedVictim.traded_since.is_not(None)
                )
            ).scalars()
        )
        owner = {int(r): int(m or 0) for r, m, _ in recs}
        for r, _, first in recs:
            times[owner[int(r)]].add(to_seconds(_utc(first)))
        for r, t in conn.execute(
            select(Sighting.record_id, Sighting.seen_at).where(Sighting.record_id.in_(list(owner)))
        ).all():
            times[owner[int(r)]].add(int(t))
        for r, blob in conn.execute(
            select(SightingPack.record_id, SightingPack.times).where(
                SightingPack.record_id.in_(list(owner))
            )
        ).all():
            times[owner[int(r)]].update(np.frombuffer(blob, dtype="<i8").tolist())
        updates: list[dict[str, Any]] = []
        for m, ts in times.items():
            ordered = sorted(ts)
            fifth = from_seconds(ordered[4]) if len(ordered) >= 5 else None
            became += fifth is not None and m not in before
            updates.append({"mid": m, "n": len(ordered), "fifth": fifth})
        conn.execute(
            update(MergedVictim)
            .where(MergedVictim.id == bindparam("mid"))
            .values(occasions=bindparam("n"), traded_since=bindparam("fifth")),
            updates,
        )
        # the indicator's columns were written by the last merge: these go over them
        conn.execute(delete(TradedUpdate).where(TradedUpdate.merged_id.in_(part)))
        conn.execute(
            insert(TradedUpdate),
            [
                {
                    "merged_id": u["mid"],
                    "traded_since": to_seconds(u["fifth"]) if u["fifth"] else -1,
                }
                for u in updates
            ],
        )
    return became


@dataclass(frozen=True)
class SeriesStatus:
    """What a match of a series says: identified (when, by whom) or possibly ongoing abuse."""

    database: str
    series: str
    victims: int
    #: every victim of the series identified (the latest identification is given)
    identified: bool
    identified_at: dt.datetime | None
    identifying_agency: str | None
    #: at least one victim seen on five or more occasions
    actively_traded: bool
    #: the registry's id of the series (what a sighting of it is recorded against)
    series_id: int = 0

    @property
    def text(self) -> str:
        """What a match says: identified (when, by whom) or possible ongoing abuse."""
        traded = "; actively traded" if self.actively_traded else ""
        if self.identified and self.identified_at is None:  # a partner's flag only
            return f"series {self.series}, victim identified (per {self.database}){traded}"
        if self.identified and self.identified_at is not None:
            day = self.identified_at.date().isoformat()
            return (
                f"series {self.series}, victim identified on {day} by "
                f"{self.identifying_agency or 'unknown agency'}{traded}"
            )
        return f"series {self.series}, victim not identified: possible ongoing abuse{traded}"


def series_status(
    store: Store, *, entry_ids: Iterable[int] = (), sha256s: Iterable[str] = ()
) -> dict[int | str, list[SeriesStatus]]:
    """Series and identification status of many entries / files in one batched query.

    Keys are the entry ids and sha256 values that link to at least one series; a
    matcher calls this once per lookup, not once per match.
    """
    entries, files = sorted(set(entry_ids)), sorted(set(sha256s))
    if not entries and not files:
        return {}
    cond = []
    if entries:
        cond.append(SeriesLink.entry_id.in_(entries))
    if files:
        cond.append(SeriesLink.sha256.in_(files))
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                SeriesLink.entry_id,
                SeriesLink.sha256,
                Series.id,
                Series.database,
                Series.series_key,
                MergedVictim.id,
                MergedVictim.identified_at,
                MergedVictim.identifying_agency,
                MergedVictim.traded_since,
            )
            .join(Series, Series.id == SeriesLink.series_id)
            .join(VictimSeries, VictimSeries.series_id == Series.id, isouter=True)
            .join(VictimRecord, VictimRecord.id == VictimSeries.record_id, isouter=True)
            .join(MergedVictim, MergedVictim.id == VictimRecord.merged_id, isouter=True)
            .where(or_(*cond))
        ).all()
    grouped: dict[tuple[int | str, int], list[Any]] = {}
    names: dict[int, tuple[str, str]] = {}
    for entry_id, sha, sid, db, key, vid, ident, agency, traded in rows:
        names[sid] = (db, key)
        for owner in (entry_id, sha):
            if owner is not None and (owner in entries or owner in files):
                grouped.setdefault((owner, sid), []).append((vid, ident, agency, traded))
    out: dict[int | str, list[SeriesStatus]] = {}
    for (owner, sid), victims in sorted(grouped.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        distinct = {v[0]: v for v in victims if v[0] is not None}
        idents = [v for v in distinct.values() if v[1] is not None]
        all_ident = bool(distinct) and len(idents) == len(distinct)
        latest = max(idents, key=lambda v: _utc(v[1])) if all_ident else None
        out.setdefault(owner, []).append(
            SeriesStatus(
                database=names[sid][0],
                series=names[sid][1],
                victims=len(distinct),
                identified=all_ident,
                identified_at=_utc(latest[1]) if latest else None,
                identifying_agency=latest[2] if latest else None,
                actively_traded=any(v[3] is not None for v in distinct.values()),
                series_id=sid,
            )
        )
    return out


def entry_series_status(store: Store, entry_ids: Iterable[int]) -> dict[int, list[SeriesStatus]]:
    """Status of entries that carry a partner's series (VICS `Series`/`VictimIdentified`,
    kept on the entry by the exchange) but that no analyst has linked yet.

    An entry whose series id names a series in the registry is linked to it now (once,
    `linked_by="list entry"`) and answers from the registry; one the registry does not
    know answers from the partner's flag alone (no date, no agency, no sighting).
    """
    from ridgeline.lists.models import Entry, HashList

    wanted = sorted(set(entry_ids))
    if not wanted:
        return {}
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(Entry.id, Entry.series, Entry.victim_identified, HashList.name)
            .join(HashList, HashList.id == Entry.list_id)
            .where(Entry.id.in_(wanted), Entry.series.is_not(None))
            .where(
                ~Entry.id.in_(select(SeriesLink.entry_id).where(SeriesLink.entry_id.in_(wanted)))
            )
        ).all()
        if not rows:
            return {}
        known: dict[str, list[int]] = {}
        for sid, key in conn.execute(
            select(Series.id, Series.series_key).where(
                Series.series_key.in_(sorted({str(r[1]) for r in rows}))
            )
        ).all():
            known.setdefault(key, []).append(int(sid))
    out: dict[int, list[SeriesStatus]] = {}
    linked = [(int(r[0]), known[str(r[1])]) for r in rows if str(r[1]) in known]
    if linked:
        with store.engine.begin() as conn:
            now = dt.datetime.now(dt.UTC)
            conn.execute(
                insert(SeriesLink),
                [
                    {
                        "series_id": sid,
                        "entry_id": eid,
                        "linked_by": "list entry",
                        "created_at": now,
                    }
                    for eid, sids in linked
                    for sid in sids
                ],
            )
        out.update(
            {
                int(k): v
                for k, v in series_status(store, entry_ids=[e for e, _ in linked]).items()
                if isinstance(k, int)
            }
        )
    for eid, series_key, flag, list_name in rows:
        if str(series_key) in known:
            continue
        out[int(eid)] = [
            SeriesStatus(
                database=f"list {list_name}",
                series=str(series_key),
                victims=0,
                identified=bool(flag),
                identified_at=None,
                identifying_agency=None,
                actively_traded=False,
            )
        ]
    return out
