"""The `victims.jsonl` interchange record (CONVENTIONS.md): parsing and writing.

A bad line is rejected with its line number and the field at fault; parsing never
half-applies, the registry imports only when every line of every file is good.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
import numpy as np

from ridgeline.errors import BadInput
from ridgeline.gcpause import gc_paused
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


def parse_time(value: Any, name: str) -> dt.datetime:
    """A victims-file time in UTC: ISO 8601 with any offset, naive as UTC, a date alone
    as its midnight; the one reading for records, sightings and the indicator's dates."""
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
    return replace(record, sightings=tuple(parse_time(t, "sightings") for t in sightings))


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
    return int(parse_time(value, "sightings").timestamp())


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
    first_seen = parse_time(obj["first_seen"], "first_seen")
    identified_raw = obj.get("identified_at")
    identified_at = None if identified_raw is None else parse_time(identified_raw, "identified_at")
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


class _Hash(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    signal: str
    value: str


class _Link(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    database: str
    victim_id: str


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
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
    """Up to `size` good records of one file for bulk import, column by column (UTC
    microseconds for the two times, NONE_US where not identified), their sightings as
    one array (UTC seconds, record by record in the file's order), and the bad lines."""

    database: list[str]
    victim_id: list[str]
    first_us: np.ndarray
    ident_us: np.ndarray
    agency: list[str | None]
    age_band: list[str]
    gender: list[str]
    region: list[str]
    series: list[tuple[str, ...]]
    hashes: list[tuple[tuple[str, str], ...]]
    same_as: list[tuple[tuple[str, str], ...]]
    counts: np.ndarray
    times: np.ndarray
    errors: list[LineError]

    def __len__(self) -> int:
        return len(self.victim_id)

    def rows(self) -> list[Row]:
        """The records as `Row`s (for tests and callers that want one object each)."""

        def when(us: int) -> dt.datetime | None:
            return None if us == NONE_US else _EPOCH + dt.timedelta(microseconds=us)

        return [
            Row(d, v, when(f), when(i), a, ab, g, r, s, h, k)  # type: ignore[arg-type]
            for d, v, f, i, a, ab, g, r, s, h, k in zip(
                self.database,
                self.victim_id,
                self.first_us.tolist(),
                self.ident_us.tolist(),
                self.agency,
                self.age_band,
                self.gender,
                self.region,
                self.series,
                self.hashes,
                self.same_as,
                strict=True,
            )
        ]


#: UTC microseconds standing for "not identified" in `Batch.ident_us`
NONE_US = np.iinfo(np.int64).max
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def _one_time(value: Any) -> int:
    """One sighting as UTC seconds, by the same rules as `parse_time` (the slow path)."""
    if isinstance(value, str):
        try:
            parsed = _fromiso(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return int(parsed.timestamp())
    return int(parse_time(value, "sightings").timestamp())


_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPARATOR_AT = np.array([4, 7, 10, 13, 16, 19])
_SEPARATORS = np.frombuffer(b"--T::Z", dtype=np.uint8)
#: days of each month, indexed by `month & 15` (13-15 are refused by the month test)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0, 0, 0], np.int32)


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
    ok = (b[:, 20] == 0) & (b[:, _SEPARATOR_AT] == _SEPARATORS).all(axis=1)
    if plain is not None:
        ok &= plain
    # digits as bytes minus '0', wrapping below it, so one test refuses both sides; the
    # fields in int32 (half the memory traffic of int64), the seconds in int64
    d = b[:, _DIGITS] - np.uint8(48)
    ok &= (d <= 9).all(axis=1)
    d = d.astype(np.int32)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    hour, minute, second = (d[:, 8 + 2 * k] * 10 + d[:, 9 + 2 * k] for k in range(3))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    mdays = _MONTH_DAYS[month & 15] + ((month == 2) & leap)
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= mdays)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    # days from the civil date (proleptic Gregorian), as in datetime
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = (era * 146097 + doe - 719468).astype(np.int64)
    out[:] = days * 86400 + (hour * 3600 + minute * 60 + second)
    return out, ~ok


def lower_hex(text: str) -> bytes | None:
    """The bytes that a text of lowercase hex digits spells, or None if it holds anything
    else (uppercase, whitespace, an odd count, any other character): two passes in C
    over a batch's joined digests, several times faster than a regular expression."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    # fromhex also takes uppercase and spaces between bytes: spelled back, those differ
    return raw if raw.hex() == text else None


def _all_plain(values: list[str], limit: int) -> bool:
    """`_plain` for every value of a batch (all `str`, as msgspec decoded them), in a
    few passes in C instead of a call per value."""
    if not values:
        return True
    lengths = list(map(len, values))
    if min(lengths) == 0 or max(lengths) > limit:
        return False
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:  # a value holds a NUL
        return False
    # no whitespace at either end: strip gives every value back unchanged
    return list(map(str.strip, values)) == values


def _known_or(values: list[Any], known: set[Any], check: Any) -> bool:
    """Whether every distinct value is known or passes `check` (then it is known)."""
    for value in set(values) - known:
        if not check(value):
            return False
        known.add(value)
    return True


def _canonical_hashes(names: list[str], values: list[str]) -> bool:
    """Whether every (signal, value) names a known signal and is already canonical (what
    `_parse_fast` checks hash by hash); hex digests are checked as one joined string."""
    from ridgeline.signals.crypto import HexDigestSignal

    signals = _signals()
    by_signal: dict[str, list[str]] = {}
    distinct = set(names)
    if len(distinct) == 1:  # the usual case: one signal throughout
        by_signal[names[0]] = values
    else:
        for name, value in zip(names, values, strict=True):
            by_signal.setdefault(name, []).append(value)
    for name, group in by_signal.items():
        sig = signals.get(name)
        if sig is None or sig.name != name:
            return False
        if type(sig) is HexDigestSignal:
            # canonical = matches [0-9a-f]{n}: normalize would return it unchanged
            if set(map(len, group)) != {sig.hex_length}:
                return False
            if lower_hex("".join(group)) is None:
                return False
            continue
        for value in group:
            try:
                if sig.normalize(value) != value:
                    return False
            except ValueError:
                return False
    return True


def _fast_batch(lines: list[_Line]) -> tuple[Batch, list[list[Any]]] | None:
    """`_parse_fast` for a whole batch at once: each check runs once over a column (a
    set of the distinct values, or one pass over the joined text) instead of once per
    line. None if any line is not the plain case; the caller then parses the batch line
    by line, so results and errors are exactly those of `_parse_fast` and `_parse`."""
    known = _KNOWN
    database = [x.database for x in lines]
    if not _known_or(database, known["database"], lambda v: _plain(v, 64)):
        return None
    victim_id = [x.victim_id for x in lines]
    if not _all_plain(victim_id, 200):
        return None
    first, slow = fast_times([x.first_seen for x in lines])
    if slow.any():
        return None
    ident_raw = [x.identified_at for x in lines]
    has_ident = [v is not None for v in ident_raw]
    ident, slow = fast_times([v for v in ident_raw if v is not None])
    if slow.any():
        return None
    agency = [x.identifying_agency for x in lines]
    if not _known_or(agency, known["identifying_agency"], lambda v: _plain(v, 200)):
        return None
    if any(a is not None and not h for a, h in zip(agency, has_ident, strict=True)):
        return None
    age_band = [x.age_band for x in lines]
    gender = [x.gender for x in lines]
    region = [x.region for x in lines]
    if not (set(age_band) <= known["age_band"] and set(gender) <= known["gender"]):
        return None
    if not _known_or(region, known["region"], _REGION.match):
        return None
    series_lists = [x.series or () for x in lines]
    if not _all_plain(list(itertools.chain.from_iterable(series_lists)), 200):
        return None
    hash_lists = [x.hashes or () for x in lines]
    flat = list(itertools.chain.from_iterable(hash_lists))
    names, values = [h.signal for h in flat], [h.value for h in flat]
    if flat and not _canonical_hashes(names, values):
        return None
    link_lists = [x.same_as or () for x in lines]
    links = list(itertools.chain.from_iterable(link_lists))
    link_dbs, link_ids = [k.database for k in links], [k.victim_id for k in links]
    if links and not (_all_plain(link_dbs, 64) and _all_plain(link_ids, 200)):
        return None
    ident_us = np.full(len(lines), NONE_US, dtype=np.int64)
    ident_us[np.array(has_ident, dtype=bool)] = ident * 1_000_000
    batch = Batch(
        database=database,
        victim_id=victim_id,
        first_us=first * 1_000_000,
        ident_us=ident_us,
        agency=agency,
        age_band=[v or "unknown" for v in age_band],
        gender=[v or "unknown" for v in gender],
        region=[v or "unknown" for v in region],
        series=[tuple(s) if len(s) < 2 else tuple(dict.fromkeys(s)) for s in series_lists],
        hashes=_pairs(hash_lists, names, values),
        same_as=_pairs(link_lists, link_dbs, link_ids),
        counts=np.zeros(0, dtype=np.int64),
        times=np.zeros(0, dtype=np.int64),
        errors=[],
    )
    return batch, [x.sightings or [] for x in lines]


def _pairs(
    nested: list[Any], firsts: list[str], seconds: list[str]
) -> list[tuple[tuple[str, str], ...]]:
    """Each line's pairs (given flat, in order, with each line's list for its length)
    as a tuple, repeats dropped (first kept), as `_parse_fast` builds them."""
    if not firsts:
        return [()] * len(nested)
    flat = iter(list(zip(firsts, seconds, strict=True)))
    islice = itertools.islice
    out = [tuple(islice(flat, len(items))) if items else () for items in nested]
    return [p if len(p) < 2 else tuple(dict.fromkeys(p)) for p in out]


def _micros(value: dt.datetime | None) -> int:
    return NONE_US if value is None else (value - _EPOCH) // _US


def _rows_batch(rows: list[Row]) -> Batch:
    """Rows parsed line by line, as a batch's columns."""
    return Batch(
        database=[r.database for r in rows],
        victim_id=[r.victim_id for r in rows],
        first_us=np.array([_micros(r.first_seen) for r in rows], dtype=np.int64),
        ident_us=np.array([_micros(r.identified_at) for r in rows], dtype=np.int64),
        agency=[r.identifying_agency for r in rows],
        age_band=[r.age_band for r in rows],
        gender=[r.gender for r in rows],
        region=[r.region for r in rows],
        series=[r.series for r in rows],
        hashes=[r.hashes for r in rows],
        same_as=[r.same_as for r in rows],
        counts=np.zeros(0, dtype=np.int64),
        times=np.zeros(0, dtype=np.int64),
        errors=[],
    )


def _one_line(line: str, decoded: _Line | None) -> tuple[Row, list[Any]]:
    """One line the careful way round: `_parse_fast`, else `_parse` (which words errors)."""
    item = _parse_fast(decoded) if decoded is not None else None
    if item is None:
        parsed, sightings = _parse(json.loads(line))
        item = (Row.of(parsed), sightings)
    return item


def parse_batches(lines: Iterable[str], source: str, size: int = 20_000) -> Iterator[Batch]:
    """`parse_lines` for bulk import, `size` lines at a time: the same validation and
    the same errors, with each batch checked column by column when every line is the
    plain case (`_fast_batch`), its sightings checked and converted as one array (ten
    million of them in a big import), and no datetime per sighting."""
    seen: set[tuple[str, str]] = set()
    decode = _decode_line
    it = enumerate(lines, 1)
    while True:
        numbers: list[int] = []
        texts: list[str] = []
        decoded: list[_Line | None] = []
        with gc_paused():
            for number, line in it:
                if not line.strip():
                    continue
                try:
                    item: _Line | None = decode(line)
                except (msgspec.ValidationError, msgspec.DecodeError, UnicodeEncodeError):
                    item = None
                numbers.append(number)
                texts.append(line)
                decoded.append(item)
                if len(numbers) >= size:
                    break
            batch = _parse_batch(numbers, texts, decoded, source, seen) if numbers else None
            full = len(numbers) >= size
            del numbers, texts, decoded  # freed while the collector is off: never walked
        if batch is None:
            return
        yield batch
        if not full:
            return


def _parse_batch(
    numbers: list[int],
    texts: list[str],
    decoded: list[_Line | None],
    source: str,
    seen: set[tuple[str, str]],
) -> Batch:
    fast = None
    if all(d is not None for d in decoded):
        fast = _fast_batch(decoded)  # type: ignore[arg-type]  # none is None
    errors: list[LineError] = []
    if fast is not None:
        batch, sightings = fast
        good = numbers
    else:
        rows: list[Row] = []
        sightings, good = [], []
        for number, line, item in zip(numbers, texts, decoded, strict=True):
            try:
                row, times = _one_line(line, item)
            except (ValueError, RecursionError) as exc:
                errors.append(LineError(source, number, str(exc) or type(exc).__name__))
                continue
            rows.append(row)
            sightings.append(times)
            good.append(number)
        batch = _rows_batch(rows)
    return _finish(batch, good, sightings, errors, source, seen)


def _finish(
    batch: Batch,
    numbers: list[int],
    sightings: list[list[Any]],
    errors: list[LineError],
    source: str,
    seen: set[tuple[str, str]],
) -> Batch:
    """Sightings as one array, and the lines dropped for a bad sighting or a duplicate
    victim (in the file's order: the first holder of a key keeps it)."""
    n = len(numbers)
    counts = np.fromiter(map(len, sightings), dtype=np.int64, count=n)
    values = list(itertools.chain.from_iterable(sightings))
    times, slow = fast_times(values)
    bad: dict[int, str] = {}
    if slow.any():
        owner = np.repeat(np.arange(n), counts)
        for i in np.flatnonzero(slow).tolist():
            k = int(owner[i])
            if k in bad:
                continue
            try:
                times[i] = _one_time(values[i])
            except ValueError as exc:
                bad[k] = str(exc)
    keys = list(zip(batch.database, batch.victim_id, strict=True))
    if not bad and len(set(keys)) == n and seen.isdisjoint(keys):
        seen.update(keys)
        batch.counts, batch.times = counts, times
    else:
        keep = np.ones(n, dtype=bool)
        for k, (number, key) in enumerate(zip(numbers, keys, strict=True)):
            if k in bad:
                errors.append(LineError(source, number, bad[k]))
                keep[k] = False
            elif key in seen:
                errors.append(LineError(source, number, f"duplicate victim {key[0]}/{key[1]}"))
                keep[k] = False
            else:
                seen.add(key)
        batch = _take(batch, keep)
        batch.times = times[np.repeat(keep, counts)]
        batch.counts = counts[keep]
    errors.sort(key=lambda e: e.line)
    batch.errors = errors
    return batch


def _take(batch: Batch, keep: np.ndarray) -> Batch:
    at = np.flatnonzero(keep).tolist()

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in at]

    return Batch(
        database=pick(batch.database),
        victim_id=pick(batch.victim_id),
        first_us=batch.first_us[keep],
        ident_us=batch.ident_us[keep],
        agency=pick(batch.agency),
        age_band=pick(batch.age_band),
        gender=pick(batch.gender),
        region=pick(batch.region),
        series=pick(batch.series),
        hashes=pick(batch.hashes),
        same_as=pick(batch.same_as),
        counts=batch.counts,
        times=batch.times,
        errors=batch.errors,
    )


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
