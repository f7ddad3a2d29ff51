"""`ridgeline reviewers ...`: reviewer records with roles and wellness settings."""

from __future__ import annotations

from typing import Any

import click

from ridgeline.cli.common import actor_option, db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, write_one
from ridgeline.review import core as rc


@click.group("reviewers")
def reviewers() -> None:
    """Reviewers: roles (reviewer, senior), categories, daily cap, break policy."""


@reviewers.command("add")
@click.argument("name")
@click.option("--senior", is_flag=True, help="May decide disputed entries.")
@click.option("--senior-only", is_flag=True, help="Senior role without first-stage review.")
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="scheme:label, list:NAME or unclassified this reviewer may see (repeatable; none: all).",
)
@click.option("--daily-cap", type=int, default=None, help="Items per UTC day.")
@click.option("--break-after-minutes", type=int, default=None)
@click.option("--break-minutes", type=int, default=None, help="Length of the enforced break.")
@actor_option()
@db_option
@format_option
@handle_errors
def add(
    name: str,
    senior: bool,
    senior_only: bool,
    categories: tuple[str, ...],
    daily_cap: int | None,
    break_after_minutes: int | None,
    break_minutes: int | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Add reviewer NAME."""
    store = open_store(db)
    with store.session() as session:
        row = rc.add_reviewer(
            session,
            name,
            senior=senior or senior_only,
            reviewer=not senior_only,
            categories=categories,
            daily_cap=daily_cap,
            break_after_minutes=break_after_minutes,
            break_minutes=break_minutes,
            actor=actor,
        )
        write_one(rc.reviewer_to_json(row), fmt)


@reviewers.command("ls")
@db_option
@format_option
@handle_errors
def ls(db: str | None, fmt: str | None) -> None:
    """All reviewers."""
    store = open_store(db)
    columns = ["name", "reviewer", "senior", "active", "categories", "daily_cap",
               "break_after_minutes", "break_minutes"]  # fmt: skip
    with store.session() as session, Writer(fmt, columns=columns) as out:
        out.write_all(rc.reviewer_to_json(r) for r in rc.list_reviewers(session))


@reviewers.command("update")
@click.argument("name")
@click.option("--senior/--no-senior", default=None)
@click.option("--reviewer-role/--no-reviewer-role", "reviewer_role", default=None)
@click.option("--active/--inactive", default=None)
@click.option("--category", "categories", multiple=True, help="Replaces the categories.")
@click.option("--all-categories", is_flag=True, help="Clear the category restriction.")
@click.option("--daily-cap", type=int, default=None)
@click.option("--break-after-minutes", type=int, default=None)
@click.option("--break-minutes", type=int, default=None)
@actor_option()
@db_option
@format_option
@handle_errors
def update(
    name: str,
    senior: bool | None,
    reviewer_role: bool | None,
    active: bool | None,
    categories: tuple[str, ...],
    all_categories: bool,
    daily_cap: int | None,
    break_after_minutes: int | None,
    break_minutes: int | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Change a reviewer's roles, categories or limits."""
    kwargs: dict[str, Any] = {}
    if daily_cap is not None:
        kwargs["daily_cap"] = daily_cap
    if break_after_minutes is not None:
        kwargs["break_after_minutes"] = break_after_minutes
    if break_minutes is not None:
        kwargs["break_minutes"] = break_minutes
    cats: list[str] | None = [] if all_categories else (list(categories) or None)
    store = open_store(db)
    with store.session() as session:
        row = rc.update_reviewer(
            session,
            name,
            senior=senior,
            reviewer=reviewer_role,
            active=active,
            categories=cats,
            actor=actor,
            **kwargs,
        )
        write_one(rc.reviewer_to_json(row), fmt)
