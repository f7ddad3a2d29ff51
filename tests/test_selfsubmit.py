"""Self-submission without a browser: cases, abuse checks, withdrawal through the feed
and exports, the review-only list kind, the public routes' caps and limits, the page's
strings, and the committed WebAssembly being what the build script makes.

The browser half (PDQ equality, no media leaving, withdrawal within a second) is in
tests/test_selfsubmit_browser.py.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.errors import BadInput, Conflict, InvalidHash, NotFound, RateLimited
from ridgeline.exchange import export_list
from ridgeline.lists.models import Change, Entry
from ridgeline.matching import Matcher
from ridgeline.scan.actions import set_list_actions
from ridgeline.service.app import ServiceConfig, create_app
from ridgeline.service.keys import create_key
from ridgeline.store import Store
from ridgeline.submit import (
    LIST_NAME,
    Item,
    Limits,
    SubmissionRefused,
    allow_list_check,
    case_key,
    case_status,
    normalize_case_number,
    normalize_item,
    pseudonym,
    self_submitted_list,
    submit,
    withdraw,
)
from ridgeline.submit.strings import STRINGS

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "ridgeline" / "submit" / "static"
PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "30a10efd71cc3d429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af"
MD5_A = "0f343b0931126a20f133d67c2b018a3b"
MD5_B = "d41d8cd98f00b204e9800998ecf8427e"
ME = "submitter-a"


def _item(md5: str = MD5_A, pdq: str | None = PDQ_A, quality: int | None = 100) -> Item:
    return normalize_item(md5, pdq, quality if pdq else None)


def test_submit_and_withdraw_write_feed_history_log_and_export_deletions(store: Store) -> None:
    with store.session() as s:
        result = submit(s, [_item(), _item(MD5_B, PDQ_B)], submitter=ME)
        number = result.case_number
        assert result.new_case and result.added == 2
        hash_list = self_submitted_list(s)
        assert hash_list.name == LIST_NAME and hash_list.purpose == L.SELF_SUBMITTED
        entries = s.scalars(select(Entry).where(Entry.list_id == hash_list.id)).all()
        assert len(entries) == 2 and {e.status for e in entries} == {"confirmed"}
        assert {e.source for e in entries} == {"self-submission"}
        assert all(not e.case_numbers for e in entries)  # providers never see the number
    with store.session() as s:
        # the case number itself is stored nowhere: only its SHA-256
        dumped = " ".join(
            str(row) for t in ("self_submissions", "entries", "entry_events", auditlog.TABLE)
            for row in s.execute(text(f"SELECT * FROM {t}"))
        )  # fmt: skip
        assert number not in dumped and case_key(number) in dumped
        assert case_status(s, number).active_items == 2
    with store.session() as s:
        done = withdraw(s, number)
        assert (done.status, done.withdrawn_now, done.active_items) == ("withdrawn", 2, 0)
    with store.session() as s:
        ops = [c.op for c in s.scalars(select(Change).order_by(Change.seq))]
        assert ops.count("add") == 2 and ops.count("remove") == 2
        hash_list = self_submitted_list(s)
        assert all(e.deleted_at is not None for e in hash_list.entries)
        assert {ev.action for e in hash_list.entries for ev in L.entry_history(s, e.id)} == {
            "create",
            "delete",
        }
        stopncii = json.loads(export_list(s, hash_list, "stopncii", include_deleted=True))
        assert [(r["hashValue"], r["hashStatus"]) for r in stopncii["hashRecords"]] == [
            (PDQ_A, "Withdrawn"),
            (PDQ_B, "Withdrawn"),
        ]  # StopNCII carries image PDQs (not image MD5s) and says Withdrawn
        ncmec = export_list(s, hash_list, "ncmec-xml", include_deleted=True).decode()
        assert MD5_A in ncmec and ncmec.count("delet") >= 2
        assert auditlog.verify(s).ok
        again = withdraw(s, number)  # harmless
        assert again.withdrawn_now == 0 and again.status == "withdrawn"
        with pytest.raises(Conflict, match="withdrawn"):
            submit(s, [_item()], submitter=ME, case_number=number)


def test_a_case_number_brought_back_adds_to_the_same_case(store: Store) -> None:
    with store.session() as s:
        first = submit(s, [_item()], submitter=ME, case_number=" rl-my own-case-2026 ")
        assert first.case_number == "RL-MYOWN-CASE-2026" and first.new_case
        second = submit(s, [_item(), _item(MD5_B, PDQ_B)], submitter=ME,
                        case_number="RL-MYOWN-CASE-2026")  # fmt: skip
        assert not second.new_case
        assert [r.outcome for r in second.items] == ["already-submitted", "added"]
        assert case_status(s, "rl-myown-case-2026").active_items == 2
        with pytest.raises(NotFound):
            case_status(s, "RL-NOT-A-REAL-CASE")


def test_abuse_checks_refuse_before_storing(store: Store, tmp_path: Path) -> None:
    limits = Limits(max_items=3, max_batches=2, max_window_items=4)
    with store.session() as s:
        benign = L.create_list(s, "benign-widely-shared", purpose="allow")
        L.add_entry(s, benign, {"pdq": PDQ_B})
    matcher = Matcher.open(store, str(tmp_path / "index"))
    try:
        with store.session() as s:
            with pytest.raises(SubmissionRefused, match="at most 3"):
                submit(s, [_item()] * 4, submitter=ME, limits=limits)
            with pytest.raises(SubmissionRefused, match="nothing to submit"):
                submit(s, [], submitter=ME, limits=limits)
            result = submit(
                s,
                [_item(), _item(MD5_B, PDQ_B), _item(MD5_B.replace("d", "e"), PDQ_A, 20)],
                submitter=ME,
                limits=limits,
                allow_listed=allow_list_check(matcher),
            )
            assert [(r.outcome, r.reason) for r in result.items] == [
                ("added", None),
                ("refused", "allow-listed"),
                ("added", "low-quality-pdq-dropped"),  # kept as an exact MD5 only
            ]
            with pytest.raises(RateLimited, match="hours"):  # 3 + 2 > 4 files a day
                submit(s, [_item(), _item()], submitter=ME, limits=limits)
            submit(s, [_item()], submitter=ME, limits=limits)  # 4 files, 2 submissions
            with pytest.raises(RateLimited) as limited:  # a third submission
                submit(s, [_item()], submitter=ME, limits=limits)
            assert limited.value.headers["Retry-After"]
            submit(s, [_item()], submitter="someone-else", limits=limits)
            later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, seconds=1)
            submit(s, [_item()], submitter=ME, limits=limits, now=later)  # window passed
    finally:
        matcher.close()


@pytest.mark.parametrize(
    ("md5", "pdq", "quality", "problem"),
    [
        (None, None, None, "md5 or a pdq"),
        (MD5_A, PDQ_A, None, "quality"),
        (MD5_A, PDQ_A, 101, "quality"),
        (MD5_A, None, 50, "quality belongs"),
        ("xyz", None, None, "md5"),
        (None, "00ff", 100, "pdq"),
    ],
)
def test_items_are_checked(
    md5: str | None, pdq: str | None, quality: int | None, problem: str
) -> None:
    with pytest.raises((BadInput, InvalidHash), match=problem):
        normalize_item(md5, pdq, quality)


@pytest.mark.parametrize("bad", ["short", "x" * 65, "RL-ÑAME-1234-5678", "RL_1234_5678_90"])
def test_case_numbers_are_checked(bad: str) -> None:
    with pytest.raises(BadInput, match="12 to 64"):
        normalize_case_number(bad)


def test_self_submitted_lists_only_flag(store: Store) -> None:
    with store.session() as s:
        self_submitted_list(s)
        with pytest.raises(BadInput, match="human review"):
            set_list_actions(s, LIST_NAME, ["flag", "report"])
        assert set_list_actions(s, LIST_NAME, ["flag"]) == ["flag"]
        assert set_list_actions(s, LIST_NAME, ["flag"]) == ["flag"]


def test_a_block_list_of_that_name_is_not_taken_over(store: Store) -> None:
    with store.session() as s:
        L.create_list(s, LIST_NAME)
        with pytest.raises(Conflict, match="purpose 'block'"):
            submit(s, [_item()], submitter=ME)


def test_every_language_has_every_string() -> None:
    keys = set(STRINGS["en"])
    for lang, strings in STRINGS.items():
        assert set(strings) == keys, lang
        for key, value in strings.items():
            assert value.count("{") == STRINGS["en"][key].count("{"), (lang, key)


def _client(tmp_path: Path, **config: object) -> tuple[TestClient, Store, str]:
    store = Store.open(tmp_path / "svc.db")
    with store.session() as s:
        _, key = create_key(s, "provider-example", "provider")
    cfg = ServiceConfig(index_dir=str(tmp_path / "index"), access_log=False, **config)  # type: ignore[arg-type]
    return TestClient(create_app(cfg, store)), store, key


def test_public_routes_serve_page_cap_bodies_and_limit_rates(tmp_path: Path) -> None:
    client, store, key = _client(tmp_path, selfsubmit_rate=2.0)
    with client:
        page = client.get("/submit-hashes/", headers={"Accept-Language": "es-ES,es;q=0.9"})
        assert page.status_code == 200 and '<html lang="es">' in page.text
        csp = page.headers["content-security-policy"]
        assert "connect-src 'self'" in csp and "default-src 'none'" in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        assert client.get("/submit-hashes/?lang=en").text.count('lang="en"') >= 1
        wasm = client.get("/submit-hashes/static/pdq.wasm")
        assert wasm.headers["content-type"] == "application/wasm"
        assert wasm.content == (STATIC / "pdq.wasm").read_bytes()
        # no key needed, but no files either and small bodies only
        upload = client.post("/submit-hashes/api/submissions", files={"f": ("a.jpg", b"x" * 10)})
        assert upload.status_code == 415
        big = client.post(
            "/submit-hashes/api/submissions",
            content=json.dumps({"items": [{"md5": MD5_A}] * 2000}),
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413
        one = {"items": [{"md5": MD5_A, "pdq": PDQ_A, "quality": 100}]}
        ok = client.post("/submit-hashes/api/submissions", json=one)
        assert ok.status_code == 200, ok.text
        number = ok.json()["case_number"]
        matched = client.post("/v1/match", json={"signals": {"pdq": PDQ_A}},
                              headers={"Authorization": f"Bearer {key}"}).json()  # fmt: skip
        assert [m["review"] for m in matched["matches"]] == [True]
        looked = client.get("/v1/lookup", params={"signal": "md5", "value": MD5_A},
                            headers={"Authorization": f"Bearer {key}"}).json()  # fmt: skip
        assert [(m["purpose"], m["review"]) for m in looked["matches"]] == [
            ("self-submitted", True)
        ]
        bad = client.post("/submit-hashes/api/status", json={"case_number": "short"})
        assert bad.status_code == 400 and "12 to 64" in bad.json()["error"]["message"]
        statuses = [
            client.post("/submit-hashes/api/status", json={"case_number": number}).status_code
            for _ in range(6)
        ]
        assert 429 in statuses  # 2 a second, bursts of 4
        assert client.get("/v1/lists").status_code == 401  # the API is still guarded
    store.close()


def test_self_submission_can_be_switched_off(tmp_path: Path) -> None:
    client, store, _ = _client(tmp_path, selfsubmit=False)
    with client:
        assert client.get("/submit-hashes/").status_code == 404
    store.close()


def test_pseudonyms_are_keyed() -> None:
    a, b = pseudonym(b"k1", "192.0.2.7"), pseudonym(b"k2", "192.0.2.7")
    assert a != b and len(a) == 64 and "192.0.2.7" not in a


@pytest.mark.skipif(
    shutil.which("emcc") is None, reason="needs emscripten (apt-get install emscripten)"
)
def test_committed_webassembly_is_what_the_build_script_makes(tmp_path: Path) -> None:
    """Rebuilt from _pdqcore.c into a temporary folder: byte-identical to the committed
    artefacts (the build is deterministic), so they are never stale."""
    subprocess.run([str(ROOT / "scripts" / "build-pdq-wasm"), str(tmp_path)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    for name in ("pdq.js", "pdq.wasm", "pdq-scalar.wasm"):
        assert (tmp_path / name).read_bytes() == (STATIC / name).read_bytes(), (
            f"{name} is stale: run `make wasm` and commit it"
        )
