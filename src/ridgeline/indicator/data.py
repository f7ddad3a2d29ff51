"""The merged victims as numpy arrays: what the indicator computes on.

Times are UTC seconds. Each victim keeps, per database, when that database first saw
it, so the indicator can ask "who knew what on the as-of date".
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ridgeline.store import Store
from ridgeline.victims.merge import merge_records, occasions
from ridgeline.victims.records import Record

NONE = -1
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class VictimTable:
    """One row per merged victim; `db_first[d, i]` is -1 where database d lacks victim i."""

    databases: tuple[str, ...]
    db_first: np.ndarray
    identified: np.ndarray  # earliest identification, -1 if none
    traded_since: np.ndarray  # fifth distinct occasion, -1 if fewer
    age_band: np.ndarray  # str arrays
    gender: np.ndarray
    region: np.ndarray

    def __len__(self) -> int:
        return int(self.identified.shape[0])


def _seconds(values: Sequence[Any]) -> np.ndarray:
    """UTC seconds of times from the driver, None = -1: integer microseconds (`UtcMicros`,
    the registry's times since migration 0023), ISO strings (SQLite) or datetimes."""
    out = np.full(len(values), NONE, dtype=np.int64)
    present = [i for i, v in enumerate(values) if v is not None]
    if not present:
        return out
    sample = values[present[0]]
    if isinstance(sample, int):
        micros = np.array([values[i] for i in present], dtype=np.int64)
        out[present] = np.floor_divide(micros, 1_000_000)
    elif isinstance(sample, str):
        arr = np.array([values[i] for i in present], dtype="datetime64[s]")
        out[present] = arr.astype(np.int64)
    else:
        out[present] = [
            int((v if v.tzinfo else v.replace(tzinfo=dt.UTC)).timestamp())
            for v in (values[i] for i in present)
        ]
    return out


def _columns(store: Store, sql: str, width: int) -> list[list[Any]]:
    """A query's result column by column, read with the driver's cursor in chunks (a
    million rows as Row objects would be gigabytes and seconds)."""
    cols: list[list[Any]] = [[] for _ in range(width)]
    with store.engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute(sql)
        while rows := cursor.fetchmany(200_000):
            for k, col in enumerate(zip(*rows, strict=True)):
                cols[k].extend(col)
    return cols


def load_table(store: Store) -> VictimTable:
    """Read the merged victims (after `ridgeline victims import`) from the store: the
    columns the last merge wrote (one blob, `victim_columns`), with the traded updates
    of later matches over them; a store merged before those existed is read row by row."""
    with store.engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute("SELECT data FROM victim_columns WHERE name = 'merged'")
        row = cursor.fetchone()
        if row is not None:
            cursor.execute("SELECT merged_id, traded_since FROM victim_traded_updates")
            updates = cursor.fetchall()
    if row is None:
        return _load_rows(store)
    with np.load(io.BytesIO(bytes(row[0])), allow_pickle=False) as z:
        traded = z["traded_since"].copy()
        for merged_id, since in updates:
            if 0 < merged_id <= len(traded):
                traded[merged_id - 1] = since

        def attr(name: str) -> np.ndarray:
            names = np.array([*z[f"{name}_names"].tolist(), "unknown"], dtype=object)
            out: np.ndarray = names[z[name]]  # code -1: the "unknown" at the end
            return out

        return VictimTable(
            databases=tuple(str(d) for d in z["databases"].tolist()),
            db_first=z["db_first"],
            identified=z["identified"],
            traded_since=traded,
            age_band=attr("age_band"),
            gender=attr("gender"),
            region=attr("region"),
        )


def _load_rows(store: Store) -> VictimTable:
    """`load_table` from the merged victims' rows and the records' first-seen times."""
    mid, ident, traded, age, gender, region = _columns(
        store,
        "SELECT id, identified_at, traded_since, age_band, gender, region "
        "FROM merged_victims ORDER BY id",
        6,
    )
    rec_mid, rec_db, rec_first = _columns(
        store,
        "SELECT merged_id, database, first_seen FROM victim_records WHERE merged_id IS NOT NULL",
        3,
    )
    n = len(mid)
    ids = np.array(mid, dtype=np.int64)
    pos = np.zeros(int(ids.max()) + 1 if n else 1, dtype=np.int64)
    pos[ids] = np.arange(n)
    names = tuple(sorted(set(rec_db)))
    which = {d: k for k, d in enumerate(names)}
    db_first = np.full((len(names), n), NONE, dtype=np.int64)
    if rec_mid:
        rows = pos[np.array(rec_mid, dtype=np.int64)]
        cols = np.array([which[d] for d in rec_db], dtype=np.int64)
        firsts = _seconds(rec_first)
        # two records of one database for one victim: keep the earliest
        order = np.argsort(-firsts, kind="stable")
        db_first[cols[order], rows[order]] = firsts[order]
    return VictimTable(
        databases=names,
        db_first=db_first,
        identified=_seconds(ident),
        traded_since=_seconds(traded),
        age_band=np.array(age, dtype=object),
        gender=np.array(gender, dtype=object),
        region=np.array(region, dtype=object),
    )


def table_from_records(records: Sequence[Record]) -> VictimTable:
    """The same table straight from parsed records (same merge rules, no database)."""
    dbs = [r.database for r in records]
    keys = {r.key: i for i, r in enumerate(records)}
    hashes = ((i, s, v) for i, r in enumerate(records) for s, v in r.hashes)
    links = ((i, d, v) for i, r in enumerate(records) for d, v in r.same_as)
    result = merge_records(dbs, keys, hashes, links)
    comp = result.component
    n = result.count

    def sec(t: dt.datetime) -> int:
        return int((t - EPOCH).total_seconds())

    first = np.array([sec(r.first_seen) for r in records], dtype=np.int64)
    rec_of_time = np.concatenate(
        (
            np.arange(len(records)),
            np.repeat(np.arange(len(records)), [len(r.sightings) for r in records]),
        )
    ).astype(np.int64)
    times = np.concatenate(
        (first, np.array([sec(t) for r in records for t in r.sightings], dtype=np.int64))
    )
    _, fifth = occasions(comp, rec_of_time, times, n)
    names = tuple(sorted(set(dbs)))
    which = {d: k for k, d in enumerate(names)}
    db_first = np.full((len(names), n), NONE, dtype=np.int64)
    identified = np.full(n, NONE, dtype=np.int64)
    attrs = {a: np.full(n, "unknown", dtype=object) for a in ("age_band", "gender", "region")}
    for i in np.argsort(first, kind="stable").tolist():
        r, g = records[i], int(comp[i])
        d = which[r.database]
        if db_first[d, g] == NONE:
            db_first[d, g] = first[i]
        if r.identified_at is not None:
            t = sec(r.identified_at)
            if identified[g] == NONE or t < identified[g]:
                identified[g] = t
        for a, arr in attrs.items():
            value = getattr(r, a)
            if arr[g] == "unknown" and value != "unknown":
                arr[g] = value
    return VictimTable(
        names, db_first, identified, fifth, attrs["age_band"], attrs["gender"], attrs["region"]
    )
