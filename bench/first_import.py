"""First import into a fresh database: `lists import` (txt md5) and an NCMEC exchange import.

Issue 17 item 2: on a fresh PostgreSQL database the duplicate check of a large first
import planned as a nested loop over the rows the import itself had just inserted (no
statistics yet, no index on `entry_signals.entry_id`): 10k md5 took 34 s, 20k over 7
minutes. This bench times, for each size, a first import of N random md5 hashes into
a fresh SQLite file and (with --postgres URL) a fresh PostgreSQL database, through
both import writers, next to an anchor: plain `executemany` of the same rows into a
bare two-table schema with the driver (sqlite3 / psycopg). Prints ONE JSON line.

Usage: python bench/first_import.py [--entries 10000,100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/first_import.py`

from bench.exchange import drop_pg, fresh_pg, make_document
from sqlalchemy.engine import make_url

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.store import Store


def md5s(n: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def anchor_sqlite(path: Path, hashes: list[str]) -> float:
    """Plain sqlite3: one row per entry and one per hash, executemany, one commit."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, list_id INTEGER)")
    con.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, entry_id INTEGER, signal TEXT, k TEXT)")
    t = time.perf_counter()
    con.executemany("INSERT INTO e (id, list_id) VALUES (?, 1)", [(i,) for i in range(len(hashes))])
    con.executemany(
        "INSERT INTO s (entry_id, signal, k) VALUES (?, 'md5', ?)", list(enumerate(hashes))
    )
    con.commit()
    elapsed = time.perf_counter() - t
    con.close()
    return elapsed


def anchor_pg(url: str, hashes: list[str]) -> float:
    """Plain psycopg: the same two tables and rows, executemany, one commit."""
    import psycopg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as con:
        con.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, list_id INTEGER)")
        con.execute("CREATE TABLE s (id SERIAL PRIMARY KEY, entry_id INTEGER, signal TEXT, k TEXT)")
        con.commit()
        t = time.perf_counter()
        with con.cursor() as cur:
            cur.executemany(
                "INSERT INTO e (id, list_id) VALUES (%s, 1)", [(i,) for i in range(len(hashes))]
            )
            cur.executemany(
                "INSERT INTO s (entry_id, signal, k) VALUES (%s, 'md5', %s)",
                list(enumerate(hashes)),
            )
        con.commit()
        return time.perf_counter() - t


def time_imports(url: str, txt: Path, ncmec: Path) -> dict[str, Any]:
    """Seconds for a first `lists import` and a first NCMEC import into fresh lists."""
    out: dict[str, Any] = {}
    store = Store.open(url)
    try:
        t = time.perf_counter()
        with store.session() as session:
            report = exchange.import_file(
                session, L.create_list(session, "txt"), txt, "txt", signal="md5"
            )
        out["lists_import_s"] = round(time.perf_counter() - t, 2)
        out["lists_import_added"] = report.added
        parsed = exchange.parse_bytes(ncmec.read_bytes(), "ncmec-xml")
        t = time.perf_counter()
        with store.session() as session:
            ex = exchange.apply_records(session, L.create_list(session, "ncmec"), parsed)
        out["exchange_import_s"] = round(time.perf_counter() - t, 2)
        out["exchange_import_added"] = ex.added
    finally:
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", default="10000,100000")
    parser.add_argument("--postgres", default=None, help="server URL; a scratch database is made")
    args = parser.parse_args()
    sizes = [int(s) for s in args.entries.split(",")]
    out: dict[str, Any] = {"bench": "first_import", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in sizes:
            hashes = md5s(n)
            txt = d / f"{n}.txt"
            txt.write_text("\n".join(hashes) + "\n")
            ncmec = d / f"{n}.xml"
            ncmec.write_bytes(make_document(n))
            run: dict[str, Any] = {"entries": n}
            run["sqlite"] = time_imports(f"sqlite:///{d}/{n}.db", txt, ncmec)
            run["sqlite"]["anchor_executemany_s"] = round(anchor_sqlite(d / f"{n}-a.db", hashes), 2)
            if args.postgres:
                name = "ridgeline_bench_first_import"
                try:
                    run["postgresql"] = time_imports(fresh_pg(args.postgres, name), txt, ncmec)
                    anchor = fresh_pg(args.postgres, name + "_anchor")
                    run["postgresql"]["anchor_executemany_s"] = round(anchor_pg(anchor, hashes), 2)
                finally:
                    drop_pg(args.postgres, name)
                    drop_pg(args.postgres, name + "_anchor")
            out["runs"].append(run)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
