"""Audits: statistics against known values, sampling, blind independent verdicts, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ridgeline import audit as A
from ridgeline import lists as L
from ridgeline.audit.stats import (
    beta_ppf,
    clopper_pearson_interval,
    cohens_kappa,
    sample_size,
    wilson_interval,
)
from ridgeline.cli import main
from ridgeline.errors import BadInput, Conflict, PermissionDenied
from ridgeline.lists.models import Entry
from ridgeline.store import Store

# --- statistics -------------------------------------------------------------------


def test_wilson_known_values_and_edges() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4901625, abs=1e-6) and high == pytest.approx(0.9433178, abs=1e-6)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775328, abs=1e-6))
    assert wilson_interval(10, 10) == (pytest.approx(0.7224672, abs=1e-6), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_clopper_pearson_known_values_and_edges() -> None:
    # R: binom.test(8, 10)$conf.int -> 0.4439045 0.9747893
    low, high = clopper_pearson_interval(8, 10)
    assert low == pytest.approx(0.4439045, abs=1e-6) and high == pytest.approx(0.9747893, abs=1e-6)
    # x = 0 and x = n have closed forms: 1 - (alpha/2)^(1/n) and (alpha/2)^(1/n).
    assert clopper_pearson_interval(0, 10) == (0.0, pytest.approx(1 - 0.025**0.1, abs=1e-9))
    assert clopper_pearson_interval(10, 10) == (pytest.approx(0.025**0.1, abs=1e-9), 1.0)
    # NCMEC's audit: 538,863 of 538,922 verified.
    low, high = clopper_pearson_interval(538863, 538922)
    assert 0.99985 < low < 538863 / 538922 < high < 0.99992
    assert beta_ppf(0.5, 1, 1) == pytest.approx(0.5)


def test_kappa_known_value_and_undefined() -> None:
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohens_kappa(a, b) == pytest.approx(0.4)
    assert cohens_kappa(["y"] * 5, ["y"] * 5) is None
    assert cohens_kappa([], []) is None
    assert cohens_kappa(["y", "n"], ["y", "n"]) == pytest.approx(1.0)


def test_sample_size() -> None:
    assert sample_size(538922, 0.01) == 9436  # 9604 with finite population correction
    assert sample_size(100, 0.05) == 80
    assert sample_size(10, 0.01) == 10
    assert sample_size(10000, 0.01, p=0.99) < sample_size(10000, 0.01)
    with pytest.raises(ValueError):
        sample_size(100, 0)


# --- audits on a store ------------------------------------------------------------


def make_list(store: Store, n_a: int = 60, n_b: int = 40) -> None:
    with store.session() as session:
        hash_list = L.create_list(session, "audited")
        for i in range(n_a + n_b):
            L.add_entry(
                session,
                hash_list,
                {"md5": f"{i + 1:032x}"},
                source="A" if i < n_a else "B",
                classifications=[{"scheme": "industry", "label": "A1" if i % 2 else "B2"}],
                actor="submitter",
            )


def test_same_seed_same_sample(store: Store) -> None:
    make_list(store)
    with store.session() as session:
        hash_list = L.get_list(session, "audited")
        one = A.create_audit(session, hash_list, mode="random", margin=0.1, seed=7)
        two = A.create_audit(session, hash_list, mode="random", margin=0.1, seed=7)
        three = A.create_audit(session, hash_list, mode="random", margin=0.1, seed=8)
        s1, s2, s3 = (A.sampled_entry_ids(session, a) for a in (one, two, three))
    assert one.sample_size == sample_size(100, 0.1) == len(s1)
    assert s1 == s2 and s1 != s3


def test_stratified_allocation_is_proportional(store: Store) -> None:
    make_list(store)
    with store.session() as session:
        hash_list = L.get_list(session, "audited")
        audit = A.create_audit(session, hash_list, mode="stratified", margin=0.1, seed=1)
        rows = A.item_outcomes(session, audit)
    by = {s: sum(1 for r in rows if r["stratum"] == s) for s in ("A", "B")}
    n = sample_size(100, 0.1)
    assert by["A"] + by["B"] == n and by["A"] == round(n * 0.6)


def test_blind_independent_two_per_item(store: Store) -> None:
    make_list(store, 3, 0)
    with store.session() as session:
        audit = A.create_audit(session, L.get_list(session, "audited"), mode="full", seed=1)
        item = A.next_item(session, audit, "ann")
        assert item is not None and set(item) == {"audit_id", "item_id", "entry_id", "signals"}
        assert A.next_item(session, audit, "submitter") is None  # touched every entry
        with pytest.raises(PermissionDenied):
            A.submit_verdict(session, audit, "submitter", item["entry_id"], verified=True)
        A.submit_verdict(session, audit, "ann", item["entry_id"], verified=True)
        with pytest.raises(Conflict, match="already audited"):
            A.submit_verdict(session, audit, "ann", item["entry_id"], verified=True)
        A.submit_verdict(
            session, audit, "bob", item["entry_id"], verified=False, reason="cartoon-anime"
        )
        with pytest.raises(Conflict, match="already has 2"):
            A.submit_verdict(session, audit, "cat", item["entry_id"], verified=True)
        other = next(i for i in A.sampled_entry_ids(session, audit) if i != item["entry_id"])
        with pytest.raises(BadInput, match="needs a reason"):
            A.submit_verdict(session, audit, "cat", other, verified=False)
        nxt = A.next_item(session, audit, "ann")
        assert nxt is not None and nxt["entry_id"] != item["entry_id"]


def test_entry_event_actor_is_not_independent(store: Store) -> None:
    make_list(store, 1, 0)
    with store.session() as session:
        entry = session.scalars(select(Entry)).one()
        L.set_entry_enabled(session, entry, True, actor="editor")
        audit = A.create_audit(session, L.get_list(session, "audited"), mode="full", seed=1)
        assert A.next_item(session, audit, "editor") is None
        assert A.next_item(session, audit, "outsider") is not None


def test_report_and_apply_findings(store: Store, tmp_path: Path) -> None:
    make_list(store, 6, 4)
    with store.session() as session:
        audit = A.create_audit(session, L.get_list(session, "audited"), mode="full", seed=3)
        ids = A.sampled_entry_ids(session, audit)
        for i, entry_id in enumerate(ids):
            if i == 0:  # both auditors: not the legal definition -> exception
                A.submit_verdict(
                    session, audit, "ann", entry_id, verified=False, reason="not-legal-definition"
                )
                A.submit_verdict(
                    session, audit, "bob", entry_id, verified=False, reason="not-legal-definition"
                )
            elif i == 1:  # disagreement
                A.submit_verdict(session, audit, "ann", entry_id, verified=True)
                A.submit_verdict(
                    session, audit, "bob", entry_id, verified=False, reason="indeterminate-age"
                )
            elif i < 9:
                A.submit_verdict(session, audit, "ann", entry_id, verified=True)
                A.submit_verdict(session, audit, "bob", entry_id, verified=True)
        report = A.audit_report(session, audit)
    assert report["progress"] == {"complete": 9, "incomplete": 1, "verdicts": 18}
    assert report["verified"]["verified"] == 7 and report["verified"]["complete"] == 9
    assert report["verified"]["wilson"] == pytest.approx(list(wilson_interval(7, 9)))
    assert report["agreement"]["pairs"] == 9
    assert report["agreement"]["kappa"] == pytest.approx(
        cohens_kappa(
            ["exception"] + ["verified"] * 8, ["exception", "exception"] + ["verified"] * 7
        )
    )
    assert {e["reason"]: e["count"] for e in report["exceptions"]}["not-legal-definition"] == 1
    assert report["disagreements"] == 1
    assert {r["group"] for r in report["by_source"]} == {"A", "B"}
    assert {r["group"] for r in report["by_classification"]} == {"industry:A1", "industry:B2"}
    page = A.report_html(report)
    assert (
        "<svg" in page
        and "<script" not in page
        and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    with store.session() as session:
        audit = A.get_audit(session, report["audit"]["id"])
        with pytest.raises(Conflict, match="1 of 10 item"):
            A.apply_findings(session, audit, action="retire", actor="lead")  # one incomplete
        result = A.apply_findings(
            session, audit, action="retire", dispute_disagreements=True, actor="lead", force=True
        )
        assert result["changed"] == [ids[0]] and result["disputed"] == [ids[1]]
        assert L.get_entry(session, ids[0]).status == "retired"
        assert L.get_entry(session, ids[1]).status == "disputed"


def test_cli_audit_flow(db_path: str, tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["lists", "create", "c", "--db", db_path])
    for i in range(1, 4):
        runner.invoke(main, ["lists", "entries", "add", "c", f"md5:{i:032x}", "--db", db_path])
    result = runner.invoke(
        main,
        [
            "audit",
            "create",
            "c",
            "--mode",
            "full",
            "--seed",
            "5",
            "--db",
            db_path,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    audit_id = json.loads(result.stdout)["audit"]
    for auditor in ("ann", "bob"):
        while True:
            result = runner.invoke(
                main,
                [
                    "audit",
                    "next",
                    str(audit_id),
                    "--auditor",
                    auditor,
                    "--db",
                    db_path,
                    "--format",
                    "json",
                ],
            )
            if result.exit_code == 1:
                break
            entry_id = json.loads(result.stdout)["entry_id"]
            result = runner.invoke(
                main,
                [
                    "audit",
                    "submit",
                    str(audit_id),
                    str(entry_id),
                    "--auditor",
                    auditor,
                    "--verified",
                    "--db",
                    db_path,
                ],
            )
            assert result.exit_code == 0, result.output
    html_path = tmp_path / "report.html"
    result = runner.invoke(
        main, ["audit", "report", str(audit_id), "--html", str(html_path), "--db", db_path]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verified"]["verified"] == 3 and data["verified"]["share"] == 1.0
    assert data["verified"]["wilson"][1] == 1.0 and "<svg" in html_path.read_text()


def test_reviewers_of_an_entry_may_not_audit_it(store: Store) -> None:
    """Independence uses the review area's verdicts: who reviewed an entry is excluded."""
    from ridgeline.review import core as rc

    with store.session() as session:
        hash_list = L.create_list(session, "reviewed", review_quorum=1)
        entry = L.add_entry(session, hash_list, {"md5": "e" * 32})
        rc.add_reviewer(session, "rev")
        rc.submit_verdict(session, entry.id, "rev", "csam", ["industry:A1"])
        assert L.get_entry(session, entry.id).status == "confirmed"
        audit = A.create_audit(session, hash_list, mode="full", seed=1)
        assert "rev" in A.people_who_touched(session, [entry.id])[entry.id]
        assert A.next_item(session, audit, "rev") is None
        with pytest.raises(PermissionDenied):
            A.submit_verdict(session, audit, "rev", entry.id, verified=True)
        assert A.next_item(session, audit, "independent") is not None


def test_empty_audit_warns_and_unfinished_apply_needs_force(db_path: str) -> None:
    """An audit of nothing says so; applying an unfinished audit needs --force."""
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, [*args, "--db", db_path, "--format", "json"])

    assert run("lists", "create", "empty").exit_code == 0
    res = run("audit", "create", "empty", "--mode", "full")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["population"] == 0
    assert "Warning: list 'empty' has no listed entries" in res.stderr
    assert "has nothing to sample" in res.stderr

    assert run("lists", "create", "c").exit_code == 0
    for i in range(1, 3):
        assert run("lists", "entries", "add", "c", f"md5:{i:032x}").exit_code == 0
    res = run("audit", "create", "c", "--mode", "full", "--auditors-per-item", "1")
    assert res.exit_code == 0 and "Warning" not in res.stderr
    audit_id = str(json.loads(res.stdout)["audit"])
    entry_id = json.loads(run("audit", "next", audit_id, "--auditor", "ann").stdout)["entry_id"]
    res = run("audit", "submit", audit_id, str(entry_id), "--auditor", "ann", "--exception",
              "--reason", "not-legal-definition")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = run("audit", "apply", audit_id)
    assert res.exit_code == 1
    assert f"audit {audit_id} has 1 of 2 item(s) without all their verdicts" in res.stderr
    assert "--force" in res.stderr
    store = Store.open(db_path)
    with store.session() as session:
        assert L.get_entry(session, entry_id).enabled  # nothing was applied
    res = run("audit", "apply", audit_id, "--force")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {
        "audit": int(audit_id), "action": "disable", "changed": [entry_id], "disputed": [],
        "incomplete": 1,
    }  # fmt: skip
    assert "Warning: applied with 1 item(s) still missing verdicts" in res.stderr
    with store.session() as session:
        assert not L.get_entry(session, entry_id).enabled
    store.close()


def _card() -> bytes:
    """A benign test card made in code."""
    import io

    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:96, 0:96]
    rgb = np.stack([(x * 2) % 256, (y * 2) % 256, ((x // 8 + y // 8) % 2) * 255], -1)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_audit_media_served_like_review(db_path: str, tmp_path: Path) -> None:
    """Audit items show their media blurred and grey, unblur is logged, the daily cap
    holds, blindness holds, and an item without evidence is recorded as damaged-file."""
    import io

    from PIL import Image

    from ridgeline import auditlog
    from ridgeline import evidence as ev
    from ridgeline.audit.media import view_item_media
    from ridgeline.review.core import add_reviewer

    key_file = tmp_path / "ev.key"
    key = ev.generate_key_file(key_file)
    store = Store.open(db_path)
    with store.session() as s:
        hl = L.create_list(s, "c")
        with_media = L.add_entry(s, hl, {"md5": "1" * 32}, actor="curator").id
        without = L.add_entry(s, hl, {"md5": "2" * 32}, actor="curator").id
        ev.store_evidence(s, with_media, _card(), key, media_type="image/png")
        add_reviewer(s, "ann")
        add_reviewer(s, "cap", daily_cap=1)
        audit_id = A.create_audit(s, hl, mode="full", auditors_per_item=2).id
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        keyed = ["--key-file", str(key_file)] if args[1] in ("next", "unblur") else []
        res = runner.invoke(main, [*args, "--db", db_path, "--format", "json", *keyed])
        assert res.exit_code == code, (args, res.output)
        return res

    seen = {}
    for _ in range(2):
        out = tmp_path / "item.png"
        res = run("audit", "next", str(audit_id), "--auditor", "ann", "--media-out", str(out))
        item = json.loads(res.stdout)
        seen[item["entry_id"]] = item
        if item["entry_id"] == without:
            assert item["damaged_file"] and "damaged-file" in res.stderr
            continue
        assert item["media_written"] and out.stat().st_mode & 0o777 == 0o600
        shown = Image.open(io.BytesIO(out.read_bytes()))
        assert shown.mode == "L"  # greyscale, blurred: as the review queue renders it
        sharp = tmp_path / "sharp.png"
        res = run("audit", "unblur", str(audit_id), str(with_media), "--auditor", "ann",
                  "--out", str(sharp), "--reason", "grading")  # fmt: skip
        assert json.loads(res.stdout)["logged"] and sharp.exists()
        run("audit", "submit", str(audit_id), str(with_media), "--auditor", "ann", "--verified")
    assert set(seen) == {with_media, without}
    with store.session() as s:
        audit = A.get_audit(s, audit_id)
        outcomes = {o["entry_id"]: o for o in A.item_outcomes(s, audit)}
        verdicts = outcomes[without]["verdicts"]
        assert verdicts == [{"auditor": "ann", "verified": False, "reason": "damaged-file"}]
        unblurs = [r for r in auditlog.records(s) if r.action == "audit.unblur"]
        assert len(unblurs) == 1 and unblurs[0].actor == "ann"
        assert json.loads(unblurs[0].details)["reason"] == "grading"
        # the daily exposure cap applies to audits too
        first = view_item_media(s, audit, "cap", with_media, key)
        assert first.image is not None
        with pytest.raises(PermissionDenied, match="daily exposure cap"):
            view_item_media(s, audit, "cap", without, key)
        # blindness: the curator who added the entries may not see them as an auditor
        add_reviewer(s, "curator")
        with pytest.raises(PermissionDenied, match="may not audit it"):
            view_item_media(s, audit, "curator", with_media, key)
        with pytest.raises(Conflict, match="already audited"):
            view_item_media(s, audit, "ann", with_media, key)
    store.close()
    # A verdict given without viewing the media is said to be one, and counted as such.
    res = run("audit", "submit", str(audit_id), str(with_media), "--auditor", "bob", "--verified")
    assert json.loads(res.stdout)["viewed_media"] is False
    assert "Warning: bob did not view entry" in res.stderr and "hashes alone" in res.stderr
    res = runner.invoke(main, ["audit", "report", str(audit_id), "--db", db_path])
    report = json.loads(res.stdout)
    assert report["media"] == {  # ann viewed with_media; without was found damaged by a view
        "verdicts_after_viewing": 2,
        "verdicts_from_hashes_alone": 1,
        "verified_from_hashes_alone": 1,
    }, report["media"]
