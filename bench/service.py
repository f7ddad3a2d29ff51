"""Benchmark the HTTP API and the scan pipeline on loopback; prints one JSON line.

    .venv/bin/python bench/service.py                 # small: 100k PDQ entries
    .venv/bin/python bench/service.py --n 10000000 --workers 8 --lookups 200000

Measures, against a real `ridgeline serve` process on 127.0.0.1 holding N PDQ
entries: lookups/s by hash (`GET /v1/lookup`, half hits, half misses) and
uploads/s of 1-megapixel JPEGs (`POST /v1/match`: upload + hash + match), each with
p50/p99 latency and the error count; and scan throughput against `ridgeline hash`
throughput on the same files. Targets (issue 5): >= 2000 lookups/s at p99 < 20 ms,
>= 100 uploads/s, scan >= 90 % of hash throughput, 0 errors.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import insert

from ridgeline.store import Store
from ridgeline.store.models import Entry, EntrySignal, HashList

HERE = Path(sys.executable).parent


def bulk_pdq(store: Store, n: int, seed: int = 0, chunk: int = 50_000) -> list[str]:
    """Insert n random PDQ entries into list `bench` in bulk; returns a sample of them."""
    rng = np.random.default_rng(seed)
    sample: list[str] = []
    with store.session() as s:
        hl = HashList(name="bench", purpose="block", enabled=True, signals=[], thresholds={})
        s.add(hl)
        s.flush()
        list_id = hl.id
    done = 0
    while done < n:
        m = min(chunk, n - done)
        hashes = [bytes(r).hex() for r in rng.integers(0, 256, (m, 32), dtype=np.uint8)]
        with store.session() as s:
            ids = s.scalars(
                insert(Entry).returning(Entry.id, sort_by_parameter_order=True),
                [
                    {
                        "list_id": list_id,
                        "status": "confirmed",
                        "enabled": True,
                        "classifications": [],
                    }
                    for _ in range(m)
                ],
            ).all()
            s.execute(
                insert(EntrySignal),
                [
                    {"entry_id": i, "signal": "pdq", "value": h, "lookup_key": h, "quality": 100}
                    for i, h in zip(ids, hashes, strict=True)
                ],
            )
        sample.extend(hashes[:200])
        done += m
    return sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values), p)) * 1000 if values else 0.0


def load(
    url: str, make_request: Any, count: int, concurrency: int, headers: dict[str, str]
) -> dict[str, Any]:
    """Send `count` requests from `concurrency` threads (keep-alive clients)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per = [count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)]

    def worker(k: int, n: int) -> None:
        local: list[float] = []
        bad = 0
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for i in range(n):
                t = time.perf_counter()
                try:
                    res = make_request(client, k * 1_000_003 + i)
                    ok = res.status_code == 200
                except httpx.HTTPError:
                    ok = False
                local.append(time.perf_counter() - t)
                bad += not ok
        with lock:
            latencies.extend(local)
            errors[0] += bad

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency), per))
    elapsed = time.perf_counter() - start
    return {
        "requests": count,
        "per_s": round(count / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "errors": errors[0],
    }


def jpeg_1mp(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((1000, 1000), Image.BILINEAR).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def scan_vs_hash(tmp: Path, files: int, jobs: int) -> dict[str, Any]:
    """Files/s of `ridgeline hash` and of `ridgeline scan` on the same folder (CLI, jsonl)."""
    folder = tmp / "scanfiles"
    folder.mkdir()
    for i in range(files):
        (folder / f"{i:05d}.jpg").write_bytes(jpeg_1mp(1000 + i))
    db = str(tmp / "scan.db")
    subprocess.run(
        [HERE / "ridgeline", "lists", "create", "s", "--db", db], check=True, capture_output=True
    )
    out: dict[str, Any] = {"files": files, "jobs": jobs}
    for name, cmd in (
        (
            "hash",
            [HERE / "ridgeline", "hash", "-r", str(folder), "-j", str(jobs), "--format", "jsonl"],
        ),
        (
            "scan",
            [
                HERE / "ridgeline",
                "scan",
                str(folder),
                "-j",
                str(jobs),
                "--db",
                db,
                "--format",
                "jsonl",
            ],
        ),
    ):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out[f"{name}_files_per_s"] = round(files / (time.perf_counter() - t), 1)
    out["scan_vs_hash"] = round(out["scan_files_per_s"] / out["hash_files_per_s"], 3)
    # steady state (no process start-up, index already built): the library calls
    from ridgeline.hashing import hash_many, iter_files
    from ridgeline.scan.pipeline import ScanOptions, scan

    paths = list(iter_files([str(folder)], True))
    store = Store.open(db)
    scan(store, [folder], ScanOptions(jobs=jobs))  # warm: build the index files
    t = time.perf_counter()
    list(hash_many(paths, jobs=jobs))
    hash_rate = files / (time.perf_counter() - t)
    t = time.perf_counter()
    scan(store, [folder], ScanOptions(jobs=jobs))
    scan_rate = files / (time.perf_counter() - t)
    store.close()
    out["steady_hash_files_per_s"] = round(hash_rate, 1)
    out["steady_scan_files_per_s"] = round(scan_rate, 1)
    out["steady_scan_vs_hash"] = round(scan_rate / hash_rate, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100_000, help="PDQ entries in the index")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--uploads", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--scan-files", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=2, help="processes for the scan/hash comparison")
    ap.add_argument("--db", default=None, help="database (default: a temporary SQLite file)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ridgeline-bench-") as tmpdir:
        tmp = Path(tmpdir)
        db = args.db or str(tmp / "bench.db")
        store = Store.open(db)
        t = time.perf_counter()
        sample = bulk_pdq(store, args.n)
        load_s = time.perf_counter() - t
        from ridgeline.service.keys import create_key

        with store.session() as s:
            _, key = create_key(s, "bench", "provider", rate_limit=1e9)
        store.close()
        port = free_port()
        server = subprocess.Popen(
            [HERE / "ridgeline", "serve", "--db", db, "--port", str(port),
             "--workers", str(args.workers), "--rate-limit", "1e9"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        result: dict[str, Any] = {"bench": "service", "entries": args.n, "workers": args.workers}
        try:
            t = time.perf_counter()
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.perf_counter() - t > 600:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
            # warm every worker (index files are built or mapped on first use)
            for _ in range(args.workers * 4):
                with httpx.Client(base_url=base, headers=headers, timeout=600) as c:
                    c.get("/v1/lookup", params={"signal": "pdq", "value": sample[0]})
            result["startup_s"] = round(time.perf_counter() - t, 1)
            result["load_entries_s"] = round(load_s, 1)
            rng = np.random.default_rng(1)
            misses = [bytes(r).hex() for r in rng.integers(0, 256, (1000, 32), dtype=np.uint8)]

            def lookup(client: httpx.Client, i: int) -> httpx.Response:
                value = sample[i % len(sample)] if i % 2 == 0 else misses[i % len(misses)]
                return client.get("/v1/lookup", params={"signal": "pdq", "value": value})

            result["lookup"] = load(base, lookup, args.lookups, args.concurrency, headers)
            images = [jpeg_1mp(i) for i in range(8)]

            def upload(client: httpx.Client, i: int) -> httpx.Response:
                return client.post("/v1/match", files={"file": ("a.jpg", images[i % len(images)])})

            result["upload_1mp"] = load(
                base, upload, args.uploads, min(args.concurrency, 8), headers
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        result["scan"] = scan_vs_hash(tmp, args.scan_files, args.jobs)
        result["cpus"] = os.cpu_count()
        print(json.dumps(result))


if __name__ == "__main__":
    main()
