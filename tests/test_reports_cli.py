"""`ridgeline reports ...` as partners run it: real subprocesses against the local
CyberTipline server, including kill -9 of `reports file` while a call is in flight."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cybertip_server import LocalCyberTip
from kill9 import kill9, start
from ridgeline.reports import documents as docs
from ridgeline.reports import samples

RIDGELINE = str(Path(sys.executable).parent / "ridgeline")
KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def server() -> Iterator[LocalCyberTip]:
    with LocalCyberTip(password="cli-secret-9f2") as s:
        yield s


@pytest.fixture
def env(server: LocalCyberTip, db_path: str) -> dict[str, str]:
    out = dict(os.environ)
    out.update(
        {
            "RIDGELINE_DB": db_path,
            "RIDGELINE_EVIDENCE_KEY": KEY,
            "RIDGELINE_CYBERTIP_USERNAME": server.username,
            "RIDGELINE_CYBERTIP_PASSWORD": server.password,
        }
    )
    return out


def run(env: dict[str, str], *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [RIDGELINE, "reports", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check is not None:
        assert done.returncode == check, (done.stdout, done.stderr)
    return done


def make_documents(tmp_path: Path) -> tuple[Path, Path, Path]:
    report = tmp_path / "report.xml"
    report.write_bytes(docs.report_to_xml(samples.rich_report()))
    media = tmp_path / "upload.png"
    media.write_bytes(b"benign bytes standing in for a matched file")
    details = tmp_path / "fd.xml"
    xml = docs.file_details_to_xml(
        samples.file_details(hashlib.md5(media.read_bytes()).hexdigest())
    )
    details.write_bytes(
        xml.replace(
            b"<fileDetails>",
            b"<fileDetails><reportId>@REPORT_ID@</reportId><fileId>@FILE_ID@</fileId>",
        )
    )
    return report, media, details


def create(env: dict[str, str], tmp_path: Path) -> int:
    report, media, details = make_documents(tmp_path)
    other = tmp_path / "other.bin"
    other.write_bytes(b"a second benign file")
    done = run(
        env,
        "create",
        "--xml",
        str(report),
        "--file",
        str(media),
        "--file-details",
        str(details),
        "--file",
        str(other),
        "--format",
        "json",
    )
    created = json.loads(done.stdout)
    assert set(created) == {"id"}
    return int(created["id"])


def show(env: dict[str, str], rid: int) -> dict[str, object]:
    return json.loads(run(env, "show", str(rid), "--format", "json").stdout)  # type: ignore[no-any-return]


def test_create_show_validate_export_file(
    env: dict[str, str], server: LocalCyberTip, tmp_path: Path, db_path: str
) -> None:
    rid = create(env, tmp_path)
    shown = show(env, rid)
    assert shown["state"] == "validated" and shown["reportId"] is None
    assert shown["fileIds"] == [None, None]
    assert [p["severity"] for p in shown["problems"]] == []  # type: ignore[attr-defined]
    validated = run(env, "validate", str(rid), "--format", "jsonl")
    assert validated.stdout == ""
    out = tmp_path / "export"
    run(env, "export", str(rid), "--out", str(out))
    assert docs.report_from_xml((out / "report.xml").read_bytes()) == samples.rich_report()
    assert b"@REPORT_ID@" in (out / "fileDetails-0.xml").read_bytes()
    listed = [json.loads(line) for line in run(env, "ls", "--format", "jsonl").stdout.splitlines()]
    assert [row["id"] for row in listed] == [rid]

    done = run(
        env,
        "file",
        str(rid),
        "--environment",
        "test",
        "--endpoint",
        server.base,
        "--format",
        "json",
    )
    result = json.loads(done.stdout)
    ncmec_id = next(iter(server.reports))
    assert result == {
        "id": rid,
        "state": "finished",
        "reportId": ncmec_id,
        "fileIds": show(env, rid)["fileIds"],
    }
    assert server.reports[ncmec_id].state == "finished"
    # the exported fileDetails now carry the real ids
    exported = run(env, "export", str(rid), "--file", "0").stdout.encode()
    assert docs.file_details_from_xml(exported.strip()).report_id == ncmec_id
    # credentials are in neither the database nor the output
    for path in Path(db_path).parent.glob("cli.db*"):
        assert server.password.encode() not in path.read_bytes()
    assert server.password not in done.stdout + done.stderr


def test_invalid_documents_exit_2_with_paths(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<report><reporter/><incidentSummary/></report>")
    done = run(env, "create", "--xml", str(bad), check=2)
    assert "report/incidentSummary: element 'incidentSummary' is out of order" in done.stderr
    report, media, details = make_documents(tmp_path)
    misplaced = run(
        env, "create", "--xml", str(report), "--file-details", str(details), "--file", str(media),
        check=2,
    )  # fmt: skip
    assert "--file-details must follow the --file it describes" in misplaced.stderr
    checked = run(env, "validate", "--xml", str(bad), "--format", "jsonl", check=1)
    assert any(
        json.loads(line)["path"] == "report/incidentSummary" for line in checked.stdout.splitlines()
    )


def test_draft_completed_with_edit(env: dict[str, str], tmp_path: Path) -> None:
    incomplete = dataclasses.replace(samples.rich_report(), reporter=None)
    path = tmp_path / "draft.xml"
    path.write_bytes(docs.report_to_xml(incomplete))
    rid = int(json.loads(run(env, "create", "--xml", str(path), "--format", "json").stdout)["id"])
    assert show(env, rid)["state"] == "draft"
    run(env, "validate", str(rid), check=1)
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"reporter": docs.to_json(samples.reporter())}))
    edited = json.loads(run(env, "edit", str(rid), str(patch), "--format", "json").stdout)
    assert edited["state"] == "validated" and edited["problems"] == []


def test_status_and_wrong_credentials(env: dict[str, str], server: LocalCyberTip) -> None:
    done = run(env, "status", "--endpoint", server.base, "--format", "json")
    assert json.loads(done.stdout)["description"].startswith("Remote User : esp-user")
    wrong = dict(env, RIDGELINE_CYBERTIP_PASSWORD="not-the-password")
    refused = run(wrong, "status", "--endpoint", server.base, check=1)
    assert "HTTP 401" in refused.stderr and "not-the-password" not in refused.stderr
    missing = {k: v for k, v in env.items() if not k.startswith("RIDGELINE_CYBERTIP")}
    assert "RIDGELINE_CYBERTIP_USERNAME" in run(missing, "status", check=1).stderr


def _kill_during(
    env: dict[str, str], server: LocalCyberTip, rid: int, path: str, nth: int = 1
) -> None:
    """Start `reports file`, wait until `path` is in flight at the server, kill -9."""
    fault = server.fail(path, "hang_after", nth)
    proc = start(["reports", "file", str(rid), "--endpoint", server.base], env=env)
    try:
        assert fault.hit.wait(60), proc.communicate(timeout=5)
        time.sleep(0.2)
    finally:
        kill9(proc)
        fault.release.set()


def test_kill_during_upload_resumes_without_filing_twice(
    env: dict[str, str], server: LocalCyberTip, tmp_path: Path
) -> None:
    rid = create(env, tmp_path)
    _kill_during(env, server, rid, "/upload", nth=2)
    assert show(env, rid)["state"] == "submitted"
    result = json.loads(
        run(env, "file", str(rid), "--endpoint", server.base, "--format", "json").stdout
    )
    assert result["state"] == "finished"
    assert server.count("/submit") == 1 and len(server.reports) == 1
    remote = next(iter(server.reports.values()))
    assert remote.state == "finished"
    assert len(remote.files) == 3  # the killed upload left one stray copy


def test_kill_during_submit_needs_an_operator(
    env: dict[str, str], server: LocalCyberTip, tmp_path: Path
) -> None:
    rid = create(env, tmp_path)
    _kill_during(env, server, rid, "/submit")
    assert show(env, rid)["state"] == "submitting"
    again = run(env, "file", str(rid), "--endpoint", server.base, check=1)
    assert "needs attention" in again.stderr and "resolve" in again.stderr
    assert server.count("/submit") == 1
    shown = show(env, rid)
    assert shown["state"] == "needs_attention" and shown["attention"]
    ncmec_id = next(iter(server.reports))
    run(env, "resolve", str(rid), "--report-id", str(ncmec_id), "--actor", "op")
    result = json.loads(
        run(env, "file", str(rid), "--endpoint", server.base, "--format", "json").stdout
    )
    assert (result["state"], result["reportId"]) == ("finished", ncmec_id)
    assert server.count("/submit") == 1 and server.reports[ncmec_id].state == "finished"


def test_kill_during_finish_resumes(
    env: dict[str, str], server: LocalCyberTip, tmp_path: Path
) -> None:
    rid = create(env, tmp_path)
    _kill_during(env, server, rid, "/finish")
    assert show(env, rid)["state"] == "finishing"
    result = json.loads(
        run(env, "file", str(rid), "--endpoint", server.base, "--format", "json").stdout
    )
    assert result["state"] == "finished"
    assert server.count("/finish") == 2 and server.count("/submit") == 1


def test_retract_and_purge_refusal(
    env: dict[str, str], server: LocalCyberTip, tmp_path: Path
) -> None:
    rid = create(env, tmp_path)
    _kill_during(env, server, rid, "/upload")
    done = run(env, "retract", str(rid), "--endpoint", server.base, "--format", "json")
    assert json.loads(done.stdout)["state"] == "retracted"
    assert next(iter(server.reports.values())).state == "retracted"
    refused = run(env, "purge", str(rid), check=1)
    assert "must be preserved until" in refused.stderr
