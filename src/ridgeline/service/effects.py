"""What a match through the API sets off: per-list webhooks and `report` drafts.

`/v1/match` and `/v1/lookup` answer with the matches as before; when a match is on a
list that has an enabled webhook, or whose actions include `report`, the route also
stores, in one transaction before it answers (so a 200 means it is recorded):

- one signed `match` delivery per webhook of each matched list (`ridgeline.webhooks`),
  sent by the background `Deliverer` of this worker, never by the request;
- for `report` lists (`/v1/match` only: a lookup has no upload), a CyberTipline draft
  of the file with its hashes, matched entries and the caller's `context`
  (`ridgeline.reports.drafts.ReportSink`).

The same rules as `scan`: an allow-list match suppresses both, entries held by flood
control fire nothing. Which lists have webhooks or report actions is re-read every
`reload_s` seconds (and at once after `PUT /v1/lists/{name}/actions` in this worker),
so requests without such a match never touch the database.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ridgeline.matching import ExplainedMatch
from ridgeline.scan.actions import ReportRequest
from ridgeline.store import Store
from ridgeline.timeutil import isoformat, utcnow
from ridgeline.webhooks import queue_matches


@dataclass(frozen=True)
class Upload:
    """The file a `/v1/match` hit is about: its name, signals and bytes (if uploaded)."""

    name: str
    signals: dict[str, Any]
    data: bytes | None = None
    #: True when `signals` were computed from `data` itself (the spooled upload), so a
    #: draft takes its md5/sha1/sha256 from them instead of hashing the bytes again.
    hashed: bool = False


class MatchEffects:
    """Per-worker: the cached list ids, the report sink and the delivery thread."""

    reload_s = 1.0

    def __init__(
        self,
        store: Store,
        evidence_key_file: str | None,
        deliverer: Any = None,
        viral_users: int | None = None,
    ):
        self.store = store
        self.evidence_key_file = evidence_key_file
        self.viral_users = viral_users
        self.deliverer = deliverer
        self.webhook_lists: frozenset[int] = frozenset()
        self.report_lists: frozenset[int] = frozenset()
        self._loaded = 0.0
        self._lock = threading.Lock()
        self._sink: Any = None

    def prepare(self) -> None:
        """Import and map what drafting and queueing need, before requests and the
        refresh thread run: mapping new ORM classes while another thread queries is
        a race (SQLAlchemy configures mappers on first use)."""
        from sqlalchemy.orm import configure_mappers

        import ridgeline.reports.drafts
        import ridgeline.reports.models  # noqa: F401

        configure_mappers()
        self.reload(force=True)

    def reload(self, force: bool = False) -> None:
        """Re-read which lists have webhooks and report actions (cheap; rate-limited)."""
        now = time.monotonic()
        if not force and now - self._loaded < self.reload_s:
            return
        from ridgeline.scan.actions import actions_by_list_id
        from ridgeline.webhooks import webhook_list_ids

        with self.store.session() as s:
            hooks = frozenset(webhook_list_ids(s))
            reports = frozenset(
                k for k, names in actions_by_list_id(s).items() if "report" in names
            )
        self.webhook_lists, self.report_lists, self._loaded = hooks, reports, now

    @staticmethod
    def live(matches: Sequence[ExplainedMatch]) -> list[ExplainedMatch]:
        """The matches that act: none if any is on an allow list; never held ones."""
        if any(m.purpose == "allow" for m in matches):
            return []
        return [m for m in matches if not m.held]

    def wanted(self, matches: Sequence[ExplainedMatch], *, reports: bool = True) -> bool:
        if not matches or not (self.webhook_lists or (reports and self.report_lists)):
            return False
        for m in self.live(matches):
            if m.list_id in self.webhook_lists or (reports and m.list_id in self.report_lists):
                return True
        return False

    def sink(self) -> Any:
        """The report sink, with the evidence key when one is configured."""
        sink = self._sink
        if sink is not None:  # made once; no lock per hit
            return sink
        with self._lock:
            if self._sink is None:
                from ridgeline.evidence import ENV_KEY, ENV_KEY_FILE, EvidenceKey
                from ridgeline.reports.drafts import ReportSink

                configured = (
                    self.evidence_key_file
                    or os.environ.get(ENV_KEY)
                    or os.environ.get(ENV_KEY_FILE)
                )
                key = EvidenceKey.load(self.evidence_key_file) if configured else None
                self._sink = ReportSink(key, actor="api", viral_users=self.viral_users)
            return self._sink

    def apply(
        self,
        matches: Sequence[ExplainedMatch],
        *,
        route: str,
        key_name: str | None,
        upload: Upload | None = None,
        context: Any = None,
        drafts: bool = True,
    ) -> list[dict[str, Any]]:
        """Queue webhooks and draft reports for `matches` (drafts only for an upload, and
        only when `drafts`: the caller's role may create them); the actions, as JSON.
        (What it calls is imported with the module, not per hit: three `import`
        statements cost some 20 us of a hit's draft in the app, bench/reports.py.)"""
        live = self.live(matches)
        hooked = [m for m in live if m.list_id in self.webhook_lists]
        reporting = [m for m in live if m.list_id in self.report_lists] if upload and drafts else []
        if not hooked and not reporting:
            return []
        actions: list[dict[str, Any]] = []
        signals = upload.signals if upload else {}
        sha256 = signals.get("sha256") if isinstance(signals.get("sha256"), str) else None
        # Drafts alone go through a Core transaction (three prepared INSERTs): an ORM
        # session's set-up and commit cost as much again as the draft (bench/reports.py).
        # Webhooks and viral batching use the ORM, so they keep a session.
        light = not hooked and self.viral_users is None
        with self.store.transaction() if light else self.store.session() as s:
            if hooked:
                assert isinstance(s, Session)  # `light` is only taken without webhooks
                event = {"source": "api", "route": route, "sha256": sha256}
                if upload is None:  # a lookup: the hash that was looked up
                    event["value"] = hooked[0].value
                    event["signal"] = hooked[0].signal
                queued = queue_matches(s, hooked, event)
                if queued:
                    actions.append(
                        {
                            "action": "webhook",
                            "lists": sorted({m.list_name for m in hooked}),
                            "deliveries": [d.id for d in queued],
                        }
                    )
            if reporting and upload is not None:
                origin = {
                    "source": "api",
                    "route": route,
                    "key": key_name,
                    "seen_at": isoformat(utcnow()),
                }
                report_id = self.sink()(
                    s,
                    ReportRequest(
                        name=upload.name,
                        path=None,
                        sha256=sha256,
                        signals=signals,
                        matches=reporting,
                        origin=origin,
                        context=context,
                        data=upload.data,
                        hashed=upload.hashed,
                    ),
                )
                actions.append(
                    {
                        "action": "report",
                        "lists": sorted({m.list_name for m in reporting}),
                        "report_id": report_id,
                    }
                )
        if hooked and self.deliverer is not None:
            self.deliverer.wake()
        return actions
