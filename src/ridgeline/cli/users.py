"""`ridgeline users ...`: people who log in to the web UI with a name and a password."""

from __future__ import annotations

import click

from ridgeline.cli.common import db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, write_one
from ridgeline.service.keys import ROLES


@click.group("users")
def users() -> None:
    """Web UI users who log in with a name and password (argon2id)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option(
    "--agency",
    default=None,
    help="The agency a law-enforcement user acts for (they see only its reports).",
)
@click.password_option(help="At least 12 characters (prompted for when not given).")
@db_option
@format_option
@handle_errors
def users_add(
    name: str, role: str, agency: str | None, password: str, db: str | None, fmt: str | None
) -> None:
    """Add user NAME (the name is also their reviewer / auditor identity)."""
    from ridgeline.ui.accounts import add_user

    store = open_store(db)
    with store.session() as session:
        row = add_user(session, name, role, password, agency=agency).to_json()
    write_one(row, fmt)


@users.command("ls")
@db_option
@format_option
@handle_errors
def users_ls(db: str | None, fmt: str | None) -> None:
    """List users (never their password hashes)."""
    from ridgeline.ui.accounts import list_users

    store = open_store(db)
    with store.session() as session:
        rows = [u.to_json() for u in list_users(session)]
    with Writer(fmt, columns=["id", "name", "role", "agency", "created_at", "disabled_at"]) as out:
        out.write_all(rows)


@users.command("disable")
@click.argument("name")
@db_option
@format_option
@handle_errors
def users_disable(name: str, db: str | None, fmt: str | None) -> None:
    """Disable user NAME and end their sessions in every worker."""
    from ridgeline.ui.accounts import disable_user

    store = open_store(db)
    with store.session() as session:
        row = disable_user(session, name).to_json()
    write_one(row, fmt)
