"""Worker memory under repeated bursts of load: does RSS level off?

Starts a real `ridgeline serve` (one worker) on a fresh SQLite database with a few
PDQ and md5 entries, then runs `--bursts` bursts of `--seconds` seconds each from
`--clients` threads on loopback (a bounded, closed-loop load): uploads of
JPEGs up to `--megapixels` to `POST /v1/match` (32 different images), JSON `POST /v1/match`, lookups
(fast path) and requests with a wrong key. It prints one JSON line with the
worker's RSS after start-up and after each burst and pause (MB), its peak RSS
during each burst, and the requests and errors (5xx or transport errors) of each.
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
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _jpeg(seed: int, megapixels: float) -> bytes:
    """A benign noise JPEG; sizes vary from 1/4 of `megapixels` up to it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (40, 25, 3), dtype=np.uint8)
    scale = (megapixels * 1e6 * (0.25 + 0.75 * rng.random()) / 1e6) ** 0.5
    size = (int(1250 * scale), int(800 * scale))
    image = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--megapixels", type=float, default=1.0, help="largest upload")
    parser.add_argument("--pause", type=float, default=7.0, help="idle seconds after each burst")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "ridgeline")
    images = [_jpeg(i, args.megapixels) for i in range(32)]
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "mem.db")
        out = subprocess.run(
            [exe, "keys", "create", "--role", "provider", "--db", db, "--format", "json"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        key = json.loads(out)["key"]
        subprocess.run(
            [exe, "lists", "create", "known", "--db", db], check=True, capture_output=True
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port), "--db", db, "--rate-limit", "100000",
             "--index-dir", os.path.join(tmp, "index")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        result: dict[str, object] = {
            "bench": "service_memory",
            "clients": args.clients,
            "megapixels": args.megapixels,
        }
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            h = {"X-API-Key": key}
            httpx.get(f"{base}/v1/lookup", params={"signal": "md5", "value": "0" * 32}, headers=h)
            rss = [_rss_mb(proc.pid)]
            counts: list[dict[str, int]] = []
            peaks: list[float] = []
            lock = threading.Lock()
            for burst in range(args.bursts):
                stop = time.monotonic() + args.seconds
                tally = {"requests": 0, "errors": 0}

                def client(n: int, stop: float = stop, tally: dict[str, int] = tally) -> None:
                    i = n
                    with httpx.Client(base_url=base, timeout=60) as c:
                        while time.monotonic() < stop:
                            i += 1
                            kind = i % 4
                            try:
                                if kind == 0:
                                    r = c.post(
                                        "/v1/match",
                                        files={"file": ("a.jpg", images[i % len(images)])},
                                        headers=h,
                                    )
                                elif kind == 1:
                                    pdq = f"{(i * 2654435761) % (1 << 256):064x}"
                                    body = {"signals": {"pdq": pdq}}
                                    r = c.post("/v1/match", json=body, headers=h)
                                elif kind == 2:
                                    r = c.get(
                                        "/v1/lookup",
                                        params={"signal": "md5", "value": f"{i:032x}"},
                                        headers=h,
                                    )
                                else:
                                    r = c.get("/v1/lists", headers={"X-API-Key": "rl_0_x"})
                                bad = r.status_code >= 500
                            except httpx.HTTPError:
                                bad = True
                            with lock:
                                tally["requests"] += 1
                                tally["errors"] += int(bad)

                threads = [
                    threading.Thread(target=client, args=(n * 1000 + burst * 100_000,))
                    for n in range(args.clients)
                ]
                for t in threads:
                    t.start()
                peak = 0.0
                while any(t.is_alive() for t in threads):
                    peak = max(peak, _rss_mb(proc.pid))
                    time.sleep(0.25)
                peaks.append(peak)
                time.sleep(args.pause)  # the worker trims its heap once quiet (5 s)
                rss.append(_rss_mb(proc.pid))
                counts.append(tally)
            result |= {
                "rss_mb": rss,
                "peak_rss_mb": peaks,
                "bursts": counts,
                "seconds": args.seconds,
            }
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
