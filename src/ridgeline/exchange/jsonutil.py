"""JSON reading with errors that say where: line and column, and JSON pointers.

Hostile nesting and integers are contained instead of crashing the whole file
(issue 17 item 10): a value nested deeper than `MAX_DEPTH` and an integer longer
than `MAX_INT_DIGITS` digits are replaced by marker strings while parsing, so the
rest of the document still parses and `problem()` lets a reader reject just the
record that carried them.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from ridgeline.errors import BadInput
from ridgeline.exchange.records import decode_text

#: Deeper values are cut off (a hash record needs a handful of levels).
MAX_DEPTH = 64
#: Longer integers are refused (Python's own int() limit is 4300 digits).
MAX_INT_DIGITS = 100
TOO_DEEP = "\x00ridgeline: nested deeper than 64 levels"
TOO_LONG_INT = "\x00ridgeline: integer longer than 100 digits"
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_STR = r'"(?:[^"\\]++|\\.)*+"'
_FLAT = rf"\{{(?:[^{{}}\[\]\"]++|{_STR})*+\}}"
#: An object whose arrays hold only scalars and flat objects (a VICS media item with
#: its `MediaFiles` and `AlternativeHashes`), by its brackets; the syntax inside is
#: left to the decoder.
_ITEM = rf"\{{(?:[^{{}}\[\]\"]++|{_STR}|\[(?:[^{{}}\[\]\"]++|{_STR}|{_FLAT})*+\])*+\}}"
#: Up to 2,000 such items of an array, comma-separated, from the first one on.
_RUN = re.compile(rf"\s*{_ITEM}(?:\s*,\s*{_ITEM}){{0,1999}}", re.DOTALL)
#: Characters looked at for the end of a run of items (some thousands of media).
_WINDOW = 1 << 18
_BIG = 10**MAX_INT_DIGITS
_decode_array = msgspec.json.Decoder(list[Any]).decode


def _int(text: str) -> int | str:
    return TOO_LONG_INT if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _cut_deep(text: str, limit: int = MAX_DEPTH) -> str:
    """`text` with every array or object nested deeper than `limit` replaced by a marker."""
    out: list[str] = []
    depth = 0
    cut_start = -1
    last = 0
    marker = json.dumps(TOO_DEEP)
    for token in _TOKENS.finditer(text):
        ch = token.group()
        if ch in "[{":
            depth += 1
            if depth == limit + 1 and cut_start < 0:
                cut_start = token.start()
        elif ch in "]}":
            if depth == limit + 1 and cut_start >= 0:
                out.append(text[last:cut_start])
                out.append(marker)
                last = token.end()
                cut_start = -1
            depth -= 1
    if cut_start >= 0:  # unbalanced: let the parser report where
        return text
    out.append(text[last:])
    return "".join(out)


def loads(text: str) -> Any:
    """`json.loads` with deep values and long integers replaced by markers."""
    try:
        return json.loads(text, parse_int=_int)
    except RecursionError:
        return json.loads(_cut_deep(text), parse_int=_int)


def load_json(data: bytes, what: str) -> Any:
    """Parse a JSON document or raise `BadInput` with the line and column."""
    text = decode_text(data, what)
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{what}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise BadInput(f"{what}: JSON nested too deeply to read") from None


def problem(value: Any) -> str | None:
    """Why a parsed value must be rejected (a marker inside it), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item in (TOO_DEEP, TOO_LONG_INT):
                return item[len("\x00ridgeline: ") :]
        elif isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _long_int(values: list[Any]) -> bool:
    """Whether an integer longer than `MAX_INT_DIGITS` digits is among `values`."""
    stack: list[Any] = []
    for item in values:
        for value in item.values() if isinstance(item, dict) else (item,):
            if value.__class__ is int:
                if not -_BIG < value < _BIG:
                    return True
            elif isinstance(value, dict | list):
                stack.append(value)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif value.__class__ is int and not -_BIG < value < _BIG:
            return True
    return False


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer to the given path."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)


#: Characters from the end of what has been read within which a decode error may only
#: mean the value goes on in the next chunk.
_MARGIN = 16


class JsonStream:
    """JSON values read one at a time from chunks of UTF-8 bytes (BOM allowed), so a
    reader can walk a large document's layout and decode only one item at a time.

    `peek`/`take` walk the punctuation, `value` decodes the next value whole (deep
    values and long integers as in `loads`; a value nested too deeply to decode is
    skipped and returned as `TOO_DEEP`), `end` checks nothing follows. Errors are
    `BadInput` with the line and column, as `load_json` gives them. Until `release`,
    the bytes read are kept, so `everything` can hand the document to a whole-file
    reader after all.
    """

    def __init__(self, chunks: Iterator[bytes], what: str) -> None:
        self.chunks, self.what = chunks, what
        self._decode = codecs.getincrementaldecoder("utf-8-sig")().decode
        self._json = json.JSONDecoder(parse_int=_int)
        self.buf, self.pos, self.eof = "", 0, False
        self._line, self._col = 1, 0  # of buf[0]
        self._bytes = 0
        self._done = 0  # characters dropped from the front of buf
        self._kept: list[bytes] | None = []

    def _fill(self) -> bool:
        """Read one more chunk; False at the end of the input."""
        if self.eof:
            return False
        chunk = next(self.chunks, None)
        if self._kept is not None and chunk is not None:
            self._kept.append(chunk)
        try:
            text = self._decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError as exc:
            raise BadInput(
                f"{self.what}: not UTF-8 text ({exc.reason} at byte {self._bytes + exc.start})"
            ) from None
        self._bytes += len(chunk or b"")
        dropped = self.buf[: self.pos]
        self._done += self.pos
        newlines = dropped.count("\n")
        if newlines:
            self._line += newlines
            self._col = len(dropped) - dropped.rfind("\n") - 1
        else:
            self._col += len(dropped)
        self.buf, self.pos = self.buf[self.pos :] + text, 0
        if chunk is None:
            self.eof = True
        return True

    def _where(self, index: int) -> tuple[int, int]:
        line = self._line + self.buf.count("\n", 0, index)
        last = self.buf.rfind("\n", 0, index)
        return line, (index - last if last >= 0 else self._col + index + 1)

    def error(self, index: int, message: str) -> BadInput:
        line, column = self._where(index)
        return BadInput(f"{self.what}: malformed JSON at line {line}, column {column}: {message}")

    def peek(self) -> str:
        """The next character that is not white space ("" at the end)."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self._fill():
                return ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(self.pos, f"Expecting {char!r}")
        self.pos += 1

    def value(self) -> Any:
        """The next value, decoded."""
        self.peek()
        while True:
            try:
                obj, end = self._json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                more = exc.pos >= len(self.buf) - _MARGIN or exc.msg.startswith("Unterminated")
                if more and self._fill():
                    continue
                raise self.error(exc.pos, exc.msg) from None
            except RecursionError:
                self._skip()
                return TOO_DEEP
            if end >= len(self.buf) and self._fill():
                continue  # a number may go on in the next chunk
            self.pos = end
            return obj

    def items(self, first: bool) -> tuple[list[Any], bool]:
        """The next items of an array, many at once (first: no comma before them), and
        whether they are clean (no marker string can be in them). Plain objects are
        found by their brackets and decoded in one msgspec call; what it will not take
        (a long integer, NaN, a lone surrogate, bad syntax) is read by `value` instead,
        with its markers and errors. Empty: the next item is not plain or not complete
        in the buffer yet; read it with `value`."""
        char = self.peek()
        start = self.pos
        if not first:
            if char != ",":
                return [], False
            start += 1
        buf = self.buf
        # Cut after the last "}," of the next stretch: decoded as an array, the cut is
        # valid JSON only at the end of an item (inside a string or a nested array the
        # brackets or quotes are left open), so msgspec checks the cut as it decodes.
        cut = buf.rfind("},", start, start + _WINDOW)
        if cut > start:
            out = self._decoded(buf[start : cut + 1])
            if out is not None:
                self.pos = cut + 1
                return out, True
        found = _RUN.match(buf, start)
        if found is None:
            return [], False
        out = self._decoded(found.group())
        if out is not None:
            self.pos = found.end()
            return out, True
        end = self._done + found.end()  # where the careful reading of the same items stops
        out = []
        while self._done + self.pos < end:
            if out or not first:
                self.take(",")
            out.append(self.value())
            self.peek()
        return out, False

    @staticmethod
    def _decoded(text: str) -> list[Any] | None:
        """`text`, comma-separated values, decoded by msgspec; None when they must be
        read with `value` (bad syntax, NaN, a long integer or a possible marker)."""
        if "\\u0000" in text:
            return None
        try:
            out = _decode_array(f"[{text}]".encode("utf-8", "surrogatepass"))
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            return None
        return None if _long_int(out) else out

    def _skip(self) -> None:
        """Step over the array or object at `pos` (matching brackets, skipping strings)."""
        while True:
            depth = 0
            for token in _TOKENS.finditer(self.buf, self.pos):
                ch = token.group()
                if ch in "[{":
                    depth += 1
                elif ch in "]}":
                    depth -= 1
                    if depth == 0:
                        self.pos = token.end()
                        return
            if not self._fill():
                raise self.error(len(self.buf), "unbalanced brackets at the end of the input")

    def end(self) -> None:
        """Only white space may follow the document."""
        if self.peek() != "":
            raise self.error(self.pos, "Extra data")

    def release(self) -> None:
        """Stop keeping the bytes read (the document will not be read whole)."""
        self._kept = None

    def everything(self) -> bytes:
        """The whole document's bytes (only before `release`)."""
        if self._kept is None:
            raise RuntimeError("JsonStream.everything after release")
        return b"".join([*self._kept, *self.chunks])
