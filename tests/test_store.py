"""The store on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.config import resolve_db_url
from ridgeline.errors import Conflict, InvalidHash, NotFound
from ridgeline.lists.models import Change, Entry
from ridgeline.store import HEAD_REVISION, Store

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def test_resolve_db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_db_url(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_db_url("postgresql://u@h:5/d") == "postgresql+psycopg://u@h:5/d"
    monkeypatch.setenv("RIDGELINE_DB", str(tmp_path / "env.db"))
    assert resolve_db_url(None).endswith("env.db")


def test_sqlite_uses_wal(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_migrations_create_tables(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"content", "content_signals", "lists", "entries", "entry_signals", "changes"} <= tables
    assert "alembic_version" in tables
    store.migrate()  # idempotent


def test_list_and_entry_roundtrip(store: Store) -> None:
    with store.session() as s:
        hl = L.create_list(s, "known", thresholds={"pdq": 20})
        entry = L.add_entry(
            s,
            hl,
            {"pdq": PDQ.upper(), "md5": "D41D8CD98F00B204E9800998ECF8427E"},
            classifications=[{"scheme": "industry", "label": "a1"}],
            source="unit-test",
            actor="alice",
        )
        entry_id = entry.id
    with store.session() as s:
        got = L.entry_to_json(L.get_entry(s, entry_id))
        assert got["signals"] == {"pdq": PDQ, "md5": "d41d8cd98f00b204e9800998ecf8427e"}
        assert got["classifications"] == [{"scheme": "industry", "label": "A1"}]
        assert got["status"] == "confirmed"
        assert L.get_list(s, "known").threshold_for("pdq", 31) == 20
        assert [c.op for c in s.query(Change).order_by(Change.seq)] == ["add"]


def test_refusals_keep_stored_data(store: Store) -> None:
    with store.session() as s:
        hl = L.create_list(s, "known")
        L.add_entry(s, hl, {"pdq": PDQ})
    with pytest.raises(Conflict), store.session() as s:
        L.create_list(s, "known")
    with pytest.raises(InvalidHash), store.session() as s:
        L.add_entry(s, L.get_list(s, "known"), {"pdq": "xyz"})
    with pytest.raises(NotFound), store.session() as s:
        L.get_list(s, "missing")
    with store.session() as s:
        assert s.query(Entry).count() == 1


def test_review_policy_makes_entries_pending(store: Store) -> None:
    with store.session() as s:
        hl = L.create_list(s, "reviewed", review_quorum=3)
        entry = L.add_entry(s, hl, {"pdq": PDQ})
        assert entry.status == "pending"
        assert not L.is_matchable(entry, hl)


def test_disable_with_expiry_and_tombstone(store: Store) -> None:
    import datetime as dt

    from ridgeline.timeutil import utcnow

    with store.session() as s:
        hl = L.create_list(s, "known")
        entry = L.add_entry(s, hl, {"pdq": PDQ})
        assert L.is_matchable(entry, hl)
        until = utcnow() + dt.timedelta(hours=1)
        L.set_entry_enabled(s, entry, False, until=until, actor="bob")
        assert not L.is_matchable(entry, hl)
        assert L.is_matchable(entry, hl, now=until + dt.timedelta(seconds=1))
        L.set_entry_enabled(s, entry, True)
        L.delete_entry(s, entry, actor="bob", reason="test")
        assert not L.is_matchable(entry, hl)
        assert entry.deleted_at is not None


def test_import_plain_formats(store: Store, tmp_path: Path) -> None:
    txt = tmp_path / "h.txt"
    txt.write_text(f"# comment\n{PDQ}\nnot-a-hash\n\n{PDQ.upper()}\n")
    with store.session() as s:
        hl = L.create_list(s, "known")
        report = exchange.import_file(s, hl, txt, "txt", signal="pdq")
    assert (report.added, report.duplicates) == (1, 1)
    assert report.errors == [
        {
            "position": "line 3",
            "error": "invalid pdq hash 'not-a-hash': expected 64 hexadecimal characters (256 bits)",
        }
    ]
    other = format(int(PDQ, 16) ^ 1, "064x")
    csv_file = tmp_path / "h.csv"
    csv_file.write_text(f"pdq,classification,source\n{other},industry:B2,hotline\n,industry:A1,x\n")
    jsonl = tmp_path / "h.jsonl"
    jsonl.write_text('{"md5": "d41d8cd98f00b204e9800998ecf8427e"}\n{bad json\n')
    with store.session() as s:
        hl = L.get_list(s, "known")
        r_csv = exchange.import_file(s, hl, csv_file, "csv")
        r_jsonl = exchange.import_file(s, hl, jsonl, "jsonl")
    assert r_csv.added == 1 and r_csv.errors[0]["position"] == "line 3"
    assert r_jsonl.added == 1 and r_jsonl.errors[0]["position"] == "line 2"
    assert "malformed JSON" in r_jsonl.errors[0]["error"]


def test_migrations_are_one_chain_matching_the_models(store: Store) -> None:
    """Every table the code knows comes from a migration, and migrations form one line."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    import ridgeline.schema  # noqa: F401
    from ridgeline.store.models import Base

    script = ScriptDirectory.from_config(store.alembic_config())
    assert script.get_heads() == [HEAD_REVISION]
    assert store.current_revision() == HEAD_REVISION
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_open_upgrades_an_older_schema(tmp_path: Path) -> None:
    """The one-query shortcut only skips Alembic when the schema is already at head."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, migrate=False)
    assert old.current_revision() is None
    old.migrate("0003")
    assert old.current_revision() == "0003"
    old.close()
    with Store(url) as store:
        assert store.current_revision() == HEAD_REVISION
        assert "api_keys" in inspect(store.engine).get_table_names()


def test_mistyped_db_fails_and_creates_nothing(tmp_path: Path) -> None:
    """Only `db init` and `lists create` create a database; others name the missing one."""
    from click.testing import CliRunner

    from ridgeline.cli import main

    runner = CliRunner()
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    for args in (
        ["lists", "ls"],
        ["lists", "show", "known"],
        ["db", "upgrade"],
        ["scan", str(tmp_path)],
        ["keys", "list"],
        ["log", "verify"],
        ["db", "where"],
    ):
        res = runner.invoke(main, [*args, "--db", str(missing)])
        if args == ["db", "where"]:
            assert res.exit_code == 0 and str(missing) in res.stdout
        else:
            assert res.exit_code == 1, (args, res.output)
            assert f"no Ridgeline database at {missing}" in res.stderr, args
            assert "db init" in res.stderr
        assert not (tmp_path / "nonexistent").exists(), args
    res = runner.invoke(main, ["db", "init", "--db", str(missing)])
    assert res.exit_code == 0, res.output
    assert f"created database {missing}" in res.stderr and missing.is_file()
    res = runner.invoke(main, ["db", "init", "--db", str(missing)])
    assert res.exit_code == 0 and "created" not in res.stderr  # says so only when it does
    assert runner.invoke(main, ["lists", "ls", "--db", str(missing)]).exit_code == 0
    first = tmp_path / "new" / "first.db"
    res = runner.invoke(main, ["lists", "create", "known", "--db", str(first), "--format", "json"])
    assert res.exit_code == 0 and f"created database {first}" in res.stderr
    assert res.stdout.startswith("{")
    res = runner.invoke(main, ["lists", "create", "other", "--db", str(first)])
    assert res.exit_code == 0 and "created database" not in res.stderr


@pytest.mark.postgres
def test_refusing_open_on_postgresql_without_schema(pg_server_url: str) -> None:
    """An empty PostgreSQL database is not a Ridgeline one until `db init` (or create=True)."""
    from sqlalchemy import create_engine

    engine = create_engine(resolve_db_url(pg_server_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    with pytest.raises(NotFound, match="no Ridgeline database at postgresql"):
        Store.open(pg_server_url, create=False)
    created = Store.open(pg_server_url)
    assert created.created
    created.close()
    again = Store.open(pg_server_url, create=False)
    assert not again.created
    again.close()


def test_list_counts_follow_every_writer(store: Store) -> None:
    """The trigger-kept count equals a real count after ORM adds, bulk inserts, tombstones,
    hard deletes and list deletion (what `lists ls` shows without scanning entries)."""
    from sqlalchemy import delete, func, insert, select

    from ridgeline.lists.models import HashList, ListCount

    def counts(session: object) -> tuple[dict[int, int], dict[int, int]]:
        kept = dict(session.execute(select(ListCount.list_id, ListCount.entries)).all())  # type: ignore[attr-defined]
        real = dict(
            session.execute(  # type: ignore[attr-defined]
                select(HashList.id, func.count(Entry.id))
                .outerjoin(Entry, (Entry.list_id == HashList.id) & Entry.deleted_at.is_(None))
                .group_by(HashList.id)
            ).all()
        )
        return kept, real

    with store.session() as s:
        a = L.create_list(s, "a")
        b = L.create_list(s, "b")
        for i in range(3):
            L.add_entry(s, a, {"md5": f"{i:032x}"})
        s.execute(insert(Entry), [{"list_id": b.id, "status": "confirmed"} for _ in range(5)])
        kept, real = counts(s)
        assert kept == real == {a.id: 3, b.id: 5}
        L.delete_entry(s, L.list_entries(s, a)[0])  # tombstone
        s.execute(delete(Entry).where(Entry.id == s.scalar(select(func.max(Entry.id)))))
        kept, real = counts(s)
        assert kept == real == {a.id: 2, b.id: 4}
        s.execute(delete(HashList).where(HashList.id == b.id))  # entries cascade
        kept, real = counts(s)
        assert kept == real == {a.id: 2}


def test_transaction_keeps_its_sqlite_connection_and_drops_a_failed_one(store: Store) -> None:
    """`Store.transaction` commits at the end and rolls back on an error, on both
    databases. On SQLite a committed transaction's connection stays checked out for the
    next one (at most `HOT_CONNECTIONS`), a failed one goes back to the pool, and
    `close` gives every one back."""
    from ridgeline.store import HOT_CONNECTIONS

    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE hot_rows (name VARCHAR(20))"))
    with store.transaction() as conn:
        conn.execute(text("INSERT INTO hot_rows (name) VALUES ('kept')"))
    kept = 1 if store.dialect == "sqlite" else 0
    assert store.engine.pool.checkedout() == kept  # type: ignore[attr-defined]
    with store.transaction() as again:  # the same connection, in a new transaction
        assert again.execute(text("SELECT count(*) FROM hot_rows")).scalar() == 1
    assert store.engine.pool.checkedout() == kept  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute(text("INSERT INTO hot_rows (name) VALUES ('lost')"))
        raise RuntimeError("a failed draft")
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with store.engine.connect() as c:
        assert [r[0] for r in c.execute(text("SELECT name FROM hot_rows"))] == ["kept"]
    if store.dialect == "sqlite":  # writes straight to the driver (a draft's): the same
        with store.transaction() as conn:
            conn.connection.driver_connection.execute("INSERT INTO hot_rows VALUES ('driver')")
        with pytest.raises(RuntimeError), store.transaction() as conn:
            conn.connection.driver_connection.execute("INSERT INTO hot_rows VALUES ('lost')")
            raise RuntimeError("a failed draft")
        with store.engine.connect() as c:
            names = [r[0] for r in c.execute(text("SELECT name FROM hot_rows ORDER BY rowid"))]
            assert names == ["kept", "driver"]
    # threads drafting at once: each gets a connection; no more than HOT_CONNECTIONS stay
    import contextlib

    with contextlib.ExitStack() as stack:
        for _ in range(HOT_CONNECTIONS + 2):
            stack.enter_context(store.transaction())
    assert store.engine.pool.checkedout() == (HOT_CONNECTIONS if kept else 0)  # type: ignore[attr-defined]
    store.close()
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_session_gets_the_connection_returned_last(store: Store) -> None:
    """A batch that borrows a second connection for a moment (triage's victims lookup
    inside an intake transaction) must not make the next batch take that one: on
    SQLite each connection has its own page cache, emptied when another writes."""

    def driver(conn: Connection) -> int:
        return id(conn.connection.driver_connection)

    firsts = []
    for _ in range(3):
        with store.session() as s:
            firsts.append(driver(s.connection()))
            with store.engine.connect() as borrowed:
                assert driver(borrowed) != firsts[-1]
    assert len(set(firsts)) == 1


def test_growing_tables_never_fails_a_committed_write(store: Store) -> None:
    """An ANALYZE that fails (here: a table that is not there) is logged and not tried
    again; the job's writes, already committed, stand."""
    from ridgeline.store import GrowingTables

    growing = GrowingTables(store, ("no_such_table",), first=1)
    growing.grew(1)  # no exception
    assert growing.next_at == (float("inf") if store.dialect == "postgresql" else 1)
    growing.grew(5)
