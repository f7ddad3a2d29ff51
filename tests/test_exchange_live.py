"""Live exchange clients (issue 10 problem 9): NCMEC hash sharing, StopNCII and
ThreatExchange fetched into lists with checkpoints, each against a local server in
the tests that speaks the documented protocol and fails on purpose (paging, expiring
cursors, 429 with Retry-After, 5xx, dropped connections), on SQLite and PostgreSQL.
Hashes are synthetic; nothing here is or describes media.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from conftest import Served
from exchange_server import LocalExchange
from kill9 import kill9, start
from ncmec_server import LocalNCMEC, NCMECEntry
from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import BadInput
from ridgeline.exchange import live
from ridgeline.exchange.live import credentials
from ridgeline.exchange.live.threatexchange import listable as te_listable
from ridgeline.exchange.models import ExchangeCheckpoint
from ridgeline.lists.models import Entry
from ridgeline.store import Store
from stopncii_server import HashRecord, LocalStopNCII
from threatexchange_server import LocalThreatExchange, Update, descriptor

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
FAST = {"retry_base_s": 0.01, "retry_max_s": 0.05}


def md5(i: int) -> str:
    return hashlib.md5(f"benign synthetic file {i}".encode()).hexdigest()


def pdq(i: int) -> str:
    return hashlib.sha256(f"benign synthetic image {i}".encode()).hexdigest()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def creds_file(tmp_path: Path) -> Path:
    path = tmp_path / "credentials.toml"
    path.write_text(
        '[ncmec]\nusername = "esp-user"\npassword = "esp-secret"\n'
        '[stopncii]\nsubscription_key = "sub-key"\nfetch_function_key = "fetch-key"\n'
        'feedback_function_key = "feedback-key"\n'
        f'[te]\naccess_token = "1234567890|{"a" * 24}"\n'
    )
    return path


@pytest.fixture
def ncmec() -> Iterator[LocalNCMEC]:
    with LocalNCMEC(page_size=3) as server:
        yield server


def live_entries(store: Store, name: str) -> dict[str, set[str]]:
    """origin id -> hashes of the list's live entries (asserting no origin twice)."""
    with store.session() as session:
        hash_list = L.get_list(session, name)
        rows = session.scalars(
            select(Entry).where(Entry.list_id == hash_list.id, Entry.deleted_at.is_(None))
        ).all()
        origins = [r.origin_entry_id for r in rows]
        assert len(origins) == len(set(origins)), f"duplicate entries: {origins}"
        return {str(r.origin_entry_id): {s.value for s in r.signals} for r in rows}


def add(store: Store, name: str, kind: str, **settings: object) -> None:
    with store.session() as session:
        if "partner" not in {h.name for h in L.list_lists(session)}:
            L.create_list(session, "partner")
        live.add_source(session, name, kind, "partner", settings=settings)


def test_ncmec_pages_out_of_time_order_deletions_and_checkpoints(
    store: Store, ncmec: LocalNCMEC, creds_file: Path
) -> None:
    # Entries are served in no time order; entry 3's deletion (newer) comes on the
    # first page, entry 3 itself on the last.
    ncmec.entries = [
        NCMECEntry(f"e{i}", 101, T0 + 100 + ((i * 37) % 11), {"md5": md5(i), "pdq": pdq(i)})
        for i in range(8)
    ]
    ncmec.entries.append(NCMECEntry("e3", 101, T0 + 200, {"md5": md5(3)}, deleted=True))
    add(store, "ncmec", "ncmec", base_url=ncmec.base, since=T0, **FAST)
    clock = Clock(T0 + 1000)

    first = live.fetch_source(
        store, "ncmec", credentials_file=str(creds_file), max_pages=1, clock=clock
    )
    assert first.pages == 1 and not first.complete
    with store.session() as session:
        status = live.source_status(session, "ncmec")
    # Mid-range the watermark stays at the range's start: an unseen older entry on a
    # later page cannot be skipped.
    assert status.cursor["from"] == T0 and status.cursor["to"] == T0 + 995
    assert status.cursor["next"].startswith("/v2/entries?") and status.fetching is None
    assert first.deletions_unmatched == 1  # e3's deletion waits for e3

    rest = live.fetch_source(store, "ncmec", credentials_file=str(creds_file), clock=clock)
    assert rest.complete and rest.pages == 2 and rest.deleted == 1
    assert ncmec.ranges == [(T0, T0 + 995)]  # resumed from the next page, not restarted
    entries = live_entries(store, "partner")
    assert set(entries) == {f"e{i}" for i in range(8) if i != 3}
    assert entries["e5"] == {md5(5), pdq(5)}
    with store.session() as session:
        status = live.source_status(session, "ncmec")
        waiting = session.scalar(text("SELECT count(*) FROM exchange_tombstones"))
    assert status.cursor == {"from": T0 + 995} and status.pages == 3 and status.records == 9
    assert status.last_success_at is not None and status.last_error is None
    assert waiting == 0

    # Later entries: the next run asks only for the new range.
    ncmec.entries.append(NCMECEntry("e9", 102, T0 + 1100, {"md5": md5(9)}))
    clock.now = T0 + 2000
    again = live.fetch_source(store, "ncmec", credentials_file=str(creds_file), clock=clock)
    assert again.added == 1 and ncmec.ranges[-1] == (T0 + 995, T0 + 1995)
    assert "e9" in live_entries(store, "partner")


def test_ncmec_retries_429_5xx_drops_and_restarts_an_expired_cursor(
    store: Store, ncmec: LocalNCMEC, creds_file: Path
) -> None:
    ncmec.entries = [NCMECEntry(f"e{i}", 101, T0 + i, {"md5": md5(i)}) for i in range(7)]
    add(store, "ncmec", "ncmec", base_url=ncmec.base, since=T0, **FAST)
    clock = Clock(T0 + 1000)
    ncmec.fail("/v2/entries", "429", 1, retry_after="1")
    ncmec.fail("/v2/entries", "503", 2)
    ncmec.fail("/v2/entries", "drop", 3)
    started = time.monotonic()
    first = live.fetch_source(
        store, "ncmec", credentials_file=str(creds_file), max_pages=1, clock=clock
    )
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert first.retries == 3 and first.pages == 1

    ncmec.expire_cursors()  # the saved next page no longer works: the range again
    rest = live.fetch_source(store, "ncmec", credentials_file=str(creds_file), clock=clock)
    assert rest.complete
    assert ncmec.ranges == [(T0, T0 + 995), (T0, T0 + 995)]
    assert set(live_entries(store, "partner")) == {f"e{i}" for i in range(7)}
    assert rest.duplicates >= 1  # the first page again, applied once


def test_ncmec_old_paging_cursor_is_not_used(
    store: Store, ncmec: LocalNCMEC, creds_file: Path
) -> None:
    ncmec.entries = [NCMECEntry(f"e{i}", 101, T0 + i, {"md5": md5(i)}) for i in range(5)]
    add(store, "ncmec", "ncmec", base_url=ncmec.base, since=T0, cursor_max_age_s=60)
    clock = Clock(T0 + 1000)
    live.fetch_source(store, "ncmec", credentials_file=str(creds_file), max_pages=1, clock=clock)
    clock.now += 61  # NCMEC advises against old paging URLs
    live.fetch_source(store, "ncmec", credentials_file=str(creds_file), clock=clock)
    assert len(ncmec.ranges) == 2 and ncmec.ranges[1][0] == T0
    assert set(live_entries(store, "partner")) == {f"e{i}" for i in range(5)}


def test_ncmec_persistent_failure_keeps_the_checkpoint_and_the_error(
    store: Store, ncmec: LocalNCMEC, creds_file: Path
) -> None:
    ncmec.entries = [NCMECEntry(f"e{i}", 101, T0 + i, {"md5": md5(i)}) for i in range(5)]
    add(store, "ncmec", "ncmec", base_url=ncmec.base, since=T0, retry_attempts=3, **FAST)
    clock = Clock(T0 + 1000)
    live.fetch_source(store, "ncmec", credentials_file=str(creds_file), max_pages=1, clock=clock)
    with store.session() as session:
        before = live.source_status(session, "ncmec").cursor
    ncmec.fail("/v2/entries", "500", 1, times=3)
    with pytest.raises(live.ExchangeUnavailable, match="HTTP 500 after 3 attempts"):
        live.fetch_source(store, "ncmec", credentials_file=str(creds_file), clock=clock)
    with store.session() as session:
        status = live.source_status(session, "ncmec")
    assert status.cursor == before and "HTTP 500" in str(status.last_error)
    assert status.fetching is None  # the lease was released
    done = live.fetch_source(store, "ncmec", credentials_file=str(creds_file), clock=clock)
    assert done.complete and len(live_entries(store, "partner")) == 5


def test_ncmec_wrong_credentials_and_missing_ones(
    store: Store, ncmec: LocalNCMEC, tmp_path: Path
) -> None:
    add(store, "ncmec", "ncmec", base_url=ncmec.base, **FAST)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[ncmec]\nusername = "esp-user"\npassword = "not-it"\n')
    with pytest.raises(live.ExchangeAuthFailed, match="401"):
        live.fetch_source(store, "ncmec", credentials_file=str(wrong))
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(live.CredentialsMissing, match="RIDGELINE_EXCHANGE_NCMEC_PASSWORD"):
        live.fetch_source(store, "ncmec", credentials_file=str(empty))
    secret = credentials.load("ncmec", ("username", "password"), file=wrong)
    assert "not-it" not in repr(secret)


def test_settings_never_take_credentials(store: Store) -> None:
    with store.session() as session:
        L.create_list(session, "partner")
        with pytest.raises(BadInput, match="credentials never go in the database"):
            live.add_source(session, "n", "ncmec", "partner", settings={"password": "x"})
        with pytest.raises(BadInput, match="unknown NCMEC environment"):
            live.add_source(session, "n", "ncmec", "partner", settings={"environment": "Moon"})


def test_ncmec_feedback(store: Store, ncmec: LocalNCMEC, creds_file: Path) -> None:
    ncmec.entries = [NCMECEntry("e1", 101, T0 + 1, {"md5": md5(1), "pdq": pdq(1)})]
    add(store, "ncmec", "ncmec", base_url=ncmec.base, since=T0, **FAST)
    live.fetch_source(store, "ncmec", credentials_file=str(creds_file), clock=Clock(T0 + 100))
    with store.session() as session:
        entry_id = session.scalar(select(Entry.id).where(Entry.origin_entry_id == "e1"))
    assert entry_id is not None
    sent = live.send_feedback(
        store, "ncmec", entry_id, affirmative=True, credentials_file=str(creds_file)
    )
    assert {s.path for s in sent} == {
        "/v2/entries/101/e1/MD5/feedback",
        "/v2/entries/101/e1/PDQ/feedback",
    }
    live.send_feedback(
        store,
        "ncmec",
        entry_id,
        affirmative=False,
        reason="Not CSAM",
        signals=["pdq"],
        credentials_file=str(creds_file),
    )
    last = ncmec.feedback[-1]
    assert (last.member, last.entry, last.fp_type) == ("101", "e1", "PDQ")
    assert b"<negative><reasonIds><guid>11111111-2222-3333-4444-555555555555" in last.body
    assert b"<affirmative" in ncmec.feedback[0].body
    with pytest.raises(BadInput, match="no PDQ feedback reason 'funny'"):
        live.send_feedback(
            store, "ncmec", entry_id, affirmative=False, reason="funny", signals=["pdq"],
            credentials_file=str(creds_file),
        )  # fmt: skip


def test_stopncii_pages_withdrawals_expired_token_and_feedback(
    store: Store, creds_file: Path
) -> None:
    with LocalStopNCII() as server:
        server.records = [HashRecord(pdq(i), T0 + i) for i in range(6)]
        server.records.append(
            HashRecord(md5(9), T0 + 3, "VideoMD5", case_numbers={"c-1": "Active"})
        )
        add(store, "stopncii", "stopncii", base_url=server.base, page_size=2, **FAST)
        server.fail("/FetchHashes", "429", 2, retry_after="0")
        first = live.fetch_source(store, "stopncii", credentials_file=str(creds_file), max_pages=2)
        assert first.pages == 2 and not first.complete
        with store.session() as session:
            cursor = live.source_status(session, "stopncii").cursor
        assert cursor["start"] == 10 and cursor["token"]  # StopNCII's default start
        server.expire_cursors()  # the token is refused: the run again from its start
        rest = live.fetch_source(store, "stopncii", credentials_file=str(creds_file))
        assert rest.complete and server.starts == [10, 10]
        assert len(live_entries(store, "partner")) == 7
        with store.session() as session:
            assert live.source_status(session, "stopncii").cursor == {"start": T0 + 5}

        # A withdrawal is the hash's newest state: its entry is tombstoned.
        server.records[2] = HashRecord(pdq(2), T0 + 50, status="Withdrawn")
        withdrawn = live.fetch_source(store, "stopncii", credentials_file=str(creds_file))
        assert withdrawn.deleted == 1 and f"ImagePDQ:{pdq(2)}" not in live_entries(store, "partner")

        with store.session() as session:
            entry_id = session.scalar(
                select(Entry.id).where(Entry.origin_entry_id == f"VideoMD5:{md5(9)}")
            )
        assert entry_id is not None
        live.send_feedback(
            store, "stopncii", entry_id, affirmative=False, reason="not ncii",
            credentials_file=str(creds_file),
        )  # fmt: skip
        assert server.feedback == [
            {"hashValue": md5(9), "feedbackValue": "NotBlocked", "tags": ["not ncii"]}
        ]


def test_threatexchange_opinions_deletions_and_the_token_is_never_stored(
    store: Store, creds_file: Path
) -> None:
    from threatexchange.exchanges.clients.fb_threatexchange.threat_updates import (
        ThreatUpdateJSON,
    )
    from threatexchange.exchanges.fetch_state import AggregateSignalOpinionCategory
    from threatexchange.exchanges.impl.fb_threatexchange_api import (
        FBThreatExchangeIndicatorRecord,
    )

    token = "1234567890|" + "a" * 24
    with LocalThreatExchange(token, page_size=2) as server:
        server.updates = [
            Update(1, pdq(1), "HASH_PDQ", T0 + 1, [descriptor(11, 7)]),
            Update(2, pdq(2), "HASH_PDQ", T0 + 2, [descriptor(12, 7, "NON_MALICIOUS")]),
            Update(3, md5(3), "HASH_VIDEO_MD5", T0 + 3, [descriptor(13, 7)]),
            Update(
                4,
                pdq(4),
                "HASH_PDQ",
                T0 + 4,
                [descriptor(14, 7, reactions=[{"key": "DISAGREE_WITH_TAGS", "value": "8"}])],
            ),
            Update(5, "https://example.com/", "URI", T0 + 5, [descriptor(15, 7)]),
            Update(6, pdq(6), "HASH_PDQ", T0 + 6, [descriptor(16, 8, "UNKNOWN")]),
        ]
        add(store, "te", "threatexchange", base_url=server.base, privacy_group="303", **FAST)
        server.fail("/303/threat_updates", "502", 2)
        clock = Clock(T0 + 1000)
        first = live.fetch_source(
            store, "te", credentials_file=str(creds_file), max_pages=1, clock=clock
        )
        with store.session() as session:
            cursor = live.source_status(session, "te").cursor
        assert "after=" in cursor["next"] and "access_token" not in cursor["next"]
        server.expire_cursors()
        rest = live.fetch_source(store, "te", credentials_file=str(creds_file), clock=clock)
        assert first.pages == 1 and rest.complete and len(server.ranges) == 2
        # Ours and threatexchange's aggregation agree on every update.
        for update in server.updates:
            if update.type == "URI":
                continue  # not a hash: reported and skipped, whatever its opinion
            record = FBThreatExchangeIndicatorRecord.from_threatexchange_json(
                1234567890, ThreatUpdateJSON(update.to_json())
            )
            theirs = record is not None and (
                record.get_as_aggregate_opinion().category
                == AggregateSignalOpinionCategory.POSITIVE_CLASS
            )
            ours = te_listable(update.to_json())
            assert ours == theirs, update.id
        assert set(live_entries(store, "partner")) == {"1", "3"}  # 2, 4, 6 not listable
        assert any("URI" in e["error"] for e in rest.errors)

        server.updates.append(Update(1, pdq(1), "HASH_PDQ", T0 + 2000, should_delete=True))
        clock.now = T0 + 5000
        gone = live.fetch_source(store, "te", credentials_file=str(creds_file), clock=clock)
        assert gone.deleted == 1 and set(live_entries(store, "partner")) == {"3"}

        with store.session() as session:
            entry_id = session.scalar(select(Entry.id).where(Entry.origin_entry_id == "3"))
            dump = json.dumps(
                [list(r) for r in session.execute(select(ExchangeCheckpoint.cursor))]
            ) + json.dumps(
                [list(r) for r in session.execute(text("SELECT * FROM log_records"))], default=str
            )
        assert token not in dump and "aaaaaaaaaaaaaaaaaaaaaaaa" not in dump
        assert entry_id is not None
        live.send_feedback(
            store, "te", entry_id, affirmative=True, credentials_file=str(creds_file)
        )
        assert server.reactions == [("13", "HELPFUL")]


def _ridgeline(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start(args, env=env)


KILL_ENV = {
    "RIDGELINE_EXCHANGE_SRC_USERNAME": "esp-user",
    "RIDGELINE_EXCHANGE_SRC_PASSWORD": "esp-secret",
    "RIDGELINE_EXCHANGE_SRC_SUBSCRIPTION_KEY": "sub-key",
    "RIDGELINE_EXCHANGE_SRC_FETCH_FUNCTION_KEY": "fetch-key",
    "RIDGELINE_EXCHANGE_SRC_ACCESS_TOKEN": "1234567890|" + "a" * 24,
}


def _kill_server(kind: str) -> tuple[LocalExchange, str, dict[str, object], set[str]]:
    """A server with ten records on five pages, the path its pages come from, the
    source's settings, and the origin ids that must end up live."""
    if kind == "ncmec":
        ncmec = LocalNCMEC(page_size=2)
        ncmec.entries = [
            NCMECEntry(f"e{i}", 101, T0 + (i * 7) % 10, {"md5": md5(i)}) for i in range(9)
        ]
        ncmec.entries.append(NCMECEntry("e4", 101, T0 + 50, {"md5": md5(4)}, deleted=True))
        return ncmec, "/v2/entries", {"since": T0}, {f"e{i}" for i in range(9) if i != 4}
    if kind == "stopncii":
        ncii = LocalStopNCII()
        ncii.records = [HashRecord(pdq(i), T0 + i) for i in range(10)]
        return ncii, "/FetchHashes", {"page_size": 2}, {f"ImagePDQ:{pdq(i)}" for i in range(10)}
    te = LocalThreatExchange(KILL_ENV["RIDGELINE_EXCHANGE_SRC_ACCESS_TOKEN"], page_size=2)
    te.updates = [
        Update(i, pdq(i), "HASH_PDQ", T0 + i, [descriptor(100 + i, 7)]) for i in range(10)
    ]
    return te, "/303/threat_updates", {"privacy_group": "303"}, {str(i) for i in range(10)}


def _resumed(server: LocalExchange) -> bool:
    """The second run went on from the saved cursor (no new range or run was opened)."""
    if isinstance(server, LocalStopNCII):
        return server.starts == [10]
    assert isinstance(server, LocalNCMEC | LocalThreatExchange)
    return len(server.ranges) == 1


@pytest.mark.parametrize("kind", ["ncmec", "stopncii", "threatexchange"])
def test_kill_9_mid_fetch_resumes_from_the_checkpoint_without_loss_or_duplicates(
    store: Store, kind: str
) -> None:
    server, path, settings, expected = _kill_server(kind)
    with server:
        add(store, "src", kind, base_url=server.base, **settings, **FAST)
        env = {**os.environ, **KILL_ENV}
        hang = server.fail(path, "hang", 3)
        proc = _ridgeline("exchange", "fetch", "src", "--db", store.url, env=env)
        assert hang.hit.wait(60), proc.communicate(timeout=5)
        kill9(proc)  # mid-page: page 3 was asked for, not answered
        hang.release.set()
        with store.session() as session:
            status = live.source_status(session, "src")
        assert status.pages == 2 and status.records == 4
        assert status.fetching is not None  # the dead process's lease is still there

        done = _ridgeline(
            "exchange", "fetch", "src", "--db", store.url, "--format", "json", env=env
        )
        out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err.decode()
        report = json.loads(out)
        assert report["complete"] and report["pages"] == 3
        assert _resumed(server)
        assert set(live_entries(store, "partner")) == expected
        with store.session() as session:
            total = session.scalar(select(func.count()).select_from(Entry))
            status = live.source_status(session, "src")
        # Each entry once (ncmec: eight live and e4's tombstone).
        assert total == len(expected) + (kind == "ncmec")
        assert status.fetching is None and status.pages == 5 and status.records == 10


def test_a_second_fetcher_is_refused_while_the_first_runs(
    store: Store, ncmec: LocalNCMEC, creds_file: Path
) -> None:
    import threading

    ncmec.entries = [NCMECEntry(f"e{i}", 101, T0 + i, {"md5": md5(i)}) for i in range(5)]
    add(store, "ncmec", "ncmec", base_url=ncmec.base, since=T0, **FAST)
    hang = ncmec.fail("/v2/entries", "hang", 1)
    first: list[object] = []
    thread = threading.Thread(
        target=lambda: first.append(
            live.fetch_source(store, "ncmec", credentials_file=str(creds_file))
        )
    )
    thread.start()
    assert hang.hit.wait(30)
    with pytest.raises(live.ExchangeBusy, match="is being fetched by"):
        live.fetch_source(store, "ncmec", credentials_file=str(creds_file))
    hang.release.set()  # the dropped page is retried
    thread.join(60)
    assert first and len(live_entries(store, "partner")) == 5


def test_cli_add_ls_status_fetch_rm(db_path: str, ncmec: LocalNCMEC, creds_file: Path) -> None:
    ncmec.entries = [NCMECEntry(f"e{i}", 101, T0 + i, {"md5": md5(i)}) for i in range(4)]
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(main, [*args, "--db", db_path])
        return result.exit_code, result.stdout, result.stderr

    assert run("lists", "create", "partner")[0] == 0
    code, out, err = run(
        "exchange", "add", "ncmec", "--kind", "ncmec", "--list", "partner", "--url",
        ncmec.base, "--since", "2026-01-01T00:00:00Z", "--every", "600", "--set",
        "retry_base_s=0.01", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["settings"]["retry_base_s"] == 0.01
    code, out, err = run(
        "exchange", "fetch", "ncmec", "--credentials", str(creds_file), "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out)["added"] == 4 and "page 2" in err
    code, out, _ = run("exchange", "ls", "--format", "json")
    assert json.loads(out)[0]["records"] == 4
    code, out, _ = run("exchange", "status", "ncmec", "--format", "json")
    assert json.loads(out)["last_success_at"] is not None
    code, out, err = run("exchange", "reset", "ncmec", "--since", "2026-01-01T00:00:02Z")
    assert code == 0, err
    assert json.loads(out)["cursor"] == {}
    code, out, err = run("exchange", "fetch", "ncmec", "--credentials", str(creds_file))
    assert code == 0, err
    assert ncmec.ranges[-1][0] == T0 + 2  # from the new since; the re-read entries once
    code, out, _ = run("exchange", "status", "ncmec", "--format", "json")
    assert json.loads(out)["records"] == 6
    code, _, err = run("exchange", "reset", "ncmec", "--since", "yesterday")
    assert code == 2 and "neither Unix seconds nor ISO 8601" in err
    code, _, err = run("exchange", "fetch", "nope")
    assert code == 1 and "no exchange source named 'nope'" in err
    assert run("exchange", "rm", "ncmec")[0] == 0
    assert json.loads(run("exchange", "ls", "--format", "json")[1]) == []


def test_serve_fetches_on_schedule_never_blocks_requests_and_stops_cleanly(
    db_path: str, tmp_path: Path, serve_process: Callable[..., Served]
) -> None:
    with LocalNCMEC(page_size=2) as server:
        server.entries = [NCMECEntry(f"e{i}", 101, T0 + i, {"md5": md5(i)}) for i in range(6)]
        store = Store.open(db_path)
        with store.session() as session:
            L.create_list(session, "partner")
            live.add_source(
                session, "ncmec", "ncmec", "partner", interval_s=1.0,
                settings={"base_url": server.base, "since": T0, **FAST},
            )  # fmt: skip
        hang = server.fail("/v2/entries", "hang", 2)
        env = {
            **os.environ,
            "RIDGELINE_EXCHANGE_NCMEC_USERNAME": "esp-user",
            "RIDGELINE_EXCHANGE_NCMEC_PASSWORD": "esp-secret",
        }
        served = serve_process(
            "serve", "--port", "{port}", "--db", db_path, "--index-dir",
            str(tmp_path / "index"), "--exchange-interval", "0.5", env=env,
        )  # fmt: skip
        assert hang.hit.wait(60)
        with httpx.Client(base_url=served.base, timeout=5) as client:
            for _ in range(5):  # the fetch thread is stuck in a partner call
                started = time.monotonic()
                assert client.get("/readyz").status_code == 200
                assert time.monotonic() - started < 1.0
        hang.release.set()  # the dropped page is retried; the fetch goes on
        deadline = time.monotonic() + 60
        while len(live_entries(store, "partner")) < 6:
            assert time.monotonic() < deadline, "the scheduled fetch did not finish"
            time.sleep(0.2)

        # Now the partner fails and the fetch sits in a long back-off: stopping the
        # server must not wait for it.
        with store.session() as session:
            session.execute(
                text("UPDATE exchange_sources SET settings = :s"),
                {"s": json.dumps({"base_url": server.base, "since": T0, "retry_base_s": 30})},
            )
        failing = server.fail("/v2/entries", "503", 1, times=1000)
        deadline = time.monotonic() + 60
        while failing.hits == 0:
            assert time.monotonic() < deadline, "no scheduled fetch after the first"
            time.sleep(0.2)
        started = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down (lifespan included)
        assert served.proc.wait(20) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 15
        with store.session() as session:
            status = live.source_status(session, "ncmec")
        assert status.fetching is None and status.pages >= 3
        store.close()
