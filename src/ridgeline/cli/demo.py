"""`ridgeline demo`: the end-to-end walk-through that `make demo` runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ridgeline.cli.common import handle_errors
from ridgeline.output import render_table


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the generated images, the SQLite database and the index (recreated).",
)
@click.option("--db", default=None, help="Database (default: WORKDIR/ridgeline.db, SQLite).")
@handle_errors
def demo(workdir: Path, db: str | None) -> None:
    """Build hash lists from benign generated images (one through three-reviewer
    review), then hash a folder of edited copies and unrelated images and show
    which match."""
    from ridgeline.demo import run_demo

    click.echo(f"Generating benign demo images in {workdir}/ ...")
    review, rows, victims = run_demo(workdir, db)
    click.echo(
        f"\nList {review['list']!r} built through multi-review (K={review['quorum']} "
        "independent agreeing verdicts):"
    )
    for item in review["entries"]:
        click.echo(f"  entry {item['entry_id']}: {item['status']}")
        for step in item["trail"]:
            click.echo(f"      {step}")
    log = review["log"]
    click.echo(
        f"  tamper-evident log: {'verified' if log['ok'] else 'BROKEN'} ({log['checked']} records)"
    )
    click.echo("\nList 'demo-imported': two more images imported with no review policy.\n")
    click.echo(f"Matching {workdir}/incoming/ (PDQ, all 8 rotations/flips):")
    table = [
        {
            "file": r.file,
            "edit": r.edit,
            "expected": r.expected,
            "matched": r.matched,
            "distance": r.distance,
            "variant": r.variant,
            "ok": "yes" if r.correct else "NO",
        }
        for r in rows
    ]
    click.echo(render_table(table))
    good = sum(r.correct for r in rows)
    click.echo(f"\n{good}/{len(rows)} files classified as expected.")
    click.echo(
        f"\nVictims registry: {victims.records} synthetic records of "
        f"{len(victims.indicator.by_database)} databases merged into {victims.victims} "
        "victims; the two imported images are linked to victim series. Their matches say:"
    )
    for r in rows:
        if r.identification:
            click.echo(f"  {r.file} -> {r.matched}: {r.identification}")
    from ridgeline.cli.indicator import indicator_table

    click.echo("\nThe indicator (ridgeline indicator --as-of 2025-01-01):\n")
    click.echo(indicator_table(victims.indicator.to_json()))
    click.echo("\nCharts: " + ", ".join(str(p) for p in victims.charts))
    where = db or workdir / "ridgeline.db"
    click.echo(f"Database: {where} (try: ridgeline lists ls --db {where})")
    if good != len(rows):
        sys.exit(1)
