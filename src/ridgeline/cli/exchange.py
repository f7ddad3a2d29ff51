"""`ridgeline lists export|keygen|release|pull|feedback|feedback-export|feedback-import`.

Thin click commands over `ridgeline.exchange`, `ridgeline.releases` and
`ridgeline.feedback`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ridgeline import exchange, feedback, releases
from ridgeline import lists as L
from ridgeline.cli.common import actor_option, db_option, format_option, handle_errors, open_store
from ridgeline.errors import BadInput
from ridgeline.output import Writer, write_one
from ridgeline.timeutil import parse_iso


@click.command("export")
@click.argument("name")
@click.option("--format", "file_format", type=click.Choice(exchange.EXPORT_FORMATS), required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), default="-", show_default=True,
              help="File to write ('-' for standard output).")  # fmt: skip
@click.option("--include-deleted", is_flag=True,
              help="Write tombstones as deletions (ncmec-xml, icse, stopncii).")  # fmt: skip
@click.option("--vics-version", type=click.Choice(["1.3", "2.0"]), default="2.0", show_default=True)
@click.option("--vics-profile", default=None,
              help="VICS 2.0 category profile (US, CA, UK; default: the profile the "
              "entries were read with, else US).")  # fmt: skip
@click.option("--vics-cases", is_flag=True, help="VICS: write a #Cases export, not #Media.")
@click.option("--status", "statuses", default=None,
              help="Write live entries with these statuses (comma-separated, e.g. "
              "pending,confirmed) instead of only those that can match now.")  # fmt: skip
@click.option("--member-id", envvar="RIDGELINE_MEMBER_ID", default=None,
              help="Our member id in the exchange, written on our own entries "
              "(ncmec-xml; env RIDGELINE_MEMBER_ID; default 0).")  # fmt: skip
@click.option("--member-name", envvar="RIDGELINE_MEMBER_NAME", default=None,
              help="Our member name (ncmec-xml; env RIDGELINE_MEMBER_NAME; default: the "
              "list's owner).")  # fmt: skip
@db_option
@handle_errors
def export(
    name: str,
    file_format: str,
    out: str,
    include_deleted: bool,
    vics_version: str,
    vics_profile: str | None,
    vics_cases: bool,
    statuses: str | None,
    member_id: str | None,
    member_name: str | None,
    db: str | None,
) -> None:
    """Write list NAME in an exchange format.

    Only entries that can match now are written unless --status says otherwise; what
    was written and what could not be carried (per reason) is printed to stderr.
    """
    store = open_store(db)
    with store.session() as session:
        result = exchange.export_report(
            session,
            L.get_list(session, name),
            file_format,
            include_deleted=include_deleted,
            statuses=None if statuses is None else [s.strip() for s in statuses.split(",")],
            vics_version=vics_version,
            vics_profile=vics_profile,
            vics_cases=vics_cases,
            member_id=member_id,
            member_name=member_name,
        )
    if out == "-":
        sys.stdout.buffer.write(result.data)
    else:
        Path(out).write_bytes(result.data)
    click.echo(f"wrote {result.written} entries and {result.deletions} deletions", err=True)
    for reason, count in sorted(result.not_carried.items()):
        click.echo(f"not written: {count} ({reason})", err=True)


@click.command("keygen")
@click.option("--out", "prefix", required=True,
              help="Writes PREFIX.key (private, mode 600) and PREFIX.pub.")  # fmt: skip
@format_option
@handle_errors
def keygen(prefix: str, fmt: str | None) -> None:
    """Make an Ed25519 key pair for signing releases."""
    private, public = Path(prefix + ".key"), Path(prefix + ".pub")
    kid = releases.generate_keypair(private, public)
    write_one({"private_key": str(private), "public_key": str(public), "key_id": kid}, fmt)


@click.command("release")
@click.argument("name")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="Ed25519 private key (PEM) from `lists keygen`.")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@actor_option()
@db_option
@format_option
@handle_errors
def release(
    name: str, key_file: str, out_dir: str, actor: str | None, db: str | None, fmt: str | None
) -> None:
    """Write a signed release of NAME: snapshot, delta since the last release, manifest."""
    key = releases.load_private_key(key_file)
    store = open_store(db)
    with store.session() as session:
        result = releases.create_release(
            session, L.get_list(session, name), key, out_dir, actor=actor
        )
    write_one(result.to_json(), fmt)


@click.command("pull")
@click.argument("source", type=click.Path(exists=False))
@click.option("--trust", "trust", required=True, type=click.Path(dir_okay=False),
              help="The publisher's Ed25519 public key (PEM).")  # fmt: skip
@click.option("--into", default=None, help="Local list (default: the released list's name).")
@click.option("--snapshot", is_flag=True, help="Apply the snapshot: reset to that version.")
@actor_option()
@db_option
@format_option
@handle_errors
def pull(
    source: str,
    trust: str,
    into: str | None,
    snapshot: bool,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Verify and apply signed releases from SOURCE (a directory or a manifest file).

    Tampered files, a wrong key, replays and gaps in the version sequence are refused
    and nothing is changed.
    """
    public = releases.load_public_key(trust)
    store = open_store(db)
    with store.session() as session:
        result = releases.pull_release(
            session, source, public, into=into, snapshot=snapshot, actor=actor
        )
    write_one(result.to_json(), fmt)


@click.command("feedback")
@click.argument("entry_id", type=int)
@click.option("--affirmative", "kind", flag_value="affirmative", help="The entry is right.")
@click.option("--negative", "kind", flag_value="negative", help="The entry is wrong.")
@click.option("--reason", default=None, help="Why (required for negative feedback).")
@click.option("--provider", required=True, envvar="RIDGELINE_PROVIDER",
              help="Your organisation's name (env RIDGELINE_PROVIDER).")  # fmt: skip
@db_option
@format_option
@handle_errors
def feedback_cmd(
    entry_id: int,
    kind: str | None,
    reason: str | None,
    provider: str,
    db: str | None,
    fmt: str | None,
) -> None:
    """Record affirmative or negative feedback on entry ENTRY_ID."""
    if kind is None:
        raise BadInput("pass --affirmative or --negative")
    store = open_store(db)
    with store.session() as session:
        row = feedback.record_feedback(
            session, L.get_entry(session, entry_id), provider=provider, kind=kind, reason=reason
        )
        write_one(
            {"uid": row.uid, "entry_id": entry_id, "kind": row.kind, "reason": row.reason}, fmt
        )


@click.command("feedback-export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--list", "list_name", default=None, help="Only feedback on this list's entries.")
@click.option("--since", default=None, help="Only feedback given at or after this ISO time.")
@db_option
@handle_errors
def feedback_export(file: str, list_name: str | None, since: str | None, db: str | None) -> None:
    """Write this database's feedback to FILE (JSON lines) for the list owner."""
    when = None
    if since:
        try:
            when = parse_iso(since)
        except ValueError:
            raise BadInput(f"--since {since!r}: expected an ISO 8601 time") from None
    store = open_store(db)
    with store.session() as session:
        hash_list = L.get_list(session, list_name) if list_name else None
        data = feedback.export_feedback(session, hash_list=hash_list, since=when)
    Path(file).write_bytes(data)


@click.command("feedback-import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--list", "list_name", default=None, help="Match entries of this list only.")
@db_option
@format_option
@handle_errors
def feedback_import(file: str, list_name: str | None, db: str | None, fmt: str | None) -> None:
    """Import a provider's feedback FILE; bad lines are reported and skipped."""
    store = open_store(db)
    with store.session() as session:
        hash_list = L.get_list(session, list_name) if list_name else None
        report = feedback.import_feedback(session, file, hash_list=hash_list)
    for error in report.errors:
        click.echo(f"{file}:{error['line']}: {error['error']}", err=True)
    write_one(report.to_json() | {"errors": len(report.errors)}, fmt)
    if report.errors:
        sys.exit(1)


@click.command("feedback-show")
@click.argument("name")
@db_option
@format_option
@handle_errors
def feedback_show(name: str, db: str | None, fmt: str | None) -> None:
    """Feedback per entry of list NAME, most negative first."""
    store = open_store(db)
    with store.session() as session:
        rows = feedback.list_summary(session, L.get_list(session, name))
    columns = ["entry_id", "affirmative", "negative", "reasons", "providers"]
    with Writer(fmt, columns=columns) as out:
        out.write_all(rows)


COMMANDS = (
    export, keygen, release, pull, feedback_cmd, feedback_export, feedback_import, feedback_show,
)  # fmt: skip
