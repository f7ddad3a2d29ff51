"""`ridgeline routing ...`: the routing-rules table, geolocation checks, and the
law-enforcement side of a received report (legal process, preservation requests).

Thin commands over `ridgeline.routing`.
"""

from __future__ import annotations

import datetime as dt
import sys

import click

from ridgeline.cli.common import actor_option, db_option, format_option, handle_errors, open_store
from ridgeline.output import Writer, write_one


@click.group("routing")
def routing_group() -> None:
    """Which agency receives which reports: rules by country and US state, fallback desk."""


@routing_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--fallback", default=None, help="The fallback desk (unless the file has a `*` row).")
@actor_option()
@db_option
@format_option
@handle_errors
def import_(path: str, fallback: str | None, actor: str, db: str | None, fmt: str | None) -> None:
    """Replace the routing rules with a CSV file (header country,state,agency)."""
    from ridgeline import routing

    store = open_store(db)
    with store.session() as session:
        rules = routing.import_file(session, path, fallback=fallback, actor=actor)
    with Writer(fmt, columns=["country", "state", "agency"]) as out:
        out.write_all(r.to_json() for r in rules)


@routing_group.command("ls")
@db_option
@format_option
@handle_errors
def ls(db: str | None, fmt: str | None) -> None:
    """The routing rules (`*` is the fallback desk)."""
    from ridgeline import routing

    store = open_store(db)
    with store.session() as session:
        rules = routing.list_rules(session)
        if not any(r.country == "*" for r in rules):
            rules.append(routing.Rule("*", None, routing.DEFAULT_FALLBACK))
    with Writer(fmt, columns=["country", "state", "agency"]) as out:
        out.write_all(r.to_json() for r in rules)


@routing_group.command("make-available")
@click.argument("report_id", type=int)
@click.option("--agency", required=True, help="The agency to make the report available to.")
@click.option("--reason", required=True, help="Why (kept with the availability and logged).")
@actor_option()
@db_option
@format_option
@handle_errors
def make_available(
    report_id: int, agency: str, reason: str, actor: str, db: str | None, fmt: str | None
) -> None:
    """Make a received report available to one more agency by hand (logged)."""
    from ridgeline import routing
    from ridgeline.reports import received

    store = open_store(db)
    with store.session() as session:
        received.get(session, report_id)  # NotFound for a report that does not exist
        shown = routing.make_available(session, report_id, agency, reason, actor).to_json()
    write_one(shown, fmt)


@routing_group.command("locate")
@click.argument("ips", nargs=-1, required=True)
@click.option(
    "--city-db",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    envvar="RIDGELINE_GEOIP_CITY_DB",
    help="A MaxMind-format city database (env RIDGELINE_GEOIP_CITY_DB).",
)
@format_option
@handle_errors
def locate(ips: tuple[str, ...], city_db: str | None, fmt: str | None) -> None:
    """Where IP addresses are, offline (iptocc; the city database when given)."""
    from ridgeline import routing

    geo = routing.Geolocator(city_db)
    with Writer(fmt, columns=["ip", "country", "state", "city", "source"]) as out:
        for ip in ips:
            p = geo.locate(ip)
            out.write(
                {
                    "ip": ip,
                    "country": p.country if p else None,
                    "state": p.state if p else None,
                    "city": p.city if p else None,
                    "source": p.source if p else None,
                }
            )
    geo.close()


@routing_group.command("legal-process")
@click.argument("report_id", type=int)
@click.option("--agency", required=True, help="The agency holding it.")
@click.option(
    "--kind",
    type=click.Choice(["warrant", "court order", "subpoena"]),
    default="warrant",
    show_default=True,
)
@click.option("--reference", required=True, help="The warrant's number or docket reference.")
@click.option("--issued-on", default=None, help="The date it was issued (YYYY-MM-DD).")
@click.option(
    "--file",
    "files",
    type=click.IntRange(min=0),
    multiple=True,
    help="File position covered (default: all).",
)
@click.option("--note", default=None)
@actor_option()
@db_option
@format_option
@handle_errors
def legal_process(
    report_id: int,
    agency: str,
    kind: str,
    reference: str,
    issued_on: str | None,
    files: tuple[int, ...],
    note: str | None,
    actor: str,
    db: str | None,
    fmt: str | None,
) -> None:
    """Record legal process an agency holds for a report (opens files under Wilson)."""
    from ridgeline.errors import BadInput
    from ridgeline.routing import access

    try:
        day = dt.date.fromisoformat(issued_on) if issued_on else None
    except ValueError:
        raise BadInput(f"--issued-on {issued_on!r} is not a date (YYYY-MM-DD)") from None
    store = open_store(db)
    with store.session() as session:
        lp = access.enter_legal_process(
            session,
            report_id,
            agency,
            kind=kind,
            reference=reference,
            actor=actor,
            issued_on=day,
            files=list(files) or None,
            note=note,
        )
        shown = lp.to_json()
    write_one(shown, fmt)


@routing_group.command("preservation")
@click.argument("report_id", type=int)
@click.option("--agency", required=True, help="The requesting agency.")
@click.option("--text", "as_text", is_flag=True, help="The request as a letter (plain text).")
@actor_option()
@db_option
@format_option
@handle_errors
def preservation(
    report_id: int, agency: str, as_text: bool, actor: str, db: str | None, fmt: str | None
) -> None:
    """Export a request to the provider to preserve a report's contents (logged)."""
    from ridgeline.routing import access

    store = open_store(db)
    with store.session() as session:
        req = access.preservation_request(session, report_id, agency, actor)
    if as_text:
        sys.stdout.write(req.to_text())
    else:
        write_one(req.to_json(), fmt)
