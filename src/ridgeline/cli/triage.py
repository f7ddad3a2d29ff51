"""`ridgeline reports queue|override|stats|triage-rules`: triage of received reports.

Thin commands over `ridgeline.triage` and `ridgeline.tipstats`, attached to the
`reports` group (they are about received reports).
"""

from __future__ import annotations

from pathlib import Path

import click

from ridgeline.cli.common import actor_option, db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, write_one

QUEUE_COLUMNS = ["report_id", "priority", "label", "received_at", "overridden", "top_reason"]


@click.command("queue")
@click.option("--priority", type=click.IntRange(1, 4), default=None, help="Only this priority.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@db_option
@format_option
@handle_errors
def queue(priority: int | None, limit: int, offset: int, db: str | None, fmt: str | None) -> None:
    """Received reports to work on: most urgent first, then oldest first."""
    from ridgeline import triage

    store = open_store(db)
    with store.session() as session, Writer(fmt, columns=QUEUE_COLUMNS) as out:
        out.write_all(
            r.to_json()
            for r in triage.queue(session, priority=priority, limit=limit, offset=offset)
        )


@click.command("override")
@click.argument("report_id", type=int)
@click.option("--priority", type=click.IntRange(1, 4), required=True, help="The new priority.")
@click.option("--reason", required=True, help="Why (kept in the tamper-evident log).")
@actor_option()
@db_option
@format_option
@handle_errors
def override(
    report_id: int, priority: int, reason: str, actor: str, db: str | None, fmt: str | None
) -> None:
    """Set a received report's priority by hand, with a reason (logged)."""
    from ridgeline import triage

    store = open_store(db)
    with store.session() as session:
        shown = triage.override(session, report_id, priority, reason, actor).to_json()
    write_one(shown, fmt)


@click.command("stats")
@click.option("--since", default=None, help="Only reports received at or after (ISO 8601).")
@click.option("--until", default=None, help="Only reports received before (ISO 8601).")
@click.option(
    "--charts",
    "charts_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write bar charts into this folder.",
)
@click.option(
    "--chart-format",
    "chart_formats",
    type=click.Choice(["png", "svg"]),
    multiple=True,
    help="Chart format(s) (default: png and svg).",
)
@db_option
@format_option
@handle_errors
def stats(
    since: str | None,
    until: str | None,
    charts_dir: str | None,
    chart_formats: tuple[str, ...],
    db: str | None,
    fmt: str | None,
) -> None:
    """Counts by incident type, priority, referral/informational, agency and country;
    time from intake to triage and to availability."""
    from ridgeline import tipstats
    from ridgeline.timeutil import parse_iso

    store = open_store(db)
    with store.session() as session:
        result = tipstats.compute(
            session,
            since=parse_iso(since) if since else None,
            until=parse_iso(until) if until else None,
        )
    shown = result.to_json()
    if charts_dir is not None:
        paths = tipstats.write_charts(
            result, Path(charts_dir), chart_formats or tipstats.CHART_FORMATS
        )
        shown["charts"] = [str(p) for p in paths]
    write_one(shown, fmt)


@click.command("triage-rules")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A rules file (.toml or .json) to check and show (default: the built-in rules).",
)
@click.option("--toml", "as_toml", is_flag=True, help="Print the documented defaults as TOML.")
@format_option
@handle_errors
def triage_rules(rules_path: str | None, as_toml: bool, fmt: str | None) -> None:
    """Show the triage rules in force (checking a rules file), or the defaults as TOML."""
    from ridgeline import triage

    if as_toml:
        click.echo(triage.DEFAULT_RULES_TOML, nl=False)
        return
    write_one(triage.load_rules(rules_path).to_json(), fmt)


COMMANDS = (queue, override, stats, triage_rules)
