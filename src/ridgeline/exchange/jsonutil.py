"""JSON reading with errors that say where: line and column, and JSON pointers.

Hostile nesting and integers are contained instead of crashing the whole file
(issue 17 item 10): a value nested deeper than `MAX_DEPTH` and an integer longer
than `MAX_INT_DIGITS` digits are replaced by marker strings while parsing, so the
rest of the document still parses and `problem()` lets a reader reject just the
record that carried them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ridgeline.errors import BadInput
from ridgeline.exchange.records import decode_text

#: Deeper values are cut off (a hash record needs a handful of levels).
MAX_DEPTH = 64
#: Longer integers are refused (Python's own int() limit is 4300 digits).
MAX_INT_DIGITS = 100
TOO_DEEP = "\x00ridgeline: nested deeper than 64 levels"
TOO_LONG_INT = "\x00ridgeline: integer longer than 100 digits"
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


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


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer to the given path."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)
