"""Writing results as `table` (default on a terminal), `json` or `jsonl`.

Tables are drawn by `rich` (imported only when a table is drawn: start-up time) to
the terminal's width. Cells wrap instead of being cut, and a single long token such as
a PDQ hash keeps its own line where the width allows, so the value a user came for is
never hidden; an empty result still shows its header.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

FORMATS = ("table", "json", "jsonl")

#: Width used when the output is not a terminal and COLUMNS is not set.
DEFAULT_WIDTH = 100


def default_format(stream: TextIO | None = None) -> str:
    """`table` on a terminal, `jsonl` when piped."""
    stream = stream or sys.stdout
    return "table" if stream.isatty() else "jsonl"


def terminal_width() -> int:
    """COLUMNS, else the terminal's width, else `DEFAULT_WIDTH`."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _cell(value: Any) -> str:
    """A cell's text: mappings one `key value` per line, lists one item per line."""
    if value is None:
        return ""
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            first, *rest = _scalar(v).split("\n") or [""]
            lines.append(f"{k} {first}".rstrip())
            lines += [" " * (len(str(k)) + 1) + more for more in rest]
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(_scalar(v) for v in value)
    return str(value)


def _longest(name: str, texts: Sequence[str], tokens: bool = False) -> int:
    """The longest line (or, with `tokens`, word) of a column, its header included."""
    lines = [line for text in texts for line in text.split("\n")]
    parts = [t for line in lines for t in line.split()] if tokens else lines
    return max([len(name), *map(len, parts)])


#: rich's space between two columns (padding on both sides and the separator).
_GAP = 3


def _widths(cells: dict[str, list[str]], keep: Sequence[str], width: int) -> dict[str, int]:
    """Every column's width: `keep` columns first get their lines whole (else their
    longest token), the others share what is left, narrow ones whole."""

    def longest(name: str, tokens: bool = False) -> int:
        return _longest(name, cells[name], tokens)

    room = max(width - _GAP * (len(cells) - 1), len(cells))
    others = [c for c in cells if c not in keep]
    out: dict[str, int] = {}
    reserve = sum(min(longest(c), 12) for c in others)  # leave the others a little
    for name in keep:
        spare = room - sum(out.values()) - reserve
        for want in (longest(name), longest(name, tokens=True)):
            if want <= spare:
                out[name] = want
                break
        else:
            out[name] = max(spare, 4)
    left = max(room - sum(out.values()), len(others))
    pending = sorted(others, key=longest)
    while pending:  # water-filling: a column that needs less than its share keeps it whole
        share = max(left // len(pending), 1)
        name = pending.pop(0)
        out[name] = min(longest(name), share) if pending else max(min(longest(name), left), 1)
        left -= out[name]
    return out


def render_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    width: int | None = None,
    keep: Sequence[str] = (),
) -> str:
    """An aligned text table that fits `width` (default: the terminal's) without cutting.

    Cells wrap, long tokens fold; the `keep` columns (the values users come for, such
    as hashes) get room for their lines first, so they are folded last (columns empty
    in every row are left out when that keeps a `keep` column's words whole).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cols = list(columns or (rows[0].keys() if rows else []))
    if not cols:
        return "(no results)"
    width = width or terminal_width()
    cells = {c: [_cell(r.get(c)) for r in rows] for c in cols}
    kept = [c for c in keep if c in cells]
    widths = _widths(cells, kept, width)
    if rows and any(widths[c] < _longest(c, cells[c], tokens=True) for c in kept):
        # A hash would fold: give it the room of columns empty in every row (`error`
        # when nothing failed), so `hash` on an 80-column terminal keeps a PDQ whole.
        empty = [c for c in cols if c not in kept and not any(cells[c])]
        if empty:
            cols = [c for c in cols if c not in empty]
            cells = {c: cells[c] for c in cols}
            widths = _widths(cells, kept, width)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=False)
    for name in cols:
        table.add_column(name, overflow="fold", no_wrap=False, width=widths[name])
    for i in range(len(rows)):
        table.add_row(*(Text(cells[c][i]) for c in cols))
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system=None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


class Writer:
    """Streams rows in the chosen format; `json` collects them into one array.

    `table` collects too (column widths need every row) and is drawn on close, with
    its header even when there are no rows.
    """

    def __init__(
        self,
        fmt: str | None,
        stream: TextIO | None = None,
        columns: Sequence[str] | None = None,
        keep: Sequence[str] = (),
    ) -> None:
        self.stream = stream or sys.stdout
        self.fmt = fmt or default_format(self.stream)
        self.columns = columns
        self.keep = keep
        self._rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.stream.flush()
        else:
            self._rows.append(row)

    def write_all(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write(json.dumps(self._rows, indent=2, ensure_ascii=False) + "\n")
        elif self.fmt == "table":
            self.stream.write(render_table(self._rows, self.columns, keep=self.keep) + "\n")
        self._rows = []

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_one(obj: Any, fmt: str | None) -> None:
    """Print a single result object (a report, a summary)."""
    fmt = fmt or default_format()
    if fmt == "table" and isinstance(obj, dict):
        width = max((len(k) for k in obj), default=0)
        for key, value in obj.items():
            sys.stdout.write(f"{key.ljust(width)}  {_scalar(value)}\n")
    else:
        indent = 2 if fmt == "json" else None
        sys.stdout.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
