"""INTERPOL ICSE hash CSV: `;`-separated, one file per hash set, header row required.

INTERPOL does not publish a file specification, so Ridgeline defines the columns
(names are matched case-insensitively; unknown columns are ignored, hash columns may
be empty, at least one hash is needed):

    ID;MD5;SHA1;SHA256;PhotoDNA;PDQ;Category;Contributor;Added;Status;Comment

`Category` holds `scheme:label` values separated by `|` (e.g. `uk:A|industry:A1`); a
bare value is kept as the original category without mapping. `Added` is ISO 8601.
`Status` is `active` (default) or `deleted` (a deletion: the entry is tombstoned).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from ridgeline.classifications import parse as parse_classification
from ridgeline.errors import BadInput, RidgelineError
from ridgeline.exchange.records import (
    ExchangeRecord,
    ExportItem,
    ParseResult,
    csv_rows,
    decode_text,
)
from ridgeline.timeutil import isoformat, parse_iso

NAME = "icse"
COLUMNS = (
    "ID", "MD5", "SHA1", "SHA256", "PhotoDNA", "PDQ", "Category", "Contributor", "Added",
    "Status", "Comment",
)  # fmt: skip
_SIGNALS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "photodna": "photodna", "pdq": "pdq"}


def parse(data: bytes, what: str = "ICSE CSV") -> ParseResult:
    """Read an ICSE `;`-separated file; each bad row is reported by its line number."""
    text = decode_text(data, what)
    result = ParseResult(NAME)
    rows = csv_rows(text, delimiter=";")
    first = next(rows, None)
    if first is None:
        return result
    if isinstance(first[1], str):
        raise BadInput(f"{what}: line {first[0]}: {first[1]}")
    names = [h.strip().lower() for h in first[1]]
    if not any(n in _SIGNALS for n in names):
        raise BadInput(f"{what}: line 1: header has no hash column; expected {';'.join(COLUMNS)}")
    for line, row in rows:
        position = f"line {line}"
        if isinstance(row, str):
            result.reject(position, row)
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            result.reject(position, f"{len(row)} fields, the header has {len(names)}")
            continue
        try:
            result.add(_record(dict(zip(names, row, strict=True)), position))
        except (RidgelineError, ValueError) as exc:
            result.reject(position, str(exc))
    return result


def _record(row: dict[str, str], position: str) -> ExchangeRecord:
    cell = {k: (v or "").strip() for k, v in row.items()}
    signals = {sig: cell[col] for col, sig in _SIGNALS.items() if cell.get(col)}
    status = (cell.get("status") or "active").lower()
    if status not in ("active", "deleted"):
        raise BadInput(f"Status must be active or deleted, not {cell['status']!r}")
    deleted = status == "deleted"
    if not signals and not (deleted and cell.get("id")):
        raise BadInput("no hash on this line")
    classes: list[dict[str, str]] = []
    extra: dict[str, Any] = {}
    for raw in filter(None, (c.strip() for c in cell.get("category", "").split("|"))):
        if ":" in raw:
            classes.append(parse_classification(raw))
        else:
            extra.setdefault("categories", []).append(raw)
    timestamp = None
    if cell.get("added"):
        try:
            timestamp = parse_iso(cell["added"])
        except ValueError:
            raise BadInput(f"Added {cell['added']!r} is not ISO 8601") from None
    return ExchangeRecord(
        position=position,
        signals=signals,
        classifications=classes,
        source="icse",
        origin_member=cell.get("contributor") or None,
        origin_entry_id=cell.get("id") or None,
        note=cell.get("comment") or None,
        deleted=deleted,
        timestamp=timestamp,
        extra=extra,
    )


def export(items: Sequence[ExportItem]) -> bytes:
    """An ICSE CSV with the columns documented above."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for item in items:
        labels = [f"{c['scheme']}:{c['label']}" for c in item.classifications]
        labels += list(item.extra.get("categories") or [])
        writer.writerow(
            [
                item.origin_entry_id or f"rl-{item.entry_id}",
                item.signals.get("md5", ""),
                item.signals.get("sha1", ""),
                item.signals.get("sha256", ""),
                item.signals.get("photodna", ""),
                item.signals.get("pdq", ""),
                "|".join(labels),
                item.origin_member or "",
                isoformat(item.record_time),
                "deleted" if item.deleted else "active",
                item.note or "",
            ]
        )
    return out.getvalue().encode()
