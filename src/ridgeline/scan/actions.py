"""What a match does: `flag` it, `quarantine` the file (reversibly), draft a `report`.

Actions are configured per block list (`list_actions`); allow-list matches
suppress them, and entries held by flood control fire none. A `report` is a
CyberTipline draft made by the report sink the front end passes (`ReportRequest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.lists import SELF_SUBMITTED, get_list
from ridgeline.matching import ExplainedMatch
from ridgeline.scan.models import ListAction, QuarantineItem
from ridgeline.timeutil import isoformat, utcnow

ACTIONS = ("flag", "quarantine", "report")
DEFAULT_ACTIONS = ("flag",)
#: The only action a self-submitted list's matches fire (`lists.SELF_SUBMITTED`).
REVIEW_ONLY_ACTIONS = ("flag",)


def default_quarantine_dir() -> Path:
    """`quarantine/` in the platform's user data directory."""
    return Path(platformdirs.user_data_dir("ridgeline", appauthor=False)) / "quarantine"


def validate_actions(actions: Iterable[str]) -> list[str]:
    """Canonical, de-duplicated action names, or an error naming the bad one."""
    out: list[str] = []
    for raw in actions:
        name = raw.strip().lower()
        if name not in ACTIONS:
            raise BadInput(f"unknown action {raw!r}; expected one of {', '.join(ACTIONS)}")
        if name not in out:
            out.append(name)
    return out


def set_list_actions(
    session: Session, list_name: str, actions: Sequence[str], *, actor: str | None = None
) -> list[str]:
    """Store which actions matches on a list fire (logged: who turned quarantine on)."""
    hash_list = get_list(session, list_name)
    names = validate_actions(actions)
    if hash_list.purpose == SELF_SUBMITTED and set(names) - set(REVIEW_ONLY_ACTIONS):
        raise BadInput(
            f"list {hash_list.name!r} holds self-submitted hashes, which nobody has reviewed: "
            "its matches can only be flagged for human review (action flag), not "
            + ", ".join(n for n in names if n not in REVIEW_ONLY_ACTIONS)
        )
    row = session.get(ListAction, hash_list.id)
    old = list(row.actions) if row is not None else list(DEFAULT_ACTIONS)
    if row is None:
        session.add(ListAction(list_id=hash_list.id, actions=names))
    else:
        row.actions = names
        row.updated_at = utcnow()
    session.flush()
    auditlog.append(session, actor, "list.actions", f"list:{hash_list.id}",
                    {"name": hash_list.name, "old": old, "new": names})  # fmt: skip
    return names


def get_list_actions(session: Session, list_name: str) -> list[str]:
    """The actions configured for a list (default: flag)."""
    hash_list = get_list(session, list_name)
    row = session.get(ListAction, hash_list.id)
    return list(row.actions) if row is not None else list(DEFAULT_ACTIONS)


def actions_by_list_id(session: Session) -> dict[int, list[str]]:
    """All configured actions, for the pipeline to look up per match."""
    return {row.list_id: list(row.actions) for row in session.scalars(select(ListAction))}


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def quarantine_file(
    session: Session,
    path: str,
    quarantine_dir: str | os.PathLike[str],
    matches: Sequence[ExplainedMatch],
    *,
    run_id: int | None = None,
    member: str | None = None,
) -> QuarantineItem:
    """Move `path` into `quarantine_dir/<id>/` beside a JSON manifest; `restore` undoes it.

    A symbolic link is refused: moving it would leave the content where it is, and
    its target may lie outside what was scanned (a restore then had nowhere to go).
    """
    src = Path(path)
    if src.is_symlink():
        raise Conflict(f"{path} is a symbolic link: not quarantined (quarantine its target)")
    st = src.stat()
    sha256 = file_sha256(src)
    item = QuarantineItem(
        original_path=str(src.resolve()),
        quarantine_path="",
        manifest_path="",
        sha256=sha256,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        matches=[m.to_json() for m in matches],
        run_id=run_id,
    )
    session.add(item)
    session.flush()
    folder = Path(quarantine_dir) / str(item.id)
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    dest = folder / "content"
    shutil.move(str(src), dest)
    item.quarantine_path = str(dest.resolve())
    item.manifest_path = str((folder / "manifest.json").resolve())
    _write_manifest(item, member)
    session.flush()
    return item


def _write_manifest(item: QuarantineItem, member: str | None = None) -> None:
    manifest = quarantine_to_json(item)
    if member:
        manifest["matched_member"] = member
    tmp = Path(item.manifest_path + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, item.manifest_path)


def restore_quarantined(session: Session, item_id: int) -> QuarantineItem:
    """Put a quarantined file back where it was, with its original mtime."""
    item = session.get(QuarantineItem, item_id)
    if item is None:
        raise NotFound(f"no quarantined item {item_id}")
    if item.restored_at is not None:
        raise Conflict(f"quarantined item {item_id} was already restored")
    original = Path(item.original_path)
    if original.exists():
        raise Conflict(f"cannot restore item {item_id}: {original} exists")
    if not Path(item.quarantine_path).is_file():
        raise NotFound(f"quarantined file {item.quarantine_path} is missing")
    if item.sha256 and file_sha256(item.quarantine_path) != item.sha256:
        raise Conflict(f"quarantined file {item.quarantine_path} changed since it was moved")
    original.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(item.quarantine_path, original)
    if item.mtime_ns is not None:
        os.utime(original, ns=(item.mtime_ns, item.mtime_ns))
    item.restored_at = utcnow()
    session.flush()
    _write_manifest(item)
    return item


def list_quarantine(session: Session, *, include_restored: bool = False) -> list[QuarantineItem]:
    query = select(QuarantineItem).order_by(QuarantineItem.id)
    if not include_restored:
        query = query.where(QuarantineItem.restored_at.is_(None))
    return list(session.scalars(query))


def quarantine_to_json(item: QuarantineItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "original_path": item.original_path,
        "quarantine_path": item.quarantine_path,
        "sha256": item.sha256,
        "size": item.size,
        "mtime_ns": item.mtime_ns,
        "matches": item.matches,
        "run_id": item.run_id,
        "time": isoformat(item.created_at or utcnow()),
        "restored_at": isoformat(item.restored_at),
    }


@dataclass(frozen=True)
class ReportRequest:
    """What a `report` action hands to the report sink: one matched file.

    The scan (or `/v1/match`) knows the file, its hashes and its matches; what a report
    is made of belongs to `ridgeline.reports`, which sits above the scan. So the front
    end (CLI, service) passes a sink (`ridgeline.reports.drafts.ReportSink`) that turns
    a request into a CyberTipline draft inside the caller's transaction and returns
    its id.
    """

    #: The name the file is reported under (its base name, or the archive member's).
    name: str
    #: Where its bytes are now (None: hashes only, e.g. `/v1/match` with hashes).
    path: str | None
    sha256: str | None
    #: The file's signals as `hash`/`scan` give them (md5, sha1, sha256, pdq, ...).
    signals: dict[str, Any]
    matches: Sequence[ExplainedMatch]
    #: Where the hit came from: `{"source": "scan", "run_id": ...}` or the API's.
    origin: dict[str, Any] = field(default_factory=dict)
    #: The upload's context as the reports package understands it (opaque here).
    context: Any = None
    #: The bytes themselves when the caller already holds them (an upload).
    data: bytes | None = None
    #: True when `signals` were computed from `data` itself (an upload hashed in this
    #: request): the draft takes the file's md5/sha1/sha256 from them instead of hashing
    #: the bytes again (otherwise only a sha256 that matches the signals' lets it).
    hashed: bool = False


#: Creates the draft for one request in `session` (flush, no commit); returns its id.
ReportSink = Callable[[Session, ReportRequest], int]
