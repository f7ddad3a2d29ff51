"""`ridgeline reports intake ...` and `ridgeline cases ...`: received reports in, cases out.

Thin layers over `ridgeline.intake` and `ridgeline.cases`. Intake prints one JSONL row a
document, `{"source", "report_id", "status", "problems"}`, and prints a batch's rows
only after the batch is committed: a printed `stored` is a stored report.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from ridgeline.cli.common import actor_option, db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, write_one

CASE_COLUMNS = ["case_id", "reports", "links"]


def link_options(func: Any) -> Any:
    func = click.option(
        "--ip-window-hours",
        type=click.FloatRange(0),
        default=24.0,
        show_default=True,
        help="Two sightings of one IP link only this close in time.",
    )(func)
    func = click.option(
        "--viral-threshold",
        type=click.IntRange(1),
        default=20,
        show_default=True,
        help="A file in more reports than this bundles them instead of linking them.",
    )(func)
    return func


def _config(ip_window_hours: float, viral_threshold: int) -> Any:
    from ridgeline.cases import LinkConfig
    from ridgeline.intake import IntakeConfig

    return IntakeConfig(
        link=LinkConfig(
            ip_window=dt.timedelta(hours=ip_window_hours), viral_threshold=viral_threshold
        )
    )


@click.command("intake")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format",
    "in_format",
    type=click.Choice(["xml", "json"]),
    default=None,
    help="Read only this format (default: by file name: .xml, .json, .jsonl; zips and "
    "folders are walked).",
)
@click.option("--batch", type=click.IntRange(1, 10000), default=500, show_default=True,
              help="Documents per transaction.")  # fmt: skip
@link_options
@click.option(
    "--triage-rules",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Triage rules file (default: the documented rules; docs/triage.md).",
)
@click.option("--city-db", default=None, type=click.Path(dir_okay=False, exists=True),
              help="MaxMind-format city database for routing (default: "
              "RIDGELINE_GEOIP_CITY_DB, else country only).")  # fmt: skip
@actor_option(help="Who is taking the reports in (recorded with each).")
@db_option
@handle_errors
def intake_command(
    paths: tuple[str, ...],
    in_format: str | None,
    batch: int,
    ip_window_hours: float,
    viral_threshold: int,
    triage_rules: str | None,
    city_db: str | None,
    actor: str,
    db: str | None,
) -> None:
    """Take in CyberTipline reports (XML with their fileDetails, or JSON): store, link into
    cases, triage and route. Exit status 2 if any document was refused."""
    from ridgeline.intake import Pipeline, default_steps, from_paths

    from_paths(list(paths), in_format)  # a missing path is refused before anything
    store = open_store(db)
    pipeline = Pipeline(
        _config(ip_window_hours, viral_threshold),
        default_steps(store, triage_rules=triage_rules, city_db=city_db),
    )
    refused = 0
    with Writer("jsonl") as out:
        # each batch's rows come back only after its commit: a printed `stored` is stored
        for outcomes in pipeline.run(
            store, paths=list(paths), fmt=in_format, batch=batch, received_by=actor
        ):
            for o in outcomes:
                refused += o.status == "refused"
                out.write(o.to_json())
    if refused:
        click.echo(f"{refused} document(s) refused (see their problems)", err=True)
        sys.exit(2)


def show_received(report_id: int, db: str | None, fmt: str | None) -> None:
    """`reports show --received ID`."""
    from ridgeline.intake import report_view

    store = open_store(db)
    with store.session() as session:
        shown = report_view(session, report_id).to_json()
    write_one(shown, fmt)


# ---------------------------------------------------------------- cases


@click.group("cases")
def cases() -> None:
    """Cases: received reports linked by the identifiers they share."""


@cases.command("ls")
@click.option("--min-reports", type=click.IntRange(1), default=1, show_default=True,
              help="Only cases with at least this many reports.")  # fmt: skip
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@click.option(
    "--after", type=click.IntRange(min=0), default=None, help="Cases after this id (paging)."
)
@db_option
@format_option
@handle_errors
def ls(min_reports: int, limit: int, after: int | None, db: str | None, fmt: str | None) -> None:
    """Open cases with their reports and the links between them (identifier and value)."""
    from ridgeline import cases as core

    store = open_store(db)
    with store.session() as session, Writer(fmt, columns=CASE_COLUMNS) as out:
        for c in core.list_cases(session, limit=limit, after=after, min_reports=min_reports):
            out.write(c.to_json())


@cases.command("show")
@click.argument("case_id", type=int)
@db_option
@format_option
@handle_errors
def show(case_id: int, db: str | None, fmt: str | None) -> None:
    """A case: its reports, people, accounts, files, timeline, links and decisions."""
    from ridgeline import cases as core

    store = open_store(db)
    with store.session() as session:
        shown = core.show(session, case_id).to_json()
    write_one(shown, fmt)


@cases.command("find")
@click.argument(
    "kind",
    type=click.Choice(
        [
            "email",
            "phone",
            "screen_name",
            "esp_id",
            "ip",
            "device",
            "md5",
            "sha1",
            "sha256",
            "pdq",
            "profile_url",
            "report",
        ]
    ),
)
@click.argument("value")
@db_option
@format_option
@handle_errors
def find(kind: str, value: str, db: str | None, fmt: str | None) -> None:
    """Cases holding an identifier (normalised as at intake), or a report's case."""
    from ridgeline import cases as core
    from ridgeline.errors import BadInput
    from ridgeline.reports import identifiers as ids

    store = open_store(db)
    with store.session() as session, Writer(fmt, columns=CASE_COLUMNS) as out:
        if kind == "report":
            if not value.isdigit():
                raise BadInput(f"a report id is a number, not {value!r}")
            found = [core.case_of(session, int(value))]
        else:
            found = core.cases_with(session, kind, ids.normalise_query(kind, value))
        for cid in found:
            out.write(core.summary(session, cid).to_json())


@cases.command("split")
@click.argument("case_id", type=int)
@click.option("--report", "report_ids", type=click.IntRange(min=1), multiple=True, required=True,
              help="A report to move into the new case (repeatable).")  # fmt: skip
@click.option("--reason", required=True, help="Why (logged).")
@actor_option()
@db_option
@format_option
@handle_errors
def split(
    case_id: int,
    report_ids: tuple[int, ...],
    reason: str,
    actor: str,
    db: str | None,
    fmt: str | None,
) -> None:
    """Split reports off a case into a new one; automatic linking keeps them apart."""
    from ridgeline import cases as core

    store = open_store(db)
    with store.session() as session:
        new_id = core.split(session, case_id, list(report_ids), reason, actor=actor)
    write_one({"case_id": case_id, "new_case_id": new_id, "reports": sorted(report_ids)}, fmt)


@cases.command("merge")
@click.argument("case_id", type=int)
@click.argument("other_id", type=int)
@click.option("--reason", required=True, help="Why (logged).")
@actor_option()
@db_option
@format_option
@handle_errors
def merge(case_id: int, other_id: int, reason: str, actor: str, db: str | None,
          fmt: str | None) -> None:  # fmt: skip
    """Merge OTHER_ID into CASE_ID."""
    from ridgeline import cases as core

    store = open_store(db)
    with store.session() as session:
        core.merge(session, case_id, other_id, reason, actor=actor)
    write_one({"case_id": case_id, "merged_case_id": other_id}, fmt)
