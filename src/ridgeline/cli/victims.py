"""`ridgeline victims ...`: import, export, merges, synth (thin layer over ridgeline.victims)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ridgeline.cli.common import db_option, format_option, handle_errors, open_store


@click.group("victims")
def victims() -> None:
    """The victim-identification registry (victims.jsonl interchange)."""


@victims.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@db_option
@format_option
@handle_errors
def import_command(files: tuple[Path, ...], db: str | None, fmt: str | None) -> None:
    """Import victims.jsonl FILE(s) (`-` = stdin) and merge all records into victims.

    Good records are imported even when some lines are bad; each bad line is named on
    stderr and the exit status is then 2.
    """
    from ridgeline.output import write_one
    from ridgeline.victims.registry import import_files

    store = open_store(db)
    result = import_files(store, list(files))
    for error in result.errors:
        click.echo(f"Error: {error}", err=True)
    write_one(
        {
            "records": result.records,
            "replaced": result.replaced,
            "bad_lines": len(result.errors),
            "victims": result.victims,
            "merges": result.merges,
        },
        fmt,
    )
    if result.errors:
        sys.exit(2)


@victims.command("export")
@db_option
def export_command(db: str | None) -> None:
    """Write every record as victims.jsonl to stdout."""
    from ridgeline.victims.registry import export_records

    store = open_store(db)
    for record in export_records(store):
        sys.stdout.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")


@victims.command("merges")
@db_option
@format_option
@handle_errors
def merges_command(db: str | None, fmt: str | None) -> None:
    """What was merged into one victim, and why (a shared hash or a same_as)."""
    from ridgeline.output import Writer
    from ridgeline.victims.registry import merges

    store = open_store(db)
    with Writer(fmt, columns=["victim", "a", "b", "reason", "detail"]) as out:
        for m in merges(store):
            out.write(
                {"victim": m.victim, "a": m.a, "b": m.b, "reason": m.reason, "detail": m.detail}
            )


@victims.command("link")
@click.argument("database")
@click.argument("series")
@click.option(
    "--entry", "entry_id", type=click.IntRange(min=1), default=None, help="A list entry's id."
)
@click.option("--sha256", default=None, help="A reported or scanned file's sha256.")
@click.option(
    "--report", "report_id", type=click.IntRange(min=1), default=None, help="A report draft's id."
)
@click.option("--by", "by", required=True, help="Who says so (an analyst, a source).")
@db_option
@format_option
@handle_errors
def link_command(
    database: str,
    series: str,
    entry_id: int | None,
    sha256: str | None,
    report_id: int | None,
    by: str,
    db: str | None,
    fmt: str | None,
) -> None:
    """Say that a list entry, a file or a report shows SERIES of DATABASE: its matches
    then carry the series and its victims' identification."""
    from ridgeline.errors import BadInput
    from ridgeline.output import write_one
    from ridgeline.victims.registry import link_series

    if sha256 is not None:
        from ridgeline.signals import all_signals

        try:
            sha256 = all_signals()["sha256"].normalize(sha256)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    store = open_store(db)
    link = link_series(
        store, database, series, by=by, entry_id=entry_id, report_draft_id=report_id,
        sha256=sha256,
    )  # fmt: skip
    write_one({"link": link, "database": database, "series": series}, fmt)


@victims.command("synth")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "-n",
    "--victims",
    "n",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="True population, including victims no database holds.",
)
@click.option(
    "--database",
    "databases",
    multiple=True,
    metavar="NAME=P",
    help="A database and its capture probability (repeatable; default "
    "NCMEC=0.5 ICSE=0.4 EUROPOL=0.3).",
)
@click.option(
    "--sightings",
    type=click.FloatRange(0),
    default=3.0,
    show_default=True,
    help="Mean sightings per record.",
)
@handle_errors
def synth_command(
    directory: Path, seed: int, n: int, databases: tuple[str, ...], sightings: float
) -> None:
    """Write synthetic victims.jsonl files (one per database) and truth.json to DIRECTORY."""
    from ridgeline.errors import BadInput
    from ridgeline.victims.synth import DEFAULT_DATABASES, generate

    dbs: tuple[tuple[str, float], ...] = DEFAULT_DATABASES
    if databases:
        parsed = []
        for item in databases:
            name, _, p = item.partition("=")
            try:
                prob = float(p)
            except ValueError:
                raise BadInput(f"--database {item!r}: expected NAME=P, e.g. NCMEC=0.5") from None
            if not name or not 0 < prob <= 1:
                raise BadInput(f"--database {item!r}: P must be in (0, 1]")
            parsed.append((name, prob))
        dbs = tuple(parsed)
    world = generate(seed, n, dbs, sightings_per_record=sightings)
    paths = world.write(directory)
    truth = {
        "seed": seed,
        "population": n,
        "known": int(world.known.sum()),
        "capture_probabilities": dict(dbs),
        "identified_by_end": int((world.identified >= 0).sum()),
    }
    (directory / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    for path in paths:
        click.echo(str(path))
