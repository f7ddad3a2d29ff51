"""NCMEC hash-sharing XML: `queryResult` with `images`/`videos` of entries and deletions.

Each entry carries an id, the sharing member (`<member id="..">name</member>`), a
timestamp, an optional industry classification (A1, A2, B1, B2) and fingerprints:
`md5`, `sha1`, `pdna` (PhotoDNA, base64) and `pdq`. Deleted entries
(`deletedImage`/`deletedVideo`) become tombstones. Unlike HMA, image md5/sha1 are kept.
"""

from __future__ import annotations

import datetime as dt
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from ridgeline.classifications import SCHEMES
from ridgeline.errors import BadInput
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult
from ridgeline.exchange.safexml import FORBIDDEN, child_text, oversized, parse_xml
from ridgeline.timeutil import as_utc, parse_iso

NAME = "ncmec-xml"
#: The namespace of the published hash-sharing responses.
NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
#: NCMEC fingerprint tag -> Ridgeline signal name.
FINGERPRINTS = {"md5": "md5", "sha1": "sha1", "pdna": "photodna", "pdq": "pdq", "sha256": "sha256"}
_TAG_FOR_SIGNAL = {v: k for k, v in FINGERPRINTS.items()}
_GROUPS = {"images": "image", "videos": "video"}


def _timestamp(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        raise BadInput(f"timestamp {text!r} is not ISO 8601") from None


def parse(data: bytes, what: str = "NCMEC XML") -> ParseResult:
    """Read a hash-sharing `queryResult` document (one page of `/entries`)."""
    root = parse_xml(data, what)
    result = ParseResult(NAME)
    if root.tag != "queryResult":
        raise BadInput(f"{what}: root element is <{root.tag}>, expected <queryResult>")
    counters: dict[str, int] = {}
    for group in root:
        counters[group.tag] = counters.get(group.tag, 0) + 1
        group_path = f"/queryResult/{group.tag}[{counters[group.tag]}]"
        if group.tag not in _GROUPS and group.tag not in ("deletedImages", "deletedVideos"):
            continue  # paging and other bookkeeping elements
        seen: dict[str, int] = {}
        for element in group:
            seen[element.tag] = seen.get(element.tag, 0) + 1
            path = f"{group_path}/{element.tag}[{seen[element.tag]}]"
            try:
                problem = oversized(element)
                if problem is not None:
                    raise BadInput(problem)
                result.add(_entry(element, path))
            except BadInput as exc:
                result.reject(path, str(exc))
    next_page = root.find("paging/next")
    if next_page is not None and next_page.text:
        result.meta["next"] = next_page.text.strip()
    return result


#: Records per part of a streamed document.
PART = 10_000
_ENTRY_GROUPS = frozenset((*_GROUPS, "deletedImages", "deletedVideos"))


def _local(tag: str) -> str:
    return tag.split("}", 1)[1] if "}" in tag else tag


def parse_stream(chunks: Iterable[bytes], what: str = "NCMEC XML") -> ParseResult:
    """The same reading as `parse`, of a document given as chunks of bytes, a part at a
    time (`ParseResult.parts`): each entry is read as its element ends and then dropped,
    so a file of millions of entries takes constant memory. The document must be in
    an ASCII-compatible encoding (UTF-8, with or without BOM); the caller reads any
    other (UTF-16) whole with `parse`. The same refusals: DTDs and entities (found in
    the bytes before the parser sees them), malformed XML with its line and column.
    """
    return ParseResult(NAME, parts=_parts(chunks, what))


def _parts(chunks: Iterable[bytes], what: str) -> Iterator[ParseResult]:
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    part = ParseResult(NAME)
    depth = 0
    root: ET.Element | None = None
    group: ET.Element | None = None
    group_path = ""
    counters: dict[str, int] = {}
    seen: dict[str, int] = {}
    tail = b""
    lines = 0  # newlines before `tail`
    for chunk in itertools.chain(chunks, [None]):
        if chunk is None:  # the end: what the parser still holds comes out below
            try:
                parser.close()
            except ET.ParseError as exc:
                raise _malformed(what, exc) from None
            chunk = b""
        window = tail + chunk
        match = FORBIDDEN.search(window)
        if match:
            line = lines + window.count(b"\n", 0, match.start()) + 1
            raise BadInput(
                f"{what}: line {line}: XML with a DTD or entity declarations is refused "
                "(hash files never need them, and they enable entity-expansion attacks)"
            )
        keep = window[-16:]
        lines += window.count(b"\n") - keep.count(b"\n")
        tail = keep
        if chunk:
            parser.feed(chunk)  # a parse error comes out of read_events
        try:
            events = list(cast(Iterator[tuple[str, ET.Element]], parser.read_events()))
        except ET.ParseError as exc:
            raise _malformed(what, exc) from None
        for event, element in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    root = element
                    if _local(element.tag) != "queryResult":
                        raise BadInput(
                            f"{what}: root element is <{_local(element.tag)}>, "
                            "expected <queryResult>"
                        )
                elif depth == 2:
                    tag = _local(element.tag)
                    counters[tag] = counters.get(tag, 0) + 1
                    group = element if tag in _ENTRY_GROUPS else None
                    group_path = f"/queryResult/{tag}[{counters[tag]}]"
                    seen = {}
                continue
            depth -= 1
            if depth == 2 and group is not None:
                for item in element.iter():
                    if "}" in item.tag:
                        item.tag = item.tag.split("}", 1)[1]
                tag = element.tag
                seen[tag] = seen.get(tag, 0) + 1
                path = f"{group_path}/{tag}[{seen[tag]}]"
                try:
                    problem = oversized(element)
                    if problem is not None:
                        raise BadInput(problem)
                    part.add(_entry(element, path))
                except BadInput as exc:
                    part.reject(path, str(exc))
                del group[:]  # read: let it go
                if len(part.records) + len(part.errors) >= PART:
                    yield part
                    part = ParseResult(NAME)
            elif depth == 1 and root is not None:
                if _local(element.tag) == "paging":
                    for item in element.iter():
                        if "}" in item.tag:
                            item.tag = item.tag.split("}", 1)[1]
                    following = element.find("next")
                    if following is not None and following.text:
                        part.meta["next"] = following.text.strip()
                group = None
                del root[:]
    yield part


def _malformed(what: str, exc: ET.ParseError) -> BadInput:
    line, column = exc.position
    return BadInput(f"{what}: malformed XML at line {line}, column {column + 1}")


def _entry(element: ET.Element, path: str) -> ExchangeRecord:
    tag = element.tag
    deleted = tag.lower().startswith("deleted")
    kind = tag[len("deleted") :].lower() if deleted else tag.lower()
    if kind not in ("image", "video"):
        raise BadInput(f"unexpected element <{tag}>; expected image, video or a deleted one")
    entry_id = child_text(element, "id")
    if entry_id is None:
        raise BadInput("entry has no <id>")
    member = element.find("member")
    member_id = member.get("id") if member is not None else None
    member_name = (member.text or "").strip() or None if member is not None else None
    signals: dict[str, str] = {}
    fingerprints = element.find("fingerprints")
    other: dict[str, str] = {}
    for fp in fingerprints if fingerprints is not None else []:
        name = FINGERPRINTS.get(fp.tag.lower())
        if not fp.text or not fp.text.strip():
            continue
        if name is None:  # tmk-pdqf, videntifier, netclean...: kept, written back
            other[fp.tag] = fp.text.strip()
        else:
            signals[name] = fp.text.strip()
    if not deleted and not signals:
        known = ", ".join(FINGERPRINTS)
        raise BadInput(f"entry {entry_id!r} has no fingerprint Ridgeline reads ({known})")
    raw_class = child_text(element, "classification")
    classes: list[dict[str, str]] = []
    extra: dict[str, Any] = {"entry_type": kind}
    if other:
        extra["other_fingerprints"] = other
    if member_name:
        extra["member_name"] = member_name
    if raw_class is not None:
        label = raw_class.upper()
        if label in SCHEMES["industry"]:
            classes.append({"scheme": "industry", "label": label})
        else:
            extra["classification"] = raw_class  # kept, but not a label we know
    return ExchangeRecord(
        position=path,
        signals=signals,
        classifications=classes,
        source="ncmec",
        origin_member=member_id,
        origin_member_name=member_name,
        origin_entry_id=entry_id,
        deleted=deleted,
        timestamp=_timestamp(child_text(element, "timestamp")),
        extra=extra,
    )


def _format_time(value: dt.datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def export(
    items: Sequence[ExportItem], *, member_id: str | None = None, member_name: str | None = None
) -> bytes:
    """A `queryResult` document NCMEC-format readers (HMA, Ridgeline) can take.

    Partners' entries keep their member; our own entries carry `member_id` and
    `member_name` (our identity in the exchange; "0" when not configured)."""
    root = ET.Element("queryResult", {"xmlns": NAMESPACE})
    for group_tag, kind in _GROUPS.items():
        chosen = [i for i in items if _kind(i) == kind]
        if not chosen:
            continue
        group = ET.SubElement(root, group_tag, {"count": str(len(chosen))})
        group.set("maxTimestamp", _format_time(max(i.record_time for i in chosen)))
        for item in chosen:
            tag = ("deleted" + kind.capitalize()) if item.deleted else kind
            element = ET.SubElement(group, tag)
            ET.SubElement(element, "id").text = item.origin_entry_id or f"rl-{item.entry_id}"
            ours = item.origin_member is None
            member = ET.SubElement(
                element, "member", {"id": (member_id or "0") if ours else str(item.origin_member)}
            )
            member.text = (member_name if ours else item.extra.get("member_name")) or ""
            ET.SubElement(element, "timestamp").text = _format_time(item.record_time)
            industry = [c["label"] for c in item.classifications if c["scheme"] == "industry"]
            raw = industry[0] if industry else item.extra.get("classification")
            if raw and not item.deleted:
                ET.SubElement(element, "classification").text = raw
            fps = ET.SubElement(element, "fingerprints")
            for signal, value in item.signals.items():
                if signal in _TAG_FOR_SIGNAL:
                    ET.SubElement(fps, _TAG_FOR_SIGNAL[signal]).text = value
            for tag, value in (item.extra.get("other_fingerprints") or {}).items():
                ET.SubElement(fps, str(tag)).text = str(value)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _kind(item: ExportItem) -> str:
    kind = item.extra.get("entry_type")
    if kind in ("image", "video"):
        return str(kind)
    return "video" if "vpdq" in item.signals else "image"
