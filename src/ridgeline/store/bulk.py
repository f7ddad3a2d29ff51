"""Bulk inserts for hot paths: COPY on PostgreSQL, one executemany on SQLite.

SQLAlchemy's executemany builds a parameter dictionary per row, which costs more than
the database's own work for narrow rows (an intake batch writes tens of thousands of
identifier rows). `insert_rows` hands plain tuples to the driver instead, in the
caller's transaction (it flushes nothing and commits nothing). Values are converted the
way the SQLAlchemy column types store them, so the ORM reads the rows back unchanged:
on SQLite, datetimes as naive UTC text, booleans as 0/1 and JSON as text.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, DateTime, Table
from sqlalchemy.orm import Session


def sqlite_datetime(value: dt.datetime) -> str:
    """A datetime as SQLAlchemy stores it on SQLite (naive UTC text)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


#: json.dumps's own C encoder with json.dumps's settings, made once: json.dumps builds
#: it on every call (a few microseconds, six times per `/v1/match` report draft).
#: Without the circular-reference check (its markers would be shared between threads):
#: JSON columns hold trees.
_encode = c_make_encoder(
    None, json.JSONEncoder().default, encode_basestring_ascii, None, ": ", ", ", False, False, True
) if c_make_encoder is not None else None  # fmt: skip


def json_text(value: Any) -> str:
    """`json.dumps(value)`: what SQLAlchemy's JSON type stores with the default serializer."""
    if _encode is None:  # pragma: no cover - CPython has the C encoder
        return json.dumps(value)
    return "".join(_encode(value, 0))


def _sqlite_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return sqlite_datetime(value)
    if kind == "bool":
        return 1 if value else 0
    if kind == "json":
        return json.dumps(value)
    return value


def _kinds(table: Table, columns: Sequence[str]) -> list[str]:
    out = []
    for name in columns:
        t = table.c[name].type
        if isinstance(t, DateTime):
            out.append("datetime")
        elif isinstance(t, Boolean):
            out.append("bool")
        elif isinstance(t, JSON):
            out.append("json")
        else:
            out.append("plain")
    return out


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert `rows` (tuples in `columns` order) into `table` in the session's transaction."""
    if not rows:
        return
    conn = session.connection()
    kinds = _kinds(table, columns)
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.dbapi_connection
        json_cols = [i for i, k in enumerate(kinds) if k == "json"]
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                if json_cols:
                    row = list(row)
                    for i in json_cols:
                        row[i] = json.dumps(row[i]) if row[i] is not None else None
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    # sqlite3 stores booleans as 0/1 itself; only datetimes and JSON need converting.
    convert = [(i, k) for i, k in enumerate(kinds) if k in ("datetime", "json")]
    if convert:
        # A batch's identifiers share a handful of times (the incident's, the captures'):
        # each distinct datetime is formatted once.
        done: dict[Any, Any] = {}
        out = []
        for row in rows:
            values = list(row)
            for i, k in convert:
                v = values[i]
                if v is None:
                    continue
                if k == "datetime":
                    text = done.get(v)
                    if text is None:
                        text = done[v] = _sqlite_value(k, v)
                    values[i] = text
                else:
                    values[i] = _sqlite_value(k, v)
            out.append(tuple(values))
        rows = out
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) VALUES ({marks})", [tuple(r) for r in rows]
    )


#: Rows per multi-row INSERT on SQLite: at 15 values a row, 960 parameters a statement,
#: under even old builds' 999.
VALUES_ROWS = 64


def insert_values(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """SQLite `INSERT ... VALUES (..), (..), ...` of `VALUES_ROWS` plain tuples a
    statement, in order: the same rows and rowids as a row a statement, with the
    driver's per-statement work paid once per 64 rows (a fifth to a third less CPU for
    wide rows: list entries, victims records). Values go to the driver as they are."""
    if not rows:
        return
    one = "(" + ", ".join("?" * len(columns)) + ")"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    full = len(rows) - len(rows) % VALUES_ROWS
    if full:
        # one iterator over the values, taken a statement's worth at a time
        flat = iter(itertools.chain.from_iterable(itertools.islice(rows, full)))
        statements = list(zip(*[flat] * (len(columns) * VALUES_ROWS), strict=True))
        conn.exec_driver_sql(head + ", ".join([one] * VALUES_ROWS), statements)
    if full < len(rows):
        conn.exec_driver_sql(head + one, [tuple(r) for r in rows[full:]])


def select_in(
    session: Session,
    sql: str,
    values: Sequence[Any],
    *,
    before: Sequence[Any] = (),
    after: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """Rows of `sql` as plain tuples; in `sql`, `{in}` is a placeholder per value of
    `values` and each `{p}` one more parameter (`before` the list, then `after` it).

    For the linker's lookups of hundreds of identifier values per query: a SQLAlchemy
    `in_()` builds and then expands a bound parameter per value, which costs more than
    SQLite's own indexed lookup. Only for columns the driver returns as they are stored
    (text, integers).
    """
    if not values:
        return []
    conn = session.connection()
    if conn.dialect.name == "postgresql" and "IN ({in})" in sql:
        # One array parameter (`= ANY(%b)`, the same rows as the IN list), sent in binary
        # (psycopg's text form of an array quotes each element with a regex): the
        # statement text stays short and the same, so psycopg parses it once (it
        # re-parses a long statement on every call) and the server can prepare it.
        query = sql.replace("IN ({in})", "= ANY(%b)").replace("{p}", "%s")
        params: tuple[Any, ...] = (*before, list(values), *after)
        return [tuple(r) for r in conn.exec_driver_sql(query, params)]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    query = sql.replace("{in}", ", ".join(mark for _ in values)).replace("{p}", mark)
    return [tuple(r) for r in conn.exec_driver_sql(query, (*before, *values, *after))]


class PreparedInsert:
    """One INSERT of a row, compiled once, for a per-request hot path (a `/v1/match`
    report draft writes three rows; SQLAlchemy's per-statement execution context cost
    as much as SQLite's own work). On SQLite it runs on the driver's cursor with the
    SQL text and bind processors SQLAlchemy compiled for the same columns, so the row
    is exactly what `conn.execute(insert(table), values)` would write, in the caller's
    transaction; other databases go through `conn.execute`.

    `columns` are the keys every call gives; a column left out must have a scalar
    default (filled in as SQLAlchemy would) or be nullable.
    """

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        from sqlalchemy import insert

        self.table = table
        self.columns = tuple(columns)
        self.statement = insert(table)
        self.defaults: dict[str, Any] = {}
        for col in table.columns:
            if col.key in self.columns or col.default is None:
                continue
            default: Any = col.default
            if not default.is_scalar:
                raise ValueError(f"{table.name}.{col.key}: a callable default must be given")
            self.defaults[col.key] = default.arg
        self._sqlite: tuple[str, tuple[str, ...], tuple[Any, ...]] | None = None
        self._order: tuple[str, tuple[int | None, ...], tuple[Any, ...]] | None = None

    def _compiled(self, dialect: Any) -> tuple[str, tuple[str, ...], tuple[Any, ...]]:
        if self._sqlite is None:
            compiled: Any = self.statement.compile(
                dialect=dialect, column_keys=[*self.columns, *self.defaults]
            )
            names = tuple(compiled.positiontup)
            processors = compiled._bind_processors  # what the execution context applies
            self._sqlite = (compiled.string, names, tuple(processors.get(n) for n in names))
        return self._sqlite

    def _driver_order(self, dialect: Any) -> tuple[str, tuple[int | None, ...], tuple[Any, ...]]:
        """For `driver_row`: the SQL, and per placeholder the index of the column in
        `columns` (None for a default) and the default's stored value."""
        if self._order is None:
            sql, names, processors = self._compiled(dialect)
            index = {name: i for i, name in enumerate(self.columns)}
            where = tuple(index.get(name) for name in names)
            stored = tuple(
                None
                if name in index
                else (self.defaults[name] if proc is None else proc(self.defaults[name]))
                for name, proc in zip(names, processors, strict=True)
            )
            self._order = (sql, where, stored)
        return self._order

    def driver_row(self, conn: Connection, row: Sequence[Any], *, driver: Any = None) -> int:
        """SQLite only: insert one row given as the driver's values in `columns` order
        (what the bind processors would make: JSON as text, datetimes as
        `sqlite_datetime` text, booleans as 0/1), so that a hot path that has them
        ready skips the processors; its rowid. `driver`: `conn`'s sqlite3 connection,
        when the caller already has it (several rows in one transaction)."""
        sql, where, stored = self._driver_order(conn.dialect)
        params = [row[i] if i is not None else d for i, d in zip(where, stored, strict=True)]
        if driver is None:
            driver = conn.connection.driver_connection
        cursor = driver.execute(sql, params)
        rowid: int = cursor.lastrowid
        cursor.close()
        return rowid

    def __call__(self, conn: Connection, values: dict[str, Any]) -> int | None:
        """Insert one row; its integer primary key (SQLite's rowid)."""
        if conn.dialect.name != "sqlite":
            result = conn.execute(self.statement, values)
            key = result.inserted_primary_key
            return int(key[0]) if key is not None and key[0] is not None else None
        sql, names, processors = self._compiled(conn.dialect)
        defaults = self.defaults
        params = []
        for name, proc in zip(names, processors, strict=True):
            v = values[name] if name in values else defaults[name]
            params.append(v if proc is None else proc(v))
        driver: Any = conn.connection.driver_connection
        cursor = driver.cursor()
        try:
            cursor.execute(sql, params)
            rowid: int = cursor.lastrowid
            return rowid
        finally:
            cursor.close()
