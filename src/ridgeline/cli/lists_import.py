"""`ridgeline lists import NAME FILE`: bring hashes into a list from a file."""

from __future__ import annotations

import sys

import click

from ridgeline import lists as L
from ridgeline.cli.common import db_option, handle_errors, open_store
from ridgeline.errors import BadInput
from ridgeline.output import write_one


@click.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--signal", default=None, help="Signal of bare hashes (txt, or csv 'hash' column).")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["txt", "csv", "jsonl"]),
    default=None,
    help="File format (default: from the file name).",
)
@click.option("--actor", default=None, help="Who is importing (recorded in history).")
@db_option
@click.option("--output", "fmt", type=click.Choice(["table", "json", "jsonl"]), default=None)
@handle_errors
def import_(
    name: str,
    file: str,
    signal: str | None,
    file_format: str | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Import hashes from FILE into list NAME.

    Bad lines are reported with their line numbers and skipped; good ones are kept.
    The exit status is 1 if any line was rejected.
    """
    if file_format is None:
        suffix = file.rsplit(".", 1)[-1].lower() if "." in file else ""
        if suffix not in ("txt", "csv", "jsonl"):
            raise BadInput(f"cannot tell the format of {file!r}: pass --format txt|csv|jsonl")
        file_format = suffix
    store = open_store(db)
    with store.session() as session:
        hash_list = L.get_list(session, name)
        report = L.import_file(session, hash_list, file, file_format, signal=signal, actor=actor)
    for error in report.errors:
        click.echo(f"{file}:{error['line']}: {error['error']}", err=True)
    write_one(report.to_json() | {"errors": len(report.errors)}, fmt)
    if report.errors:
        sys.exit(1)
