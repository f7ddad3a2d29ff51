"""Project VIC VICS JSON, versions 1.3 and 2.0.

1.3 documents carry `odata.metadata`; 2.0 documents carry `@odata.context`, whose URL
names the category profile (`.../2.0.xml/US/$metadata#Media`) and the kind of export:
`#Media` (a hash set: `value` is media) or `#Cases` (`value` is cases, each with a
`Media` array). Each media item has `MediaID`, `Category` and hashes (`MD5`, `SHA1`,
`PhotoDNA`, optionally `SHA256`), at top level or in `MediaFiles`.

Categories 0-4 map to the `vics-us` scheme; the original value and the profile are
kept, so an export writes back exactly what was read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ridgeline.classifications import NOT_LISTABLE, PROFILE_OF_SCHEME, SCHEMES, VICS_PROFILES
from ridgeline.errors import BadInput
from ridgeline.exchange.jsonutil import TOO_DEEP, JsonStream, load_json, pointer, problem
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult
from ridgeline.timeutil import as_utc, parse_iso

NAME = "vics"
_HASH_KEYS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "photodna": "photodna"}
_PROFILE = re.compile(r"DataModels/2\.0\.xml/([^/$#]+)")
_KNOWN = {
    "mediaid",
    "category",
    "dateupdated",
    "mediafiles",
    "alternativehashes",
    *(_HASH_KEYS),
}
#: `AlternativeHashes` names -> Ridgeline signal (others are kept as read).
_ALTERNATIVE = {"pdq": "pdq", "sha256": "sha256", "md5": "md5", "sha1": "sha1"}
CONTEXT_20 = (
    "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{profile}/$metadata#{kind}"
)
METADATA_13 = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#{kind}"


def parse(data: bytes, what: str = "VICS JSON") -> ParseResult:
    """Read a VICS 1.3 or 2.0 export (`#Media` hash set or `#Cases`)."""
    doc = load_json(data, what)
    if not isinstance(doc, dict):
        raise BadInput(f"{what}: expected a JSON object with 'value', not {type(doc).__name__}")
    result = ParseResult(NAME)
    if "@odata.context" in doc:
        context = str(doc["@odata.context"])
        version = "2.0"
        match = _PROFILE.search(context)
        profile = match.group(1) if match else None
    elif "odata.metadata" in doc:
        context = str(doc["odata.metadata"])
        version, profile = "1.3", None
    else:
        raise BadInput(f"{what}: neither '@odata.context' (VICS 2.0) nor 'odata.metadata' (1.3)")
    value = doc.get("value")
    if not isinstance(value, list):
        raise BadInput(f"{what}: {pointer('value')} must be an array")
    kind = "Cases" if context.endswith("#Cases") else "Media"
    result.meta.update(version=version, profile=profile, kind=kind)
    for i, item in enumerate(value):
        _item(result, item, i, kind, version, profile)
    return result


#: Items of `value` per part of a streamed document.
PART = 10_000


class _Fallback(Exception):
    """The streamed reader cannot take this document's layout; read it whole."""


def parse_stream(
    chunks: Iterable[bytes], what: str = "VICS JSON", *, part: int | None = None
) -> ParseResult:
    """The same reading as `parse`, of a UTF-8 document given as chunks of bytes, a part
    at a time (`ParseResult.parts`): the items of `value` are decoded one by one as
    they arrive, so a file of millions of media takes constant memory (a `#Cases`
    item, one case with its media, is decoded whole). It reads the layout the public
    writers use, the context before `value`; a document with `value` first is read
    whole by `parse` instead (from the chunks, which are then all in memory).
    """
    return ParseResult(NAME, parts=_parts(iter(chunks), what, part or PART))


def _parts(chunks: Iterator[bytes], what: str, size: int) -> Iterator[ParseResult]:
    reader = JsonStream(chunks, what)
    try:
        yield from _stream_doc(reader, what, size)
    except _Fallback:
        yield parse(reader.everything(), what)


def _stream_doc(reader: JsonStream, what: str, size: int) -> Iterator[ParseResult]:
    if reader.peek() != "{":
        raise _Fallback  # not an object: `parse` says what is wrong
    reader.take("{")
    head: dict[str, Any] = {}
    part = ParseResult(NAME)
    while reader.peek() != "}":
        if head:
            reader.take(",")
        at = reader.pos
        key = reader.value()
        if not isinstance(key, str):
            raise reader.error(at, "Expecting property name enclosed in double quotes")
        reader.take(":")
        if key != "value":
            head[key] = reader.value()
            continue
        if "@odata.context" in head:
            context = str(head["@odata.context"])
            version = "2.0"
            match = _PROFILE.search(context)
            profile = match.group(1) if match else None
        elif "odata.metadata" in head:
            context, version, profile = str(head["odata.metadata"]), "1.3", None
        else:
            raise _Fallback  # the context may follow `value`: read it whole
        if reader.peek() != "[":
            raise _Fallback
        reader.release()
        kind = "Cases" if context.endswith("#Cases") else "Media"
        meta = {"version": version, "profile": profile, "kind": kind}
        part.meta.update(meta)
        reader.take("[")
        i = 0
        while reader.peek() != "]":
            items, clean = reader.items(first=not i)
            if not items:  # not a plain item, or not in the buffer yet
                if i:
                    reader.take(",")
                items = [reader.value()]
            for item in items:
                _item(part, item, i, kind, version, profile, clean)
                i += 1
            if len(part.records) + len(part.errors) >= size:
                yield part
                part = ParseResult(NAME, meta=dict(meta))
        reader.take("]")
        head["value"] = True
    reader.take("}")
    reader.end()
    if "value" not in head:
        raise _Fallback
    yield part


def _item(
    result: ParseResult,
    item: Any,
    i: int,
    kind: str,
    version: str,
    profile: str | None,
    clean: bool = False,
) -> None:
    """One item of `value`: a media object, or a case with its `Media`."""
    if item == TOO_DEEP:
        result.reject(pointer("value", i), TOO_DEEP[len("\x00ridgeline: ") :])
        return
    if not isinstance(item, dict):
        result.reject(pointer("value", i), "expected an object")
        return
    if kind == "Cases" or isinstance(item.get("Media"), list):
        media = item.get("Media")
        if not isinstance(media, list):
            result.reject(pointer("value", i, "Media"), "a case needs a 'Media' array")
            return
        case_id = item.get("CaseID")
        for j, m in enumerate(media):
            _one(result, m, f"/value/{i}/Media/{j}", version, profile, case_id, clean)
    else:
        _one(result, item, f"/value/{i}", version, profile, None, clean)


def _one(
    result: ParseResult,
    media: Any,
    path: str,
    version: str,
    profile: str | None,
    case_id: Any,
    clean: bool = False,
) -> None:
    """One media object; `clean` says no marker string can be in it (`JsonStream.items`)."""
    try:
        if not isinstance(media, dict):
            raise BadInput("expected a media object")
        bad = None if clean else problem(media)
        if bad is not None:
            raise BadInput(bad)
        result.add(_media(media, path, version, profile, case_id))
    except BadInput as exc:
        result.reject(path, str(exc))


def _media(
    media: Mapping[str, Any], path: str, version: str, profile: str | None, case_id: Any
) -> ExchangeRecord:
    lower = {str(k).lower(): v for k, v in media.items()}
    signals = {}
    for key, sig in _HASH_KEYS.items():
        value = lower.get(key)
        if value is not None and value != "":
            signals[sig] = str(value)
    files = lower.get("mediafiles")
    if not signals and isinstance(files, list) and files and isinstance(files[0], dict):
        first = {str(k).lower(): v for k, v in files[0].items()}
        signals = {
            sig: str(first[key])
            for key, sig in _HASH_KEYS.items()
            if first.get(key) not in (None, "")
        }
    alternative = lower.get("alternativehashes")
    other = _alternative(alternative, signals) if alternative is not None else []
    if not signals:
        raise BadInput("media has no MD5, SHA1, SHA256, PhotoDNA or PDQ")
    category = lower.get("category")
    classes: list[dict[str, str]] = []
    listable: bool | None = None
    if category is not None:
        if isinstance(category, bool) or not isinstance(category, int | str):
            raise BadInput(f"Category must be a number, not {json.dumps(category)}")
        code = str(category).strip()
        scheme = scheme_of(profile)
        if scheme is None:  # a profile we do not know: keep the code, trust no label
            listable = code not in NOT_LISTABLE["vics-us"]
        elif code in SCHEMES[scheme]:
            classes.append({"scheme": scheme, "label": code})
    timestamp: dt.datetime | None = None
    date = lower.get("dateupdated")
    if date:
        timestamp = _DATES.get(date) if isinstance(date, str) else None
        if timestamp is None:
            try:
                timestamp = parse_iso(str(date))
            except ValueError:
                raise BadInput(f"DateUpdated {date!r} is not ISO 8601") from None
            if isinstance(date, str):
                if len(_DATES) >= 4096:  # files repeat a few dates; keep memory flat
                    _DATES.clear()
                _DATES[date] = timestamp
    if len(lower) == len(media) and lower.keys() <= _KNOWN:
        fields = {}  # the common case: no field beyond the known ones
    else:
        fields = {
            k: v
            for k, v in media.items()
            if str(k).lower() not in _KNOWN
            and (v is None or isinstance(v, str | int | float | bool))
        }
    extra: dict[str, Any] = {"version": version, "profile": profile, "fields": fields}
    if other:
        extra["alternative_hashes"] = other
    if category is not None:
        extra["category"] = category
    if case_id is not None:
        extra["case_id"] = case_id
    media_id = lower.get("mediaid")
    series = lower.get("series")
    victim = lower.get("victimidentified")
    return ExchangeRecord(
        position=path,
        signals=signals,
        classifications=classes,
        source="vics",
        origin_entry_id=None if media_id is None else str(media_id),
        timestamp=timestamp,
        extra=extra,
        listable=listable,
        series=str(series).strip() or None if isinstance(series, str | int) else None,
        victim_identified=None if victim is None else _flag(victim),
        case_numbers=[] if case_id is None else [str(case_id)],
    )


#: `DateUpdated` texts already parsed (a file repeats a few; datetimes are immutable).
_DATES: dict[str, dt.datetime] = {}


def _flag(value: Any) -> bool | None:
    """A VICS boolean: JSON true/false or the strings "true"/"false" (1.3 writers)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _alternative(value: Any, signals: dict[str, str]) -> list[dict[str, Any]]:
    """Take `AlternativeHashes` items (`HashName`, `HashValue`) into `signals`; return the
    ones Ridgeline has no signal for, to write back as read."""
    other: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        low = {str(k).lower(): v for k, v in item.items()}
        name = low.get("hashname", low.get("name", low.get("type")))
        text = low.get("hashvalue", low.get("value"))
        signal = _ALTERNATIVE.get(str(name).strip().lower()) if name is not None else None
        if signal is not None and isinstance(text, str) and text.strip():
            signals.setdefault(signal, text.strip())
        else:
            other.append(item)
    return other


def scheme_of(profile: str | None) -> str | None:
    """The classification scheme of a VICS category profile (1.3 files: US)."""
    if profile is None:
        return "vics-us"
    return VICS_PROFILES.get(profile.strip().upper())


def _profile_of(items: Sequence[ExportItem]) -> str:
    """The profile most entries were read with, or that their labels' scheme names."""
    counts: dict[str, int] = {}
    for item in items:
        read = item.extra.get("profile")
        if isinstance(read, str) and read:
            name = read
        else:
            schemes = [
                c["scheme"] for c in item.classifications if c["scheme"] in PROFILE_OF_SCHEME
            ]
            if not schemes:
                continue
            name = PROFILE_OF_SCHEME[schemes[0]]
        counts[name] = counts.get(name, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else "US"


def _media_json(item: ExportItem, scheme: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    origin = item.origin_entry_id
    # MediaID is an integer in VICS; an id that is not one stays ours (the entry id).
    out["MediaID"] = int(origin) if origin is not None and origin.isdigit() else item.entry_id
    read_scheme = scheme_of(item.extra.get("profile")) if "version" in item.extra else None
    labels = [c["label"] for c in item.classifications if c["scheme"] == scheme]
    if "category" in item.extra and (read_scheme == scheme or not item.classifications):
        out["Category"] = item.extra["category"]
    elif labels:
        out["Category"] = int(labels[0])
    for signal, key in (("md5", "MD5"), ("sha1", "SHA1"), ("sha256", "SHA256")):
        if signal in item.signals:
            out[key] = item.signals[signal].upper()
    if "photodna" in item.signals:
        out["PhotoDNA"] = item.signals["photodna"]
    alternative = (
        [{"HashName": "PDQ", "HashValue": item.signals["pdq"]}] if "pdq" in item.signals else []
    )
    alternative += list(item.extra.get("alternative_hashes") or [])
    if alternative:
        out["AlternativeHashes"] = alternative
    out["DateUpdated"] = as_utc(item.record_time).isoformat().replace("+00:00", "Z")
    out.update(item.extra.get("fields") or {})
    return out


def export(
    items: Sequence[ExportItem],
    *,
    version: str = "2.0",
    profile: str | None = None,
    cases: bool = False,
) -> bytes:
    """A VICS document: a `#Media` hash set, or `#Cases` grouping media by their case.

    The category profile is `profile`, else the one the entries were read with (or
    whose scheme their labels are in), else US; a category is written only when it
    belongs to that profile's scheme, so a UK code never goes out as a US one.
    """
    if profile is None:
        profile = _profile_of(items)
    scheme = scheme_of(profile)
    if version not in ("1.3", "2.0"):
        raise BadInput(f"VICS version must be 1.3 or 2.0, not {version!r}")
    live = [i for i in items if not i.deleted]  # VICS has no deletions
    cases = cases or version == "1.3"  # the public 1.x writers write #Cases
    kind = "Cases" if cases else "Media"
    if cases:
        by_case: dict[str, list[dict[str, Any]]] = {}
        for item in live:
            by_case.setdefault(str(item.extra.get("case_id", "")), []).append(
                _media_json(item, scheme)
            )
        value: list[Any] = [
            ({"CaseID": int(c) if c.isdigit() else c} if c else {}) | {"Media": media}
            for c, media in by_case.items()
        ]
    else:
        value = [_media_json(i, scheme) for i in live]
    if version == "1.3":
        doc: dict[str, Any] = {"odata.metadata": METADATA_13.format(kind=kind), "value": value}
    else:
        context = CONTEXT_20.format(profile=profile, kind=kind)
        doc = {"@odata.context": context, "value": value}
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()
