"""The demo that `make demo` runs: lists built through review, edits matched, others not."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ridgeline.cli import main
from ridgeline.demo import run_demo


def test_demo_classifies_every_file(tmp_path: Path) -> None:
    review, rows = run_demo(tmp_path / "demo")
    statuses = [e["status"] for e in review["entries"]]
    assert statuses == ["confirmed", "confirmed", "rejected", "confirmed"]
    assert review["log"]["ok"]
    assert all(r.correct for r in rows), rows
    edits = {r.edit for r in rows if r.matched != "-"}
    assert edits == {"resized", "reencoded", "flipped"}
    assert sum(r.edit == "unrelated" for r in rows) == 4
    assert all(r.matched == "-" for r in rows if r.edit == "unrelated")
    flipped = [r for r in rows if r.edit == "flipped" and r.matched != "-"]
    assert flipped and all(r.variant not in (None, "orig") for r in flipped)


def test_demo_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--workdir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "10/10 files classified as expected" in result.output
