"""Where Ridgeline keeps its data: database URL resolution shared by CLI, service and library."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_DB = "RIDGELINE_DB"


def default_db_path() -> Path:
    """`ridgeline.db` in the platform's user data directory."""
    return Path(platformdirs.user_data_dir("ridgeline", appauthor=False)) / "ridgeline.db"


def resolve_db_url(db: str | os.PathLike[str] | None = None) -> str:
    """Turn `--db` / `RIDGELINE_DB` / the default into an SQLAlchemy URL.

    A file path means SQLite; a `postgresql://` URL means PostgreSQL (driven by psycopg 3).
    """
    raw = os.fspath(db) if db is not None else os.environ.get(ENV_DB) or str(default_db_path())
    if raw.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + raw.split("://", 1)[1]
    if raw.startswith("postgresql+"):
        return raw
    if raw.startswith("sqlite:"):
        return raw
    if raw == ":memory:":
        return "sqlite://"
    path = Path(raw).expanduser()
    return f"sqlite:///{path.resolve()}"


def sqlite_file(url: str) -> Path | None:
    """The file behind an SQLite URL (None for PostgreSQL and in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///") :])
