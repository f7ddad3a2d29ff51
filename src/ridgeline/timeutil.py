"""UTC time helpers: everything is stored in UTC and printed as ISO 8601 with `Z`."""

from __future__ import annotations

import datetime as dt
import re

from ridgeline.errors import BadInput


def utcnow() -> dt.datetime:
    """Timezone-aware current UTC time."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Treat naive datetimes (as SQLite returns them) as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def isoformat(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a trailing `Z`, or None."""
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")


_OFFSET_THEN_Z = re.compile(r"T.*[+-]\d\d:?\d\d[Zz]$")


def parse_iso(text: str) -> dt.datetime:
    """Parse ISO 8601 (with `Z` or an offset; naive means UTC); `BadInput` otherwise
    (a `ValueError`, as `fromisoformat` raises)."""
    text = text.strip()
    if _OFFSET_THEN_Z.search(text):  # "+01:00Z", as some writers put it: the offset rules
        text = text[:-1]
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInput(f"{text!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)") from None
    return as_utc(value)
