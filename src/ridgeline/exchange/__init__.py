"""Exchange formats: read partners' hash files into lists and write lists out again.

Formats: `ncmec-xml` (NCMEC hash sharing), `vics` (Project VIC 1.3 and 2.0), `icse`
(INTERPOL ICSE CSV), `stopncii` (StopNCII hash records), and our own `csv` and `jsonl`
(read by `ridgeline.lists.importing`). Every reader is tolerant (bad records are
reported with their position and skipped) and every import is one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ridgeline.errors import BadInput
from ridgeline.exchange import icse, native, ncmec, stopncii, vics
from ridgeline.exchange.apply import ExchangeReport, apply_records, export_items, last_timestamp
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult
from ridgeline.store.models import HashList

PARSERS: dict[str, Callable[[bytes, str], ParseResult]] = {
    ncmec.NAME: ncmec.parse,
    vics.NAME: vics.parse,
    icse.NAME: icse.parse,
    stopncii.NAME: stopncii.parse,
}
EXPORT_FORMATS = ("csv", "jsonl", ncmec.NAME, vics.NAME, icse.NAME, stopncii.NAME)
#: Formats whose files carry deletions, so an export may include tombstones.
WITH_DELETIONS = (ncmec.NAME, icse.NAME, stopncii.NAME)

__all__ = [
    "EXPORT_FORMATS",
    "PARSERS",
    "ExchangeRecord",
    "ExchangeReport",
    "ExportItem",
    "ParseResult",
    "apply_records",
    "export_items",
    "export_list",
    "import_exchange",
    "last_timestamp",
    "parse_bytes",
]


def parse_bytes(data: bytes, fmt: str, what: str | None = None) -> ParseResult:
    """Parse a partner file already in memory."""
    parser = PARSERS.get(fmt)
    if parser is None:
        raise BadInput(f"unknown exchange format {fmt!r}; expected one of {', '.join(PARSERS)}")
    return parser(data, what or fmt)


def import_exchange(
    session: Session,
    hash_list: HashList,
    path: Path | str,
    fmt: str,
    *,
    source: str | None = None,
    actor: str | None = None,
    since: dt.datetime | str | None = None,
    status: str | None = None,
    confirmed_elsewhere: bool = False,
) -> ExchangeReport:
    """Import a partner file into `hash_list` inside the caller's transaction.

    `since="last"` continues from the newest timestamp seen from this source before.
    A malformed file raises `BadInput` before anything is written.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    parsed = parse_bytes(data, fmt, str(path))
    source_name = source or fmt
    if since == "last":
        since = last_timestamp(session, hash_list, source_name)
    elif isinstance(since, str):
        raise BadInput(f"since must be a time or 'last', not {since!r}")
    return apply_records(
        session,
        hash_list,
        parsed,
        source=source_name,
        actor=actor,
        since=since,
        status=status,
        confirmed_elsewhere=confirmed_elsewhere,
    )


def export_list(
    session: Session,
    hash_list: HashList,
    fmt: str,
    *,
    include_deleted: bool = False,
    **options: Any,
) -> bytes:
    """The list in format `fmt`; tombstones only where the format carries deletions."""
    items = export_items(
        session, hash_list, include_deleted=include_deleted and fmt in WITH_DELETIONS
    )
    if fmt == "csv":
        return native.export_csv(items)
    if fmt == "jsonl":
        return native.export_jsonl(items)
    if fmt == ncmec.NAME:
        return ncmec.export(items, member_name=options.get("member_name") or hash_list.owner)
    if fmt == vics.NAME:
        return vics.export(
            items,
            version=options.get("vics_version") or "2.0",
            profile=options.get("vics_profile") or "US",
            cases=bool(options.get("vics_cases")),
        )
    if fmt == icse.NAME:
        return icse.export(items)
    if fmt == stopncii.NAME:
        return stopncii.export(items)
    raise BadInput(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
