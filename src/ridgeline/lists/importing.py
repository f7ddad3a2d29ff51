"""Import hashes into a list from our plain formats: txt, csv and jsonl.

Parsing is tolerant: every bad line is reported with its line number and skipped,
good lines are kept. Writing is transactional: the good entries are inserted in the
caller's transaction, so a failure part-way stores nothing and loses nothing.
Hashes already on the list are skipped, so importing the same file twice is harmless.
Exchange formats (NCMEC XML, VICS, ICSE, StopNCII) live in `ridgeline.exchange`.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.classifications import parse as parse_classification
from ridgeline.classifications import validate as validate_classification
from ridgeline.errors import BadInput, RidgelineError
from ridgeline.lists.core import NewEntry, insert_entries, normalize_signals
from ridgeline.signals import all_signals
from ridgeline.store.models import Entry, EntrySignal, HashList, lookup_key

FORMATS = ("txt", "csv", "jsonl")
_META_FIELDS = ("source", "origin_list", "origin_member", "origin_entry_id", "note")
BATCH = 5000


@dataclass
class Record:
    """One parsed line: hashes plus optional metadata, with where it came from."""

    line: int
    signals: dict[str, str]
    classifications: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, str | None] = field(default_factory=dict)
    qualities: dict[str, int] = field(default_factory=dict)


@dataclass
class ImportReport:
    """What an import did: counts and every rejected line with its reason."""

    list_name: str
    batch: str
    read: int = 0
    added: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.list_name,
            "batch": self.batch,
            "read": self.read,
            "added": self.added,
            "duplicates": self.duplicates,
            "errors": self.errors,
        }


def _signals_from_mapping(row: Mapping[str, Any], default_signal: str | None) -> dict[str, str]:
    known = all_signals()
    signals = {k.lower(): v for k, v in row.items() if k and k.lower() in known and v}
    if row.get("hash"):
        name = row.get("signal") or default_signal
        if not name:
            raise BadInput("a 'hash' column needs --signal or a 'signal' column")
        signals[str(name).lower()] = row["hash"]
    if isinstance(row.get("signals"), Mapping):
        signals.update({str(k).lower(): v for k, v in row["signals"].items()})
    return {k: v for k, v in signals.items() if v not in (None, "")}


def parse_records(
    text: str, fmt: str, signal: str | None = None
) -> Iterator[Record | tuple[int, str]]:
    """Yield a `Record` per good line and `(line, error)` per bad one."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown import format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "txt":
        if not signal:
            raise BadInput("txt imports need --signal (one hash per line)")
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield Record(number, {signal: line})
        return
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            return
        for row in reader:
            number = reader.line_num
            try:
                yield _record_from_row(number, row, signal)
            except (RidgelineError, ValueError) as exc:
                yield (number, str(exc))
        return
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
            yield _record_from_row(number, obj, signal)
        except json.JSONDecodeError as exc:
            yield (number, f"malformed JSON: {exc.msg} at column {exc.colno}")
        except (RidgelineError, ValueError) as exc:
            yield (number, str(exc))


def _record_from_row(number: int, row: Mapping[str, Any], signal: str | None) -> Record:
    signals = _signals_from_mapping(row, signal)
    if not signals:
        raise BadInput("no hash on this line")
    classes: list[dict[str, str]] = []
    raw_classes = row.get("classifications") or row.get("classification")
    if isinstance(raw_classes, str):
        classes = [parse_classification(c) for c in raw_classes.split("|") if c.strip()]
    elif isinstance(raw_classes, list):
        for c in raw_classes:
            classes.append(
                parse_classification(c)
                if isinstance(c, str)
                else validate_classification(c.get("scheme", ""), c.get("label", ""))
            )
    qualities: dict[str, int] = {}
    if row.get("quality") not in (None, ""):
        quality = int(row["quality"])
        if not 0 <= quality <= 100:
            raise BadInput(f"quality must be 0-100, not {quality}")
        qualities = {name: quality for name in signals if name == "pdq"}
    meta = {k: (str(row[k]) if row.get(k) not in (None, "") else None) for k in _META_FIELDS}
    return Record(number, signals, classes, meta, qualities)


def import_file(
    session: Session,
    hash_list: HashList,
    path: Path | str,
    fmt: str,
    *,
    signal: str | None = None,
    actor: str | None = None,
    status: str | None = None,
) -> ImportReport:
    """Import a file into `hash_list` inside the caller's transaction."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    return import_text(session, hash_list, text, fmt, signal=signal, actor=actor, status=status)


def import_text(
    session: Session,
    hash_list: HashList,
    text: str,
    fmt: str,
    *,
    signal: str | None = None,
    actor: str | None = None,
    status: str | None = None,
) -> ImportReport:
    """Import already-read text; see `import_file`."""
    report = ImportReport(hash_list.name, uuid.uuid4().hex[:16])
    if status is None:
        status = "confirmed" if hash_list.review_quorum == 0 else "pending"
    good: list[Record] = []
    for item in parse_records(text, fmt, signal):
        report.read += 1
        if isinstance(item, tuple):
            report.errors.append({"line": item[0], "error": item[1]})
            continue
        try:
            item.signals = normalize_signals(hash_list, item.signals)
        except RidgelineError as exc:
            report.errors.append({"line": item.line, "error": str(exc)})
            continue
        good.append(item)
    for start in range(0, len(good), BATCH):
        _insert_batch(session, hash_list, good[start : start + BATCH], report, actor, status)
    # One log record per import (not per entry): the batch id ties it to entry history.
    auditlog.append(
        session,
        actor,
        "list.import",
        f"list:{hash_list.id}",
        {k: v for k, v in report.to_json().items() if k != "errors"}
        | {"format": fmt, "status": status, "errors": len(report.errors)},
    )
    return report


def _insert_batch(
    session: Session,
    hash_list: HashList,
    records: list[Record],
    report: ImportReport,
    actor: str | None,
    status: str,
) -> None:
    keys = {(name, lookup_key(v)) for r in records for name, v in r.signals.items()}
    existing: set[tuple[str, str]] = set()
    by_signal: dict[str, list[str]] = {}
    for name, key in keys:
        by_signal.setdefault(name, []).append(key)
    for name, values in by_signal.items():
        for start in range(0, len(values), 900):
            rows = session.execute(
                select(EntrySignal.signal, EntrySignal.lookup_key)
                .join(Entry, Entry.id == EntrySignal.entry_id)
                .where(
                    Entry.list_id == hash_list.id,
                    Entry.deleted_at.is_(None),
                    EntrySignal.signal == name,
                    EntrySignal.lookup_key.in_(values[start : start + 900]),
                )
            )
            existing.update((s, k) for s, k in rows)
    fresh: list[Record] = []
    for record in records:
        record_keys = {(n, lookup_key(v)) for n, v in record.signals.items()}
        if record_keys & existing:
            report.duplicates += 1
            continue
        existing |= record_keys
        fresh.append(record)
    if not fresh:
        return
    insert_entries(
        session,
        hash_list,
        [
            NewEntry(
                signals=r.signals,
                classifications=r.classifications,
                qualities=r.qualities,
                fields=r.meta,
                event={"batch": report.batch, "line": r.line, "status": status},
            )
            for r in fresh
        ],
        status=status,
        batch=report.batch,
        actor=actor,
    )
    report.added += len(fresh)
