"""0 reports lost when the intake process is killed -9 mid-stream (a real subprocess),
and the rerun completes with no duplicates, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from sqlalchemy import func, select

from kill9 import kill9, start
from ridgeline.cases.models import CaseReport
from ridgeline.intake import synthetic
from ridgeline.reports.models import ReceivedReport
from ridgeline.store import Store

REPORTS = 1500


def _intake(db: str, path: Path) -> subprocess.Popen[bytes]:
    return start(
        ["reports", "intake", str(path), "--batch", "50", "--db", db], stderr=subprocess.DEVNULL
    )


def test_kill_9_mid_stream_loses_nothing_and_the_rerun_duplicates_nothing(
    store: Store, tmp_path: Path
) -> None:
    source = tmp_path / "day.jsonl"
    source.write_bytes(b"\n".join(synthetic.jsonl_lines(synthetic.Population(REPORTS))) + b"\n")
    db = store.url
    proc = _intake(db, source)
    assert proc.stdout is not None
    acknowledged: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while len(acknowledged) < 200:
        line = proc.stdout.readline()
        assert line, "intake ended before it could be killed"
        row = json.loads(line)
        assert row["status"] == "stored", row
        acknowledged[row["source"]] = row["report_id"]
        assert time.monotonic() < deadline
    kill9(proc)  # mid-stream: batches after this one never commit
    proc.stdout.close()

    with store.session() as s:
        ids = set(s.execute(select(ReceivedReport.id)).scalars())
    assert set(acknowledged.values()) <= ids, "an acknowledged report was lost"
    assert len(ids) < REPORTS, "killed too late to test anything"

    rerun = _intake(db, source)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == REPORTS
    by_source = {r["source"]: r for r in rows}
    for src, rid in acknowledged.items():
        assert by_source[src] == {"source": src, "report_id": rid, "status": "duplicate",
                                  "problems": []}  # fmt: skip
    assert {r["status"] for r in rows} <= {"stored", "duplicate"}
    with store.session() as s:
        stored = s.execute(select(func.count()).select_from(ReceivedReport)).scalar_one()
        in_cases = s.execute(select(func.count()).select_from(CaseReport)).scalar_one()
        distinct = s.execute(select(func.count(func.distinct(ReceivedReport.sha256)))).scalar_one()
    assert stored == REPORTS == distinct == in_cases
    assert len({r["report_id"] for r in rows}) == REPORTS
