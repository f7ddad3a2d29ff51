"""`ridgeline match`: look hashes or files up in the match index, one output row per query."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ridgeline.cli.common import db_option, fail, format_option, handle_errors, open_store
from ridgeline.errors import BadInput, InvalidHash
from ridgeline.output import Writer


def _read_hashes(source: str) -> list[str]:
    """One hash per line (blank lines and `#` comments skipped); `-` reads stdin."""
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read hashes from {source}: {exc}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _file_queries(
    path: str, signal: str, dihedral: bool
) -> tuple[list[str], list[int | None], str | None]:
    """(values, qualities, error) of one file: its hash, or its 8 dihedral PDQ variants."""
    from ridgeline.hashing import hash_file
    from ridgeline.signals import HashOptions, get_signal

    result = hash_file(path, [signal], HashOptions(dihedral=dihedral))
    value = result.signals.get(signal)
    if value is None:
        return [], [], result.error or f"{signal} could not be computed"
    if signal == "pdq" and isinstance(value, dict):
        if dihedral:
            variants = value.get("dihedral") or {"orig": value}
            items = list(variants.values())
            return [v["hash"] for v in items], [v.get("quality") for v in items], None
        return [value["hash"]], [value.get("quality")], None
    return get_signal(signal).canonical_values(value), [None], None


@click.command("match")
@click.argument("queries", nargs=-1)
@click.option("--list", "list_names", multiple=True, help="List to match against (repeatable).")
@click.option("--signal", default="pdq", show_default=True, help="Signal of the hashes.")
@click.option(
    "--hashes", "hashes_file", default=None, help="File of hashes, one a line (- for stdin)."
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
    """Match HASH values or image/video PATHs against lists.

    Each argument that is a valid hash for --signal is looked up as is; anything else
    must be a file, which is hashed first. Prints one row per query:
    {"query", "matches": [{"list", "entry_id", "distance", ...}]}.
    """
    from ridgeline.index import MatchIndex
    from ridgeline.signals import get_signal

    sig = get_signal(signal)
    items: list[tuple[str, str | None]] = []  # (query text, canonical hash or None for a file)
    if hashes_file:
        for raw in _read_hashes(hashes_file):
            items.append((raw, sig.normalize(raw)))
    for arg in queries:
        try:
            items.append((arg, sig.normalize(arg)))
        except InvalidHash:
            if not Path(arg).exists():
                raise BadInput(
                    f"{arg!r} is neither a valid {sig.name} hash ({sig.expected_form}) nor a file"
                ) from None
            items.append((arg, None))
    if not items:
        raise click.UsageError("give hashes, files, or --hashes FILE")
    if dihedral and sig.name != "pdq":
        raise click.UsageError("--dihedral works with --signal pdq only")
    if dihedral and any(value is not None for _, value in items):
        raise click.UsageError(
            "--dihedral needs image files: rotated and flipped hashes come from the pixels"
        )
    store = open_store(db)
    errors = 0
    try:
        index = MatchIndex.open(store, index_dir)
        lists = list(list_names) or None
        with Writer(fmt, columns=["query", "matches"]) as out:
            hashed = [value for _, value in items if value is not None]
            found = iter(index.match(sig.name, hashed, lists=lists)) if hashed else iter(())
            for text, value in items:
                row: dict[str, Any] = {"query": text}
                if value is not None:
                    matches = next(found)
                else:
                    values, qualities, error = _file_queries(text, sig.name, dihedral)
                    if error:
                        errors += 1
                        click.echo(f"Error: {text}: {error}", err=True)
                        out.write({**row, "matches": [], "error": error})
                        continue
                    if dihedral:
                        matches = index.match_dihedral(
                            sig.name, [values], lists=lists, qualities=[qualities[0]]
                        )[0]
                    else:
                        per_value = index.match(sig.name, values, lists=lists, qualities=qualities)
                        matches = sorted({m for ms in per_value for m in ms}, key=_order)
                    if sig.name == "pdq":
                        row["hash"] = values[0]
                out.write({**row, "matches": [m.to_json() for m in matches]})
        index.close()
    finally:
        store.close()
    if errors:
        fail(f"{errors} of {len(items)} queries could not be hashed", 2)


def _order(m: Any) -> tuple[float, str, int]:
    return (m.distance, m.list_name, m.entry_id)
