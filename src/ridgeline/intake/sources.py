"""Where received documents come from: files, folders, zips, JSONL, a request body.

Every document carries its `source` (what the CLI prints back) and its bytes; nothing is
written to disk. A folder that holds `report.xml` is one report with its
`fileDetails-N.xml` (the layout `ridgeline reports export --out` writes): it becomes one
`<submission>`. Zip members are read into memory under size limits (reports are small)
and never extracted; unsafe names and nested archives are refused with a reason.
"""

from __future__ import annotations

import lzma
import os
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ridgeline.errors import BadInput, TooLarge

#: One document may not be larger than this (a report with its fileDetails is kilobytes).
MAX_DOCUMENT_BYTES = 16 << 20
#: A zip may not expand to more than this in total.
MAX_ZIP_BYTES = 4 << 30
SUFFIXES = {".xml": "xml", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
#: What reading a damaged zip member raises besides `BadZipFile` (bad deflate data,
#: a cut stream, a password, an unsupported method, bad LZMA data).
UNREADABLE_MEMBER = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError,
                     NotImplementedError, lzma.LZMAError, ValueError)  # fmt: skip
_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>", re.DOTALL)
_DETAILS_NAME = re.compile(r"^fileDetails[-_.]?(\d+)?\.xml$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One received document, not yet read."""

    source: str
    data: bytes
    #: "xml", "json" or None (sniffed from the first byte).
    format: str | None = None
    #: The client's Idempotency-Key (HTTP), else the document's sha256 is the key.
    idempotency_key: str | None = None
    #: Why it could not even be read (it is answered as refused with this problem).
    error: str | None = None


def submission(report_xml: bytes, details_xml: list[bytes]) -> bytes:
    """A `<submission>` of a report and its fileDetails documents."""
    parts = [_DECL.sub(b"", d, count=1).strip() for d in [report_xml, *details_xml]]
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<submission>'
        + b"".join(parts)
        + (b"</submission>")
    )


def _details_order(name: str) -> tuple[int, str]:
    m = _DETAILS_NAME.match(name)
    return (int(m.group(1)) if m and m.group(1) else 0, name)


def _want(fmt: str | None, suffix: str) -> bool:
    kind = SUFFIXES.get(suffix.lower())
    return kind is not None and (fmt is None or kind == fmt)


def _lines(source: str, data: bytes) -> Iterator[Incoming]:
    for n, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield Incoming(f"{source}:{n}", line.strip(), "json")


def _stream_lines(source: str, fh: IO[bytes]) -> Iterator[Incoming]:
    """JSON lines read one at a time (a file or a zip member of any size stays out of
    memory); a line longer than a report can be ends the stream with a refusal."""
    n = 0
    while True:
        line = fh.readline(MAX_DOCUMENT_BYTES + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_DOCUMENT_BYTES:
            why = f"line {n} is longer than a report can be; the rest is not read"
            yield Incoming(f"{source}:{n}", b"", "json", error=why)
            return
        if line.strip():
            yield Incoming(f"{source}:{n}", line.strip(), "json")


def _read_file(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES and path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise TooLarge(f"{path}: {size} bytes is larger than a report can be")
    return path.read_bytes()


def _file(path: Path, fmt: str | None, display: str) -> Iterator[Incoming]:
    suffix = path.suffix.lower()
    if suffix == ".zip":
        yield from _zip(path, fmt, display)
        return
    if suffix in (".jsonl", ".ndjson"):
        try:
            with path.open("rb") as fh:
                yield from _stream_lines(display, fh)
        except OSError as exc:
            yield Incoming(display, b"", fmt, error=f"cannot read it: {exc}")
        return
    try:
        data = _read_file(path)
    except (OSError, TooLarge) as exc:
        yield Incoming(display, b"", fmt, error=f"cannot read it: {exc}")
        return
    yield Incoming(display, data, fmt or SUFFIXES.get(suffix))


def _folder_report(folder: Path, display: str) -> Incoming:
    report = (folder / "report.xml").read_bytes()
    details = sorted(
        (p for p in folder.iterdir() if _DETAILS_NAME.match(p.name)),
        key=lambda p: _details_order(p.name),
    )
    if not details:
        return Incoming(display, report, "xml")
    return Incoming(display, submission(report, [p.read_bytes() for p in details]), "xml")


def _folder(root: Path, fmt: str | None, display: str) -> Iterator[Incoming]:
    if (root / "report.xml").is_file() and fmt in (None, "xml"):
        yield _folder_report(root, display)
        return
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        path = Path(entry.path)
        shown = f"{display.rstrip('/')}/{entry.name}"
        if entry.is_symlink():
            continue  # never followed: a link could point anywhere
        if entry.is_dir():
            yield from _folder(path, fmt, shown)
        elif entry.is_file() and (path.suffix.lower() == ".zip" or _want(fmt, path.suffix)):
            yield from _file(path, fmt, shown)


def _zip(path: Path, fmt: str | None, display: str) -> Iterator[Incoming]:
    try:
        zf = zipfile.ZipFile(path)
    # ValueError: a member flagged as UTF-8 whose name is not (UnicodeDecodeError);
    # NotImplementedError: a zip format version zipfile does not know
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        yield Incoming(display, b"", fmt, error=f"not a readable zip: {exc}")
        return
    with zf:
        # not ZipInfo.is_dir(): it raises IndexError on an empty member name
        infos = [i for i in zf.infolist() if not i.filename.endswith("/")]
        total = 0
        groups: dict[str, dict[str, zipfile.ZipInfo]] = defaultdict(dict)
        singles: list[zipfile.ZipInfo] = []
        for info in infos:
            p = PurePosixPath(info.filename)
            if p.name == "report.xml" or _DETAILS_NAME.match(p.name):
                groups[str(p.parent)][p.name] = info
            else:
                singles.append(info)

        def read(info: zipfile.ZipInfo) -> bytes:
            nonlocal total
            name = info.filename
            if _unsafe(name):
                raise BadInput(f"unsafe member name {name!r}")
            limit = MAX_DOCUMENT_BYTES
            if name.lower().endswith((".jsonl", ".ndjson")):
                limit = MAX_ZIP_BYTES
            try:
                with zf.open(info) as fh:
                    data = fh.read(limit + 1)
            except UNREADABLE_MEMBER as exc:  # corrupt, encrypted or exotic compression
                raise BadInput(f"member {name!r} cannot be read: {exc}") from None
            if len(data) > limit:
                raise TooLarge(f"member {name!r} is larger than a report can be")
            total += len(data)
            if total > MAX_ZIP_BYTES:
                raise TooLarge(f"the zip expands to more than {MAX_ZIP_BYTES} bytes")
            return data

        for parent in sorted(groups):
            members = groups[parent]
            shown = f"{display}!{parent}" if parent != "." else f"{display}!"
            if "report.xml" not in members:
                singles.extend(members.values())
                continue
            if fmt not in (None, "xml"):
                continue
            try:
                report = read(members["report.xml"])
                details = [
                    read(members[n])
                    for n in sorted((n for n in members if n != "report.xml"), key=_details_order)
                ]
            except (BadInput, zipfile.BadZipFile, OSError) as exc:
                yield Incoming(shown, b"", "xml", error=str(exc))
                continue
            yield Incoming(
                shown.rstrip("!") + ("/report.xml" if not details else ""),
                submission(report, details) if details else report,
                "xml",
            )
        for info in sorted(singles, key=lambda i: i.filename):
            p = PurePosixPath(info.filename)
            shown = f"{display}!{info.filename}"
            if p.suffix.lower() == ".zip":
                yield Incoming(shown, b"", fmt, error="nested archives are not read")
                continue
            if not _want(fmt, p.suffix):
                continue
            if p.suffix.lower() in (".jsonl", ".ndjson"):
                yield from _zip_lines(zf, info, shown)
                continue
            try:
                data = read(info)
            except (BadInput, zipfile.BadZipFile, OSError) as exc:
                yield Incoming(shown, b"", fmt, error=str(exc))
                continue
            yield Incoming(shown, data, fmt or SUFFIXES.get(p.suffix.lower()))


def _unsafe(name: str) -> bool:
    """Member names refused outright: empty, absolute, with `..` or backslashes."""
    return not name or name.startswith("/") or ".." in PurePosixPath(name).parts or "\\" in name


def _zip_lines(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str) -> Iterator[Incoming]:
    """A JSON-lines member streamed line by line, at most `MAX_ZIP_BYTES` of it."""
    name = info.filename
    if _unsafe(name):
        yield Incoming(shown, b"", "json", error=f"unsafe member name {name!r}")
        return
    try:
        with zf.open(info) as member:
            capped = _Capped(member, MAX_ZIP_BYTES)
            yield from _stream_lines(shown, capped)  # type: ignore[arg-type]
            if capped.over:
                why = f"member {name!r} expands to more than {MAX_ZIP_BYTES} bytes"
                yield Incoming(shown, b"", "json", error=why)
    except (*UNREADABLE_MEMBER, OSError) as exc:
        yield Incoming(shown, b"", "json", error=f"member {name!r} cannot be read: {exc}")


class _Capped:
    """`readline` over a stream that stops after `limit` bytes (and says so)."""

    def __init__(self, fh: IO[bytes], limit: int) -> None:
        self.fh, self.left, self.over = fh, limit, False

    def readline(self, size: int = -1) -> bytes:
        if self.left <= 0:
            self.over = self.over or bool(self.fh.read(1))
            return b""
        line = self.fh.readline(min(size, self.left) if size >= 0 else self.left)
        self.left -= len(line)
        return line


def from_paths(paths: list[str], fmt: str | None = None) -> Iterator[Incoming]:
    """The documents under each path, in a stable order (sorted names); a path that does
    not exist is refused before anything is read."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise BadInput(f"{', '.join(missing)}: no such file or folder")
    return _walk(paths, fmt)


def _walk(paths: list[str], fmt: str | None) -> Iterator[Incoming]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _folder(path, fmt, raw)
        elif path.is_file():
            yield from _file(path, fmt, raw)
        else:
            raise BadInput(f"{raw}: no such file or folder")
