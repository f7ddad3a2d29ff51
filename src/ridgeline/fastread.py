"""Read-only answers straight from an SQLite file, without importing SQLAlchemy.

Importing SQLAlchemy and the models costs a few hundred milliseconds, more than the
whole of `ridgeline lists ls` may take (issue 11: 0.5 s at 10,000,000 entries). For an
SQLite database already at the newest schema this module answers with the standard
library's `sqlite3`, read-only; anything else (PostgreSQL, a missing file, an older
schema) returns None and the caller takes the normal `Store` path, which also gives the
proper errors. `HEAD_REVISION` lives here so that checking it imports nothing heavy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

#: The newest migration's revision (`tests/test_store.py` checks it against Alembic).
HEAD_REVISION = "0024"

_LISTS = (
    "SELECT l.id, l.name, l.owner, l.description, l.purpose, l.enabled, l.signals,"
    " l.thresholds, l.review_quorum, l.created_at, COALESCE(c.entries, 0)"
    " FROM lists l LEFT JOIN list_counts c ON c.list_id = l.id ORDER BY l.name"
)


def sqlite_path(db: str | os.PathLike[str] | None) -> Path | None:
    """The SQLite file `--db` / RIDGELINE_DB / the default names, None for PostgreSQL."""
    from ridgeline.config import resolve_db_url, sqlite_file

    return sqlite_file(resolve_db_url(db))


def _iso(text: str | None) -> str | None:
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text)
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


def list_summaries(db: str | os.PathLike[str] | None) -> list[dict[str, Any]] | None:
    """Every list as `lists.list_to_json(..., entry_count=N)` shows it, or None."""
    path = sqlite_path(db)
    if path is None or not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        versions = con.execute("SELECT version_num FROM alembic_version").fetchall()
        if versions != [(HEAD_REVISION,)]:
            return None
        rows = con.execute(_LISTS).fetchall()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return [
        {
            "id": list_id,
            "name": name,
            "owner": owner,
            "description": description,
            "purpose": purpose,
            "enabled": bool(enabled),
            "signals": json.loads(signals) if signals else [],
            "thresholds": json.loads(thresholds) if thresholds else {},
            "review_quorum": review_quorum,
            "created_at": _iso(created_at),
            "entries": int(entries),
        }
        for (list_id, name, owner, description, purpose, enabled, signals, thresholds,
             review_quorum, created_at, entries) in rows
    ]  # fmt: skip
