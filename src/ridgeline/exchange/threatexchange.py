"""python-threatexchange's file formats, both ways.

`te-lines`: one `<signal_type> <hash>` per line, what `threatexchange hash` prints and
its local-file collaboration reads and appends. `te-csv`: what `threatexchange dataset
-P --csv` prints (`signal_type,signal_str,collab,category,tags`). Signal types map to
ours: `pdq` -> pdq, `vpdq` -> vpdq, `video_md5` -> md5 and `video_sha256` -> sha256 of a
video (threatexchange has no image MD5 or SHA-256, so those are not written); other
types (`url`, `raw_text`, ...) are reported and skipped. A dataset row whose category
is not `POSITIVE_CLASS` (a negative opinion or an investigation seed) is not listable.
`hma-json`: HMA's bank content as its curation API writes and takes it: one content
a line, `{"id": 1234, "signals": {"pdq": "...", "video_md5": "..."}}` (the answer of
`POST /c/bank/<bank>/content`), a bare `{"pdq": "..."}` signals object (the body of
`POST /c/bank/<bank>/signal`), or the answer of `GET /c/bank/<bank>/content/<id>
?include_signals=true` (`id`, `signals`, `bank: {name, ...}`, `disable_until_ts`,
`collab_metadata`); a JSON array of any of them is read too. A content HMA has
disabled (`disable_until_ts` 0, or a time still to come) is not listable.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from typing import Any

from ridgeline.exchange.jsonutil import loads, pointer, problem
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult, decode_text

LINES = "te-lines"
CSV = "te-csv"
HMA = "hma-json"
FORMATS = (LINES, CSV, HMA)
#: threatexchange signal type -> our signal.
SIGNAL_TYPES = {"pdq": "pdq", "vpdq": "vpdq", "video_md5": "md5", "video_sha256": "sha256"}
_VIDEO_ONLY = {"md5": "video_md5", "sha256": "video_sha256"}
CSV_COLUMNS = ["signal_type", "signal_str", "collab", "category", "tags"]


def parse(data: bytes, what: str = LINES) -> ParseResult:
    """Read `<signal_type> <hash>` lines (blank lines and `#` comments skipped)."""
    result = ParseResult(LINES)
    for number, line in enumerate(decode_text(data, what).splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        kind, _, value = text.partition(" ")
        _add(result, f"line {number}", kind, value.strip(), None)
    return result


def parse_csv(data: bytes, what: str = CSV) -> ParseResult:
    """Read `threatexchange dataset --csv` output."""
    result = ParseResult(CSV)
    reader = csv.DictReader(io.StringIO(decode_text(data, what), newline=""))
    for row in reader:
        position = f"line {reader.line_num}"
        _add(
            result,
            position,
            (row.get("signal_type") or "").strip(),
            (row.get("signal_str") or "").strip(),
            row,
        )
    return result


def _add(
    result: ParseResult, position: str, kind: str, value: str, row: dict[str, str] | None
) -> None:
    signal = SIGNAL_TYPES.get(kind.lower())
    if signal is None:
        expected = ", ".join(SIGNAL_TYPES)
        result.reject(position, f"signal type {kind!r} is not one Ridgeline reads ({expected})")
        return
    if not value:
        result.reject(position, f"{kind} line has no hash")
        return
    extra = {"entry_type": "video"} if kind.lower().startswith("video") or signal == "vpdq" else {}
    record = ExchangeRecord(position=position, signals={signal: value}, extra=extra)
    if row is not None:
        record.origin_list = (row.get("collab") or "").strip() or None
        category = (row.get("category") or "").strip()
        if category:
            record.extra = {**extra, "category": category, "tags": row.get("tags") or ""}
            record.listable = category.upper() == "POSITIVE_CLASS"
    result.add(record)


def _pairs(item: ExportItem) -> list[tuple[str, str]]:
    origin = item.origin_entry_id or ""
    video = (
        item.extra.get("entry_type") == "video"
        or "vpdq" in item.signals
        or origin.startswith("VideoMD5:")  # from StopNCII
    )
    out = []
    for signal, value in item.signals.items():
        if signal in ("pdq", "vpdq"):
            out.append((signal, value))
        elif signal in _VIDEO_ONLY and video:
            out.append((_VIDEO_ONLY[signal], value))
    return out


def not_carried(item: ExportItem) -> str | None:
    """Why threatexchange cannot carry the entry: no PDQ, vPDQ or video hash."""
    if _pairs(item):
        return None
    return f"no hash threatexchange carries ({', '.join(sorted(item.signals)) or 'none'})"


def export(items: Sequence[ExportItem]) -> bytes:
    """`<signal_type> <hash>` lines a threatexchange local-file collaboration reads."""
    return "".join(f"{k} {v}\n" for item in items for k, v in _pairs(item)).encode()


def export_csv(items: Sequence[ExportItem], *, collab: str) -> bytes:
    """The dataset CSV: every written entry is a positive opinion of `collab`."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        for kind, value in _pairs(item):
            writer.writerow(
                {
                    "signal_type": kind,
                    "signal_str": value,
                    "collab": item.origin_list or collab,
                    "category": "POSITIVE_CLASS",
                    "tags": item.extra.get("tags") or "",
                }
            )
    return out.getvalue().encode()


def parse_hma(data: bytes, what: str = HMA) -> ParseResult:
    """Read HMA bank content: JSON lines, one document, or an array of contents."""
    result = ParseResult(HMA)
    text = decode_text(data, what).strip()
    items: list[tuple[str, Any]] = []
    try:
        doc = loads(text) if text else []
        items = (
            [(pointer(i), v) for i, v in enumerate(doc)]
            if isinstance(doc, list)
            else [("line 1", doc)]
        )
    except (json.JSONDecodeError, RecursionError):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((f"line {number}", loads(line)))
            except json.JSONDecodeError as exc:
                result.reject(f"line {number}", f"malformed JSON at column {exc.colno}: {exc.msg}")
            except RecursionError:
                result.reject(f"line {number}", "JSON nested too deeply to read")
    for position, item in items:
        _hma_content(result, position, item)
    return result


def _hma_content(result: ParseResult, position: str, item: Any) -> None:
    bad = problem(item)
    if bad is not None or not isinstance(item, dict):
        result.reject(position, bad or "expected a bank content object")
        return
    raw = item.get("signals", item if "id" not in item else None)
    if not isinstance(raw, dict) or not raw:
        result.reject(position, "bank content has no signals object")
        return
    signals: dict[str, str] = {}
    video = False
    for kind, value in raw.items():
        signal = SIGNAL_TYPES.get(str(kind).lower())
        if signal is None:
            expected = ", ".join(SIGNAL_TYPES)
            result.reject(position, f"signal type {kind!r} is not one Ridgeline reads ({expected})")
            continue
        if not isinstance(value, str) or not value.strip():
            result.reject(position, f"{kind} is not a hash string")
            continue
        signals[signal] = value.strip()
        video = video or str(kind).lower().startswith("video") or signal == "vpdq"
    if not signals:
        return
    content_id = item.get("id")
    bank = item.get("bank")
    if isinstance(bank, dict):  # GET .../content/<id>: the bank's config
        bank = bank.get("name")
    extra: dict[str, Any] = {"entry_type": "video"} if video else {}
    disabled = item.get("disable_until_ts")
    listable = None
    if isinstance(disabled, int) and not isinstance(disabled, bool) and disabled != 1:
        # 0: disabled in HMA; a later time: disabled until then. Either way it does
        # not match there now, so it must not become a matchable block entry here.
        extra["disable_until_ts"] = disabled
        listable = False if disabled == 0 or disabled > time.time() else None
    collabs = item.get("collab_metadata")
    if isinstance(collabs, dict) and collabs:
        extra["collab_metadata"] = {
            str(k): [str(x) for x in v] for k, v in collabs.items() if isinstance(v, list)
        }
    record = ExchangeRecord(
        position=position,
        signals=signals,
        source="hma",
        origin_entry_id=str(content_id) if isinstance(content_id, int | str) else None,
        origin_list=str(bank) if isinstance(bank, str) else None,
        extra=extra,
        listable=listable,
    )
    result.add(record)


def export_hma(items: Sequence[ExportItem]) -> bytes:
    """One bank content a line: `{"id", "signals"}`, signals named as HMA names them."""
    lines = []
    for item in items:
        pairs = _pairs(item)
        if pairs:
            lines.append(json.dumps({"id": item.entry_id, "signals": dict(pairs)}))
    return "".join(f"{line}\n" for line in lines).encode()
