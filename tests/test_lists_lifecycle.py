"""Lists and entries: settings changes, filters, history, expiry, retire, feed and log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import Conflict, RidgelineError, UnknownSignal
from ridgeline.lists.models import Change, Entry
from ridgeline.store import Store


def _md5(i: int) -> str:
    return hashlib.md5(f"benign list item {i}".encode()).hexdigest()


def _ops(session, entry_id: int | None = None, list_id: int | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    query = select(Change.op).order_by(Change.seq)
    if entry_id is not None:
        query = query.where(Change.entry_id == entry_id)
    if list_id is not None:
        query = query.where(Change.list_id == list_id, Change.entry_id.is_(None))
    return list(session.scalars(query))


def test_update_list_settings_feed_and_log(store: Store) -> None:
    with store.session() as session:
        hl = L.create_list(session, "blk", thresholds={"pdq": 31})
        L.update_list(session, hl, enabled=False, thresholds={"pdq": 20}, review_quorum=3,
                      actor="ops")  # fmt: skip
        assert not hl.enabled and hl.thresholds == {"pdq": 20.0} and hl.review_quorum == 3
        L.update_list(session, hl, clear_thresholds=["pdq"], actor="ops")
        assert hl.thresholds == {}
        L.update_list(session, hl, review_quorum=3)  # no change: nothing recorded
        assert _ops(session, list_id=hl.id) == ["update", "update"]
        updates = auditlog.records(session, subject=f"list:{hl.id}", action="list.update")
        changed = json.loads(updates[0].details)["changed"]
        assert changed["enabled"] == {"old": True, "new": False}
        assert changed["review_quorum"] == {"old": 0, "new": 3}


def test_update_list_refuses_bad_values_and_keeps_settings(store: Store) -> None:
    with store.session() as session:
        hl = L.create_list(session, "blk", thresholds={"pdq": 31})
        with pytest.raises(RidgelineError, match="cannot be negative"):
            L.update_list(session, hl, review_quorum=-1, enabled=False)
        with pytest.raises(UnknownSignal):
            L.update_list(session, hl, thresholds={"nope": 3}, enabled=False)
        with pytest.raises(RidgelineError, match="must be a number"):
            L.update_list(session, hl, thresholds={"pdq": "x"})  # type: ignore[dict-item]
        with pytest.raises(RidgelineError, match="between 0 and 128, not -1"):
            L.create_list(session, "bad", thresholds={"pdq": -1})
        assert hl.enabled and hl.thresholds == {"pdq": 31.0} and hl.review_quorum == 0


def test_entry_filters_and_paging(store: Store) -> None:
    with store.session() as session:
        hl = L.create_list(session, "mix", review_quorum=2)
        a = L.add_entry(session, hl, {"md5": _md5(1)},
                        classifications=[{"scheme": "industry", "label": "A1"}])  # fmt: skip
        b = L.add_entry(session, hl, {"md5": _md5(2)}, status="confirmed",
                        classifications=[{"scheme": "uk", "label": "B"}])  # fmt: skip
        c = L.add_entry(session, hl, {"md5": _md5(3)}, status="confirmed")
        L.set_entry_enabled(session, c, False)
        d = L.add_entry(session, hl, {"md5": _md5(4)})
        L.delete_entry(session, d)

        def ids(**kw):  # type: ignore[no-untyped-def]
            return [e.id for e in L.list_entries(session, hl, **kw)]

        assert ids() == [a.id, b.id, c.id]
        assert ids(include_deleted=True) == [a.id, b.id, c.id, d.id]
        assert ids(status="pending") == [a.id]
        assert ids(status=["confirmed"], enabled=True) == [b.id]
        assert ids(enabled=False) == [c.id]
        assert ids(classification={"scheme": "uk", "label": "b"}) == [b.id]
        assert ids(after_id=a.id, limit=1) == [b.id]
        with pytest.raises(RidgelineError, match="status must be one of"):
            ids(status="bogus")


def test_history_covers_every_change(store: Store) -> None:
    with store.session() as session:
        hl = L.create_list(session, "h")
        e = L.add_entry(session, hl, {"md5": _md5(1)}, actor="a")
        L.set_entry_enabled(session, e, False, actor="b", reason="appeal")
        L.set_entry_enabled(session, e, True, actor="b")
        L.set_entry_classifications(session, e, [{"scheme": "uk", "label": "C"}], actor="c")
        L.retire_entry(session, e, actor="d", reason="withdrawn")
        L.delete_entry(session, e, actor="e")
        history = [(ev.action, ev.actor) for ev in L.entry_history(session, e.id)]
        assert history == [("create", "a"), ("disable", "b"), ("enable", "b"),
                           ("classify", "c"), ("status", "d"), ("delete", "e")]  # fmt: skip
        assert _ops(session, entry_id=e.id) == ["add", "remove", "add", "update", "remove",
                                                "remove"]  # fmt: skip
        logged = [r.action for r in auditlog.records(session, subject=f"entry:{e.id}")]
        assert logged == ["entry." + a for a, _ in history]


def test_disable_expiry(store: Store) -> None:
    now = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    with store.session() as session:
        hl = L.create_list(session, "exp")
        e1 = L.add_entry(session, hl, {"md5": _md5(1)})
        e2 = L.add_entry(session, hl, {"md5": _md5(2)})
        L.set_entry_enabled(session, e1, False, until=now - dt.timedelta(hours=1))
        L.set_entry_enabled(session, e2, False, until=now + dt.timedelta(hours=1))
        assert L.is_matchable(e1, hl, now) and not L.is_matchable(e2, hl, now)
        done = L.expire_disables(session, now=now, actor="sweeper")
        assert [e.id for e in done] == [e1.id]
        assert e1.enabled and e1.disabled_until is None and not e2.enabled
        assert _ops(session, entry_id=e1.id)[-1] == "add"
        assert L.entry_history(session, e1.id)[-1].details["reason"] == "disable expired"
        assert L.expire_disables(session, now=now) == []


def test_status_transitions(store: Store) -> None:
    with store.session() as session:
        hl = L.create_list(session, "st", review_quorum=1)
        e = L.add_entry(session, hl, {"md5": _md5(1)})
        L.set_entry_status(session, e, "rejected")
        with pytest.raises(Conflict, match="rejected; it cannot become confirmed"):
            L.set_entry_status(session, e, "confirmed")
        L.set_entry_status(session, e, "pending")  # reopened for review
        L.delete_entry(session, e)
        with pytest.raises(Conflict, match="deleted"):
            L.set_entry_status(session, e, "confirmed")
        assert session.get(Entry, e.id).status == "pending"  # type: ignore[union-attr]


def test_cli_lists_update_entries_ls_history_retire(db_path: str) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, [*args, "--db", db_path, "--format", "json"])
        assert result.exit_code == 0, result.output
        return result.output

    created = json.loads(run("lists", "create", "rv", "--review"))
    assert created["review_quorum"] == 3
    explicit = json.loads(run("lists", "create", "rv2", "--review", "--review-quorum", "2"))
    assert explicit["review_quorum"] == 2
    updated = json.loads(run("lists", "update", "rv", "--disable", "--threshold", "25",
                             "--review-quorum", "1"))  # fmt: skip
    assert updated["enabled"] is False and updated["thresholds"] == {"pdq": 25.0}
    assert updated["review_quorum"] == 1
    hist = json.loads(run("lists", "history", "rv"))
    assert [h["action"] for h in hist] == ["list.create", "list.update"]
    run("lists", "entries", "add", "rv", "md5:" + _md5(1), "--classification", "industry:A1")
    run("lists", "entries", "add", "rv", "md5:" + _md5(2))
    pending = json.loads(run("lists", "entries", "ls", "rv", "--status", "pending"))
    assert [e["id"] for e in pending] == [1, 2]
    a1 = json.loads(run("lists", "entries", "ls", "rv", "--classification", "industry:A1"))
    assert [e["id"] for e in a1] == [1]
    retired = json.loads(run("lists", "entries", "retire", "1", "--reason", "withdrawn"))
    assert retired["status"] == "retired"
    again = runner.invoke(main, ["lists", "entries", "retire", "1", "--db", db_path])
    assert again.exit_code == 1 and "already retired" in again.output
    events = json.loads(run("lists", "entries", "history", "1"))
    assert [e["action"] for e in events] == ["create", "status"]
    assert events[1]["details"]["new"] == "retired"
    expired = json.loads(run("lists", "expire-disables"))
    assert expired == {"re_enabled": []}
    bad = runner.invoke(main, ["lists", "update", "rv", "--threshold", "pdq=abc", "--db", db_path])
    assert bad.exit_code == 2


def test_threshold_bounds_per_signal_same_everywhere(db_path: str, store: Store) -> None:
    """PDQ 0..128 (warning above 31), exact signals only 0: one message, exit 2, HTTP 400."""
    from fastapi.testclient import TestClient

    from ridgeline.errors import BadInput
    from ridgeline.service.app import ServiceConfig, create_app
    from ridgeline.service.keys import create_key

    runner = CliRunner()
    too_far = "threshold for pdq must be between 0 and 128, not 300"
    not_exact = "threshold for md5 must be 0 (an exact signal: equal hashes only), not 5"
    cases = [(["--threshold", "300"], too_far), (["--threshold", "md5=5"], not_exact)]
    for opts, message in cases:
        for cmd in (["lists", "create", "wide"], ["lists", "update", "known"]):
            res = runner.invoke(main, [*cmd, *opts, "--db", db_path])
            assert res.exit_code == 2, (cmd, opts, res.output)
            assert f"Error: {message}" in res.stderr
    res = runner.invoke(main, ["lists", "create", "known", "--threshold", "md5=0", "--db", db_path])
    assert res.exit_code == 0 and "Warning" not in res.stderr, res.output
    res = runner.invoke(main, ["lists", "update", "known", "--threshold", "64", "--db", db_path])
    assert res.exit_code == 0, res.output
    assert "Warning: threshold 64 for pdq is above the safe range 0..31" in res.stderr
    res = runner.invoke(main, ["lists", "update", "known", "--threshold", "31", "--db", db_path])
    assert res.exit_code == 0 and "Warning" not in res.stderr

    with store.session() as session:
        for bad, message in (({"pdq": 300}, too_far), ({"md5": 5}, not_exact)):
            with pytest.raises(BadInput, match=re.escape(message)):
                L.create_list(session, "lib", thresholds=bad)
        assert L.threshold_warnings({"vpdq": 50, "pdq": 10}) == []
        with pytest.raises(BadInput, match="vpdq must be between 0 and 100"):
            L.threshold_warnings({"vpdq": 101})
        _, secret = create_key(session, "curator", "admin")
    app = create_app(ServiceConfig(), store)
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {secret}"}
        for bad, message in (({"pdq": 300}, too_far), ({"md5": 5}, not_exact)):
            res = client.post("/v1/lists", json={"name": "api", "thresholds": bad}, headers=h)
            assert res.status_code == 400 and res.json()["error"]["message"] == message
        res = client.post("/v1/lists", json={"name": "api", "thresholds": {"pdq": 64}}, headers=h)
        assert res.status_code == 201
        assert res.json()["warnings"] == [
            "threshold 64 for pdq is above the safe range 0..31: expect unrelated content to match"
        ]
