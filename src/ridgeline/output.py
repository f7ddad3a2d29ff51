"""Writing results as `table` (default on a terminal), `json` or `jsonl`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

FORMATS = ("table", "json", "jsonl")


def default_format(stream: TextIO | None = None) -> str:
    """`table` on a terminal, `jsonl` when piped."""
    stream = stream or sys.stdout
    return "table" if stream.isatty() else "jsonl"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain aligned text table."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    widths = [min(w, 80) for w in widths]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        shown = [v if len(v) <= w else v[: w - 1] + "…" for v, w in zip(row, widths, strict=True)]
        lines.append("  ".join(v.ljust(w) for v, w in zip(shown, widths, strict=True)).rstrip())
    return "\n".join(lines)


class Writer:
    """Streams rows in the chosen format; `json` collects them into one array."""

    def __init__(
        self, fmt: str | None, stream: TextIO | None = None, columns: Sequence[str] | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.fmt = fmt or default_format(self.stream)
        self.columns = columns
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
        elif self.fmt == "table" and self._rows:
            self.stream.write(render_table(self._rows, self.columns) + "\n")
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
            sys.stdout.write(f"{key.ljust(width)}  {_cell(value)}\n")
    else:
        indent = 2 if fmt == "json" else None
        sys.stdout.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
