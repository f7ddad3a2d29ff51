"""Crash safety (issue 17, "Build and show" 1): a real `ridgeline` subprocess is killed
with SIGKILL at named steps (`ridgeline.crashpoint`, via tests/kill9.py) of list
import, victims import, release pull, index compaction and every step of CyberTipline
filing; the rerun must lose nothing acknowledged, leave nothing half-applied and
resume without duplicates, on SQLite and PostgreSQL. Exchange fetch, scan, report
intake and the large-import kill live beside their features (test_exchange_live.py,
test_scan.py, test_intake_crash.py, test_import_scale.py) and use the same harness."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cybertip_server import LocalCyberTip
from kill9 import RIDGELINE, kill_at
from ridgeline import lists as L
from ridgeline import releases
from ridgeline.auditlog import verify
from ridgeline.index.match import MatchIndex
from ridgeline.lists.models import Entry, EntrySignal, ImportBatch
from ridgeline.releases.models import PulledRelease
from ridgeline.reports.models import CyberTipReport
from ridgeline.store import Store
from ridgeline.victims.models import VictimRecord
from ridgeline.victims.synth import generate
from test_reports_cli import KEY, make_documents


def _pdq(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def _ok(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run([RIDGELINE, *args], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout) if done.stdout.strip() else {}  # type: ignore[no-any-return]


def _log_intact(store: Store) -> None:
    with store.session() as s:
        result = verify(s)
    assert result.ok, result.reason


# ---------------------------------------------------------------- list import


def test_list_import_killed_mid_transaction(store: Store, tmp_path: Path) -> None:
    """Killed with its rows written but not committed: nothing of it stays; the rerun
    adds every hash once; a third run adds none."""
    hashes = _pdq(45_000, seed=1)
    src = tmp_path / "h.txt"
    src.write_text("\n".join(hashes) + "\n")
    with store.session() as s:
        L.create_list(s, "big")
    cmd = ["lists", "import", "big", str(src), "--signal", "pdq", "--db", store.url,
           "--output", "json"]  # fmt: skip
    kill_at("lists.import.batch", cmd)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0
        assert s.scalar(select(func.count()).select_from(EntrySignal)) == 0
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == 0
    assert _ok(*cmd)["added"] == 45_000
    assert _ok(*cmd)["added"] == 0
    with store.session() as s:
        keys = s.execute(select(func.count(), func.count(func.distinct(EntrySignal.key)))).one()
    assert tuple(keys) == (45_000, 45_000)
    _log_intact(store)


# ---------------------------------------------------------------- victims import


@pytest.mark.parametrize("point", ["victims.import.chunk", "victims.import.merged"])
def test_victims_import_killed_before_commit(store: Store, tmp_path: Path, point: str) -> None:
    world = generate(3, 400)
    src = tmp_path / "victims.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in world.json_records()))
    expected = int(world.captured.sum())
    cmd = ["victims", "import", str(src), "--db", store.url, "--format", "json"]
    kill_at(point, cmd)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(VictimRecord)) == 0
    done = _ok(*cmd)
    assert (done["records"], done["replaced"]) == (expected, 0)
    assert done["victims"] == int(world.known.sum())
    again = _ok(*cmd)
    assert (again["replaced"], again["victims"]) == (expected, done["victims"])
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(VictimRecord)) == expected


# ---------------------------------------------------------------- release pull


def test_release_pull_killed_between_deltas(store: Store, tmp_path: Path) -> None:
    """Killed after delta 2 was applied in the pull's transaction (delta 3 pending):
    the subscriber stays at version 1; the rerun applies 2 and 3 once."""
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    releases.generate_keypair(private, public)
    out = tmp_path / "rel"
    values = _pdq(30, seed=2)
    with store.session() as s:
        src = L.create_list(s, "src")
        for v in values[:10]:
            L.add_entry(s, src, {"pdq": v}, status="confirmed")
    key = releases.load_private_key(private)
    with store.session() as s:
        releases.create_release(s, L.get_list(s, "src"), key, out)
    pull = ["lists", "pull", str(out), "--trust", str(public), "--into", "sub", "--db",
            store.url, "--format", "json"]  # fmt: skip
    assert [a["version"] for a in _ok(*pull)["applied"]] == [1]  # type: ignore[index]
    for batch in (values[10:20], values[20:30]):
        with store.session() as s:
            src = L.get_list(s, "src")
            for v in batch:
                L.add_entry(s, src, {"pdq": v}, status="confirmed")
            releases.create_release(s, src, key, out)

    def state() -> tuple[list[int], int]:
        with store.session() as s:
            sub = L.get_list(s, "sub")
            versions = list(s.scalars(select(PulledRelease.version).order_by(PulledRelease.id)))
            live = s.scalar(
                select(func.count()).where(Entry.list_id == sub.id, Entry.deleted_at.is_(None))
            )
        return versions, int(live or 0)

    kill_at("releases.pull.applied", pull)
    assert state() == ([1], 10)  # delta 2 was applied but not committed: gone
    assert [a["version"] for a in _ok(*pull)["applied"]] == [2, 3]  # type: ignore[index]
    assert state() == ([1, 2, 3], 30)
    assert _ok(*pull)["applied"] == []
    _log_intact(store)


# ---------------------------------------------------------------- index compaction

COMPACT = """
import sys
from ridgeline.index.match import MatchIndex
from ridgeline.store import Store
with Store.open(sys.argv[1]) as store:
    index = MatchIndex.open(store, sys.argv[2], auto_compact=False)
    index.load(["pdq"])
    index.refresh()
    index.compact("pdq")
    index.close()
"""


def _hits(store: Store, directory: Path, values: list[str]) -> list[list[int]]:
    index = MatchIndex.open(store, directory, auto_compact=False)
    try:
        index.load(["pdq"])
        return [[m.entry_id for m in found] for found in index.match("pdq", values)]
    finally:
        index.close()


@pytest.mark.parametrize("point", ["index.write.renaming", "index.write.renamed"])
def test_index_compaction_killed_around_the_rename(
    store: Store, tmp_path: Path, point: str
) -> None:
    """Killed with the new file written but not renamed, or renamed but not swapped in:
    the index file is the old or the new one whole, matches are right after a restart,
    and the dead writer's temporary file is removed by the next write."""
    values = _pdq(60, seed=3)
    with store.session() as s:
        hl = L.create_list(s, "p")
        ids = [L.add_entry(s, hl, {"pdq": v}, status="confirmed").id for v in values[:40]]
    directory = tmp_path / "index"
    assert _hits(store, directory, values[:1]) == [[ids[0]]]  # builds and writes the file
    (path,) = directory.iterdir()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with store.session() as s:
        hl = L.get_list(s, "p")
        ids += [L.add_entry(s, hl, {"pdq": v}, status="confirmed").id for v in values[40:]]
        L.set_entry_enabled(s, L.get_entry(s, ids[1]), False, actor="t", reason="check")
    script = tmp_path / "compact.py"
    script.write_text(COMPACT)
    kill_at(point, [sys.executable, str(script), store.url, str(directory)])
    temps = list(directory.glob("*.tmp"))
    after = hashlib.sha256(path.read_bytes()).hexdigest()
    if point == "index.write.renaming":
        assert after == before and len(temps) == 1  # old file whole, new one aside
    else:
        assert after != before and temps == []  # new file whole, in place
    expected = [[i] for i in ids]
    expected[1] = []  # disabled
    assert _hits(store, directory, values) == expected
    index = MatchIndex.open(store, directory, auto_compact=False)
    try:
        index.load(["pdq"])
        index.compact("pdq")
    finally:
        index.close()
    assert list(directory.glob("*.tmp")) == []
    assert _hits(store, directory, values) == expected


# ---------------------------------------------------------------- CyberTipline filing

#: Every step of filing a two-file report (file 1 with fileDetails), in order: the
#: states each run commits before it leaves them, and each reply received but not yet
#: recorded. One run is killed at each, the next run resumes and is killed at the next.
FILING_POINTS = [
    "report.state.validated",
    "report.submit.replied",  # then an operator resolves (NCMEC may have opened one)
    "report.state.submitted",
    "report.upload.replied",  # file 1 uploaded, fileId not recorded: uploaded again
    "report.fileinfo.replied",  # file 1's details accepted, not recorded: sent again
    "report.file.sent",  # file 1 done
    "report.upload.replied",  # file 2 (file 1 is recorded now)
    "report.file.sent@2",  # file 2 done
    "report.state.finishing",
    "report.finish.replied",  # finished at NCMEC, not recorded: /finish again
]


@pytest.fixture
def cybertip() -> Iterator[LocalCyberTip]:
    with LocalCyberTip(password="crash-secret-3b1") as s:
        yield s


def test_filing_killed_at_every_step_in_turn(
    store: Store, cybertip: LocalCyberTip, tmp_path: Path
) -> None:
    """Ten kills, one per step; the eleventh run finishes. One report at NCMEC, each
    file uploaded and recorded, file 1's details on its recorded file, finished; the
    kill while /submit's answer was unrecorded waits for an operator instead of
    submitting again."""
    env = dict(os.environ, RIDGELINE_DB=store.url, RIDGELINE_EVIDENCE_KEY=KEY,
               RIDGELINE_CYBERTIP_USERNAME=cybertip.username,
               RIDGELINE_CYBERTIP_PASSWORD=cybertip.password)  # fmt: skip
    report, media, details = make_documents(tmp_path)
    other = tmp_path / "other.bin"
    other.write_bytes(b"a second benign file")
    rid = int(_ok("reports", "create", "--xml", str(report), "--file", str(media),
                  "--file-details", str(details), "--file", str(other), "--format", "json",
                  env=env)["id"])  # type: ignore[arg-type]  # fmt: skip
    file_cmd = ["reports", "file", str(rid), "--endpoint", cybertip.base, "--format", "json"]
    for point in FILING_POINTS:
        kill_at(point, file_cmd, env=env)
        if point == "report.submit.replied":
            again = subprocess.run([RIDGELINE, *file_cmd], env=env, capture_output=True, text=True)
            assert again.returncode == 1 and "needs attention" in again.stderr
            (ncmec_id,) = cybertip.reports
            _ok("reports", "resolve", str(rid), "--report-id", str(ncmec_id), "--actor", "op",
                env=env)  # fmt: skip
        assert cybertip.count("/submit") <= 1  # never submitted twice
    result = _ok(*file_cmd, env=env)
    assert result["state"] == "finished"
    assert cybertip.count("/submit") == 1 and len(cybertip.reports) == 1
    assert cybertip.count("/finish") == 2
    (remote,) = cybertip.reports.values()
    assert remote.state == "finished" and result["reportId"] == remote.report_id
    file_ids = result["fileIds"]
    assert isinstance(file_ids, list) and len(file_ids) == 2 and set(file_ids) <= set(remote.files)
    assert remote.files[file_ids[0]].details is not None  # on the recorded file 1
    assert [f.file_id for f in remote.files.values() if f.details is not None] == [file_ids[0]]
    assert remote.files[file_ids[0]].md5 == hashlib.md5(media.read_bytes()).hexdigest()
    assert remote.files[file_ids[1]].md5 == hashlib.md5(other.read_bytes()).hexdigest()
    assert len(remote.files) == 4  # one stray copy each of files 1 and 2 (replies lost)
    with store.session() as s:
        assert s.get_one(CyberTipReport, rid).state == "finished"
    _log_intact(store)
