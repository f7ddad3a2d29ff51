"""Clearinghouse intake at a million: the CLI's path, file by file, with rate and memory.

Issue 13's target: 1,000,000 synthetic reports in at most 15 minutes with memory that
levels off. The reports (`ridgeline.intake.synthetic.jsonl_lines(Population(N))`, not
timed) are written to JSONL files of `--file-size` (default 100,000) and taken in the way
`ridgeline reports intake --batch 1000 FILE...` does: one `intake.Pipeline` with the
triage and routing step, `Pipeline.run(paths=...)` over all the files (prepared in a
second process, `ridgeline.parseahead`), one SQLite file.

For each file the line has its rate (`rate_per_file`, reports/s from its first to its
last committed batch), its CPU seconds in this process (`cpu_s_per_file`: wall time on
a shared machine moves with the neighbours), the resident memory at its end of this
process and of the preparing process (`rss_mb_per_file`, `child_rss_mb_per_file`) and
the store's size (`store_mb_per_file`), and what of the writer's memory is the PDQ
neighbour index (`pdq_mb_per_file`: `cases.linking.PdqNeighbours`, every stored PDQ
hash with its MIH tables, about 100 bytes a hash, 0.4 hashes a report); after each
file the anchor (`anchor_per_s_per_file`: `json.loads` and a plain sqlite3
executemany of 5,000 of its documents into a bare table) gives the machine's speed at
that moment. `rate_ratio` is the last file's rate over the first's (1.0: flat),
`cpu_ratio` the same for CPU seconds per file (the load-independent view), and
`levels_off` says whether the writer's RSS less the PDQ index
(`rss_less_pdq_mb_per_file`) at the end of each file of the last half stays within 5 %
of that half's first: the index grows with what is stored, as the store does, and is
shown on its own; everything else must not grow with the stream (`rss_levels_off`
applies the rule to the whole RSS). `s` is the total wall time without the anchors';
target <= 900 s at 1,000,000.

Prints ONE JSON line (and each file's figures on stderr as it ends). Usage:
python bench/intake_million.py [--million-n 1000000] [--file-size 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from intake import anchor  # bench/intake.py, beside this script
from ridgeline import cases, intake
from ridgeline.intake import synthetic
from ridgeline.store import Store

BATCH = 1000
#: Documents of each file the anchor takes in (`_anchor`).
ANCHOR_DOCS = 5000


def _rss_mb(pid: int | str = "self") -> float:
    """Resident set of a process now (MB), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _children() -> list[int]:
    out: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _anchor(path: str, tmp: str, n: int = ANCHOR_DOCS) -> tuple[int, float]:
    """The machine's speed now: bench/intake.py's anchor over a file's first `n`
    documents, reports/s and seconds. Measured after each file, so a falling rate can
    be read against it."""
    with open(path, "rb") as f:
        lines = [line for _, line in zip(range(n), f, strict=False)]
    return anchor(lines, tmp, path)


def _write_files(n: int, size: int, tmp: str) -> list[str]:
    paths: list[str] = []
    lines = synthetic.jsonl_lines(synthetic.Population(n))
    for part in range(0, n, size):
        path = os.path.join(tmp, f"day-{part // size:02d}.jsonl")
        with open(path, "wb") as f:
            for _ in range(min(size, n - part)):
                f.write(next(lines) + b"\n")
        paths.append(path)
    return paths


def _levels_off(mb: list[float]) -> bool:
    """Whether the figures of the last half of the files stay within 5 % of that half's
    first."""
    half = mb[len(mb) // 2 :] or mb
    return max(half) <= half[0] * 1.05


def run(n: int, size: int, tmp: str) -> dict[str, Any]:
    paths = _write_files(n, size, tmp)
    db = os.path.join(tmp, "intake.db")
    store = Store.open(db)
    pipeline = intake.Pipeline(steps=intake.default_steps(store))
    files: list[dict[str, Any]] = []
    statuses: dict[str, int] = {}
    current: str | None = None
    count = 0
    anchor_s: list[float] = []
    t0 = time.perf_counter()
    start_t, start_c = t0, time.process_time()

    def close(path: str) -> None:
        wall, cpu = time.perf_counter() - start_t, time.process_time() - start_c
        kids = _children()
        files.append({
            "file": os.path.basename(path), "n": count, "s": round(wall, 1),
            "rate": round(count / wall) if wall else 0, "cpu_s": round(cpu, 1),
            "rss_mb": _rss_mb(), "child_rss_mb": round(sum(_rss_mb(p) for p in kids), 1),
            "pdq_mb": round(pipeline.linker.pdq.nbytes / 2**20, 1),
            "store_mb": round(sum(os.path.getsize(p) for p in Path(tmp).glob("intake.db*"))
                              / 2**20),
        })  # fmt: skip
        rate, took = _anchor(path, tmp)
        files[-1]["anchor_per_s"] = rate
        anchor_s.append(took)
        print(json.dumps(files[-1]), file=sys.stderr, flush=True)  # progress of a long run

    for outcomes in pipeline.run(store, paths=paths, batch=BATCH):
        for o in outcomes:
            statuses[o.status] = statuses.get(o.status, 0) + 1
            path = o.source.rsplit(":", 1)[0]
            if path != current:
                if current is not None:
                    close(current)
                    start_t, start_c = time.perf_counter(), time.process_time()
                current, count = path, 0
            count += 1
    if current is not None:
        close(current)
    total = time.perf_counter() - t0 - sum(anchor_s)
    with store.session() as s:
        counts = cases.core.counts(s)
    store.close()
    rss = [f["rss_mb"] for f in files]
    rest = [round(f["rss_mb"] - f["pdq_mb"], 1) for f in files]
    return {
        "s": round(total, 1),
        "per_s": round(n / total),
        "rate_per_file": [f["rate"] for f in files],
        "cpu_s_per_file": [f["cpu_s"] for f in files],
        "rss_mb_per_file": rss,
        "child_rss_mb_per_file": [f["child_rss_mb"] for f in files],
        "pdq_mb_per_file": [f["pdq_mb"] for f in files],
        "rss_less_pdq_mb_per_file": rest,
        "store_mb_per_file": [f["store_mb"] for f in files],
        "anchor_per_s_per_file": [f["anchor_per_s"] for f in files],
        "rate_ratio": round(files[-1]["rate"] / files[0]["rate"], 2),
        "cpu_ratio": round(files[-1]["cpu_s"] / files[0]["cpu_s"], 2),
        "levels_off": _levels_off(rest),
        "rss_levels_off": _levels_off(rss),
        "statuses": statuses,
        **counts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--million-n", type=int, default=1_000_000, help="reports to take in")
    ap.add_argument("--file-size", type=int, default=100_000, help="reports per JSONL file")
    ap.add_argument("--keep", default=None, help="work in DIR and keep it (default: a temp dir)")
    args = ap.parse_args()
    result: dict[str, Any] = {"bench": "intake_million", "n": args.million_n,
                              "file_size": args.file_size, "cpus": os.cpu_count()}  # fmt: skip
    c0 = time.process_time()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        result.update(run(args.million_n, args.file_size, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="ridgeline-bench-intake-1m-") as tmp:
            result.update(run(args.million_n, args.file_size, tmp))
    result["cpu_s"] = round(time.process_time() - c0, 1)
    result["memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result["load_avg"] = [round(x, 1) for x in os.getloadavg()]
    result["targets_met"] = {
        "million_900s": result["s"] * 1_000_000 / args.million_n <= 900,
        "memory_levels_off": result["levels_off"],
    }
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
