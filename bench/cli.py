"""Benchmark CLI start-up; prints one JSON line.

    .venv/bin/python bench/cli.py                          # 10,000,000 entries
    .venv/bin/python bench/cli.py --n 100000 --db /tmp/x.db

Times, as a user runs them (a fresh process each, median of `--rounds`):
`ridgeline --help` and `ridgeline lists ls` on a store holding one list of N entries
(built once with bench/service.py's bulk path, reused when `--db` is already loaded).
Anchors put the numbers in context on a loaded machine: `python -c pass` (the
interpreter alone) and a plain `sqlite3` `SELECT count(*)` of the same entries (what
counting would cost if `lists ls` still counted). Targets (issue 11): --help <= 0.3 s,
lists ls <= 0.5 s at 10,000,000 entries. `lists show` is timed too, with no target:
it stands for every command that opens the Store (SQLAlchemy and the models).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ridgeline.lists.models import HashList, ListCount
from ridgeline.store import Store
from service import bulk_pdq

RIDGELINE = str(Path(sys.executable).with_name("ridgeline"))


def timed(argv: list[str], rounds: int) -> float:
    """Median wall time of running argv `rounds` times (output discarded)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def loaded_entries(store: Store) -> int | None:
    with store.session() as s:
        hl = s.query(HashList).filter_by(name="bench").one_or_none()
        if hl is None:
            return None
        count = s.get(ListCount, hl.id)
        return count.entries if count else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000_000, help="entries in the one list")
    ap.add_argument("--db", default=None, help="SQLite file (reused if already loaded)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ridgeline-bench-cli-") as tmp:
        db = args.db or str(Path(tmp) / "cli.db")
        store = Store.open(db)
        entries = loaded_entries(store)
        load_s = 0.0
        if entries is None:
            start = time.perf_counter()
            bulk_pdq(store, args.n)
            load_s = round(time.perf_counter() - start, 1)
            entries = loaded_entries(store)
        store.close()
        count_start = time.perf_counter()
        with sqlite3.connect(db) as raw:
            counted = raw.execute("SELECT count(*) FROM entries WHERE deleted_at IS NULL")
            real = counted.fetchone()[0]
        sqlite_count_s = round(time.perf_counter() - count_start, 3)
        result = {
            "bench": "cli",
            "entries": entries,
            "entries_counted": real,
            "load_s": load_s,
            "help_s": timed([RIDGELINE, "--help"], args.rounds),
            "lists_ls_s": timed([RIDGELINE, "lists", "ls", "--db", db], args.rounds),
            # Not a target: any command that opens the Store still imports SQLAlchemy.
            "lists_show_s": timed([RIDGELINE, "lists", "show", "bench", "--db", db], args.rounds),
            "anchor_python_pass_s": timed([sys.executable, "-c", "pass"], args.rounds),
            "anchor_sqlite_count_s": sqlite_count_s,
            "targets": {"help_s": 0.3, "lists_ls_s": 0.5},
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
