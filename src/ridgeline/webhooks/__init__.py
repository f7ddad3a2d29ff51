"""Per-list match webhooks: signed pushes instead of polling, retried, dead-lettered.

A webhook belongs to one list. Every scan match on that list (an acting match: not
allow-listed, not held by flood control) queues one delivery per enabled webhook of
the list; `deliver_due` POSTs the JSON body with

- `X-Ridgeline-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed by the
  webhook's secret>`,
- `X-Ridgeline-Event` (`match` or `test`) and `X-Ridgeline-Delivery` (the delivery id,
  for de-duplication: a retry sends the same id and the same bytes).

A 2xx answer delivers it. Anything else (an error status, a refused connection, a
timeout) schedules a retry after `base_delay_s * 2**(attempts-1)` (capped at
`max_delay_s`); after `max_attempts` failures the delivery is `dead` (the dead-letter
table) until `replay` queues it again. Bodies carry hashes and list/entry ids, never
media or file paths.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.lists.core import get_list
from ridgeline.timeutil import as_utc, isoformat, utcnow
from ridgeline.webhooks.models import Webhook, WebhookDelivery

if TYPE_CHECKING:
    from ridgeline.matching import ExplainedMatch
    from ridgeline.store import Store

SIGNATURE_HEADER = "X-Ridgeline-Signature"
STATUSES = ("pending", "delivered", "dead")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failing delivery is retried before it is dead."""

    max_attempts: int = 6
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    timeout_s: float = 10.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failures (exponential back-off)."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** max(attempts - 1, 0)))


def sign(secret: str, body: bytes) -> str:
    """The `X-Ridgeline-Signature` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: compare the header with its own HMAC in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def webhook_to_json(hook: Webhook, list_name: str | None = None) -> dict[str, Any]:
    """A webhook without its secret."""
    return {
        "id": hook.id,
        "list_id": hook.list_id,
        "list": list_name,
        "url": hook.url,
        "enabled": hook.enabled,
        "created_at": isoformat(hook.created_at),
    }


def delivery_to_json(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": isoformat(row.next_attempt_at),
        "last_error": row.last_error,
        "created_at": isoformat(row.created_at),
        "delivered_at": isoformat(row.delivered_at),
    }


def add_webhook(
    session: Session,
    list_name: str,
    url: str,
    *,
    secret: str | None = None,
    actor: str | None = None,
) -> tuple[Webhook, str]:
    """Register `url` for matches on `list_name`; returns the row and its signing secret.

    Logged (`webhook.add`, with the URL's scheme and host only: a path can hold a
    receiver's token), since from then on match details leave for that host.
    """
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"webhook URL must be http:// or https://, not {url!r}")
    hash_list = get_list(session, list_name)
    key = secret or secrets.token_hex(32)
    hook = Webhook(list_id=hash_list.id, url=url, secret=key, enabled=True)
    session.add(hook)
    session.flush()
    parts = urllib.parse.urlsplit(url)
    auditlog.append(session, actor, "webhook.add", f"list:{hash_list.id}",
                    {"name": hash_list.name, "webhook_id": hook.id,
                     "target": f"{parts.scheme}://{parts.hostname}"})  # fmt: skip
    return hook, key


def list_webhooks(session: Session) -> list[tuple[Webhook, str]]:
    """Every webhook with its list's name."""
    from ridgeline.lists.models import HashList

    rows = session.execute(
        select(Webhook, HashList.name)
        .join(HashList, HashList.id == Webhook.list_id)
        .order_by(Webhook.id)
    )
    return [(hook, str(name)) for hook, name in rows]


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(f"no webhook {webhook_id}")
    return hook


def _queue(
    session: Session, hook: Webhook, event: str, payload: Mapping[str, Any]
) -> WebhookDelivery:
    body = json.dumps({"event": event, **payload}, separators=(",", ":"), sort_keys=True)
    row = WebhookDelivery(webhook_id=hook.id, event=event, body=body, status="pending")
    session.add(row)
    session.flush()
    return row


def queue_matches(
    session: Session, matches: Sequence[ExplainedMatch], context: Mapping[str, Any]
) -> list[WebhookDelivery]:
    """One `match` delivery per enabled webhook of each list among `matches`."""
    by_list: dict[int, list[dict[str, Any]]] = {}
    for m in matches:
        by_list.setdefault(m.list_id, []).append(m.to_json())
    if not by_list:
        return []
    hooks = session.scalars(
        select(Webhook).where(Webhook.list_id.in_(list(by_list)), Webhook.enabled.is_(True))
    )
    out = []
    for hook in hooks:
        hits = by_list[hook.list_id]
        payload = {
            **context,
            "list": hits[0]["list"],
            "matches": [
                {
                    k: m.get(k)
                    for k in (
                        "entry_id",
                        "signal",
                        "distance",
                        "threshold",
                        "variant",
                        "classifications",
                    )
                }
                for m in hits
            ],
        }
        out.append(_queue(session, hook, "match", payload))
    return out


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> str | None:
    """None when the receiver answered 2xx, else what went wrong."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable: {reason}"
    return None if 200 <= status < 300 else f"HTTP {status}"


def _headers(hook: Webhook, row: WebhookDelivery, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(hook.secret, body),
        "X-Ridgeline-Event": row.event,
        "X-Ridgeline-Delivery": str(row.id),
        "User-Agent": "ridgeline-webhooks",
    }


def _record(
    row: WebhookDelivery, problem: str | None, policy: RetryPolicy, now: dt.datetime
) -> bool:
    row.attempts += 1
    if problem is None:
        row.status, row.delivered_at, row.last_error = "delivered", now, None
        return True
    row.last_error = problem
    if row.attempts >= policy.max_attempts:
        row.status = "dead"
    else:
        # back off from when the attempt failed, not from when it began (a slow receiver)
        row.next_attempt_at = max(now, utcnow()) + dt.timedelta(seconds=policy.delay(row.attempts))
    return False


def attempt(session: Session, row: WebhookDelivery, policy: RetryPolicy, now: dt.datetime) -> bool:
    """Send one delivery now; record delivered, the next retry, or dead. True if delivered."""
    hook = session.get(Webhook, row.webhook_id)
    if hook is None:
        return False
    body = row.body.encode()
    problem = _post(hook.url, body, _headers(hook, row, body), policy.timeout_s)
    return _record(row, problem, policy, now)


def deliver_due(
    session: Session,
    policy: RetryPolicy | None = None,
    *,
    now: dt.datetime | None = None,
    limit: int = 100,
    ignore_schedule: bool = False,
) -> dict[str, int]:
    """Try every pending delivery whose time has come (all pending ones with
    `ignore_schedule`, e.g. once a receiver is back); counts of what happened."""
    policy = policy or RetryPolicy()
    now = as_utc(now or utcnow())
    query = select(WebhookDelivery).where(WebhookDelivery.status == "pending")
    if not ignore_schedule:
        query = query.where(WebhookDelivery.next_attempt_at <= now)
    due = list(session.scalars(query.order_by(WebhookDelivery.id).limit(limit)))
    counts = {"delivered": 0, "retry": 0, "dead": 0}
    for row in due:
        if attempt(session, row, policy, now):
            counts["delivered"] += 1
        elif row.status == "dead":
            counts["dead"] += 1
        else:
            counts["retry"] += 1
    session.flush()
    return counts


def deliver_pending(
    store: Store,
    policy: RetryPolicy | None = None,
    *,
    limit: int = 100,
    ignore_schedule: bool = False,
) -> dict[str, int]:
    """`deliver_due` for a store shared with others (a running server, its workers, the
    CLI): each due delivery is first claimed in a short transaction of its own (its next
    try moved past the request timeout, so no other deliverer sends it meanwhile), then
    POSTed outside any transaction, then its outcome recorded. A deliverer that dies
    mid-way leaves the delivery to be retried once the claim lapses."""
    from sqlalchemy import update

    policy = policy or RetryPolicy()
    counts = {"delivered": 0, "retry": 0, "dead": 0}
    now = utcnow()
    with store.session() as s:
        query = select(WebhookDelivery.id, WebhookDelivery.next_attempt_at).where(
            WebhookDelivery.status == "pending"
        )
        if not ignore_schedule:
            query = query.where(WebhookDelivery.next_attempt_at <= now)
        due = list(s.execute(query.order_by(WebhookDelivery.id).limit(limit)))
    lease = dt.timedelta(seconds=policy.timeout_s + 30)
    for delivery_id, seen in due:
        with store.session() as s:
            result = s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at == seen,
                )
                .values(next_attempt_at=utcnow() + lease)
            )
            claimed = int(getattr(result, "rowcount", 0) or 0) == 1
            row = s.get(WebhookDelivery, delivery_id)
            hook = s.get(Webhook, row.webhook_id) if row is not None else None
            if not claimed or row is None or hook is None:
                continue
            body = row.body.encode()
            url, headers = hook.url, _headers(hook, row, body)
        problem = _post(url, body, headers, policy.timeout_s)
        with store.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            if row is None:  # pragma: no cover - deleted with its webhook meanwhile
                continue
            if _record(row, problem, policy, utcnow()):
                counts["delivered"] += 1
            elif row.status == "dead":
                counts["dead"] += 1
            else:
                counts["retry"] += 1
    return counts


class Deliverer:
    """The background delivery worker of `ridgeline serve`: a daemon thread that sends
    what is due every `poll_s` seconds, or at once when `wake` is called (a request
    just queued a delivery). Requests never wait for a receiver."""

    def __init__(self, store: Store, policy: RetryPolicy | None = None, poll_s: float = 1.0):
        import threading

        self.store = store
        self.policy = policy or RetryPolicy()
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ridgeline-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import logging

        log = logging.getLogger("ridgeline.webhooks")
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                while True:
                    counts = deliver_pending(self.store, self.policy)
                    if sum(counts.values()) < 100 or self._stop.is_set():
                        break
            except Exception as exc:  # the store is away for a moment: try again later
                log.warning("webhook delivery failed: %s", exc)


def webhook_list_ids(session: Session) -> set[int]:
    """Lists with at least one enabled webhook (what the service checks per match)."""
    return set(session.scalars(select(Webhook.list_id).where(Webhook.enabled.is_(True))))


def send_test(
    session: Session, webhook_id: int, policy: RetryPolicy | None = None
) -> WebhookDelivery:
    """Queue a signed `test` event and try it at once (it retries like any other)."""
    hook = get_webhook(session, webhook_id)
    row = _queue(session, hook, "test", {"webhook_id": hook.id, "at": isoformat(utcnow())})
    attempt(session, row, policy or RetryPolicy(), as_utc(utcnow()))
    session.flush()
    return row


def replay(session: Session, delivery_id: int) -> WebhookDelivery:
    """Queue a dead (or delivered) delivery again, same id and bytes, attempts reset."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    if row.status == "pending":
        raise Conflict(f"delivery {delivery_id} is still pending")
    row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
    session.flush()
    return row


def list_delivery(session: Session, delivery_id: int) -> WebhookDelivery:
    row = session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return row


def list_deliveries(session: Session, status: str | None = None) -> list[WebhookDelivery]:
    if status is not None and status not in STATUSES:
        raise BadInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    query = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return list(session.scalars(query))
