"""`ridgeline db ...`: schema migrations and where the database is."""

from __future__ import annotations

import click

from ridgeline.cli.common import db_option, handle_errors, open_store
from ridgeline.config import resolve_db_url


@click.group("db")
def db_group() -> None:
    """Database schema and location."""


@db_group.command("init")
@db_option
@handle_errors
def init(db: str | None) -> None:
    """Create the database (and its folder) if needed and apply every migration."""
    store = open_store(db, create=True)
    click.echo(f"database is ready: {store.display_url}")


@db_group.command("upgrade")
@db_option
@handle_errors
def upgrade(db: str | None) -> None:
    """Apply every migration to an existing database (`db init` creates one)."""
    store = open_store(db)
    click.echo(f"database is up to date: {store.display_url}")


@db_group.command("where")
@db_option
def where(db: str | None) -> None:
    """Print the database URL that would be used."""
    click.echo(resolve_db_url(db))
