"""Importing `victims.jsonl` at scale, and the merge: what `ridgeline victims import` runs.

One transaction per import: a kill -9 leaves nothing of it, and a rerun replaces records
by (database, victim_id), so nothing is duplicated. Lines are parsed in batches
(`records.parse_batches`: a batch's sightings are one array); rows go to the driver in
bulk (COPY on PostgreSQL, executemany on SQLite), no ORM objects; a record's own
sightings are one packed row (`SightingPack`), not a row each. The merge recomputes
every merged victim from compact columns (this import's kept in memory, older records'
read back), and writes them column by column (`VictimColumn`) for the indicator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from ridgeline import crashpoint
from ridgeline.errors import BadInput
from ridgeline.gcpause import gc_paused
from ridgeline.store import Store, bulk_page_cache, end_bulk_page_cache
from ridgeline.store.bulk import insert_values
from ridgeline.store.models import utc_micros
from ridgeline.victims.feed import Prepared, Spec, file_batches, prepared, utf8_lines
from ridgeline.victims.merge import components, near_pdq, occasions
from ridgeline.victims.records import LineError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NONE_US = np.iinfo(np.int64).max
#: the attributes kept as codes (index into `_Codes.names`)
_CODED = ("database", "agency", "age_band", "gender", "region")


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


def _bulk(conn: Connection, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
    """Insert plain tuples: COPY on PostgreSQL; on SQLite multi-row `INSERT ... VALUES`
    (`store.bulk.insert_values`: the same rows and rowids, about a third less CPU)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    insert_values(conn, table, columns.split(", "), rows)


class _Codes:
    """Small integer codes for repeated strings (databases, agencies, attributes)."""

    def __init__(self) -> None:
        self.names: dict[str, list[str | None]] = {c: [] for c in _CODED}
        self._index: dict[str, dict[str | None, int]] = {c: {} for c in _CODED}

    def code(self, col: str, values: Iterable[str | None]) -> np.ndarray:
        table, names = self._index[col], self.names[col]
        values = values if isinstance(values, list | tuple) else list(values)
        for v in dict.fromkeys(values):  # new values get codes in order of appearance
            if v not in table:
                table[v] = len(names)
                names.append(v)
        return np.fromiter(map(table.__getitem__, values), dtype=np.int32, count=len(values))


@dataclass
class _Columns:
    """Records column by column (ids ascending; codes index into `_Codes.names`)."""

    ids: np.ndarray
    db: np.ndarray
    first: np.ndarray  # UTC microseconds
    ident: np.ndarray  # UTC microseconds, NONE_US if not identified
    agency: np.ndarray
    attrs: dict[str, np.ndarray]

    @staticmethod
    def concat(parts: Sequence[_Columns]) -> _Columns:
        def cat(get: Any, dtype: Any) -> np.ndarray:
            arrays = [get(p) for p in parts]
            return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)

        return _Columns(
            ids=cat(lambda p: p.ids, np.int64),
            db=cat(lambda p: p.db, np.int32),
            first=cat(lambda p: p.first, np.int64),
            ident=cat(lambda p: p.ident, np.int64),
            agency=cat(lambda p: p.agency, np.int32),
            attrs={
                a: cat(lambda p, a=a: p.attrs[a], np.int32)
                for a in ("age_band", "gender", "region")
            },
        )

    def take(self, keep: np.ndarray) -> _Columns:
        return _Columns(
            self.ids[keep],
            self.db[keep],
            self.first[keep],
            self.ident[keep],
            self.agency[keep],
            {a: v[keep] for a, v in self.attrs.items()},
        )


@dataclass
class _HashKeys:
    """An import's hash rows, in the order written, as exact fixed-width keys: the
    record, the signal (a code) with the value's length, and the value's hex digits as
    bytes zero-padded to 32 (four uint64 words). Two rows have equal keys exactly when
    their (signal, value) are equal, so grouping them here is the database's GROUP BY
    signal, value without reading 2.8 million strings back; the keys spell the values
    back too (`details`), so the merge report reads none of them either."""

    #: signal code (the kind's high bits) -> the signal's name, from the rows written
    names: dict[int, str] = field(default_factory=dict)
    records: list[np.ndarray] = field(default_factory=list)
    kinds: list[np.ndarray] = field(default_factory=list)
    words: list[np.ndarray] = field(default_factory=list)
    #: after `groups`: each shared value's lowest hash row id (ascending), kind and words
    head_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    head_kinds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    head_words: np.ndarray = field(default_factory=lambda: np.empty((0, 4), dtype=np.uint64))

    def add(
        self,
        records: np.ndarray,
        kinds: np.ndarray | None,
        words: np.ndarray | None,
        rows: Sequence[Sequence[Any]],
    ) -> bool:
        """Key one batch's hash rows (in id order; `feed.Feeder` made the keys, `rows`
        are the rows written, whose signal names the codes); False (nothing kept) if
        their values were not all plain hex (no keys)."""
        if not len(records):
            return True
        if kinds is None or words is None:
            return False
        codes, first = np.unique(kinds >> 7, return_index=True)
        for code, at in zip(codes.tolist(), first.tolist(), strict=True):
            self.names.setdefault(code, str(rows[at][2]))
        self.kinds.append(kinds)
        self.records.append(records)
        self.words.append(words.view(np.uint64))
        return True

    def holds(self, signal: str) -> bool:
        """Whether a row of this signal was written."""
        return signal in self.names.values()

    def groups(self, first_id: int, gone: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """(record, group) of every row whose (signal, value) two or more rows share,
        the group being the lowest hash row id holding it (what the SQL gives)."""
        empty = np.empty(0, dtype=np.int64)
        if not self.records:
            return empty, empty
        records = np.concatenate(self.records)
        kinds = np.concatenate(self.kinds)
        words = np.concatenate(self.words)
        self.records, self.kinds, self.words = [], [], []
        ids = np.arange(first_id, first_id + len(records), dtype=np.int64)
        if gone:  # replaced within this import: their rows were deleted
            keep = ~np.isin(records, np.fromiter(gone, dtype=np.int64))
            records, kinds, words, ids = records[keep], kinds[keep], words[keep], ids[keep]
        if not len(records):
            return empty, empty
        # stable sorts: within a group the rows stay in id order, the first is the lowest
        # id. By the first word alone (random for a digest) when the rows that share it
        # share their whole key; else (two values alike in their first 16 digits) by all
        order = np.argsort(words[:, 0], kind="stable")
        k, w = kinds[order], words[order]
        new = np.r_[True, (k[1:] != k[:-1]) | (w[1:] != w[:-1]).any(axis=1)]
        if (new[1:] & (w[1:, 0] == w[:-1, 0])).any():
            order = np.lexsort((words[:, 3], words[:, 2], words[:, 1], words[:, 0], kinds))
            k, w = kinds[order], words[order]
            new = np.r_[True, (k[1:] != k[:-1]) | (w[1:] != w[:-1]).any(axis=1)]
        group = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        sizes = np.diff(np.r_[starts, len(order)])
        multi = starts[sizes > 1]
        heads = ids[order[multi]]
        by_id = np.argsort(heads)
        self.head_ids, self.head_kinds = heads[by_id], k[multi][by_id]
        self.head_words = w[multi][by_id]
        del k, w, kinds, words
        shared = sizes[group] > 1
        return records[order[shared]], ids[order[starts]][group[shared]]

    def details(self, gids: np.ndarray) -> dict[int, str]:
        """`signal:value` of shared values by their group (lowest hash row id), as
        `_hash_details` reads them from the rows."""
        wanted = np.unique(gids)
        at = np.searchsorted(self.head_ids, wanted)
        kinds = self.head_kinds[at].tolist()
        raw = self.head_words[at]
        return {
            g: f"{self.names[kind >> 7]}:{raw[i].tobytes()[: (kind & 127) // 2].hex()}"
            for i, (g, kind) in enumerate(zip(wanted.tolist(), kinds, strict=True))
        }


@dataclass
class _Import:
    """What one import keeps between batches: ids to hand out, keys already stored, and
    this import's records as columns and sightings (for the merge that follows)."""

    next_id: int
    next_series: int
    #: database -> victim_key -> record id, of records that existed or were written
    keys: dict[str, dict[str, int]]
    #: database -> series_key -> series id, of series that existed or were written
    series: dict[str, dict[str, int]]
    first_id: int
    codes: _Codes = field(default_factory=_Codes)
    columns: list[_Columns] = field(default_factory=list)
    sight_ids: list[np.ndarray] = field(default_factory=list)
    sight_times: list[np.ndarray] = field(default_factory=list)
    replaced_ids: set[int] = field(default_factory=set)
    #: the hash rows' ids are this plus their position in this import (ids given here)
    first_hash: int = 1
    next_hash: int = 1
    #: this import's hash rows as exact keys (`_HashKeys`), for grouping them in memory;
    #: None once a store that held hashes, or a value that is not plain hex, rules it out
    hash_keys: _HashKeys | None = None


def _start(conn: Connection) -> _Import:
    cur = conn.connection.cursor()
    cur.execute(
        "SELECT (SELECT MAX(id) FROM victim_records), (SELECT MAX(id) FROM victim_series), "
        "(SELECT MAX(id) FROM victim_hashes)"
    )
    top: Any = cur.fetchone()
    next_id, next_series = (top[0] or 0) + 1, (top[1] or 0) + 1
    first_hash = (top[2] or 0) + 1
    keys: dict[str, dict[str, int]] = {}
    if next_id > 1:
        cur.execute("SELECT database, victim_key, id FROM victim_records")
        while rows := cur.fetchmany(200_000):
            for db, key, rid in rows:
                keys.setdefault(db, {})[key] = rid
    series: dict[str, dict[str, int]] = {}
    if next_series > 1:
        cur.execute("SELECT database, series_key, id FROM victim_series")
        for db, key, sid in cur.fetchall():
            series.setdefault(db, {})[key] = sid
    state = _Import(
        next_id, next_series, keys, series, next_id, first_hash=first_hash, next_hash=first_hash
    )
    if top[2] is None:  # no hash rows stored: this import's alone are grouped, in memory
        state.hash_keys = _HashKeys()
    return state


def _hash_rows(conn: Connection) -> int:
    """How many hash rows there are (by the highest id: an index lookup, no count)."""
    cur = conn.connection.cursor()
    cur.execute("SELECT MAX(id) FROM victim_hashes")
    top: Any = cur.fetchone()
    return int(top[0] or 0)


def _delete_records(conn: Connection, ids: list[int]) -> None:
    """Records being replaced, with everything that hangs on them."""
    for i in range(0, len(ids), 5000):
        part = ",".join(str(int(x)) for x in ids[i : i + 5000])
        for table in (
            "victim_hashes",
            "victim_links",
            "victim_sightings",
            "victim_sighting_packs",
            "victim_record_series",
        ):
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE record_id IN ({part})")
        conn.exec_driver_sql(
            f"DELETE FROM victim_merges WHERE record_a IN ({part}) OR record_b IN ({part})"
        )
        conn.exec_driver_sql(f"DELETE FROM victim_records WHERE id IN ({part})")


def _write_batch(conn: Connection, batch: Prepared, state: _Import, now: Any) -> int:
    """Insert one prepared batch (replacing records already there); returns how many it
    replaced. The batch's rows come ready (`feed.Feeder`: parsing, ids, hash keys and
    packed sightings done, maybe in another process); here only what needs the store:
    records to replace, series ids, and the columns the merge keeps."""
    if batch.first_id != state.next_id or batch.first_hash != state.next_hash:
        raise RuntimeError("victims import: a batch's ids are not the next ones")
    dbs, keys_ = batch.database, batch.victim_id
    existing: list[int] = []
    one_db = len(set(dbs)) == 1  # the usual case (a file is one database's records)
    if one_db:
        known = state.keys.get(dbs[0])
        if known and not known.keys().isdisjoint(keys_):  # one pass in C when none is
            existing = [known[k] for k in keys_ if k in known]
    else:
        for d, k in zip(dbs, keys_, strict=True):
            known = state.keys.get(d)
            if known is not None and k in known:
                existing.append(known[k])
    if existing:
        _delete_records(conn, existing)
        state.replaced_ids.update(existing)
    n = len(batch)
    new_series, series_rows = _number_series(batch, state, now, one_db)
    _bulk(conn, "victim_series", "id, database, series_key, created_at", new_series)
    ids = np.arange(state.next_id, state.next_id + n, dtype=np.int64)
    id_range = range(state.next_id, state.next_id + n)
    state.next_id += n
    if one_db:
        state.keys.setdefault(dbs[0], {}).update(zip(keys_, id_range, strict=True))
    else:
        for d, k, rid in zip(dbs, keys_, id_range, strict=True):
            state.keys.setdefault(d, {})[k] = rid
    _bulk(
        conn,
        "victim_records",
        "id, database, victim_key, first_seen, identified_at, identifying_agency, age_band, "
        "gender, region, imported_at",
        batch.record_rows,
    )
    state.next_hash += len(batch.hash_rows)
    if state.hash_keys is not None and not state.hash_keys.add(
        batch.hash_owner, batch.hash_kind, batch.hash_words, batch.hash_rows
    ):
        state.hash_keys = None  # grouped by the database after all
    _bulk(conn, "victim_hashes", "id, record_id, signal, value, key", batch.hash_rows)
    _bulk(conn, "victim_links", "record_id, database, victim_key", batch.link_rows)
    _bulk(conn, "victim_record_series", "record_id, series_id", series_rows)
    _bulk(conn, "victim_sighting_packs", "record_id, count, times", batch.pack_rows)
    codes = state.codes
    state.columns.append(
        _Columns(
            ids=ids,
            db=codes.code("database", dbs),
            first=batch.first_us,
            ident=batch.ident_us,
            agency=codes.code("agency", batch.agency),
            attrs={
                "age_band": codes.code("age_band", batch.age_band),
                "gender": codes.code("gender", batch.gender),
                "region": codes.code("region", batch.region),
            },
        )
    )
    state.sight_ids.append(np.repeat(ids, batch.counts))
    state.sight_times.append(batch.times)
    return len(existing)


def _number_series(
    batch: Prepared, state: _Import, now: Any, one_db: bool
) -> tuple[list[tuple[Any, ...]], list[tuple[int, int]]]:
    """A batch's new series (ids given in order of first appearance) and each record's
    links to its series. One database's batch (the usual case) in a few passes in C;
    a mixed one record by record, by database then key."""
    new_series: list[tuple[Any, ...]] = []
    series_rows: list[tuple[int, int]] = []
    first = next_series = state.next_series
    record_ids = range(state.next_id, state.next_id + len(batch))
    of_db: dict[str, int] = {}
    if one_db:
        d = batch.database[0]
        of_db = state.series.setdefault(d, {})
        flat = list(itertools.chain.from_iterable(batch.series))
        distinct = dict.fromkeys(flat)
        if of_db.keys().isdisjoint(distinct):
            fresh = list(distinct)
        else:
            fresh = [k for k in distinct if k not in of_db]
        of_db.update(zip(fresh, itertools.count(first)))
        state.next_series = first + len(fresh)
        new_series = list(
            zip(range(first, state.next_series), itertools.repeat(d), fresh, itertools.repeat(now))
        )
        owners = itertools.chain.from_iterable(
            map(itertools.repeat, record_ids, map(len, batch.series))
        )
        series_rows = list(zip(owners, map(of_db.__getitem__, flat), strict=True))
        return new_series, series_rows
    last_db = None
    for rid, d, keys in zip(record_ids, batch.database, batch.series, strict=True):
        if not keys:
            continue
        if d != last_db:
            of_db, last_db = state.series.setdefault(d, {}), d
        for key in keys:
            sid = of_db.get(key)
            if sid is None:
                sid = of_db[key] = next_series
                new_series.append((sid, d, key, now))
                next_series += 1
            series_rows.append((rid, sid))
    state.next_series = next_series
    return new_series, series_rows


@contextlib.contextmanager
def _transaction(store: Store) -> Iterator[Connection]:
    """The import's one transaction. On SQLite with foreign-key checks off (every child
    row is written right after its record, and a replaced record's rows are deleted
    explicitly) and a page cache large enough for the indexes being filled; both
    pragmas only take effect outside a transaction, and are restored after."""
    if store.dialect != "sqlite":
        with store.engine.begin() as conn:
            yield conn
        return
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        bulk_page_cache(conn)
        conn.commit()
        try:
            with conn.begin():
                yield conn
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            end_bulk_page_cache(conn)
            conn.commit()


@contextlib.contextmanager
def _index_dropped(conn: Connection, name: str) -> Iterator[bool]:
    """On SQLite, one secondary index dropped while its table fills and built again
    from its own definition afterwards (one sort instead of a B-tree insert per row).
    Only inside the open transaction, so a kill or failure leaves it as it was; other
    connections keep reading the committed index meanwhile (WAL). Yields whether it
    was dropped."""
    raw: Any = conn.connection.dbapi_connection
    sql = None
    if conn.dialect.name == "sqlite" and raw.in_transaction:
        cur = raw.cursor()
        cur.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,))
        found = cur.fetchone()
        sql = found[0] if found else None
    if sql is not None:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield sql is not None
    # not on an exception: the transaction's rollback restores the index by itself
    if sql is not None:
        conn.exec_driver_sql(sql)


def import_records(
    store: Store, sources: Iterable[tuple[str, Iterable[str]]], *, merge: bool = True
) -> ImportResult:
    """Import `(name, lines)` sources: every good record, each bad line as an error.

    All in one transaction: a failure midway (the database, not a bad line) or a kill
    leaves the store as it was. Bad lines are reported and skipped; a record is never
    half-written. The merge that follows reuses this import's records from memory.
    Parsed in this process (`import_files` parses big files in a second one).
    """
    return _import(store, lambda spec: prepared(sources, spec), merge=merge)


def _import(
    store: Store, batches_of: Callable[[Spec], Iterator[Prepared]], *, merge: bool = True
) -> ImportResult:
    """The import: `batches_of` gives the prepared batches for the ids it is handed."""
    errors: list[LineError] = []
    written = replaced = 0
    # no cyclic collector while the import runs: it holds millions of keys and rows (no
    # cycles among them) that every full collection would walk again
    with gc_paused(), _transaction(store) as conn, contextlib.ExitStack() as indexes:
        state = _start(conn)
        stored = _hash_rows(conn)
        count = 0
        now = dt.datetime.now(dt.UTC)
        spec = Spec([], state.next_id, state.next_hash, now)
        bound_now = utc_micros(now)  # as UtcMicros binds it
        for batch in batches_of(spec):
            errors += batch.errors
            if len(batch):
                if count == 1 and _hash_rows(conn) - stored >= stored:
                    # a big import (a second batch) into few stored hashes: their key
                    # index is built once at the end, by a sort
                    indexes.enter_context(_index_dropped(conn, "ix_victim_hashes_key"))
                if count == 1 and state.next_id - state.first_id >= state.first_id - 1:
                    # and into few stored records: (database, victim_key) likewise (the
                    # import itself keeps the keys unique, `_Import.keys`)
                    indexes.enter_context(_index_dropped(conn, "ux_victim_records_key"))
                    # and so the series' (database, series_key) (kept unique likewise:
                    # `_Import.series` holds every stored series)
                    indexes.enter_context(_index_dropped(conn, "ux_victim_series_key"))
                replaced += _write_batch(conn, batch, state, bound_now)
                written += len(batch)
                count += 1
                crashpoint.reached("victims.import.chunk")
        indexes.close()  # the merge groups hashes over that index
        if conn.dialect.name == "postgresql":
            for table in ("victim_records", "victim_series", "victim_hashes"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"GREATEST((SELECT MAX(id) FROM {table}), 1))"
                    )
                )
        victims = joins = 0
        state.keys.clear()  # a million keys: not needed by the merge, freed before it
        state.series.clear()
        if merge:
            victims, joins = _rebuild(conn, state)
        crashpoint.reached("victims.import.merged")
    return ImportResult(written, replaced, tuple(errors), victims, joins)


def import_files(
    store: Store, paths: Sequence[Path], *, parse_ahead: bool | None = None
) -> ImportResult:
    """`ridgeline victims import FILE...` (`-` is standard input), each read as a stream.

    Files big enough are read and parsed in a second process (`feed.file_batches`;
    `parse_ahead` forces it on or off), standard input in this one."""
    import sys

    if all(str(p) != "-" for p in paths):
        return _import(store, lambda spec: file_batches(paths, spec, ahead=parse_ahead))

    def sources() -> Iterator[tuple[str, Iterable[str]]]:
        for path in paths:
            if str(path) == "-":
                yield ("<stdin>", utf8_lines(sys.stdin, "<stdin>"))
                continue
            try:
                handle = path.open(encoding="utf-8", errors="strict", buffering=1 << 20)
            except OSError as exc:
                raise BadInput(f"cannot read {path}: {exc.strerror}") from None
            with handle:
                yield (str(path), utf8_lines(handle, str(path)))

    return import_records(store, sources())


def _fetch_arrays(conn: Connection, sql: str, width: int) -> np.ndarray:
    """An integer query's rows as an (n, width) int64 array, fetched in chunks."""
    parts = []
    cursor = conn.connection.cursor()  # the driver's own: no Row objects for 10M rows
    cursor.execute(sql)
    while rows := cursor.fetchmany(500_000):
        flat = itertools.chain.from_iterable(rows)
        parts.append(np.fromiter(flat, dtype=np.int64, count=len(rows) * width).reshape(-1, width))
    return np.concatenate(parts) if parts else np.empty((0, width), dtype=np.int64)


def _micros(values: Sequence[int | None]) -> np.ndarray:
    """Stored times (`UtcMicros`: integer microseconds, null) as an array, NONE_US = null."""
    return np.fromiter(
        (NONE_US if v is None else v for v in values), dtype=np.int64, count=len(values)
    )


def _read_columns(conn: Connection, codes: _Codes, below: int | None) -> _Columns:
    """Stored records (those with an id below `below`, or all) as columns."""
    where = "" if below is None else f" WHERE id < {int(below):d}"
    cursor = conn.connection.cursor()
    cursor.execute(
        "SELECT id, database, first_seen, identified_at, identifying_agency, age_band, "
        f"gender, region FROM victim_records{where} ORDER BY id"
    )
    parts = []
    while rows := cursor.fetchmany(200_000):
        cols = list(zip(*rows, strict=True))
        parts.append(
            _Columns(
                ids=np.array(cols[0], dtype=np.int64),
                db=codes.code("database", cols[1]),
                first=_micros(cols[2]),
                ident=_micros(cols[3]),
                agency=codes.code("agency", cols[4]),
                attrs={c: codes.code(c, cols[5 + k]) for k, c in enumerate(_CODED[2:])},
            )
        )
        del rows, cols
    return _Columns.concat(parts)


def _read_sightings(conn: Connection, below: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(record ids, UTC seconds) of the stored packs (records below `below`, or all) and
    of every match sighting row."""
    where = "" if below is None else f" WHERE record_id < {int(below):d}"
    cursor = conn.connection.cursor()
    cursor.execute(f"SELECT record_id, count, times FROM victim_sighting_packs{where}")
    ids, counts, blobs = [], [], []
    while rows := cursor.fetchmany(200_000):
        for rid, count, blob in rows:
            ids.append(rid)
            counts.append(count)
            blobs.append(bytes(blob))
    packed = np.frombuffer(b"".join(blobs), dtype="<i8").astype(np.int64)
    owners = np.repeat(np.array(ids, dtype=np.int64), np.array(counts, dtype=np.int64))
    del blobs
    rows_ = _fetch_arrays(conn, "SELECT record_id, seen_at FROM victim_sightings", 2)
    return np.concatenate((owners, rows_[:, 0])), np.concatenate((packed, rows_[:, 1]))


def _shared_hashes(conn: Connection) -> tuple[np.ndarray, np.ndarray]:
    """(record, group) of every hash row whose (signal, value) two or more rows hold, the
    group being its lowest hash row id. The database finds the rows whose short key
    (`victim_hashes.key`, indexed) is shared; their (signal, value) are compared here."""
    cursor = conn.connection.cursor()
    cursor.execute(
        "SELECT id, record_id, signal, value FROM victim_hashes WHERE key IN "
        "(SELECT key FROM victim_hashes GROUP BY key HAVING COUNT(*) > 1) ORDER BY id"
    )
    first: dict[tuple[str, str], int] = {}
    holders: dict[tuple[str, str], list[int]] = {}
    while rows := cursor.fetchmany(200_000):
        for hid, rid, signal, value in rows:
            k = (signal, value)
            if k in first:
                holders[k].append(rid)
            else:
                first[k] = hid
                holders[k] = [rid]
    rec: list[int] = []
    gid: list[int] = []
    for k, held in holders.items():
        if len(held) > 1:
            rec += held
            gid += [first[k]] * len(held)
    return np.array(rec, dtype=np.int64), np.array(gid, dtype=np.int64)


def _hash_edges(
    shared: tuple[np.ndarray, np.ndarray], pos: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges between records (indices) that share a hash held in two or more databases:
    each holder to the group's lowest record, with the group's id (its lowest hash row),
    from `shared` (`_shared_hashes`, or `_HashKeys.groups` of an import into none)."""
    if not len(shared[0]):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    rec, gid = pos[shared[0]], shared[1]
    del shared
    order = np.lexsort((rec, gid))
    rec, gid = rec[order], gid[order]
    starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]])
    group = np.cumsum(np.r_[True, gid[1:] != gid[:-1]]) - 1
    d = db[rec]
    # a hash held in one database only joins nothing (a file can show two children)
    mixed = np.minimum.reduceat(d, starts) != np.maximum.reduceat(d, starts)
    first = rec[starts][group]
    keep = (rec != first) & mixed[group]
    return first[keep], rec[keep], gid[keep]


def _pdq_edges(
    conn: Connection, pos: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Edges between records of different databases whose PDQ hashes are near
    (`merge.near_pdq`), with the pair as the reason."""
    cursor = conn.connection.cursor()
    cursor.execute("SELECT record_id, value FROM victim_hashes WHERE signal = 'pdq'")
    found = cursor.fetchall()
    rec = pos[np.array([r[0] for r in found], dtype=np.int64)]
    values = [str(r[1]) for r in found]
    q, r, d = near_pdq(values, db[rec])
    why = [
        f"pdq:{values[a]}~{values[b]} ({k} bits)"
        for a, b, k in zip(q.tolist(), r.tolist(), d.tolist(), strict=True)
    ]
    return rec[q], rec[r], why


def _hash_details(conn: Connection, gids: np.ndarray) -> dict[int, str]:
    """`signal:value` of the given hash rows (the joins' reasons)."""
    out: dict[int, str] = {}
    wanted = np.unique(gids).tolist()
    cursor = conn.connection.cursor()
    for i in range(0, len(wanted), 5000):
        part = ",".join(str(int(g)) for g in wanted[i : i + 5000])
        cursor.execute(f"SELECT id, signal, value FROM victim_hashes WHERE id IN ({part})")
        out.update({int(h): f"{sig}:{value}" for h, sig, value in cursor.fetchall()})
    return out


def _rebuild(conn: Connection, state: _Import | None = None) -> tuple[int, int]:
    """Recompute the merged victims, the merge report and the indicator's columns from
    every record: this import's (`state`) from memory, older ones read back."""
    codes = state.codes if state else _Codes()
    below = state.first_id if state else None
    # an import into no hashes: its own, grouped (and spelled back) in memory
    in_memory = state.hash_keys if state is not None else None
    if state is not None and in_memory is not None:
        shared = in_memory.groups(state.first_hash, state.replaced_ids)
        state.hash_keys = None
    else:
        shared = _shared_hashes(conn)
    parts = [_read_columns(conn, codes, below)]
    s_rec, s_time = _read_sightings(conn, below)
    if state is not None:
        mine = _Columns.concat(state.columns)
        new_ids = np.concatenate(state.sight_ids) if state.sight_ids else np.empty(0, np.int64)
        new_times = (
            np.concatenate(state.sight_times) if state.sight_times else np.empty(0, np.int64)
        )
        if state.replaced_ids:  # replaced within this import: their rows are gone
            gone = np.fromiter(state.replaced_ids, dtype=np.int64)
            mine = mine.take(~np.isin(mine.ids, gone))
            keep = ~np.isin(new_ids, gone)
            new_ids, new_times = new_ids[keep], new_times[keep]
        parts.append(mine)
        s_rec = np.concatenate((s_rec, new_ids))
        s_time = np.concatenate((s_time, new_times))
        state.columns, state.sight_ids, state.sight_times = [], [], []
        del new_ids, new_times
    cols = _Columns.concat(parts)
    del parts
    n = len(cols.ids)
    ids = cols.ids
    pos = np.zeros(int(ids.max()) + 1 if n else 1, dtype=np.int64)
    pos[ids] = np.arange(n)
    db = cols.db
    hash_a, hash_b, hash_gid = _hash_edges(shared, pos, db)
    del shared
    cursor = conn.connection.cursor()
    cursor.execute(
        "SELECT l.record_id, r.id, l.database, l.victim_key FROM victim_links l "
        "JOIN victim_records r ON r.database = l.database AND r.victim_key = l.victim_key "
        "ORDER BY l.id"
    )
    links = cursor.fetchall()
    link_a = pos[np.array([r[0] for r in links], dtype=np.int64)]
    link_b = pos[np.array([r[1] for r in links], dtype=np.int64)]
    pdq_why: list[str] = []
    if in_memory is not None and not in_memory.holds("pdq"):  # no PDQ row to read
        pdq_a, pdq_b = np.empty(0, np.int64), np.empty(0, np.int64)
    else:
        pdq_a, pdq_b, pdq_why = _pdq_edges(conn, pos, db)
    # edges in order: equal hashes, near PDQ hashes, then analysts' same_as
    all_a = np.concatenate((hash_a, pdq_a, link_a))
    all_b = np.concatenate((hash_b, pdq_b, link_b))
    comp, count, joined = components(n, all_a, all_b)
    edge_a, edge_b = all_a[joined], all_b[joined]
    n_hash, n_pdq = len(hash_a), len(pdq_a)
    by_hash = joined < n_hash
    gids = hash_gid[joined[by_hash]]
    details = in_memory.details(gids) if in_memory is not None else _hash_details(conn, gids)
    del in_memory
    # the joins are in edge order: equal hashes, then near PDQ ones, then same_as links
    near = (joined >= n_hash) & (joined < n_hash + n_pdq)
    by_link = joined[joined >= n_hash + n_pdq] - n_hash - n_pdq
    texts = [details[g] for g in gids.tolist()]
    texts += [pdq_why[k] for k in (joined[near] - n_hash).tolist()]
    texts += [f"{links[k][2]}/{links[k][3]}" for k in by_link.tolist()]
    reasons = ["hash"] * (len(joined) - len(by_link)) + ["same_as"] * len(by_link)
    del hash_a, hash_b, hash_gid, link_a, link_b, all_a, all_b
    first_s = np.floor_divide(cols.first, 1_000_000)
    rec_of_time = np.concatenate((np.arange(n), pos[s_rec]))
    times = np.concatenate((first_s, s_time))
    del s_rec, s_time
    counts, fifth = occasions(comp, rec_of_time, times, count)
    del rec_of_time, times
    conn.exec_driver_sql("DELETE FROM victim_merges")
    conn.exec_driver_sql("DELETE FROM merged_victims")
    conn.exec_driver_sql("DELETE FROM victim_traded_updates")
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
    # the earliest identification (ties: the earlier first seen, then the lower id): in
    # the first-seen order of each victim, the first member holding its earliest
    ident_sorted = cols.ident[order]
    earliest = np.minimum.reduceat(ident_sorted, starts) if n else np.empty(0, np.int64)
    holder = np.where(ident_sorted == np.repeat(earliest, records), np.arange(n), n)
    ident_rec = order[np.minimum.reduceat(holder, starts)] if n else np.empty(0, np.int64)
    del ident_sorted, holder
    ident_us = cols.ident[ident_rec]
    # attributes: the first known value in first-seen order
    attr_codes: dict[str, np.ndarray] = {}
    for a, acodes in cols.attrs.items():
        unknown = [i for i, v in enumerate(codes.names[a]) if v == "unknown"]
        known = ~np.isin(acodes[order], unknown) if unknown else np.ones(n, dtype=bool)
        first_known = np.where(known, np.arange(n), n)
        firsts = np.minimum.reduceat(first_known, starts) if n else np.empty(0, np.int64)
        attr_codes[a] = np.where(firsts < n, acodes[order[np.minimum(firsts, n - 1)]], -1)
    # the databases of each victim, as a bit mask
    names_db = [str(x) for x in codes.names["database"]]
    if len(names_db) <= 62:
        masks = (
            np.bitwise_or.reduceat(np.left_shift(1, db[order].astype(np.int64)), starts)
            if n
            else np.empty(0, np.int64)
        )
        present, which = np.unique(masks, return_inverse=True)
        labels = [
            ",".join(sorted(names_db[j] for j in range(len(names_db)) if m >> j & 1))
            for m in present.tolist()
        ]
        dbs = _names(labels, which, None)
    else:
        dbs = [
            ",".join(sorted({names_db[int(d)] for d in db[order[s:e]]}))
            for s, e in zip(starts.tolist(), np.r_[starts[1:], n].tolist(), strict=True)
        ]
    gid = np.arange(1, count + 1)
    first_col = cols.first[head].tolist()
    ident_col = _nullable(ident_us, ident_us == NONE_US)
    traded_col = _nullable(fifth * 1_000_000, fifth < 0)
    agency = np.where(ident_us != NONE_US, cols.agency[ident_rec], -1)
    agency_col = _names(codes.names["agency"], agency, None)
    attr_cols = {
        a: _names([str(x) for x in codes.names[a]], c, "unknown") for a, c in attr_codes.items()
    }
    merged_rows = list(
        zip(
            gid.tolist(),
            records.tolist(),
            dbs,
            first_col,
            _names(names_db, db[head], None),
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
    del first_col, ident_col, traded_col, agency_col, attr_cols, dbs
    _bulk(
        conn,
        "merged_victims",
        "id, records, databases, first_seen, first_seen_source, identified_at, "
        "identifying_agency, age_band, gender, region, occasions, traded_since",
        merged_rows,
    )
    del merged_rows
    # components are numbered by their lowest record: merged id = component + 1
    _set_merged_ids(conn, ids, comp + 1, below)
    a_ids, b_ids = ids[edge_a], ids[edge_b]
    join_rows = list(
        zip(
            (comp[edge_a] + 1).tolist(),
            a_ids.tolist(),
            b_ids.tolist(),
            reasons,
            texts,
            strict=True,
        )
    )
    with contextlib.ExitStack() as rewritten:  # every row is new: their indexes by sorts
        for index in ("ix_victim_merges_merged", "ix_victim_merges_a", "ix_victim_merges_b"):
            rewritten.enter_context(_index_dropped(conn, index))
        _bulk(conn, "victim_merges", "merged_id, record_a, record_b, reason, detail", join_rows)
    _write_table(conn, cols, comp, count, ident_us, fifth, attr_codes, codes)
    return count, len(join_rows)


def _names(names: Sequence[Any], codes: np.ndarray, missing: Any) -> list[Any]:
    """`names[code]` for each code, `missing` where it is -1: one take in C over an
    object array instead of a Python lookup per victim."""
    table = np.empty(len(names) + 1, dtype=object)
    table[: len(names)] = names
    table[-1] = missing
    return table[codes].tolist()  # type: ignore[no-any-return]


def _nullable(values: np.ndarray, missing: np.ndarray) -> list[int | None]:
    """Integers as driver values, None where `missing`."""
    out: list[int | None] = values.tolist()
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out


def _set_merged_ids(conn: Connection, ids: np.ndarray, merged: np.ndarray, new: int | None) -> None:
    """Every record's merged victim, in one statement (records from id `new` on, if
    given, are this import's, not merged yet)."""
    if not len(ids):
        return
    if conn.dialect.name == "postgresql":  # through a temporary table
        pairs = list(zip(ids.tolist(), merged.tolist(), strict=True))
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE victim_merged_ids (id integer, merged_id integer) "
            "ON COMMIT DROP"
        )
        _bulk(conn, "victim_merged_ids", "id, merged_id", pairs)
        conn.exec_driver_sql(
            "UPDATE victim_records r SET merged_id = m.merged_id FROM victim_merged_ids m "
            "WHERE r.id = m.id AND r.merged_id IS DISTINCT FROM m.merged_id"
        )
        conn.exec_driver_sql("DROP TABLE victim_merged_ids")
        return
    # SQLite: one pass over the table in rowid order, each record's merged victim looked
    # up by a function of its id, instead of a statement and a B-tree search per record
    top = int(ids.max()) + 1
    new = top if new is None else new
    by_id = np.full(top, -1, dtype=np.int64)
    by_id[ids] = merged
    merged_of = _nullable(by_id, by_id < 0)
    raw: Any = conn.connection.dbapi_connection
    raw.create_function("ridgeline_merged_of", 1, merged_of.__getitem__, deterministic=True)
    try:
        with _index_dropped(conn, "ix_victim_records_merged"):  # every row changes
            # records from `new` on were written unmerged (null): they change, without
            # the second call that a stored record's comparison makes
            conn.exec_driver_sql(
                "UPDATE victim_records SET merged_id = ridgeline_merged_of(id) "
                f"WHERE id >= {int(new):d} OR merged_id IS NOT ridgeline_merged_of(id)"
            )
    finally:
        raw.create_function("ridgeline_merged_of", 1, None)


def _write_table(
    conn: Connection,
    cols: _Columns,
    comp: np.ndarray,
    count: int,
    ident_us: np.ndarray,
    fifth: np.ndarray,
    attr_codes: dict[str, np.ndarray],
    codes: _Codes,
) -> None:
    """The merged victims as the indicator's columns (`indicator.data.VictimTable`): per
    database the earliest first seen of each victim, identification, fifth occasion,
    attributes; one `.npz` in `victim_columns`, replaced in the merge's transaction."""
    names_db = [str(x) for x in codes.names["database"]]
    ordered = sorted(range(len(names_db)), key=lambda d: names_db[d])
    row_of = np.empty(max(len(names_db), 1), dtype=np.int64)
    row_of[ordered] = np.arange(len(ordered))
    db_first = np.full((len(names_db), count), -1, dtype=np.int64)
    first_s = np.floor_divide(cols.first, 1_000_000)
    late_first = np.argsort(-first_s, kind="stable")  # the earliest written last
    db_first[row_of[cols.db[late_first]], comp[late_first]] = first_s[late_first]
    identified = np.where(ident_us != NONE_US, np.floor_divide(ident_us, 1_000_000), -1)
    arrays: dict[str, np.ndarray] = {
        "databases": np.array([names_db[d] for d in ordered], dtype=str),
        "db_first": db_first,
        "identified": identified.astype(np.int64),
        "traded_since": fifth.astype(np.int64),
    }
    for a, c in attr_codes.items():
        arrays[a] = c.astype(np.int32)
        arrays[f"{a}_names"] = np.array([str(x) for x in codes.names[a]], dtype=str)
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    conn.exec_driver_sql("DELETE FROM victim_columns")
    _executemany(
        conn, "INSERT INTO victim_columns (name, data) VALUES (?, ?)", [("merged", out.getvalue())]
    )


def rebuild(store: Store) -> tuple[int, int]:
    """Merge again from every record: (victims, joins)."""
    with _transaction(store) as conn:
        return _rebuild(conn)
