"""Clearinghouse intake: a day's synthetic reports ingested, linked, triaged and routed.

Builds N synthetic reports (`ridgeline.intake.synthetic`: files with md5/sha1/sha256 and
some PDQ, several identifiers each, example.com / 555-01xx / documentation IP ranges;
generating them is not timed), then measures in one run:

- `sqlite_s` / `pg_s`: the whole pipeline (`intake.Pipeline` with the triage and routing
  step, batches of 1,000, each committed) on a fresh SQLite file and a fresh PostgreSQL
  database; `*_cpu_s` is this process's CPU time (the machine is shared, wall clock
  moves with the neighbours) and `*_child_cpu_s` the preparing process's (`Pipeline.run`
  prepares in a second process, `ridgeline.parseahead`; RIDGELINE_PARSE_AHEAD=0 keeps it
  in this one), `pg_server_cpu_s` the PostgreSQL server's for that database (a local
  server); targets <= 60 s and <= 120 s at 100,000;
- `lookup_p50_ms` / `lookup_p99_ms`: a case lookup (a report's case with its reports and
  links, `cases.summary(case_of(id))`) for random reports, on the SQLite database just
  filled; target p99 <= 50 ms at 1,000,000 reports. With `--lookup-pad M` the case
  tables (cases, case_reports, case_links: all a lookup reads) are then padded to M
  reports by copying the ingested cases with shifted ids (foreign keys off for the copy;
  the other tables keep N reports) and `padded_lookup_p50_ms` / `padded_lookup_p99_ms`
  are measured at that size;
- `cases_digest`: sha256 of the cases as sets of report sources plus the viral bundles,
  so runs of different code on the same input can be compared (same digest: same cases);
- `http_per_s`: `POST /v1/intake` against a real `ridgeline serve --workers W` (JSON-lines
  batches of 100 from C client threads, each answered after its commit); target >= 500/s;
- `anchor_per_s`: the machine's floor for the same documents: `json.loads` and one plain
  sqlite3 executemany of the raw JSON into a bare table (no checks, no identifiers);
- `memory_mb`: this process's peak resident set.

Prints ONE JSON line. Usage: python bench/intake.py [--n 100000] [--http-n 5000]
[--lookups 1000] [--lookup-pad 1000000] [--http-workers 1] [--http-clients 4] [--http-only]
[--pg postgresql://...] (default RIDGELINE_TEST_PG_URL; --no-pg skips)
"""

from __future__ import annotations

import argparse
import hashlib
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


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _ingest(store: Store, lines: list[bytes]) -> dict[str, Any]:
    pipeline = intake.Pipeline(steps=intake.default_steps(store))
    items = [intake.Incoming(f"day.jsonl:{n}", line, "json") for n, line in enumerate(lines)]
    t, c, k = time.perf_counter(), time.process_time(), _child_cpu()
    statuses: dict[str, int] = {}
    # batches of 1,000, each committed; prepared in a second process (parseahead) when
    # available, else in this one (RIDGELINE_PARSE_AHEAD=0)
    for outcomes in pipeline.run(store, items=items, batch=BATCH):
        for o in outcomes:
            statuses[o.status] = statuses.get(o.status, 0) + 1
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    child = _child_cpu() - k
    with store.session() as s:
        counts = cases.core.counts(s)
    return {"s": round(wall, 1), "cpu_s": round(cpu, 1), "child_cpu_s": round(child, 1),
            "per_s": round(len(items) / wall), "statuses": statuses, **counts}  # fmt: skip


def _lookups(store: Store, n_reports: int, count: int) -> dict[str, float]:
    rng = random.Random(7)
    times, cpu = [], []
    with store.session() as s:
        top = s.execute(text("SELECT max(report_id) FROM case_reports")).scalar_one()
        for _ in range(count):
            rid = rng.randint(1, min(n_reports, int(top)))
            t, c = time.perf_counter(), time.thread_time()
            cases.summary(s, cases.case_of(s, rid))
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
    times.sort()
    cpu.sort()
    p99 = min(len(times) - 1, int(len(times) * 0.99))
    # wall p99 on a shared machine includes waiting for a core; the CPU p99 does not
    return {
        "lookup_p50_ms": round(times[len(times) // 2], 2),
        "lookup_p99_ms": round(times[p99], 2),
        "lookup_cpu_p99_ms": round(cpu[p99], 2),
    }


def _digest(store: Store) -> str:
    """The cases as sets of report sources, and the exact-file bundles, hashed."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT cr.case_id, r.source FROM case_reports cr "
                "JOIN received_reports r ON r.id = cr.report_id"
            )
        ).all()
        bundled = conn.execute(
            text(
                "SELECT b.kind, b.value, r.source FROM file_bundles b "
                "JOIN file_bundle_reports m ON m.bundle_id = b.id "
                "JOIN received_reports r ON r.id = m.report_id"
            )
        ).all()
    groups: dict[Any, list[str]] = {}
    for case_id, source in rows:
        groups.setdefault(case_id, []).append(source)
    for kind, value, source in bundled:
        groups.setdefault(("bundle", kind, value), []).append(source)
    canon = sorted(
        ",".join(sorted(m)) + (f"|{k[1]}:{k[2]}" if isinstance(k, tuple) else "")
        for k, m in groups.items()
    )
    return hashlib.sha256("\n".join(canon).encode()).hexdigest()[:16]


def _pad(db: str, target: int) -> int:
    """Copy the case tables' rows with shifted ids until they hold `target` reports."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=OFF")
    n = conn.execute("SELECT max(report_id) FROM case_reports").fetchone()[0]
    c = conn.execute("SELECT max(id) FROM cases").fetchone()[0]
    copies = 0
    while (copies + 2) * n <= target:
        copies += 1
        ro, co = copies * n, copies * c
        conn.execute(
            "INSERT INTO cases (id, created_at, updated_at, state, merged_into, report_count) "
            f"SELECT id + {co}, created_at, updated_at, state, "
            f"CASE WHEN merged_into IS NULL THEN NULL ELSE merged_into + {co} END, report_count "
            f"FROM cases WHERE id <= {c}"
        )
        conn.execute(
            "INSERT INTO case_reports (report_id, case_id) "
            f"SELECT report_id + {ro}, case_id + {co} FROM case_reports WHERE report_id <= {n}"
        )
        conn.execute(
            "INSERT INTO case_links (report_a, report_b, kind, value, created_at, cut) "
            f"SELECT report_a + {ro}, report_b + {ro}, kind, value, created_at, cut "
            f"FROM case_links WHERE report_a <= {n} AND report_b <= {n}"
        )
        conn.commit()
    total = conn.execute("SELECT count(*) FROM case_reports").fetchone()[0]
    conn.close()
    return int(total)


def anchor(lines: list[bytes], tmp: str, source: str = "day.jsonl") -> tuple[int, float]:
    """The machine's floor for `lines`: `json.loads` and one plain sqlite3 executemany
    of them into a bare table, in batches of `BATCH`; documents/s and seconds
    (bench/intake_million.py measures it after each file too)."""
    conn = sqlite3.connect(os.path.join(tmp, "anchor.db"))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("DROP TABLE IF EXISTS docs")
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, source TEXT, document TEXT)")
    t = time.perf_counter()
    for start in range(0, len(lines), BATCH):
        rows = [
            (f"{source}:{n}", json.dumps(json.loads(line)))
            for n, line in enumerate(lines[start : start + BATCH], start)
        ]
        conn.executemany("INSERT INTO docs (source, document) VALUES (?, ?)", rows)
        conn.commit()
    wall = time.perf_counter() - t
    conn.close()
    return round(len(lines) / wall), wall


def _server_cpu(store: Store) -> float | None:
    """CPU seconds of this database's server processes so far (a server on this machine,
    whose /proc we can read; else None): where PostgreSQL intake's wall time goes."""
    with store.engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return round(total, 1)


def _pg(url: str, lines: list[bytes]) -> dict[str, Any]:
    admin_url = make_url(resolve_db_url(url))
    name = f"ridgeline_bench_intake_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        store = Store.open(admin_url.set(database=name).render_as_string(hide_password=False))
        try:
            out = _ingest(store, lines)
            out["server_cpu_s"] = _server_cpu(store)
            return out
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
    ap.add_argument("--lookup-pad", type=int, default=0, help="pad case tables to M reports")
    ap.add_argument("--http-workers", type=int, default=1)
    ap.add_argument("--http-clients", type=int, default=4)
    ap.add_argument("--http-only", action="store_true", help="only the HTTP measurement")
    ap.add_argument("--pg", default=os.environ.get("RIDGELINE_TEST_PG_URL"))
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    size = args.http_n if args.http_only else args.n
    lines = list(synthetic.jsonl_lines(synthetic.Population(size)))
    result: dict[str, Any] = {"bench": "intake", "n": size, "cpus": os.cpu_count()}
    if args.http_only:
        with tempfile.TemporaryDirectory(prefix="ridgeline-bench-intake-") as tmp:
            result.update(_http(tmp, lines[: args.http_n], args.http_workers, args.http_clients))
        result["http_workers"], result["http_clients"] = args.http_workers, args.http_clients
        result["load_avg"] = [round(x, 1) for x in os.getloadavg()]
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="ridgeline-bench-intake-") as tmp:
        result["anchor_per_s"] = anchor(lines, tmp)[0]
        store = Store.open(os.path.join(tmp, "intake.db"))
        sqlite = _ingest(store, lines)
        timed = ("s", "cpu_s", "child_cpu_s", "per_s")
        result.update({f"sqlite_{k}": v for k, v in sqlite.items() if k in timed})
        result.update({k: sqlite[k] for k in ("cases", "links", "bundles", "statuses")})
        result.update(_lookups(store, args.n, args.lookups))
        result["cases_digest"] = _digest(store)
        store.close()
        if args.lookup_pad > args.n:
            padded = _pad(os.path.join(tmp, "intake.db"), args.lookup_pad)
            store = Store.open(os.path.join(tmp, "intake.db"))
            found = _lookups(store, padded, args.lookups)
            store.close()
            result["padded_reports"] = padded
            result.update({f"padded_{k}": v for k, v in found.items()})
        if args.pg and not args.no_pg:
            pg = _pg(args.pg, lines)
            result.update({f"pg_{k}": v for k, v in pg.items() if k in (*timed, "server_cpu_s")})
        result.update(_http(tmp, lines[: args.http_n], args.http_workers, args.http_clients))
        result["http_workers"], result["http_clients"] = args.http_workers, args.http_clients
    result["load_avg"] = [round(x, 1) for x in os.getloadavg()]
    result["memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    scale = 100_000 / args.n
    result["targets_met"] = {
        "sqlite_100k_60s": result["sqlite_s"] * scale <= 60,
        "pg_100k_120s": result["pg_s"] * scale <= 120 if "pg_s" in result else None,
        "lookup_p99_50ms": result.get("padded_lookup_p99_ms", result["lookup_p99_ms"]) <= 50,
        "http_500_per_s": result["http_per_s"] >= 500,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
