"""A bounded load on loopback against a real multi-worker `ridgeline serve`; one JSON line.

    .venv/bin/python bench/load.py                      # 5 minutes, SQLite
    .venv/bin/python bench/load.py --seconds 30         # smoke run
    .venv/bin/python bench/load.py --db postgresql://postgres@127.0.0.1:5432/loadbench

For `--seconds` (default 300), locust users (library mode, gevent, closed loop) send a
mix of hash lookups (`GET /v1/lookup`, half hits), uploads (`POST /v1/match`, small
PNGs made in code), CyberTipline intake (`POST /v1/intake`, unique synthetic reports)
and UI pages (a logged-in session: dashboard, lists, a list, search), while in the
background a CSV list import runs again and again into another list and a signed
release is made from a second database and pulled into the served one, in a loop.

Prints throughput (requests/s, overall and per kind), p50/p99 in ms, errors (any
non-2xx answer or transport failure: must be 0), the number of imports and pulls
that completed, and the RSS of the serve processes (master plus workers) sampled
every `--sample` seconds, with the growth over the last half of the run (must level
off). The anchor is the lookup p99 of the same server unloaded, measured first.
"""

# ruff: noqa: I001  (locust must be imported before everything else)
from __future__ import annotations

# locust patches the standard library with gevent: it must come first.
import locust  # noqa: F401  (monkey-patching import)

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import httpx
import numpy as np
import psutil
from locust import HttpUser, between, events, task
from locust.env import Environment
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from ridgeline import lists as L  # noqa: E402
from ridgeline.intake import synthetic  # noqa: E402
from ridgeline.service.keys import create_key  # noqa: E402
from ridgeline.store import Store  # noqa: E402

EXE = str(Path(sys.executable).parent / "ridgeline")
KNOWN = [hashlib.md5(f"load-known-{i}".encode()).hexdigest() for i in range(2000)]


def ridgeline(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((128, 128), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def intake_body(n: int) -> bytes:
    pop = synthetic.Population(reports=1000)
    doc = synthetic.report_json(n, pop, random.Random(n))
    doc["report"]["additionalInfo"] = f"load {uuid.uuid4().hex}"
    return json.dumps(doc).encode()


class Shared:
    base = ""
    keys: dict[str, str] = {}
    images: list[bytes] = []


class LookupUser(HttpUser):
    weight = 6
    wait_time = between(0.005, 0.02)

    @task
    def lookup(self) -> None:
        value = random.choice(KNOWN) if random.random() < 0.5 else uuid.uuid4().hex
        self.client.get(
            "/v1/lookup",
            params={"signal": "md5", "value": value},
            headers={"X-API-Key": Shared.keys["provider"]},
            name="lookup",
        )


class UploadUser(HttpUser):
    weight = 2
    wait_time = between(0.01, 0.05)

    @task
    def upload(self) -> None:
        self.client.post(
            "/v1/match",
            files={"file": ("a.png", random.choice(Shared.images), "image/png")},
            headers={"X-API-Key": Shared.keys["provider"]},
            name="upload",
        )


class IntakeUser(HttpUser):
    weight = 1
    wait_time = between(0.05, 0.2)

    @task
    def intake(self) -> None:
        self.client.post(
            "/v1/intake",
            data=intake_body(random.randrange(1000)),
            headers={"X-API-Key": Shared.keys["intake"], "Content-Type": "application/json"},
            name="intake",
        )


class UiUser(HttpUser):
    weight = 1
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.client.get("/ui/login", name="ui-login")
        csrf = self.client.cookies.get("rl_login") or ""
        self.client.post(
            "/ui/login",
            data={"api_key": Shared.keys["curator"], "login_csrf": csrf},
            name="ui-login",
        )

    @task
    def pages(self) -> None:
        for path in ("/ui/", "/ui/lists", "/ui/lists/known"):
            self.client.get(path, name="ui-page")
        self.client.get(
            "/ui/search", params={"signal": "md5", "value": random.choice(KNOWN)}, name="ui-page"
        )


# ---------------------------------------------------------------- background writers


class Background:
    """A list import and a release pull, each run again and again until stopped."""

    def __init__(self, db: str, work: Path) -> None:
        self.db = db
        self.work = work
        self.stop = threading.Event()
        self.imports = 0
        self.pulls = 0
        self.failures: list[str] = []
        self.threads = [
            threading.Thread(target=self._imports, daemon=True),
            threading.Thread(target=self._pulls, daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=600)

    def _imports(self) -> None:
        n = 0
        while not self.stop.is_set():
            path = self.work / f"import-{n % 4}.csv"
            if not path.exists():
                with path.open("w") as fh:
                    fh.write("signal,hash\n")
                    for j in range(50_000):
                        fh.write(f"md5,{hashlib.md5(f'bulk-{n}-{j}'.encode()).hexdigest()}\n")
            res = ridgeline("lists", "import", f"bulk-{n % 4}", str(path), "--db", self.db,
                            check=False)  # fmt: skip
            if res.returncode != 0:
                self.failures.append(f"import: {res.stderr[-500:]}")
            else:
                self.imports += 1
            n += 1

    def _pulls(self) -> None:
        source = str(self.work / "publisher.db")
        out = self.work / "releases"
        made = json.loads(ridgeline("lists", "keygen", "--out", str(self.work / "rel"),
                                    "--format", "json").stdout)  # fmt: skip
        ridgeline("lists", "create", "shared", "--db", source)
        v = 0
        while not self.stop.is_set():
            rows = self.work / f"release-{v}.txt"
            rows.write_text(
                "".join(
                    hashlib.md5(f"rel-{v}-{j}".encode()).hexdigest() + "\n" for j in range(5000)
                )
            )
            ridgeline("lists", "import", "shared", str(rows), "--signal", "md5", "--db", source)
            ridgeline("lists", "release", "shared", "--key", made["private_key"], "--out", str(out),
                      "--db", source)  # fmt: skip
            res = ridgeline("lists", "pull", str(out), "--trust", made["public_key"],
                            "--db", self.db, "--format", "json", check=False)  # fmt: skip
            if res.returncode != 0:
                self.failures.append(f"pull: {res.stderr[-500:]}")
            else:
                self.pulls += 1
            v += 1
            self.stop.wait(2.0)


# ---------------------------------------------------------------- memory


def rss_mb(pid: int) -> tuple[float, list[float]]:
    """Total RSS of the serve process tree (MB) and each worker's."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, []
    sizes = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes.append(p.memory_info().rss / 2**20)
    return round(sum(sizes), 1), [round(s, 1) for s in sizes[1:]]


def anchor_p99(base: str, key: str, n: int = 400) -> float:
    with httpx.Client(base_url=base, headers={"X-API-Key": key}) as client:
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            res = client.get("/v1/lookup", params={"signal": "md5", "value": KNOWN[i % 50]})
            times.append(time.perf_counter() - t0)
            assert res.status_code == 200, res.text
    return round(float(np.percentile(times[50:], 99)) * 1000, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ridgeline-load-"))
    db = args.db or str(work / "served.db")
    ridgeline("db", "init", "--db", db)
    store = Store.open(db)
    with store.session() as s:
        for role in ("provider", "intake", "curator"):
            Shared.keys[role] = create_key(s, f"load-{role}", role, rate_limit=1e6)[1]
        hl = L.create_list(s, "known", description="load bench")
        for h in KNOWN:
            L.add_entry(s, hl, {"md5": h}, source="load")
        for i in range(4):
            L.create_list(s, f"bulk-{i}", description="imported during the load")
    store.close()
    Shared.images = [png(i) for i in range(32)]

    port = free_port()
    Shared.base = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "wb")  # noqa: SIM115
    serve = subprocess.Popen(
        [EXE, "serve", "--port", str(port), "--db", db, "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{Shared.base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        anchor = anchor_p99(Shared.base, Shared.keys["provider"])
        result = run(args, serve.pid, db, work)
        result["anchor_lookup_p99_ms_unloaded"] = anchor
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        log.close()
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


def run(args: argparse.Namespace, pid: int, db: str, work: Path) -> dict[str, Any]:
    errors: list[str] = []

    @events.request.add_listener
    def _on_request(name: str, response: Any, exception: Any, **_: Any) -> None:
        if exception is not None:
            errors.append(f"{name}: {exception}")
        elif not 200 <= response.status_code < 300:
            errors.append(f"{name}: {response.status_code} {response.text[:200]}")

    env = Environment(
        user_classes=[LookupUser, UploadUser, IntakeUser, UiUser], host=Shared.base, events=events
    )
    runner = env.create_local_runner()
    background = Background(db, work)
    background.start()
    samples: list[tuple[float, float, list[float]]] = []
    t0 = time.monotonic()
    runner.start(args.users, spawn_rate=args.users)
    while time.monotonic() - t0 < args.seconds:
        total, workers = rss_mb(pid)
        samples.append((round(time.monotonic() - t0, 1), total, workers))
        gevent.sleep(args.sample)
    runner.quit()
    elapsed = time.monotonic() - t0
    background.join()
    stats = env.stats
    kinds = {}
    for (name, _method), entry in stats.entries.items():
        kind = kinds.setdefault(name, {"requests": 0, "rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0})
        kind["requests"] += entry.num_requests
        kind["rps"] = round(kind["requests"] / elapsed, 1)
        kind["p50_ms"] = entry.get_response_time_percentile(0.5)
        kind["p99_ms"] = entry.get_response_time_percentile(0.99)
    total = stats.total
    half = [s[1] for s in samples if s[0] >= args.seconds / 2]
    quarter = [s[1] for s in samples if s[0] >= args.seconds * 3 / 4]
    return {
        "bench": "load",
        "seconds": round(elapsed, 1),
        "users": args.users,
        "workers": args.workers,
        "db": "postgresql" if db.startswith("postgresql") else "sqlite",
        "requests": total.num_requests,
        "rps": round(total.num_requests / elapsed, 1),
        "p50_ms": total.get_response_time_percentile(0.5),
        "p99_ms": total.get_response_time_percentile(0.99),
        "errors": len(errors) + len(background.failures),
        "error_samples": (errors + background.failures)[:5],
        "by_kind": kinds,
        "imports_done": background.imports,
        "rows_imported": background.imports * 50_000,
        "pulls_done": background.pulls,
        "rss_mb": [[s[0], s[1]] for s in samples],
        "rss_workers_mb_last": samples[-1][2] if samples else [],
        "rss_growth_last_half_mb": round(max(half) - half[0], 1) if half else None,
        "rss_growth_last_quarter_mb": round(max(quarter) - quarter[0], 1) if quarter else None,
    }


if __name__ == "__main__":
    main()
