"""`ridgeline webhooks ls|add|test|replay|deliver`: signed pushes of list matches."""

from __future__ import annotations

import time

import click

from ridgeline.cli.common import (
    NON_NEGATIVE,
    actor_option,
    db_option,
    format_option,
    handle_errors,
    open_store,
)
from ridgeline.output import Writer, write_one


@click.group("webhooks")
def webhooks() -> None:
    """Per-list match webhooks (HMAC-SHA256 signed, retried, dead-lettered)."""


@webhooks.command("ls")
@click.option(
    "--deliveries",
    "status",
    type=click.Choice(["pending", "delivered", "dead"]),
    default=None,
    help="List deliveries in this state instead (dead: the dead-letter table).",
)
@db_option
@format_option
@handle_errors
def ls(status: str | None, db: str | None, fmt: str | None) -> None:
    """Webhooks (never their secrets), or deliveries by state."""
    from ridgeline import webhooks as W

    store = open_store(db)
    with store.session() as session:
        if status is None:
            columns = ["id", "list", "url", "enabled", "created_at"]
            with Writer(fmt, columns=columns, keep=["url"]) as out:
                out.write_all(W.webhook_to_json(h, n) for h, n in W.list_webhooks(session))
            return
        columns = ["id", "webhook_id", "event", "status", "attempts", "next_attempt_at",
                   "last_error"]  # fmt: skip
        with Writer(fmt, columns=columns) as out:
            out.write_all(W.delivery_to_json(d) for d in W.list_deliveries(session, status))


@webhooks.command("add")
@click.argument("list_name")
@click.argument("url")
@actor_option()
@db_option
@format_option
@handle_errors
def add(list_name: str, url: str, actor: str, db: str | None, fmt: str | None) -> None:
    """Push every match on LIST_NAME to URL; prints the signing secret once."""
    from ridgeline import webhooks as W

    store = open_store(db)
    with store.session() as session:
        hook, secret = W.add_webhook(session, list_name, url, actor=actor)
        write_one({**W.webhook_to_json(hook, list_name), "secret": secret}, fmt)
    click.echo("Keep the secret: it is not shown again.", err=True)


@webhooks.command("test")
@click.argument("webhook_id", type=int)
@db_option
@format_option
@handle_errors
def test(webhook_id: int, db: str | None, fmt: str | None) -> None:
    """Send a signed test event to WEBHOOK_ID now (exit 1 if it was not accepted)."""
    from ridgeline import webhooks as W

    store = open_store(db)
    with store.session() as session:
        row = W.send_test(session, webhook_id)
        out = W.delivery_to_json(row)
    write_one(out, fmt)
    if out["status"] != "delivered":
        raise SystemExit(1)


@webhooks.command("replay")
@click.argument("delivery_id", type=int)
@db_option
@format_option
@handle_errors
def replay(delivery_id: int, db: str | None, fmt: str | None) -> None:
    """Queue DELIVERY_ID again (a dead letter, say) and try it now."""
    from ridgeline import webhooks as W

    store = open_store(db)
    with store.session() as session:
        W.replay(session, delivery_id)
    W.deliver_pending(store)
    with store.session() as session:
        write_one(W.delivery_to_json(W.list_delivery(session, delivery_id)), fmt)


@webhooks.command("deliver")
@click.option("--wait", is_flag=True, help="Keep going until nothing is pending.")
@click.option("--now", "now", is_flag=True,
              help="Try every pending delivery at once, ignoring its back-off.")  # fmt: skip
@click.option("--base-delay", type=NON_NEGATIVE, default=30.0, show_default=True,
              help="Seconds before the first retry (doubles each time).")  # fmt: skip
@click.option("--max-attempts", type=click.IntRange(min=1), default=6, show_default=True)
@db_option
@format_option
@handle_errors
def deliver(wait: bool, now: bool, base_delay: float, max_attempts: int, db: str | None,
            fmt: str | None) -> None:  # fmt: skip
    """Send the deliveries that are due (retries with back-off; then dead letters)."""
    from ridgeline import webhooks as W

    policy = W.RetryPolicy(max_attempts=max_attempts, base_delay_s=base_delay)
    store = open_store(db)
    totals = {"delivered": 0, "retry": 0, "dead": 0}
    while True:
        counts = W.deliver_pending(store, policy, ignore_schedule=now)
        now = False  # only the first round: then the back-off applies
        with store.session() as session:
            pending = len(W.list_deliveries(session, "pending"))
        for key, value in counts.items():
            totals[key] += value
        if not wait or not pending:
            break
        time.sleep(min(base_delay, 1.0))
    write_one({**totals, "pending": pending}, fmt)
