"""Ridgeline's own txt, CSV and JSONL: parsed like every exchange format, and written
so `ridgeline lists import` reads them back.

Columns (CSV) and keys (JSONL) are: one per signal (any installed signal's name; in
JSONL also a `signals` object), or `hash` with `signal` (or `--signal`); `quality`
(of the row's perceptual hashes) or, in JSONL, `qualities` by signal;
`classifications` (`scheme:label` joined by `|` in CSV, a list of objects or strings
in JSONL); the provenance fields `source`, `origin_list`, `origin_member`,
`origin_entry_id`, `note`; and `timestamp` (ISO 8601), which `--since` compares.
txt is one hash per line (`#` starts a comment) and needs `--signal`; it is read
lazily (`BareHashes`), so its size is not bounded by memory. Exports write
the columns each installed signal type names (`SignalType.export_columns`: its hash,
and `quality` for PDQ), so a plug-in's hashes travel in CSV as in JSONL.
Tombstoned entries are not written: these formats carry a list's live content.

Parsing only reads: hashes are normalised by the one import writer
(`ridgeline.exchange.apply`), which reports a bad one by its line as for any format, or
for a big txt file by the parsing process with the writer's own checks
(`ridgeline.exchange.ahead.produce_txt`).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ridgeline.classifications import parse as parse_classification
from ridgeline.classifications import validate as validate_classification
from ridgeline.errors import BadInput, RidgelineError
from ridgeline.exchange.jsonutil import loads, problem
from ridgeline.exchange.records import (
    BareHashes,
    ExchangeRecord,
    ExportItem,
    ParseResult,
    csv_rows,
    decode_text,
)
from ridgeline.signals import all_signals
from ridgeline.signals.base import StreamingSignal
from ridgeline.timeutil import parse_iso

#: Our own formats, as `--format` names them.
FORMATS = ("txt", "csv", "jsonl")
META_COLUMNS = ("source", "origin_list", "origin_member", "origin_entry_id", "note")


def signal_columns() -> tuple[str, ...]:
    """One hash column per installed signal, built-ins first."""
    return tuple(all_signals())


def csv_columns() -> tuple[str, ...]:
    """The header: hash columns, the signals' other columns (quality), labels, provenance."""
    hashes = signal_columns()
    extra = [c for s in all_signals().values() for c in s.export_columns() if c not in hashes]
    return (*hashes, *dict.fromkeys(extra), "classifications", *META_COLUMNS)


def export_csv(items: Sequence[ExportItem]) -> bytes:
    """CSV with a header row; empty cells where an entry lacks a hash or field."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, csv_columns(), lineterminator="\n")
    writer.writeheader()
    signals = list(all_signals().values())
    for item in items:
        if item.deleted:
            continue
        row: dict[str, Any] = {}
        for signal in signals:
            row[signal.name] = item.signals.get(signal.name, "")
            if signal.quality_column and signal.name in item.qualities:
                row[signal.quality_column] = item.qualities[signal.name]
        row["classifications"] = "|".join(
            f"{c['scheme']}:{c['label']}" for c in item.classifications
        )
        row.update({k: getattr(item, k) or "" for k in META_COLUMNS})
        writer.writerow(row)
    return out.getvalue().encode()


def export_jsonl(items: Sequence[ExportItem]) -> bytes:
    """One JSON object per entry."""
    signals = all_signals()
    lines = []
    for item in items:
        if item.deleted:
            continue
        obj: dict[str, Any] = {"signals": item.signals}
        for name, quality in item.qualities.items():
            column = signals[name].quality_column if name in signals else None
            if column:
                obj[column] = quality
        obj["classifications"] = item.classifications
        obj.update({k: getattr(item, k) for k in META_COLUMNS if getattr(item, k) is not None})
        lines.append(json.dumps(obj, ensure_ascii=False, sort_keys=True))
    return ("\n".join(lines) + "\n").encode() if lines else b""


# --- parsing ------------------------------------------------------------------------


def parse(data: bytes, fmt: str, what: str | None = None, signal: str | None = None) -> ParseResult:
    """Read one of our own formats; each bad line is reported by its number and skipped."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "txt":
        if not signal:
            raise BadInput("txt imports need --signal (one hash per line)")
        lines = decode_text(data, what or fmt).splitlines()
        return parse_txt_lines((line.encode() for line in lines), what or fmt, signal)
    text = decode_text(data, what or fmt)
    result = ParseResult(fmt)
    if fmt == "csv":
        _parse_csv(text, signal, result, what or fmt)
    else:
        _parse_jsonl(text, signal, result)
    return result


#: txt lines per chunk of `BareHashes`.
TXT_CHUNK = 50_000


def parse_txt_lines(lines: Iterable[bytes], what: str, signal: str | None) -> ParseResult:
    """txt from lines of bytes (`records.stream_lines`), read lazily as `BareHashes`:
    one hash per line, `#` starts a comment, a UTF-8 BOM is allowed."""
    if not signal:
        raise BadInput("txt imports need --signal (one hash per line)")
    return ParseResult("txt", bare=BareHashes(signal, txt_chunks(lines, what)))


def txt_chunks(
    lines: Iterable[bytes], what: str, size: int | None = None
) -> Iterator[list[tuple[int, str]]]:
    """The hash lines of a txt file as `(number, text)`, `size` (default `TXT_CHUNK`)
    a chunk: blank and comment lines skipped, a UTF-8 BOM allowed, bytes that are not
    UTF-8 refused with their offset. The writer and the parsing process
    (`exchange.ahead.produce_txt`) chunk alike, so both insert the same batches."""
    size = size or TXT_CHUNK
    chunk: list[tuple[int, str]] = []
    add = chunk.append
    offset = 0
    for number, raw in enumerate(lines, 1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[3:]
            offset = 3
        line = raw.strip()
        if line and line[0] != 35:  # "#"
            try:
                add((number, line.decode()))
            except UnicodeDecodeError as exc:
                at = offset + raw.index(line) + exc.start
                raise BadInput(f"{what}: not UTF-8 text ({exc.reason} at byte {at})") from None
            if len(chunk) >= size:
                yield chunk
                chunk = []
                add = chunk.append
        offset += len(raw)
    if chunk:
        yield chunk


def _parse_csv(text: str, signal: str | None, result: ParseResult, what: str) -> None:
    # A quote opened and never closed is an error on its line, not a field that
    # swallows the rest of the file; reading resumes on the next line (csv_rows).
    rows = csv_rows(text)
    first = next(rows, None)
    if first is None:
        return
    if isinstance(first[1], str):
        raise BadInput(f"{what}: line {first[0]}: {first[1]}")
    names = [h.strip() for h in first[1]]
    for line, row in rows:
        position = f"line {line}"
        if isinstance(row, str):
            result.reject(position, row)
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            result.reject(position, f"{len(row)} fields, the header has {len(names)}")
            continue
        try:
            result.add(_record(position, dict(zip(names, row, strict=False)), signal))
        except (RidgelineError, ValueError) as exc:
            result.reject(position, str(exc))


def _parse_jsonl(text: str, signal: str | None, result: ParseResult) -> None:
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        position = f"line {number}"
        try:
            obj = loads(raw)  # deep values and huge integers become markers
        except json.JSONDecodeError as exc:
            result.reject(position, f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        except (RecursionError, ValueError):
            result.reject(position, "JSON nested too deeply to read")
            continue
        if not isinstance(obj, dict):
            result.reject(position, "expected a JSON object")
            continue
        bad = problem(obj)
        if bad is not None:
            result.reject(position, bad)
            continue
        try:
            result.add(_record(position, obj, signal))
        except (RidgelineError, ValueError, TypeError) as exc:
            result.reject(position, str(exc))


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _signals(row: Mapping[str, Any], default_signal: str | None) -> dict[str, str]:
    """The row's hashes by signal name; values are normalised by the writer."""
    known = all_signals()
    found = {k.lower(): v for k, v in row.items() if k and k.lower() in known and v}
    if row.get("hash"):
        name = row.get("signal") or default_signal
        if not name:
            raise BadInput("a 'hash' column needs --signal or a 'signal' column")
        found[str(name).lower()] = row["hash"]
    nested = row.get("signals")
    if isinstance(nested, Mapping):
        found.update({str(k).lower(): v for k, v in nested.items()})
    out: dict[str, str] = {}
    for name, value in found.items():
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise BadInput(f"{name} hash must be a string, not {type(value).__name__}")
        out[name] = value
    return out


def _quality(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadInput(f"quality must be a whole number 0-100, not {value!r}")
    quality = int(value)
    if not 0 <= quality <= 100:
        raise BadInput(f"quality must be 0-100, not {quality}")
    return quality


def _qualities(row: Mapping[str, Any], signals: Mapping[str, str]) -> dict[str, int]:
    """`qualities` by signal, or one `quality` for the row's perceptual (non-streaming)
    hashes: cryptographic digests have no quality."""
    by_signal = row.get("qualities")
    if isinstance(by_signal, Mapping):
        return {
            str(k).lower(): _quality(v) for k, v in by_signal.items() if str(k).lower() in signals
        }
    if row.get("quality") in (None, ""):
        return {}
    quality = _quality(row["quality"])
    known = all_signals()
    return {
        name: quality
        for name in signals
        if name in known and not isinstance(known[name], StreamingSignal)
    }


def _classifications(raw: Any) -> list[dict[str, str]]:
    if isinstance(raw, str):
        return [parse_classification(c) for c in raw.split("|") if c.strip()]
    out: list[dict[str, str]] = []
    if isinstance(raw, list):
        for c in raw:
            if isinstance(c, str):
                out.append(parse_classification(c))
            elif isinstance(c, Mapping):
                out.append(validate_classification(c.get("scheme", ""), c.get("label", "")))
            else:
                raise BadInput(f"classification {c!r} is neither scheme:label nor an object")
    elif raw not in (None, ""):
        raise BadInput(f"classifications must be a list or scheme:label text, not {raw!r}")
    return out


def _record(position: str, row: Mapping[str, Any], signal: str | None) -> ExchangeRecord:
    signals = _signals(row, signal)
    if not signals:
        raise BadInput("no hash on this line")
    timestamp = None
    if _text(row.get("timestamp")) is not None:
        try:
            timestamp = parse_iso(str(row["timestamp"]))
        except ValueError:
            raise BadInput(f"timestamp {row['timestamp']!r} is not ISO 8601") from None
    return ExchangeRecord(
        position=position,
        signals=signals,
        classifications=_classifications(row.get("classifications") or row.get("classification")),
        source=_text(row.get("source")),
        origin_list=_text(row.get("origin_list")),
        origin_member=_text(row.get("origin_member")),
        origin_entry_id=_text(row.get("origin_entry_id")),
        note=_text(row.get("note")),
        timestamp=timestamp,
        qualities=_qualities(row, signals),
    )
