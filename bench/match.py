"""Benchmark the PDQ match index against python-threatexchange's PDQIndex, same run.

    .venv/bin/python bench/match.py --n 1000000,10000000
    .venv/bin/python bench/match.py --n 100000000 --skip-threatexchange-above 20000000

Prints one JSON line per N. Each engine runs in its own fresh process (so RSS is that
engine's alone) on the same seeded random PDQ hashes and queries: half the queries are
stored hashes with 0-40 bits flipped, half random. Reported for Ridgeline: build
(tables) and file write time, open time (map + verify checksums), RSS after the run,
single lookup p50/p99 and lookups/s on 1 and 2 threads, batch lookups/s, 8-variant
(dihedral) images/s, and recall against a brute-force scan; the same where
threatexchange offers it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

RADIUS = 31


def gen_rows(n: int, seed: int = 1) -> np.ndarray:
    """N random 256-bit hashes, quickly (numpy only)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def gen_queries(rows: np.ndarray, count: int, seed: int = 2) -> np.ndarray:
    """Half near-duplicates of stored rows (0-40 bits flipped), half random hashes."""
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    if len(rows):
        near = np.arange(0, count, 2)
        q[near] = rows[rng.integers(0, len(rows), len(near))]
        for i in near:
            bits = rng.choice(256, size=int(rng.integers(0, 41)), replace=False)
            for b in bits:
                q[i, b // 8] ^= np.uint8(1 << (b % 8))
    return q


def rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _latencies(fn: Any, queries: np.ndarray) -> tuple[float, float, float]:
    lat = np.empty(len(queries))
    t0 = time.perf_counter()
    for i in range(len(queries)):
        s = time.perf_counter()
        fn(queries[i : i + 1])
        lat[i] = time.perf_counter() - s
    total = time.perf_counter() - t0
    return (
        round(float(np.percentile(lat, 50)) * 1e6, 1),
        round(float(np.percentile(lat, 99)) * 1e6, 1),
        round(len(queries) / total, 1),
    )


def _two_threads(fn: Any, queries: np.ndarray) -> float:
    halves = [queries[0::2], queries[1::2]]

    def work(qs: np.ndarray) -> None:
        for i in range(len(qs)):
            fn(qs[i : i + 1])

    threads = [threading.Thread(target=work, args=(h,)) for h in halves]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return round(len(queries) / (time.perf_counter() - t0), 1)


def role_build(n: int, path: Path, threads: int) -> dict[str, Any]:
    from ridgeline.index import HammingIndex, write_index_file

    rows = gen_rows(n)
    t0 = time.perf_counter()
    index = HammingIndex.build(rows, radius=RADIUS, threads=threads)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = np.arange(n, dtype=np.uint32)
    write_index_file(
        path,
        {"signal": "pdq", "kind": "hamming256", "seq": 0, "params": index.params()},
        {**index.sections(), "entries": ids, "lists": np.ones(n, dtype=np.uint32)},
    )
    write_s = time.perf_counter() - t0
    return {
        "build_s": round(build_s, 2),
        "write_s": round(write_s, 2),
        "mih_substrings": index.m,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "build_peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def role_query(n: int, path: Path, nq: int, recall_q: int) -> dict[str, Any]:
    from ridgeline.index import HammingIndex, IndexFile, _kernels

    t0 = time.perf_counter()
    f = IndexFile.open(path)
    index = HammingIndex.from_sections(f.arrays, f.header["params"])
    open_s = time.perf_counter() - t0
    queries = gen_queries(gen_rows(min(n, 1_000_000)), nq)

    def one(q: np.ndarray) -> Any:
        return index.search(q, RADIUS)

    one(queries[:50])  # warm up
    p50, p99, single = _latencies(one, queries)
    two = _two_threads(one, queries)
    t0 = time.perf_counter()
    batch = index.search(queries, RADIUS, threads=2)
    batch_s = time.perf_counter() - t0
    images = queries[: (nq // 8) * 8].reshape(-1, 8, 32)
    t0 = time.perf_counter()
    for img in images:
        index.search(img, RADIUS, threads=2)
    dihedral = len(images) / (time.perf_counter() - t0)
    # recall: the tables' answer against a brute-force scan of every row
    rq = queries[:recall_q]
    got = index.search(rq, RADIUS)
    raw = _kernels.hamming_scan(index.hashes, rq, RADIUS, 2)
    truth = {
        (int(a), int(b))
        for a, b in zip(
            np.frombuffer(raw[0], np.uint32), np.frombuffer(raw[1], np.uint32), strict=True
        )
    }
    found = set(zip(got.query.tolist(), got.row.tolist(), strict=True))
    recall = 1.0 if not truth else len(truth & found) / len(truth)
    return {
        "open_s": round(open_s, 3),
        "single_p50_us": p50,
        "single_p99_us": p99,
        "single_lookups_per_s_1t": single,
        "single_lookups_per_s_2t": two,
        "batch_lookups_per_s": round(nq / batch_s, 1),
        "dihedral_images_per_s": round(dihedral, 1),
        "recall": recall,
        "recall_pairs": len(truth),
        "matches_in_batch": len(batch),
        "rss_mb": rss_mb(),
    }


def role_threatexchange(n: int, nq: int, recall_q: int) -> dict[str, Any]:
    import faiss
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    from ridgeline.index import _kernels

    rows = gen_rows(n)
    queries = gen_queries(gen_rows(min(n, 1_000_000)), nq)
    hexes = [r.tobytes().hex() for r in rows]
    base_rss = rss_mb()
    t0 = time.perf_counter()
    index = PDQIndex(entries=((h, i) for i, h in enumerate(hexes)))
    build_s = time.perf_counter() - t0
    qhex = [q.tobytes().hex() for q in queries]

    def one(q: np.ndarray) -> Any:
        return index.query(q[0].tobytes().hex())

    one(queries[:1])
    p50, p99, single = _latencies(one, queries)
    two = _two_threads(one, queries)
    t0 = time.perf_counter()
    index.index.search_with_distance_in_result(qhex, RADIUS)
    batch_s = time.perf_counter() - t0
    images = qhex[: (nq // 8) * 8]
    t0 = time.perf_counter()
    for i in range(0, len(images), 8):
        for h in images[i : i + 8]:
            index.query(h)
    dihedral = (len(images) // 8) / (time.perf_counter() - t0)
    rq = queries[:recall_q]
    raw = _kernels.hamming_scan(rows, rq, RADIUS, 2)
    truth = {
        (int(a), int(b))
        for a, b in zip(
            np.frombuffer(raw[0], np.uint32), np.frombuffer(raw[1], np.uint32), strict=True
        )
    }
    found = {(qi, int(m.metadata)) for qi in range(len(rq)) for m in index.query(qhex[qi])}
    recall = 1.0 if not truth else len(truth & found) / len(truth)
    return {
        "build_s": round(build_s, 2),
        "single_p50_us": p50,
        "single_p99_us": p99,
        "single_lookups_per_s_1t": single,
        "single_lookups_per_s_2t": two,
        "batch_lookups_per_s": round(nq / batch_s, 1),
        "dihedral_images_per_s": round(dihedral, 1),
        "recall": recall,
        "rss_mb": rss_mb(),
        "rss_index_mb": round(rss_mb() - base_rss, 1),
        "faiss_omp_threads": faiss.omp_get_max_threads(),
    }


def role_freshness(n: int, tmp: Path) -> dict[str, Any]:
    """Store-backed: seconds from a committed add/disable to the next query seeing it."""
    from sqlalchemy import insert

    from ridgeline import lists as L
    from ridgeline.index import MatchIndex
    from ridgeline.lists.models import Entry, EntrySignal
    from ridgeline.store import Store

    db = tmp / "fresh.db"
    store = Store.open(db)
    writer = Store.open(db)  # a second connection pool, as another process would have
    rows = gen_rows(n, seed=5)
    with store.session() as s:
        bl = L.create_list(s, "bench")
        list_id = bl.id
    with store.engine.begin() as conn:
        conn.execute(insert(Entry), [{"id": i + 1, "list_id": list_id} for i in range(n)])
        conn.execute(
            insert(EntrySignal),
            [
                {
                    "entry_id": i + 1,
                    "signal": "pdq",
                    "key": r.tobytes(),
                }
                for i, r in enumerate(rows)
            ],
        )
    t0 = time.perf_counter()
    index = MatchIndex.open(store, tmp / "fresh-index")
    index.load(["pdq"])
    build_s = time.perf_counter() - t0
    fresh = gen_rows(10, seed=6)
    add_s: list[float] = []
    disable_s: list[float] = []
    for r in fresh:
        h = r.tobytes().hex()
        with writer.session() as s:
            entry_id = L.add_entry(s, L.get_list(s, "bench"), {"pdq": h}).id
        t0 = time.perf_counter()
        while not index.match("pdq", [h])[0]:
            time.sleep(0.01)
        add_s.append(time.perf_counter() - t0)
        with writer.session() as s:
            L.set_entry_enabled(s, L.get_entry(s, entry_id), False)
        t0 = time.perf_counter()
        while index.match("pdq", [h])[0]:
            time.sleep(0.01)
        disable_s.append(time.perf_counter() - t0)
    index.close()
    store.close()
    writer.close()
    return {
        "store_rows": n,
        "store_build_s": round(build_s, 2),
        "add_to_matchable_max_s": round(max(add_s), 3),
        "disable_to_unmatched_max_s": round(max(disable_s), 3),
    }


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", default="1000000", help="comma-separated index sizes")
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--recall-queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-threatexchange-above", type=int, default=20_000_000)
    ap.add_argument(
        "--tx-queries", type=int, default=1000, help="queries for threatexchange (it is slow)"
    )
    ap.add_argument("--dir", default=None, help="where index files go (default: a temp dir)")
    ap.add_argument(
        "--fresh-n", type=int, default=100_000, help="store size for the freshness check (0: skip)"
    )
    ap.add_argument(
        "--role", choices=["build", "query", "threatexchange", "freshness"], help=argparse.SUPPRESS
    )
    ap.add_argument("--path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        n = int(a.n)
        if a.role == "build":
            res = role_build(n, Path(a.path), a.threads)
        elif a.role == "query":
            res = role_query(n, Path(a.path), a.queries, a.recall_queries)
        elif a.role == "freshness":
            res = role_freshness(n, Path(a.path))
        else:
            res = role_threatexchange(n, a.queries, a.recall_queries)
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        for n in (int(x) for x in a.n.split(",")):
            path = Path(tmp) / f"bench-{n}.rlidx"
            common = ["--n", str(n), "--queries", str(a.queries)]
            common += ["--recall-queries", str(a.recall_queries), "--threads", str(a.threads)]
            ours = _child([*common, "--role", "build", "--path", str(path)])
            ours.update(_child([*common, "--role", "query", "--path", str(path)]))
            path.unlink()
            row: dict[str, Any] = {
                "n": n,
                "radius": RADIUS,
                "cpus": os.cpu_count(),
                "ridgeline": ours,
            }
            if n <= a.skip_threatexchange_above:
                tx_args = ["--n", str(n), "--queries", str(min(a.queries, a.tx_queries))]
                tx_args += ["--recall-queries", str(min(a.recall_queries, a.tx_queries))]
                tx = _child([*tx_args, "--role", "threatexchange"])
                row["threatexchange"] = tx
                row["speedup_single_1t"] = round(
                    ours["single_lookups_per_s_1t"] / tx["single_lookups_per_s_1t"], 1
                )
                row["speedup_single_2t"] = round(
                    ours["single_lookups_per_s_2t"] / tx["single_lookups_per_s_2t"], 1
                )
            print(json.dumps(row), flush=True)
        if a.fresh_n:
            fresh = _child(["--n", str(a.fresh_n), "--role", "freshness", "--path", tmp])
            print(json.dumps({"freshness": fresh}), flush=True)


if __name__ == "__main__":
    main()
