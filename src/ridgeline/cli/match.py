"""`ridgeline match`: look hashes or files up through the one `Matcher`, one row per query.

A file is matched on every signal it has (its cryptographic hashes always, PDQ or
vPDQ when they can be computed); a signal that cannot be computed is reported in the
row's `error`, beside the matches. `--hashes` reads plain hashes of `--signal` or the
JSONL rows `ridgeline hash --format jsonl` writes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ridgeline.cli.common import db_option, fail, format_option, handle_errors, open_store
from ridgeline.errors import BadInput, InvalidHash
from ridgeline.output import Writer
from ridgeline.signals import SignalType
from ridgeline.signals.base import Query, SignalValue


@dataclass
class _Item:
    """One output row to be: the query text and what it is looked up by."""

    query: str
    queries: list[Query] = field(default_factory=list)
    #: Set for files and hash rows: the signals they carry, as `hash` prints them.
    signals: dict[str, SignalValue] | None = None
    path: str | None = None
    error: str | None = None


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read hashes from {source}: {exc}") from None


def _read_hashes(source: str, sig: SignalType, dihedral: bool) -> list[_Item]:
    """One hash of `sig` a line, or `ridgeline hash` rows: JSON lines, or its JSON array.

    Blank lines and `#` comments are skipped; `-` reads stdin.
    """
    text = _read_text(source)
    if text.lstrip().startswith("["):  # `ridgeline hash --format json`
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{source}: malformed JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(rows, list):
            raise BadInput(f"{source}: expected a list of `ridgeline hash` rows")
        return [_hash_row(row, f"{source}: item {i}", dihedral) for i, row in enumerate(rows, 1)]
    items: list[_Item] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            items.append(_Item(line, [Query(sig.name, sig.normalize(line))]))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{source}: line {number}: malformed JSON: {exc.msg}") from None
        items.append(_hash_row(row, f"{source}: line {number}", dihedral))
    return items


def _hash_row(row: Any, where: str, dihedral: bool) -> _Item:
    """A `ridgeline hash` row (`{"path", "signals", "error"}`) as queries of its signals."""
    from ridgeline.matching import queries_for

    signals = row.get("signals") if isinstance(row, dict) else None
    if not isinstance(signals, dict):
        raise BadInput(f"{where}: expected a `ridgeline hash` row with signals")
    path = row.get("path")
    queries = queries_for(signals, dihedral=dihedral)
    return _Item(str(path or where), queries, signals, path, row.get("error"))


def _file_item(path: str, dihedral: bool) -> _Item:
    """Hash a file on every signal it has; the queries of each computed signal."""
    from ridgeline.hashing import hash_file
    from ridgeline.matching import queries_for
    from ridgeline.signals import HashOptions

    result = hash_file(path, None, HashOptions(dihedral=dihedral))
    queries = queries_for(result.signals, dihedral=dihedral)
    return _Item(path, queries, result.signals, path, result.error)


@click.command("match")
@click.argument("queries", nargs=-1)
@click.option("--list", "list_names", multiple=True, help="List to match against (repeatable).")
@click.option("--signal", default="pdq", show_default=True, help="Signal of plain hash strings.")
@click.option(
    "--hashes",
    "hashes_file",
    default=None,
    help="File of hashes, one a line, or `ridgeline hash --format jsonl` rows (- for stdin).",
)
@click.option("--dihedral", is_flag=True, help="Also match the 8 rotations/flips of images.")
@click.option("--index-dir", default=None, help="Index directory (default: beside the database).")
@db_option
@format_option
@handle_errors
def match_command(
    queries: tuple[str, ...],
    list_names: tuple[str, ...],
    signal: str,
    hashes_file: str | None,
    dihedral: bool,
    index_dir: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Match HASH values or PATHs (images, videos, any file) against lists.

    Each argument that is a valid hash for --signal is looked up as is; anything else
    must be a file, which is hashed and matched on every signal it has (md5, sha1,
    sha256, and PDQ or vPDQ when they can be computed). Prints one row per query:
    {"query", "matches": [{"list", "entry_id", "signal", "distance", ...}]}, plus
    "signals" and "error" for files (a signal that could not be computed does not
    hide the matches of the others).
    """
    from ridgeline.matching import Matcher
    from ridgeline.scan.flood import held_entry_ids
    from ridgeline.signals import get_signal

    sig = get_signal(signal)
    items: list[_Item] = []
    if hashes_file:
        items.extend(_read_hashes(hashes_file, sig, dihedral))
    for arg in queries:
        try:
            items.append(_Item(arg, [Query(sig.name, sig.normalize(arg))]))
        except InvalidHash:
            if not Path(arg).exists():
                raise BadInput(
                    f"{arg!r} is neither a valid {sig.name} hash ({sig.expected_form}) nor a file"
                ) from None
            items.append(_Item(arg, path=arg))
    if not items:
        raise click.UsageError("give hashes, files, or --hashes FILE")
    if dihedral and any(item.path is None and item.signals is None for item in items):
        raise click.UsageError(
            "--dihedral needs image files: rotated and flipped hashes come from the pixels"
        )
    store = open_store(db)
    failed = 0
    try:
        from ridgeline.victims.annotate import SeriesAnnotator

        matcher = Matcher.open(store, index_dir)
        matcher.annotator = annotator = SeriesAnnotator(store, background=False)
        with store.session() as s:
            matcher.held = held_entry_ids(s)
        lists = list(list_names) or None
        items = [
            _file_item(item.path, dihedral)
            if item.path is not None and item.signals is None
            else item
            for item in items
        ]
        found = matcher.match_each([item.queries for item in items], lists)
        with Writer(fmt, columns=["query", "matches"]) as out:
            for item, matches in zip(items, found, strict=True):
                row: dict[str, Any] = {"query": item.query}
                if item.signals is not None:
                    row["signals"] = item.signals
                if item.error:
                    click.echo(f"Error: {item.query}: {item.error}", err=True)
                    if not item.signals:
                        failed += 1
                row["matches"] = [m.to_json() for m in matches]
                if item.signals is not None:
                    row["error"] = item.error
                out.write(row)
        annotator.close()
        matcher.close()
    finally:
        store.close()
    if failed:
        fail(f"{failed} of {len(items)} queries could not be hashed", 2)
