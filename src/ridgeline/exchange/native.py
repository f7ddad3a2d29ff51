"""Ridgeline's own CSV and JSONL, written so `ridgeline lists import` reads them back.

Columns (CSV) and keys (JSONL) are those the importer in `ridgeline.lists.importing`
understands: one column per signal, `quality` (of the PDQ hash), `classifications`
(`scheme:label` joined by `|` in CSV, a list of objects in JSONL), and the provenance
fields `source`, `origin_list`, `origin_member`, `origin_entry_id`, `note`.
Tombstoned entries are not written: these formats carry a list's live content.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from ridgeline.exchange.records import ExportItem

SIGNAL_COLUMNS = ("md5", "sha1", "sha256", "pdq", "photodna", "vpdq")
META_COLUMNS = ("source", "origin_list", "origin_member", "origin_entry_id", "note")
CSV_COLUMNS = (*SIGNAL_COLUMNS, "quality", "classifications", *META_COLUMNS)


def export_csv(items: Sequence[ExportItem]) -> bytes:
    """CSV with a header row; empty cells where an entry lacks a hash or field."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        if item.deleted:
            continue
        row: dict[str, Any] = {s: item.signals.get(s, "") for s in SIGNAL_COLUMNS}
        row["quality"] = item.qualities.get("pdq", "")
        row["classifications"] = "|".join(
            f"{c['scheme']}:{c['label']}" for c in item.classifications
        )
        row.update({k: getattr(item, k) or "" for k in META_COLUMNS})
        writer.writerow(row)
    return out.getvalue().encode()


def export_jsonl(items: Sequence[ExportItem]) -> bytes:
    """One JSON object per entry."""
    lines = []
    for item in items:
        if item.deleted:
            continue
        obj: dict[str, Any] = {"signals": item.signals}
        if "pdq" in item.qualities:
            obj["quality"] = item.qualities["pdq"]
        obj["classifications"] = item.classifications
        obj.update({k: getattr(item, k) for k in META_COLUMNS if getattr(item, k) is not None})
        lines.append(json.dumps(obj, ensure_ascii=False, sort_keys=True))
    return ("\n".join(lines) + "\n").encode() if lines else b""
