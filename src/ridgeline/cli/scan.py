"""`ridgeline scan`, `ridgeline quarantine`, `ridgeline flood` and `ridgeline lists actions`."""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import IO, Any

import click

from ridgeline.cli.common import (
    POSITIVE,
    actor_option,
    db_option,
    format_option,
    handle_errors,
    open_store,
    parse_signal_names,
)
from ridgeline.cli.hash import Progress
from ridgeline.output import Writer, default_format, write_one
from ridgeline.signals import HashOptions

CSV_COLUMNS = ["path", "size", "sha256", "kind", "matches", "lists", "entries", "actions", "error"]


class ResultFile:
    """Results written as JSONL or CSV (chosen by the file's extension)."""

    def __init__(self, path: str) -> None:
        self.csv = path.lower().endswith(".csv")
        self.fh: IO[str] = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.writer = csv.writer(self.fh) if self.csv else None
        if self.writer:
            self.writer.writerow(CSV_COLUMNS)

    def write(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        matches = row.get("matches") or []
        self.writer.writerow(
            [
                row["path"],
                row.get("size"),
                row.get("sha256"),
                row.get("kind"),
                len(matches),
                ";".join(sorted({m["list"] for m in matches})),
                ";".join(str(m["entry_id"]) for m in matches),
                ";".join(a["action"] for a in row.get("actions") or []),
                row.get("error") or ("skipped" if row.get("skipped") else ""),
            ]
        )

    def close(self) -> None:
        self.fh.close()


def _count_files(paths: tuple[str, ...]) -> int:
    total = 0
    for p in paths:
        if os.path.isdir(p):
            total += sum(len(files) for _, _, files in os.walk(p))
        else:
            total += 1
    return total


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--list", "list_names", multiple=True, help="List to match against (repeatable; default: all)."
)
@click.option(
    "--action",
    "actions",
    multiple=True,
    type=click.Choice(["flag", "quarantine", "report"]),
    help="Action for matches on this scan's lists, instead of what the lists have configured.",
)
@click.option(
    "--signals",
    "signal_names",
    default=None,
    help="Comma-separated signals (default: by content type).",
)
@click.option("--dihedral", is_flag=True, help="Also match the 8 rotations/flips of images (PDQ).")
@click.option("--mode", type=click.Choice(["exact", "fast"]), default="exact", show_default=True)
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
    help="Worker processes (local engine).",
)  # fmt: skip
@click.option("--resume", is_flag=True, help="Skip files already scanned and unchanged.")
@click.option(
    "--resume-by",
    type=click.Choice(["stat", "sha256"]),
    default="stat",
    show_default=True,
    help="stat: path+size+mtime; sha256: also skip content scanned under another path.",
)
@click.option(
    "--output", "output", default=None, help="Also write results to FILE (.jsonl or .csv)."
)
@click.option("--quarantine-dir", default=None, help="Where quarantined files go.")
@click.option(
    "--flood-max",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Matches of one entry per window before it is held.",
)
@click.option(
    "--flood-window",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Flood-control window (seconds).",
)
@click.option("--no-archives", is_flag=True, help="Hash archives as files instead of opening them.")
@click.option(
    "--max-depth",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Nested archive depth.",
)
@click.option("--max-members", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option(
    "--max-archive-bytes",
    type=click.IntRange(min=1),
    default=8 << 30,
    show_default=True,
    help="Total bytes one archive may expand to.",
)
@click.option(
    "--max-ratio",
    type=POSITIVE,
    default=200.0,
    show_default=True,
    help="Largest expansion ratio of an archive.",
)
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (default: start a local one).")
@click.option("--index-dir", default=None, help="Directory of the memory-mapped match index.")
@click.option(
    "--work-dir", default=None, help="Where archives are extracted (shared storage for Ray)."
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Evidence key: report drafts carry the matched files encrypted with it (default: "
    "RIDGELINE_EVIDENCE_KEY[_FILE]; none: drafts carry the files' hashes only).",
)
@click.option(
    "--viral-users",
    type=click.IntRange(min=2),
    default=None,
    help="Batch report drafts of one file once this many users' drafts carry it "
    "(batchedReport, VIRAL_POTENTIAL_MEME).",
)
@db_option
@format_option
@handle_errors
def scan_command(
    paths: tuple[str, ...],
    list_names: tuple[str, ...],
    actions: tuple[str, ...],
    signal_names: str | None,
    dihedral: bool,
    mode: str,
    jobs: int,
    resume: bool,
    resume_by: str,
    output: str | None,
    quarantine_dir: str | None,
    flood_max: int,
    flood_window: int,
    no_archives: bool,
    max_depth: int,
    max_members: int,
    max_archive_bytes: int,
    max_ratio: float,
    engine: str,
    address: str | None,
    index_dir: str | None,
    work_dir: str | None,
    key_file: str | None,
    viral_users: int | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Scan files, folders and archives for matches; record results and fire actions.

    Every file gets a row (table mode shows only matches and errors); bad files are
    recorded with their error and the scan goes on. Exit status 1 if any file failed.
    """
    from ridgeline.scan.archives import ArchiveLimits
    from ridgeline.scan.flood import FloodPolicy
    from ridgeline.scan.pipeline import ScanOptions, scan

    signals = parse_signal_names(signal_names)
    for p in paths:
        if not os.path.exists(p):
            raise click.BadParameter(f"no such file or folder: {p}", param_hint="PATHS")
    options = ScanOptions(
        lists=list(list_names),
        signals=signals,
        hash_options=HashOptions(mode=mode, dihedral=dihedral),  # type: ignore[arg-type]
        jobs=max(1, jobs),
        resume=resume,
        resume_by=resume_by,
        actions=list(actions) or None,
        quarantine_dir=quarantine_dir,
        flood=FloodPolicy(max_matches=flood_max, window_s=flood_window),
        limits=ArchiveLimits(
            max_depth=max_depth,
            max_members=max_members,
            max_total_bytes=max_archive_bytes,
            max_ratio=max_ratio,
        ),
        archives=not no_archives,
        index_dir=index_dir,
        work_dir=work_dir,
        engine=engine,
        ray_address=address,
        report_sink=_report_sink(key_file, viral_users),
    )
    store = open_store(db)
    from ridgeline.victims.annotate import SeriesAnnotator

    annotator = options.annotator = SeriesAnnotator(store)
    fmt = fmt or default_format()
    progress = Progress(_count_files(paths))
    result_file = ResultFile(output) if output else None
    state = {"top": None}

    def on_result(row: dict[str, Any]) -> None:
        top = row["path"].split("!", 1)[0]
        if top != state["top"]:
            state["top"] = top
            progress.update(bool(row.get("error")))
        if result_file:
            result_file.write(row)
        if fmt != "table":
            out.write(row)
        elif row.get("matches") or row.get("error"):
            out.write(_table_row(row))

    with Writer(fmt, columns=["path", "matches", "actions", "error"], keep=["matches"]) as out:
        try:
            summary = scan(store, paths, options, on_result=on_result)
        finally:
            annotator.close()
            if result_file:
                result_file.close()
            progress.close()
    s = summary
    click.echo(
        f"scan {s.run_id}: {s.files} file(s), {s.matched} matched, {s.errors} error(s), "
        f"{s.skipped} skipped, {s.held} held, {s.quarantined} quarantined, "
        f"{s.reports} report draft(s) in {s.seconds:.1f}s",
        err=True,
    )
    if s.reports and getattr(options.report_sink, "key", None) is None:
        click.echo(
            "warning: no evidence key, so the report drafts carry the files' hashes, not "
            "the files (--key-file or RIDGELINE_EVIDENCE_KEY[_FILE])",
            err=True,
        )
    if summary.errors:
        sys.exit(1)


def _report_sink(key_file: str | None, viral_users: int | None) -> Any:
    """The `report` action: CyberTipline drafts (`ridgeline.reports.drafts.ReportSink`)."""
    from ridgeline.evidence import ENV_KEY, ENV_KEY_FILE, EvidenceKey
    from ridgeline.reports.drafts import ReportSink

    configured = key_file is not None or os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE)
    key = EvidenceKey.load(key_file) if configured else None
    return ReportSink(key, actor="scan", viral_users=viral_users)


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    matches = [
        f"{m['list']}#{m['entry_id']} {m['signal']} d={m['distance']:g}"
        for m in row.get("matches") or []
    ]
    return {
        "path": row["path"],
        "matches": "\n".join(matches),
        "actions": ",".join(a["action"] for a in row.get("actions") or []),
        "error": row.get("error"),
    }


@click.command("actions")
@click.argument("name")
@click.option("--set", "new", default=None, help="Comma-separated actions: flag,quarantine,report.")
@actor_option()
@db_option
@format_option
@handle_errors
def list_actions(name: str, new: str | None, actor: str, db: str | None, fmt: str | None) -> None:
    """Show (or --set) the actions matches on list NAME fire during scans."""
    from ridgeline.scan.actions import get_list_actions, set_list_actions

    store = open_store(db)
    with store.session() as session:
        if new is not None:
            wanted = [a for a in new.split(",") if a.strip()]
            actions = set_list_actions(session, name, wanted, actor=actor)
        else:
            actions = get_list_actions(session, name)
    write_one({"list": name, "actions": actions}, fmt)


@click.group("quarantine")
def quarantine() -> None:
    """Files moved aside by the quarantine action."""


@quarantine.command("list")
@click.option("--all", "include_restored", is_flag=True, help="Include restored items.")
@db_option
@format_option
@handle_errors
def quarantine_list(include_restored: bool, db: str | None, fmt: str | None) -> None:
    """List quarantined files."""
    from ridgeline.scan.actions import list_quarantine, quarantine_to_json

    store = open_store(db)
    with store.session() as session:
        rows = [
            quarantine_to_json(q)
            for q in list_quarantine(session, include_restored=include_restored)
        ]
    with Writer(fmt, columns=["id", "original_path", "sha256", "time", "restored_at"]) as out:
        out.write_all(rows)


@quarantine.command("restore")
@click.argument("item_id", type=int)
@db_option
@format_option
@handle_errors
def quarantine_restore(item_id: int, db: str | None, fmt: str | None) -> None:
    """Move quarantined item ITEM_ID back to where it was."""
    from ridgeline.scan.actions import quarantine_to_json, restore_quarantined

    store = open_store(db)
    with store.session() as session:
        item = restore_quarantined(session, item_id)
        row = quarantine_to_json(item)
    write_one(row, fmt)


@click.group("flood")
def flood() -> None:
    """Entries held by flood control (their matches fire no actions)."""


@flood.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include released holds.")
@db_option
@format_option
@handle_errors
def flood_list(show_all: bool, db: str | None, fmt: str | None) -> None:
    """List flood-control holds."""
    from ridgeline.scan.flood import hold_to_json, list_holds

    store = open_store(db)
    with store.session() as session:
        rows = [hold_to_json(h) for h in list_holds(session, None if show_all else "held")]
    with Writer(fmt, columns=["id", "entry_id", "list_id", "status", "count", "held_at"]) as out:
        out.write_all(rows)


@flood.command("release")
@click.argument("hold_id", type=int)
@actor_option("Who reviewed the hold.")
@db_option
@format_option
@handle_errors
def flood_release(hold_id: int, actor: str | None, db: str | None, fmt: str | None) -> None:
    """Release hold HOLD_ID after review: the entry fires actions again."""
    from ridgeline.scan.flood import hold_to_json, release_hold

    store = open_store(db)
    with store.session() as session:
        row = hold_to_json(release_hold(session, hold_id, actor))
    write_one(row, fmt)
