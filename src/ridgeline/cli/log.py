"""`ridgeline log ...`: show, verify and anchor the tamper-evident log."""

from __future__ import annotations

import sys

import click

from ridgeline import auditlog
from ridgeline.cli.common import db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, write_one


@click.group("log")
def log_group() -> None:
    """The tamper-evident log of reviews, audits, list changes and unblurs."""


@log_group.command("verify")
@click.option(
    "--expect-head",
    default=None,
    help="A head hash anchored earlier (`log head`); also catches a cut-off tail.",
)
@db_option
@format_option
@handle_errors
def verify(expect_head: str | None, db: str | None, fmt: str | None) -> None:
    """Check the whole chain; exit 1 naming the first bad record."""
    store = open_store(db)
    with store.session() as session:
        result = auditlog.verify(session, expect_head=expect_head)
    write_one(result.to_json(), fmt)
    if not result.ok:
        click.echo(
            f"Error: log check failed at record {result.first_bad_seq}: {result.reason}", err=True
        )
        sys.exit(1)


@log_group.command("head")
@db_option
@format_option
@handle_errors
def head(db: str | None, fmt: str | None) -> None:
    """Print the newest record's seq and hash, to keep somewhere the database can't reach."""
    store = open_store(db)
    with store.session() as session:
        seq, digest = auditlog.head(session)
    write_one({"seq": seq, "hash": digest}, fmt)


@log_group.command("show")
@click.option("--subject", default=None, help="e.g. entry:12, list:3, reviewer:alice")
@click.option("--action", default=None, help="e.g. entry.verdict, entry.unblur, list.update")
@click.option("--since", "since_seq", type=int, default=0, help="Only records after this seq.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--newest-first", is_flag=True)
@db_option
@format_option
@handle_errors
def show(
    subject: str | None,
    action: str | None,
    since_seq: int,
    limit: int,
    newest_first: bool,
    db: str | None,
    fmt: str | None,
) -> None:
    """Print log records."""
    store = open_store(db)
    with (
        store.session() as session,
        Writer(fmt, columns=["seq", "at", "actor", "action", "subject", "details"]) as out,
    ):
        for rec in auditlog.records(
            session,
            subject=subject,
            action=action,
            since_seq=since_seq,
            limit=limit,
            newest_first=newest_first,
        ):
            out.write(rec.to_json())
