"""`ridgeline keys ...`: create, list and revoke HTTP API keys."""

from __future__ import annotations

import click

from ridgeline.cli.common import POSITIVE, db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, write_one
from ridgeline.service.keys import ROLES, create_key, key_to_json, list_keys, revoke_key


@click.group("keys")
def keys() -> None:
    """API keys for `ridgeline serve` (stored as argon2 hashes)."""


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the key may do.")
@click.option("--name", default=None, help="Who or what uses the key (default: the role).")
@click.option(
    "--rate-limit",
    type=POSITIVE,
    default=None,
    help="Requests per second (default: server's).",
)
@click.option(
    "--agency",
    default=None,
    help="The agency a law-enforcement key acts for (it sees only reports made available to it).",
)
@db_option
@format_option
@handle_errors
def keys_create(
    role: str,
    name: str | None,
    rate_limit: float | None,
    agency: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Create a key and print its secret (shown this once only)."""
    store = open_store(db)
    with store.session() as session:
        key, secret = create_key(session, name or role, role, rate_limit=rate_limit, agency=agency)
        row = {**key_to_json(key), "key": secret}
    write_one(row, fmt)
    click.echo("Store the key now: it cannot be shown again.", err=True)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@db_option
@format_option
@handle_errors
def keys_list(include_revoked: bool, db: str | None, fmt: str | None) -> None:
    """List keys (prefix, name, role; never secrets)."""
    store = open_store(db)
    with store.session() as session:
        rows = [key_to_json(k) for k in list_keys(session, include_revoked=include_revoked)]
    columns = ["id", "prefix", "name", "role", "agency", "rate_limit", "revoked_at"]
    with Writer(fmt, columns=columns, keep=["prefix"]) as out:
        out.write_all(rows)


@keys.command("revoke")
@click.argument("key_id", type=int)
@db_option
@format_option
@handle_errors
def keys_revoke(key_id: int, db: str | None, fmt: str | None) -> None:
    """Revoke key KEY_ID."""
    store = open_store(db)
    with store.session() as session:
        row = key_to_json(revoke_key(session, key_id))
    write_one(row, fmt)
