"""`ridgeline scans ls|show`: past scan runs and their per-file results."""

from __future__ import annotations

import click

from ridgeline.cli.common import db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, default_format, write_one

FILE_COLUMNS = ["id", "path", "kind", "matches", "actions", "error"]


@click.group("scans")
def scans() -> None:
    """Past scan runs and what each file gave (newest first)."""


@scans.command("ls")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--before-id", type=click.IntRange(min=1), default=None, help="Page: only runs before this id."
)
@db_option
@format_option
@handle_errors
def ls(limit: int, before_id: int | None, db: str | None, fmt: str | None) -> None:
    """Scan runs, newest first, with their counts."""
    from ridgeline.scan.runs import list_runs, run_to_json

    store = open_store(db)
    columns = ["id", "started_at", "finished_at", "engine", "paths", "counts"]
    with store.session() as session, Writer(fmt, columns=columns, keep=["id"]) as out:
        out.write_all(run_to_json(r) for r in list_runs(session, limit=limit, before_id=before_id))


@scans.command("show")
@click.argument("run_id", type=int)
@click.option(
    "--files",
    "only",
    type=click.Choice(["all", "matches", "errors"]),
    default="all",
    show_default=True,
    help="Which per-file results to include.",
)
@click.option(
    "--after-id", type=click.IntRange(min=0), default=0, help="Page: only files after this id."
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@db_option
@format_option
@handle_errors
def show(
    run_id: int, only: str, after_id: int, limit: int, db: str | None, fmt: str | None
) -> None:
    """One run (options, counts) and a page of its per-file results."""
    from ridgeline.scan.runs import file_to_json, get_run, run_files, run_to_json

    store = open_store(db)
    with store.session() as session:
        run = get_run(session, run_id)
        files = [
            file_to_json(f)
            for f in run_files(session, run, only=only, after_id=after_id, limit=limit)
        ]
        summary = run_to_json(run)
    fmt = fmt or default_format()
    if fmt != "table":
        write_one({**summary, "files": files}, fmt)
        return
    write_one(summary, fmt)
    click.echo()
    with Writer(fmt, columns=FILE_COLUMNS, keep=["matches"]) as out:
        for f in files:
            matches = [f"{m['list']}#{m['entry_id']} {m['signal']} d={m['distance']:g}"
                       for m in f["matches"]]  # fmt: skip
            out.write({**f, "matches": matches,
                       "actions": [a["action"] for a in f["actions"]]})  # fmt: skip
