"""Clearinghouse intake: a day's synthetic reports ingested, linked, triaged and routed.

Builds N synthetic reports (`ridgeline.intake.synthetic`: files with md5/sha1/sha256 and
some PDQ, several identifiers each, example.com / 555-01xx / documentation IP ranges;
generating them is not timed), then measures in one run:

- `sqlite_s` / `pg_s`: the whole pipeline (`intake.Pipeline` with the triage and routing
  step, batches of 1,000, each committed) on a fresh SQLite file and a fresh PostgreSQL
  database; `*_cpu_s` is this process's CPU time (the machine is shared, wall clock
  moves with the neighbours); targets <= 60 s and <= 120 s at 100,000;
- `lookup_p50_ms` / `lookup_p99_ms`: a case lookup (a report's case with its reports and
  links, `cases.summary(case_of(id))`) for random reports, on the SQLite database just
  filled; target p99 <= 50 ms;
- `http_per_s`: `POST /v1/intake` against a real `ridgeline serve` (JSON-lines batches
  of 100 from 4 client threads, each answered after its commit); target >= 500/s;
- `anchor_per_s`: the machine's floor for the same documents: `json.loads` and one plain
  sqlite3 executemany of the raw JSON into a bare table (no checks, no identifiers);
- `memory_mb`: this process's peak resident set.

Prints ONE JSON line. Usage: python bench/intake.py [--n 100000] [--http-n 5000]
[--lookups 1000] [--pg postgresql://...] (default RIDGELINE_TEST_PG_URL; --no-pg skips)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, make_url, text

from ridgeline import cases, intake
from ridgeline.intake import synthetic
from ridgeline.store import Store, resolve_db_url

HERE = Path(sys.executable).parent
BATCH = 1000


def _ingest(store: Store, lines: list[bytes]) -> dict[str, Any]:
    pipeline = intake.Pipeline(steps=intake.default_steps(store))
    items = [intake.Incoming(f"day.jsonl:{n}", line, "json") for n, line in enumerate(lines)]
    t, c = time.perf_counter(), time.process_time()
    statuses: dict[str, int] = {}
    for start in range(0, len(items), BATCH):
        with store.session() as s:
            for o in pipeline.ingest(s, items[start : start + BATCH]):
                statuses[o.status] = statuses.get(o.status, 0) + 1
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    with store.session() as s:
        counts = cases.core.counts(s)
    return {"s": round(wall, 1), "cpu_s": round(cpu, 1), "per_s": round(len(items) / wall),
            "statuses": statuses, **counts}  # fmt: skip


def _lookups(store: Store, n_reports: int, count: int) -> dict[str, float]:
    rng = random.Random(7)
    times = []
    with store.session() as s:
        for _ in range(count):
            rid = rng.randint(1, n_reports)
            t = time.perf_counter()
            cases.summary(s, cases.case_of(s, rid))
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "lookup_p50_ms": round(times[len(times) // 2], 2),
        "lookup_p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
    }


def _anchor(lines: list[bytes], tmp: str) -> float:
    conn = sqlite3.connect(os.path.join(tmp, "anchor.db"))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, source TEXT, document TEXT)")
    t = time.perf_counter()
    for start in range(0, len(lines), BATCH):
        rows = [
            (f"day.jsonl:{n}", json.dumps(json.loads(line)))
            for n, line in enumerate(lines[start : start + BATCH], start)
        ]
        conn.executemany("INSERT INTO docs (source, document) VALUES (?, ?)", rows)
        conn.commit()
    wall = time.perf_counter() - t
    conn.close()
    return round(len(lines) / wall)


def _pg(url: str, lines: list[bytes]) -> dict[str, Any]:
    admin_url = make_url(resolve_db_url(url))
    name = f"ridgeline_bench_intake_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        store = Store.open(admin_url.set(database=name).render_as_string(hide_password=False))
        try:
            return _ingest(store, lines)
        finally:
            store.close()
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(tmp: str, lines: list[bytes], workers: int = 1, clients: int = 4) -> dict[str, Any]:
    from ridgeline.service.keys import create_key

    db = os.path.join(tmp, "http.db")
    store = Store.open(db)
    with store.session() as s:
        _, key = create_key(s, "bench-intake", "intake", rate_limit=1e9)
    store.close()
    port = _free_port()
    server = subprocess.Popen(
        [HERE / "ridgeline", "serve", "--db", db, "--port", str(port), "--rate-limit", "1e9",
         "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    try:
        t = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.perf_counter() - t > 300:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        bodies = [b"\n".join(lines[i : i + 100]) for i in range(0, len(lines), 100)]
        stored = [0]
        errors = [0]
        lock = threading.Lock()
        queue = list(enumerate(bodies))

        def worker() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=600) as c:
                while True:
                    with lock:
                        if not queue:
                            return
                        n, body = queue.pop()
                    res = c.post("/v1/intake", content=body, headers={"Idempotency-Key": f"b{n}"})
                    with lock:
                        if res.status_code != 200:
                            errors[0] += 1
                            continue
                        stored[0] += sum(r["status"] == "stored" for r in res.json()["results"])

        t = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"http_per_s": round(stored[0] / wall), "http_reports": stored[0],
            "http_errors": errors[0]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="reports to take in")
    ap.add_argument("--http-n", type=int, default=5000, help="reports sent over HTTP")
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--pg", default=os.environ.get("RIDGELINE_TEST_PG_URL"))
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    lines = list(synthetic.jsonl_lines(synthetic.Population(args.n)))
    result: dict[str, Any] = {"bench": "intake", "n": args.n, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="ridgeline-bench-intake-") as tmp:
        result["anchor_per_s"] = _anchor(lines, tmp)
        store = Store.open(os.path.join(tmp, "intake.db"))
        sqlite = _ingest(store, lines)
        result.update({f"sqlite_{k}": v for k, v in sqlite.items() if k in ("s", "cpu_s", "per_s")})
        result.update({k: sqlite[k] for k in ("cases", "links", "bundles", "statuses")})
        result.update(_lookups(store, args.n, args.lookups))
        store.close()
        if args.pg and not args.no_pg:
            pg = _pg(args.pg, lines)
            result.update({f"pg_{k}": v for k, v in pg.items() if k in ("s", "cpu_s", "per_s")})
        result.update(_http(tmp, lines[: args.http_n]))
    result["memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    scale = 100_000 / args.n
    result["targets_met"] = {
        "sqlite_100k_60s": result["sqlite_s"] * scale <= 60,
        "pg_100k_120s": result["pg_s"] * scale <= 120 if "pg_s" in result else None,
        "lookup_p99_50ms": result["lookup_p99_ms"] <= 50,
        "http_500_per_s": result["http_per_s"] >= 500,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
