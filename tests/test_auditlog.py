"""The tamper-evident log: chaining, append-only triggers, and detection of tampering."""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import RidgelineError
from ridgeline.store import Store


def _fill(store: Store, n: int = 5) -> None:
    with store.session() as session:
        for i in range(n):
            auditlog.append(session, f"actor{i}", "test.action", f"thing:{i}", {"i": i, "x": "é"})


def _drop_triggers(store: Store) -> None:
    """What an attacker with database access would do first."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("DROP TRIGGER log_records_append_only ON log_records"))
        else:
            conn.execute(text("DROP TRIGGER log_records_no_update"))
            conn.execute(text("DROP TRIGGER log_records_no_delete"))


def test_chain_verifies_and_links(store: Store) -> None:
    _fill(store)
    with store.session() as session:
        result = auditlog.verify(session)
        rows = auditlog.records(session)
    assert result.ok and result.checked == 5 and result.first_bad_seq is None
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == auditlog.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert result.head_hash == rows[-1].hash
    assert rows[2].to_json()["details"] == {"i": 2, "x": "é"}


def test_empty_log_verifies(store: Store) -> None:
    with store.session() as session:
        result = auditlog.verify(session)
        assert auditlog.head(session) == (0, auditlog.GENESIS)
    assert result.ok and result.checked == 0


def test_library_refuses_update_and_delete(store: Store) -> None:
    _fill(store, 2)
    with pytest.raises(RidgelineError, match="append-only"), store.session() as session:
        rec = auditlog.records(session)[0]
        rec.actor = "mallory"
        session.flush()
    with pytest.raises(RidgelineError, match="append-only"), store.session() as session:
        session.delete(auditlog.records(session)[0])
        session.flush()
    with store.session() as session:
        assert auditlog.verify(session).ok


@pytest.mark.parametrize(
    "statement",
    ["UPDATE log_records SET actor = 'mallory' WHERE seq = 1", "DELETE FROM log_records"],
)
def test_database_triggers_refuse_raw_sql(store: Store, statement: str) -> None:
    _fill(store, 2)
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text(statement))
    with store.session() as session:
        assert auditlog.verify(session).checked == 2


@pytest.mark.postgres
def test_postgres_refuses_truncate(pg_server_url: str) -> None:
    with Store.open(pg_server_url) as store:
        _fill(store, 1)
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text("TRUNCATE log_records"))
        with store.session() as session:
            assert auditlog.verify(session).checked >= 1


def test_edit_detected(store: Store) -> None:
    _fill(store)
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE log_records SET details = :d WHERE seq = 3"), {"d": '{"i":99}'})
    with store.session() as session:
        result = auditlog.verify(session)
    assert not result.ok and result.first_bad_seq == 3 and result.checked == 2
    assert "altered" in (result.reason or "")


def test_edit_with_recomputed_hash_detected_at_next_link(store: Store) -> None:
    _fill(store)
    _drop_triggers(store)
    with store.session() as session:
        rec = auditlog.records(session)[2]
        forged = auditlog.record_hash(
            rec.prev_hash, rec.seq, rec.at, "mallory", rec.action, rec.subject, rec.details
        )
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE log_records SET actor = 'mallory', hash = :h WHERE seq = 3"),
            {"h": forged},
        )
    with store.session() as session:
        result = auditlog.verify(session)
    assert not result.ok and result.first_bad_seq == 4
    assert "does not link" in (result.reason or "")


def test_deletion_detected(store: Store) -> None:
    _fill(store)
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM log_records WHERE seq = 2"))
    with store.session() as session:
        result = auditlog.verify(session)
    assert not result.ok and result.first_bad_seq == 2 and "missing" in (result.reason or "")


def test_reordering_detected(store: Store) -> None:
    _fill(store)
    _drop_triggers(store)
    with store.engine.begin() as conn:
        rows = {
            r.seq: r
            for r in conn.execute(text("SELECT seq, actor, subject, details FROM log_records"))
        }
        for a, b in ((2, 4), (4, 2)):
            conn.execute(
                text(
                    "UPDATE log_records SET actor = :a, subject = :s, details = :d WHERE seq = :q"
                ),
                {"a": rows[b].actor, "s": rows[b].subject, "d": rows[b].details, "q": a},
            )
    with store.session() as session:
        result = auditlog.verify(session)
    assert not result.ok and result.first_bad_seq == 2


def test_truncated_tail_needs_anchor(store: Store) -> None:
    _fill(store)
    with store.session() as session:
        _, anchored = auditlog.head(session)
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM log_records WHERE seq >= 4"))
    with store.session() as session:
        assert auditlog.verify(session).ok  # a shorter chain is still consistent ...
        result = auditlog.verify(session, expect_head=anchored)
    assert not result.ok and "truncated" in (result.reason or "")  # ... unless anchored


def test_anchor_still_found_after_growth(store: Store) -> None:
    _fill(store, 2)
    with store.session() as session:
        _, anchored = auditlog.head(session)
    _fill(store, 3)
    with store.session() as session:
        assert auditlog.verify(session, expect_head=anchored.upper()).ok


def test_list_and_entry_changes_are_logged(store: Store) -> None:
    with store.session() as session:
        hl = L.create_list(session, "logged", actor="ops")
        entry = L.add_entry(session, hl, {"md5": "a" * 32}, actor="ops")
        L.update_list(session, hl, thresholds={"pdq": 20}, actor="ops")
        L.set_entry_enabled(session, entry, False, actor="ops", reason="test")
        actions = [(r.action, r.subject) for r in auditlog.records(session)]
    assert ("list.create", f"list:{hl.id}") in actions
    assert ("list.update", f"list:{hl.id}") in actions
    assert ("entry.create", f"entry:{entry.id}") in actions
    assert ("entry.disable", f"entry:{entry.id}") in actions


def test_cli_verify_show_head(db_path: str) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["lists", "create", "cli-log", "--db", db_path, "--format", "json"])
    assert ok.exit_code == 0, ok.output
    head = runner.invoke(main, ["log", "head", "--db", db_path, "--format", "json"])
    anchored = json.loads(head.output)
    assert anchored["seq"] == 1
    shown = runner.invoke(main, ["log", "show", "--db", db_path, "--format", "jsonl"])
    assert json.loads(shown.output.splitlines()[0])["action"] == "list.create"
    good = runner.invoke(
        main, ["log", "verify", "--db", db_path, "--format", "json", "--expect-head",
               anchored["hash"]],
    )  # fmt: skip
    assert good.exit_code == 0 and json.loads(good.output)["ok"] is True

    store = Store.open(db_path)
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE log_records SET actor = 'mallory' WHERE seq = 1"))
    store.close()
    bad = runner.invoke(main, ["log", "verify", "--db", db_path, "--format", "json"])
    assert bad.exit_code == 1
    assert "record 1" in bad.output


def test_rolled_back_savepoint_keeps_chain_intact(store: Store) -> None:
    with store.session() as session:
        auditlog.append(session, "a", "test.one", None)
        savepoint = session.begin_nested()
        auditlog.append(session, "a", "test.discarded", None)
        savepoint.rollback()
        auditlog.append(session, "a", "test.two", None)
    with pytest.raises(RuntimeError), store.session() as session:
        auditlog.append(session, "a", "test.rolled-back", None)
        raise RuntimeError("abort the transaction")
    with store.session() as session:
        auditlog.append(session, "a", "test.three", None)
        result = auditlog.verify(session)
        actions = [r.action for r in auditlog.records(session)]
    assert actions == ["test.one", "test.two", "test.three"]
    assert result.ok and result.checked == 3


def test_actor_defaults_to_os_user_and_api_key_never_null(db_path: str, store: Store) -> None:
    """--actor left out records the OS user; the API records its key's name; never null."""
    import getpass

    from fastapi.testclient import TestClient

    from ridgeline.service.app import ServiceConfig, create_app
    from ridgeline.service.keys import create_key

    user = getpass.getuser()
    runner = CliRunner()
    for args in (
        ["lists", "create", "known"],
        ["lists", "update", "known", "--threshold", "20"],
        ["lists", "entries", "add", "known", "md5:" + "b" * 32],
        ["lists", "entries", "disable", "1", "--reason", "test"],
        ["lists", "actions", "known", "--set", "flag,quarantine"],
        ["webhooks", "add", "known", "https://hooks.example.com/t/SECRET-TOKEN"],
    ):
        res = runner.invoke(main, [*args, "--db", db_path])
        assert res.exit_code == 0, (args, res.output)
    cli = Store.open(db_path)
    with cli.session() as session:
        actors = [(r.action, r.actor) for r in auditlog.records(session)]
    assert [a for _, a in actors] == [user] * len(actors) and len(actors) >= 6, actors
    assert {"list.actions", "webhook.add"} <= {action for action, _ in actors}, actors
    with cli.session() as session:
        details = {r.action: json.loads(r.details) for r in auditlog.records(session)}
    cli.close()
    assert details["list.actions"] == {"name": "known", "old": ["flag"],
                                       "new": ["flag", "quarantine"]}  # fmt: skip
    assert details["webhook.add"]["target"] == "https://hooks.example.com"
    assert "SECRET-TOKEN" not in json.dumps(details)  # a receiver's token stays out of the log
    with store.session() as session:
        auditlog.append(session, None, "test.nobody", None)  # a library call naming nobody
        _, secret = create_key(session, "curator-bot", "curator")
    with TestClient(create_app(ServiceConfig(), store)) as client:
        h = {"Authorization": f"Bearer {secret}"}
        assert client.post("/v1/lists", json={"name": "api"}, headers=h).status_code == 201
        res = client.post("/v1/lists/api/entries", json={"signals": {"md5": "c" * 32}}, headers=h)
        assert res.status_code == 201
        res = client.put("/v1/lists/api/actions", json={"actions": ["flag"]}, headers=h)
        assert res.status_code == 200, res.text
    with store.session() as session:
        records = list(auditlog.records(session))
    by_action = {r.action: r.actor for r in records}
    assert by_action["test.nobody"] == user
    assert by_action["list.create"] == "key:curator-bot"
    assert by_action["entry.create"] == "key:curator-bot"
    assert by_action["list.actions"] == "key:curator-bot"
    assert all(r.actor for r in records)


_APPENDER = """
import sys, time
from ridgeline import auditlog
from ridgeline.store import Store
store, failures, done = Store.open(sys.argv[1]), 0, 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        with store.session() as s:  # the append is the transaction's first write
            auditlog.append(s, "race", "test.race", sys.argv[3], {"n": done})
            s.commit()
        done += 1
    except Exception as exc:
        failures += 1
        print(type(exc).__name__, str(exc)[:200], file=sys.stderr)
print(done, failures)
"""


def test_concurrent_appenders_never_collide(store: Store) -> None:
    """Two processes appending at once (an import that added nothing, beside intake):
    on SQLite one append in ten failed on a taken seq before the write lock came first."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, store.url, "3", f"writer:{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    counts = [tuple(map(int, out.split())) for out, _ in results]
    assert all(failures == 0 for _, failures in counts), [err[-500:] for _, err in results]
    assert all(done > 0 for done, _ in counts)
    with store.session() as s:
        result = auditlog.verify(s)
    assert result.ok and result.checked == sum(done for done, _ in counts)
