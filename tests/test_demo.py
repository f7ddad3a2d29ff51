"""The demo that `make demo` runs: lists built through review, edits matched, others not."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ridgeline.cli import main
from ridgeline.demo import run_demo


def test_demo_classifies_every_file(tmp_path: Path) -> None:
    review, rows, victims = run_demo(tmp_path / "demo")
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
    # the victims registry: one match says identified, one not identified
    said = [r.identification for r in rows if r.identification]
    assert len(said) == 2, rows
    assert any(" victim identified on " in t for t in said)
    assert any("victim not identified: possible ongoing abuse" in t for t in said)
    assert all(r.matched.startswith("demo-imported#") for r in rows if r.identification)
    # and the indicator, with its charts, on the synthetic registry
    assert victims.indicator.known == victims.victims > 0
    assert victims.indicator.estimate is not None
    assert victims.indicator.survival.median_days is not None
    names = {p.name for p in victims.charts}
    assert {"index.png", "index.svg"} <= names and all(p.stat().st_size > 0 for p in victims.charts)


def test_demo_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--workdir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "10/10 files classified as expected" in result.output
    assert "victim not identified: possible ongoing abuse" in result.output
    assert " victim identified on " in result.output
    assert "Estimated victims in all" in result.output and "Charts: " in result.output
