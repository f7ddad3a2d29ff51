"""Scanning: folders and nested archives, bad files, traversal and bombs, resume,
actions (flag, quarantine + restore, report), flood control, allow lists, jobs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select

from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.errors import BadInput, NotFound
from ridgeline.evidence import EvidenceKey
from ridgeline.reports import core as reports_core
from ridgeline.reports.drafts import ReportSink
from ridgeline.reports.models import CyberTipReport
from ridgeline.scan.actions import restore_quarantined, set_list_actions
from ridgeline.scan.archives import ArchiveLimits, Walker, unsafe_member_name
from ridgeline.scan.flood import FloodPolicy, list_holds, release_hold
from ridgeline.scan.models import QuarantineItem, ScanFile, ScanRun
from ridgeline.scan.pipeline import ScanOptions, scan
from ridgeline.signals import HashOptions
from ridgeline.store import Store

BAD = b"known bad (synthetic)\n"
OTHER = b"harmless text\n"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def noise_png(seed: int, size: int = 128) -> bytes:
    """A benign textured image made in code (high PDQ quality)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def targz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_list(store: Store, name: str = "known", purpose: str = "block", **signals: str) -> int:
    with store.session() as s:
        hl = L.create_list(s, name, purpose=purpose)
        entry = L.add_entry(
            s,
            hl,
            signals or {"md5": md5(BAD)},
            classifications=[{"scheme": "industry", "label": "A1"}],
            source="unit-test",
            origin_member="test-member",
        )
        return entry.id


KEY = EvidenceKey(bytes(range(32)))


def run(store: Store, paths: list[Path], **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    kw.setdefault("report_sink", ReportSink(KEY, actor="scan"))
    summary = scan(store, paths, ScanOptions(**kw), on_result=rows.append)
    return summary, rows


def drafted_paths(store: Store) -> list[str]:
    """The scanned path of every CyberTipline draft a `report` action made."""
    with store.session() as s:
        return [r.origin["path"] for r in s.scalars(select(CyberTipReport))]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "bad.txt").write_bytes(BAD)
    (root / "sub" / "ok.txt").write_bytes(OTHER)
    (root / "img.png").write_bytes(noise_png(1))
    inner = targz_bytes({"deep/bad.bin": BAD, "deep/ok.bin": OTHER})
    (root / "outer.zip").write_bytes(zip_bytes({"a/ok.txt": OTHER, "a/inner.tar.gz": inner}))
    return root


def test_scan_folder_and_nested_archives_records_explained_matches(
    store: Store, tree: Path
) -> None:
    entry_id = make_list(store)
    summary, rows = run(store, [tree], lists=["known"])
    by_path = {
        Path(r["path"]).name if "!" not in r["path"] else r["path"].split("!", 1)[1]: r
        for r in rows
    }
    assert set(by_path) == {
        "bad.txt",
        "ok.txt",
        "img.png",
        "a/ok.txt",
        "a/inner.tar.gz!deep/bad.bin",
        "a/inner.tar.gz!deep/ok.bin",
    }
    assert summary.files == 6 and summary.matched == 2 and summary.errors == 0
    m = by_path["a/inner.tar.gz!deep/bad.bin"]["matches"][0]
    assert m["list"] == "known" and m["entry_id"] == entry_id and m["signal"] == "md5"
    assert m["distance"] == 0 and m["classifications"] == [{"scheme": "industry", "label": "A1"}]
    assert m["provenance"]["source"] == "unit-test"
    assert m["provenance"]["origin_member"] == "test-member"
    assert by_path["img.png"]["signals"]["pdq"]["quality"] >= 50
    assert by_path["bad.txt"]["actions"] == [{"action": "flag", "lists": ["known"]}]
    with store.session() as s:
        stored = list(s.scalars(select(ScanFile).where(ScanFile.run_id == summary.run_id)))
        assert len(stored) == 6
        assert sum(1 for f in stored if f.matches) == 2
        run_row = s.get(ScanRun, summary.run_id)
        assert run_row is not None and run_row.finished_at is not None
        assert run_row.counts["matched"] == 2


def test_pdq_and_dihedral_matching(store: Store, tmp_path: Path) -> None:
    from ridgeline.hashing import hash_file

    img = noise_png(7)
    (tmp_path / "orig.png").write_bytes(img)
    rotated = Image.open(io.BytesIO(img)).transpose(Image.Transpose.ROTATE_90)
    folder = tmp_path / "scan"
    folder.mkdir()
    rotated.save(folder / "rot.png")
    pdq = hash_file(tmp_path / "orig.png").signals["pdq"]["hash"]
    make_list(store, pdq=pdq)
    _, plain = run(store, [folder])
    assert plain[0]["matches"] == []
    _, rows = run(store, [folder], hash_options=HashOptions(dihedral=True))
    (m,) = rows[0]["matches"]
    assert m["signal"] == "pdq" and m["variant"] != "" and m["distance"] <= m["threshold"] == 31


def test_bad_files_are_recorded_and_scan_goes_on(store: Store, tmp_path: Path) -> None:
    make_list(store)
    root = tmp_path / "d"
    root.mkdir()
    (root / "a_corrupt.zip").write_bytes(b"PK\x03\x04" + os.urandom(64))
    (root / "b_truncated.png").write_bytes(noise_png(2)[:60])
    (root / "c_bad.txt").write_bytes(BAD)
    os.mkfifo(root / "d_fifo")
    summary, rows = run(store, [root])
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert "bad archive" in errors["a_corrupt.zip"]
    assert "pdq" in errors["b_truncated.png"]
    assert "not a regular file" in errors["d_fifo"]
    assert summary.errors == 3 and summary.matched == 1
    with store.session() as s:
        recorded = {r.path: r.error for r in s.scalars(select(ScanFile))}
    assert sum(1 for e in recorded.values() if e) == 3


def test_archive_members_cannot_escape(tmp_path: Path) -> None:
    assert unsafe_member_name("../x") and unsafe_member_name("/etc/passwd")
    assert unsafe_member_name("a/../../x") and unsafe_member_name("C:/x")
    assert unsafe_member_name("a/b.txt") is None
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../escaped.txt", b"x")
        zf.writestr("/abs.txt", b"x")
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("fine.txt", b"fine")
    tpath = tmp_path / "evil.tar"
    with tarfile.open(tpath, "w") as tf:
        for name, kind in (("sym", tarfile.SYMTYPE), ("hard", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "../../etc/passwd"
            tf.addfile(info)
        info = tarfile.TarInfo("../../up.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    work = tmp_path / "work"
    items = list(Walker(work).walk([zpath, tpath]))
    errors = {i.display.split("!", 1)[1]: i.error for i in items if i.error}
    assert "escapes" in errors["../escaped.txt"]
    assert "absolute" in errors["/abs.txt"]
    assert "symbolic link" in errors["link"]
    assert "link member" in errors["sym"] and "link member" in errors["hard"]
    assert "escapes" in errors["../../up.txt"]
    ok = [i for i in items if not i.error]
    assert [i.display.split("!")[1] for i in ok] == ["fine.txt"]
    assert Path(ok[0].path).parent.parent == work
    assert not (tmp_path / "escaped.txt").exists() and not Path("/abs.txt").exists()
    assert not (tmp_path.parent / "up.txt").exists()


def test_archive_bombs_are_bounded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_bytes({"zeros.bin": bytes(4 << 20)}))  # ~4 MB of zeros, tiny on disk
    items = list(Walker(tmp_path / "w1", ArchiveLimits(max_ratio=50)).walk([bomb]))
    assert items[-1].error and "expands more than 50" in items[-1].error
    many = tmp_path / "many.zip"
    many.write_bytes(zip_bytes({f"f{i}.txt": b"x" for i in range(20)}))
    items = list(Walker(tmp_path / "w2", ArchiveLimits(max_members=5)).walk([many]))
    assert items[-1].error and "more than 5 members" in items[-1].error
    nested = zip_bytes({"x.txt": b"x"})
    for _ in range(3):
        nested = zip_bytes({"n.zip": nested})
    deep = tmp_path / "deep.zip"
    deep.write_bytes(nested)
    items = list(Walker(tmp_path / "w3", ArchiveLimits(max_depth=2)).walk([deep]))
    assert any(i.error and "nested deeper than 2" in i.error for i in items)
    total = tmp_path / "total.zip"
    total.write_bytes(zip_bytes({"a": os.urandom(3000), "b": os.urandom(3000)}))
    items = list(Walker(tmp_path / "w4", ArchiveLimits(max_total_bytes=4000)).walk([total]))
    assert items[-1].error and "4000 bytes in total" in items[-1].error


def test_resume_skips_unchanged_and_rescans_changed(store: Store, tree: Path) -> None:
    make_list(store)
    first, _ = run(store, [tree], resume=True)
    assert first.files == 6 and first.skipped == 0
    second, rows = run(store, [tree], resume=True)
    assert second.files == 0 and second.skipped == 4  # 3 files + 1 archive
    (tree / "sub" / "ok.txt").write_bytes(BAD)  # changed size and mtime
    third, rows = run(store, [tree], resume=True)
    assert third.files == 1 and third.matched == 1
    assert rows[[r["path"] for r in rows].index(str(tree / "sub" / "ok.txt"))]["matches"]
    (tree / "copy.txt").write_bytes(BAD)  # same content under a new path
    by_stat, _ = run(store, [tree], resume=True)
    assert by_stat.files == 1
    (tree / "copy2.txt").write_bytes(BAD)
    by_sha, _ = run(store, [tree], resume=True, resume_by="sha256")
    assert by_sha.files == 0 and by_sha.skipped == 6


def test_report_and_quarantine_actions_with_restore(
    store: Store, tree: Path, tmp_path: Path
) -> None:
    make_list(store)
    with store.session() as s:
        set_list_actions(s, "known", ["flag", "report", "quarantine"])
    qdir = tmp_path / "quarantine"
    original = tree / "bad.txt"
    mtime = original.stat().st_mtime_ns
    summary, rows = run(store, [tree], quarantine_dir=str(qdir))
    assert summary.quarantined == 2 and summary.reports == 2
    assert not original.exists() and not (tree / "outer.zip").exists()
    row = next(r for r in rows if r["path"] == str(original))
    kinds = [a["action"] for a in row["actions"]]
    assert kinds == ["flag", "report", "quarantine"]
    qid = row["actions"][2]["quarantine_id"]
    with store.session() as s:
        item = s.get(QuarantineItem, qid)
        assert item is not None
        manifest = json.loads(Path(item.manifest_path).read_text())
        assert manifest["original_path"] == str(original.resolve())
        assert manifest["sha256"] == hashlib.sha256(BAD).hexdigest()
        assert manifest["size"] == len(BAD) and manifest["mtime_ns"] == mtime
        assert manifest["matches"][0]["list"] == "known" and manifest["time"].endswith("Z")
        draft = reports_core.get_report(s, row["actions"][1]["report_id"])
        assert draft.state == "draft"  # a CyberTipline draft: the reporter is still missing
        (attached,) = draft.files  # the file itself, encrypted with the evidence key
        assert reports_core.file_bytes(attached, KEY) == BAD and attached.md5 == md5(BAD)
        details = draft.files[0].details or {}
        hashes = {h["hashType"]: h["value"] for h in details["originalFileHash"]}
        assert hashes["MD5"] == md5(BAD) and hashes["SHA256"] == hashlib.sha256(BAD).hexdigest()
        assert draft.origin["matches"][0]["entries"][0]["list"] == "known"
        assert draft.origin["run_id"] == summary.run_id and draft.origin["source"] == "scan"
        restore_quarantined(s, qid)
    assert original.read_bytes() == BAD and original.stat().st_mtime_ns == mtime
    with store.session() as s, pytest.raises(Exception, match="already restored"):
        restore_quarantined(s, qid)
    with store.session() as s, pytest.raises(NotFound):
        restore_quarantined(s, 9999)


def test_flood_control_holds_entry_instead_of_acting(store: Store, tmp_path: Path) -> None:
    entry_id = make_list(store)
    root = tmp_path / "flood"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}.txt").write_bytes(BAD)
    summary, rows = run(
        store, [root], actions=["report"], flood=FloodPolicy(max_matches=2, window_s=3600)
    )
    acted = [r for r in rows if any(a["action"] == "report" for a in r["actions"])]
    held = [
        r for r in rows if r["actions"] == [{"action": "none", "reason": "held by flood control"}]
    ]
    assert len(acted) == 2 and len(held) == 3 and summary.held == 3
    assert all(r["matches"][0]["held"] for r in held)
    with store.session() as s:
        (hold,) = list_holds(s)
        assert hold.entry_id == entry_id and hold.count == 3
        release_hold(s, hold.id, "curator")
    summary, rows = run(
        store,
        [root / "f0.txt"],
        actions=["report"],
        flood=FloodPolicy(max_matches=2, window_s=3600),
    )
    assert summary.reports == 1 and summary.held == 0


def test_allow_list_suppresses_actions(store: Store, tmp_path: Path) -> None:
    make_list(store)
    make_list(store, "allowed", purpose="allow")
    f = tmp_path / "bad.txt"
    f.write_bytes(BAD)
    summary, rows = run(store, [f], actions=["quarantine"], quarantine_dir=str(tmp_path / "q"))
    assert f.exists() and summary.quarantined == 0
    assert rows[0]["actions"][0]["reason"] == "allow-listed"
    assert "allow" in {m["purpose"] for m in rows[0]["matches"]}


def test_jobs_give_same_results(store: Store, tree: Path) -> None:
    """Worker processes (each with its own store connection) give what one process gives."""
    make_list(store)
    _, one = run(store, [tree])
    _, two = run(store, [tree], jobs=2)
    assert one == two


def test_unknown_list_and_path_are_clear_errors(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no list named 'nope'"):
        scan(store, [tmp_path], ScanOptions(lists=["nope"]))
    with pytest.raises(Exception, match="no such file or folder"):
        scan(store, [tmp_path / "missing"], ScanOptions())


def test_cli_scan_outputs_quarantine_and_list_actions(tmp_path: Path, tree: Path) -> None:
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    assert runner.invoke(main, ["lists", "create", "known", "--db", db]).exit_code == 0
    hashes = tmp_path / "h.txt"
    hashes.write_text(md5(BAD) + "\n")
    res = runner.invoke(
        main, ["lists", "import", "known", str(hashes), "--signal", "md5", "--db", db]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        main,
        ["lists", "actions", "known", "--set", "flag,quarantine", "--db", db, "--format", "json"],
    )
    assert res.exit_code == 0 and json.loads(res.output)["actions"] == ["flag", "quarantine"]
    res = runner.invoke(main, ["lists", "actions", "known", "--set", "explode", "--db", db])
    assert res.exit_code != 0 and "unknown action" in res.output
    out_csv, out_jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    qdir = tmp_path / "q"
    res = runner.invoke(
        main,
        ["scan", str(tree / "bad.txt"), str(tree / "sub"), "--list", "known", "--db", db,
         "--output", str(out_csv), "--quarantine-dir", str(qdir), "--format", "jsonl"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["matches"][0]["list"] == "known"
    table = list(csv.DictReader(out_csv.open()))
    assert table[0]["lists"] == "known" and table[0]["actions"] == "flag;quarantine"
    assert not (tree / "bad.txt").exists()
    res = runner.invoke(main, ["quarantine", "list", "--db", db, "--format", "json"])
    (item,) = json.loads(res.output)
    res = runner.invoke(
        main, ["quarantine", "restore", str(item["id"]), "--db", db, "--format", "json"]
    )
    assert res.exit_code == 0 and (tree / "bad.txt").read_bytes() == BAD
    res = runner.invoke(
        main,
        [
            "scan",
            str(tree),
            "--db",
            db,
            "--output",
            str(out_jsonl),
            "--resume",
            "--format",
            "jsonl",
        ],
    )
    assert res.exit_code == 0
    assert len(out_jsonl.read_text().splitlines()) == 6
    res = runner.invoke(main, ["scan", str(tree), "--db", db, "--list", "missing"])
    assert res.exit_code == 1 and "no list named 'missing'" in res.output


class _Stop(Exception):
    pass


def test_interrupted_scan_keeps_progress_for_resume(store: Store, tree: Path) -> None:
    make_list(store)
    seen: list[dict[str, Any]] = []

    def stop_after_three(row: dict[str, Any]) -> None:
        seen.append(row)
        if len(seen) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        scan(store, [tree], ScanOptions(resume=True), on_result=stop_after_three)
    with store.session() as s:
        assert len(list(s.scalars(select(ScanFile)))) == 3  # nothing scanned was lost
    summary, _ = run(store, [tree], resume=True)
    assert summary.skipped == 2  # bad.txt and img.png finished before the interruption
    assert summary.files == 4  # the unfinished archive's 3 members again, and sub/ok.txt


def test_ray_engine_without_ray_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Ray installed, `--engine ray` fails before recording anything, with the fix."""
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the package were not installed
    db = str(tmp_path / "r.db")
    Store.open(db).close()
    res = CliRunner().invoke(main, ["scan", str(tmp_path), "--engine", "ray", "--db", db])
    assert res.exit_code != 0
    assert "pip install 'ridgeline[ray]'" in res.stderr
    with Store.open(db) as store, store.session() as s:
        assert s.scalars(select(ScanRun)).all() == []


def _children(pid: int) -> set[int]:
    """Live child processes of `pid` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_resume_after_kill_9_files_each_report_once_and_leaves_no_workers(
    store: Store, tmp_path: Path
) -> None:
    """Issue 17 item 6: kill -9 mid-scan, then `--resume`: one draft per matched file,
    the pool workers die with the scan, and the next run removes the work folder."""
    import signal
    import subprocess
    import time

    make_list(store)
    root = tmp_path / "many"
    root.mkdir()
    for i in range(300):
        (root / f"f{i:03d}.txt").write_bytes(BAD if i % 2 == 0 else OTHER + bytes([i % 256]))
    work = tmp_path / "work"
    work.mkdir()
    script = Path(sys.executable).with_name("ridgeline")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ridgeline.cli"]
    argv = [*cmd, "scan", str(root), "--db", store.url, "--action", "report", "--resume",
            "--jobs", "2", "--format", "jsonl", "--work-dir", str(work)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    matched = 0
    for line in proc.stdout:
        matched += bool(json.loads(line)["matches"])
        if matched == 5:
            break
    workers = _children(proc.pid)
    leftover = list(work.iterdir())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        assert matched == 5 and workers and leftover  # killed mid-scan, with a pool, a folder
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphans = [w for w in workers if _alive(w)]
        done = subprocess.run(argv, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
        paths = drafted_paths(store)
        assert len(paths) == len(set(paths)) == 150  # every matched file, each once
        assert orphans == []  # the pool died with the scan: no connections left open
        assert list(work.iterdir()) == []  # the killed scan's work folder is gone
    finally:
        for w in workers:  # never leave a failed run's orphans behind
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_resume_after_interrupted_archive_does_not_draft_members_twice(
    store: Store, tmp_path: Path
) -> None:
    """Drafts of an unfinished archive's members are not filed again on `--resume`."""
    make_list(store)
    root = tmp_path / "arch"
    root.mkdir()
    (root / "a.zip").write_bytes(zip_bytes({"x/bad.bin": BAD, "x/ok.bin": OTHER, "y/bad2": BAD}))
    seen: list[dict[str, Any]] = []

    def stop_after_two(row: dict[str, Any]) -> None:
        seen.append(row)
        if len(seen) == 2:
            raise _Stop

    with pytest.raises(_Stop):
        scan(
            store,
            [root],
            ScanOptions(resume=True, actions=["report"], report_sink=ReportSink(KEY)),
            on_result=stop_after_two,
        )
    summary, rows = run(store, [root], resume=True, actions=["report"])
    assert summary.files == 3 and summary.reports == 1  # only y/bad2 is new
    again = [a for r in rows for a in r["actions"] if a.get("note")]
    assert [a["action"] for a in again] == ["report"] and again[0]["report_id"]
    paths = sorted(drafted_paths(store))
    assert [p.split("!", 1)[1] for p in paths] == ["x/bad.bin", "y/bad2"]


def test_report_action_needs_a_sink(store: Store, tmp_path: Path) -> None:
    """Reports sit above the scan: a library scan that would draft reports without the
    front end's sink is refused before anything is scanned (nothing half-done)."""
    make_list(store)
    (tmp_path / "bad.txt").write_bytes(BAD)
    with pytest.raises(BadInput, match="report sink"):
        run(store, [tmp_path], actions=["report"], report_sink=None)
    with store.session() as s:
        assert s.scalars(select(ScanFile)).all() == []


def test_symlinks_out_of_the_folder_are_not_followed_nor_quarantined(
    store: Store, tmp_path: Path
) -> None:
    """Issue 17 item 3: a link to a file outside the scanned folder is a skipped row with
    its reason (its content is not hashed), and quarantine never moves a link."""
    make_list(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(BAD)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "real.txt").write_bytes(OTHER)
    (root / "out-link").symlink_to(outside / "secret.txt")
    (root / "in-link").symlink_to(root / "real.txt")
    (root / "dir-link").symlink_to(outside, target_is_directory=True)
    qdir = tmp_path / "q"
    summary, rows = run(store, [root], actions=["quarantine"], quarantine_dir=str(qdir))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"real.txt", "out-link", "in-link", "dir-link"}
    assert by_name["out-link"]["skipped"] and "leaving" in by_name["out-link"]["reason"]
    assert by_name["dir-link"]["skipped"] and "leaving" in by_name["dir-link"]["reason"]
    assert by_name["in-link"]["skipped"] and "inside" in by_name["in-link"]["reason"]
    assert summary.matched == 0 and summary.quarantined == 0 and summary.skipped == 3
    assert (outside / "secret.txt").read_bytes() == BAD and (root / "out-link").is_symlink()
    with store.session() as s:
        assert [f.path for f in s.scalars(select(ScanFile))] == [str(root / "real.txt")]
    # A link named on the command line is scanned, but quarantine refuses to move it.
    summary, rows = run(store, [root / "out-link"], actions=["quarantine"],
                        quarantine_dir=str(qdir))  # fmt: skip
    assert summary.matched == 1 and summary.quarantined == 0
    (action,) = rows[0]["actions"]
    assert "symbolic link" in action["error"]
    assert (root / "out-link").is_symlink() and (outside / "secret.txt").read_bytes() == BAD
    with store.session() as s:
        assert list(s.scalars(select(QuarantineItem))) == []


def _without_dac_override() -> None:
    """In a child run as root: drop the capabilities that let root read any folder."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: gone after exec


@pytest.mark.parametrize("command", ["scan", "hash"])
def test_unreadable_subfolder_is_an_error_row_and_exit_1(
    store: Store, tmp_path: Path, command: str
) -> None:
    """Issue 17 item 9: `scan` and `hash -r` reported nothing and exited 0."""
    import subprocess

    root = tmp_path / "tree"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "hidden.txt").write_bytes(BAD)
    (root / "ok.txt").write_bytes(OTHER)
    (root / "locked").chmod(0)
    script = Path(sys.executable).with_name("ridgeline")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ridgeline.cli"]
    args = (
        ["scan", str(root), "--db", store.url] if command == "scan" else ["hash", "-r", str(root)]
    )
    try:
        done = subprocess.run(
            [*cmd, *args, "--format", "jsonl"],
            capture_output=True,
            timeout=120,
            preexec_fn=_without_dac_override if os.getuid() == 0 else None,
        )
    finally:
        (root / "locked").chmod(0o755)
    assert done.returncode == 1, done.stderr.decode()
    rows = {Path(r["path"]).name: r for r in map(json.loads, done.stdout.splitlines())}
    assert set(rows) == {"locked", "ok.txt"}
    assert rows["locked"]["error"] == "unreadable folder: Permission denied"
    assert rows["ok.txt"]["error"] is None and rows["ok.txt"]["signals"]


def test_cli_no_archives_hashes_archives_as_files(tmp_path: Path, tree: Path) -> None:
    """`scan --no-archives` reaches the walker: the zip is one file, its members unseen."""
    db = str(tmp_path / "na.db")
    runner = CliRunner()
    assert runner.invoke(main, ["lists", "create", "known", "--db", db]).exit_code == 0
    res = runner.invoke(main, ["scan", str(tree), "--no-archives", "--db", db, "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    paths = [json.loads(line)["path"] for line in res.stdout.splitlines()]
    assert sorted(Path(p).name for p in paths) == ["bad.txt", "img.png", "ok.txt", "outer.zip"]
    assert not any("!" in p for p in paths)
    zipped = next(json.loads(x) for x in res.stdout.splitlines() if x and "outer.zip" in x)
    assert zipped["sha256"] == hashlib.sha256((tree / "outer.zip").read_bytes()).hexdigest()


def test_resume_skip_keeps_sha256_for_later_copies(store: Store, tree: Path) -> None:
    """A rerun that skips files keeps their sha256, so copies are still skipped by content."""
    make_list(store)
    first, _ = run(store, [tree], resume=True)
    assert first.skipped == 0
    again, _ = run(store, [tree], resume=True)  # skips everything by stat
    assert again.files == 0 and again.skipped == 4
    with store.session() as s:
        from ridgeline.scan.models import ScanState

        states = {Path(st.path).name: st.sha256 for st in s.scalars(select(ScanState))}
    assert states["bad.txt"] == hashlib.sha256(BAD).hexdigest()
    assert all(sha for name, sha in states.items() if name != "outer.zip"), states
    (tree / "copy.txt").write_bytes(BAD)
    by_sha, _ = run(store, [tree], resume=True, resume_by="sha256")
    assert by_sha.files == 0 and by_sha.skipped == 5
    by_sha_again, _ = run(store, [tree], resume=True, resume_by="sha256")
    assert by_sha_again.files == 0 and by_sha_again.skipped == 5
    with store.session() as s:
        from ridgeline.scan.models import ScanState

        assert all(st.sha256 for st in s.scalars(select(ScanState)) if "zip" not in st.path)


def test_resume_does_not_let_a_no_archives_run_stand_for_opening_the_archive(
    store: Store, tree: Path
) -> None:
    """A `--no-archives` run hashed the zip as one file: a later resumed run that opens
    archives still scans its members (the bad one matches), and the other way round."""
    make_list(store)
    flat, rows = run(store, [tree], resume=True, archives=False)
    assert flat.files == 4 and not any("!" in r["path"] for r in rows)
    opened, rows = run(store, [tree], resume=True)
    members = [r for r in rows if "!" in r["path"] and not r.get("skipped")]
    assert opened.skipped == 3 and len(members) == 3, rows  # plain files skipped, zip opened
    assert any(r["matches"] for r in members if r["path"].endswith("deep/bad.bin"))
    again, _ = run(store, [tree], resume=True)
    assert again.files == 0 and again.skipped == 4  # now the same kind of run: all skipped
    flat_again, rows = run(store, [tree], resume=True, archives=False)
    assert flat_again.files == 1 and flat_again.skipped == 3
    assert [Path(r["path"]).name for r in rows if not r.get("skipped")] == ["outer.zip"]


def test_cli_scans_ls_and_show(tmp_path: Path, tree: Path) -> None:
    """Past runs and their per-file results, from the CLI (not only as tables in the db)."""
    db = str(tmp_path / "runs.db")
    runner = CliRunner()
    assert runner.invoke(main, ["lists", "create", "known", "--db", db]).exit_code == 0
    res = runner.invoke(main, ["lists", "entries", "add", "known", f"md5:{md5(BAD)}", "--db", db])
    assert res.exit_code == 0, res.output
    for _ in range(2):
        assert runner.invoke(main, ["scan", str(tree), "--db", db]).exit_code == 0
    res = runner.invoke(main, ["scans", "ls", "--db", db, "--format", "json"])
    assert res.exit_code == 0, res.output
    runs = json.loads(res.stdout)
    assert [r["id"] for r in runs] == [2, 1] and runs[0]["counts"]["matched"] == 2
    assert runs[0]["finished_at"] and runs[0]["paths"] == [str(tree)]
    res = runner.invoke(main, ["scans", "show", "1", "--files", "matches", "--db", db,
                               "--format", "json"])  # fmt: skip
    shown = json.loads(res.stdout)
    assert shown["id"] == 1 and len(shown["files"]) == 2
    assert all(f["matches"][0]["list"] == "known" for f in shown["files"])
    res = runner.invoke(main, ["scans", "show", "1", "--db", db, "--format", "json"])
    assert len(json.loads(res.stdout)["files"]) == 6
    res = runner.invoke(main, ["scans", "show", "1", "--files", "errors", "--db", db,
                               "--format", "json"])  # fmt: skip
    assert json.loads(res.stdout)["files"] == []
    table = runner.invoke(main, ["scans", "show", "1", "--db", db, "--format", "table"])
    assert table.exit_code == 0 and "known#1 md5 d=0" in table.stdout
    res = runner.invoke(main, ["scans", "show", "99", "--db", db])
    assert res.exit_code == 1 and "no scan run 99" in res.stderr
