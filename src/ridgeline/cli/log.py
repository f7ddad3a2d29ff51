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
@click.option(
    "--anchors",
    "anchor_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="An anchor file (`log head --out`, `serve --anchor-file`): every line must match.",
)
@db_option
@format_option
@handle_errors
def verify(
    expect_head: str | None, anchor_file: str | None, db: str | None, fmt: str | None
) -> None:
    """Check the whole chain; exit 1 naming the first bad record."""
    anchors = []
    if anchor_file:
        from ridgeline.custody import read_anchors

        anchors = read_anchors(anchor_file)
    store = open_store(db)
    with store.session() as session:
        result = auditlog.verify(session, expect_head=expect_head, anchors=anchors)
    write_one(result.to_json(), fmt)
    if not result.ok:
        click.echo(
            f"Error: log check failed at record {result.first_bad_seq}: {result.reason}", err=True
        )
        sys.exit(1)


@log_group.command("head")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also append it as one JSON line to this anchor file (fsync'd).",
)
@db_option
@format_option
@handle_errors
def head(out_file: str | None, db: str | None, fmt: str | None) -> None:
    """Print the newest record's seq and hash, to keep somewhere the database can't reach."""
    from ridgeline.custody import anchor_line, append_anchor

    store = open_store(db)
    with store.session() as session:
        anchor = anchor_line(session)
    if out_file:
        append_anchor(out_file, anchor)
    write_one(anchor, fmt)


@log_group.command("verify-package")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--trust",
    type=click.Path(dir_okay=False),
    default=None,
    help="The exporter's Ed25519 public key (PEM): the manifest must be signed by it.",
)
@click.option(
    "--check-log", is_flag=True, help="Also check the package's log records against --db."
)
@db_option
@format_option
@handle_errors
def verify_package(
    directory: str, trust: str | None, check_log: bool, db: str | None, fmt: str | None
) -> None:
    """Check an exported package: signature, every file's sha256, nothing added; exit 1
    naming each problem."""
    from ridgeline import custody, releases

    trusted = releases.load_public_key(trust) if trust else None
    if check_log:
        store = open_store(db)
        with store.session() as session:
            result = custody.verify_package(directory, trusted, session=session)
    else:
        result = custody.verify_package(directory, trusted)
    if trusted is None and result.ok:
        click.echo("Warning: no --trust key: hashes checked, signature not", err=True)
    write_one(result.to_json(), fmt)
    for problem in result.problems:
        click.echo(f"Error: {problem}", err=True)
    if not result.ok:
        sys.exit(1)


@log_group.command("show")
@click.option("--subject", default=None, help="e.g. entry:12, list:3, reviewer:alice")
@click.option("--action", default=None, help="e.g. entry.verdict, entry.unblur, list.update")
@click.option(
    "--since", "since_seq", type=click.IntRange(min=0), default=0,
    help="Only records after this seq.",
)  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
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
