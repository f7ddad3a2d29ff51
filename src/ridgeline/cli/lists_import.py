"""`ridgeline lists import NAME FILE`: bring hashes into a list from a file.

Every format, our own txt/csv/jsonl and the partner formats (NCMEC XML, VICS, ICSE,
StopNCII) alike, goes through `ridgeline.exchange.import_file` and takes the same options.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import click

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.cli.common import actor_option, db_option, handle_errors, open_store
from ridgeline.errors import BadInput
from ridgeline.index.match import default_directory, store_id
from ridgeline.index.pack import RowPack
from ridgeline.output import write_one
from ridgeline.signals import get_signal
from ridgeline.timeutil import parse_iso

FORMATS = exchange.IMPORT_FORMATS
_SUFFIXES = {"txt": "txt", "csv": "csv", "jsonl": "jsonl", "xml": "ncmec-xml"}


@click.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--signal", default=None, help="Signal of bare hashes (txt, or a csv/jsonl 'hash' column)."
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    default=None,
    help="File format (default: from the file name: .txt .csv .jsonl .xml).",
)
@actor_option("Who is importing (recorded in history).")
@click.option(
    "--source",
    default=None,
    help="Where the file came from (default: the format): names the source for --since "
    "last and fills entries whose records name no source.",
)
@click.option(
    "--since",
    default=None,
    help="Skip records older than this ISO time, or 'last' to continue from the newest "
    "record imported from this source before (records without a time are kept).",
)
@click.option(
    "--confirmed-elsewhere",
    is_flag=True,
    help="The source reviewed these already: record them confirmed even under a review policy.",
)
@click.option(
    "--not-listable",
    type=click.Choice(exchange.NOT_LISTABLE_CHOICES),
    default="skip",
    show_default=True,
    help="Records labelled non-pertinent or comparison (VICS 0 and 4, ridgeline:not-csam): "
    "skip them, keep them as 'reference' entries that never match, or list them anyway.",
)
@db_option
@click.option("--output", "fmt", type=click.Choice(["table", "json", "jsonl"]), default=None)
@handle_errors
def import_(
    name: str,
    file: str,
    signal: str | None,
    file_format: str | None,
    actor: str | None,
    source: str | None,
    since: str | None,
    confirmed_elsewhere: bool,
    not_listable: str,
    db: str | None,
    fmt: str | None,
) -> None:
    """Import hashes from FILE into list NAME.

    Bad records are reported with their position (line, XML path or JSON pointer) and
    skipped; good ones are kept. The whole import is one transaction. The exit status
    is 1 if any record was rejected.
    """
    if file_format is None:
        suffix = file.rsplit(".", 1)[-1].lower() if "." in file else ""
        if suffix not in _SUFFIXES:
            raise BadInput(f"cannot tell the format of {file!r}: pass --format {'|'.join(FORMATS)}")
        file_format = _SUFFIXES[suffix]
    if signal is not None:
        get_signal(signal)  # an unknown --signal is bad usage, not a bad line
    since_value = None
    if since is not None and since != "last":
        try:
            since_value = parse_iso(since)
        except ValueError:
            raise BadInput(f"--since {since!r}: expected an ISO 8601 time or 'last'") from None
    store = open_store(db)
    with _progress_bar() as progress, store.session() as session:
        hash_list = L.get_list(session, name)
        pack = RowPack(hash_list.id)
        report = exchange.import_file(
            session,
            hash_list,
            file,
            file_format,
            signal=signal,
            source=source,
            actor=actor,
            since="last" if since == "last" else since_value,
            confirmed_elsewhere=confirmed_elsewhere,
            not_listable=not_listable,
            progress=progress,
            pack=pack,
        )
        errors = [(e["position"], e["error"]) for e in report.errors]
        summary = report.to_json()
    if len(pack):  # committed: keep the new rows for the index build (`index.pack`)
        with store.session() as session:
            pack.write(session, default_directory(store), store_id(store))
    for position, message in errors:
        click.echo(f"{file}:{position}: {message}", err=True)
    write_one(summary | {"errors": len(errors)}, fmt)
    if errors:
        sys.exit(1)


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int], None] | None]:
    """A progress bar on standard error (records read, rate, time) when it is a
    terminal; nothing otherwise (scripts read the summary)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("import", total=None)

        def update(done: int) -> None:
            bar.update(task, completed=done)

        yield update
