"""One intake writer per process, shared by concurrent callers (the HTTP workers' threads).

A `Pipeline` keeps linking state and must take one batch at a time; a batch also has a
fixed cost (the linker's queries, the routing table, the commit) that a small request
pays in full. `GroupWriter.ingest` therefore works like a group commit: the caller that
holds the write lock takes every request waiting behind it (for the same `received_by`,
up to `max_batch` documents) into one transaction, commits it, and only then hands each
request its own outcomes. So every request is still answered only after the commit that
stored it, and a failure fails (and acknowledges nothing of) every request in that
transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ridgeline.intake.core import INTAKE_TABLES, Outcome, Pipeline
from ridgeline.intake.sources import Incoming
from ridgeline.store import GrowingTables

if TYPE_CHECKING:
    from ridgeline.store import Store


@dataclass(eq=False)
class _Waiting:
    items: list[Incoming]
    received_by: str | None
    outcomes: list[Outcome] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class GroupWriter:
    """Writes the intake requests of one process, several per transaction when they
    arrive together."""

    def __init__(self, store: Store, pipeline: Pipeline, *, max_batch: int = 5000) -> None:
        self.store = store
        self.pipeline = pipeline
        self.max_batch = max_batch
        self._mutex = threading.Lock()
        self._write = threading.Lock()
        self._pending: list[_Waiting] = []
        self._growing = GrowingTables(store, INTAKE_TABLES)  # a new server's tables grow fast
        #: Transactions written and requests they held (for the tests and metrics).
        self.transactions = 0
        self.requests = 0

    @property
    def waiting(self) -> int:
        """Requests queued behind the one being written."""
        with self._mutex:
            return len(self._pending)

    def ingest(self, items: Sequence[Incoming], *, received_by: str | None = None) -> list[Outcome]:
        """Store `items` (in a transaction possibly shared with other callers); returns
        their outcomes once that transaction has committed."""
        me = _Waiting(list(items), received_by)
        with self._mutex:
            self._pending.append(me)
        while True:
            with self._write:
                if not me.done:
                    self._write_group(me)
            if me.done:
                break
        if me.error is not None:
            raise me.error
        assert me.outcomes is not None
        return me.outcomes

    def _take(self, me: _Waiting) -> list[_Waiting]:
        """`me` and the requests waiting with the same `received_by`, oldest first."""
        with self._mutex:
            group = [me]
            size = len(me.items)
            for w in self._pending:
                if w is me or w.received_by != me.received_by:
                    continue
                if size + len(w.items) > self.max_batch:
                    break
                group.append(w)
                size += len(w.items)
            taken = {id(w) for w in group}
            self._pending = [w for w in self._pending if id(w) not in taken]
        return group

    def _write_group(self, me: _Waiting) -> None:
        group = self._take(me)
        items = [i for w in group for i in w.items]
        try:
            with self.store.session() as s:
                outcomes = self.pipeline.ingest(s, items, received_by=me.received_by)
        except BaseException as exc:  # every request of the transaction fails
            for w in group:
                w.error, w.done = exc, True
            return
        # committed: only now may any of them be answered
        self._growing.grew(sum(o.status == "stored" for o in outcomes))
        self.transactions += 1
        self.requests += len(group)
        start = 0
        for w in group:
            w.outcomes = outcomes[start : start + len(w.items)]
            start += len(w.items)
            w.done = True
