"""PDQ of a 12-megapixel photo in the browser (the self-submission page). ONE JSON line.

Makes a benign synthetic 4000x3000 JPEG (the `bench/hashing.py` photo generator),
starts a real `ridgeline serve` on a temporary database, opens `/submit-hashes/` in
Debian's headless Chromium and times, in the page, what the page does for a photo:
decode (createImageBitmap + canvas) and PDQ (Ridgeline's C core as WebAssembly). The
anchor, in the same run: `ridgeline.pdq.hash_file` exact mode on the same file. The
browser's hash must equal the anchor's (it is printed as `identical`).

Target (issue 16): browser PDQ (decode + hash) <= 500 ms on this machine.

Usage: python bench/selfsubmit.py [--rounds 5] [--width 4000 --height 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from hashing import make_photo  # bench/hashing.py, beside this file
from ridgeline.pdq import hash_file
from ridgeline.store import Store

TARGET_MS = 500.0
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TIME_IN_PAGE = """async (rounds) => {
  const file = document.getElementById('bench-file').files[0];
  const out = [];
  let result = null;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const img = await window.ridgelineSubmit.pixelsOf(file);
    const t1 = performance.now();
    result = await window.ridgelineSubmit.pdqOf(img);
    const t2 = performance.now();
    out.push([t1 - t0, t2 - t1]);
  }
  return {times: out, hash: result.hash, quality: result.quality};
}"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rl-bench-selfsubmit-") as tmp:
        photo = Path(tmp) / "photo.jpg"
        make_photo(np.random.default_rng(12), args.width, args.height).save(photo, quality=90)
        db = Path(tmp) / "bench.db"
        Store.open(db).close()
        port = _free_port()
        exe = str(Path(sys.executable).parent / "ridgeline")
        server = subprocess.Popen(
            [exe, "serve", "--port", str(port), "--db", str(db), "--no-access-log",
             "--index-dir", str(Path(tmp) / "index")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not become ready")
                time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page()
                page.goto(f"{base}/submit-hashes/")
                page.wait_for_selector("body[data-ready='1']")
                page.evaluate(
                    "() => { const i = document.createElement('input'); i.type = 'file';"
                    " i.id = 'bench-file'; document.body.appendChild(i); }"
                )
                page.set_input_files("#bench-file", str(photo))
                page.evaluate(TIME_IN_PAGE, 1)  # warm-up: WebAssembly compile, first decode
                measured = page.evaluate(TIME_IN_PAGE, args.rounds)
                browser.close()
        finally:
            os.killpg(server.pid, 9)
            server.wait()
        python_ms = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            expected = hash_file(photo)
            python_ms.append((time.perf_counter() - t0) * 1000)
    decode = [t[0] for t in measured["times"]]
    pdq = [t[1] for t in measured["times"]]
    total = [a + b for a, b in measured["times"]]
    browser_ms = statistics.median(total)
    anchor = statistics.median(python_ms)
    print(
        json.dumps(
            {
                "bench": "selfsubmit",
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),  # others inflate wall times
                "megapixels": round(args.width * args.height / 1e6, 1),
                "rounds": args.rounds,
                "browser_pdq_ms": round(browser_ms, 1),
                "browser_decode_ms": round(statistics.median(decode), 1),
                "browser_hash_ms": round(statistics.median(pdq), 1),
                "python_exact_ms": round(anchor, 1),
                "browser_over_python": round(browser_ms / anchor, 2),
                "identical": (measured["hash"], measured["quality"]) == expected,
                "target_ms": TARGET_MS,
                "meets_target": browser_ms <= TARGET_MS,
            }
        )
    )


if __name__ == "__main__":
    main()
