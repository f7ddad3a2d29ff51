"""`ridgeline review ...` (the review queue) and `ridgeline evidence ...` (encrypted media).

Thin wrappers over `ridgeline.review` and `ridgeline.evidence`.
"""

from __future__ import annotations

from pathlib import Path

import click

from ridgeline import evidence as ev
from ridgeline.cli.common import actor_option, db_option, format_option, handle_errors, open_store
from ridgeline.errors import BadInput, NotFound
from ridgeline.output import Writer, write_one
from ridgeline.review import core as rc
from ridgeline.review import queue as rq
from ridgeline.review.wellness import WellnessPolicy, exposure_status
from ridgeline.timeutil import utcnow

key_file_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Evidence key file (default: RIDGELINE_EVIDENCE_KEY or RIDGELINE_EVIDENCE_KEY_FILE).",
)


def _write_private(path: str, data: bytes) -> None:
    """Write a rendering readable by the owner only."""
    out = Path(path)
    with open(out, "wb") as fh:
        fh.write(data)
    out.chmod(0o600)


@click.group("review")
def review() -> None:
    """Multi-review queue: next item, verdicts, media views, status."""


@review.command("next")
@click.option("--reviewer", required=True, help="Reviewer name.")
@click.option(
    "--media-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the blurred greyscale rendering (PNG) here.",
)
@key_file_option
@db_option
@format_option
@handle_errors
def next_(
    reviewer: str, media_out: str | None, key_file: str | None, db: str | None, fmt: str | None
) -> None:
    """Take the next entry for REVIEWER (exit 1 when nothing is waiting)."""
    store = open_store(db)
    with store.session() as session:
        item = rq.next_item(session, reviewer)
        if item is None:
            raise NotFound(f"no entries are waiting for reviewer {reviewer!r}")
        row = item.to_json()
        if media_out and item.has_media:
            key = ev.EvidenceKey.load(key_file)
            _write_private(media_out, rq.view_media(session, reviewer, item.entry_id, key))
            row["media_written"] = True
        write_one(row, fmt)


@review.command("submit")
@click.argument("entry_id", type=int)
@click.option("--reviewer", required=True)
@click.option(
    "--verdict",
    "decision",
    required=True,
    type=click.Choice(list(rc.DECISIONS)),
    help="Decision (ridgeline scheme).",
)
@click.option(
    "--classification",
    "classes",
    multiple=True,
    help="scheme:label, e.g. industry:A1 (repeatable; needed for csam/exploitative).",
)
@click.option("--note", default=None)
@db_option
@format_option
@handle_errors
def submit(
    entry_id: int,
    reviewer: str,
    decision: str,
    classes: tuple[str, ...],
    note: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Record REVIEWER's verdict on ENTRY_ID."""
    store = open_store(db)
    with store.session() as session:
        outcome = rc.submit_verdict(session, entry_id, reviewer, decision, list(classes), note=note)
        write_one(outcome.to_json(), fmt)


@review.command("release")
@click.argument("entry_id", type=int)
@click.option("--reviewer", required=True)
@db_option
@format_option
@handle_errors
def release(entry_id: int, reviewer: str, db: str | None, fmt: str | None) -> None:
    """Hand an item back to the queue without a verdict."""
    store = open_store(db)
    with store.session() as session:
        released = rq.release_item(session, reviewer, entry_id)
        write_one({"entry_id": entry_id, "reviewer": reviewer, "released": released}, fmt)


@review.command("media")
@click.argument("entry_id", type=int)
@click.option("--reviewer", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@key_file_option
@db_option
@format_option
@handle_errors
def media(
    entry_id: int, reviewer: str, out: str, key_file: str | None, db: str | None, fmt: str | None
) -> None:
    """Write the blurred greyscale rendering of an entry served to REVIEWER."""
    key = ev.EvidenceKey.load(key_file)
    store = open_store(db)
    with store.session() as session:
        data = rq.view_media(session, reviewer, entry_id, key)
        _write_private(out, data)
        write_one({"entry_id": entry_id, "bytes": len(data), "blurred": True}, fmt)


@review.command("unblur")
@click.argument("entry_id", type=int)
@click.option("--reviewer", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--colour", is_flag=True, help="Also keep colour (greyscale otherwise).")
@click.option("--reason", default=None, help="Why the unblurred view is needed (logged).")
@key_file_option
@db_option
@format_option
@handle_errors
def unblur(
    entry_id: int,
    reviewer: str,
    out: str,
    colour: bool,
    reason: str | None,
    key_file: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Write the unblurred view of an entry served to REVIEWER (logged)."""
    key = ev.EvidenceKey.load(key_file)
    store = open_store(db)
    with store.session() as session:
        data = rq.unblur(session, reviewer, entry_id, key, colour=colour, reason=reason)
        _write_private(out, data)
        write_one(
            {
                "entry_id": entry_id,
                "bytes": len(data),
                "blurred": False,
                "colour": colour,
                "logged": True,
            },
            fmt,
        )


@review.command("status")
@click.argument("entry_id", type=int)
@click.option(
    "--reviewer",
    default=None,
    help="Show it as this reviewer sees it (other verdicts hidden until theirs).",
)
@db_option
@format_option
@handle_errors
def status(entry_id: int, reviewer: str | None, db: str | None, fmt: str | None) -> None:
    """An entry's review state (verdicts hidden while review is open)."""
    store = open_store(db)
    with store.session() as session:
        write_one(rc.entry_review_view(session, entry_id, reviewer).to_json(), fmt)


@review.command("exposure")
@click.option("--reviewer", required=True)
@db_option
@format_option
@handle_errors
def exposure(reviewer: str, db: str | None, fmt: str | None) -> None:
    """Items seen today and review time since the last break."""
    store = open_store(db)
    with store.session() as session:
        row = rc.get_reviewer(session, reviewer)
        result = exposure_status(session, row, now=utcnow(), policy=WellnessPolicy.from_env())
        write_one(result.to_json(), fmt)


@click.group("evidence")
def evidence() -> None:
    """Media kept for review, encrypted at rest (AES-GCM)."""


@evidence.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
@format_option
@handle_errors
def keygen(path: str, fmt: str | None) -> None:
    """Write a new random evidence key to PATH (mode 0600; keep it out of the database)."""
    key = ev.generate_key_file(path)
    write_one({"key_id": key.key_id, "written": True}, fmt)


@evidence.command("add")
@click.argument("entry_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False))
@actor_option()
@key_file_option
@db_option
@format_option
@handle_errors
def evidence_add(
    entry_id: int,
    file: str,
    actor: str | None,
    key_file: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Encrypt FILE and keep it as ENTRY_ID's media for review."""
    key = ev.EvidenceKey.load(key_file)
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read evidence file: {exc.strerror}") from None
    store = open_store(db)
    with store.session() as session:
        blob = ev.store_evidence(session, entry_id, data, key, actor=actor)
        write_one(blob.to_json(), fmt)


@evidence.command("ls")
@click.option("--entry", "entry_id", type=click.IntRange(min=1), default=None)
@db_option
@format_option
@handle_errors
def evidence_ls(entry_id: int | None, db: str | None, fmt: str | None) -> None:
    """Stored evidence (metadata only)."""
    store = open_store(db)
    columns = ["id", "entry_id", "size", "media_type", "stored_at", "key_id"]
    with store.session() as session, Writer(fmt, columns=columns) as out:
        out.write_all(b.to_json() for b in ev.list_evidence(session, entry_id))


@evidence.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    default=None,
    help="Retention in days (default RIDGELINE_EVIDENCE_RETENTION_DAYS or 365).",
)
@actor_option()
@db_option
@format_option
@handle_errors
def purge(days: int | None, actor: str | None, db: str | None, fmt: str | None) -> None:
    """Delete evidence kept longer than the retention period."""
    store = open_store(db)
    with store.session() as session:
        count = ev.purge(session, older_than_days=days, actor=actor)
        write_one(
            {"purged": count, "older_than_days": ev.retention_days() if days is None else days}, fmt
        )
