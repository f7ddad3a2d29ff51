"""Lists and entries as library functions over a store session.

Every change to an entry is written to its history (`entry_events`), to the
change feed (`changes`) that match indexes poll to update in place, and to the
tamper-evident log (`ridgeline.auditlog`); list changes go to the feed and the log.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import and_, func, literal_column, or_, select, update
from sqlalchemy.orm import Session, selectinload

from ridgeline import auditlog, crashpoint
from ridgeline.classifications import validate as validate_label
from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.lists.matchable import matchable_clause, timed_disables
from ridgeline.lists.models import (
    KEY_PREFIX,
    Change,
    Entry,
    EntryEvent,
    EntrySignal,
    HashList,
    ImportBatch,
    ImportRange,
    ListCount,
    entry_key,
    needs_text,
    stored_value,
)
from ridgeline.signals import get_signal
from ridgeline.store import BULK_CACHE_KIB, bulk_page_cache, hold_page_cache
from ridgeline.store.bulk import insert_values
from ridgeline.timeutil import as_utc, isoformat, utcnow

ENTRY_STATUSES = ("pending", "confirmed", "rejected", "disputed", "retired", "reference")
#: A list of hashes that people submitted of their own images (`ridgeline.submit`): no
#: media, nobody reviewed them, so matches are flagged for human review and never acted
#: on automatically (scan actions are downgraded to flag; /v1/match marks them review).
SELF_SUBMITTED = "self-submitted"
LIST_PURPOSES = ("block", "allow", SELF_SUBMITTED)
#: Review quorum that `lists create --review` means (NCMEC's and CAID's triple review).
DEFAULT_REVIEW_QUORUM = 3

#: Legal status moves. `retired` is the end state; a rejected or confirmed entry may be
#: reopened for review (`pending`), e.g. after provider feedback or an audit finding.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "rejected", "disputed", "retired"}),
    "disputed": frozenset({"confirmed", "rejected", "pending", "retired"}),
    "confirmed": frozenset({"retired", "disputed", "pending"}),
    "rejected": frozenset({"pending", "retired"}),
    "retired": frozenset(),
    #: Kept for reference only (a partner's non-pertinent or comparison record): never
    #: matches; a person may send it to review.
    "reference": frozenset({"pending", "retired"}),
}


def record_event(
    session: Session, entry: Entry, action: str, actor: str | None, **details: Any
) -> None:
    """Append to an entry's history and to the tamper-evident log."""
    session.add(EntryEvent(entry_id=entry.id, action=action, actor=actor, details=details))
    logged = {"list_id": entry.list_id, **details}
    auditlog.append(session, actor, f"entry.{action}", f"entry:{entry.id}", logged)


def record_list_event(
    session: Session, hash_list: HashList, action: str, actor: str | None, **details: Any
) -> None:
    """Log a list-level change (lists have no history table; the log is their history)."""
    logged = {"name": hash_list.name, **details}
    auditlog.append(session, actor, f"list.{action}", f"list:{hash_list.id}", logged)


def record_change(
    session: Session,
    list_id: int,
    entry_id: int | None,
    op: str,
    *,
    last_entry_id: int | None = None,
) -> None:
    """Append to the change feed that indexes poll (op: add, update, remove); with
    `last_entry_id`, one row for the list's entries `entry_id` to `last_entry_id`."""
    session.add(Change(list_id=list_id, entry_id=entry_id, op=op, last_entry_id=last_entry_id))


def key_prefix(column: Any) -> Any:
    """The indexed expression `substr(key, 1, KEY_PREFIX)` (literal bounds, so SQLite
    and PostgreSQL both match it to `ix_entry_signals_key`)."""
    return func.substr(column, literal_column("1"), literal_column(str(KEY_PREFIX)))


def hash_is(signal: str, value: str) -> Any:
    """Where-clause: an `EntrySignal` row holding canonical `value` of `signal` (by the
    indexed key prefix, then the whole key)."""
    key = entry_key(value)
    return and_(
        key_prefix(EntrySignal.key) == key[:KEY_PREFIX],
        EntrySignal.key == key,
        EntrySignal.signal == signal,
    )


def create_list(
    session: Session,
    name: str,
    *,
    purpose: str = "block",
    thresholds: Mapping[str, float] | None = None,
    signals: Sequence[str] = (),
    owner: str | None = None,
    description: str | None = None,
    review_quorum: int = 0,
    actor: str | None = None,
) -> HashList:
    """Create a list; names are unique."""
    name = name.strip()
    if not name:
        raise BadInput("a list needs a name")
    if purpose not in LIST_PURPOSES:
        raise BadInput(f"purpose must be one of {', '.join(LIST_PURPOSES)}, not {purpose!r}")
    if review_quorum < 0:
        raise BadInput("review quorum cannot be negative")
    if session.scalar(select(HashList.id).where(HashList.name == name)) is not None:
        raise Conflict(f"a list named {name!r} already exists")
    for signal in signals:
        get_signal(signal)  # raises UnknownSignal
    hash_list = HashList(
        name=name,
        purpose=purpose,
        thresholds=_check_thresholds(thresholds or {}),
        signals=list(signals),
        owner=owner,
        description=description,
        review_quorum=review_quorum,
        enabled=True,
    )
    session.add(hash_list)
    session.flush()
    record_list_event(session, hash_list, "create", actor, settings=_settings(hash_list))
    return hash_list


def _settings(hash_list: HashList) -> dict[str, Any]:
    return {
        "purpose": hash_list.purpose,
        "enabled": hash_list.enabled,
        "signals": list(hash_list.signals or []),
        "thresholds": dict(hash_list.thresholds or {}),
        "review_quorum": hash_list.review_quorum,
        "description": hash_list.description,
        "owner": hash_list.owner,
    }


def _check_thresholds(thresholds: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for signal, value in thresholds.items():
        sig = get_signal(signal)  # raises UnknownSignal
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BadInput(f"threshold for {sig.name} must be a number, not {value!r}") from None
        sig.check_threshold(number)  # BadInput out of the signal's bounds
        out[sig.name] = number
    return out


def threshold_warnings(thresholds: Mapping[str, Any]) -> list[str]:
    """Warnings for thresholds above their signal's safe range (bounds raise BadInput)."""
    checked = _check_thresholds(thresholds)
    found = (get_signal(name).check_threshold(value) for name, value in checked.items())
    return [w for w in found if w]


def get_list(session: Session, name_or_id: str | int) -> HashList:
    """A list by name (or numeric id), or `NotFound`."""
    if isinstance(name_or_id, int):
        found = session.get(HashList, name_or_id)
    else:
        found = session.scalar(select(HashList).where(HashList.name == name_or_id))
    if found is None:
        raise NotFound(f"no list named {name_or_id!r}")
    return found


def list_lists(session: Session) -> list[HashList]:
    """All lists, by name."""
    return list(session.scalars(select(HashList).order_by(HashList.name)))


def update_list(
    session: Session,
    hash_list: HashList,
    *,
    enabled: bool | None = None,
    thresholds: Mapping[str, float] | None = None,
    review_quorum: int | None = None,
    description: str | None = None,
    owner: str | None = None,
    clear_thresholds: Sequence[str] = (),
    actor: str | None = None,
) -> HashList:
    """Change list settings; indexes see enable/threshold changes through the feed.

    Validates everything before changing anything, so a bad value leaves the list as it was.
    A changed review quorum does not decide entries waiting for review by itself: review
    builds on lists, so `ridgeline.review.core.set_review_quorum` is the call that changes
    the quorum and applies it to the waiting entries.
    """
    if review_quorum is not None and review_quorum < 0:
        raise BadInput("review quorum cannot be negative")
    checked = _check_thresholds(thresholds or {})
    cleared = [get_signal(s).name for s in clear_thresholds]
    before = _settings(hash_list)
    if enabled is not None:
        hash_list.enabled = enabled
    if thresholds is not None or cleared:
        merged = {**(hash_list.thresholds or {}), **checked}
        for name in cleared:
            merged.pop(name, None)
        hash_list.thresholds = merged
    if review_quorum is not None:
        hash_list.review_quorum = review_quorum
    if description is not None:
        hash_list.description = description
    if owner is not None:
        hash_list.owner = owner
    after = _settings(hash_list)
    if after == before:
        return hash_list
    hash_list.updated_at = utcnow()
    session.flush()
    record_change(session, hash_list.id, None, "update")
    changed = {k: {"old": before[k], "new": after[k]} for k in after if after[k] != before[k]}
    record_list_event(session, hash_list, "update", actor, changed=changed)
    return hash_list


def check_list_signal(hash_list: HashList, signal: str) -> None:
    """`BadInput` unless the list takes hashes of `signal` (a canonical signal name)."""
    if hash_list.signals and signal not in hash_list.signals:
        raise BadInput(
            f"list {hash_list.name!r} takes {', '.join(hash_list.signals)}, not {signal}"
        )


def normalize_signals(hash_list: HashList, signals: Mapping[str, Any]) -> dict[str, str]:
    """Validate an entry's hashes for the list (raises `InvalidHash` / `UnknownSignal`)."""
    out: dict[str, str] = {}
    for name, value in signals.items():
        signal = get_signal(name)
        check_list_signal(hash_list, signal.name)
        out[signal.name] = signal.normalize(value)
    if not out:
        raise BadInput("an entry needs at least one hash")
    return out


def add_entry(
    session: Session,
    hash_list: HashList,
    signals: Mapping[str, Any],
    *,
    status: str | None = None,
    classifications: Sequence[Mapping[str, str]] = (),
    source: str | None = None,
    origin_list: str | None = None,
    origin_member: str | None = None,
    origin_entry_id: str | None = None,
    import_batch: str | None = None,
    note: str | None = None,
    actor: str | None = None,
    qualities: Mapping[str, int] | None = None,
    confirmed_elsewhere: bool = False,
) -> Entry:
    """Add an entry. With no review policy it is confirmed (matchable) at once;
    with one it starts `pending` (see `initial_status`) unless the caller records
    another status."""
    values = normalize_signals(hash_list, signals)
    if status is None:
        status = initial_status(hash_list, confirmed_elsewhere=confirmed_elsewhere)
    if status not in ENTRY_STATUSES:
        raise BadInput(f"status must be one of {', '.join(ENTRY_STATUSES)}")
    entry = Entry(
        list_id=hash_list.id,
        status=status,
        enabled=True,
        classifications=[validate_classification(c) for c in classifications],
        source=source,
        origin_list=origin_list,
        origin_member=origin_member,
        origin_entry_id=origin_entry_id,
        import_batch=import_batch,
        note=note,
        submitted_by=actor,
    )
    entry.signals = [
        EntrySignal(signal=name, value=value, quality=(qualities or {}).get(name))
        for name, value in values.items()
    ]
    session.add(entry)
    session.flush()
    extra: dict[str, Any] = {}
    if confirmed_elsewhere:
        extra["confirmed_elsewhere"] = {
            "origin_list": origin_list,
            "origin_member": origin_member,
            "origin_entry_id": origin_entry_id,
            "import_batch": import_batch,
        }
    record_event(session, entry, "create", actor, status=status, signals=values, **extra)
    record_change(session, hash_list.id, entry.id, "add")
    return entry


class NewEntry(NamedTuple):
    """One already-validated entry for `insert_entries`.

    `fields` holds the optional `Entry` columns (`BULK_FIELDS`); `position` is where
    the import read it (its `import` history event says so).
    """

    signals: Mapping[str, str]
    classifications: Sequence[Mapping[str, str]] = ()
    qualities: Mapping[str, int] = MappingProxyType({})
    fields: Mapping[str, Any] = MappingProxyType({})
    position: str | None = None
    #: `entry_key` of each hash, when the caller has it already (bare imports do).
    keys: Mapping[str, bytes] | None = None
    #: The `BULK_FIELDS` values as stored (`case_numbers` as JSON text), instead of
    #: `fields`: what an import of millions builds per entry, a tuple and no dict.
    row: tuple[Any, ...] | None = None


#: The optional entry columns a bulk insert writes (from `NewEntry.fields`).
BULK_FIELDS = (
    "source",
    "origin_list",
    "origin_member",
    "origin_entry_id",
    "note",
    "series",
    "victim_identified",
    "case_numbers",
    "origin_member_name",
)
_ENTRY_COLUMNS = ("id", "list_id", "status", "enabled", "classifications", "batch_id", *BULK_FIELDS)
_SIGNAL_COLUMNS = ("entry_id", "signal", "key", "value", "quality")
_RUN = re.compile(r"^(.*?)(\d+)(\D*)$")


def start_import(
    session: Session,
    hash_list: HashList,
    *,
    batch: str,
    fmt: str,
    status: str,
    actor: str | None,
) -> ImportBatch:
    """The batch row of a bulk import: the `import` history event of every entry it
    adds. Written first, so on SQLite the import holds the write lock from here on
    and the ids `insert_entries` takes are its own."""
    if status not in ENTRY_STATUSES:
        raise BadInput(f"status must be one of {', '.join(ENTRY_STATUSES)}")
    bulk_page_cache(session.connection())
    row = ImportBatch(
        batch=batch, list_id=hash_list.id, actor=actor, format=fmt, status=status, entries=0
    )
    session.add(row)
    session.flush()
    return row


def insert_entries(
    session: Session, hash_list: HashList, batch: ImportBatch, new: Sequence[NewEntry]
) -> list[int]:
    """Bulk twin of `add_entry` for imports: rows as tuples, no ORM objects per entry.

    Writes the entries (with `batch_id`, NULL times read as the batch's), their
    hashes, one `import_ranges` row with the file positions as runs, and one change
    row per range of new ids; returns the new ids in order. SQLite takes the rows by
    `executemany`, PostgreSQL by `COPY`. The caller has validated and de-duplicated
    the hashes and writes one log record for the whole import.
    """
    if not new:
        return []
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    n = len(new)
    ids = _new_ids(conn, postgres, n)
    ranges = _ranges(ids)
    with _bulk_rows(conn, postgres, hash_list.id, batch.id) as counted:
        _insert_new(conn, postgres, hash_list, batch, ids, ranges, new)
    _finish_insert(session, counted, hash_list, batch, ids, [item.position for item in new])
    return ids


def _insert_new(
    conn: Any,
    postgres: bool,
    hash_list: HashList,
    batch: ImportBatch,
    ids: list[int],
    ranges: Sequence[tuple[int, int]],
    new: Sequence[NewEntry],
) -> None:
    """`insert_entries`' entry and hash rows."""
    list_id, status, batch_id = hash_list.id, batch.status, batch.id
    if all(not (e.fields or e.row or e.classifications or e.qualities) for e in new):
        # Bare entries (txt lines): the entry rows are all alike but for the id, so
        # the database makes them from the id ranges (no Python per row), and each
        # hash row binds two values.
        _insert_entry_ranges(conn, postgres, ranges, list_id, status, batch_id, None)
        by_signal: dict[str, list[tuple[int, bytes]]] = {}
        texts: list[tuple[Any, ...]] = []
        for entry_id, item in zip(ids, new, strict=True):
            known = item.keys
            for name, value in item.signals.items():
                key = known[name] if known is not None else entry_key(value)
                if needs_text(value, key):
                    texts.append((entry_id, name, key, value, None))
                else:
                    by_signal.setdefault(name, []).append((entry_id, key))
        for name, pairs in by_signal.items():
            if postgres:
                _copy_keys(conn, name, [e for e, _ in pairs], [k for _, k in pairs])
            else:
                conn.exec_driver_sql(
                    "INSERT INTO entry_signals (entry_id, signal, key) VALUES (?, "
                    f"'{name.replace(chr(39), chr(39) * 2)}', ?)",
                    pairs,
                )
        _insert_signal_rows(conn, postgres, texts)
    else:
        _insert_rows(conn, postgres, hash_list, batch, ids, new)


def _insert_entry_ranges(
    conn: Any,
    postgres: bool,
    ranges: Sequence[tuple[int, int]],
    list_id: int,
    status: str,
    batch_id: int,
    source: str | None,
) -> None:
    """Entry rows alike but for their id (bare hashes), made by the database from the id
    ranges: no Python per row. `source` fills the column when given."""
    sql_status = status.replace("'", "''")
    column, value = (", source", ", %(s)s" if postgres else ", ?") if source else ("", "")
    for first, last in ranges:
        if postgres:
            conn.exec_driver_sql(
                f"INSERT INTO entries (id, list_id, status, enabled, classifications, "
                f"batch_id{column}) SELECT g, {int(list_id)}, '{sql_status}', true, '[]', "
                f"{int(batch_id)}{value} FROM generate_series(%(a)s::bigint, %(b)s::bigint) AS g",
                {"a": first, "b": last, "s": source},
            )
        else:
            conn.exec_driver_sql(
                "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c "
                "WHERE x < ?) INSERT INTO entries (id, list_id, status, enabled, "
                f"classifications, batch_id{column}) SELECT x, {int(list_id)}, "
                f"'{sql_status}', 1, '[]', {int(batch_id)}{value} FROM c",
                (first, last, source) if source else (first, last),
            )


def insert_bare_keys(
    session: Session,
    hash_list: HashList,
    batch: ImportBatch,
    signal: str,
    keys: Sequence[bytes],
    *,
    texts: Sequence[str | None] | None,
    numbers: Sequence[int],
    prefix: str,
    source: str | None = None,
    held: DeferredKeyIndex | None = None,
) -> list[int]:
    """`insert_entries` of bare hashes already checked and de-duplicated (a txt import's
    parsing process sends them): one `signal` hash per entry, given by its `entry_key`
    (`texts[i]`: the value to store beside it, None or no `texts` where it is the key's
    hex), read at line `numbers[i]` (position `f"{prefix}{number}"`), `source` in every
    entry. The same rows, ids and bookkeeping as `insert_entries` of the same
    `NewEntry`s; the parameters are made by `zip`, the positions' runs by numpy. On
    PostgreSQL `held` (deferring) may keep the hash rows to write them later, sorted."""
    n = len(keys)
    if not n:
        return []
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    ids = _new_ids(conn, postgres, n)
    with _bulk_rows(conn, postgres, hash_list.id, batch.id) as counted:
        _insert_bare_rows(conn, postgres, hash_list, batch, signal, ids, keys, texts, source, held)
    _finish_insert(
        session, counted, hash_list, batch, ids, (), runs=_number_runs(ids, prefix, numbers)
    )
    return ids


def _insert_bare_rows(
    conn: Any,
    postgres: bool,
    hash_list: HashList,
    batch: ImportBatch,
    signal: str,
    ids: list[int],
    keys: Sequence[bytes],
    texts: Sequence[str | None] | None,
    source: str | None,
    held: DeferredKeyIndex | None,
) -> None:
    """`insert_bare_keys`' entry and hash rows."""
    _insert_entry_ranges(conn, postgres, _ranges(ids), hash_list.id, batch.status, batch.id, source)
    if source:  # as `insert_entries` writes entries with fields: every hash row's columns
        rows: list[tuple[Any, ...]] = list(
            zip(ids, repeat(signal), keys, texts or repeat(None), repeat(None))
        )
        _insert_signal_rows(conn, postgres, rows)
    else:
        plain: Sequence[tuple[Any, ...]]
        with_text: list[tuple[Any, ...]] = []
        if texts is None:
            plain = list(zip(ids, keys, strict=True))
        else:
            plain = []
            for entry_id, key, value in zip(ids, keys, texts, strict=True):
                if value is None:
                    plain.append((entry_id, key))
                else:
                    with_text.append((entry_id, signal, key, value, None))
        if plain and postgres and texts is None and held is not None and held.rows is not None:
            held.hold(hash_list.id, batch.id, signal, ids, keys)
        elif plain and postgres:
            _copy_keys(conn, signal, [e for e, _ in plain] if texts else ids,
                       [k for _, k in plain] if texts else keys)  # fmt: skip
        elif plain:
            conn.exec_driver_sql(
                "INSERT INTO entry_signals (entry_id, signal, key) VALUES (?, "
                f"'{signal.replace(chr(39), chr(39) * 2)}', ?)",
                plain,
            )
        _insert_signal_rows(conn, postgres, with_text)


#: Hash rows a deferring import holds on PostgreSQL before it writes them, sorted.
HELD_KEY_ROWS = 500_000


class DeferredKeyIndex:
    """`ix_entry_signals_key` kept up once per many rows while a big import into an
    empty list inserts its hashes, inside the import's transaction.

    The index is on key prefixes, random in the order rows come. On SQLite it is
    dropped and built once at the end: kept up row by row it was most of a txt
    import's database time (1M PDQ rows: 3.5 of 6.3 CPU-s), where building it at the
    end sorts once (1.2 s). Readers do not notice: until the import commits they see
    the database as it was (WAL), and afterwards the same index (recreated from its
    own `sqlite_master` text). A killed import rolls back the drop too. PostgreSQL
    keeps the index (dropping it there locks the table against readers until the
    commit): the hash rows are held instead and written `HELD_KEY_ROWS` at a time in
    key order, so the index's leaves are visited in order, a few rows each, not once
    a row at random (at 10,000,000 rows the index outgrows the server's buffers, and
    its random inserts read and wrote a page each). `need` builds the index again (or
    writes the held rows) before any lookup of a key (a file that repeats a hash a
    few chunks later), and at the end."""

    NAME = "ix_entry_signals_key"

    def __init__(self, session: Session) -> None:
        self.session = session
        self.sql: str | None = None
        self.held = False  # the page cache kept small while deferred
        #: PostgreSQL: the held hash rows, (ids, keys as rows) per chunk, else None.
        self.rows: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.owner: tuple[int, int, str] | None = None  # list, batch and signal held
        self.count = 0

    def defer(self, expected_rows: int) -> bool:
        """Drop the index when the import's `expected_rows` outnumber the hash rows the
        database holds (rebuilding it then costs less than keeping it up); on
        PostgreSQL hold the rows."""
        conn = self.session.connection()
        if conn.dialect.name == "postgresql" and self.rows is None:
            self.rows = []
            return True
        if conn.dialect.name != "sqlite" or self.sql is not None:
            return False
        rows = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM entry_signals").scalar()
        if int(rows or 0) >= expected_rows:
            return False
        found = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (self.NAME,)
        ).scalar()
        if not found:
            return False
        self.held = not conn.info.get("bulk_cache")
        if self.held:  # only appends from here: the connection's own cache will do
            hold_page_cache(conn)
        conn.exec_driver_sql(f"DROP INDEX {self.NAME}")
        self.sql = str(found)
        return True

    def hold(
        self, list_id: int, batch_id: int, signal: str, ids: Sequence[int], keys: Sequence[bytes]
    ) -> None:
        """Keep these hash rows to write later (PostgreSQL, holding); written now when
        their keys differ in length or they are not the held import's."""
        assert self.rows is not None
        conn = self.session.connection()
        width = len(keys[0]) if keys else 0
        if width < KEY_PREFIX or set(map(len, keys)) != {width}:
            with _bulk_rows(conn, True, list_id, batch_id):
                _copy_keys(conn, signal, ids, keys)
            return
        if self.owner != (list_id, batch_id, signal) or (
            self.rows and self.rows[0][1].shape[1] != width
        ):
            self._write()
        self.owner = (list_id, batch_id, signal)
        raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width)
        self.rows.append((np.asarray(ids, dtype=np.int64), raw))
        self.count += len(keys)
        if self.count >= HELD_KEY_ROWS:
            self._write()

    def _write(self) -> None:
        """Write the held rows, in the order of their keys' index prefixes."""
        rows, owner = self.rows, self.owner
        if not rows or owner is None:
            return
        self.rows, self.owner, self.count = [], None, 0
        at = np.concatenate([ids for ids, _ in rows])
        raw = np.concatenate([keys for _, keys in rows])
        prefix = np.ascontiguousarray(raw[:, :KEY_PREFIX]).view(">u8").ravel()
        order = np.argsort(prefix, kind="stable")
        conn = self.session.connection()
        list_id, batch_id, signal = owner
        with _bulk_rows(conn, True, list_id, batch_id):
            _copy_key_block(conn, signal, at[order], raw[order])

    def need(self, *, rest: bool = True) -> None:
        """The index back, or the held rows written (a lookup by key comes; `rest`:
        more inserts follow, which get the bulk page cache again, or are held again);
        nothing when it was not deferred. After a failed statement held rows are
        dropped: the transaction can only roll back."""
        if self.rows is not None:
            driver: Any = self.session.connection().connection.driver_connection
            if driver.info.transaction_status.name == "INTRANS":
                self._write()
            if not rest:
                self.rows, self.owner, self.count = None, None, 0
            return
        if self.sql is None:
            return
        sql, self.sql = self.sql, None
        conn = self.session.connection()
        conn.exec_driver_sql(sql)  # sorted in the connection's own cache's memory
        if rest and self.held:
            conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")


def _number_runs(ids: Sequence[int], prefix: str, numbers: Sequence[int]) -> list[list[Any]]:
    """`_position_runs(ids, [f"{prefix}{n}" for n in numbers])` for positive `numbers`
    and a `prefix` that does not end in a digit, without a string per entry: a run
    goes on while both the id and the number go up by one."""
    if not prefix or prefix[-1].isdigit() or min(numbers) < 1:
        return _position_runs(ids, [f"{prefix}{number}" for number in numbers])
    at = np.asarray(ids, dtype=np.int64)
    lines = np.asarray(numbers, dtype=np.int64)
    breaks = np.flatnonzero((np.diff(at) != 1) | (np.diff(lines) != 1)) + 1
    starts = np.concatenate(([0], breaks))
    counts = np.diff(np.concatenate((starts, [len(at)])))
    return [
        [first, count, prefix, number, ""]
        for first, count, number in zip(
            at[starts].tolist(), counts.tolist(), lines[starts].tolist(), strict=True
        )
    ]


def insert_entry_columns(
    session: Session,
    hash_list: HashList,
    batch: ImportBatch,
    *,
    fields: Sequence[Sequence[Any]],
    classes: Sequence[str],
    positions: Sequence[str | None],
    counts: Sequence[int],
    hashes: Sequence[Sequence[Any]],
) -> list[int]:
    """`insert_entries` of rows already built as columns (a big exchange import's parsing
    process makes them): `fields` the `BULK_FIELDS` columns as stored, `classes` the
    labels' JSON, and per entry `counts[i]` hash rows, flattened in `hashes` as (signal, key,
    value or None, quality) rows. The same rows, ids and bookkeeping as
    `insert_entries`; only the parameters are made by `zip`, not per entry."""
    n = len(classes)
    if not n:
        return []
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    ids = _new_ids(conn, postgres, n)
    list_id, status, batch_id = hash_list.id, batch.status, batch.id
    entry_rows = list(
        zip(ids, repeat(list_id), repeat(status), repeat(True), classes, repeat(batch_id), *fields)
    )
    owners = chain.from_iterable(map(repeat, ids, counts))
    signal_rows = list(zip(owners, *zip(*hashes, strict=True), strict=True)) if hashes else []
    with _bulk_rows(conn, postgres, list_id, batch_id) as counted:
        if postgres:
            _copy(conn, "entries", _ENTRY_COLUMNS, entry_rows)
        else:
            insert_values(conn, "entries", _ENTRY_COLUMNS, entry_rows)
        _insert_signal_rows(conn, postgres, signal_rows)
    _finish_insert(session, counted, hash_list, batch, ids, positions)
    return ids


#: The triggers of `entries` and `entry_signals` on PostgreSQL: the foreign keys' checks
#: and `list_counts` (migration 0008). `_bulk_rows` does their work itself when it writes
#: without them: a new trigger on either table needs its work done there too (a test
#: compares this with the database's triggers).
BULK_SKIPPED_TRIGGERS = frozenset(
    {
        "entries_list_id_fkey",
        "fk_entries_batch_id_import_batches",
        "entry_signals_entry_id_fkey",
        "list_counts_entry_insert",
        "list_counts_entry_update",
        "list_counts_entry_delete",
    }
)


@contextmanager
def _bulk_rows(conn: Any, postgres: bool, list_id: int, batch_id: int) -> Iterator[bool]:
    """New entry and hash rows written without PostgreSQL's row triggers where the role
    may; yields whether the caller counts the rows into `list_counts` itself.

    The foreign keys' triggers check each new row by a query of its own, three per
    entry: most of the server's time of a bulk insert (1,000,000 txt lines: entries 8
    -> 2 s, hashes 9 -> 4 s). `session_replication_role = replica` skips them for these
    statements only, without the table locks that dropping a constraint or an index
    takes (those would stop every reader of every list until the import commits). What
    the triggers would do is done instead: the list's and the batch's rows are locked
    as the checks lock them (a list deleted meanwhile waits for the commit), the hash
    rows name the entries written just before them in the same transaction, and the
    caller counts the entries. A role that may not set it (not a superuser, no `GRANT
    SET`) writes with the triggers (yields False). SQLite yields True: its row trigger
    leaves batch rows to the writer (migration 0012)."""
    if not postgres:
        yield True
        return
    driver = conn.connection.driver_connection
    with driver.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('session_replication_role'), "
            "current_setting('is_superuser') = 'on', "
            "current_setting('server_version_num')::int"
        )
        role, allowed, version = cursor.fetchone()
        if role == "origin" and not allowed and version >= 150000:
            cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
            allowed = bool(cursor.fetchone()[0])
        if role == "origin" and not allowed:
            yield False
            return
        cursor.execute("SELECT 1 FROM lists WHERE id = %s FOR KEY SHARE", (list_id,))
        cursor.execute("SELECT 1 FROM import_batches WHERE id = %s FOR KEY SHARE", (batch_id,))
        if role != "origin":  # already without them (a replica's session)
            yield True
            return
        cursor.execute("SET LOCAL session_replication_role = replica")
        try:
            yield True
        finally:
            # After an error the transaction is rolled back, and the setting with it.
            if driver.info.transaction_status.name == "INTRANS":
                cursor.execute("SET LOCAL session_replication_role = origin")


def _new_ids(conn: Any, postgres: bool, n: int) -> list[int]:
    """Ids for n new entries: from the sequence on PostgreSQL, after the largest on SQLite
    (the import holds the only write transaction)."""
    if postgres:
        # The sequence named once, as a constant: `nextval(pg_get_serial_sequence(..))`
        # looked the name up again for every row (1,000,000 ids: 2.7 s, 0.65 s so).
        # Fetched by the driver in one call: SQLAlchemy's row-by-row fetch was 4 of the
        # writer's 18 s per 1,000,000 txt lines under cProfile.
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence('entries', 'id')::regclass::oid")
            sequence = int(cursor.fetchone()[0])
            cursor.execute(
                f"SELECT nextval({sequence}::oid::regclass) FROM generate_series(1, %s::bigint)",
                (n,),
            )
            return [i for (i,) in cursor.fetchall()]
    base = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM entries").scalar() or 0)
    return list(range(base + 1, base + n + 1))


def _finish_insert(
    session: Session,
    counted: bool,
    hash_list: HashList,
    batch: ImportBatch,
    ids: list[int],
    positions: Sequence[str | None],
    *,
    runs: list[list[Any]] | None = None,
) -> None:
    """What every bulk insert records beside its rows: the list's count (`counted`: the
    rows were written without the triggers that count them), the change rows, the
    positions read (or their `runs`, made already) and the batch's size."""
    conn = session.connection()
    list_id, batch_id, n = hash_list.id, batch.id, len(ids)
    if counted:
        conn.execute(
            update(ListCount)
            .where(ListCount.list_id == list_id)
            .values(entries=ListCount.entries + n)
        )
    for first, last in _ranges(ids):
        record_change(session, list_id, first, "add", last_entry_id=last)
    session.add(
        ImportRange(
            batch_id=batch_id,
            first_entry_id=ids[0],
            last_entry_id=ids[-1],
            positions=runs if runs is not None else _position_runs(ids, positions),
        )
    )
    batch.entries = (batch.entries or 0) + n
    session.flush()
    crashpoint.reached("lists.import.batch")


def _insert_rows(
    conn: Any,
    postgres: bool,
    hash_list: HashList,
    batch: ImportBatch,
    ids: Sequence[int],
    new: Sequence[NewEntry],
) -> None:
    """Entry and hash rows of entries with fields, labels or qualities, as tuples."""
    list_id, status, batch_id = hash_list.id, batch.status, batch.id
    entry_rows: list[tuple[Any, ...]] = []
    signal_rows: list[tuple[Any, ...]] = []
    add_entry_row, add_signal_row = entry_rows.append, signal_rows.append
    nothing = (None,) * (len(BULK_FIELDS) - 2)
    head = BULK_FIELDS[:-2]
    labels: dict[Any, str] = {}  # a file repeats a few label sets
    for entry_id, item in zip(ids, new, strict=True):
        fields = item.fields
        classes = item.classifications
        classes_json = "[]"
        if classes:
            try:
                label_key: Any = tuple(tuple(c.items()) for c in classes)
                classes_json = labels.get(label_key) or labels.setdefault(
                    label_key, json.dumps(list(classes))
                )
            except TypeError:  # a nested value: not shared
                classes_json = json.dumps(list(classes))
        row = item.row
        if row is not None:
            add_entry_row((entry_id, list_id, status, True, classes_json, batch_id, *row))
        else:
            case_numbers = fields.get("case_numbers") if fields else None
            add_entry_row(
                (
                    entry_id,
                    list_id,
                    status,
                    True,
                    classes_json,
                    batch_id,
                    *(map(fields.get, head) if fields else nothing),
                    json.dumps(case_numbers) if case_numbers else None,
                    fields.get("origin_member_name") if fields else None,
                )
            )
        qualities = item.qualities
        known = item.keys
        for name, value in item.signals.items():
            key = known[name] if known is not None else entry_key(value)
            add_signal_row(
                (
                    entry_id,
                    name,
                    key,
                    # `needs_text`, inline: two hashes a record of a million-record file
                    None if len(key) * 2 == len(value) and key.hex() == value else value,
                    qualities.get(name) if qualities else None,
                )
            )
    if postgres:
        _copy(conn, "entries", _ENTRY_COLUMNS, entry_rows)
    else:
        marks = ", ".join("?" * len(_ENTRY_COLUMNS))
        conn.exec_driver_sql(
            f"INSERT INTO entries ({', '.join(_ENTRY_COLUMNS)}) VALUES ({marks})", entry_rows
        )
    _insert_signal_rows(conn, postgres, signal_rows)


def _insert_signal_rows(conn: Any, postgres: bool, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if postgres:
        _copy(conn, "entry_signals", _SIGNAL_COLUMNS, rows)
    else:
        conn.exec_driver_sql(
            f"INSERT INTO entry_signals ({', '.join(_SIGNAL_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
            rows,
        )


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _copy_keys(conn: Any, signal: str, ids: Sequence[int], keys: Sequence[bytes]) -> None:
    """`COPY entry_signals (entry_id, signal, key)` of one signal's hash rows, the text
    made by numpy as one block (ids zero-padded to one width, keys as `\\x` hex) where
    the keys are of one length: psycopg's `write_row` per row was about 2 of the
    writer's CPU-s per 1,000,000 txt lines. The same rows as `_copy`."""
    width = len(keys[0]) if keys else 0
    if not width or set(map(len, keys)) != {width}:
        _copy(conn, "entry_signals", ("entry_id", "signal", "key"),
              [(e, signal, k) for e, k in zip(ids, keys, strict=True)])  # fmt: skip
        return
    raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width)
    _copy_key_block(conn, signal, np.asarray(ids, dtype=np.int64), raw)


def _copy_key_block(conn: Any, signal: str, at: np.ndarray, raw: np.ndarray) -> None:
    """`_copy_keys` of ids `at` and keys as the rows of `raw` (one key a row)."""
    n, width = raw.shape
    digits = len(str(int(at.max())))
    middle = np.frombuffer(f"\t{_copy_text(signal)}\t\\\\x".encode(), dtype=np.uint8)
    rows = np.empty((n, digits + len(middle) + 2 * width + 1), dtype=np.uint8)
    powers = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    rows[:, :digits] = at[:, None] // powers % 10 + ord("0")
    rows[:, digits : digits + len(middle)] = middle
    hexed = rows[:, digits + len(middle) : -1]
    hexed[:, 0::2] = _HEX_DIGITS[raw >> 4]
    hexed[:, 1::2] = _HEX_DIGITS[raw & 15]
    rows[:, -1] = ord("\n")
    driver = conn.connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy("COPY entry_signals (entry_id, signal, key) FROM STDIN") as copy,
    ):
        copy.write(rows.data)


def _copy_text(value: str) -> str:
    """A value as a field of COPY's text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy(conn: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL `COPY table (columns) FROM STDIN` of `rows` (psycopg's copy)."""
    driver = conn.connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of consecutive ids as (first, last), found by numpy (a loop over a
    10,000,000-entry import's ids cost seconds)."""
    at = np.asarray(ids, dtype=np.int64)
    ends = np.flatnonzero(np.diff(at) != 1)
    firsts = [int(at[0]), *at[ends + 1].tolist()]
    lasts = [*at[ends].tolist(), int(at[-1])]
    return list(zip(firsts, lasts, strict=True))


def _position_runs(ids: Sequence[int], positions: Sequence[str | None]) -> list[list[Any]]:
    """`[first_id, count, prefix, number, suffix]` runs (see `ImportRange`)."""
    runs: list[list[Any]] = []
    run: list[Any] | None = None
    for entry_id, position in zip(ids, positions, strict=True):
        if position is None:
            run = None
            continue
        if run is not None:
            first, count, prefix, number, suffix = run
            if first + count == entry_id and position == f"{prefix}{number + count}{suffix}":
                run[1] += 1
                continue
        found = _RUN.match(position)
        if found is None or (found.group(2).startswith("0") and found.group(2) != "0"):
            runs.append([entry_id, 1, position, None, ""])
            run = None
            continue
        run = [entry_id, 1, found.group(1), int(found.group(2)), found.group(3)]
        runs.append(run)
    return runs


def _position_of(runs: Sequence[Sequence[Any]], entry_id: int) -> str | None:
    for first, count, prefix, number, suffix in runs:
        if first <= entry_id < first + count:
            return str(prefix) if number is None else f"{prefix}{number + entry_id - first}{suffix}"
    return None


@dataclass(frozen=True)
class EntryView:
    """An entry as whole-list readers (exports, releases) see it: plain values, no ORM."""

    entry_id: int
    signals: Mapping[str, str]
    qualities: Mapping[str, int]
    classifications: Sequence[Mapping[str, str]]
    source: str | None
    origin_list: str | None
    origin_member: str | None
    origin_entry_id: str | None
    note: str | None
    deleted: bool
    #: When the entry last changed (its deletion time for a tombstone).
    updated_at: dt.datetime


def read_entries(
    session: Session,
    hash_list: HashList,
    *,
    include_deleted: bool = False,
    matchable_at: dt.datetime | None = None,
    statuses: Sequence[str] | None = None,
) -> list[EntryView]:
    """A list's entries in id order: live ones (only those with one of `statuses` if
    given, or only those matchable at `matchable_at`, `matchable_clause`), and
    tombstones too if asked. Plain rows: these reads are whole lists."""
    where: list[Any] = [Entry.list_id == hash_list.id]
    live: list[Any] = [Entry.deleted_at.is_(None)]
    if matchable_at is not None:
        live = [matchable_clause(matchable_at)]
    elif statuses is not None:
        live.append(Entry.status.in_(list(statuses)))
    if include_deleted:
        where.append(or_(and_(*live), Entry.deleted_at.is_not(None)))
    else:
        where.extend(live)
    signals: dict[int, dict[str, str]] = {}
    qualities: dict[int, dict[str, int]] = {}
    for entry_id, signal, key, text_value, quality in session.execute(
        select(
            EntrySignal.entry_id,
            EntrySignal.signal,
            EntrySignal.key,
            EntrySignal.text_value,
            EntrySignal.quality,
        )
        .join(Entry, Entry.id == EntrySignal.entry_id)
        .where(*where)
        .order_by(EntrySignal.id)
    ):
        signals.setdefault(entry_id, {})[signal] = stored_value(key, text_value)
        if quality is not None:
            qualities.setdefault(entry_id, {})[signal] = quality
    batch_times = dict(
        session.execute(
            select(ImportBatch.id, ImportBatch.at).where(ImportBatch.list_id == hash_list.id)
        ).all()
    )
    rows = session.execute(
        select(
            Entry.id,
            Entry.classifications,
            Entry.source,
            Entry.origin_list,
            Entry.origin_member,
            Entry.origin_entry_id,
            Entry.note,
            Entry.deleted_at,
            Entry.updated_at,
            Entry.batch_id,
        )
        .where(*where)
        .order_by(Entry.id)
    )
    return [
        EntryView(
            entry_id=row.id,
            signals=signals.get(row.id, {}),
            qualities=qualities.get(row.id, {}),
            classifications=list(row.classifications or []),
            source=row.source,
            origin_list=row.origin_list,
            origin_member=row.origin_member,
            origin_entry_id=row.origin_entry_id,
            note=row.note,
            deleted=row.deleted_at is not None,
            updated_at=as_utc(row.deleted_at or row.updated_at or batch_times[row.batch_id]),
        )
        for row in rows
    ]


def live_entry_origins(
    session: Session, hash_list: HashList, ids: Iterable[str] | None = None
) -> list[tuple[int, str | None, str]]:
    """`(id, origin_member, origin_entry_id)` of the list's live entries that have an
    origin id (only those among `ids`, when given): what an import matches a source's
    re-sent records against. `ids` are looked up by the partial index on origin ids,
    so a streamed import asks for each part's few thousand, not the whole list."""
    stmt = select(Entry.id, Entry.origin_member, Entry.origin_entry_id).where(
        Entry.list_id == hash_list.id,
        Entry.deleted_at.is_(None),
        Entry.origin_entry_id.is_not(None),
    )
    rows: Sequence[tuple[int, str | None, str | None]]
    if ids is None:
        rows = list(session.execute(stmt).tuples())
    else:
        rows = _origins_among(session, hash_list, list(ids if isinstance(ids, set) else set(ids)))
    return [
        (entry_id, member, origin_id)
        for entry_id, member, origin_id in rows
        if origin_id is not None
    ]


#: Values per IN (...) list: under SQLite's old 999-parameter limit.
_CHUNK = 900
#: Values per IN (...) list of the import's own look-ups (SQLite >= 3.32 takes 32766).
_BIG_CHUNK = 30_000


def _origins_among(
    session: Session, hash_list: HashList, wanted: Sequence[str]
) -> list[tuple[int, str | None, str | None]]:
    """The rows of `live_entry_origins` for these origin ids, as plain SQL in one
    statement per 30,000 ids (an import asks for each part's ids: ORM statements of
    900 ids cost more than the look-ups). In id order within each origin, as the
    index on (list_id, origin_entry_id) gave them."""
    conn = session.connection()
    head = (
        "SELECT id, origin_member, origin_entry_id FROM entries WHERE list_id = {mark} "
        "AND deleted_at IS NULL AND origin_entry_id IS NOT NULL AND origin_entry_id "
    )
    rows: list[tuple[int, str | None, str | None]] = []
    if conn.dialect.name == "postgresql":
        if wanted:
            query = head.format(mark="%(l)s") + "= ANY(%(ids)s)"
            rows.extend(conn.exec_driver_sql(query, {"l": hash_list.id, "ids": list(wanted)}))
    else:
        for start in range(0, len(wanted), _BIG_CHUNK):
            chunk = wanted[start : start + _BIG_CHUNK]
            query = head.format(mark="?") + f"IN ({', '.join('?' * len(chunk))})"
            rows.extend(conn.exec_driver_sql(query, (hash_list.id, *chunk)))
    rows.sort(key=lambda row: row[0])
    return rows


def live_entry_keys(
    session: Session, hash_list: HashList, keys: Iterable[tuple[str, bytes]]
) -> list[tuple[int, str, bytes]]:
    """`(id, signal, key)` for each of `keys` (signal, `entry_key`) held by a live
    entry of the list: what an import de-duplicates against.

    Two single-table index lookups (hashes by key prefix, then their entries by id),
    not a join: on a PostgreSQL database without statistics yet the join was planned
    as a nested loop over everything the import had inserted so far.
    """
    asked = keys if isinstance(keys, list | tuple | set | frozenset) else list(keys)
    prefixes = list({key[:KEY_PREFIX] for _, key in asked})
    wanted: set[tuple[str, bytes]] | None = None  # made once a row is found: few are
    conn = session.connection()
    candidates: dict[int, list[tuple[str, bytes]]] = {}
    if conn.dialect.name == "postgresql":
        chunks: Iterable[list[bytes]] = [prefixes] if prefixes else []
        query = (
            "SELECT entry_id, signal, key FROM entry_signals "
            f"WHERE substr(key, 1, {KEY_PREFIX}) = ANY(%(p)s)"
        )
    else:
        chunks = (prefixes[i : i + 30_000] for i in range(0, len(prefixes), 30_000))
        query = ""
    for chunk in chunks:
        if query:
            found = conn.exec_driver_sql(query, {"p": chunk})
        else:
            marks = ", ".join("?" * len(chunk))
            found = conn.exec_driver_sql(
                "SELECT entry_id, signal, key FROM entry_signals "
                f"WHERE substr(key, 1, {KEY_PREFIX}) IN ({marks})",
                tuple(chunk),
            )
        for entry_id, signal, key in found:
            pair = (signal, bytes(key))
            if wanted is None:
                wanted = set(asked)
            if pair in wanted:
                candidates.setdefault(entry_id, []).append(pair)
    ids = sorted(candidates)
    out: list[tuple[int, str, bytes]] = []
    for start in range(0, len(ids), _CHUNK):
        for entry_id in session.scalars(
            select(Entry.id).where(
                Entry.id.in_(ids[start : start + _CHUNK]),
                Entry.list_id == hash_list.id,
                Entry.deleted_at.is_(None),
            )
        ):
            out.extend((entry_id, signal, key) for signal, key in candidates[entry_id])
    return out


def update_entry_signals(
    session: Session,
    entry: Entry,
    signals: Mapping[str, str],
    classifications: Sequence[Mapping[str, str]],
    *,
    qualities: Mapping[str, int] | None = None,
    actor: str | None = None,
    **details: Any,
) -> bool:
    """Bring an entry up to date with what its source sent again (an import naming the
    same origin): new or changed hashes replace the old ones of their signal, non-empty
    classifications replace the old ones. False, and nothing written, when nothing changed.

    `signals` are already normalised for the list; `details` go into the history event.
    """
    current = {s.signal: s.value for s in entry.signals}
    merged = {**current, **signals}
    classes = [validate_classification(c) for c in classifications]
    if merged == current and (not classes or classes == entry.classifications):
        return False
    for name, value in signals.items():
        if current.get(name) == value:
            continue
        for old in [s for s in entry.signals if s.signal == name]:
            entry.signals.remove(old)
        entry.signals.append(
            EntrySignal(signal=name, value=value, quality=(qualities or {}).get(name))
        )
    if classes:
        entry.classifications = classes
    session.flush()
    record_event(session, entry, "update", actor, signals=merged, **details)
    record_change(session, entry.list_id, entry.id, "update")
    return True


def initial_status(hash_list: HashList, *, confirmed_elsewhere: bool = False) -> str:
    """Status of a new or imported entry under the list's review policy.

    No policy (quorum 0): confirmed at once. With a policy: `pending` until reviewed,
    unless the source says it was already confirmed elsewhere (the caller records that
    provenance, e.g. `add_entry(confirmed_elsewhere=True, origin_...=...)`).
    """
    if hash_list.review_quorum == 0 or confirmed_elsewhere:
        return "confirmed"
    return "pending"


def validate_classification(item: Mapping[str, str]) -> dict[str, str]:
    """A classification must carry its scheme (CONVENTIONS.md), never a bare code."""
    if "scheme" not in item or "label" not in item:
        raise BadInput(f"classification {dict(item)!r} needs a scheme and a label")
    return validate_label(item["scheme"], item["label"])


def get_entry(session: Session, entry_id: int) -> Entry:
    """An entry by id (with its hashes), or `NotFound`."""
    entry = session.get(Entry, entry_id, options=[selectinload(Entry.signals)])
    if entry is None:
        raise NotFound(f"no entry {entry_id}")
    return entry


def set_entry_enabled(
    session: Session,
    entry: Entry,
    enabled: bool,
    *,
    until: dt.datetime | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> Entry:
    """Enable or disable an entry; a disable may expire at `until`."""
    if entry.deleted_at is not None:
        raise Conflict(f"entry {entry.id} is deleted")
    entry.enabled = enabled
    # stored in UTC: SQLite keeps wall-clock text, so another zone would shift the instant
    entry.disabled_until = None if enabled or until is None else as_utc(until)
    session.flush()
    record_event(
        session,
        entry,
        "enable" if enabled else "disable",
        actor,
        until=isoformat(until),
        reason=reason,
    )
    record_change(session, entry.list_id, entry.id, "add" if enabled else "remove")
    return entry


def set_entry_status(
    session: Session,
    entry: Entry,
    status: str,
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> Entry:
    """Move an entry through its review states and tell the indexes.

    Only the moves in `STATUS_TRANSITIONS` are allowed; setting the current status
    again changes nothing. Review rules (quorum, roles) live in `ridgeline.review`.
    """
    if status not in ENTRY_STATUSES:
        raise BadInput(f"status must be one of {', '.join(ENTRY_STATUSES)}")
    old = entry.status
    if old == status:
        return entry
    if entry.deleted_at is not None:
        raise Conflict(f"entry {entry.id} is deleted")
    if status not in STATUS_TRANSITIONS.get(old, frozenset()):
        allowed = ", ".join(sorted(STATUS_TRANSITIONS.get(old, frozenset()))) or "none"
        raise Conflict(f"entry {entry.id} is {old}; it cannot become {status} (allowed: {allowed})")
    entry.status = status
    session.flush()
    record_event(session, entry, "status", actor, old=old, new=status, reason=reason)
    record_change(session, entry.list_id, entry.id, "add" if status == "confirmed" else "remove")
    return entry


def retire_entry(
    session: Session, entry: Entry, *, actor: str | None = None, reason: str | None = None
) -> Entry:
    """Withdraw an entry for good (audit finding, provider feedback): the end state."""
    if entry.status == "retired":
        raise Conflict(f"entry {entry.id} is already retired")
    return set_entry_status(session, entry, "retired", actor=actor, reason=reason)


def set_entry_classifications(
    session: Session,
    entry: Entry,
    classifications: Sequence[Mapping[str, str]],
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> Entry:
    """Replace an entry's classifications (each with its scheme)."""
    new = [validate_classification(c) for c in classifications]
    old = list(entry.classifications or [])
    if new == old:
        return entry
    entry.classifications = new
    session.flush()
    record_event(session, entry, "classify", actor, old=old, new=new, reason=reason)
    record_change(session, entry.list_id, entry.id, "update")
    return entry


def expire_disables(
    session: Session, *, now: dt.datetime | None = None, actor: str | None = None
) -> list[Entry]:
    """Re-enable entries whose timed disable has run out, with history and feed records.

    `is_matchable` already honours the expiry; this makes it explicit in the data so
    indexes and exports see it too.
    """
    now = now or utcnow()
    ending = timed_disables(ending_by=now).with_only_columns(Entry.id).order_by(None)
    due = list(session.scalars(select(Entry).where(Entry.id.in_(ending)).order_by(Entry.id)))
    for entry in due:
        until = entry.disabled_until
        entry.enabled = True
        entry.disabled_until = None
        session.flush()
        record_event(session, entry, "enable", actor, reason="disable expired",
                     expired=isoformat(until))  # fmt: skip
        record_change(session, entry.list_id, entry.id, "add")
    return due


def list_entries(
    session: Session,
    hash_list: HashList,
    *,
    status: str | Sequence[str] | None = None,
    enabled: bool | None = None,
    classification: Mapping[str, str] | None = None,
    include_deleted: bool = False,
    after_id: int = 0,
    limit: int | None = None,
    series: str | None = None,
    victim_identified: bool | None = None,
    member: str | None = None,
) -> list[Entry]:
    """A list's entries by id, filtered by status, enabled flag, classification, series,
    victim-identified flag and sharing member (its id or name).

    Page with `after_id` (the last id seen) and `limit`.
    """
    query = (
        select(Entry)
        .options(selectinload(Entry.signals))
        .where(Entry.list_id == hash_list.id, Entry.id > after_id)
        .order_by(Entry.id)
    )
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        for s in wanted:
            if s not in ENTRY_STATUSES:
                raise BadInput(f"status must be one of {', '.join(ENTRY_STATUSES)}, not {s!r}")
        query = query.where(Entry.status.in_(wanted))
        if "confirmed" not in wanted:  # the partial index ix_entries_unconfirmed
            query = query.where(Entry.status != "confirmed")
    if enabled is not None:
        query = query.where(Entry.enabled.is_(enabled))
    if series is not None:
        query = query.where(Entry.series == series)
    if victim_identified is not None:
        query = query.where(Entry.victim_identified.is_(victim_identified))
    if member is not None:
        query = query.where(or_(Entry.origin_member == member, Entry.origin_member_name == member))
    if not include_deleted:
        query = query.where(Entry.deleted_at.is_(None))
    if classification is None:
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query))
    wanted_class = validate_classification(classification)
    out: list[Entry] = []
    # JSON containment differs by backend; filter in Python over id-ordered batches.
    for entry in session.scalars(query.execution_options(yield_per=1000)):
        if wanted_class in (entry.classifications or []):
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
    return out


def entry_history(session: Session, entry_id: int) -> list[EntryEvent]:
    """Every recorded event of an entry, oldest first: its own events, and the
    `import` event its import batch stands for (not stored per entry; its `id` is
    None)."""
    entry = get_entry(session, entry_id)
    events = list(
        session.scalars(
            select(EntryEvent)
            .where(EntryEvent.entry_id == entry_id)
            .order_by(EntryEvent.at, EntryEvent.id)
        )
    )
    batch = entry.batch
    if batch is not None:
        runs = session.scalar(
            select(ImportRange.positions).where(
                ImportRange.batch_id == batch.id,
                ImportRange.first_entry_id <= entry_id,
                ImportRange.last_entry_id >= entry_id,
            )
        )
        details: dict[str, Any] = {"batch": batch.batch, "format": batch.format}
        details["position"] = _position_of(runs or [], entry_id)
        details["status"] = batch.status
        imported = EntryEvent(
            entry_id=entry_id,
            at=batch.at,
            actor=batch.actor,
            action="import",
            details=details,
        )
        events.insert(0, imported)
    return events


def event_to_json(event: EntryEvent) -> dict[str, Any]:
    """JSON view of one history event."""
    return {
        "id": event.id,
        "entry_id": event.entry_id,
        "at": isoformat(event.at),
        "actor": event.actor,
        "action": event.action,
        "details": event.details or {},
    }


def delete_entry(
    session: Session, entry: Entry, *, actor: str | None = None, reason: str | None = None
) -> Entry:
    """Tombstone an entry: never matched again, kept for history and for syncing deletions."""
    if entry.deleted_at is None:
        entry.deleted_at = utcnow()
        session.flush()
        record_event(session, entry, "delete", actor, reason=reason)
        record_change(session, entry.list_id, entry.id, "remove")
    return entry


def list_to_json(hash_list: HashList, *, entry_count: int | None = None) -> dict[str, Any]:
    """JSON view of a list's settings."""
    out: dict[str, Any] = {
        "id": hash_list.id,
        "name": hash_list.name,
        "owner": hash_list.owner,
        "description": hash_list.description,
        "purpose": hash_list.purpose,
        "enabled": hash_list.enabled,
        "signals": hash_list.signals or [],
        "thresholds": hash_list.thresholds or {},
        "review_quorum": hash_list.review_quorum,
        "created_at": isoformat(hash_list.created_at),
    }
    if entry_count is not None:
        out["entries"] = entry_count
    return out


def entry_to_json(entry: Entry) -> dict[str, Any]:
    """JSON view of an entry with its hashes and provenance."""
    return {
        "id": entry.id,
        "list_id": entry.list_id,
        "status": entry.status,
        "enabled": entry.enabled,
        "disabled_until": isoformat(entry.disabled_until),
        "signals": {s.signal: s.value for s in entry.signals},
        "classifications": entry.classifications or [],
        "source": entry.source,
        "provenance": {
            "origin_list": entry.origin_list,
            "origin_member": entry.origin_member,
            "origin_entry_id": entry.origin_entry_id,
            "origin_member_name": entry.origin_member_name,
            "import_batch": entry.batch_name,
        },
        "series": entry.series,
        "victim_identified": entry.victim_identified,
        "case_numbers": entry.case_numbers or [],
        "note": entry.note,
        "submitted_by": entry.submitter,
        "created_at": isoformat(entry.created),
        "updated_at": isoformat(entry.updated),
        "deleted_at": isoformat(entry.deleted_at),
    }
