"""The scan pipeline: walk -> hash -> match (in workers) -> record and act (here).

Workers (local processes or Ray tasks) do the heavy, stateless part: hashing and
index lookups. This process is the single writer: it records every result, applies
flood control and fires list actions, so the store sees one consistent sequence
whatever engine ran the work.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from ridgeline.errors import BadInput, RidgelineError
from ridgeline.lists import get_list
from ridgeline.matching import Annotator, ExplainedMatch
from ridgeline.scan.actions import (
    DEFAULT_ACTIONS,
    REVIEW_ONLY_ACTIONS,
    ReportRequest,
    ReportSink,
    actions_by_list_id,
    default_quarantine_dir,
    quarantine_file,
    validate_actions,
)
from ridgeline.scan.archives import ArchiveLimits, ScanItem, Walker, archive_type
from ridgeline.scan.flood import FloodPolicy, count_matches
from ridgeline.scan.models import ScanFile, ScanRun, ScanState, path_key
from ridgeline.scan.workers import (
    run_local,
)
from ridgeline.signals import HashOptions, get_signal
from ridgeline.store import Store
from ridgeline.timeutil import utcnow

RESUME_MODES = ("stat", "sha256")


@dataclass
class ScanOptions:
    """Everything a scan needs besides the store and the paths."""

    lists: list[str] = field(default_factory=list)
    signals: list[str] | None = None
    hash_options: HashOptions = field(default_factory=HashOptions)
    jobs: int = 1
    resume: bool = False
    #: `stat`: unchanged path+size+mtime; `sha256`: also content already scanned elsewhere.
    resume_by: str = "stat"
    #: Actions for this scan's lists, overriding what the lists have configured.
    actions: list[str] | None = None
    quarantine_dir: str | None = None
    flood: FloodPolicy = field(default_factory=FloodPolicy)
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    #: Open zip/tar archives and scan their members (else hash them as files).
    archives: bool = True
    index_dir: str | None = None
    work_dir: str | None = None
    engine: str = "local"
    ray_address: str | None = None
    #: Retries of match webhooks (None: `ridgeline.webhooks.RetryPolicy()` defaults).
    webhook_policy: Any = None
    #: Makes the CyberTipline draft of a `report` action (`reports.drafts.ReportSink`);
    #: the front end passes it, since reports sit above the scan. Without one, a scan
    #: whose lists would draft reports is refused before it starts.
    report_sink: ReportSink | None = None
    #: Annotates the matches here, before actions and drafts (the front end's, e.g. the
    #: victims registry's series status); workers match without one.
    annotator: Annotator | None = None

    def validate(self) -> None:
        if self.jobs < 1:
            raise BadInput("--jobs must be at least 1")
        if self.resume_by not in RESUME_MODES:
            raise BadInput(f"resume mode must be one of {', '.join(RESUME_MODES)}")
        if self.engine not in ("local", "ray"):
            raise BadInput(f"engine must be local or ray, not {self.engine!r}")
        if self.engine == "ray" and importlib.util.find_spec("ray") is None:
            raise BadInput(
                "the Ray engine needs Ray: pip install 'ridgeline[ray]' "
                "(in a checkout: .venv/bin/pip install -e '.[ray]')"
            )
        if self.actions is not None:
            self.actions = validate_actions(self.actions)
        for name in self.signals or []:
            get_signal(name)

    def worker_config(self, db_url: str) -> dict[str, Any]:
        """What a worker needs, as plain JSON-able data (no pickled objects)."""
        return {
            "db_url": db_url,
            "index_dir": self.index_dir,
            "lists": self.lists,
            "signals": self.signals,
            "hash_options": asdict(self.hash_options),
            "resume_sha256": self.resume and self.resume_by == "sha256",
        }


@dataclass
class ScanSummary:
    run_id: int
    files: int = 0
    skipped: int = 0
    matched: int = 0
    errors: int = 0
    held: int = 0
    quarantined: int = 0
    reports: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- worker side -----------------------------------------------------------------


# --- recording side --------------------------------------------------------------


@dataclass
class Recorder:
    """Writes results, applies flood control and fires actions (single writer)."""

    store: Store
    run: ScanRun
    options: ScanOptions
    summary: ScanSummary
    flush_every: int = 256
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _top: str | None = None
    _top_ok: bool = True
    _top_info: dict[str, Any] = field(default_factory=dict)
    _quarantined: set[str] = field(default_factory=set)
    _states: list[dict[str, Any]] = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)
    _actions: dict[int, list[str]] = field(default_factory=dict)
    webhooks_queued: int = 0

    def __post_init__(self) -> None:
        with self.store.session() as s:
            self._actions = actions_by_list_id(s)
            self._list_ids = {get_list(s, name).id for name in self.options.lists}

    def record(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """Queue one outcome; returns the row reported to the user."""
        item = outcome["item"]
        if item["top"] != self._top:
            self._finish_top()
            self._top, self._top_ok = item["top"], True
            self._top_info = {
                "size": item["top_size"],
                "mtime_ns": item["mtime_ns"],
                "sha256": None,
            }
        if item["skipped"]:
            self.summary.skipped += 1
            # A skip proves the content unchanged: keep (or learn) its sha256 so that
            # `--resume-by sha256` still knows it (a stat skip carries no digest).
            self._top_info["skipped"] = True
            if not item["member"] and outcome["sha256"]:
                self._top_info["sha256"] = outcome["sha256"]
            row = {"path": item["display"], "skipped": True}
            return row | ({"reason": item["reason"]} if item.get("reason") else {})
        self.summary.files += 1
        if outcome["error"]:
            self.summary.errors += 1
            self._top_ok = False
        if not item["member"]:
            self._top_info["sha256"] = outcome["sha256"]
        self._pending.append(outcome)
        if not item["member"]:
            # A top-level item is the last of its top (a plain file, or the error that
            # ended an archive): its resume state goes in the same transaction as its
            # result and report draft, so a kill in between cannot file a second draft
            # on `--resume` (issue 17 item 6).
            self._finish_top()
            self._top = None
        now = time.monotonic()
        if (
            outcome["matches"]
            or len(self._pending) >= self.flush_every
            or now - self._last_flush > 1
        ):
            self.flush()
        return self.row(outcome)

    @staticmethod
    def row(outcome: dict[str, Any]) -> dict[str, Any]:
        item = outcome["item"]
        return {
            "path": item["display"],
            "size": item["size"],
            "sha256": outcome["sha256"],
            "kind": outcome["kind"],
            "signals": outcome["signals"],
            "matches": [m.to_json() for m in outcome["matches"]],
            "actions": outcome.get("actions", []),
            "error": outcome["error"],
        }

    def _finish_top(self) -> None:
        if self._top is None or self._top_info.get("size") is None:
            return
        self._states.append(
            {
                "path": self._top,
                "size": self._top_info["size"],
                "mtime_ns": self._top_info["mtime_ns"],
                "sha256": self._top_info.get("sha256"),
                "ok": self._top_ok,
                "skipped": self._top_info.get("skipped", False),
            }
        )

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        states, self._states = self._states, []
        self._last_flush = time.monotonic()
        if not pending and not states:
            return
        annotator = self.options.annotator
        matched = [o for o in pending if o["matches"]]
        if annotator is not None and matched:  # one batched annotation per flush
            groups = annotator.annotate([o["matches"] for o in matched], "scan")
            for outcome, group in zip(matched, groups, strict=True):
                outcome["matches"] = group
        with self.store.session() as s:
            rows = []
            for outcome in pending:
                if outcome["matches"]:
                    self._act(s, outcome)
                item = outcome["item"]
                rows.append(
                    {
                        "run_id": self.run.id,
                        "path": item["display"],
                        "size": item["size"],
                        "sha256": outcome["sha256"],
                        "kind": outcome["kind"],
                        "media_type": outcome["media_type"],
                        "signals": outcome["signals"],
                        "matches": [m.to_json() for m in outcome["matches"]],
                        "actions": outcome.get("actions", []),
                        "error": outcome["error"],
                    }
                )
            if rows:  # one executemany: the recorder shares the CPU with the workers
                s.execute(insert(ScanFile), rows)
            if states:
                self._save_states(s, states)

    def _save_states(self, s: Any, states: list[dict[str, Any]]) -> None:
        keys = {path_key(st["path"]): st for st in states}
        query = select(ScanState.path_key, ScanState.id, ScanState.sha256).where(
            ScanState.path_key.in_(list(keys))
        )
        existing = {key: (state_id, sha) for key, state_id, sha in s.execute(query)}
        now = utcnow()
        new, changed = [], []
        for key, st in keys.items():
            sha = st["sha256"]
            if sha is None and st["skipped"] and key in existing:
                sha = existing[key][1]  # skipped unchanged: its digest still holds
            values = {
                "size": st["size"],
                "mtime_ns": st["mtime_ns"],
                "sha256": sha,
                "ok": st["ok"],
                "run_id": self.run.id,
                "scanned_at": now,
            }
            if key in existing:
                changed.append({"id": existing[key][0], **values})
            else:
                new.append({"path_key": key, "path": st["path"], **values})
        if new:
            s.execute(insert(ScanState), new)
        if changed:
            s.execute(update(ScanState), changed)  # bulk UPDATE by primary key

    def _act(self, s: Any, outcome: dict[str, Any]) -> None:
        matches: list[ExplainedMatch] = outcome["matches"]
        item = outcome["item"]
        block = [m for m in matches if m.purpose != "allow"]
        allow = [m for m in matches if m.purpose == "allow"]
        actions: list[dict[str, Any]] = []
        outcome["actions"] = actions
        if not block:
            actions.append(
                {
                    "action": "none",
                    "reason": "allow-listed",
                    "lists": sorted({m.list_name for m in allow}),
                }
            )
            return
        self.summary.matched += 1
        held = count_matches(s, {m.entry_id: m.list_id for m in block}, self.options.flood)
        block = [m.with_held(m.entry_id in held) for m in block]
        outcome["matches"] = [*block, *allow]
        outcome["matches"].sort(key=lambda m: (m.distance, m.list_name, m.entry_id))
        if allow:
            actions.append(
                {
                    "action": "none",
                    "reason": "allow-listed",
                    "lists": sorted({m.list_name for m in allow}),
                }
            )
            return
        live = [m for m in block if not m.held]
        if not live:
            self.summary.held += 1
            actions.append({"action": "none", "reason": "held by flood control"})
            return
        wanted: dict[str, list[str]] = {}
        downgraded: list[str] = []
        for m in live:
            names = self._list_actions(m.list_id)
            if m.review:  # self-submitted: a person decides, whatever the actions say
                if set(names) - set(REVIEW_ONLY_ACTIONS) and m.list_name not in downgraded:
                    downgraded.append(m.list_name)
                names = list(REVIEW_ONLY_ACTIONS)
            for name in names:
                wanted.setdefault(name, [])
                if m.list_name not in wanted[name]:
                    wanted[name].append(m.list_name)
        if "flag" in wanted:
            flag: dict[str, Any] = {"action": "flag", "lists": wanted["flag"]}
            review = sorted({m.list_name for m in live if m.review})
            if review:
                flag["review"] = review  # self-submitted: for human review only
            if downgraded:
                flag["downgraded"] = downgraded  # quarantine/report refused for these
            actions.append(flag)
        from ridgeline.webhooks import queue_matches  # per-list match webhooks

        queued = queue_matches(
            s, live, {"source": "scan", "run_id": self.run.id, "sha256": outcome["sha256"]}
        )
        if queued:
            self.webhooks_queued += len(queued)
        earlier = self._drafted_before(s, item["display"], outcome["sha256"])
        if "report" in wanted and earlier is not None:
            # A killed run already drafted this file (an archive member whose archive
            # was not finished): `--resume` does not file it twice.
            actions.append(
                {"action": "report", "lists": wanted["report"], "report_id": earlier,
                 "note": "drafted by an interrupted earlier run"}
            )  # fmt: skip
        elif "report" in wanted:
            assert self.options.report_sink is not None  # checked when the run began
            path = item["path"]
            display = item["display"]
            report_id = self.options.report_sink(
                s,
                ReportRequest(
                    name=os.path.basename(display.rsplit("!", 1)[-1]) or display,
                    path=path,
                    sha256=outcome["sha256"],
                    signals=outcome["signals"],
                    matches=live,
                    origin={
                        "source": "scan",
                        "run_id": self.run.id,
                        "path": display,
                        "size": item["size"],
                        "media_type": outcome["media_type"],
                        "seen_at": utcnow().isoformat().replace("+00:00", "Z"),
                    },
                ),
            )
            self.summary.reports += 1
            actions.append({"action": "report", "lists": wanted["report"], "report_id": report_id})
        if "quarantine" in wanted:
            actions.append(self._quarantine(s, item, live, wanted["quarantine"]))

    def _drafted_before(self, s: Any, path: str, sha256: str | None) -> int | None:
        """The draft an unfinished earlier run made for this path and content, if any.

        The scan's own per-file rows say so: a file's row and its draft are written in
        one transaction, so a row with a `report` action means the draft exists."""
        if not self.options.resume or sha256 is None:
            return None
        rows = s.execute(
            select(ScanFile.actions)
            .join(ScanRun, ScanRun.id == ScanFile.run_id)
            .where(
                ScanFile.sha256 == sha256,
                ScanFile.path == path,
                ScanFile.run_id != self.run.id,
                ScanRun.finished_at.is_(None),
            )
            .order_by(ScanFile.id.desc())
        ).all()
        for (acts,) in rows:
            for a in acts or []:
                if a.get("action") == "report" and isinstance(a.get("report_id"), int):
                    return int(a["report_id"])
        return None

    def _list_actions(self, list_id: int) -> list[str]:
        if self.options.actions is not None and (not self._list_ids or list_id in self._list_ids):
            return self.options.actions
        return self._actions.get(list_id, list(DEFAULT_ACTIONS))

    def _quarantine(
        self, s: Any, item: dict[str, Any], matches: list[ExplainedMatch], lists: list[str]
    ) -> dict[str, Any]:
        top = item["top"]
        out: dict[str, Any] = {"action": "quarantine", "lists": lists, "path": top}
        if top in self._quarantined:
            out["note"] = "already quarantined in this scan"
            return out
        target = self.options.quarantine_dir or str(default_quarantine_dir())
        try:
            q = quarantine_file(
                s, top, target, matches, run_id=self.run.id,
                member=item["display"] if item["member"] else None,
            )  # fmt: skip
        except OSError as exc:
            out["error"] = f"could not quarantine: {exc.strerror or exc}"
            return out
        except RidgelineError as exc:
            out["error"] = f"could not quarantine: {exc}"
            return out
        self._quarantined.add(top)
        self.summary.quarantined += 1
        out["quarantine_id"] = q.id
        return out

    def abort(self) -> None:
        """Save what is done, but not the unfinished top-level file (it is rescanned)."""
        self._top = None
        self.flush()

    def close(self) -> None:
        self._finish_top()
        self._top = None
        self.flush()


# --- entry point -----------------------------------------------------------------


WORK_PREFIX = "ridgeline-scan-"
_WORK_NAME = re.compile(re.escape(WORK_PREFIX) + r"(\d+)-")


def _remove_stale_work_dirs(parent: str | None) -> list[str]:
    """Delete work folders (extracted archive members) of scans that were killed.

    A folder is named after the process that made it; it is stale when that process
    is gone. Only our own folders are touched.
    """
    base = Path(parent or tempfile.gettempdir())
    removed: list[str] = []
    try:
        candidates = list(base.iterdir())
    except OSError:
        return removed
    for path in candidates:
        found = _WORK_NAME.match(path.name)
        if found is None or not path.is_dir() or path.is_symlink():
            continue
        try:
            if path.stat().st_uid != os.getuid():
                continue
            os.kill(int(found.group(1)), 0)
            continue  # its scan is still running
        except ProcessLookupError:
            pass
        except (PermissionError, OSError):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def _resume_skip(store: Store, archives: bool = True) -> Callable[[ScanItem], bool]:
    """Skip a top-level file whose path, size and mtime match an earlier clean scan.

    An archive counts as scanned only by a run that treated archives the same way: a
    `--no-archives` run hashed the zip as one file and never saw its members, and a run
    that opened it never matched the zip's own hashes, so neither stands for the other.
    """
    opened: dict[int | None, bool] = {}  # run id -> whether that run opened archives

    def opened_archives(s: Any, run_id: int | None) -> bool:
        if run_id not in opened:
            options = s.scalar(select(ScanRun.options).where(ScanRun.id == run_id)) or {}
            opened[run_id] = bool(options.get("archives", True))
        return opened[run_id]

    def skip(item: ScanItem) -> bool:
        with store.session() as s:
            row = s.scalar(select(ScanState).where(ScanState.path_key == path_key(item.top)))
            if not (
                row is not None
                and row.ok
                and row.size == item.size
                and row.mtime_ns == item.mtime_ns
            ):
                return False
            if opened_archives(s, row.run_id) == archives:
                return True
        return archive_type(item.top) is None  # a plain file is scanned the same either way

    return skip


def _may_report(options: ScanOptions, actions: dict[int, list[str]], list_ids: set[int]) -> bool:
    """Whether a match in this scan could fire a `report` action."""
    if options.actions is not None:  # overrides what the scanned lists have configured
        return "report" in options.actions
    return any(
        "report" in names
        for list_id, names in actions.items()
        if not list_ids or list_id in list_ids
    )


def scan(
    store: Store,
    paths: Sequence[str | os.PathLike[str]],
    options: ScanOptions | None = None,
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> ScanSummary:
    """Scan files, folders and archives against lists; record everything in the store.

    `on_result` is called with each file's row (path, hashes, matches, actions,
    error) in walk order. Bad files are recorded with their error and the scan goes on.
    """
    options = options or ScanOptions()
    options.validate()
    str_paths = [os.fspath(p) for p in paths]
    for p in str_paths:
        if not os.path.exists(p):
            raise BadInput(f"no such file or folder: {p}")
    with store.session() as s:
        list_ids = {get_list(s, name).id for name in options.lists}  # NotFound names it
        if options.report_sink is None and _may_report(options, actions_by_list_id(s), list_ids):
            raise BadInput(
                "the report action makes CyberTipline drafts: give the scan a report sink "
                "(ScanOptions.report_sink = ridgeline.reports.drafts.ReportSink(key)); "
                "`ridgeline scan` does this"
            )
        run = ScanRun(
            engine=options.engine,
            paths=str_paths,
            lists=list(options.lists),
            options={
                "signals": options.signals,
                "dihedral": options.hash_options.dihedral,
                "resume": options.resume,
                "resume_by": options.resume_by,
                "archives": options.archives,
                "actions": options.actions,
                "flood": options.flood.to_json(),
                "limits": options.limits.to_json(),
                "jobs": options.jobs,
            },
        )
        s.add(run)
    summary = ScanSummary(run_id=run.id)
    started = time.monotonic()
    _remove_stale_work_dirs(options.work_dir)
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=options.work_dir))
    try:
        walker = Walker(
            work,
            options.limits,
            archives=options.archives,
            skip=_resume_skip(store, options.archives) if options.resume else None,
        )
        items = walker.walk(str_paths)
        config = options.worker_config(store.url)
        if options.engine == "ray":
            from ridgeline.scan.ray_engine import run_ray

            outcomes = run_ray(items, config, address=options.ray_address)
        else:
            outcomes = run_local(items, config, options.jobs)
        recorder = Recorder(store, run, options, summary)
        try:
            for outcome in outcomes:
                row = recorder.record(outcome)
                if on_result is not None:
                    on_result(row)
        except BaseException:
            # Interrupted (Ctrl-C, a worker died): keep what was already scanned so
            # that `--resume` continues from here, then re-raise.
            with contextlib.suppress(Exception):
                recorder.abort()
            raise
        recorder.close()
        if recorder.webhooks_queued:  # first try now; failures retry (`webhooks deliver`)
            from ridgeline.webhooks import deliver_pending

            deliver_pending(store, options.webhook_policy)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = round(time.monotonic() - started, 3)
    with store.session() as s:
        stored = s.get(ScanRun, run.id)
        assert stored is not None
        stored.finished_at = utcnow()
        stored.counts = summary.to_json()
    return summary
