"""Options and error handling shared by every CLI command."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ridgeline.errors import RidgelineError, Unavailable
from ridgeline.output import FORMATS

#: Seconds and rates: above 0. `NON_NEGATIVE`: where 0 means "at once" or "off".
POSITIVE = click.FloatRange(min=0, min_open=True)
NON_NEGATIVE = click.FloatRange(min=0)
#: A share strictly between 0 and 1 (a margin of error, a confidence level).
SHARE = click.FloatRange(0, 1, min_open=True, max_open=True)

F = TypeVar("F", bound=Callable[..., Any])

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default: table on a terminal, jsonl otherwise).",
)


def _actor_default(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    from ridgeline.auditlog import default_actor

    return value or default_actor()


def actor_option(
    help: str = "Who did it, for the log (default: the operating-system user).",
) -> Any:
    """`--actor NAME`, defaulting to the OS user so the tamper-evident log never says null."""
    return click.option("--actor", default=None, callback=_actor_default, help=help)


def db_option(func: F) -> F:
    """`--db PATH|URL` (or RIDGELINE_DB): a file path is SQLite, a postgresql:// URL PostgreSQL."""
    return click.option(
        "--db",
        envvar="RIDGELINE_DB",
        default=None,
        help="Database: SQLite file path or postgresql:// URL (env RIDGELINE_DB).",
    )(func)


def open_store(db: str | None, *, create: bool = False) -> Any:
    """Open the store named by --db, turning connection failures into clear errors.

    Only commands that create data (`db init`, `lists create`, `demo`) pass `create=True`
    and say on stderr when they made a database; for every other command a database
    that is not there is an error naming it (a mistyped --db must not leave an empty
    database and a zero exit status behind).
    """
    from sqlalchemy.exc import OperationalError

    from ridgeline.store import Store

    try:
        store = Store.open(db, create=create)
    except OperationalError as exc:
        raise Unavailable(f"cannot open database: {exc.orig}") from None
    if store.created:
        click.echo(f"created database {store.display_url}", err=True)
    return store


def fail(message: str, status: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(status)


def handle_errors(func: F) -> F:
    """Exit with the error's own status (`exit_status`: 2 for bad input, 1 for a failed check)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RidgelineError as exc:
            fail(str(exc), exc.exit_status)
        return None

    return wrapper  # type: ignore[return-value]


def parse_signal_names(text: str | None) -> list[str] | None:
    """`--signals md5,pdq` as a list (None when not given); unknown names are bad usage."""
    from ridgeline.signals import all_signals

    if not text:
        return None
    signals = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [s for s in signals if s not in all_signals()]
    if unknown:
        raise click.BadParameter(
            f"unknown signal(s) {', '.join(unknown)}; installed: {', '.join(all_signals())}",
            param_hint="--signals",
        )
    return signals
