"""Wrong-secret flood: what a stream of bad secrets for a real key prefix costs the server.

Starts a real `ridgeline serve` (one worker) on a fresh SQLite database, sends
`--requests` requests with a real key's prefix and random wrong secrets from
`--clients` threads, and prints one JSON line: requests/s answered, server CPU
milliseconds per bad request, and lookup p50/p99 of a good key measured during the
flood. Prefixes are public (`keys list` prints them), so this needs no secret.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="bad requests to send")
    parser.add_argument("--clients", type=int, default=4, help="concurrent senders")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "ridgeline")
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "flood.db")

        def key(name: str) -> str:
            out = subprocess.run(
                [exe, "keys", "create", "--role", "provider", "--name", name, "--db", db,
                 "--format", "json"],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            return str(json.loads(out)["key"])

        victim, good = key("victim"), key("good")
        prefix = victim[:15]  # rl_ + 12 hex digits
        port = _free_port()
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port), "--db", db, "--rate-limit", "100000",
             "--index-dir", os.path.join(tmp, "index")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            params = {"signal": "md5", "value": "0" * 32}
            httpx.get(f"{base}/v1/lookup", params=params, headers={"X-API-Key": good})
            statuses: list[int] = []
            lock = threading.Lock()
            per_client = args.requests // args.clients
            stop = threading.Event()

            def flood() -> None:
                with httpx.Client(base_url=base, timeout=30) as c:
                    for _ in range(per_client):
                        bad = f"{prefix}_{secrets.token_urlsafe(32)}"
                        r = c.get("/v1/lookup", params=params, headers={"X-API-Key": bad})
                        with lock:
                            statuses.append(r.status_code)

            latencies: list[float] = []

            def lookups() -> None:
                with httpx.Client(base_url=base, timeout=30) as c:
                    while not stop.is_set():
                        began = time.perf_counter()
                        c.get("/v1/lookup", params=params, headers={"X-API-Key": good})
                        latencies.append(time.perf_counter() - began)
                        time.sleep(0.01)

            cpu0 = _cpu_seconds(proc.pid)
            began = time.perf_counter()
            watcher = threading.Thread(target=lookups)
            watcher.start()
            threads = [threading.Thread(target=flood) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - began
            stop.set()
            watcher.join()
            cpu = _cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(20)
    latencies.sort()
    print(
        json.dumps(
            {
                "bench": "keyflood",
                "bad_requests": len(statuses),
                "all_401": set(statuses) == {401},
                "bad_requests_per_s": round(len(statuses) / elapsed, 1),
                "server_cpu_ms_per_bad_request": round(1000 * cpu / max(1, len(statuses)), 3),
                "good_lookup_p50_ms": round(1000 * statistics.median(latencies), 2),
                "good_lookup_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
