"""Past scans: their runs and per-file results, for `ridgeline scans` and `/v1/scans`."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput, NotFound
from ridgeline.scan.models import ScanFile, ScanRun
from ridgeline.timeutil import isoformat

#: Which per-file results `run_files` returns.
FileFilter = Literal["all", "matches", "errors"]
FILE_FILTERS = ("all", "matches", "errors")


def run_to_json(run: ScanRun) -> dict[str, Any]:
    """A run with its options and counts (`finished_at` null while it runs or if killed)."""
    return {
        "id": run.id,
        "started_at": isoformat(run.started_at),
        "finished_at": isoformat(run.finished_at),
        "engine": run.engine,
        "paths": list(run.paths or []),
        "lists": list(run.lists or []),
        "options": dict(run.options or {}),
        "counts": dict(run.counts or {}),
    }


def file_to_json(row: ScanFile) -> dict[str, Any]:
    """One scanned file as the scan reported it."""
    return {
        "id": row.id,
        "path": row.path,
        "size": row.size,
        "sha256": row.sha256,
        "kind": row.kind,
        "media_type": row.media_type,
        "signals": row.signals or {},
        "matches": row.matches or [],
        "actions": row.actions or [],
        "error": row.error,
        "scanned_at": isoformat(row.scanned_at),
    }


def list_runs(session: Session, *, limit: int = 50, before_id: int | None = None) -> list[ScanRun]:
    """The newest runs first (page back with `before_id`)."""
    if limit < 1:
        raise BadInput(f"limit must be at least 1, not {limit}")
    query = select(ScanRun).order_by(ScanRun.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(ScanRun.id < before_id)
    return list(session.scalars(query))


def get_run(session: Session, run_id: int) -> ScanRun:
    """A run by id, or `NotFound`."""
    run = session.get(ScanRun, run_id)
    if run is None:
        raise NotFound(f"no scan run {run_id}")
    return run


def run_files(
    session: Session,
    run: ScanRun,
    *,
    only: str = "all",
    after_id: int = 0,
    limit: int = 100,
) -> list[ScanFile]:
    """A page of a run's per-file results in scan order (`matches`/`errors` filter)."""
    if only not in FILE_FILTERS:
        raise BadInput(f"files must be one of {', '.join(FILE_FILTERS)}, not {only!r}")
    if limit < 1:
        raise BadInput(f"limit must be at least 1, not {limit}")
    query = (
        select(ScanFile)
        .where(ScanFile.run_id == run.id, ScanFile.id > after_id)
        .order_by(ScanFile.id)
        .limit(limit)
    )
    if only == "matches":  # stored as JSON text: "[]" when nothing matched
        query = query.where(ScanFile.matches.is_not(None), cast(ScanFile.matches, Text) != "[]")
    elif only == "errors":
        query = query.where(ScanFile.error.is_not(None))
    return list(session.scalars(query))
