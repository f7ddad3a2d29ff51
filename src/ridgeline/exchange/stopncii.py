"""StopNCII hash records, as the FetchHashes API returns them.

A document is `{"count", "nextSetTimestamp", "hasMoreRecords", "hashRecords": [...]}`
(a bare array of records, or one record per line, is also read). A record has
`hashValue`, `signalType` (`ImagePDQ` -> pdq, `VideoMD5` -> md5; other types are
reported and skipped), `hashStatus` and `lastModtimestamp` (Unix seconds). A record
whose status is `Withdrawn` or `Deleted` removes the hash (tombstone). Each record is
the whole current state of its hash, so the newest record for a hash wins.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from ridgeline.errors import BadInput
from ridgeline.exchange.jsonutil import load_json, loads, pointer, problem
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult, decode_text

NAME = "stopncii"
SIGNAL_TYPES = {"ImagePDQ": "pdq", "VideoMD5": "md5"}
_TYPE_FOR_SIGNAL = {v: k for k, v in SIGNAL_TYPES.items()}
STATUSES = ("Unknown", "Received", "Active", "Withdrawn", "Deleted")
REMOVING = ("Withdrawn", "Deleted")


def parse(data: bytes, what: str = "StopNCII JSON") -> ParseResult:
    """Read FetchHashes output (object, array, or JSON lines)."""
    result = ParseResult(NAME)
    text = decode_text(data, what).strip()
    if _is_json_lines(text):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except json.JSONDecodeError as exc:
                result.reject(f"line {number}", f"malformed JSON at column {exc.colno}: {exc.msg}")
                continue
            except RecursionError:
                result.reject(f"line {number}", "JSON nested too deeply to read")
                continue
            _one(result, obj, f"line {number}")
        return result
    doc = load_json(data, what)
    if isinstance(doc, dict):
        records = doc.get("hashRecords")
        if not isinstance(records, list):
            raise BadInput(f"{what}: {pointer('hashRecords')} must be an array")
        base: tuple[str, ...] = ("hashRecords",)
        if doc.get("nextSetTimestamp") is not None:
            result.meta["next_set_timestamp"] = doc["nextSetTimestamp"]
    elif isinstance(doc, list):
        records, base = doc, ()
    else:
        raise BadInput(f"{what}: expected an object with 'hashRecords' or an array")
    for i, obj in enumerate(records):
        _one(result, obj, pointer(*base, i))
    return result


def _is_json_lines(text: str) -> bool:
    """One record per line: the first line alone is a complete hash record."""
    first, sep, _rest = text.partition("\n")
    if not sep:
        return False
    try:
        obj = loads(first)
    except (json.JSONDecodeError, RecursionError):
        return False
    return isinstance(obj, dict) and "hashValue" in obj


def _one(result: ParseResult, obj: Any, position: str) -> None:
    try:
        bad = problem(obj)
        if bad is not None:
            raise BadInput(bad)
        result.add(_record(obj, position))
    except BadInput as exc:
        result.reject(position, str(exc))


def _record(obj: Any, position: str) -> ExchangeRecord:
    if not isinstance(obj, dict):
        raise BadInput("expected a hash record object")
    value = obj.get("hashValue")
    if not isinstance(value, str) or not value.strip():
        raise BadInput("record has no hashValue")
    kind = obj.get("signalType")
    if kind not in SIGNAL_TYPES:
        raise BadInput(
            f"signalType {kind!r} is not supported; expected one of {', '.join(SIGNAL_TYPES)}"
        )
    status = obj.get("hashStatus", "Active")
    if status not in STATUSES:
        raise BadInput(f"hashStatus {status!r} unknown; expected one of {', '.join(STATUSES)}")
    timestamp = None
    ts = obj.get("lastModtimestamp")
    if ts is not None:
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise BadInput(f"lastModtimestamp must be Unix seconds, not {json.dumps(ts)}")
        try:
            timestamp = dt.datetime.fromtimestamp(ts, dt.UTC)
        except (ValueError, OverflowError, OSError):  # NaN, or beyond year 1..9999
            raise BadInput(
                f"lastModtimestamp {json.dumps(ts)} is not a representable time"
            ) from None
    extra: dict[str, Any] = {"hashStatus": status}
    for key in ("caseNumbers", "CSPFeedbacks"):
        if obj.get(key):
            extra[key] = obj[key]
    signal = SIGNAL_TYPES[kind]
    return ExchangeRecord(
        position=position,
        signals={signal: value},
        source="stopncii",
        origin_entry_id=f"{kind}:{value.strip().lower()}",
        deleted=status in REMOVING,
        timestamp=timestamp,
        extra=extra,
        case_numbers=[str(c) for c in obj["caseNumbers"]]
        if isinstance(obj.get("caseNumbers"), dict)
        else [],
    )


def _is_video(item: ExportItem) -> bool:
    """Whether the entry is a video (StopNCII carries MD5s of videos only)."""
    origin = item.origin_entry_id or ""
    return item.extra.get("entry_type") == "video" or origin.startswith("VideoMD5:")


def _records_of(item: ExportItem) -> list[tuple[str, str]]:
    """`(signalType, hashValue)` pairs StopNCII can carry for this entry."""
    out = []
    if "pdq" in item.signals:
        out.append(("ImagePDQ", item.signals["pdq"]))
    if "md5" in item.signals and _is_video(item):
        out.append(("VideoMD5", item.signals["md5"]))
    return out


def not_carried(item: ExportItem) -> str | None:
    """Why StopNCII cannot carry the entry: it takes image PDQs and video MD5s only."""
    if _records_of(item):
        return None
    if "md5" in item.signals:
        return "image MD5 (StopNCII carries video MD5s only)"
    return f"no hash the format carries ({', '.join(sorted(item.signals)) or 'none'})"


def export(items: Sequence[ExportItem]) -> bytes:
    """A FetchHashes-shaped document; tombstones are written as `Withdrawn` or `Deleted`
    as read (`Deleted` for our own deletions), with no case numbers or feedback."""
    records: list[dict[str, Any]] = []
    for item in items:
        kept = item.extra.get("hashStatus", "Active")
        if item.deleted:
            status = kept if kept in REMOVING else "Deleted"
        else:
            status = "Active" if kept in REMOVING else kept
        for kind, value in _records_of(item):
            record: dict[str, Any] = {
                "lastModtimestamp": int(item.record_time.timestamp()),
                "signalType": kind,
                "hashValue": value,
                "hashStatus": status,
                "caseNumbers": {} if item.deleted else item.extra.get("caseNumbers") or {},
                "CSPFeedbacks": [] if item.deleted else item.extra.get("CSPFeedbacks") or [],
            }
            records.append(record)
    newest = max((r["lastModtimestamp"] for r in records), default=0)
    doc = {
        "count": len(records),
        "nextPageToken": "",
        "nextSetTimestamp": newest,
        "hasMoreRecords": False,
        "hashRecords": records,
    }
    return (json.dumps(doc, indent=1) + "\n").encode()
