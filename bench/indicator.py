"""Victims import+merge and the full indicator, against the issue's targets.

Targets (issue 14): 1,000,000 victims with 10,000,000 sightings in 3 databases; import
and merge <= 60 s, the full indicator (Kaplan-Meier by stratum and the estimate) <= 10 s,
peak RSS <= 2 GB. The synthetic files are written by a child process first (not timed,
not in this process's RSS). Anchors measured in the same run: plain sqlite3
executemany of the same sighting rows (one row each, as a naive schema would store
them; the registry packs them per record), and lifelines' KaplanMeierFitter directly on
the same durations. Prints ONE JSON line.

Usage: python bench/indicator.py [--victims 1000000] [--sightings 10000000] [--data DIR]

(`--victims 100000 --sightings 1000000` and smaller run the same steps at a smaller
scale; `cpu_s` fields are this process's CPU time, for a machine shared with others;
`import_merge_child_cpu_s` is the parsing process's, when the import starts one;
`peak_rss_both_mb`, the figure for the 2 GB target, counts both processes: this one's
peak, or during the import the two processes' resident memory sampled together every
50 ms (psutil); `import_peak_rss_both_mb` adds the two peaks, an upper bound.)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

DATABASES = (("NCMEC", 0.5), ("ICSE", 0.4), ("EUROPOL", 0.3))
AS_OF = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _generate(directory: Path, n: int, sightings: int) -> None:
    from ridgeline.victims.synth import generate

    known_share = 1.0
    for _, p in DATABASES:
        known_share *= 1 - p
    known_share = 1 - known_share
    population = round(n / known_share)
    records = population * sum(p for _, p in DATABASES)
    world = generate(1, population, DATABASES, sightings_per_record=sightings / records)
    world.write(directory)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--victims", "--n", dest="n", type=int, default=1_000_000, help="known victims (about)"
    )
    parser.add_argument("--sightings", type=int, default=None, help="default: 10 per victim")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--data", type=Path, help="keep the generated files here and reuse them (not timed)"
    )
    args = parser.parse_args()
    sightings = args.sightings if args.sightings is not None else 10 * args.n
    if args.generate:
        _generate(args.generate, args.n, sightings)
        return
    out: dict[str, object] = {"bench": "indicator", "n": args.n, "load_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        data = args.data or d
        t = time.perf_counter()
        done = data / f"done-{args.n}-{sightings}"
        if not done.exists():
            command = [sys.executable, __file__, "--victims", str(args.n)]
            command += ["--sightings", str(sightings), "--generate", str(data)]
            subprocess.run(command, check=True)
            done.touch()
        out["generate_s"] = round(time.perf_counter() - t, 1)
        paths = sorted(data.glob("*.jsonl"))
        from ridgeline.store import Store
        from ridgeline.victims.registry import import_files

        store = Store.open(d / "victims.db")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        sampled = [0]
        importing = threading.Event()
        importing.set()

        def sample() -> None:  # both processes' resident memory at the same moments
            me = psutil.Process()
            kids: list[psutil.Process] = []
            looked = 0.0
            while importing.is_set():
                if time.monotonic() - looked > 1.0:  # finding children scans /proc
                    kids, looked = me.children(), time.monotonic()
                total = me.memory_info().rss
                for child in kids:
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
                sampled[0] = max(sampled[0], total)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t, c = time.perf_counter(), time.process_time()
        result = import_files(store, paths)
        importing.clear()
        sampler.join()
        out["import_rss_both_sampled_mb"] = round(sampled[0] / 2**20)
        out["import_merge_s"] = round(time.perf_counter() - t, 2)
        out["import_merge_cpu_s"] = round(time.process_time() - c, 2)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["import_merge_child_cpu_s"] = round(
            after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 2
        )
        out["child_peak_rss_mb"] = round(after.ru_maxrss / 1024)
        # the import's memory is both processes': sampled together every 50 ms above,
        # and as an upper bound this process's peak so far plus the child's peak
        import_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        out["import_peak_rss_mb"] = import_rss
        out["import_peak_rss_both_mb"] = import_rss + round(after.ru_maxrss / 1024)
        out["load_1m_after_import"] = os.getloadavg()[0]
        out["records"] = result.records
        out["victims"] = result.victims
        anchor = sqlite3.connect(d / "anchor.db")
        anchor.execute("PRAGMA journal_mode=WAL")
        anchor.execute("CREATE TABLE s (record_id INTEGER, seen_at INTEGER, source TEXT)")
        anchor.execute("CREATE INDEX s_record ON s (record_id)")
        spent, count = 0.0, 0
        import numpy as np

        with store.engine.connect() as conn:  # read in chunks: 10M rows at once is GBs
            cursor = conn.connection.cursor()
            cursor.execute(
                "SELECT p.record_id, p.times, r.database FROM victim_sighting_packs p "
                "JOIN victim_records r ON r.id = p.record_id"
            )
            while packs := cursor.fetchmany(20_000):
                rows = [
                    (rid, t, source)
                    for rid, blob, source in packs
                    for t in np.frombuffer(blob, dtype="<i8").tolist()
                ]
                t = time.perf_counter()
                anchor.executemany("INSERT INTO s VALUES (?, ?, ?)", rows)
                spent += time.perf_counter() - t
                count += len(rows)
            t = time.perf_counter()
            anchor.commit()
            spent += time.perf_counter() - t
        out["sightings"] = count
        out["anchor_sqlite3_executemany_sightings_s"] = round(spent, 2)
        anchor.close()
        t = time.perf_counter()
        import lifelines  # noqa: F401
        import statsmodels.api  # noqa: F401

        out["import_libraries_s"] = round(time.perf_counter() - t, 2)
        from ridgeline.indicator import compute, load_table

        t, c = time.perf_counter(), time.process_time()
        table = load_table(store)
        indicator = compute(table, as_of=AS_OF, period="quarter", by="age_band")
        out["indicator_s"] = round(time.perf_counter() - t, 2)
        out["indicator_cpu_s"] = round(time.process_time() - c, 2)
        out["population_estimate"] = (
            round(indicator.estimate.population) if indicator.estimate else None
        )
        from lifelines import KaplanMeierFitter

        seen = np.where(table.db_first >= 0, table.db_first, np.iinfo(np.int64).max).min(axis=0)
        end = int(AS_OF.timestamp())
        event = (table.identified >= 0) & (table.identified <= end)
        durations = np.maximum(np.where(event, table.identified, end) - seen, 0) / 86400.0
        t = time.perf_counter()
        KaplanMeierFitter().fit(durations, event)
        out["anchor_lifelines_km_s"] = round(time.perf_counter() - t, 2)
        store.close()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["peak_rss_both_mb"] = max(
        int(str(out["peak_rss_mb"])), int(str(out["import_rss_both_sampled_mb"]))
    )
    out["targets"] = {"import_merge_s": 60, "indicator_s": 10, "peak_rss_both_mb": 2048}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
