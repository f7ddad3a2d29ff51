"""Review-path throughput: tamper-evident log append/verify, multi-review, evidence crypto.

On a SQLite file in a temp dir, times: N log appends (one transaction), verifying the
chain, reviewing M entries through the queue (3 reviewers, K=3: next_item + verdict),
and encrypting/decrypting a 1 MiB benign blob. Prints ONE JSON line.

Usage: python bench/review.py [--records 20000] [--entries 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ridgeline import auditlog, evidence
from ridgeline import lists as L
from ridgeline.review import core, queue
from ridgeline.review.wellness import WellnessPolicy
from ridgeline.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--entries", type=int, default=200)
    args = parser.parse_args()
    out: dict[str, object] = {"bench": "review", "records": args.records, "entries": args.entries}
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "b.db") as store:
        t = time.perf_counter()
        with store.session() as session:
            for i in range(args.records):
                auditlog.append(session, "bench", "bench.append", f"thing:{i}", {"i": i})
        out["log_append_per_s"] = round(args.records / (time.perf_counter() - t))
        t = time.perf_counter()
        with store.session() as session:
            result = auditlog.verify(session)
        assert result.ok
        out["log_verify_per_s"] = round(result.checked / (time.perf_counter() - t))

        rng = np.random.default_rng(1)
        policy = WellnessPolicy(daily_cap=10**9, break_after_minutes=10**6)
        with store.session() as session:
            for name in ("r1", "r2", "r3"):
                core.add_reviewer(session, name)
            hl = L.create_list(session, "bench", review_quorum=3)
            for _ in range(args.entries):
                L.add_entry(session, hl, {"md5": f"{int(rng.integers(2**62)):032x}"})
        clock = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        t = time.perf_counter()
        verdicts = 0
        with store.session() as session:
            for name in ("r1", "r2", "r3"):
                while (
                    item := queue.next_item(session, name, now=clock, policy=policy)
                ) is not None:
                    core.submit_verdict(session, item.entry_id, name, "not-csam", now=clock)
                    verdicts += 1
        out["verdicts_per_s"] = round(verdicts / (time.perf_counter() - t), 1)

        key = evidence.EvidenceKey(bytes(32))
        blob = rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
        with store.session() as session:
            t = time.perf_counter()
            for _ in range(20):
                evidence.store_evidence(session, 1, blob, key)
            out["evidence_store_mib_per_s"] = round(20 / (time.perf_counter() - t), 1)
            t = time.perf_counter()
            for b in evidence.list_evidence(session, 1):
                evidence.decrypt_blob(b, key)
            out["evidence_decrypt_mib_per_s"] = round(20 / (time.perf_counter() - t), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
