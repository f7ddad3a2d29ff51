"""`ridgeline lists ...`: create, show, import and edit hash lists."""

from __future__ import annotations

import datetime as dt

import click
from sqlalchemy import func, select

from ridgeline import lists as L
from ridgeline.classifications import parse as parse_classification
from ridgeline.cli.common import db_option, format_option, handle_errors, open_store
from ridgeline.errors import BadInput
from ridgeline.output import Writer, write_one
from ridgeline.store.models import Entry, HashList
from ridgeline.timeutil import parse_iso


def _parse_thresholds(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for raw in values:
        signal, _, number = raw.rpartition("=")
        try:
            out[signal.strip().lower() or "pdq"] = float(number)
        except ValueError:
            raise click.BadParameter(
                f"{raw!r}: expected a number (PDQ) or SIGNAL=NUMBER", param_hint="--threshold"
            ) from None
    return out


@click.group("lists")
def lists() -> None:
    """Hash lists: block lists and allow lists."""


@lists.command("create")
@click.argument("name")
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    help="Match threshold: N for PDQ, or SIGNAL=N (repeatable).",
)
@click.option(
    "--purpose", type=click.Choice(["block", "allow"]), default="block", show_default=True
)
@click.option("--signals", "signal_names", default="", help="Comma-separated signals accepted.")
@click.option("--owner", default=None)
@click.option("--description", default=None)
@click.option(
    "--review-quorum",
    type=int,
    default=0,
    show_default=True,
    help="Agreeing independent verdicts before an entry is listed (0: no review policy).",
)
@db_option
@format_option
@handle_errors
def create(
    name: str,
    thresholds: tuple[str, ...],
    purpose: str,
    signal_names: str,
    owner: str | None,
    description: str | None,
    review_quorum: int,
    db: str | None,
    fmt: str | None,
) -> None:
    """Create a list called NAME."""
    store = open_store(db)
    with store.session() as session:
        hash_list = L.create_list(
            session,
            name,
            purpose=purpose,
            thresholds=_parse_thresholds(thresholds),
            signals=[s.strip() for s in signal_names.split(",") if s.strip()],
            owner=owner,
            description=description,
            review_quorum=review_quorum,
        )
        write_one(L.list_to_json(hash_list, entry_count=0), fmt)


@lists.command("ls")
@db_option
@format_option
@handle_errors
def ls(db: str | None, fmt: str | None) -> None:
    """List every list with its entry count."""
    store = open_store(db)
    with store.session() as session:
        counts = dict(
            session.execute(
                select(Entry.list_id, func.count())
                .where(Entry.deleted_at.is_(None))
                .group_by(Entry.list_id)
            ).all()
        )
        with Writer(fmt) as out:
            for hash_list in session.scalars(select(HashList).order_by(HashList.name)):
                out.write(L.list_to_json(hash_list, entry_count=counts.get(hash_list.id, 0)))


@lists.command("show")
@click.argument("name")
@db_option
@format_option
@handle_errors
def show(name: str, db: str | None, fmt: str | None) -> None:
    """Show a list's settings."""
    store = open_store(db)
    with store.session() as session:
        hash_list = L.get_list(session, name)
        count = session.scalar(
            select(func.count())
            .select_from(Entry)
            .where(Entry.list_id == hash_list.id, Entry.deleted_at.is_(None))
        )
        write_one(L.list_to_json(hash_list, entry_count=count), fmt)


@lists.group("entries")
def entries() -> None:
    """Entries of a list: add, show, disable, enable, delete."""


@entries.command("add")
@click.argument("name")
@click.argument("hashes", nargs=-1, required=True)
@click.option("--classification", "classes", multiple=True, help="scheme:label (repeatable).")
@click.option("--source", default=None)
@click.option("--actor", default=None)
@db_option
@format_option
@handle_errors
def entries_add(
    name: str,
    hashes: tuple[str, ...],
    classes: tuple[str, ...],
    source: str | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Add one entry with HASHES given as SIGNAL:VALUE (e.g. pdq:f8f8...)."""
    signals: dict[str, str] = {}
    for item in hashes:
        signal, sep, value = item.partition(":")
        if not sep:
            raise BadInput(f"{item!r}: give hashes as SIGNAL:VALUE, e.g. pdq:<64 hex>")
        signals[signal.lower()] = value
    store = open_store(db)
    with store.session() as session:
        hash_list = L.get_list(session, name)
        entry = L.add_entry(
            session,
            hash_list,
            signals,
            classifications=[parse_classification(c) for c in classes],
            source=source,
            actor=actor,
        )
        write_one(L.entry_to_json(entry), fmt)


@entries.command("show")
@click.argument("entry_id", type=int)
@db_option
@format_option
@handle_errors
def entries_show(entry_id: int, db: str | None, fmt: str | None) -> None:
    """Show one entry."""
    store = open_store(db)
    with store.session() as session:
        write_one(L.entry_to_json(L.get_entry(session, entry_id)), fmt)


def _set_enabled(entry_id: int, enabled: bool, until: str | None, reason: str | None,
                 actor: str | None, db: str | None, fmt: str | None) -> None:  # fmt: skip
    expiry: dt.datetime | None = parse_iso(until) if until else None
    store = open_store(db)
    with store.session() as session:
        entry = L.set_entry_enabled(
            session, L.get_entry(session, entry_id), enabled, until=expiry, actor=actor,
            reason=reason,
        )  # fmt: skip
        write_one(L.entry_to_json(entry), fmt)


@entries.command("disable")
@click.argument("entry_id", type=int)
@click.option("--until", default=None, help="ISO 8601 time when the disable expires.")
@click.option("--reason", default=None)
@click.option("--actor", default=None)
@db_option
@format_option
@handle_errors
def entries_disable(entry_id: int, until: str | None, reason: str | None, actor: str | None,
                    db: str | None, fmt: str | None) -> None:  # fmt: skip
    """Stop an entry from matching (optionally until a time)."""
    _set_enabled(entry_id, False, until, reason, actor, db, fmt)


@entries.command("enable")
@click.argument("entry_id", type=int)
@click.option("--reason", default=None)
@click.option("--actor", default=None)
@db_option
@format_option
@handle_errors
def entries_enable(entry_id: int, reason: str | None, actor: str | None, db: str | None,
                   fmt: str | None) -> None:  # fmt: skip
    """Let a disabled entry match again."""
    _set_enabled(entry_id, True, None, reason, actor, db, fmt)


@entries.command("delete")
@click.argument("entry_id", type=int)
@click.option("--reason", default=None)
@click.option("--actor", default=None)
@db_option
@format_option
@handle_errors
def entries_delete(entry_id: int, reason: str | None, actor: str | None, db: str | None,
                   fmt: str | None) -> None:  # fmt: skip
    """Delete an entry (kept as a tombstone for history and sync)."""
    store = open_store(db)
    with store.session() as session:
        entry = L.delete_entry(session, L.get_entry(session, entry_id), actor=actor, reason=reason)
        write_one(L.entry_to_json(entry), fmt)
