"""`ridgeline reviewers`, `ridgeline review`: the queue from the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from ridgeline.cli import main


def _png() -> bytes:
    y, x = np.mgrid[0:64, 0:64]
    out = io.BytesIO()
    Image.fromarray((((x // 4 + y // 4) % 2) * 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_review_flow_from_cli(tmp_path: Path, db_path: str) -> None:
    runner = CliRunner()
    key = str(tmp_path / "ev.key")

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, [*args, "--db", db_path, "--format", "json"])
        assert result.exit_code == code, result.output
        return result.output

    assert runner.invoke(main, ["evidence", "keygen", key]).exit_code == 0
    for name in ("ann", "ben"):
        run("reviewers", "add", name, "--daily-cap", "50", "--break-after-minutes", "90")
    run("reviewers", "add", "sue", "--senior-only")
    people = json.loads(run("reviewers", "ls"))
    assert [(p["name"], p["senior"], p["reviewer"]) for p in people] == [
        ("ann", False, True), ("ben", False, True), ("sue", True, False)
    ]  # fmt: skip
    assert "already exists" in run("reviewers", "add", "ann", code=1)
    # releasing an item one does not hold is an error, not {"released": false} and exit 0
    assert "ann does not hold entry 7: nothing to release" in run(
        "review", "release", "7", "--reviewer", "ann", code=1
    )
    run("lists", "create", "rv", "--review-quorum", "2")
    run("lists", "entries", "add", "rv", "md5:" + "c" * 32, "--classification", "industry:B1",
        "--actor", "ann")  # fmt: skip
    media = tmp_path / "card.png"
    media.write_bytes(_png())
    run("evidence", "add", "1", str(media), "--key-file", key)

    assert "no entries are waiting" in run("review", "next", "--reviewer", "ann", code=1)
    blurred = tmp_path / "blurred.png"
    item = json.loads(run("review", "next", "--reviewer", "ben", "--media-out", str(blurred),
                          "--key-file", key))  # fmt: skip
    assert item["entry_id"] == 1 and item["has_media"] and item["media_written"]
    assert Image.open(blurred).mode == "L"
    assert blurred.stat().st_mode & 0o777 == 0o600

    sharp = tmp_path / "sharp.png"
    out = json.loads(run("review", "unblur", "1", "--reviewer", "ben", "--out", str(sharp),
                         "--key-file", key, "--reason", "grading"))  # fmt: skip
    assert out["logged"] is True and sharp.exists()

    first = json.loads(run("review", "submit", "1", "--reviewer", "ben", "--verdict", "csam",
                           "--classification", "industry:B1"))  # fmt: skip
    assert first["status"] == "pending"
    assert "submitted entry 1" in run("review", "submit", "1", "--reviewer", "ann", "--verdict",
                                      "not-csam", code=1)  # fmt: skip
    assert "already reviewed" in run("review", "submit", "1", "--reviewer", "ben", "--verdict",
                                     "not-csam", code=1)  # fmt: skip
    hidden = json.loads(run("review", "status", "1"))
    assert hidden["verdicts"] is None and hidden["verdict_count"] == 1
    run("reviewers", "add", "cat")
    second = json.loads(run("review", "submit", "1", "--reviewer", "cat", "--verdict",
                            "not-csam"))  # fmt: skip
    assert second["status"] == "disputed"
    seen = json.loads(run("review", "status", "1", "--reviewer", "cat"))
    assert len(seen["verdicts"]) == 2
    senior = json.loads(run("review", "next", "--reviewer", "sue"))
    assert senior["stage"] == "senior"
    final = json.loads(run("review", "submit", "1", "--reviewer", "sue", "--verdict", "csam",
                           "--classification", "industry:B1"))  # fmt: skip
    assert final["status"] == "confirmed"
    exposure = json.loads(run("review", "exposure", "--reviewer", "ben"))
    assert exposure["items_today"] == 1 and exposure["daily_cap"] == 50

    logged = json.loads(run("log", "show", "--subject", "entry:1", "--limit", "100"))
    actions = [r["action"] for r in logged]
    assert "entry.unblur" in actions and actions.count("entry.verdict") == 3
    assert json.loads(run("log", "verify"))["ok"] is True
    bad = runner.invoke(main, ["review", "submit", "1", "--reviewer", "ann", "--verdict", "maybe",
                               "--db", db_path])  # fmt: skip
    assert bad.exit_code == 2
