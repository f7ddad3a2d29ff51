"""Run the scan's hash-and-match stage on a Ray cluster.

The driver walks the paths (extracting archives into `--work-dir`) and sends
batches of items to Ray tasks as JSON text; each Ray worker process opens the
store and the memory-mapped index once (the mapping is shared by every process on
the node) and reuses it for every batch. Results come back in walk order and are
recorded by the driver exactly as the local engine records them, so both engines
give identical results.

Workers must see the same files (a shared filesystem, and `--work-dir` on it for
archives) and the same database (PostgreSQL for multi-node clusters).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from ridgeline.scan.archives import ScanItem

_WORKERS: dict[str, Any] = {}


def process_batch_json(config_json: str, items_json: str) -> str:
    """Ray task body: JSON in, JSON out (no pickled objects cross the wire)."""
    from ridgeline.scan.workers import Worker, outcome_to_json

    worker = _WORKERS.get(config_json)
    if worker is None:
        worker = Worker(json.loads(config_json))
        _WORKERS[config_json] = worker
    items = [ScanItem.from_json(i) for i in json.loads(items_json)]
    return json.dumps([outcome_to_json(o) for o in worker.process_batch(items)])


def run_ray(
    items: Iterable[ScanItem],
    config: dict[str, Any],
    *,
    address: str | None = None,
    batch_size: int = 16,
) -> Iterator[dict[str, Any]]:
    """Process items on Ray (connecting to `address`, or starting a local instance)."""
    import ray

    from ridgeline.scan.workers import batched, outcome_from_json

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        started = True
    try:
        task = ray.remote(num_cpus=1)(process_batch_json)
        config_ref = ray.put(json.dumps(config, sort_keys=True))
        window = max(2, int(ray.cluster_resources().get("CPU", 1)) * 3)
        pending: deque[Any] = deque()
        for batch in batched(items, batch_size):
            pending.append(task.remote(config_ref, json.dumps([i.to_json() for i in batch])))
            if len(pending) >= window:
                yield from map(outcome_from_json, json.loads(ray.get(pending.popleft())))
        while pending:
            yield from map(outcome_from_json, json.loads(ray.get(pending.popleft())))
    finally:
        if started:
            ray.shutdown()
