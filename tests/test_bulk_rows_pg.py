"""Bulk inserts on PostgreSQL without the row triggers (`lists.core._bulk_rows`, issue 10:
10M PDQ hashes within 120 s): the foreign keys' per-row checks and the count trigger
are skipped for the bulk statements only (`session_replication_role = replica`, no
table lock), their work done by the writer. An import so stores what an import with
the triggers stores (a role that may not skip them), keeps the count, leaves the
triggers on for the rest of its transaction, rolls back whole, and lets readers and
writers of other lists go on while it runs. Benign synthetic hashes only.
"""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.exchange import ahead
from ridgeline.lists import core
from ridgeline.lists.core import BULK_SKIPPED_TRIGGERS
from ridgeline.lists.models import entry_key
from ridgeline.store import Store
from test_import_ahead import stored

pytestmark = pytest.mark.postgres


@contextlib.contextmanager
def plain_role(store: Store) -> Iterator[str]:
    """The store's URL as a new role that is no superuser (so may not set
    `session_replication_role`), with every right on the tables; dropped after."""
    role = f"ridgeline_plain_{uuid.uuid4().hex[:8]}"
    admin = create_engine(store.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER"))
        conn.execute(text(f"GRANT ALL ON SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    try:
        yield make_url(store.url).set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": role},
            )
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def pdq_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def cli_import(url: str, name: str, path: Path) -> dict[str, object]:
    result = CliRunner().invoke(
        main, ["lists", "import", name, str(path), "--signal", "pdq", "--db", url,
               "--output", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def counted(store: Store, name: str) -> int:
    """The list's entry count as `lists ls` reads it (`list_counts`)."""
    with store.session() as s:
        return int(
            s.connection()
            .execute(
                text(
                    "SELECT c.entries FROM list_counts c JOIN lists l ON l.id = c.list_id "
                    "WHERE l.name = :n"
                ),
                {"n": name},
            )
            .scalar_one()
        )


def counts_agree(store: Store) -> None:
    """`list_counts` equals the live entries, and every hash row names an entry."""
    with store.session() as s:
        conn = s.connection()
        wrong = conn.execute(
            text(
                "SELECT c.list_id FROM list_counts c WHERE c.entries <> (SELECT count(*) "
                "FROM entries e WHERE e.list_id = c.list_id AND e.deleted_at IS NULL)"
            )
        ).all()
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM entry_signals s "
                "LEFT JOIN entries e ON e.id = s.entry_id WHERE e.id IS NULL"
            )
        ).scalar()
    assert (wrong, orphans) == ([], 0)


def test_skipped_triggers_are_the_tables_triggers(pg_store: Store) -> None:
    """What `_bulk_rows` does instead of the triggers covers every trigger and foreign
    key of the two tables: a new one must be added there (and here)."""
    with pg_store.session() as s:
        found = s.connection().execute(
            text(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
                "('entries'::regclass, 'entry_signals'::regclass) UNION SELECT conname "
                "FROM pg_constraint WHERE contype = 'f' AND conrelid IN "
                "('entries'::regclass, 'entry_signals'::regclass)"
            )
        )
        assert {name for (name,) in found} == BULK_SKIPPED_TRIGGERS


def test_import_without_the_triggers_stores_what_one_with_them_stores(
    pg_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same file (a big one, through the parsing process, and a small one) into
    two lists, by the superuser (triggers skipped) and by a plain role (kept)."""
    monkeypatch.setattr(ahead, "MIN_BYTES", 1 << 10)
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    lines = pdq_lines(3000, seed=1)
    big.write_text("\n".join([*lines, lines[5], "not a hash", lines[2999]]) + "\n")
    small.write_text("\n".join(pdq_lines(5, seed=2)) + "\n")
    with pg_store.session() as s:
        L.create_list(s, "root")
        L.create_list(s, "plain")
    with plain_role(pg_store) as plain_url:
        for url, name in ((pg_store.url, "root"), (plain_url, "plain")):
            result = CliRunner().invoke(
                main, ["lists", "import", name, str(big), "--signal", "pdq", "--db", url,
                       "--output", "json"],
            )  # fmt: skip
            report = json.loads(result.stdout)
            assert (report["added"], report["duplicates"], report["errors"]) == (3000, 2, 1)
            assert cli_import(url, name, small)["added"] == 5
            assert cli_import(url, name, small)["duplicates"] == 5
    assert stored(pg_store, "root") == stored(pg_store, "plain")
    assert [counted(pg_store, n) for n in ("root", "plain")] == [3005, 3005]
    counts_agree(pg_store)


def test_triggers_back_on_after_the_bulk_rows_and_a_failure_rolls_back(pg_store: Store) -> None:
    """In the import's own transaction the triggers work again after its inserts (a
    deletion is counted), and an error after them leaves the store as it was."""
    keys = [entry_key(h) for h in pdq_lines(100, seed=3)]
    with pg_store.session() as s:
        hl = L.create_list(s, "x")
        batch = L.start_import(s, hl, batch="t", fmt="txt", status="confirmed", actor=None)
        L.insert_bare_keys(s, hl, batch, "pdq", keys[:50], texts=None, numbers=range(1, 51),
                           prefix="line ")  # fmt: skip
        conn = s.connection()
        assert conn.execute(text("SHOW session_replication_role")).scalar() == "origin"
        conn.execute(text("UPDATE entries SET deleted_at = now() WHERE id = (SELECT min(id) "
                          "FROM entries)"))  # fmt: skip
    assert counted(pg_store, "x") == 49
    before = stored(pg_store, "x")
    with pytest.raises(RuntimeError), pg_store.session() as s:
        hl = L.get_list(s, "x")
        batch = L.start_import(s, hl, batch="t", fmt="txt", status="confirmed", actor=None)
        L.insert_bare_keys(s, hl, batch, "pdq", keys[50:], texts=None, numbers=range(1, 51),
                           prefix="line ")  # fmt: skip
        raise RuntimeError("midway")
    assert stored(pg_store, "x") == before
    assert counted(pg_store, "x") == 49
    counts_agree(pg_store)


def test_other_lists_read_and_written_while_an_import_runs(pg_store: Store) -> None:
    """An import's transaction left open after its bulk rows: another connection reads
    and writes another list without waiting (a lock would time out), and the import's
    list cannot be deleted under it."""
    keys = [entry_key(h) for h in pdq_lines(60, seed=4)]
    with pg_store.session() as s:
        other = L.create_list(s, "other")
        L.add_entry(s, other, {"pdq": pdq_lines(1, seed=5)[0]})
        L.create_list(s, "x")
    other_key = entry_key(pdq_lines(1, seed=5)[0])
    with pg_store.session() as importing:
        hl = L.get_list(importing, "x")
        batch = L.start_import(importing, hl, batch="t", fmt="txt", status="confirmed", actor=None)
        L.insert_bare_keys(importing, hl, batch, "pdq", keys, texts=None,
                           numbers=range(1, 61), prefix="line ")  # fmt: skip
        with pg_store.session() as s:
            s.connection().execute(text("SET LOCAL lock_timeout = '2s'"))
            reading = L.get_list(s, "other")
            assert len(L.live_entry_keys(s, reading, [("pdq", other_key)])) == 1
            assert L.live_entry_keys(s, L.get_list(s, "x"), [("pdq", keys[0])]) == []
            L.add_entry(s, reading, {"pdq": pdq_lines(1, seed=6)[0]})
        with pytest.raises(Exception, match="lock timeout"), pg_store.session() as s:
            s.connection().execute(text("SET LOCAL lock_timeout = '500ms'"))
            s.connection().execute(text("DELETE FROM lists WHERE name = 'x'"))
    assert [counted(pg_store, n) for n in ("other", "x")] == [2, 60]
    counts_agree(pg_store)


def test_hash_rows_as_one_text_block_are_the_rows_given(pg_store: Store) -> None:
    """`_copy_keys` (numpy-made COPY text) stores exactly the ids, signal and key bytes
    it is given: ids of several widths, every byte value, a signal that needs COPY's
    escapes, and keys of mixed lengths (written row by row)."""
    rng = random.Random(7)
    ids = [1, 9, 10, 99, 12345, 2_000_000_001]
    keys = [bytes(range(256))[i * 32 : i * 32 + 32] for i in range(6)]
    mixed = [rng.randbytes(16), rng.randbytes(32), b"\\\t\n\r"]
    with pg_store.session() as s:
        conn = s.connection()
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # no entries
        core._copy_keys(conn, "pdq", ids, keys)
        core._copy_keys(conn, "a\tb\\c\nd", [5, 6], keys[:2])
        core._copy_keys(conn, "md5", [7, 8, 9], mixed)
        rows = conn.execute(text("SELECT entry_id, signal, key, value FROM entry_signals"))
        got = sorted((i, sig, bytes(k), v) for i, sig, k, v in rows)
        s.rollback()
    expected = [(i, "pdq", k, None) for i, k in zip(ids, keys, strict=True)]
    expected += [(5, "a\tb\\c\nd", keys[0], None), (6, "a\tb\\c\nd", keys[1], None)]
    expected += [(i, "md5", k, None) for i, k in zip([7, 8, 9], mixed, strict=True)]
    assert got == sorted(expected)
