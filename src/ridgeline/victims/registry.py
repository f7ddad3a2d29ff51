"""The registry's library API: import and export `victims.jsonl`, merge, link, sight.

Imports write in bulk (driver-level executemany in chunks: there can be ten million
sightings) inside one transaction, then rebuild the merged victims from every record in
the store, so a second database's file merges with the first's.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, text, update

from ridgeline.errors import BadInput, NotFound
from ridgeline.store import Store
from ridgeline.store.models import lookup_key
from ridgeline.victims.merge import merge_records, occasions
from ridgeline.victims.models import (
    MergedVictim,
    Series,
    SeriesLink,
    Sighting,
    VictimHash,
    VictimLink,
    VictimMerge,
    VictimRecord,
    VictimSeries,
)
from ridgeline.victims.records import LineError, Record, parse_lines

CHUNK = 20_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_seconds(value: dt.datetime) -> int:
    """UTC seconds since the epoch (how sighting times are stored)."""
    return int((value - EPOCH).total_seconds())


def from_seconds(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=int(value))


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: records written (new or replaced), bad lines, victims after."""

    records: int
    replaced: int
    errors: tuple[LineError, ...]
    victims: int
    merges: int


def _executemany(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        sql = sql.replace("?", "%s")
    conn.exec_driver_sql(sql, list(rows))


def _series_ids(conn: Connection, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of the wanted series, creating those not there yet."""
    ids: dict[tuple[str, str], int] = {}
    by_db: dict[str, list[str]] = {}
    for db, key in wanted:
        by_db.setdefault(db, []).append(key)

    def load() -> None:
        for db, keys in by_db.items():
            for i in range(0, len(keys), 5000):
                for key, sid in conn.execute(
                    select(Series.series_key, Series.id).where(
                        Series.database == db, Series.series_key.in_(keys[i : i + 5000])
                    )
                ).all():
                    ids[(db, key)] = sid

    load()
    missing = sorted(wanted - set(ids))
    if missing:
        now = dt.datetime.now(dt.UTC)
        conn.execute(
            insert(Series),
            [{"database": d, "series_key": k, "created_at": now} for d, k in missing],
        )
        load()
    return ids


def _write_chunk(conn: Connection, records: list[Record], next_id: int) -> tuple[int, int]:
    """Insert one chunk (replacing records already there); returns (next id, replaced)."""
    keys = [r.key for r in records]
    existing: list[int] = []
    by_db: dict[str, list[str]] = {}
    for db, vid in keys:
        by_db.setdefault(db, []).append(vid)
    for db, vids in by_db.items():
        existing += (
            conn.execute(
                select(VictimRecord.id).where(
                    VictimRecord.database == db, VictimRecord.victim_key.in_(vids)
                )
            )
            .scalars()
            .all()
        )
    if existing:
        for table in (VictimHash, VictimLink, Sighting, VictimSeries):
            conn.execute(delete(table).where(table.record_id.in_(existing)))
        conn.execute(
            delete(VictimMerge).where(
                VictimMerge.record_a.in_(existing) | VictimMerge.record_b.in_(existing)
            )
        )
        conn.execute(delete(VictimRecord).where(VictimRecord.id.in_(existing)))
    series = _series_ids(conn, {(r.database, s) for r in records for s in r.series})
    now = dt.datetime.now(dt.UTC)
    rec_rows, hash_rows, link_rows, sight_rows, series_rows = [], [], [], [], []
    for r in records:
        rid = next_id
        next_id += 1
        rec_rows.append(
            {
                "id": rid,
                "database": r.database,
                "victim_key": r.victim_id,
                "status": "identified" if r.identified_at else "unidentified",
                "first_seen": r.first_seen,
                "first_seen_source": r.database,
                "identified_at": r.identified_at,
                "identifying_agency": r.identifying_agency,
                "age_band": r.age_band,
                "gender": r.gender,
                "region": r.region,
                "merged_id": None,
                "imported_at": now,
            }
        )
        hash_rows += [(rid, s, lookup_key(v)) for s, v in r.hashes]
        link_rows += [(rid, d, v) for d, v in r.same_as]
        sight_rows += [(rid, to_seconds(t), r.database) for t in r.sightings]
        series_rows += [(rid, series[(r.database, s)]) for s in r.series]
    conn.execute(insert(VictimRecord), rec_rows)
    _executemany(
        conn, "INSERT INTO victim_hashes (record_id, signal, value) VALUES (?, ?, ?)", hash_rows
    )
    _executemany(
        conn,
        "INSERT INTO victim_links (record_id, database, victim_key) VALUES (?, ?, ?)",
        link_rows,
    )
    _executemany(
        conn,
        "INSERT INTO victim_sightings (record_id, seen_at, source) VALUES (?, ?, ?)",
        sight_rows,
    )
    _executemany(
        conn, "INSERT INTO victim_record_series (record_id, series_id) VALUES (?, ?)", series_rows
    )
    return next_id, len(existing)


def import_records(
    store: Store, sources: Iterable[tuple[str, Iterable[str]]], *, merge: bool = True
) -> ImportResult:
    """Import `(name, lines)` sources: every good record, each bad line as an error.

    All in one transaction: a failure midway (the database, not a bad line) leaves the
    store as it was. Bad lines are reported and skipped; a record is never half-written.
    """
    errors: list[LineError] = []
    written = replaced = 0
    with store.engine.begin() as conn:
        next_id = (conn.execute(select(func.max(VictimRecord.id))).scalar() or 0) + 1
        for name, lines in sources:
            chunk: list[Record] = []
            for item in parse_lines(lines, name):
                if isinstance(item, LineError):
                    errors.append(item)
                    continue
                chunk.append(item)
                if len(chunk) >= CHUNK:
                    next_id, rep = _write_chunk(conn, chunk, next_id)
                    written, replaced = written + len(chunk), replaced + rep
                    chunk = []
            if chunk:
                next_id, rep = _write_chunk(conn, chunk, next_id)
                written, replaced = written + len(chunk), replaced + rep
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('victim_records', 'id'), "
                    "GREATEST((SELECT MAX(id) FROM victim_records), 1))"
                )
            )
        victims = joins = 0
        if merge:
            victims, joins = _rebuild(conn)
    return ImportResult(written, replaced, tuple(errors), victims, joins)


def import_files(store: Store, paths: Sequence[Path]) -> ImportResult:
    """`ridgeline victims import FILE...` (`-` is standard input)."""
    import sys

    def sources() -> Iterator[tuple[str, Iterable[str]]]:
        for path in paths:
            if str(path) == "-":
                yield ("<stdin>", sys.stdin)
                continue
            try:
                handle = path.open(encoding="utf-8", errors="strict")
            except OSError as exc:
                raise BadInput(f"cannot read {path}: {exc.strerror}") from None
            with handle:
                try:
                    yield (str(path), handle)
                except UnicodeDecodeError:
                    raise BadInput(f"{path}: not UTF-8") from None

    return import_records(store, sources())


def _fetch_arrays(conn: Connection, sql: str, width: int) -> np.ndarray:
    """An integer query's rows as an (n, width) int64 array, fetched in chunks."""
    parts = []
    cursor = conn.connection.cursor()  # the driver's own: no Row objects for 10M rows
    cursor.execute(sql)
    while True:
        rows = cursor.fetchmany(500_000)
        if not rows:
            break
        flat = itertools.chain.from_iterable(rows)
        parts.append(np.fromiter(flat, dtype=np.int64, count=len(rows) * width).reshape(-1, width))
    return np.concatenate(parts) if parts else np.empty((0, width), dtype=np.int64)


def _rebuild(conn: Connection) -> tuple[int, int]:
    """Recompute the merged victims and the merge report from every record."""
    rows = conn.execute(
        select(
            VictimRecord.id,
            VictimRecord.database,
            VictimRecord.victim_key,
            VictimRecord.first_seen,
            VictimRecord.identified_at,
            VictimRecord.identifying_agency,
            VictimRecord.age_band,
            VictimRecord.gender,
            VictimRecord.region,
        ).order_by(VictimRecord.id)
    ).all()
    index = {row[0]: i for i, row in enumerate(rows)}
    databases = [row[1] for row in rows]
    keys = {(row[1], row[2]): i for i, row in enumerate(rows)}
    hashes = (
        (index[rid], s, v)
        for rid, s, v in conn.execute(
            select(VictimHash.record_id, VictimHash.signal, VictimHash.value)
        )
    )
    links = (
        (index[rid], d, v)
        for rid, d, v in conn.execute(
            select(VictimLink.record_id, VictimLink.database, VictimLink.victim_key)
        )
    )
    result = merge_records(databases, keys, hashes, links)
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    first = np.array([to_seconds(_utc(row[3])) for row in rows], dtype=np.int64)
    pos = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=np.int64)
    pos[ids] = np.arange(len(ids))
    sight = _fetch_arrays(conn, "SELECT record_id, seen_at FROM victim_sightings", 2)
    rec_of_time = np.concatenate((np.arange(len(ids)), pos[sight[:, 0]]))
    times = np.concatenate((first, sight[:, 1]))
    del sight
    counts, fifth = occasions(result.component, rec_of_time, times, result.count)
    conn.execute(delete(VictimMerge))
    conn.execute(delete(MergedVictim))
    order = np.lexsort((first, result.component))
    comp_sorted = result.component[order]
    bounds = np.flatnonzero(np.diff(comp_sorted)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(order)]))
    merged_rows: list[dict[str, Any]] = []
    record_updates: list[tuple[int, int]] = []
    for g, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        members = [rows[i] for i in order[s:e].tolist()]
        head = members[0]
        identified = [m for m in members if m[4] is not None]
        ident = min(identified, key=lambda m: _utc(m[4])) if identified else None

        def known(col: int, members: list[Any] = members) -> str:
            return next((m[col] for m in members if m[col] != "unknown"), "unknown")

        gid = g + 1
        merged_rows.append(
            {
                "id": gid,
                "records": len(members),
                "databases": ",".join(sorted({m[1] for m in members})),
                "first_seen": _utc(head[3]),
                "first_seen_source": head[1],
                "identified_at": _utc(ident[4]) if ident else None,
                "identifying_agency": ident[5] if ident else None,
                "age_band": known(6),
                "gender": known(7),
                "region": known(8),
                "occasions": int(counts[comp_sorted[s]]),
                "traded_since": from_seconds(int(fifth[comp_sorted[s]]))
                if fifth[comp_sorted[s]] >= 0
                else None,
            }
        )
        record_updates += [(gid, m[0]) for m in members]
        if len(merged_rows) >= CHUNK:
            conn.execute(insert(MergedVictim), merged_rows)
            merged_rows = []
    if merged_rows:
        conn.execute(insert(MergedVictim), merged_rows)
    # component numbers follow sorted order: map component -> merged id
    gid_of_component = np.empty(result.count, dtype=np.int64)
    gid_of_component[comp_sorted[starts]] = np.arange(1, len(starts) + 1)
    for i in range(0, len(record_updates), 200_000):
        _executemany(
            conn,
            "UPDATE victim_records SET merged_id = ? WHERE id = ?",
            record_updates[i : i + 200_000],
        )
    join_rows = [
        (
            int(gid_of_component[result.component[j.a]]),
            int(ids[j.a]),
            int(ids[j.b]),
            j.reason,
            j.detail,
        )
        for j in result.joins
    ]
    for i in range(0, len(join_rows), 200_000):
        _executemany(
            conn,
            "INSERT INTO victim_merges (merged_id, record_a, record_b, reason, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            join_rows[i : i + 200_000],
        )
    return result.count, len(result.joins)


def rebuild(store: Store) -> tuple[int, int]:
    """Merge again from every record: (victims, joins)."""
    with store.engine.begin() as conn:
        return _rebuild(conn)


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
            for rid, t in conn.execute(
                select(Sighting.record_id, Sighting.seen_at)
                .where(Sighting.record_id.in_(ids), Sighting.source == VictimRecord.database)
                .join(VictimRecord, VictimRecord.id == Sighting.record_id)
                .order_by(Sighting.id)
            ):
                sights.setdefault(rid, []).append(from_seconds(t))
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
        updates = []
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
