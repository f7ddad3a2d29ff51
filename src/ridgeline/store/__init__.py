"""The store: one interface over SQLite (default, WAL) and PostgreSQL.

`Store.open(db)` resolves `--db` / `RIDGELINE_DB`, creates the database if needed and
brings its schema to the newest Alembic migration; `Store.open(db, create=False)`
(what every CLI command but `db init` and `lists create` uses) refuses a database that
is not there, so a mistyped `--db` fails instead of making an empty one. Library code
gets sessions from `store.session()`; nothing outside `ridgeline.store` builds engines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ridgeline.config import resolve_db_url, sqlite_file
from ridgeline.errors import NotFound
from ridgeline.fastread import HEAD_REVISION as _HEAD_REVISION

_log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: The newest migration's revision (kept in `ridgeline.fastread`, which must not import
#: SQLAlchemy). Opening a database that is already there costs one query instead of
#: importing Alembic (a quarter of a second on every CLI call); `tests/test_store.py`
#: checks that this equals Alembic's head.
HEAD_REVISION = _HEAD_REVISION


#: Page cache (KiB) of every SQLite connection (SQLite's default is 2 MB): see below.
DEFAULT_CACHE_KIB = 64 * 1024


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # 64 MiB of page cache (the default is 2 MiB): intake's inserts land all over the
    # identifier and link indexes, and re-reading their pages from the OS was a large
    # share of its time (bench/intake.py at 20,000 reports).
    cursor.execute(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")
    cursor.close()


#: SQLite connections `Store.transaction` keeps between transactions (one per thread
#: drafting at the same moment; more go back to the pool).
HOT_CONNECTIONS = 2


#: Page cache (KiB) of a connection doing a bulk import (`bulk_page_cache`); it goes
#: back to every connection's own (`DEFAULT_CACHE_KIB`) when it returns to the pool.
BULK_CACHE_KIB = 256 * 1024


def bulk_page_cache(connection: Connection) -> None:
    """Give an SQLite connection a large page cache until it returns to the pool.

    A bulk import inserts keys in random order into `ix_entry_signals_key`; with the
    default 2 MB cache its pages spill into the WAL and are read back many times over
    inside the one transaction (system time, and super-linear past a few million rows:
    issue 10). PostgreSQL: nothing to do.
    """
    if connection.dialect.name != "sqlite" or connection.info.get("bulk_cache"):
        return
    connection.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    connection.info["bulk_cache"] = True


def hold_page_cache(connection: Connection) -> None:
    """Keep an SQLite connection's own page cache for a bulk job that inserts nothing at
    random (`bulk_page_cache` is then a no-op on it until it returns to the pool): the
    large cache is for random inserts into the key index, and a txt import that defers
    that index (`lists.DeferredKeyIndex`) only appends, where 192 MB more of cache beside
    the import's packed rows took a 10M import to 1 GB."""
    if connection.dialect.name == "sqlite" and not connection.info.get("bulk_cache"):
        connection.info["bulk_cache"] = True


def end_bulk_page_cache(connection: Connection) -> None:
    """Give back what `bulk_page_cache` took now rather than at checkin: an import of
    records in a session that goes on. Best effort: after a failed import the error
    already on its way matters more."""
    if connection.closed or not connection.info.pop("bulk_cache", None):
        return
    with suppress(SQLAlchemyError):
        connection.exec_driver_sql(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")


#: WAL pages after which a connection committing batch after batch checkpoints
#: (`batch_checkpoints`; SQLite's default, kept by every other connection, is 1,000).
BATCH_WAL_PAGES = 80_000


def batch_checkpoints(connection: Connection) -> None:
    """Let an SQLite connection that commits one batch after another (intake) checkpoint
    every `BATCH_WAL_PAGES` WAL pages until it returns to the pool.

    An intake batch of 1,000 reports dirties thousands of pages spread over the
    identifier and link indexes, more as they grow: with SQLite's default every commit
    was followed by a checkpoint copying them all into the database and syncing it
    (the largest share of a batch's time past 200,000 reports). Checkpointing every
    320 MB writes the pages several batches touched once and syncs rarely; each commit
    is as durable as before (the WAL holds it). Past 400,000 reports a batch puts some
    12,000 pages in the WAL, so at 20,000 pages nearly every batch still checkpointed;
    at 80,000 it is one in six or seven (20,000 reports into a store of 430,000: 15.5 s
    against 17.5). The WAL file grows to some 370 MB while a run lasts. PostgreSQL:
    nothing to do.
    """
    if connection.dialect.name != "sqlite" or connection.info.get("batch_wal"):
        return
    connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={BATCH_WAL_PAGES}")
    connection.info["batch_wal"] = True


def _sqlite_checkin(dbapi_connection: Any, record: Any) -> None:
    """A pooled connection gives back what `bulk_page_cache` and `batch_checkpoints`
    took."""
    cache, wal = record.info.pop("bulk_cache", None), record.info.pop("batch_wal", None)
    if cache or wal:
        cursor = dbapi_connection.cursor()
        if cache:
            cursor.execute(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")
        if wal:
            cursor.execute("PRAGMA wal_autocheckpoint=1000")
        cursor.close()


class GrowingTables:
    """Keeps PostgreSQL's planner statistics true while one bulk job grows its tables.

    Autovacuum analyzes a table only once a fifth of it has changed, and lags behind a
    job that keeps writing: tables first planned as empty go on being planned as tiny,
    so the lookups a job makes for every batch (identifiers by kind and value, then
    their cases) filter or hash everything written so far instead of using the index,
    and each batch costs more than the one before. ANALYZE reads a bounded sample, so
    running it whenever the job has doubled what it has written costs a handful of
    runs in all. SQLite plans from its indexes without statistics: nothing is done."""

    def __init__(self, store: Store, tables: Sequence[str], *, first: int = 2000) -> None:
        self.store, self.tables = store, tuple(tables)
        self.written, self.next_at = 0, float(first)

    def grew(self, rows: int) -> None:
        """`rows` more were committed; analyze the tables if the job has doubled them."""
        self.written += rows
        if self.written < self.next_at or self.store.dialect != "postgresql":
            return
        self.next_at = 2 * self.written
        try:
            with self.store.engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE " + ", ".join(self.tables))
                connection.commit()
        except DBAPIError as exc:  # not the tables' owner, say: the writes stand
            self.next_at = float("inf")
            _log.warning(
                "ANALYZE %s failed, planner statistics left to autovacuum: %s",
                ", ".join(self.tables),
                exc.orig,
            )


def missing_database_message(where: str) -> str:
    """The one message for a database that is not there (a mistyped --db, most often)."""
    return (
        f"no Ridgeline database at {where}: check --db / RIDGELINE_DB, or create one "
        f"with `ridgeline db init --db {where}`"
    )


class Store:
    """A database Ridgeline reads and writes, SQLite or PostgreSQL."""

    def __init__(self, url: str, *, migrate: bool = True, create: bool = True) -> None:
        self.url = url
        #: True when this open made the database (an SQLite file or a fresh schema).
        self.created = False
        path = sqlite_file(url)
        if path is not None and not path.exists():
            if not create:
                raise NotFound(missing_database_message(str(path)))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.created = True
        # A server may drop an idle connection (restart, idle timeout): ping it on each
        # checkout. An SQLite file connection cannot go stale, and the ping was a
        # statement on every transaction (a tenth of a `/v1/match` report draft's cost).
        # The most recently returned connection first (a queue's default is the oldest):
        # a job holding its session while it borrows a second connection for a moment
        # (triage's victims lookup inside an intake batch) would otherwise take the
        # other one for its next batch. Each then filled its own 64 MiB page cache with
        # the same index pages, and SQLite empties a connection's cache when another
        # has written since its last transaction, so no batch found the last one's
        # pages. An in-memory SQLite database has one connection and no queue.
        lifo = {} if path is None and self.url.startswith("sqlite") else {"pool_use_lifo": True}
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=path is None, **lifo)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "checkin", _sqlite_checkin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: SQLite: connections `transaction` keeps checked out between its transactions
        #: (at most `HOT_CONNECTIONS`), and the process they belong to.
        self._hot: list[Connection] = []
        self._hot_pid = os.getpid()
        if not create and self.current_revision() is None:
            self.engine.dispose()
            raise NotFound(missing_database_message(self.display_url))
        if migrate:
            if self.current_revision() is None:
                self.created = True
            self.migrate()

    @classmethod
    def open(
        cls,
        db: str | os.PathLike[str] | None = None,
        *,
        migrate: bool = True,
        create: bool = True,
    ) -> Store:
        """Open (and by default migrate) the database named by `db` or `RIDGELINE_DB`.

        With `create=False` a database that does not exist yet (no SQLite file, or no
        Ridgeline schema in PostgreSQL) is a `NotFound` naming it, and nothing is made.
        """
        return cls(resolve_db_url(db), migrate=migrate, create=create)

    @property
    def display_url(self) -> str:
        """The SQLite file path, or the URL without its password."""
        path = sqlite_file(self.url)
        if path is not None:
            return str(path)
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def current_revision(self) -> str | None:
        """The schema's Alembic revision, or None for a database never migrated."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(text("SELECT version_num FROM alembic_version"))
                versions = [str(v) for (v,) in rows]
        except DBAPIError:  # no alembic_version table yet
            return None
        return versions[0] if len(versions) == 1 else None

    def migrate(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to `revision` (the newest by default)."""
        if revision == "head" and self.current_revision() == HEAD_REVISION:
            return
        from alembic import command

        if self.dialect != "sqlite":
            with self.engine.begin() as connection:
                command.upgrade(self.alembic_config(connection), revision)
            return
        # SQLite: a migration in batch mode recreates a table (DROP and rename); with
        # foreign keys on, the DROP cascaded to every row referring to it (0012 would
        # have emptied entry_signals). The pragma only takes effect outside a
        # transaction, so it is set before the migration's and restored after.
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            try:
                with connection.begin():
                    command.upgrade(self.alembic_config(connection), revision)
            finally:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()

    def alembic_config(self, connection: Any = None) -> Any:
        """An Alembic config pointing at the packaged migrations and this database."""
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["connection"] = connection
        return cfg

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core transaction (no ORM session): committed when the block ends, rolled back
        on any error. For hot paths that only run prepared INSERTs (a `/v1/match` report
        draft): an ORM session's set-up, commit and close cost about as much as the draft.

        On SQLite the connection is not given back to the pool after a commit but kept
        for the next transaction (at most `HOT_CONNECTIONS` of them, so the pool keeps the
        rest): the pool's checkout and checkin (its reset, events and queue) were a
        sixth of a hit's draft (bench/reports.py). A connection whose transaction failed
        goes back to the pool (which rolls it back), never to the next caller.

        SQLite: no SQLAlchemy transaction is begun (pysqlite's BEGIN comes with the
        first write either way); the block's work is committed through the driver, or
        through SQLAlchemy if the block used it (it began one): SQLAlchemy's begin and
        commit around the driver's cost some 10 us of a hit's draft (bench/reports.py)."""
        if self.dialect != "sqlite":
            with self.engine.begin() as connection:
                yield connection
            return
        hot = self._hot
        if self._hot_pid != os.getpid():  # a forked child: the parent's connections are not ours
            hot = self._hot = []
            self._hot_pid = os.getpid()
        try:
            connection = hot.pop()
        except IndexError:
            connection = self.engine.connect()
        try:
            yield connection
            if connection.in_transaction():
                connection.commit()
            else:
                driver: Any = connection.connection.driver_connection
                driver.commit()
        except BaseException:
            connection.close()
            raise
        if len(hot) < HOT_CONNECTIONS and not connection.invalidated:
            hot.append(connection)
        else:
            connection.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Release pooled connections (and those `transaction` keeps)."""
        while self._hot:
            with suppress(SQLAlchemyError):
                self._hot.pop().close()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.display_url}>"
