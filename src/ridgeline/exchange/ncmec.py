"""NCMEC hash-sharing XML: `queryResult` with `images`/`videos` of entries and deletions.

Each entry carries an id, the sharing member (`<member id="..">name</member>`), a
timestamp, an optional industry classification (A1, A2, B1, B2) and fingerprints:
`md5`, `sha1`, `pdna` (PhotoDNA, base64) and `pdq`. Deleted entries
(`deletedImage`/`deletedVideo`) become tombstones. Unlike HMA, image md5/sha1 are kept.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ridgeline.classifications import SCHEMES
from ridgeline.errors import BadInput
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult, column_limits
from ridgeline.exchange.safexml import (
    FORBIDDEN,
    MAX_FIELD_CHARS,
    child_text,
    oversized,
    parse_xml,
)
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


def parse_stream(
    chunks: Iterable[bytes], what: str = "NCMEC XML", *, part: int | None = None
) -> ParseResult:
    """The same reading as `parse`, of a document given as chunks of bytes, a part at a
    time (`ParseResult.parts`): each entry is read as its element ends and then dropped,
    so a file of millions of entries takes constant memory. The document must be in
    an ASCII-compatible encoding (UTF-8, with or without BOM); the caller reads any
    other (UTF-16) whole with `parse`. The same refusals: DTDs and entities (found in
    the bytes before the parser sees them), malformed XML with its line and column.
    """
    return ParseResult(NAME, parts=_parts(chunks, what, part or PART))


def _parts(chunks: Iterable[bytes], what: str, size: int) -> Iterator[ParseResult]:
    """The parts of a streamed document. The C tree builder makes the elements (no
    Python per element or event); after each chunk the entries that are complete (all
    but the last child of the open group) are read and dropped. A common entry (id,
    member, timestamp, classification, known fingerprints) is read by `_common`; any
    other shape by the general `_entry`, with the same checks as `parse`."""
    opened: list[ET.Element] = []
    element_ = ET.Element

    def factory(tag: str, attrib: dict[str, str]) -> ET.Element:
        element = element_(tag, attrib)
        if not opened:
            opened.append(element)  # the root, checked after this chunk
        return element

    parser = ET.XMLParser(target=ET.TreeBuilder(element_factory=factory))
    reader = _Reader(what, size)
    tail = b""
    lines = 0  # newlines before `tail`
    for chunk in itertools.chain(chunks, [None]):
        window = tail + (chunk or b"")
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
        try:
            if chunk is None:
                parser.close()
            else:
                parser.feed(chunk)
        except ET.ParseError as exc:
            if opened:
                reader.check_root(opened[0])  # a wrong root is told before what follows
            raise _malformed(what, exc) from None
        if opened:
            reader.check_root(opened[0])
            yield from reader.harvest(opened[0], done=chunk is None)
    yield reader.part


def _local(tag: str) -> str:
    return tag.split("}", 1)[1] if "}" in tag else tag


class _Reader:
    """The state of one streamed document: groups seen, the part being filled."""

    def __init__(self, what: str, size: int = PART) -> None:
        self.what, self.size = what, size
        self.part = ParseResult(NAME)
        self.root_checked = False
        self.group: ET.Element | None = None  # the open group (last child of the root)
        self.group_tag = ""
        self.group_path = ""
        self.counters: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        self.local: dict[str, str] = {}  # tag with namespace -> local name
        self.times: dict[str, dt.datetime | None] = {}  # feeds repeat a few timestamps
        self.shapes: dict[tuple[str, ...], _Shape | None] = {}
        limits = column_limits()  # what `field_problem` allows the columns filled here
        self.id_max = limits.get("origin_entry_id", 1 << 30)
        self.member_max = limits.get("origin_member", 1 << 30)

    def check_root(self, root: ET.Element) -> None:
        if not self.root_checked:
            if _local(root.tag) != "queryResult":
                raise BadInput(
                    f"{self.what}: root element is <{_local(root.tag)}>, expected <queryResult>"
                )
            self.root_checked = True

    def harvest(self, root: ET.Element, *, done: bool) -> Iterator[ParseResult]:
        """Read every complete child of the root (and of its open group) and drop it."""
        while len(root):
            group = root[0]
            last = len(root) == 1 and not done  # may still be open
            if group is not self.group:
                self.group = group
                tag = self.group_tag = _local(group.tag)
                self.counters[tag] = self.counters.get(tag, 0) + 1
                self.group_path = f"/queryResult/{tag}[{self.counters[tag]}]"
                self.seen = {}
            if self.group_tag in _ENTRY_GROUPS:
                ready = len(group) - 1 if last else len(group)
                if ready > 0:
                    yield from self._entries(group, ready)
            if last:
                return
            if self.group_tag == "paging":
                for item in group.iter():
                    if "}" in item.tag:
                        item.tag = item.tag.split("}", 1)[1]
                following = group.find("next")
                if following is not None and following.text:
                    self.part.meta["next"] = following.text.strip()
            del root[0]
            self.group = None

    def _entries(self, group: ET.Element, ready: int) -> Iterator[ParseResult]:
        seen, local, group_path = self.seen, self.local, self.group_path
        for element in group[:ready]:
            tag = local.get(element.tag)
            if tag is None:
                tag = local[element.tag] = _local(element.tag)
            number = seen[tag] = seen.get(tag, 0) + 1
            path = f"{group_path}/{tag}[{number}]"
            part = self.part
            record = self._common(element, tag, path)
            if record is not None:
                part.records.append(record)
                stamp = record.timestamp
                if stamp is not None and (part.max_timestamp is None or stamp > part.max_timestamp):
                    part.max_timestamp = stamp
            else:
                for item in element.iter():
                    if "}" in item.tag:
                        item.tag = item.tag.split("}", 1)[1]
                try:
                    problem = oversized(element)
                    if problem is not None:
                        raise BadInput(problem)
                    part.add(_entry(element, path))
                except BadInput as exc:
                    part.reject(path, str(exc))
            if len(part.records) + len(part.errors) >= self.size:
                yield part
                self.part = ParseResult(NAME)
        del group[:ready]

    def _common(self, element: ET.Element, kind: str, path: str) -> ExchangeRecord | None:
        """The record of an entry of a common shape, read as `_entry` reads it, or None
        for any other (the general reading then decides, with its messages). An entry's
        shape is the tags of its elements in order; each shape is judged once."""
        nodes = list(element.iter())
        tags = tuple(map(_TAG, nodes))
        shape = self.shapes.get(tags, _UNSEEN)
        if shape is _UNSEEN:
            shape = self.shapes[tags] = _shape(tags, self.local)
        if shape is None:
            return None
        texts = list(map(_TEXT, nodes))
        if sum(map(len, filter(None, texts))) > MAX_FIELD_CHARS:
            return None  # one may be too long: the general reading says which
        id_at, member_at, time_at, class_at, fps, children, fps_at = shape
        if len(element) != children or len(nodes[fps_at]) != len(fps):
            return None  # something nested deeper than it looks
        member = nodes[member_at] if member_at else None
        attributes = sum(map(len, map(_ATTRIB, nodes)))
        if attributes and (member is None or attributes > 1 or "id" not in member.attrib):
            return None
        signals: dict[str, str] = {}
        for at, name in fps:
            text = texts[at]
            if text is not None and (text := text.strip()):
                signals[name] = text
        if not signals:
            return None
        text = texts[id_at]
        entry_id = text.strip() if text is not None else None
        if not entry_id or len(entry_id) > self.id_max:
            return None
        extra: dict[str, Any] = {"entry_type": kind}
        member_id = member_name = None
        if member is not None:
            member_id = member.get("id")
            if member_id is not None and len(member_id) > self.member_max:
                return None
            member_name = (member.text or "").strip() or None
            if member_name:
                extra["member_name"] = member_name
        classes: list[dict[str, str]] = []
        if class_at and (text := texts[class_at]) is not None and (raw := text.strip()):
            _classify(raw, classes, extra)
        stamp = None
        if time_at and (text := texts[time_at]) is not None and (text := text.strip()):
            times = self.times
            if text in times:
                stamp = times[text]
            else:
                try:
                    stamp = _timestamp(text)
                except BadInput:
                    return None  # `_entry` says why
                if len(times) > 4096:
                    times.clear()
                times[text] = stamp
        return ExchangeRecord(
            position=path,
            signals=signals,
            classifications=classes,
            source="ncmec",
            origin_member=member_id,
            origin_member_name=member_name,
            origin_entry_id=entry_id,
            timestamp=stamp,
            extra=extra,
        )


_TAG = operator.attrgetter("tag")
_TEXT = operator.attrgetter("text")
_ATTRIB = operator.attrgetter("attrib")
_UNSEEN: Any = object()
#: Where in an entry's elements (in order) its id, member, timestamp, classification
#: and fingerprints are (0: absent), how many children the entry and its fingerprints
#: have, and where the fingerprints element is (the tags alone do not tell the depth).
_Shape = tuple[int, int, int, int, tuple[tuple[int, str], ...], int, int]


def _shape(tags: tuple[str, ...], local: dict[str, str]) -> _Shape | None:
    """How `_common` reads entries whose elements have these tags, or None when it
    leaves them to `_entry`: every child of the entry known and once, fingerprints
    with known tags as written, each once, and nothing nested deeper."""
    names = [local.get(tag) or _local(tag) for tag in tags]
    if names[0] not in ("image", "video"):
        return None
    at: dict[str, int] = {}
    fps: list[tuple[int, str]] = []
    in_fingerprints = False
    for i, name in enumerate(names[1:], 1):
        if in_fingerprints and name in _COMMON_FINGERPRINTS:
            signal = _COMMON_FINGERPRINTS[name]
            if any(s == signal for _, s in fps):
                return None
            fps.append((i, signal))
            continue
        in_fingerprints = False
        if name not in ("id", "member", "timestamp", "classification", "fingerprints"):
            return None
        if name in at:
            return None
        at[name] = i
        in_fingerprints = name == "fingerprints"
    if "id" not in at or not fps:
        return None
    return (
        at["id"],
        at.get("member", 0),
        at.get("timestamp", 0),
        at.get("classification", 0),
        tuple(fps),
        len(at),
        at["fingerprints"],
    )


def _text(element: ET.Element | None) -> str | None:
    """`child_text` of a child already found."""
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


#: Fingerprint tags `_common` reads (as written: other spellings go the general way).
_COMMON_FINGERPRINTS = dict(FINGERPRINTS)
_INDUSTRY = frozenset(SCHEMES["industry"])


def _classify(raw: str, classes: list[dict[str, str]], extra: dict[str, Any]) -> None:
    """An entry's `<classification>`: an industry label we know becomes a classification;
    any other text is kept in `extra` (written back on export), never dropped."""
    label = raw.upper()
    if label in _INDUSTRY:
        classes.append({"scheme": "industry", "label": label})
    else:
        extra["classification"] = raw


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
        _classify(raw_class, classes, extra)
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
