"""`ridgeline audit create|next|submit|report|apply|close`: thin layer over `ridgeline.audit`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ridgeline import audit as A
from ridgeline import lists as L
from ridgeline.cli.common import (
    SHARE,
    actor_option,
    db_option,
    format_option,
    handle_errors,
    open_store,
)
from ridgeline.errors import BadInput
from ridgeline.output import write_one
from ridgeline.timeutil import isoformat


@click.group("audit")
def audit_group() -> None:
    """Audit a list: sample, blind independent verdicts, report with confidence intervals."""


@audit_group.command("create")
@click.argument("name")
@click.option("--mode", type=click.Choice(A.MODES), default="random", show_default=True)
@click.option("--margin", type=SHARE, default=0.01, show_default=True,
              help="Target margin of error of the verified share.")  # fmt: skip
@click.option(
    "--confidence",
    type=SHARE,
    default=0.95,
    show_default=True,
)
@click.option("--expected", "expected_p", type=click.FloatRange(0, 1), default=0.5,
              show_default=True,
              help="Expected verified share for sizing (0.5 is conservative).")  # fmt: skip
@click.option("--seed", type=int, default=None, help="Seed (random if omitted; stored).")
@click.option("--auditors-per-item", type=int, default=2, show_default=True)
@click.option("--strata", type=click.Choice(["source", "classification"]), default="source",
              show_default=True)  # fmt: skip
@actor_option()
@db_option
@format_option
@handle_errors
def create(
    name: str,
    mode: str,
    margin: float,
    confidence: float,
    expected_p: float,
    seed: int | None,
    auditors_per_item: int,
    strata: str,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Create an audit of list NAME and draw its sample."""
    store = open_store(db)
    with store.session() as session:
        audit = A.create_audit(
            session,
            L.get_list(session, name),
            mode=mode,
            margin=margin,
            confidence=confidence,
            expected_p=expected_p,
            seed=seed,
            auditors_per_item=auditors_per_item,
            strata=strata,
            actor=actor,
        )
        for warning in A.audit_warnings(audit, name):
            click.echo(f"Warning: {warning}", err=True)
        write_one(
            {
                "audit": audit.id,
                "list": name,
                "mode": audit.mode,
                "seed": audit.seed,
                "population": audit.population,
                "sample_size": audit.sample_size,
                "created_at": isoformat(audit.created_at),
            },
            fmt,
        )


@audit_group.command("next")
@click.argument("audit_id", type=int)
@click.option("--auditor", required=True)
@click.option(
    "--media-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the item's blurred greyscale rendering (PNG) here, as review does.",
)
@click.option("--key-file", type=click.Path(dir_okay=False), default=None,
              help="Evidence key file (default: RIDGELINE_EVIDENCE_KEY[_FILE]).")  # fmt: skip
@db_option
@format_option
@handle_errors
def next_(audit_id: int, auditor: str, media_out: str | None, key_file: str | None,
          db: str | None, fmt: str | None) -> None:  # fmt: skip
    """Show the next item AUDITOR may audit (blind: hashes, and its media on request)."""
    store = open_store(db)
    with store.session() as session:
        audit = A.get_audit(session, audit_id)
        item = A.next_item(session, audit, auditor)
        if item is not None and media_out:
            _media(session, audit, auditor, item, media_out, key_file)
    if item is None:
        click.echo("Nothing left for this auditor.", err=True)
        raise SystemExit(1)
    write_one(item, fmt)


def _media(session: Any, audit: Any, auditor: str, item: dict[str, Any], out: str,
           key_file: str | None, **view: Any) -> None:  # fmt: skip
    from ridgeline import evidence as ev
    from ridgeline.audit.media import view_item_media
    from ridgeline.cli.review import _write_private

    media = view_item_media(session, audit, auditor, int(item["entry_id"]),
                            ev.EvidenceKey.load(key_file), **view)  # fmt: skip
    if media.image is None:
        item["damaged_file"] = True
        click.echo(
            f"Entry {item['entry_id']} has no evidence: recorded as an exception "
            "(damaged-file); take the next item.",
            err=True,
        )
        return
    _write_private(out, media.image)
    item["media_written"] = True


@audit_group.command("unblur")
@click.argument("audit_id", type=int)
@click.argument("entry_id", type=int)
@click.option("--auditor", required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@click.option("--colour", is_flag=True, help="Colour too (logged).")
@click.option("--reason", default=None, help="Why the sharp view is needed (logged).")
@click.option("--key-file", type=click.Path(dir_okay=False), default=None)
@db_option
@format_option
@handle_errors
def unblur(audit_id: int, entry_id: int, auditor: str, out: str, colour: bool,
           reason: str | None, key_file: str | None, db: str | None,
           fmt: str | None) -> None:  # fmt: skip
    """Write the unblurred view of an audit item to OUT (logged, as in review)."""
    store = open_store(db)
    with store.session() as session:
        audit = A.get_audit(session, audit_id)
        item: dict[str, Any] = {"audit_id": audit_id, "entry_id": entry_id}
        _media(session, audit, auditor, item, out, key_file, unblurred=True, colour=colour,
               reason=reason)  # fmt: skip
    write_one({**item, "logged": bool(item.get("media_written"))}, fmt)


@audit_group.command("submit")
@click.argument("audit_id", type=int)
@click.argument("entry_id", type=int)
@click.option("--auditor", required=True)
@click.option("--verified", "verdict", flag_value="verified", help="The entry is what it says.")
@click.option("--exception", "verdict", flag_value="exception", help="It is not; give --reason.")
@click.option("--reason", type=click.Choice(A.REASONS), default=None)
@click.option("--note", default=None)
@db_option
@format_option
@handle_errors
def submit(
    audit_id: int,
    entry_id: int,
    auditor: str,
    verdict: str | None,
    reason: str | None,
    note: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Record AUDITOR's verdict on ENTRY_ID."""
    if verdict is None:
        raise BadInput("pass --verified or --exception --reason REASON")
    store = open_store(db)
    with store.session() as session:
        row = A.submit_verdict(
            session,
            A.get_audit(session, audit_id),
            auditor,
            entry_id,
            verified=verdict == "verified",
            reason=reason,
            note=note,
        )
        from ridgeline.audit.media import viewed_media

        viewed = viewed_media(session, A.get_audit(session, audit_id), auditor, entry_id)
        if not viewed and row.reason != "damaged-file":
            click.echo(
                f"Warning: {auditor} did not view entry {entry_id}'s media (audit next "
                "--media-out): the report counts this verdict as judged from hashes alone",
                err=True,
            )
        write_one(
            {
                "audit": audit_id,
                "entry_id": entry_id,
                "verified": row.verified,
                "reason": row.reason,
                "viewed_media": viewed,
            },
            fmt,
        )


@audit_group.command("report")
@click.argument("audit_id", type=int)
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the HTML report (with charts) to this file.")  # fmt: skip
@db_option
@handle_errors
def report(audit_id: int, html_out: str | None, db: str | None) -> None:
    """Print the audit report as JSON (verified share with CIs, kappa, exceptions)."""
    store = open_store(db)
    with store.session() as session:
        data = A.audit_report(session, A.get_audit(session, audit_id))
    if html_out:
        Path(html_out).write_text(A.report_html(data), encoding="utf-8")
    click.echo(json.dumps(data, indent=2))


@audit_group.command("apply")
@click.argument("audit_id", type=int)
@click.option(
    "--action",
    type=click.Choice(["disable", "retire"]),
    default="disable",
    show_default=True,
    help="What to do with entries every auditor found wrong.",
)
@click.option("--dispute-disagreements", is_flag=True,
              help="Send items the auditors disagree on back to review (disputed).")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Act although some items still miss verdicts (partial findings).")  # fmt: skip
@actor_option()
@db_option
@format_option
@handle_errors
def apply(
    audit_id: int,
    action: str,
    dispute_disagreements: bool,
    force: bool,
    actor: str | None,
    db: str | None,
    fmt: str | None,
) -> None:
    """Disable or retire the entries an audit found to be exceptions.

    Refused while items miss verdicts, unless --force (then it warns how many).
    """
    store = open_store(db)
    with store.session() as session:
        result = A.apply_findings(
            session,
            A.get_audit(session, audit_id),
            action=action,
            dispute_disagreements=dispute_disagreements,
            actor=actor,
            force=force,
        )
    if result["incomplete"]:
        click.echo(
            f"Warning: applied with {result['incomplete']} item(s) still missing verdicts",
            err=True,
        )
    write_one(result, fmt)


@audit_group.command("close")
@click.argument("audit_id", type=int)
@actor_option()
@db_option
@format_option
@handle_errors
def close(audit_id: int, actor: str | None, db: str | None, fmt: str | None) -> None:
    """Stop accepting verdicts."""
    store = open_store(db)
    with store.session() as session:
        audit = A.close_audit(session, A.get_audit(session, audit_id), actor=actor)
        write_one({"audit": audit.id, "state": audit.state}, fmt)
