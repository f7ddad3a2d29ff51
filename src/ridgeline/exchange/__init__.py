"""Exchange formats: read hash files into lists and write lists out again.

Formats: `ncmec-xml` (NCMEC hash sharing), `vics` (Project VIC 1.3 and 2.0), `icse`
(INTERPOL ICSE CSV), `stopncii` (StopNCII hash records), `te-lines` and `te-csv`
(python-threatexchange's signal lines and dataset CSV), `hma-json` (HMA bank
content), and our own `txt`, `csv` and
`jsonl` (`ridgeline.exchange.native`). Every reader is tolerant (bad records are
reported with their position and skipped) and parses into the same `ParseResult`;
one writer (`ridgeline.exchange.apply.apply_records`) stores every format, so every
format takes the same import options. Every import is one transaction.
"""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import lists as L
from ridgeline import parseahead
from ridgeline.errors import BadInput
from ridgeline.exchange import ahead, icse, native, ncmec, stopncii, threatexchange, vics
from ridgeline.exchange.apply import (
    NOT_LISTABLE_CHOICES,
    ImportReport,
    apply_records,
    export_items,
    last_timestamp,
    mark_withdrawn,
)
from ridgeline.exchange.records import (
    ExchangeRecord,
    ExportItem,
    ParseResult,
    head_bytes,
    read_input,
    starts_utf16,
    stream_chunks,
    stream_lines,
)
from ridgeline.exchange.tombstones import apply_with_tombstones, has_waiting
from ridgeline.index.pack import RowPack
from ridgeline.lists.models import Entry, HashList
from ridgeline.timeutil import as_utc, utcnow

#: Partner formats' parsers (bytes, what) -> records.
PARSERS: dict[str, Callable[[bytes, str], ParseResult]] = {
    ncmec.NAME: ncmec.parse,
    vics.NAME: vics.parse,
    icse.NAME: icse.parse,
    stopncii.NAME: stopncii.parse,
    threatexchange.LINES: threatexchange.parse,
    threatexchange.CSV: threatexchange.parse_csv,
    threatexchange.HMA: threatexchange.parse_hma,
}
#: Partner formats read as a stream of parts (constant memory), by `import_file`:
#: `(chunks, what, part=None)`.
STREAMED: dict[str, Callable[..., ParseResult]] = {
    ncmec.NAME: ncmec.parse_stream,
    vics.NAME: vics.parse_stream,
}
#: Every format `import_file` reads: our own, then the partner formats.
IMPORT_FORMATS = (*native.FORMATS, *PARSERS)
EXPORT_FORMATS = (
    "csv",
    "jsonl",
    ncmec.NAME,
    vics.NAME,
    icse.NAME,
    stopncii.NAME,
    *threatexchange.FORMATS,
)
#: Formats whose files carry deletions, so an export may include tombstones.
WITH_DELETIONS = (ncmec.NAME, icse.NAME, stopncii.NAME)

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "NOT_LISTABLE_CHOICES",
    "PARSERS",
    "ExchangeRecord",
    "ExportItem",
    "ExportResult",
    "ImportReport",
    "ParseResult",
    "apply_records",
    "apply_with_tombstones",
    "export_items",
    "export_list",
    "export_report",
    "import_bytes",
    "import_exchange",
    "import_file",
    "last_timestamp",
    "mark_withdrawn",
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
    not_listable: str = "skip",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a file already in memory (any of `IMPORT_FORMATS`); see `import_file`."""
    parsed = parse_bytes(data, fmt, what, signal=signal)
    return _apply(
        session,
        hash_list,
        parsed,
        fmt,
        source=source,
        actor=actor,
        since=since,
        status=status,
        confirmed_elsewhere=confirmed_elsewhere,
        not_listable=not_listable,
        progress=progress,
    )


def _apply(
    session: Session,
    hash_list: HashList,
    parsed: ParseResult,
    fmt: str,
    *,
    source: str | None,
    actor: str | None,
    since: dt.datetime | str | None,
    status: str | None,
    confirmed_elsewhere: bool,
    not_listable: str,
    progress: Callable[[int], None] | None,
    pack: RowPack | None = None,
) -> ImportReport:
    since, watermark = _since(session, hash_list, since, source or fmt)
    return apply_with_tombstones(
        session,
        hash_list,
        parsed,
        source=source,
        actor=actor,
        since=since,
        status=status,
        confirmed_elsewhere=confirmed_elsewhere,
        not_listable=not_listable,
        watermark=watermark,
        progress=progress,
        pack=pack,
    )


def _since(
    session: Session, hash_list: HashList, since: dt.datetime | str | None, source: str
) -> tuple[dt.datetime | None, bool]:
    """`since` as a time, and whether it is the source's remembered newest (`last`)."""
    if since == "last":
        return last_timestamp(session, hash_list, source), True
    if isinstance(since, str):
        raise BadInput(f"since must be a time or 'last', not {since!r}")
    return since, False


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
    not_listable: str = "skip",
    progress: Callable[[int], None] | None = None,
    pack: RowPack | None = None,
) -> ImportReport:
    """Import a file of any format into `hash_list` inside the caller's transaction.

    `since="last"` continues from the newest timestamp seen from this source before;
    `source` (default: the format) names the source; `confirmed_elsewhere` records new
    entries confirmed under a review policy; `not_listable` says what becomes of
    non-pertinent and comparison records (`apply.NOT_LISTABLE_CHOICES`). A malformed
    file raises `BadInput` and the caller's transaction writes nothing. txt, NCMEC XML
    and VICS JSON (`STREAMED`) are read as they are applied (constant memory; a
    UTF-16 file is read whole), a big file's records or lines checked in a second
    process (`ahead`; standard input in this one); `progress` hears the records read
    so far. `pack` collects a txt file's new rows, for the caller to write after committing
    (`ridgeline.index.pack`: the index reads them from there instead of SQL).
    """
    streamed = STREAMED.get(fmt)
    if fmt == "txt" and not starts_utf16(path):
        name = str(path)
        if name != "-" and signal:
            # checked by `ahead`'s producer, in a second process if it pays
            job = ahead.TxtJob(
                path=name,
                what=name,
                signal=signal,
                list_name=hash_list.name,
                list_signals=list(hash_list.signals or []),
                chunk=ahead.TXT_CHUNK,
            )
            use_child = parseahead.available() and ahead.worth_it(name)
            parsed = ahead.txt_parts(job, ahead=use_child)
        else:
            parsed = native.parse_txt_lines(stream_lines(path), name, signal)
    elif streamed is not None and _ascii_compatible(head_bytes(path)):
        name = str(path)
        if name != "-" and not has_waiting(session, hash_list):
            # read and checked by `ahead`'s producer, in a second process if it pays
            return _import_ahead(
                session, hash_list, name, fmt, source=source, actor=actor, since=since,
                status=status, confirmed_elsewhere=confirmed_elsewhere,
                not_listable=not_listable, progress=progress,
            )  # fmt: skip
        parsed = streamed(stream_chunks(path), name, part=ahead.PART or None)
    else:
        parsed = parse_bytes(read_input(path), fmt, str(path), signal=signal)
    return _apply(
        session,
        hash_list,
        parsed,
        fmt,
        source=source,
        actor=actor,
        since=since,
        status=status,
        confirmed_elsewhere=confirmed_elsewhere,
        not_listable=not_listable,
        progress=progress,
        pack=pack,
    )


def _import_ahead(
    session: Session,
    hash_list: HashList,
    path: str,
    fmt: str,
    *,
    source: str | None,
    actor: str | None,
    since: dt.datetime | str | None,
    status: str | None,
    confirmed_elsewhere: bool,
    not_listable: str,
    progress: Callable[[int], None] | None,
) -> ImportReport:
    """`import_file` of a streamed partner file through `ahead` (a list with deletions
    waiting for their entries takes the general path: settling them reads records)."""
    since, watermark = _since(session, hash_list, since, source or fmt)
    job = ahead.Job(
        path=path,
        fmt=fmt,
        what=path,
        list_name=hash_list.name,
        list_signals=list(hash_list.signals or []),
        source=source,
        since=as_utc(since) if since is not None else None,
        watermark=watermark,
        not_listable=not_listable,
        part=ahead.PART,
    )
    use_child = parseahead.available() and ahead.worth_it(path)
    return apply_with_tombstones(
        session,
        hash_list,
        ahead.parts(job, ahead=use_child),
        source=source,
        actor=actor,
        since=since,
        status=status,
        confirmed_elsewhere=confirmed_elsewhere,
        not_listable=not_listable,
        watermark=watermark,
        progress=progress,
    )


def _ascii_compatible(head: bytes) -> bool:
    """Whether a file's first bytes allow reading it as a stream of UTF-8 (no UTF-16
    or UTF-32 byte order mark or zero bytes; standard input is streamed too)."""
    return not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" not in head


#: The name partner-format imports were first written with; the same function.
import_exchange = import_file


#: Signals each partner format can carry (an entry with none of them is not written).
CARRIED_SIGNALS: dict[str, frozenset[str]] = {
    ncmec.NAME: frozenset(ncmec.FINGERPRINTS.values()),
    vics.NAME: frozenset({"md5", "sha1", "sha256", "photodna"}),
    icse.NAME: frozenset({"md5", "sha1", "sha256", "photodna", "pdq"}),
}


@dataclass(frozen=True)
class ExportResult:
    """An export's bytes and what it wrote and could not carry, per reason."""

    format: str
    data: bytes
    written: int
    deletions: int
    not_carried: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "written": self.written,
            "deletions": self.deletions,
            "not_carried": dict(self.not_carried),
        }


def _reason(fmt: str, item: ExportItem) -> str | None:
    """Why `fmt` cannot carry `item`, or None."""
    if item.deleted and fmt not in WITH_DELETIONS:
        return "deletion (the format has none)"
    if fmt == stopncii.NAME:
        return stopncii.not_carried(item)
    if fmt in threatexchange.FORMATS:
        return threatexchange.not_carried(item)
    carried = CARRIED_SIGNALS.get(fmt)
    if carried is not None and not carried & set(item.signals):
        return f"no hash the format carries ({', '.join(sorted(item.signals)) or 'none'})"
    return None


def export_report(
    session: Session,
    hash_list: HashList,
    fmt: str,
    *,
    include_deleted: bool = False,
    statuses: Sequence[str] | None = None,
    **options: Any,
) -> ExportResult:
    """The list in format `fmt`, with counts of what was written and left out.

    By default only entries that can match now are written (a pending entry exported
    and imported elsewhere must not come back confirmed); `statuses` names the live
    entries' statuses to write instead. Tombstones only where the format carries
    deletions.
    """
    if fmt not in EXPORT_FORMATS:
        raise BadInput(
            f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}"
        )
    if statuses is not None:
        bad = [s for s in statuses if s not in L.ENTRY_STATUSES]
        if bad:
            raise BadInput(f"status must be one of {', '.join(L.ENTRY_STATUSES)}, not {bad[0]!r}")
    items = export_items(
        session,
        hash_list,
        include_deleted=include_deleted and fmt in WITH_DELETIONS,
        matchable_at=utcnow() if statuses is None else None,
        statuses=statuses,
    )
    not_carried: dict[str, int] = {}
    written_ids = {i.entry_id for i in items}
    for entry_id, status, enabled in session.execute(
        select(Entry.id, Entry.status, Entry.enabled).where(
            Entry.list_id == hash_list.id, Entry.deleted_at.is_(None)
        )
    ):
        if entry_id not in written_ids:
            reason = f"status {status}" if status != "confirmed" or enabled else "disabled"
            not_carried[reason] = not_carried.get(reason, 0) + 1
    if not hash_list.enabled and statuses is None and not_carried:
        not_carried = {"list disabled": sum(not_carried.values())}
    kept: list[ExportItem] = []
    for item in items:
        why = _reason(fmt, item)
        if why is None:
            kept.append(item)
        else:
            not_carried[why] = not_carried.get(why, 0) + 1
    data = _write(session, hash_list, fmt, kept, options)
    deletions = sum(1 for i in kept if i.deleted)
    return ExportResult(fmt, data, len(kept) - deletions, deletions, not_carried)


def export_list(
    session: Session,
    hash_list: HashList,
    fmt: str,
    *,
    include_deleted: bool = False,
    statuses: Sequence[str] | None = None,
    **options: Any,
) -> bytes:
    """The bytes of `export_report`."""
    return export_report(
        session, hash_list, fmt, include_deleted=include_deleted, statuses=statuses, **options
    ).data


def _write(
    session: Session, hash_list: HashList, fmt: str, items: list[ExportItem], options: Any
) -> bytes:
    if fmt == "csv":
        return native.export_csv(items)
    if fmt == "jsonl":
        return native.export_jsonl(items)
    if fmt == ncmec.NAME:
        return ncmec.export(
            items,
            member_id=options.get("member_id") or None,
            member_name=options.get("member_name") or hash_list.owner,
        )
    if fmt == vics.NAME:
        return vics.export(
            items,
            version=options.get("vics_version") or "2.0",
            profile=options.get("vics_profile") or None,
            cases=bool(options.get("vics_cases")),
        )
    if fmt == icse.NAME:
        return icse.export(items)
    if fmt == threatexchange.LINES:
        return threatexchange.export(items)
    if fmt == threatexchange.CSV:
        return threatexchange.export_csv(items, collab=hash_list.name)
    if fmt == threatexchange.HMA:
        return threatexchange.export_hma(items)
    return stopncii.export(items)
