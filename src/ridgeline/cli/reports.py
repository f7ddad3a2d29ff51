"""`ridgeline reports ...`: CyberTipline reports from draft to finished.

A thin layer over `ridgeline.reports`; partners script against these spellings.
Credentials come from RIDGELINE_CYBERTIP_USERNAME / RIDGELINE_CYBERTIP_PASSWORD (or the
per-environment RIDGELINE_CYBERTIP_TEST_* / _PRODUCTION_* variables) and are never
stored or printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ridgeline.cli.common import db_option, format_option, handle_errors, open_store
from ridgeline.errors import BadInput
from ridgeline.output import Writer, write_one

key_file_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Evidence key file (default: RIDGELINE_EVIDENCE_KEY or RIDGELINE_EVIDENCE_KEY_FILE).",
)
environment_option = click.option(
    "--environment",
    type=click.Choice(["test", "production"]),
    default="test",
    show_default=True,
    help="CyberTipline environment (test: NCMEC discards the reports).",
)
endpoint_option = click.option(
    "--endpoint",
    default=None,
    metavar="URL",
    help="Base URL overriding the environment's (e.g. a local test server).",
)
actor_option = click.option("--actor", default=None, help="Who is acting (for the history).")

LS_COLUMNS = ["id", "state", "environment", "reportId", "files", "errors", "incidentType"]


def _client(environment: str, endpoint: str | None) -> Any:
    from ridgeline.reports import client as ct

    return ct.CyberTipClient(ct.endpoint_for(environment, base_url=endpoint))


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None


def _problems_out(problems: list[Any], fmt: str | None) -> None:
    with Writer(fmt, columns=["severity", "path", "message"]) as out:
        out.write_all(p.to_json() for p in problems)


@click.group("reports")
def reports() -> None:
    """CyberTipline reports: create, validate, file, retract (the test server first)."""


@reports.command("ls")
@click.option("--state", default=None, help="Only reports in this state.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@db_option
@format_option
@handle_errors
def ls(state: str | None, limit: int, db: str | None, fmt: str | None) -> None:
    """List reports, newest first."""
    from ridgeline.reports import core

    store = open_store(db)
    with store.session() as session, Writer(fmt, columns=LS_COLUMNS) as out:
        for row in core.list_reports(session, state=state, limit=limit):
            out.write(core.view(row).to_json(full=False))


@reports.command("show")
@click.argument("report_id", type=int)
@click.option("--history", is_flag=True, help="Include every step taken so far.")
@click.option("--received", is_flag=True, help="REPORT_ID is a received report (`reports intake`).")
@db_option
@format_option
@handle_errors
def show(report_id: int, history: bool, received: bool, db: str | None, fmt: str | None) -> None:
    """Show a report: state, NCMEC reportId, each file's fileId, every problem."""
    from ridgeline.reports import core
    from ridgeline.timeutil import isoformat

    if received:
        from ridgeline.cli.intake import show_received

        show_received(report_id, db, fmt)
        return

    store = open_store(db)
    with store.session() as session:
        row = core.get_report(session, report_id)
        shown = core.view(row).to_json()
        if history:
            shown["history"] = [
                {"at": isoformat(e.at), "actor": e.actor, "action": e.action, **e.details}
                for e in core.events(session, report_id)
            ]
    write_one(shown, fmt)


class _OrderedFiles(click.Command):
    """Remembers the order of --file and --file-details, so that each --file-details
    belongs to the --file before it (click keeps each option's values, not the mix)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        parser = self.make_parser(ctx)
        _, _, order = parser.parse_args(args=list(args))
        ctx.meta["file_order"] = [p.name for p in order if p.name in ("files", "details")]
        return super().parse_args(ctx, args)


@reports.command("create", cls=_OrderedFiles)
@click.option("--xml", "xml_path", required=True, help="The <report> document (public schema).")
@click.option("--file", "files", multiple=True, help="A file of the report (repeatable).")
@click.option(
    "--file-details",
    "details",
    multiple=True,
    help="The <fileDetails> of the --file before it (ids may be @REPORT_ID@, @FILE_ID@).",
)
@key_file_option
@actor_option
@db_option
@format_option
@handle_errors
def create(
    xml_path: str,
    files: tuple[str, ...],
    details: tuple[str, ...],
    key_file: str | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Make a draft from REPORT.xml and its files: `--file PATH [--file-details FD.xml]`,
    repeated; the reportId and fileId of a fileDetails document are filled in at
    filing. Prints the draft's id (`{"id": N}` with --format json)."""
    from ridgeline.evidence import EvidenceKey
    from ridgeline.reports import core
    from ridgeline.reports import documents as docs

    report = docs.report_from_xml(_read(xml_path))
    order = click.get_current_context().meta.get("file_order", [])
    new: list[core.NewFile] = []
    paths, documents = iter(files), iter(details)
    for name in order:
        if name == "files":
            path = next(paths)
            new.append(core.NewFile(Path(path).name, _read(path)))
            continue
        if not new or new[-1].details is not None:
            raise click.UsageError("--file-details must follow the --file it describes")
        fd = docs.file_details_from_xml(_read(next(documents)))
        new[-1] = core.NewFile(new[-1].name, new[-1].data, fd)
    key = EvidenceKey.load(key_file) if new else None
    store = open_store(db)
    with store.session() as session:
        row = core.create_report(session, report, new, key, actor=actor)
        errors = sum(1 for p in row.problems if p.get("severity") == "error")
        result = {"id": row.id, "state": row.state, "errors": errors}
    if (fmt or "") in ("json", "jsonl"):
        write_one({"id": result["id"]}, fmt)
    else:
        write_one(result, fmt)


@reports.command("from-scan")
@click.argument("scan_draft_id", type=int)
@click.option(
    "--reporter",
    "reporter_path",
    default=None,
    help="The reporter (JSON in schema names: reportingPerson, contactPerson, ...).",
)
@click.option("--incident-time", default=None, help="When the incident happened (ISO 8601).")
@click.option("--user-id", default=None, help="The uploading user's id at the provider.")
@click.option("--screen-name", default=None)
@click.option("--email", "emails", multiple=True, help="The uploader's email (repeatable).")
@click.option("--ip", "ips", multiple=True, help="An upload IP address (repeatable).")
@key_file_option
@actor_option
@db_option
@format_option
@handle_errors
def from_scan(
    scan_draft_id: int,
    reporter_path: str | None,
    incident_time: str | None,
    user_id: str | None,
    screen_name: str | None,
    emails: tuple[str, ...],
    ips: tuple[str, ...],
    key_file: str | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Make a CyberTipline draft from a scan's `report` action (its draft id), with
    the file (if still there or quarantined), its hashes and matched entries."""
    import datetime as dt

    from ridgeline.evidence import EvidenceKey
    from ridgeline.reports import documents as docs
    from ridgeline.reports import drafts, schema
    from ridgeline.reports.model import Reporter

    reporter = None
    if reporter_path:
        try:
            raw = json.loads(_read(reporter_path))
        except json.JSONDecodeError as exc:
            raise BadInput(f"{reporter_path}: not JSON ({exc.msg})") from None
        problems: list[Any] = []
        reporter = schema.from_json(
            Reporter, raw if isinstance(raw, dict) else {}, "reporter", problems
        )
        if problems:
            raise docs.InvalidDocument("reporter", problems)
    when = None
    if incident_time:
        try:
            when = dt.datetime.fromisoformat(incident_time.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(f"--incident-time {incident_time!r} is not an ISO 8601 time") from None
    context = drafts.UploadContext(
        user_id=user_id,
        screen_name=screen_name,
        emails=emails,
        ips=tuple(drafts.IpEvent(ip) for ip in ips),
        incident_time=when,
    )
    key = EvidenceKey.load(key_file)
    store = open_store(db)
    with store.session() as session:
        row = drafts.from_scan_draft(
            session, scan_draft_id, key, reporter=reporter, context=context, actor=actor
        )
        shown = {"id": row.id, "state": row.state, "files": len(row.files)}
    write_one({"id": shown["id"]} if (fmt or "") in ("json", "jsonl") else shown, fmt)


@reports.command("edit")
@click.argument("report_id", type=int)
@click.argument("patch", metavar="PATCH.json")
@click.option(
    "--file",
    "file_position",
    type=click.IntRange(min=0),
    default=None,
    help="Apply the patch to this file's fileDetails (0-based) instead of the report.",
)
@actor_option
@db_option
@format_option
@handle_errors
def edit(
    report_id: int,
    patch: str,
    file_position: int | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Complete a draft with a JSON merge patch (RFC 7386, schema names; `-` = stdin);
    the report is validated again."""
    from ridgeline.reports import core

    try:
        body = json.loads(_read(patch))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{patch}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(body, dict):
        raise BadInput(f"{patch}: a merge patch is a JSON object")
    store = open_store(db)
    with store.session() as session:
        if file_position is None:
            row = core.edit_report(session, report_id, body, actor=actor)
        else:
            row = core.edit_report(
                session, report_id, {}, actor=actor, file_patches={file_position: body}
            )
        write_one(core.view(row).to_json(), fmt)


@reports.command("validate")
@click.argument("report_id", type=int, required=False)
@click.option("--xml", "xml_path", default=None, help="Check a <report> document instead.")
@click.option("--file-details", "fd_path", default=None, help="Check a <fileDetails> document.")
@db_option
@format_option
@handle_errors
def validate(
    report_id: int | None,
    xml_path: str | None,
    fd_path: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """List every problem (path and message) of a stored report or of documents;
    exit 1 when any is an error."""
    from ridgeline.reports import core
    from ridgeline.reports import documents as docs

    if (report_id is None) == (xml_path is None and fd_path is None):
        raise click.UsageError("give a report ID, or --xml / --file-details documents")
    problems: list[Any] = []
    if report_id is not None:
        store = open_store(db)
        with store.session() as session:
            problems = core.revalidate(session, core.get_report(session, report_id))
    if xml_path:
        problems += docs.check_report_xml(_read(xml_path))
    if fd_path:
        problems += docs.check_file_details_xml(_read(fd_path), for_filing=False)
    _problems_out(problems, fmt)
    if docs.errors(problems):
        sys.exit(1)


@reports.command("export")
@click.argument("report_id", type=int)
@click.option(
    "--out",
    "out_dir",
    default=None,
    help="Write a package here: report.xml, fileDetails-N.xml and a manifest.json of hashes.",
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="RIDGELINE_SIGNING_KEY_FILE",
    help="Ed25519 private key (PEM, `lists keygen`) that signs the manifest "
    "(env RIDGELINE_SIGNING_KEY_FILE).",
)
@click.option("--media", is_flag=True, help="Also put the decrypted files in the package.")
@key_file_option
@click.option(
    "--file",
    "file_position",
    type=click.IntRange(min=0),
    default=None,
    help="Print this file's fileDetails.",
)
@actor_option
@db_option
@handle_errors
def export(
    report_id: int,
    out_dir: str | None,
    sign_key: str | None,
    media: bool,
    key_file: str | None,
    file_position: int | None,
    actor: str | None,
    db: str | None,
) -> None:
    """The XML exactly as it is (or would be) sent; ids not known yet stay placeholders.

    With --out, a package whose manifest lists every file's sha256, each reported file's
    recorded hashes and the report's log records, signed with --sign-key; check it with
    `ridgeline log verify-package`."""
    from ridgeline.reports import core
    from ridgeline.reports import documents as docs

    store = open_store(db)
    if out_dir:
        from ridgeline import custody, releases
        from ridgeline.evidence import EvidenceKey

        key = releases.load_private_key(sign_key) if sign_key else None
        media_key = EvidenceKey.load(key_file) if media else None
        body = custody.export_report(
            store, report_id, out_dir, key, media_key=media_key, actor=actor
        )
        if key is None:
            click.echo("Warning: the manifest is not signed (no --sign-key)", err=True)
        click.echo(f"{len(body['files'])} files and manifest.json in {out_dir}", err=True)
        return
    with store.session() as session:
        row = core.get_report(session, report_id)
        report_xml = docs.report_to_xml(core.report_of(row))
        details = {
            f.position: core.file_details_xml(row, f) for f in row.files if f.details is not None
        }
    if file_position is not None:
        if file_position not in details:
            raise BadInput(f"report {report_id} has no fileDetails for file {file_position}")
        sys.stdout.buffer.write(details[file_position] + b"\n")
    else:
        sys.stdout.buffer.write(report_xml + b"\n")


@reports.command("file")
@click.argument("report_id", type=int)
@environment_option
@endpoint_option
@key_file_option
@actor_option
@db_option
@format_option
@handle_errors
def file_(
    report_id: int,
    environment: str,
    endpoint: str | None,
    key_file: str | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """File (or resume filing) a report: submit, upload each file and its details, finish.

    Safe to run again after any failure or crash; never submits a report twice."""
    from ridgeline.evidence import EvidenceKey
    from ridgeline.reports import core, filing

    store = open_store(db)
    with store.session() as session:
        has_files = bool(core.get_report(session, report_id).files)
    key = EvidenceKey.load(key_file) if has_files else None
    with _client(environment, endpoint) as client:
        result = filing.Filer(store, client, key, actor=actor).file(report_id)
    write_one(result.to_json(), fmt)


@reports.command("retract")
@click.argument("report_id", type=int)
@environment_option
@endpoint_option
@actor_option
@db_option
@format_option
@handle_errors
def retract(
    report_id: int,
    environment: str,
    endpoint: str | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Withdraw a submitted, unfinished report (safe to repeat)."""
    from ridgeline.reports import filing

    store = open_store(db)
    with _client(environment, endpoint) as client:
        result = filing.Filer(store, client, None, actor=actor).retract(report_id)
    write_one(result.to_json(), fmt)


@reports.command("resolve")
@click.argument("report_id", type=int)
@click.option(
    "--report-id",
    "ncmec_id",
    type=click.IntRange(min=1),
    default=None,
    help="NCMEC did open it: its id.",
)
@click.option("--not-submitted", is_flag=True, help="NCMEC has no open report for it.")
@click.option("--note", default=None)
@actor_option
@db_option
@format_option
@handle_errors
def resolve(
    report_id: int,
    ncmec_id: int | None,
    not_submitted: bool,
    note: str | None,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Decide on a report that needs attention (after asking NCMEC what it has)."""
    from ridgeline.reports import filing

    store = open_store(db)
    result = filing.resolve(
        store,
        report_id,
        ncmec_report_id=ncmec_id,
        not_submitted=not_submitted,
        actor=actor,
        note=note,
    )
    write_one(result.to_json(), fmt)


@reports.command("purge")
@click.argument("report_id", type=int)
@actor_option
@db_option
@format_option
@handle_errors
def purge(report_id: int, actor: str | None, db: str | None, fmt: str | None) -> None:
    """Delete a report and its files (refused within a year of filing)."""
    from ridgeline.reports import core

    store = open_store(db)
    with store.session() as session:
        core.purge_report(session, report_id, actor=actor)
    write_one({"id": report_id, "purged": True}, fmt)


@reports.command("status")
@environment_option
@endpoint_option
@format_option
@handle_errors
def status(environment: str, endpoint: str | None, fmt: str | None) -> None:
    """Check the credentials against the CyberTipline (`/status`)."""
    with _client(environment, endpoint) as client:
        reply = client.status()
    write_one(
        {
            "environment": environment,
            "ok": reply.ok,
            "responseCode": reply.code,
            "description": reply.description,
        },
        fmt,
    )
    if not reply.ok:
        sys.exit(1)


def _add_intake() -> None:
    from ridgeline.cli.intake import intake_command

    reports.add_command(intake_command)


_add_intake()


def _add_triage_commands() -> None:
    """Triage of received reports (queue, override, stats, triage-rules): cli/triage.py."""
    from ridgeline.cli.triage import COMMANDS

    for command in COMMANDS:
        reports.add_command(command)


_add_triage_commands()
