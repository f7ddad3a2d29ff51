"""`ridgeline exchange add|ls|rm|status|reset|fetch|feedback`: live exchange sources.

Thin click commands over `ridgeline.exchange.live`. Credentials are never options:
they come from `RIDGELINE_EXCHANGE_<SOURCE>_<FIELD>` or the TOML file named by
`RIDGELINE_EXCHANGE_CREDENTIALS` (or `--credentials`).
"""

from __future__ import annotations

import json
from typing import Any

import click

from ridgeline.cli.common import (
    POSITIVE,
    actor_option,
    db_option,
    format_option,
    handle_errors,
    open_store,
)
from ridgeline.output import Writer, write_one

KINDS = ("ncmec", "stopncii", "threatexchange")
STATUS_COLUMNS = ["name", "kind", "list", "enabled", "interval_s", "pages", "records",
                  "last_success_at", "last_error", "fetching"]  # fmt: skip
credentials_option = click.option(
    "--credentials",
    "credentials_file",
    envvar="RIDGELINE_EXCHANGE_CREDENTIALS",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML file of credentials, a [SOURCE] table each (env RIDGELINE_EXCHANGE_CREDENTIALS).",
)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@click.group("exchange")
def exchange() -> None:
    """Live exchange sources: NCMEC hash sharing, StopNCII, ThreatExchange."""


@exchange.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), required=True)
@click.option("--list", "list_name", required=True, help="The list the source feeds.")
@click.option("--url", "base_url", default=None, help="Base URL (default: the service's own).")
@click.option("--environment", default=None,
              help="NCMEC environment (Industry, NGO, test_Industry, ...).")  # fmt: skip
@click.option("--privacy-group", default=None, help="ThreatExchange privacy group id.")
@click.option("--since", default=None, help="Fetch entries from this time (ISO 8601 or Unix s).")
@click.option("--every", "interval_s", default=3600.0, show_default=True, type=POSITIVE,
              help="Seconds between scheduled fetches in `ridgeline serve`.")  # fmt: skip
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE",
              help="Another setting (page_size, retry_attempts, members, ...; "
              "values are JSON where they parse).")  # fmt: skip
@click.option("--disabled", is_flag=True, help="Add it without scheduled fetches.")
@actor_option()
@db_option
@format_option
@handle_errors
def add(
    name: str,
    kind: str,
    list_name: str,
    base_url: str | None,
    environment: str | None,
    privacy_group: str | None,
    since: str | None,
    interval_s: float,
    extra: tuple[str, ...],
    disabled: bool,
    actor: str,
    db: str | None,
    fmt: str | None,
) -> None:
    """Add source NAME feeding a list (credentials: environment or credentials file)."""
    from ridgeline.exchange import live

    settings: dict[str, Any] = {}
    for key, value in (
        ("base_url", base_url),
        ("environment", environment),
        ("privacy_group", privacy_group),
        ("since", since),
    ):
        if value is not None:
            settings[key] = value
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        settings[key.strip()] = _value(value)
    store = open_store(db)
    with store.session() as session:
        live.add_source(
            session,
            name,
            kind,
            list_name,
            settings=settings,
            interval_s=interval_s,
            enabled=not disabled,
            actor=actor,
        )
        write_one(live.source_status(session, name).to_json(), fmt)


@exchange.command("ls")
@db_option
@format_option
@handle_errors
def ls(db: str | None, fmt: str | None) -> None:
    """Every source with its checkpoint and last outcome."""
    from ridgeline.exchange import live

    store = open_store(db)
    with store.session() as session, Writer(fmt, columns=STATUS_COLUMNS) as out:
        out.write_all(v.to_json() for v in live.list_sources(session))


@exchange.command("status")
@click.argument("name")
@db_option
@format_option
@handle_errors
def status(name: str, db: str | None, fmt: str | None) -> None:
    """Source NAME: settings, cursor, counters, last success and last error."""
    from ridgeline.exchange import live

    store = open_store(db)
    with store.session() as session:
        write_one(live.source_status(session, name).to_json(), fmt)


@exchange.command("rm")
@click.argument("name")
@actor_option()
@db_option
@handle_errors
def rm(name: str, actor: str, db: str | None) -> None:
    """Remove source NAME and its checkpoint (its entries stay on the list)."""
    from ridgeline.exchange import live

    store = open_store(db)
    with store.session() as session:
        live.remove_source(session, name, actor=actor)
    click.echo(f"removed source {name}", err=True)


@exchange.command("reset")
@click.argument("name")
@click.option("--since", default=None, help="Start again from this time (ISO 8601 or Unix s).")
@actor_option()
@db_option
@format_option
@handle_errors
def reset(name: str, since: str | None, actor: str, db: str | None, fmt: str | None) -> None:
    """Forget NAME's cursor: the next fetch starts from --since (or its own since)."""
    from ridgeline.exchange import live

    store = open_store(db)
    with store.session() as session:
        write_one(live.reset_source(session, name, since=since, actor=actor).to_json(), fmt)


@exchange.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--due", is_flag=True, help="Fetch every enabled source whose interval passed.")
@click.option(
    "--max-pages", default=None, type=click.IntRange(min=1), help="Stop after this many pages."
)
@credentials_option
@db_option
@format_option
@handle_errors
def fetch(
    names: tuple[str, ...],
    due: bool,
    max_pages: int | None,
    credentials_file: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Fetch sources NAMES from their checkpoints (each page committed with its cursor)."""
    import sys

    from ridgeline.errors import RidgelineError
    from ridgeline.exchange import live

    store = open_store(db)
    if due:
        results = live.fetch_due(store, credentials_file=credentials_file)
        failed = [r for r in results if isinstance(r, RidgelineError)]
        with Writer(fmt, columns=["source", "pages", "added", "deleted", "complete"]) as out:
            out.write_all(r.to_json() for r in results if isinstance(r, live.FetchReport))
        for error in failed:
            click.echo(f"Error: {error}", err=True)
        if failed:
            sys.exit(max(e.exit_status for e in failed))
        return
    if not names:
        raise click.UsageError("name a source, or use --due")
    errors = 0
    for name in names:

        def progress(report: live.FetchReport) -> None:
            click.echo(
                f"{report.source}: page {report.pages}, {report.added} added, "
                f"{report.deleted} deleted",
                err=True,
            )

        report = live.fetch_source(
            store,
            name,
            credentials_file=credentials_file,
            max_pages=max_pages,
            on_page=progress,
        )
        write_one(report.to_json(), fmt)
        for problem in report.errors:
            click.echo(f"{name}:{problem['position']}: {problem['error']}", err=True)
        errors += len(report.errors)
    if errors:
        sys.exit(1)


@exchange.command("feedback")
@click.argument("name")
@click.argument("entry_id", type=int)
@click.option("--affirmative/--negative", required=True,
              help="We confirm the entry (upvote, Blocked, HELPFUL) or dispute it.")  # fmt: skip
@click.option("--reason", default=None, help="Negative reason (NCMEC: its name or guid).")
@click.option("--signals", default=None, help="Only these signals (comma-separated).")
@credentials_option
@actor_option()
@db_option
@format_option
@handle_errors
def feedback(
    name: str,
    entry_id: int,
    affirmative: bool,
    reason: str | None,
    signals: str | None,
    credentials_file: str | None,
    actor: str,
    db: str | None,
    fmt: str | None,
) -> None:
    """Send our opinion of ENTRY_ID (fetched from source NAME) back to the partner."""
    from ridgeline.exchange import live

    store = open_store(db)
    sent = live.send_feedback(
        store,
        name,
        entry_id,
        affirmative=affirmative,
        reason=reason,
        signals=[s.strip() for s in signals.split(",")] if signals else None,
        credentials_file=credentials_file,
        actor=actor,
    )
    with Writer(fmt, columns=["method", "path", "detail"]) as out:
        out.write_all(s.to_json() for s in sent)
