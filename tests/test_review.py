"""Multi-review rules, each with its refusal, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import Conflict, NotFound, PermissionDenied, RidgelineError
from ridgeline.lists.models import Change, Entry
from ridgeline.review import core as rc
from ridgeline.review.demo import build_reviewed_list
from ridgeline.store import Store


def _md5(i: int) -> str:
    return hashlib.md5(f"benign test item {i}".encode()).hexdigest()


def _setup(session, quorum: int = 3, n: int = 1) -> list[Entry]:  # type: ignore[no-untyped-def]
    for name in ("ann", "ben", "cat", "dan"):
        rc.add_reviewer(session, name)
    rc.add_reviewer(session, "sue", senior=True, reviewer=False)
    hl = L.create_list(session, "reviewed", review_quorum=quorum)
    return [
        L.add_entry(session, hl, {"md5": _md5(i)}, actor="sam",
                    classifications=[{"scheme": "industry", "label": "A1"}])
        for i in range(n)
    ]  # fmt: skip


def test_quorum_of_agreeing_verdicts_confirms(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        assert entry.status == "pending"
        hl = entry.hash_list
        assert not L.is_matchable(entry, hl)
        for name in ("ann", "ben"):
            out = rc.submit_verdict(session, entry.id, name, "csam", ["industry:A1"])
            assert out.status == "pending" and not out.changed
        out = rc.submit_verdict(session, entry.id, "cat", "csam", ["industry:A1"], note="clear")
        assert out.status == "confirmed" and out.changed and out.verdicts == 3
        assert L.is_matchable(entry, hl)
        assert {"scheme": "ridgeline", "label": "csam"} in entry.classifications
        feed = session.scalars(select(Change.op).where(Change.entry_id == entry.id)).all()
        assert feed[0] == "add" and feed[-1] == "add" and "update" in feed
        actions = [r.action for r in auditlog.records(session, subject=f"entry:{entry.id}")]
        assert actions.count("entry.verdict") == 3 and "entry.status" in actions


def test_unanimous_not_csam_rejects(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session, quorum=2)
        rc.submit_verdict(session, entry.id, "ann", "not-csam")
        out = rc.submit_verdict(session, entry.id, "ben", "not-csam")
        assert out.status == "rejected"
        assert not L.is_matchable(entry, entry.hash_list)


def test_disagreement_disputes_and_senior_decides(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"])
        out = rc.submit_verdict(session, entry.id, "ben", "not-csam")
        assert out.status == "disputed"
        with pytest.raises(PermissionDenied, match="only a senior"):
            rc.submit_verdict(session, entry.id, "cat", "csam", ["industry:A1"])
        out = rc.submit_verdict(session, entry.id, "sue", "csam", ["industry:A2"])
        assert out.stage == "senior" and out.status == "confirmed"
        labels = {(c["scheme"], c["label"]) for c in entry.classifications}
        assert ("industry", "A2") in labels


def test_classification_disagreement_disputes(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"])
        out = rc.submit_verdict(session, entry.id, "ben", "csam", ["industry:B1"])
        assert out.status == "disputed"


def test_senior_unknown_leaves_dispute_and_senior_reject(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        rc.add_reviewer(session, "tom", senior=True)
        rc.submit_verdict(session, entry.id, "ann", "unknown")
        rc.submit_verdict(session, entry.id, "ben", "not-csam")
        out = rc.submit_verdict(session, entry.id, "sue", "unknown")
        assert out.status == "disputed"
        with pytest.raises(PermissionDenied, match="already reviewed"):
            rc.submit_verdict(session, entry.id, "sue", "not-csam")
        out = rc.submit_verdict(session, entry.id, "tom", "not-csam")
        assert out.status == "rejected"


def test_agreeing_unknown_goes_to_senior(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session, quorum=2)
        rc.submit_verdict(session, entry.id, "ann", "unknown")
        assert rc.submit_verdict(session, entry.id, "ben", "unknown").status == "disputed"


def test_nobody_reviews_twice(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"])
        with pytest.raises(PermissionDenied, match="already reviewed"):
            rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"])
        assert len(rc.verdicts_for(session, entry.id)) == 1


def test_submitter_cannot_review(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        rc.add_reviewer(session, "sam")
        with pytest.raises(PermissionDenied, match="submitted entry"):
            rc.submit_verdict(session, entry.id, "sam", "csam", ["industry:A1"])


def test_verdicts_hidden_until_own_is_in(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"], note="n1")
        before = rc.entry_review_view(session, entry.id, "ben")
        assert before.verdicts is None and before.tally == {}
        assert "submit your own verdict" in (before.hidden_reason or "")
        overview = rc.entry_review_view(session, entry.id)
        assert overview.verdicts is None and overview.verdict_count == 1
        rc.submit_verdict(session, entry.id, "ben", "csam", ["industry:A1"])
        after = rc.entry_review_view(session, entry.id, "ben")
        assert after.verdicts is not None and len(after.verdicts) == 2
        assert after.tally == {"csam": 2}
        rc.submit_verdict(session, entry.id, "cat", "csam", ["industry:A1"])
        assert rc.entry_review_view(session, entry.id).verdicts is not None


def test_decided_entry_is_not_reviewable(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session, quorum=1)
        rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"])
        with pytest.raises(Conflict, match="not awaiting review"):
            rc.submit_verdict(session, entry.id, "ben", "csam", ["industry:A1"])


def test_bad_verdicts_refused(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        with pytest.raises(RidgelineError, match="needs a classification"):
            rc.submit_verdict(session, entry.id, "ann", "csam")
        with pytest.raises(RidgelineError, match="verdict must be one of"):
            rc.submit_verdict(session, entry.id, "ann", "maybe")
        with pytest.raises(RidgelineError, match="unknown industry label"):
            rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:Z9"])
        with pytest.raises(NotFound, match="no reviewer"):
            rc.submit_verdict(session, entry.id, "nobody", "not-csam")
        assert rc.verdicts_for(session, entry.id) == []


def test_category_restriction_and_roles(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session)
        rc.add_reviewer(session, "uki", categories=["uk:A"])
        with pytest.raises(PermissionDenied, match="categories"):
            rc.submit_verdict(session, entry.id, "uki", "csam", ["industry:A1"])
        with pytest.raises(PermissionDenied, match="senior-only"):
            rc.submit_verdict(session, entry.id, "sue", "csam", ["industry:A1"])
        rc.update_reviewer(session, "ann", active=False)
        with pytest.raises(PermissionDenied, match="deactivated"):
            rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"])


def test_reviewer_records_validated(store: Store) -> None:
    with store.session() as session:
        rc.add_reviewer(session, "ann", daily_cap=50, break_after_minutes=90)
        with pytest.raises(Conflict, match="already exists"):
            rc.add_reviewer(session, "ann")
        with pytest.raises(RidgelineError, match="daily cap"):
            rc.add_reviewer(session, "bob", daily_cap=0)
        with pytest.raises(RidgelineError, match="category"):
            rc.add_reviewer(session, "bob", categories=["A1"])
        with pytest.raises(RidgelineError, match="at least one role"):
            rc.add_reviewer(session, "bob", reviewer=False)
        row = rc.update_reviewer(session, "ann", daily_cap=None, senior=True)
        assert row.daily_cap is None and row.is_senior and row.break_after_minutes == 90
        assert [r.name for r in rc.list_reviewers(session)] == ["ann"]
        assert [r.action for r in auditlog.records(session)] == [
            "reviewer.add", "reviewer.update"
        ]  # fmt: skip


def test_retired_is_the_end_state(store: Store) -> None:
    with store.session() as session:
        (entry,) = _setup(session, quorum=1)
        rc.submit_verdict(session, entry.id, "ann", "csam", ["industry:A1"])
        L.retire_entry(session, entry, actor="auditor", reason="audit finding")
        assert entry.status == "retired" and not L.is_matchable(entry, entry.hash_list)
        with pytest.raises(Conflict, match="already retired"):
            L.retire_entry(session, entry)
        with pytest.raises(Conflict, match="cannot become"):
            L.set_entry_status(session, entry, "confirmed")
        with pytest.raises(Conflict, match="not awaiting review"):
            rc.submit_verdict(session, entry.id, "ben", "csam", ["industry:A1"])


def test_import_status_rule(store: Store) -> None:
    with store.session() as session:
        open_list = L.create_list(session, "open")
        reviewed = L.create_list(session, "reviewed", review_quorum=3)
        assert L.initial_status(open_list) == "confirmed"
        assert L.initial_status(reviewed) == "pending"
        assert L.initial_status(reviewed, confirmed_elsewhere=True) == "confirmed"
        e = L.add_entry(session, reviewed, {"md5": _md5(1)}, confirmed_elsewhere=True,
                        origin_list="ncmec", origin_member="m1", origin_entry_id="x1")  # fmt: skip
        assert e.status == "confirmed" and L.is_matchable(e, reviewed)
        created = L.entry_history(session, e.id)[0]
        assert created.details["confirmed_elsewhere"]["origin_list"] == "ncmec"
        assert L.add_entry(session, open_list, {"md5": _md5(2)}).status == "confirmed"


def test_demo_builds_list_through_multi_review(store: Store) -> None:
    with store.session() as session:
        summary = build_reviewed_list(session)
    statuses = [e["status"] for e in summary["entries"]]
    assert statuses == ["confirmed", "confirmed", "rejected", "confirmed"]
    assert any("senior" in step for step in summary["entries"][3]["trail"])
    assert summary["log"]["ok"] is True


def test_lowering_quorum_decides_waiting_entries(store: Store) -> None:
    with store.session() as session:
        e1, e2 = _setup(session, quorum=3, n=2)
        for name in ("ann", "ben"):
            rc.submit_verdict(session, e1.id, name, "csam", ["industry:A1"])
        rc.submit_verdict(session, e2.id, "ann", "not-csam")
        hl = e1.hash_list
        L.update_list(session, hl, review_quorum=2, actor="ops")  # lists alone: no verdicts
        assert e1.status == "pending" and hl.review_quorum == 2
        L.update_list(session, hl, review_quorum=3, actor="ops")
        assert rc.set_review_quorum(session, hl, 2, actor="ops") == [e1.id]
        assert e1.status == "confirmed" and e2.status == "pending"
        assert rc.reevaluate_list(session, hl) == []


def test_lists_update_cli_decides_waiting_entries(tmp_path: Path) -> None:
    """`ridgeline lists update --review-quorum` applies the new quorum to waiting entries."""
    db = tmp_path / "q.db"
    store = Store.open(db)
    with store.session() as session:
        e1, _ = _setup(session, quorum=3, n=2)
        for name in ("ann", "ben"):
            rc.submit_verdict(session, e1.id, name, "csam", ["industry:A1"])
        entry_id, list_name = e1.id, e1.hash_list.name
    store.close()
    result = CliRunner().invoke(
        main, ["lists", "update", list_name, "--review-quorum", "2", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    store = Store.open(db)
    with store.session() as session:
        assert L.get_entry(session, entry_id).status == "confirmed"
    store.close()
