"""The `victims.jsonl` interchange record (CONVENTIONS.md): parsing and writing.

A bad line is rejected with its line number and the field at fault; parsing never
half-applies, the registry imports only when every line of every file is good.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
import numpy as np

from ridgeline.errors import BadInput
from ridgeline.timeutil import isoformat, parse_iso

if TYPE_CHECKING:
    from ridgeline.signals.base import SignalType

AGE_BANDS = ("infant-toddler", "prepubescent", "pubescent", "unknown")
GENDERS = ("female", "male", "unknown")
_REGION = re.compile(r"^[A-Z]{2}$")
_FIELDS = {
    "database",
    "victim_id",
    "series",
    "first_seen",
    "identified_at",
    "identifying_agency",
    "age_band",
    "gender",
    "region",
    "hashes",
    "same_as",
    "sightings",
}
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ZERO = dt.timedelta(0)


@dataclass(frozen=True)
class Record:
    """One database's record of one victim, validated."""

    database: str
    victim_id: str
    first_seen: dt.datetime
    identified_at: dt.datetime | None = None
    identifying_agency: str | None = None
    age_band: str = "unknown"
    gender: str = "unknown"
    region: str = "unknown"
    series: tuple[str, ...] = ()
    #: (signal, canonical value)
    hashes: tuple[tuple[str, str], ...] = ()
    #: (database, victim_id)
    same_as: tuple[tuple[str, str], ...] = ()
    sightings: tuple[dt.datetime, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str]:
        return (self.database, self.victim_id)

    def to_json(self) -> dict[str, Any]:
        """The record as one `victims.jsonl` object."""
        return {
            "database": self.database,
            "victim_id": self.victim_id,
            "series": list(self.series),
            "first_seen": isoformat(self.first_seen),
            "identified_at": isoformat(self.identified_at),
            "identifying_agency": self.identifying_agency,
            "age_band": self.age_band,
            "gender": self.gender,
            "region": self.region,
            "hashes": [{"signal": s, "value": v} for s, v in self.hashes],
            "same_as": [{"database": d, "victim_id": v} for d, v in self.same_as],
            "sightings": [isoformat(t) for t in self.sightings],
        }


class Row(NamedTuple):
    """A `Record` as the bulk import carries it (a tuple: a million dataclass objects
    cost more than parsing their lines)."""

    database: str
    victim_id: str
    first_seen: dt.datetime
    identified_at: dt.datetime | None
    identifying_agency: str | None
    age_band: str
    gender: str
    region: str
    series: tuple[str, ...]
    hashes: tuple[tuple[str, str], ...]
    same_as: tuple[tuple[str, str], ...]

    @staticmethod
    def of(record: Record) -> Row:
        return Row(
            record.database,
            record.victim_id,
            record.first_seen,
            record.identified_at,
            record.identifying_agency,
            record.age_band,
            record.gender,
            record.region,
            record.series,
            record.hashes,
            record.same_as,
        )


class BadRecord(BadInput):
    """A `victims.jsonl` line that is not a valid record (names the file, line, field)."""

    code = "bad_victim_record"


def _time(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 time string")
    try:  # the common case first: there can be ten million of these
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        text = value.strip()
        if _DATE_ONLY.match(text):
            text += "T00:00:00Z"
        try:
            return parse_iso(text)
        except BadInput:
            raise ValueError(f"{name}: {value!r} is not an ISO 8601 time") from None
    if len(value) == 10:  # a date alone: midnight UTC
        return parsed.replace(tzinfo=dt.UTC)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed if parsed.utcoffset() == _ZERO else parsed.astimezone(dt.UTC)


def _text(value: Any, name: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > limit or "\x00" in value:
        raise ValueError(f"{name} is longer than {limit} characters or holds a NUL")
    return value.strip()


@functools.cache
def _signals() -> dict[str, SignalType]:
    from ridgeline.signals import all_signals

    return all_signals()


def _canonical_hash(signal: Any, value: Any) -> tuple[str, str]:
    if not isinstance(signal, str) or not isinstance(value, str):
        raise ValueError("hashes: each needs string signal and value")
    sig = _signals().get(signal.strip().lower())
    if sig is None:
        raise ValueError(f"hashes: unknown signal {signal!r}; known: {', '.join(_signals())}")
    try:
        return (sig.name, sig.normalize(value))
    except ValueError as exc:
        raise ValueError(f"hashes: {exc}") from None


def parse_record(obj: Any) -> Record:
    """Validate one decoded JSON object; `ValueError` names the field at fault."""
    record, sightings = _parse(obj)
    return replace(record, sightings=tuple(_time(t, "sightings") for t in sightings))


def _seconds(value: Any) -> int:
    """A sighting time as UTC seconds (the import's form: no datetime kept per sighting)."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return int(parsed.timestamp())
    return int(_time(value, "sightings").timestamp())


_fromiso = dt.datetime.fromisoformat


def _parse(obj: Any) -> tuple[Record, list[Any]]:
    if not isinstance(obj, dict):
        raise ValueError("a record must be a JSON object")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    for required in ("database", "victim_id", "first_seen"):
        if obj.get(required) is None:
            raise ValueError(f"{required} is required")
    database = _text(obj["database"], "database", 64)
    victim_id = _text(obj["victim_id"], "victim_id")
    first_seen = _time(obj["first_seen"], "first_seen")
    identified_raw = obj.get("identified_at")
    identified_at = None if identified_raw is None else _time(identified_raw, "identified_at")
    agency_raw = obj.get("identifying_agency")
    agency = None if agency_raw is None else _text(agency_raw, "identifying_agency")
    if agency is not None and identified_at is None:
        raise ValueError("identifying_agency given but identified_at is null")
    age_band = obj.get("age_band") or "unknown"
    if age_band not in AGE_BANDS:
        raise ValueError(f"age_band must be one of {', '.join(AGE_BANDS)}")
    gender = obj.get("gender") or "unknown"
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {', '.join(GENDERS)}")
    region = obj.get("region") or "unknown"
    if region != "unknown" and not (isinstance(region, str) and _REGION.match(region)):
        raise ValueError("region must be an ISO 3166-1 alpha-2 code (e.g. DE) or unknown")
    series = obj.get("series") or []
    if not isinstance(series, list):
        raise ValueError("series must be a list of strings")
    hashes = obj.get("hashes") or []
    if not isinstance(hashes, list) or not all(isinstance(h, dict) for h in hashes):
        raise ValueError('hashes must be a list of {"signal", "value"} objects')
    same_as = obj.get("same_as") or []
    if not isinstance(same_as, list) or not all(isinstance(s, dict) for s in same_as):
        raise ValueError('same_as must be a list of {"database", "victim_id"} objects')
    sightings = obj.get("sightings") or []
    if not isinstance(sightings, list):
        raise ValueError("sightings must be a list of times")
    record = Record(
        database=database,
        victim_id=victim_id,
        first_seen=first_seen,
        identified_at=identified_at,
        identifying_agency=agency,
        age_band=age_band,
        gender=gender,
        region=region,
        series=tuple(dict.fromkeys(_text(s, "series") for s in series)),
        hashes=tuple(
            dict.fromkeys(_canonical_hash(h.get("signal"), h.get("value")) for h in hashes)
        ),
        same_as=tuple(
            dict.fromkeys(
                (
                    _text(s.get("database"), "same_as.database", 64),
                    _text(s.get("victim_id"), "same_as.victim_id"),
                )
                for s in same_as
            )
        ),
    )
    return record, sightings


def _plain(value: Any, limit: int) -> bool:
    """Whether `_text` would return the value itself (the fast path's test)."""
    return (
        type(value) is str
        and 0 < len(value) <= limit
        and not value[0].isspace()
        and not value[-1].isspace()
        and "\x00" not in value
    )


#: attribute values that passed validation once (there are a handful of each)
_KNOWN: dict[str, set[Any]] = {
    "database": set(),
    "identifying_agency": {None},
    "age_band": set(AGE_BANDS) | {None},
    "gender": set(GENDERS) | {None},
    "region": {"unknown", None},
}


def _utc_z(value: Any) -> dt.datetime | None:
    """A `YYYY-MM-DDTHH:MM:SSZ` time (the interchange's own form), else None."""
    if type(value) is str and len(value) == 20 and value[19] == "Z":
        try:
            return _fromiso(value)
        except ValueError:
            return None
    return None


class _Hash(msgspec.Struct, forbid_unknown_fields=True):
    signal: str
    value: str


class _Link(msgspec.Struct, forbid_unknown_fields=True):
    database: str
    victim_id: str


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    """A line's typed shape for the fast path (msgspec checks types while decoding).
    Anything it refuses (bad JSON, an unknown field, a wrong type) is decoded again by
    `json` and goes the careful way, which words the error: one set of messages."""

    database: str
    victim_id: str
    first_seen: str
    series: list[str] | None = None
    identified_at: str | None = None
    identifying_agency: str | None = None
    age_band: str | None = None
    gender: str | None = None
    region: str | None = None
    hashes: list[_Hash] | None = None
    same_as: list[_Link] | None = None
    sightings: list[str] | None = None


_decode_line = msgspec.json.Decoder(_Line).decode


def _parse_fast(line: _Line) -> tuple[Row, list[Any]] | None:
    """`_parse` for the plain case (canonical strings and hashes, `Z` times, values seen
    before), in a fraction of its time; None sends the line the careful way, which
    accepts what it accepts and words the errors."""
    database, victim_id = line.database, line.victim_id
    known = _KNOWN
    if database not in known["database"]:
        if not _plain(database, 64):
            return None
        known["database"].add(database)
    if not _plain(victim_id, 200):
        return None
    first_seen = _utc_z(line.first_seen)
    if first_seen is None:
        return None
    identified_raw = line.identified_at
    identified_at = None
    if identified_raw is not None:
        identified_at = _utc_z(identified_raw)
        if identified_at is None:
            return None
    agency = line.identifying_agency
    if agency not in known["identifying_agency"]:
        if not _plain(agency, 200):
            return None
        known["identifying_agency"].add(agency)
    if agency is not None and identified_at is None:
        return None
    age_band, gender, region = line.age_band, line.gender, line.region
    if age_band not in known["age_band"] or gender not in known["gender"]:
        return None
    if region not in known["region"]:
        if not _REGION.match(region):  # type: ignore[arg-type]  # None is known
            return None
        known["region"].add(region)
    series = line.series or []
    for key in series:
        if not _plain(key, 200):
            return None
    signals = _signals()
    canonical = []
    for h in line.hashes or ():
        name, value = h.signal, h.value
        sig = signals.get(name)
        if sig is None:
            return None
        try:
            if sig.normalize(value) != value:
                return None
        except ValueError:
            return None
        canonical.append((sig.name, value))
    links = []
    for link in line.same_as or ():
        if not (_plain(link.database, 64) and _plain(link.victim_id, 200)):
            return None
        links.append((link.database, link.victim_id))
    record = Row(
        database,
        victim_id,
        first_seen,
        identified_at,
        agency,
        age_band or "unknown",
        gender or "unknown",
        region or "unknown",
        tuple(series) if len(series) < 2 else tuple(dict.fromkeys(series)),
        tuple(canonical) if len(canonical) < 2 else tuple(dict.fromkeys(canonical)),
        tuple(links) if len(links) < 2 else tuple(dict.fromkeys(links)),
    )
    return record, line.sightings or []


@dataclass(frozen=True)
class LineError:
    """Why one line was rejected."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


def parse_lines(lines: Iterable[str], source: str) -> Iterator[Record | LineError]:
    """Each non-blank line as a `Record` or a `LineError` (duplicates are errors too)."""
    yield from _lines(lines, source, parse_record)


@dataclass
class Batch:
    """Up to `size` good records of one file for bulk import, their sightings as one
    array (UTC seconds, record by record in the file's order), and the bad lines."""

    records: list[Row]
    counts: np.ndarray
    times: np.ndarray
    errors: list[LineError]


def _one_time(value: Any) -> int:
    """One sighting as UTC seconds, by the same rules as `_time` (the slow path)."""
    if isinstance(value, str):
        try:
            parsed = _fromiso(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return int(parsed.timestamp())
    return int(_time(value, "sightings").timestamp())


_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPARATORS = {4: b"-", 7: b"-", 10: b"T", 13: b":", 16: b":", 19: b"Z"}
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def fast_times(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """`YYYY-MM-DDTHH:MM:SSZ` strings (the interchange's own form) as UTC seconds, all
    at once; the second array marks values of any other form (or invalid), which the
    caller parses one by one with `_one_time`."""
    n = len(values)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out, np.zeros(0, dtype=bool)
    plain = None
    try:
        raw = np.array(values, dtype="S21")
    except (UnicodeEncodeError, ValueError, TypeError):
        raw = None
    if raw is None or raw.shape != (n,):  # not all ASCII strings: those go the slow way
        plain = np.fromiter(
            (type(v) is str and len(v) == 20 and v.isascii() for v in values), bool, count=n
        )
        raw = np.array(
            [v if p else "" for v, p in zip(values, plain.tolist(), strict=True)], dtype="S21"
        )
    b = raw.view(np.uint8).reshape(n, 21)
    ok = b[:, 20] == 0
    if plain is not None:
        ok &= plain
    for at, char in _SEPARATORS.items():
        ok &= b[:, at] == char[0]
    d = b[:, _DIGITS].astype(np.int64) - 48
    ok &= ((d >= 0) & (d <= 9)).all(axis=1)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    hour, minute, second = (d[:, 8 + 2 * k] * 10 + d[:, 9 + 2 * k] for k in range(3))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    mdays = _MONTH_DAYS[np.clip(month, 0, 12)] + ((month == 2) & leap)
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= mdays)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    # days from the civil date (proleptic Gregorian), as in datetime
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    out[:] = days * 86400 + hour * 3600 + minute * 60 + second
    return out, ~ok


def parse_batches(lines: Iterable[str], source: str, size: int = 20_000) -> Iterator[Batch]:
    """`parse_lines` for bulk import, `size` lines at a time: the same validation and
    the same errors, with the sightings checked and converted as one array per batch
    (ten million of them in a big import) and no datetime per sighting."""
    seen: set[tuple[str, str]] = set()
    loads, decode = json.loads, _decode_line
    batch: list[tuple[int, Row, list[Any]]] = []
    errors: list[LineError] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            try:
                item = _parse_fast(decode(line))
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeEncodeError):
                item = None
            if item is None:
                parsed, sightings = _parse(loads(line))
                item = (Row.of(parsed), sightings)
            record, sightings = item
        except (ValueError, RecursionError) as exc:
            errors.append(LineError(source, number, str(exc) or type(exc).__name__))
        else:
            batch.append((number, record, sightings))
        if len(batch) >= size:
            yield _finish(batch, errors, source, seen)
            batch, errors = [], []
    if batch or errors:
        yield _finish(batch, errors, source, seen)


def _finish(
    batch: list[tuple[int, Row, list[Any]]],
    errors: list[LineError],
    source: str,
    seen: set[tuple[str, str]],
) -> Batch:
    counts = np.fromiter((len(s) for _, _, s in batch), dtype=np.int64, count=len(batch))
    values = [t for _, _, s in batch for t in s]
    times, slow = fast_times(values)
    bad: dict[int, str] = {}
    if slow.any():
        owner = np.repeat(np.arange(len(batch)), counts)
        for i in np.flatnonzero(slow).tolist():
            k = int(owner[i])
            if k in bad:
                continue
            try:
                times[i] = _one_time(values[i])
            except ValueError as exc:
                bad[k] = str(exc)
    keep = np.ones(len(batch), dtype=bool)
    records = []
    for k, (number, record, _) in enumerate(batch):
        if k in bad:
            errors.append(LineError(source, number, bad[k]))
            keep[k] = False
            continue
        key = (record.database, record.victim_id)
        if key in seen:
            errors.append(
                LineError(source, number, f"duplicate victim {record.database}/{record.victim_id}")
            )
            keep[k] = False
        else:
            seen.add(key)
            records.append(record)
    if not keep.all():
        times = times[np.repeat(keep, counts)]
        counts = counts[keep]
    errors.sort(key=lambda e: e.line)
    return Batch(records, counts, times, errors)


def _lines(lines: Iterable[str], source: str, parse: Any) -> Iterator[Any]:
    seen: set[tuple[str, str]] = set()
    loads = json.loads
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = parse(loads(line))
        except (ValueError, RecursionError) as exc:
            yield LineError(source, number, str(exc) or type(exc).__name__)
            continue
        record = item[0] if isinstance(item, tuple) else item
        if record.key in seen:
            yield LineError(
                source, number, f"duplicate victim {record.database}/{record.victim_id}"
            )
            continue
        seen.add(record.key)
        yield item
