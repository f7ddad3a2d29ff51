"""`ridgeline serve`: the HTTP API under uvicorn, optionally with several workers."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace

import click

from ridgeline.cli.common import NON_NEGATIVE, POSITIVE, db_option, handle_errors

#: The service app with the web UI mounted under /ui/.
UI_APP = "ridgeline.ui.app:app_from_env"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes."
)
@click.option("--index-dir", default=None, help="Directory of the memory-mapped match index.")
@click.option("--max-upload-bytes", default=50 << 20, show_default=True, type=click.IntRange(min=1))
@click.option("--max-pixels", default=50_000_000, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--timeout",
    "timeout_s",
    default=30.0,
    show_default=True,
    type=POSITIVE,
    help="Seconds per hash.",
)
@click.option(
    "--rate-limit",
    default=100.0,
    show_default=True,
    type=POSITIVE,
    help="Default requests/s per key.",
)
@click.option(
    "--fetch-allow-host",
    "fetch_hosts",
    multiple=True,
    help="Host /v1/match may fetch URLs from (repeatable; none: URL fetching is off).",
)
@click.option(
    "--body-timeout",
    "body_timeout_s",
    default=30.0,
    show_default=True,
    type=POSITIVE,
    help="Seconds a request body may take to arrive (slow clients get 408).",
)
@click.option(
    "--header-timeout",
    "header_timeout_s",
    default=10.0,
    show_default=True,
    type=POSITIVE,
    help="Seconds a client has to send a request's headers (slowloris: closed after).",
)
@click.option(
    "--evidence-key-file",
    default=None,
    help="Evidence key (AES-256-GCM): review and audit media, files of report drafts.",
)
@click.option("--log-level", default="warning", show_default=True)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One JSON line per request on stderr (time, key prefix, role, route, status, latency).",
)
@click.option(
    "--webhook-base-delay",
    default=30.0,
    show_default=True,
    type=NON_NEGATIVE,
    help="Seconds before a failed webhook delivery is retried (doubles each time).",
)
@click.option("--webhook-max-attempts", default=6, show_default=True, type=click.IntRange(min=1),
              help="Tries of a webhook delivery before it is a dead letter.")  # fmt: skip
@click.option("--webhook-timeout", default=10.0, show_default=True, type=POSITIVE,
              help="Seconds a webhook receiver may take to answer.")  # fmt: skip
@click.option(
    "--viral-users",
    type=click.IntRange(min=2),
    default=None,
    help="Batch report drafts of one file once this many users' drafts carry it "
    "(batchedReport, VIRAL_POTENTIAL_MEME).",
)
@click.option(
    "--exchange-interval",
    "exchange_interval_s",
    envvar="RIDGELINE_EXCHANGE_INTERVAL",
    default=0.0,
    show_default=True,
    type=NON_NEGATIVE,
    help="Seconds between checks for live exchange sources due a fetch (0: off; "
    "env RIDGELINE_EXCHANGE_INTERVAL).",
)
@click.option(
    "--ui/--no-ui",
    default=True,
    show_default=True,
    help="Serve the web UI under /ui/ (log in with an API key or `ridgeline users add`).",
)
@click.option(
    "--self-submission/--no-self-submission",
    "selfsubmit",
    default=True,
    show_default=True,
    help="Serve the public self-submission page at /submit-hashes/ (docs/self-submission.md).",
)
@click.option(
    "--self-submit-rate",
    default=1.0,
    show_default=True,
    type=POSITIVE,
    help="Self-submission requests per second per network address (per worker).",
)
@click.option(
    "--self-submit-max-items",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Files per self-submission.",
)
@click.option(
    "--self-submit-daily-items",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Files one submitter may send in 24 hours (submissions: 10).",
)
@click.option(
    "--anchor-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append the tamper-evident log's head to this file (one JSON line) at start and "
    "every --anchor-every seconds while it changes; keep it where the database's owners "
    "cannot rewrite it.",
)
@click.option(
    "--anchor-every",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between log-head anchors (with --anchor-file).",
)
@db_option
@handle_errors
def serve(
    host: str,
    port: int,
    workers: int,
    index_dir: str | None,
    max_upload_bytes: int,
    max_pixels: int,
    timeout_s: float,
    body_timeout_s: float,
    header_timeout_s: float,
    rate_limit: float,
    fetch_hosts: tuple[str, ...],
    evidence_key_file: str | None,
    log_level: str,
    access_log: bool,
    webhook_base_delay: float,
    webhook_max_attempts: int,
    webhook_timeout: float,
    viral_users: int | None,
    exchange_interval_s: float,
    ui: bool,
    selfsubmit: bool,
    self_submit_rate: float,
    self_submit_max_items: int,
    self_submit_daily_items: int,
    anchor_file: str | None,
    anchor_every: float,
    db: str | None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json). Keys: `ridgeline keys create`."""
    from ridgeline.config import resolve_db_url
    from ridgeline.service.app import ENV_CONFIG, ServiceConfig
    from ridgeline.service.workers import ServeOptions, check_port
    from ridgeline.service.workers import serve as run_workers
    from ridgeline.store import Store

    if workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    url = resolve_db_url(db)
    Store(url, create=False).close()  # migrate once, before the workers start
    config = ServiceConfig(
        disclosure_secret=secrets.token_hex(32),  # one per server, shared by its workers
        db=url,
        index_dir=index_dir,
        max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels,
        request_timeout_s=timeout_s,
        body_timeout_s=body_timeout_s,
        default_rate_limit=rate_limit,
        fetch_allow_hosts=list(fetch_hosts),
        evidence_key_file=evidence_key_file,
        access_log=access_log,
        webhook_base_delay_s=webhook_base_delay,
        webhook_max_attempts=webhook_max_attempts,
        webhook_timeout_s=webhook_timeout,
        viral_users=viral_users,
        exchange_interval_s=exchange_interval_s,
        selfsubmit=selfsubmit,
        selfsubmit_rate=self_submit_rate,
        selfsubmit_max_items=self_submit_max_items,
        selfsubmit_window_items=self_submit_daily_items,
        selfsubmit_secret=secrets.token_hex(32),
    )
    os.environ[ENV_CONFIG] = config.to_env()
    options = ServeOptions(
        host=host, port=port, workers=workers, log_level=log_level,
        header_timeout_s=header_timeout_s,
    )  # fmt: skip
    if ui:
        options = replace(options, app=UI_APP)
    check_port(options)  # "port in use" before any line that says we listen
    ui_note = f", UI on http://{host}:{port}/ui/" if ui else ""
    click.echo(f"ridgeline API on http://{host}:{port}{ui_note} ({workers} worker(s))", err=True)
    if not anchor_file:
        run_workers(options)
        return
    from ridgeline.custody import Anchorer

    anchor_store = Store(url, create=False)
    anchorer = Anchorer(anchor_store, anchor_file, anchor_every)
    anchorer.start()  # in the supervisor only: one writer, whatever the worker count
    try:
        run_workers(options)
    finally:
        anchorer.stop()
        anchor_store.close()
