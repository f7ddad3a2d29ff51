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

from ridgeline import crashpoint
from ridgeline.errors import BadInput, NotFound
from ridgeline.store import Store
from ridgeline.store.models import lookup_key
from ridgeline.victims.merge import merge_components, occasions
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
from ridgeline.victims.records import LineError, Record, parse_rows

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


def _dt_param(conn: Connection) -> Any:
    """How a UTC datetime is bound by the driver directly: SQLAlchemy's SQLite text form
    (`YYYY-MM-DD HH:MM:SS.ffffff`, what the ORM reads back), the datetime elsewhere."""
    if conn.dialect.name == "sqlite":

        def text_form(value: dt.datetime | None) -> Any:
            if value is None:
                return None
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value.isoformat(" ", "microseconds")

        return text_form
    return lambda value: value


def _dt_column(conn: Connection, micros: np.ndarray) -> list[Any]:
    """UTC microseconds (NONE = null) as driver values, vectorised on SQLite."""
    present = micros != NONE_US
    if conn.dialect.name == "sqlite":
        text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
        out: list[Any] = [f"{t[:10]} {t[11:]}" for t in text.tolist()]
    else:
        out = [
            EPOCH + dt.timedelta(microseconds=m) if m != NONE_US else None for m in micros.tolist()
        ]
    if not present.all():
        for i in np.flatnonzero(~present).tolist():
            out[i] = None
    return out


NONE_US = np.iinfo(np.int64).max


@dataclass
class _Import:
    """What one import keeps between chunks: ids to hand out, keys already stored."""

    next_id: int
    next_series: int
    #: database -> victim_key -> record id, of records that existed or were written
    keys: dict[str, dict[str, int]]
    series: dict[tuple[str, str], int]
    first_id: int
    #: this import's sightings (record ids, UTC seconds), for the merge that follows
    sight_ids: list[np.ndarray]
    sight_times: list[np.ndarray]
    replaced_ids: set[int]


def _start(conn: Connection) -> _Import:
    next_id = (conn.execute(select(func.max(VictimRecord.id))).scalar() or 0) + 1
    next_series = (conn.execute(select(func.max(Series.id))).scalar() or 0) + 1
    keys: dict[str, dict[str, int]] = {}
    if next_id > 1:
        cur = conn.connection.cursor()
        cur.execute("SELECT database, victim_key, id FROM victim_records")
        for db, key, rid in cur.fetchall():
            keys.setdefault(db, {})[key] = rid
    series: dict[tuple[str, str], int] = {}
    if next_series > 1:
        cur = conn.connection.cursor()
        cur.execute("SELECT database, series_key, id FROM victim_series")
        series = {(db, key): sid for db, key, sid in cur.fetchall()}
    return _Import(next_id, next_series, keys, series, next_id, [], [], set())


def _write_chunk(conn: Connection, rows: list[tuple[Record, list[int]]], state: _Import) -> int:
    """Insert one chunk (replacing records already there); returns how many it replaced."""
    existing: list[int] = []
    for r, _ in rows:
        known = state.keys.get(r.database)
        if known is not None and r.victim_id in known:
            existing.append(known[r.victim_id])
    if existing:
        for i in range(0, len(existing), 5000):
            part = existing[i : i + 5000]
            for table in (VictimHash, VictimLink, Sighting, VictimSeries):
                conn.execute(delete(table).where(table.record_id.in_(part)))
            conn.execute(
                delete(VictimMerge).where(
                    VictimMerge.record_a.in_(part) | VictimMerge.record_b.in_(part)
                )
            )
            conn.execute(delete(VictimRecord).where(VictimRecord.id.in_(part)))
        state.replaced_ids.update(existing)
    binds = _dt_param(conn)
    now = binds(dt.datetime.now(dt.UTC))
    new_series = []
    for r, _ in rows:
        for key in r.series:
            if (r.database, key) not in state.series:
                state.series[(r.database, key)] = state.next_series
                new_series.append((state.next_series, r.database, key, now))
                state.next_series += 1
    _executemany(
        conn,
        "INSERT INTO victim_series (id, database, series_key, created_at) VALUES (?, ?, ?, ?)",
        new_series,
    )
    rec_rows, hash_rows, link_rows, sight_rows, series_rows = [], [], [], [], []
    ids = np.empty(sum(len(s) for _, s in rows), dtype=np.int64)
    times = np.empty(len(ids), dtype=np.int64)
    at = 0
    for r, sightings in rows:
        rid = state.next_id
        state.next_id += 1
        state.keys.setdefault(r.database, {})[r.victim_id] = rid
        rec_rows.append(
            (
                rid,
                r.database,
                r.victim_id,
                "identified" if r.identified_at else "unidentified",
                binds(r.first_seen),
                r.database,
                binds(r.identified_at),
                r.identifying_agency,
                r.age_band,
                r.gender,
                r.region,
                now,
            )
        )
        if r.hashes:
            hash_rows += [(rid, s, lookup_key(v)) for s, v in r.hashes]
        if r.same_as:
            link_rows += [(rid, d, v) for d, v in r.same_as]
        if sightings:
            sight_rows += [(rid, t, r.database) for t in sightings]
            ids[at : at + len(sightings)] = rid
            times[at : at + len(sightings)] = sightings
            at += len(sightings)
        series_rows += [(rid, state.series[(r.database, s)]) for s in r.series]
    state.sight_ids.append(ids)
    state.sight_times.append(times)
    _executemany(
        conn,
        "INSERT INTO victim_records (id, database, victim_key, status, first_seen, "
        "first_seen_source, identified_at, identifying_agency, age_band, gender, region, "
        "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rec_rows,
    )
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
    return len(existing)


def import_records(
    store: Store, sources: Iterable[tuple[str, Iterable[str]]], *, merge: bool = True
) -> ImportResult:
    """Import `(name, lines)` sources: every good record, each bad line as an error.

    All in one transaction: a failure midway (the database, not a bad line) leaves the
    store as it was. Bad lines are reported and skipped; a record is never half-written.
    Rows go to the driver's executemany in chunks (no ORM objects); the merge that follows
    reuses this import's sightings from memory instead of reading them back.
    """
    errors: list[LineError] = []
    written = replaced = 0
    with store.engine.begin() as conn:
        state = _start(conn)
        for name, lines in sources:
            chunk: list[tuple[Record, list[int]]] = []
            for item in parse_rows(lines, name):
                if isinstance(item, LineError):
                    errors.append(item)
                    continue
                chunk.append(item)
                if len(chunk) >= CHUNK:
                    replaced += _write_chunk(conn, chunk, state)
                    written += len(chunk)
                    chunk = []
                    crashpoint.reached("victims.import.chunk")
            if chunk:
                replaced += _write_chunk(conn, chunk, state)
                written += len(chunk)
                crashpoint.reached("victims.import.chunk")
        if conn.dialect.name == "postgresql":
            for table in ("victim_records", "victim_series"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"GREATEST((SELECT MAX(id) FROM {table}), 1))"
                    )
                )
        victims = joins = 0
        if merge:
            ids = np.concatenate(state.sight_ids) if state.sight_ids else np.empty(0, np.int64)
            times = (
                np.concatenate(state.sight_times) if state.sight_times else np.empty(0, np.int64)
            )
            if state.replaced_ids:  # replaced within this import: their rows are gone
                keep = ~np.isin(ids, np.fromiter(state.replaced_ids, dtype=np.int64))
                ids, times = ids[keep], times[keep]
            state.sight_ids, state.sight_times = [], []
            victims, joins = _rebuild(conn, (state.first_id, ids, times))
        crashpoint.reached("victims.import.merged")
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


def _micros(values: list[Any]) -> np.ndarray:
    """Driver datetimes (SQLite text, else datetime objects) as UTC microseconds."""
    out = np.full(len(values), NONE_US, dtype=np.int64)
    present = [i for i, v in enumerate(values) if v is not None]
    if not present:
        return out
    if isinstance(values[present[0]], str):
        arr = np.array([values[i] for i in present], dtype="datetime64[us]")
        out[present] = arr.astype(np.int64)
    else:
        out[present] = [(_utc(values[i]) - EPOCH) // dt.timedelta(microseconds=1) for i in present]
    return out


@dataclass
class _Columns:
    """Every record, column by column (codes index into the name lists)."""

    ids: np.ndarray
    db: np.ndarray
    first: np.ndarray  # UTC microseconds
    ident: np.ndarray  # UTC microseconds, NONE_US if not identified
    agency: np.ndarray
    attrs: dict[str, np.ndarray]
    names: dict[str, list[str | None]]


def _columns(conn: Connection) -> _Columns:
    cursor = conn.connection.cursor()
    cursor.execute(
        "SELECT id, database, first_seen, identified_at, identifying_agency, age_band, "
        "gender, region FROM victim_records ORDER BY id"
    )
    names: dict[str, list[str | None]] = {
        c: [] for c in ("database", "agency", "age_band", "gender", "region")
    }
    codes: dict[str, dict[str | None, int]] = {c: {} for c in names}
    parts: dict[str, list[np.ndarray]] = {c: [] for c in (*names, "id", "first", "ident")}

    def code(col: str, values: Iterable[str | None]) -> np.ndarray:
        table, out = codes[col], []
        for v in values:
            c = table.get(v)
            if c is None:
                c = table[v] = len(table)
                names[col].append(v)
            out.append(c)
        return np.array(out, dtype=np.int32)

    while True:
        rows = cursor.fetchmany(200_000)
        if not rows:
            break
        cols = list(zip(*rows, strict=True))
        parts["id"].append(np.array(cols[0], dtype=np.int64))
        parts["database"].append(code("database", cols[1]))
        parts["first"].append(_micros(list(cols[2])))
        parts["ident"].append(_micros(list(cols[3])))
        parts["agency"].append(code("agency", cols[4]))
        for k, col in enumerate(("age_band", "gender", "region")):
            parts[col].append(code(col, cols[5 + k]))
        del rows, cols

    def cat(name: str, dtype: Any) -> np.ndarray:
        return np.concatenate(parts[name]) if parts[name] else np.empty(0, dtype=dtype)

    return _Columns(
        ids=cat("id", np.int64),
        db=cat("database", np.int32),
        first=cat("first", np.int64),
        ident=cat("ident", np.int64),
        agency=cat("agency", np.int32),
        attrs={c: cat(c, np.int32) for c in ("age_band", "gender", "region")},
        names=names,
    )


def _hash_groups(conn: Connection) -> Iterator[tuple[str, str, list[int]]]:
    """Hashes held by two or more records: (signal, value, record ids)."""
    agg = (
        "GROUP_CONCAT(record_id)"
        if conn.dialect.name == "sqlite"
        else "string_agg(record_id::text, ',')"
    )
    cursor = conn.connection.cursor()
    cursor.execute(
        f"SELECT signal, value, {agg} FROM victim_hashes GROUP BY signal, value "
        "HAVING COUNT(*) > 1 ORDER BY signal, value"
    )
    while True:
        rows = cursor.fetchmany(100_000)
        if not rows:
            break
        for signal, value, ids in rows:
            yield signal, value, sorted(int(x) for x in ids.split(","))


def _rebuild(
    conn: Connection, fresh: tuple[int, np.ndarray, np.ndarray] | None = None
) -> tuple[int, int]:
    """Recompute the merged victims and the merge report from every record.

    `fresh` is (first record id of this import, its sightings' record ids and times):
    those are not read back; older records' sightings (and match sightings) are.
    """
    cols = _columns(conn)
    n = len(cols.ids)
    ids = cols.ids
    pos = np.zeros(int(ids.max()) + 1 if n else 1, dtype=np.int64)
    pos[ids] = np.arange(n)
    db = cols.db
    groups = (
        (signal, value, pos[np.array(rids, dtype=np.int64)].tolist())
        for signal, value, rids in _hash_groups(conn)
    )
    cursor = conn.connection.cursor()
    cursor.execute(
        "SELECT l.record_id, r.id, l.database, l.victim_key FROM victim_links l "
        "JOIN victim_records r ON r.database = l.database AND r.victim_key = l.victim_key "
        "ORDER BY l.id"
    )
    links = [(int(pos[a]), int(pos[b]), d, v) for a, b, d, v in cursor.fetchall()]
    result = merge_components(db, groups, links)
    if fresh is None:
        sight = _fetch_arrays(conn, "SELECT record_id, seen_at FROM victim_sightings", 2)
        s_rec, s_time = sight[:, 0], sight[:, 1]
    else:
        first_id, new_ids, new_times = fresh
        old = _fetch_arrays(
            conn,
            f"SELECT record_id, seen_at FROM victim_sightings WHERE record_id < {first_id:d}",
            2,
        )
        s_rec = np.concatenate((old[:, 0], new_ids))
        s_time = np.concatenate((old[:, 1], new_times))
        del old
    first_s = np.floor_divide(cols.first, 1_000_000)
    rec_of_time = np.concatenate((np.arange(n), pos[s_rec]))
    times = np.concatenate((first_s, s_time))
    del s_rec, s_time
    counts, fifth = occasions(result.component, rec_of_time, times, result.count)
    del rec_of_time, times
    conn.execute(delete(VictimMerge))
    conn.execute(delete(MergedVictim))
    comp = result.component
    # members by victim, earliest first (ties by record id): the head is the first seen
    order = np.lexsort((cols.first, comp))
    comp_sorted = comp[order]
    starts = (
        np.flatnonzero(np.r_[True, comp_sorted[1:] != comp_sorted[:-1]])
        if n
        else np.empty(0, np.int64)
    )
    head = order[starts]
    records = np.diff(np.r_[starts, n])
    # the earliest identification (ties: the earlier first seen, then the lower id)
    by_ident = np.lexsort((cols.first, cols.ident, comp))
    ident_rec = by_ident[np.searchsorted(comp[by_ident], np.arange(result.count))]
    ident_us = cols.ident[ident_rec]
    # attributes: the first known value in first-seen order
    attr_codes: dict[str, np.ndarray] = {}
    for a, codes in cols.attrs.items():
        unknown = [i for i, v in enumerate(cols.names[a]) if v == "unknown"]
        known = ~np.isin(codes[order], unknown) if unknown else np.ones(n, dtype=bool)
        first_known = np.where(known, np.arange(n), n)
        firsts = np.minimum.reduceat(first_known, starts) if n else np.empty(0, np.int64)
        attr_codes[a] = np.where(firsts < n, codes[order[np.minimum(firsts, n - 1)]], -1)
    # the databases of each victim, as a bit mask
    names_db = [str(x) for x in cols.names["database"]]
    if len(names_db) <= 62:
        masks = (
            np.bitwise_or.reduceat(np.left_shift(1, db[order].astype(np.int64)), starts)
            if n
            else np.empty(0, np.int64)
        )
        label: dict[int, str] = {}
        dbs = []
        for m in masks.tolist():
            text_ = label.get(m)
            if text_ is None:
                text_ = label[m] = ",".join(
                    sorted(names_db[j] for j in range(len(names_db)) if m >> j & 1)
                )
            dbs.append(text_)
    else:
        dbs = [
            ",".join(sorted({names_db[int(d)] for d in db[order[s:e]]}))
            for s, e in zip(starts.tolist(), np.r_[starts[1:], n].tolist(), strict=True)
        ]
    gid = np.arange(1, result.count + 1)
    first_col = _dt_column(conn, cols.first[head])
    ident_col = _dt_column(conn, ident_us)
    traded_col = _dt_column(conn, np.where(fifth >= 0, fifth * 1_000_000, NONE_US))
    agency_names = cols.names["agency"]
    agency_col = [
        agency_names[a] if t != NONE_US else None
        for a, t in zip(cols.agency[ident_rec].tolist(), ident_us.tolist(), strict=True)
    ]
    attr_cols = {
        a: [cols.names[a][c] if c >= 0 else "unknown" for c in attr_codes[a].tolist()]
        for a in attr_codes
    }
    merged_rows = list(
        zip(
            gid.tolist(),
            records.tolist(),
            dbs,
            first_col,
            [names_db[d] for d in db[head].tolist()],
            ident_col,
            agency_col,
            attr_cols["age_band"],
            attr_cols["gender"],
            attr_cols["region"],
            counts.tolist(),
            traded_col,
            strict=True,
        )
    )
    del first_col, ident_col, traded_col, agency_col, attr_cols
    for i in range(0, len(merged_rows), 200_000):
        _executemany(
            conn,
            "INSERT INTO merged_victims (id, records, databases, first_seen, first_seen_source, "
            "identified_at, identifying_agency, age_band, gender, region, occasions, "
            "traded_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            merged_rows[i : i + 200_000],
        )
    del merged_rows
    # components are numbered by their lowest record: merged id = component + 1
    record_updates = list(zip((comp + 1).tolist(), ids.tolist(), strict=True))
    for i in range(0, len(record_updates), 200_000):
        _executemany(
            conn,
            "UPDATE victim_records SET merged_id = ? WHERE id = ?",
            record_updates[i : i + 200_000],
        )
    del record_updates
    join_rows = [
        (int(comp[j.a]) + 1, int(ids[j.a]), int(ids[j.b]), j.reason, j.detail) for j in result.joins
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
