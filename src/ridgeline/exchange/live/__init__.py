"""Live exchange: fetch partners' feeds (NCMEC hash sharing, StopNCII, ThreatExchange)
into lists, with checkpoints that survive a crash.

A source (`add_source`) names a client kind, the list it feeds and settings that are
not secret; credentials come from the environment or a credentials file
(`ridgeline.exchange.live.credentials`). `fetch_source` takes the source's lease (one
process fetches a source at a time; a lease whose holder died on this host, or ran
out, is taken over), then for every page the client yields stores the page's records
(`apply_with_tombstones`, the import writer) and the client's next cursor in ONE
transaction: a crash (kill -9) between pages leaves the last committed page and its
cursor, so the next run neither skips nor double-applies a page. Network calls never
run inside a transaction. `Scheduler` runs `fetch_due` in a thread of `ridgeline
serve`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline import lists as L
from ridgeline.errors import BadInput, NotFound, RidgelineError
from ridgeline.exchange.live import credentials as creds
from ridgeline.exchange.live.base import Client, FeedbackItem, FeedbackSent, Page
from ridgeline.exchange.live.errors import (
    CredentialsMissing,
    ExchangeAuthFailed,
    ExchangeBusy,
    ExchangeError,
    ExchangeUnavailable,
    FetchStopped,
)
from ridgeline.exchange.live.ncmec import NCMECClient
from ridgeline.exchange.live.stopncii import StopNCIIClient
from ridgeline.exchange.live.threatexchange import ThreatExchangeClient
from ridgeline.exchange.models import ExchangeCheckpoint, ExchangeMeta, ExchangeSource
from ridgeline.exchange.tombstones import apply_with_tombstones
from ridgeline.store import Store
from ridgeline.timeutil import as_utc, isoformat, utcnow

log = logging.getLogger(__name__)

#: Client kinds by name: one class per service behind one interface.
CLIENTS: dict[str, type[Client]] = {
    c.kind: c for c in (NCMECClient, StopNCIIClient, ThreatExchangeClient)
}
#: Settings every kind takes (the retry policy, the base URL, cursor age, lease).
COMMON_SETTINGS = (
    "base_url",
    "cursor_max_age_s",
    "lease_s",
    "retry_attempts",
    "retry_base_s",
    "retry_max_s",
    "retry_after_max_s",
    "timeout_s",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SECRET = re.compile(r"pass|secret|token|key|credential", re.I)
#: Seconds a fetch holds its lease without storing a page.
DEFAULT_LEASE_S = 600.0

__all__ = [
    "CLIENTS",
    "Client",
    "CredentialsMissing",
    "ExchangeAuthFailed",
    "ExchangeBusy",
    "ExchangeError",
    "ExchangeUnavailable",
    "FeedbackItem",
    "FeedbackSent",
    "FetchReport",
    "Page",
    "Scheduler",
    "SourceView",
    "add_source",
    "fetch_due",
    "fetch_source",
    "list_sources",
    "remove_source",
    "reset_source",
    "send_feedback",
    "source_status",
]


@dataclass(frozen=True)
class SourceView:
    """A source, its checkpoint and its last outcome (no credentials)."""

    name: str
    kind: str
    list_name: str
    settings: dict[str, Any]
    interval_s: float
    enabled: bool
    cursor: dict[str, Any]
    pages: int
    records: int
    last_started_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    fetching: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "list": self.list_name,
            "settings": dict(self.settings),
            "interval_s": self.interval_s,
            "enabled": self.enabled,
            "cursor": dict(self.cursor),
            "pages": self.pages,
            "records": self.records,
            "last_started_at": isoformat(self.last_started_at),
            "last_success_at": isoformat(self.last_success_at),
            "last_error": self.last_error,
            "last_error_at": isoformat(self.last_error_at),
            "fetching": self.fetching,
        }


@dataclass
class FetchReport:
    """What one fetch of a source did, summed over its pages."""

    source: str
    kind: str
    list_name: str
    pages: int = 0
    read: int = 0
    added: int = 0
    updated: int = 0
    duplicates: int = 0
    deleted: int = 0
    deletions_unmatched: int = 0
    not_listable: int = 0
    retries: int = 0
    #: The feed was read to its end (False: stopped, or `max_pages` reached).
    complete: bool = False
    cursor: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "list": self.list_name,
            "pages": self.pages,
            "read": self.read,
            "added": self.added,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "deleted": self.deleted,
            "deletions_unmatched": self.deletions_unmatched,
            "not_listable": self.not_listable,
            "retries": self.retries,
            "complete": self.complete,
            "cursor": dict(self.cursor),
            "errors": list(self.errors),
        }


def _check_settings(kind: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    cls = CLIENTS[kind]
    allowed = (*COMMON_SETTINGS, *cls.settings_keys)
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in allowed:
            hint = (
                " (credentials never go in the database: use the environment or the "
                f"{creds.ENV_FILE} file)"
                if _SECRET.search(key)
                else ""
            )
            raise BadInput(
                f"{kind} sources take no setting {key!r}{hint}; they take {', '.join(allowed)}"
            )
        out[key] = value
    cls.prepare(dict(out))  # an unknown environment fails now, not at the first fetch
    return out


def add_source(
    session: Session,
    name: str,
    kind: str,
    list_name: str,
    *,
    settings: Mapping[str, Any] | None = None,
    interval_s: float = 3600.0,
    enabled: bool = True,
    actor: str | None = None,
) -> ExchangeSource:
    """Add a live source feeding list `list_name` (its checkpoint starts empty)."""
    if not _NAME.match(name):
        raise BadInput(f"source name {name!r}: letters, digits, '.', '_' and '-' only, at most 100")
    if kind not in CLIENTS:
        raise BadInput(f"unknown exchange kind {kind!r}; expected one of {', '.join(CLIENTS)}")
    if interval_s <= 0:
        raise BadInput(f"interval must be positive, not {interval_s}")
    if session.scalar(select(ExchangeSource.id).where(ExchangeSource.name == name)) is not None:
        raise BadInput(f"a source named {name!r} exists already")
    hash_list = L.get_list(session, list_name)
    source = ExchangeSource(
        name=name,
        kind=kind,
        list_id=hash_list.id,
        settings=_check_settings(kind, settings or {}),
        interval_s=float(interval_s),
        enabled=enabled,
    )
    session.add(source)
    session.flush()
    session.add(ExchangeCheckpoint(source_id=source.id, cursor={}))
    session.flush()
    auditlog.append(
        session,
        actor,
        "exchange.source.add",
        f"list:{hash_list.id}",
        {"source": name, "kind": kind, "settings": source.settings},
    )
    return source


def _get(session: Session, name: str) -> ExchangeSource:
    source = session.scalar(select(ExchangeSource).where(ExchangeSource.name == name))
    if source is None:
        raise NotFound(f"no exchange source named {name!r} (see `ridgeline exchange ls`)")
    return source


def remove_source(session: Session, name: str, *, actor: str | None = None) -> None:
    """Remove a source and its checkpoint (the entries it fetched stay on the list)."""
    source = _get(session, name)
    checkpoint = session.get(ExchangeCheckpoint, source.id)
    if checkpoint is not None:
        session.delete(checkpoint)
    auditlog.append(
        session, actor, "exchange.source.remove", f"list:{source.list_id}", {"source": name}
    )
    session.delete(source)
    session.flush()


def reset_source(
    session: Session, name: str, *, since: str | int | None = None, actor: str | None = None
) -> SourceView:
    """Forget a source's cursor: the next fetch starts from `since` (or the source's
    own `since` setting). Entries fetched before stay; re-read ones apply once."""
    from ridgeline.exchange.live.ncmec import since_seconds

    source = _get(session, name)
    checkpoint = session.get(ExchangeCheckpoint, source.id)
    holder = checkpoint.lease_holder if checkpoint is not None else None
    until = checkpoint.lease_until if checkpoint is not None else None
    if holder and until is not None and as_utc(until) > utcnow() and not _holder_dead(holder):
        raise ExchangeBusy(f"source {name!r} is being fetched by {holder}")
    if since is not None:
        since_seconds(since)  # a bad time fails here
        source.settings = {**(source.settings or {}), "since": since}
    if checkpoint is None:
        session.add(ExchangeCheckpoint(source_id=source.id, cursor={}))
    else:
        checkpoint.cursor = {}
    session.flush()
    auditlog.append(
        session,
        actor,
        "exchange.source.reset",
        f"list:{source.list_id}",
        {"source": name, "since": since},
    )
    return _view(session, source)


def _view(session: Session, source: ExchangeSource) -> SourceView:
    checkpoint = session.get(ExchangeCheckpoint, source.id)
    hash_list = L.get_list(session, source.list_id)
    now = utcnow()
    holder = None
    if (
        checkpoint is not None
        and checkpoint.lease_holder
        and checkpoint.lease_until is not None
        and as_utc(checkpoint.lease_until) > now
    ):
        holder = checkpoint.lease_holder

    def t(value: dt.datetime | None) -> dt.datetime | None:
        return as_utc(value) if value is not None else None

    return SourceView(
        name=source.name,
        kind=source.kind,
        list_name=hash_list.name,
        settings=dict(source.settings or {}),
        interval_s=source.interval_s,
        enabled=source.enabled,
        cursor=dict(checkpoint.cursor or {}) if checkpoint else {},
        pages=checkpoint.pages if checkpoint else 0,
        records=checkpoint.records if checkpoint else 0,
        last_started_at=t(checkpoint.last_started_at) if checkpoint else None,
        last_success_at=t(checkpoint.last_success_at) if checkpoint else None,
        last_error=checkpoint.last_error if checkpoint else None,
        last_error_at=t(checkpoint.last_error_at) if checkpoint else None,
        fetching=holder,
    )


def list_sources(session: Session) -> list[SourceView]:
    """Every source with its checkpoint, by name."""
    return [
        _view(session, s)
        for s in session.scalars(select(ExchangeSource).order_by(ExchangeSource.name))
    ]


def source_status(session: Session, name: str) -> SourceView:
    """One source with its checkpoint."""
    return _view(session, _get(session, name))


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_dead(holder: str) -> bool:
    """Whether a lease holder was a process on this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _acquire(session: Session, source: ExchangeSource, me: str, lease_s: float) -> None:
    checkpoint = session.get(ExchangeCheckpoint, source.id)
    if checkpoint is None:
        checkpoint = ExchangeCheckpoint(source_id=source.id, cursor={})
        session.add(checkpoint)
        session.flush()
    now = utcnow()
    old = checkpoint.lease_holder
    free = (
        old is None
        or checkpoint.lease_until is None
        or as_utc(checkpoint.lease_until) <= now
        or _holder_dead(old)
    )
    if not free:
        raise ExchangeBusy(
            f"source {source.name!r} is being fetched by {old} (lease until "
            f"{isoformat(as_utc(checkpoint.lease_until)) if checkpoint.lease_until else '?'})"
        )
    same = (
        ExchangeCheckpoint.lease_holder.is_(None)
        if old is None
        else ExchangeCheckpoint.lease_holder == old
    )
    taken = session.execute(
        update(ExchangeCheckpoint)
        .where(ExchangeCheckpoint.source_id == source.id, same)
        .values(
            lease_holder=me,
            lease_until=now + dt.timedelta(seconds=lease_s),
            last_started_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ExchangeBusy(f"source {source.name!r} was taken by another process just now")


def _release(store: Store, source_id: int, me: str, **values: Any) -> None:
    with store.session() as session:
        session.execute(
            update(ExchangeCheckpoint)
            .where(ExchangeCheckpoint.source_id == source_id, ExchangeCheckpoint.lease_holder == me)
            .values(lease_holder=None, lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )


def make_client(
    source: ExchangeSource,
    *,
    transport: httpx.BaseTransport | None = None,
    credentials_file: str | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> Client:
    """The client of a source, with its credentials (from the environment or file)."""
    cls = CLIENTS[source.kind]
    secret = creds.load(
        source.name,
        cls.required_credentials,
        cls.optional_credentials,
        file=credentials_file,
    )
    return cls(
        source.name, source.settings or {}, secret, transport=transport, stop=stop, clock=clock
    )


def fetch_source(
    store: Store,
    name: str,
    *,
    transport: httpx.BaseTransport | None = None,
    credentials_file: str | None = None,
    stop: threading.Event | None = None,
    max_pages: int | None = None,
    actor: str | None = None,
    clock: Callable[[], float] = time.time,
    on_page: Callable[[FetchReport], None] | None = None,
) -> FetchReport:
    """Fetch source `name` from its checkpoint to the end of its feed (or `max_pages`).

    Each page is one transaction: its records and the cursor after it. Raises
    `ExchangeBusy` when another live process holds the source, and the partner's
    errors after the retries (the pages stored before stay stored; the error is kept
    as the source's `last_error`).
    """
    me = _holder()
    with store.session() as session:
        source = _get(session, name)
        source_id, list_id, kind = source.id, source.list_id, source.kind
        settings = dict(source.settings or {})
        lease_s = float(settings.get("lease_s", DEFAULT_LEASE_S))
        _acquire(session, source, me, lease_s)
        list_name = L.get_list(session, list_id).name
        checkpoint = session.get(ExchangeCheckpoint, source_id)
        cursor = dict(checkpoint.cursor or {}) if checkpoint else {}
        try:
            client = make_client(
                source,
                transport=transport,
                credentials_file=credentials_file,
                stop=stop,
                clock=clock,
            )
        except RidgelineError:
            session.rollback()
            raise
    report = FetchReport(name, kind, list_name, cursor=cursor)
    who = actor or f"exchange:{name}"
    try:
        for page in client.pages(cursor):
            _store_page(store, source_id, list_id, me, lease_s, page, name, who, report)
            if on_page is not None:
                on_page(report)
            if page.done:
                report.complete = True
            if max_pages is not None and report.pages >= max_pages:
                break
        else:
            report.complete = True
    except FetchStopped:
        report.complete = False
        _release(store, source_id, me)
    except RidgelineError as exc:
        report.retries = client.http.retries
        _release(store, source_id, me, last_error=str(exc)[:2000], last_error_at=utcnow())
        client.close()
        raise
    except BaseException:
        _release(store, source_id, me)
        client.close()
        raise
    else:
        values: dict[str, Any] = {}
        if report.complete:
            values = {"last_success_at": utcnow(), "last_error": None, "last_error_at": None}
        _release(store, source_id, me, **values)
    report.retries = client.http.retries
    client.close()
    return report


def _store_page(
    store: Store,
    source_id: int,
    list_id: int,
    me: str,
    lease_s: float,
    page: Page,
    name: str,
    actor: str,
    report: FetchReport,
) -> None:
    """One page's records and the cursor after them, in one transaction."""
    with store.session() as session:
        hash_list = L.get_list(session, list_id)
        result = apply_with_tombstones(session, hash_list, page.parsed, source=name, actor=actor)
        kept = session.execute(
            update(ExchangeCheckpoint)
            .where(ExchangeCheckpoint.source_id == source_id, ExchangeCheckpoint.lease_holder == me)
            .values(
                cursor=page.cursor,
                pages=ExchangeCheckpoint.pages + 1,
                records=ExchangeCheckpoint.records + len(page.parsed.records),
                lease_until=utcnow() + dt.timedelta(seconds=lease_s),
            )
            .execution_options(synchronize_session=False)
        )
        if kept.rowcount != 1:  # type: ignore[attr-defined]
            # Our lease ran out and another process took the source: this page is
            # theirs to store; rolling back keeps it from being applied twice.
            session.rollback()
            raise ExchangeBusy(f"source {name!r}: the lease was lost to another process")
    report.pages += 1
    report.read += result.read
    report.added += result.added
    report.updated += result.updated
    report.duplicates += result.duplicates
    report.deleted += result.deleted
    report.deletions_unmatched += result.deletions_unmatched
    report.not_listable += result.not_listable
    report.errors.extend(result.errors)
    report.cursor = dict(page.cursor)


def fetch_due(
    store: Store,
    *,
    transport: httpx.BaseTransport | None = None,
    credentials_file: str | None = None,
    stop: threading.Event | None = None,
    now: dt.datetime | None = None,
) -> list[FetchReport | RidgelineError]:
    """Fetch every enabled source whose interval has passed since its last start; a
    source's failure is kept as its `last_error` and the others still run."""
    moment = now or utcnow()
    with store.session() as session:
        due = [
            s.name
            for s in session.scalars(
                select(ExchangeSource)
                .outerjoin(ExchangeCheckpoint, ExchangeCheckpoint.source_id == ExchangeSource.id)
                .where(ExchangeSource.enabled.is_(True))
                .order_by(ExchangeSource.name)
            )
            if _is_due(session, s, moment)
        ]
    out: list[FetchReport | RidgelineError] = []
    for name in due:
        if stop is not None and stop.is_set():
            break
        try:
            out.append(
                fetch_source(
                    store, name, transport=transport, credentials_file=credentials_file, stop=stop
                )
            )
        except RidgelineError as exc:
            log.warning("exchange source %s: %s", name, exc)
            out.append(exc)
    return out


def _is_due(session: Session, source: ExchangeSource, now: dt.datetime) -> bool:
    checkpoint = session.get(ExchangeCheckpoint, source.id)
    if checkpoint is None or checkpoint.last_started_at is None:
        return True
    return (now - as_utc(checkpoint.last_started_at)).total_seconds() >= source.interval_s


class Scheduler:
    """`fetch_due` every `tick_s` seconds in a daemon thread (inside `ridgeline serve`).

    Fetches run in this thread, never in a request; `stop()` sets an event every wait
    and every retry back-off watches, so a fetch ends at its next page boundary or
    back-off and the thread is joined.
    """

    def __init__(
        self,
        store: Store,
        tick_s: float,
        *,
        credentials_file: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.tick_s = tick_s
        self.credentials_file = credentials_file
        self.transport = transport
        self.stopping = threading.Event()
        self.runs = 0
        self.thread = threading.Thread(target=self._run, name="exchange-fetch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                fetch_due(
                    self.store,
                    transport=self.transport,
                    credentials_file=self.credentials_file,
                    stop=self.stopping,
                )
            except Exception:  # the thread must outlive any one failure
                log.exception("scheduled exchange fetch failed")
            self.runs += 1
            if self.stopping.wait(self.tick_s):
                break

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)


def send_feedback(
    store: Store,
    name: str,
    entry_id: int,
    *,
    affirmative: bool,
    reason: str | None = None,
    signals: list[str] | None = None,
    transport: httpx.BaseTransport | None = None,
    credentials_file: str | None = None,
    actor: str | None = None,
) -> list[FeedbackSent]:
    """Send our opinion of entry `entry_id` (fetched from source `name`) to the partner;
    logged in the tamper-evident log."""
    with store.session() as session:
        source = _get(session, name)
        entry = L.get_entry(session, entry_id)
        if entry.list_id != source.list_id or entry.origin_entry_id is None:
            raise BadInput(f"entry {entry_id} did not come from source {name!r}")
        meta = session.get(ExchangeMeta, entry_id)
        extra = dict(meta.data) if meta is not None else {}
        chosen = {
            s.signal: s.value for s in entry.signals if signals is None or s.signal in signals
        }
        item = FeedbackItem(
            origin_member=entry.origin_member,
            origin_entry_id=entry.origin_entry_id,
            signals=chosen,
            affirmative=affirmative,
            reason=reason,
            extra=extra,
        )
        client = make_client(source, transport=transport, credentials_file=credentials_file)
    try:
        sent = client.send_feedback(item)
    finally:
        client.close()
    with store.session() as session:
        auditlog.append(
            session,
            actor,
            "exchange.feedback",
            f"entry:{entry_id}",
            {
                "source": name,
                "affirmative": affirmative,
                "reason": reason,
                "sent": [s.to_json() for s in sent],
            },
        )
    return sent
