"""JSON reading with errors that say where: line and column, and JSON pointers."""

from __future__ import annotations

import json
from typing import Any

from ridgeline.errors import BadInput
from ridgeline.exchange.records import decode_text


def load_json(data: bytes, what: str) -> Any:
    """Parse a JSON document or raise `BadInput` with the line and column."""
    text = decode_text(data, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{what}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer to the given path."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)
