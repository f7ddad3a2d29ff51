"""`ridgeline lists ...`: create, show, import and edit hash lists."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from ridgeline.classifications import parse as parse_classification
from ridgeline.cli.common import actor_option, db_option, format_option, handle_errors, open_store
from ridgeline.cli.lazy import LazyGroup
from ridgeline.errors import BadInput
from ridgeline.output import Writer, write_one
from ridgeline.timeutil import parse_iso

if TYPE_CHECKING:
    from ridgeline import lists as L
else:  # imported on first use: `lists ls` and `--help` must not pay for SQLAlchemy
    from ridgeline.cli.lazy import lazy_module

    L = lazy_module("ridgeline.lists")

#: As `ridgeline.lists` defines them (checked in tests/test_cli_startup.py); literal
#: here so that building the commands imports nothing heavy.
DEFAULT_REVIEW_QUORUM = 3
ENTRY_STATUSES = ("pending", "confirmed", "rejected", "disputed", "retired", "reference")


def _parse_thresholds(values: tuple[str, ...]) -> dict[str, float]:
    """`--threshold N|SIGNAL=N` checked against each signal's bounds; warns above the safe range."""
    out: dict[str, float] = {}
    for raw in values:
        signal, _, number = raw.rpartition("=")
        try:
            out[signal.strip().lower() or "pdq"] = float(number)
        except ValueError:
            raise click.BadParameter(
                f"{raw!r}: expected a number (PDQ) or SIGNAL=NUMBER", param_hint="--threshold"
            ) from None
    for warning in L.threshold_warnings(out):  # BadInput (exit 2) out of bounds
        click.echo(f"Warning: {warning}", err=True)
    return out


#: `lists` subcommands that live in other modules (loaded when they run).
LAZY_COMMANDS = {
    "actions": ("ridgeline.cli.scan", "list_actions",
                "Show (or --set) the actions matches on list NAME fire during scans."),
    "export": ("ridgeline.cli.exchange", "export", "Write list NAME in an exchange format."),
    "feedback": ("ridgeline.cli.exchange", "feedback_cmd",
                 "Record affirmative or negative feedback on entry ENTRY_ID."),
    "feedback-export": ("ridgeline.cli.exchange", "feedback_export",
                        "Write this database's feedback to FILE (JSON lines) for the list "
                        "owner."),
    "feedback-import": ("ridgeline.cli.exchange", "feedback_import",
                        "Import a provider's feedback FILE; bad lines are reported and "
                        "skipped."),
    "feedback-show": ("ridgeline.cli.exchange", "feedback_show",
                      "Feedback per entry of list NAME, most negative first."),
    "import": ("ridgeline.cli.lists_import", "import_",
               "Import hashes from FILE into list NAME."),
    "keygen": ("ridgeline.cli.exchange", "keygen",
               "Make an Ed25519 key pair for signing releases."),
    "pull": ("ridgeline.cli.exchange", "pull",
             "Verify and apply signed releases from SOURCE (a directory or a manifest file)."),
    "release": ("ridgeline.cli.exchange", "release",
                "Write a signed release of NAME: snapshot, delta since the last release, "
                "manifest."),
}  # fmt: skip


@click.group("lists", cls=LazyGroup, lazy=LAZY_COMMANDS)
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
@click.option(
    "--review",
    "reviewed",
    is_flag=True,
    help=f"Reviewed list: quorum {DEFAULT_REVIEW_QUORUM} unless --review-quorum says otherwise.",
)
@actor_option()
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
    reviewed: bool,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Create a list called NAME."""
    if reviewed and review_quorum == 0:
        review_quorum = L.DEFAULT_REVIEW_QUORUM
    parsed = _parse_thresholds(thresholds)
    store = open_store(db, create=True)  # the first list may create the database
    with store.session() as session:
        hash_list = L.create_list(
            session,
            name,
            purpose=purpose,
            thresholds=parsed,
            signals=[s.strip() for s in signal_names.split(",") if s.strip()],
            owner=owner,
            description=description,
            review_quorum=review_quorum,
            actor=actor,
        )
        write_one(L.list_to_json(hash_list, entry_count=0), fmt)


@lists.command("ls")
@db_option
@format_option
@handle_errors
def ls(db: str | None, fmt: str | None) -> None:
    """List every list with its entry count."""
    from ridgeline.fastread import list_summaries

    rows = list_summaries(db)  # SQLite at the newest schema: no SQLAlchemy at all
    if rows is not None:
        columns = ["name", "purpose", "enabled", "entries", "thresholds", "review_quorum", "owner"]
        with Writer(fmt, columns=columns, keep=["name", "entries"]) as out:
            out.write_all(rows)
        return
    from sqlalchemy import select

    from ridgeline.lists.models import HashList, ListCount

    store = open_store(db)
    with store.session() as session:
        # Kept by triggers (list_counts): no scan of the entries, however many.
        counts = dict(session.execute(select(ListCount.list_id, ListCount.entries)).all())
        columns = ["name", "purpose", "enabled", "entries", "thresholds", "review_quorum", "owner"]
        with Writer(fmt, columns=columns, keep=["name", "entries"]) as out:
            for hash_list in session.scalars(select(HashList).order_by(HashList.name)):
                out.write(L.list_to_json(hash_list, entry_count=counts.get(hash_list.id, 0)))


@lists.command("show")
@click.argument("name")
@db_option
@format_option
@handle_errors
def show(name: str, db: str | None, fmt: str | None) -> None:
    """Show a list's settings."""
    from ridgeline.lists.models import ListCount

    store = open_store(db)
    with store.session() as session:
        hash_list = L.get_list(session, name)
        counted = session.get(ListCount, hash_list.id)
        count = counted.entries if counted is not None else 0
        write_one(L.list_to_json(hash_list, entry_count=count), fmt)


@lists.group("entries")
def entries() -> None:
    """Entries of a list: add, show, disable, enable, delete."""


@entries.command("add")
@click.argument("name")
@click.argument("hashes", nargs=-1, required=True)
@click.option("--classification", "classes", multiple=True, help="scheme:label (repeatable).")
@click.option("--source", default=None)
@actor_option()
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
@actor_option()
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
@actor_option()
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
@actor_option()
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


@lists.command("update")
@click.argument("name")
@click.option("--enable/--disable", "enabled", default=None, help="Turn the whole list on or off.")
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    help="Match threshold: N for PDQ, or SIGNAL=N (repeatable).",
)
@click.option("--clear-threshold", "cleared", multiple=True, help="SIGNAL back to its default.")
@click.option("--review-quorum", type=int, default=None)  # checked by the library, as on create
@click.option("--description", default=None)
@click.option("--owner", default=None)
@actor_option()
@db_option
@format_option
@handle_errors
def update(name: str, enabled: bool | None, thresholds: tuple[str, ...], cleared: tuple[str, ...],
           review_quorum: int | None, description: str | None, owner: str | None,
           actor: str | None, db: str | None, fmt: str | None) -> None:  # fmt: skip
    """Change a list's settings (logged; indexes follow through the change feed)."""
    parsed = _parse_thresholds(thresholds) if thresholds else None
    store = open_store(db)
    with store.session() as session:
        hash_list = L.update_list(
            session, L.get_list(session, name), enabled=enabled,
            thresholds=parsed,
            clear_thresholds=cleared, review_quorum=review_quorum, description=description,
            owner=owner, actor=actor,
        )  # fmt: skip
        if review_quorum is not None:  # decide entries that already meet the new quorum
            from ridgeline.review.core import reevaluate_list

            reevaluate_list(session, hash_list, actor=actor)
        write_one(L.list_to_json(hash_list), fmt)


@lists.command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@db_option
@format_option
@handle_errors
def history(name: str, limit: int, db: str | None, fmt: str | None) -> None:
    """Changes to a list's settings, from the tamper-evident log."""
    from ridgeline import auditlog

    store = open_store(db)
    with (
        store.session() as session,
        Writer(fmt, columns=["seq", "at", "actor", "action", "details"]) as out,
    ):
        hash_list = L.get_list(session, name)
        for rec in auditlog.records(session, subject=f"list:{hash_list.id}", limit=limit):
            out.write(rec.to_json())


@lists.command("expire-disables")
@actor_option()
@db_option
@format_option
@handle_errors
def expire_disables(actor: str | None, db: str | None, fmt: str | None) -> None:
    """Re-enable entries whose timed disable has run out."""
    store = open_store(db)
    with store.session() as session:
        done = L.expire_disables(session, actor=actor)
        write_one({"re_enabled": [e.id for e in done]}, fmt)


@entries.command("ls")
@click.argument("name")
@click.option("--status", "statuses", multiple=True, type=click.Choice(list(ENTRY_STATUSES)))
@click.option("--enabled/--disabled", "enabled", default=None)
@click.option("--classification", default=None, help="scheme:label")
@click.option("--include-deleted", is_flag=True)
@click.option(
    "--after-id", type=click.IntRange(min=0), default=0, help="Page: only ids after this one."
)
@click.option("--limit", type=click.IntRange(min=1), default=None)
@click.option("--series", default=None, help="Only entries of this series (VICS Series).")
@click.option("--victim-identified/--victim-not-identified", "victim_identified", default=None,
              help="Only entries whose victim is (or is not) identified.")  # fmt: skip
@click.option("--member", default=None, help="Only entries shared by this member (id or name).")
@db_option
@format_option
@handle_errors
def entries_ls(name: str, statuses: tuple[str, ...], enabled: bool | None,
               classification: str | None, include_deleted: bool, after_id: int,
               limit: int | None, series: str | None, victim_identified: bool | None,
               member: str | None, db: str | None, fmt: str | None) -> None:  # fmt: skip
    """Entries of list NAME, filtered by status, enabled flag, classification, series,
    victim-identified flag and member."""
    store = open_store(db)
    with store.session() as session, Writer(
        fmt, columns=["id", "status", "enabled", "disabled_until", "signals", "classifications",
                      "source", "member", "series", "victim_identified", "case_numbers",
                      "deleted_at"], keep=["signals"],
    ) as out:  # fmt: skip
        hash_list = L.get_list(session, name)
        for entry in L.list_entries(
            session, hash_list, status=list(statuses) or None, enabled=enabled,
            classification=parse_classification(classification) if classification else None,
            include_deleted=include_deleted, after_id=after_id, limit=limit, series=series,
            victim_identified=victim_identified, member=member,
        ):  # fmt: skip
            row = L.entry_to_json(entry)
            row["member"] = entry.origin_member_name or entry.origin_member
            out.write(row)


@entries.command("history")
@click.argument("entry_id", type=int)
@db_option
@format_option
@handle_errors
def entries_history(entry_id: int, db: str | None, fmt: str | None) -> None:
    """Every recorded change of one entry, oldest first."""
    store = open_store(db)
    with (
        store.session() as session,
        Writer(fmt, columns=["at", "actor", "action", "details"]) as out,
    ):
        out.write_all(L.event_to_json(e) for e in L.entry_history(session, entry_id))


@entries.command("retire")
@click.argument("entry_id", type=int)
@click.option("--reason", default=None)
@actor_option()
@db_option
@format_option
@handle_errors
def entries_retire(entry_id: int, reason: str | None, actor: str | None, db: str | None,
                   fmt: str | None) -> None:  # fmt: skip
    """Withdraw an entry for good (the end state; it never matches again)."""
    store = open_store(db)
    with store.session() as session:
        entry = L.retire_entry(session, L.get_entry(session, entry_id), actor=actor, reason=reason)
        write_one(L.entry_to_json(entry), fmt)
