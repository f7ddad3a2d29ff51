"""Exchange formats: read hash files into lists and write lists out again.

Formats: `ncmec-xml` (NCMEC hash sharing), `vics` (Project VIC 1.3 and 2.0), `icse`
(INTERPOL ICSE CSV), `stopncii` (StopNCII hash records), and our own `txt`, `csv` and
`jsonl` (`ridgeline.exchange.native`). Every reader is tolerant (bad records are
reported with their position and skipped) and parses into the same `ParseResult`;
one writer (`ridgeline.exchange.apply.apply_records`) stores every format, so every
format takes the same import options. Every import is one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ridgeline.errors import BadInput
from ridgeline.exchange import icse, native, ncmec, stopncii, vics
from ridgeline.exchange.apply import ImportReport, apply_records, export_items, last_timestamp
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult, read_input
from ridgeline.lists.models import HashList

#: Partner formats' parsers (bytes, what) -> records.
PARSERS: dict[str, Callable[[bytes, str], ParseResult]] = {
    ncmec.NAME: ncmec.parse,
    vics.NAME: vics.parse,
    icse.NAME: icse.parse,
    stopncii.NAME: stopncii.parse,
}
#: Every format `import_file` reads: our own, then the partner formats.
IMPORT_FORMATS = (*native.FORMATS, *PARSERS)
EXPORT_FORMATS = ("csv", "jsonl", ncmec.NAME, vics.NAME, icse.NAME, stopncii.NAME)
#: Formats whose files carry deletions, so an export may include tombstones.
WITH_DELETIONS = (ncmec.NAME, icse.NAME, stopncii.NAME)

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "PARSERS",
    "ExchangeRecord",
    "ExportItem",
    "ImportReport",
    "ParseResult",
    "apply_records",
    "export_items",
    "export_list",
    "import_bytes",
    "import_exchange",
    "import_file",
    "last_timestamp",
    "parse_bytes",
]


def parse_bytes(
    data: bytes, fmt: str, what: str | None = None, *, signal: str | None = None
) -> ParseResult:
    """Parse a file already in memory. `signal` names the signal of bare hashes (txt, or
    a csv/jsonl `hash` column without a `signal` one); partner formats name their own."""
    if fmt in native.FORMATS:
        return native.parse(data, fmt, what or fmt, signal=signal)
    parser = PARSERS.get(fmt)
    if parser is None:
        raise BadInput(
            f"unknown import format {fmt!r}; expected one of {', '.join(IMPORT_FORMATS)}"
        )
    return parser(data, what or fmt)


def import_bytes(
    session: Session,
    hash_list: HashList,
    data: bytes,
    fmt: str,
    *,
    what: str | None = None,
    signal: str | None = None,
    source: str | None = None,
    actor: str | None = None,
    since: dt.datetime | str | None = None,
    status: str | None = None,
    confirmed_elsewhere: bool = False,
) -> ImportReport:
    """Import a file already in memory (any of `IMPORT_FORMATS`); see `import_file`."""
    parsed = parse_bytes(data, fmt, what, signal=signal)
    if since == "last":
        since = last_timestamp(session, hash_list, source or fmt)
    elif isinstance(since, str):
        raise BadInput(f"since must be a time or 'last', not {since!r}")
    return apply_records(
        session,
        hash_list,
        parsed,
        source=source,
        actor=actor,
        since=since,
        status=status,
        confirmed_elsewhere=confirmed_elsewhere,
    )


def import_file(
    session: Session,
    hash_list: HashList,
    path: Path | str,
    fmt: str,
    *,
    signal: str | None = None,
    source: str | None = None,
    actor: str | None = None,
    since: dt.datetime | str | None = None,
    status: str | None = None,
    confirmed_elsewhere: bool = False,
) -> ImportReport:
    """Import a file of any format into `hash_list` inside the caller's transaction.

    `since="last"` continues from the newest timestamp seen from this source before;
    `source` (default: the format) names the source; `confirmed_elsewhere` records new
    entries confirmed under a review policy. A malformed file raises `BadInput` before
    anything is written.
    """
    data = read_input(path)
    return import_bytes(
        session,
        hash_list,
        data,
        fmt,
        what=str(path),
        signal=signal,
        source=source,
        actor=actor,
        since=since,
        status=status,
        confirmed_elsewhere=confirmed_elsewhere,
    )


#: The name partner-format imports were first written with; the same function.
import_exchange = import_file


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
