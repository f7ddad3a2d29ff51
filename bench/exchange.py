"""Imports at scale (issue 10 item 10), with their anchors measured in the same run.

For N random PDQ hashes in a txt file (default 10,000,000; `--n` for a smaller run on
a shared machine) this times, each in its own process so peak RSS is its own:

- `ridgeline lists import` into a fresh SQLite file (`sqlite_*`): seconds, peak RSS,
  store bytes per entry (file size after a WAL checkpoint, and per table/index from
  SQLite's `dbstat`), then the list made matchable (`MatchIndex.load`, index built
  and written) in `matchable_s` (`matchable_from_pack`: rows read from the import's
  pack instead of SQL; `sqlite_pack_bytes_per_entry`: that pack's size, kept beside the
  database until an index file holds its rows);
- the anchor: a plain `sqlite3` script reading the same file and inserting an entry
  row and a hash row per line (hex text, one index on the hash) with `executemany`
  in one transaction, same WAL pragmas (`anchor_executemany_*`); `ratio_to_anchor` is
  ridgeline's time over it (target <= 1.5);
- python-threatexchange's local-file collaboration loading the same file
  (`threatexchange fetch`, which also builds its PDQ index) in `tx_fetch_*`;
- with `--postgres URL`, `ridgeline lists import` into a fresh PostgreSQL database;
- `ridgeline lists import` of an NCMEC XML and a VICS 2.0 JSON file of `--records`
  records each (default 1,000,000; md5 + sha1 per record).

Targets at N = 10,000,000: SQLite <= 60 s, PostgreSQL <= 120 s, ratio <= 1.5, RSS <=
1 GB, <= 150 bytes per entry, matchable <= 10 s; NCMEC and VICS <= 60 s at 1,000,000.
`targets` gives each target scaled to this run's sizes (linear in N, except RSS and
bytes per entry) and whether it was met. Prints ONE JSON line.

Every timing has its CPU seconds beside it (`*_cpu_s`; the machine is shared).

Usage: python bench/exchange.py [--n 10000000] [--records 1000000] [--postgres URL]
       [--no-tx] [--keep PATH] [--only txt|ncmec|vics]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

RIDGELINE = [sys.executable, "-c", "import sys; from ridgeline.cli import main; sys.exit(main())"]


def make_document(n: int, seed: int = 1) -> bytes:
    """An NCMEC `queryResult` with n image entries of random hex digests."""
    rng = random.Random(seed)
    parts = ['<queryResult xmlns="https://hashsharing.ncmec.org/npo/v2/">']
    parts.append(f'<images count="{n}" maxTimestamp="2026-01-01T00:00:00Z">')
    for i in range(n):
        md5, sha1 = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(160):040x}"
        parts.append(
            f'<image><id>b{i}</id><member id="1">Bench</member>'
            f"<timestamp>2026-01-01T00:00:00Z</timestamp><classification>A1</classification>"
            f"<fingerprints><md5>{md5}</md5><sha1>{sha1}</sha1></fingerprints></image>"
        )
    parts.append("</images></queryResult>")
    return "".join(parts).encode()


def make_vics(n: int, seed: int = 3) -> bytes:
    """A VICS 2.0 `#Media` file of n records of category 1 with md5 and sha1."""
    rng = random.Random(seed)
    media = ",".join(
        f'{{"MediaID":{i},"Category":1,"MD5":"{rng.getrandbits(128):032X}",'
        f'"SHA1":"{rng.getrandbits(160):040X}","DateUpdated":"2026-01-01T00:00:00Z"}}'
        for i in range(n)
    )
    context = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media"
    return f'{{"@odata.context":"{context}","value":[{media}]}}'.encode()


def write_pdq(path: Path, n: int, seed: int = 2) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for start in range(0, n, 100_000):
            fh.write(
                "".join(f"{rng.getrandbits(256):064x}\n" for _ in range(min(100_000, n - start)))
            )


def run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command in a child whose own peak RSS is read back (`/usr/bin/time`-like)."""
    script = (
        "import os, resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "e = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "r, c = u.ru_maxrss / 1024, u.ru_utime + u.ru_stime\n"
        "sys.stderr.write(p.stderr.decode()[-3000:])\n"
        "out = {'s': e, 'cpu': c, 'rss': r, 'rc': p.returncode, 'out': p.stdout.decode()}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *cmd],
        capture_output=True,
        env={**os.environ, **(env or {})},
        check=True,
    )
    result = json.loads(done.stdout)
    if result["rc"] not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed ({result['rc']}): {done.stderr.decode()}")
    return {
        "s": round(result["s"], 2),
        "cpu_s": round(result["cpu"], 2),
        "rss_mb": round(result["rss"], 1),
        "out": result["out"],
    }


def anchor_sqlite(db: Path, txt: Path) -> tuple[float, float]:
    """Plain sqlite3: the file's lines as an entry row and a hash row each, one index."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, list_id INTEGER)")
    con.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, entry_id INTEGER, signal TEXT, v TEXT)")
    con.execute("CREATE INDEX s_v ON s (signal, v)")
    t, c = time.perf_counter(), time.process_time()
    con.execute("BEGIN")
    with txt.open() as fh:
        hashes = [line.strip() for line in fh]
    con.executemany("INSERT INTO e (id, list_id) VALUES (?, 1)", ((i,) for i in range(len(hashes))))
    con.executemany("INSERT INTO s (entry_id, signal, v) VALUES (?, 'pdq', ?)", enumerate(hashes))
    con.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return elapsed, cpu


def dbstat(db: Path, n: int) -> tuple[float, dict[str, float]]:
    """Bytes per entry of the whole file and of each table/index (SQLite `dbstat`)."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = con.execute(
        "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
    ).fetchall()
    con.close()
    per = {name: round(size / n, 1) for name, size in rows if size / n >= 0.5}
    return round(db.stat().st_size / n, 1), per


def fresh_pg(base: str, name: str) -> str:
    admin_url = make_url(base)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)


def drop_pg(base: str, name: str) -> None:
    admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def ridgeline_import(db: str, name: str, path: Path, *extra: str) -> dict[str, Any]:
    subprocess.run(
        [*RIDGELINE, "lists", "create", name, "--db", db], check=True, capture_output=True
    )
    out = run([*RIDGELINE, "lists", "import", name, str(path), "--db", db, "--output", "json",
               *extra])  # fmt: skip
    report = json.loads(out["out"])
    return {"s": out["s"], "cpu_s": out["cpu_s"], "rss_mb": out["rss_mb"], "added": report["added"]}


def matchable(db: str) -> tuple[float, float, int]:
    """Wall and CPU seconds (all threads) of making the list matchable, and how many
    rows came from the import's pack (`ridgeline.index.pack`) rather than SQL."""
    script = (
        "import sys, time\n"
        "from ridgeline.store import Store\n"
        "from ridgeline.index.match import MatchIndex\n"
        "store = Store.open(sys.argv[1], create=False)\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "index = MatchIndex.open(store)\n"
        "index.load(['pdq'])\n"
        "print(time.perf_counter() - t, time.process_time() - c, index.from_packs.get('pdq', 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, db], capture_output=True, check=True)
    wall, cpu, packed = done.stdout.split()
    return round(float(wall), 2), round(float(cpu), 2), int(packed)


def tx_fetch(d: Path, txt: Path) -> dict[str, Any]:
    """python-threatexchange's local-file collaboration loading the same file."""
    env = {"TX_STATEDIR": str(d / "tx-state")}
    tx = [sys.executable, "-m", "threatexchange.cli.main"]
    subprocess.run(
        [*tx, "config", "collab", "edit", "local_file", "-C", "--filename", str(txt),
         "--signal-type", "pdq", "bench"],
        check=True, capture_output=True, env={**os.environ, **env},
    )  # fmt: skip
    out = run([*tx, "fetch"], env)
    return {"s": out["s"], "rss_mb": out["rss_mb"]}


def vics_part(d: Path, records: int, out: dict[str, Any], postgres: str | None = None) -> None:
    """A VICS 2.0 import into SQLite (and PostgreSQL when given); CPU seconds too."""
    vics = d / "vics.json"
    vics.write_bytes(make_vics(records))
    got = ridgeline_import(str(d / "v.db"), "vics", vics, "--format", "vics")
    assert got["added"] == records, got
    out["vics_import_s"], out["vics_import_rss_mb"] = got["s"], got["rss_mb"]
    out["vics_import_cpu_s"] = got["cpu_s"]
    if postgres:
        name = f"ridgeline_bench_vics_{os.getpid()}"
        try:
            got = ridgeline_import(fresh_pg(postgres, name), "vics", vics, "--format", "vics")
            assert got["added"] == records, got
            out["pg_vics_import_s"], out["pg_vics_import_cpu_s"] = got["s"], got["cpu_s"]
            out["pg_vics_import_rss_mb"] = got["rss_mb"]
        finally:
            drop_pg(postgres, name)
    vics.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000_000, help="PDQ hashes in the txt")
    parser.add_argument("--records", type=int, default=1_000_000, help="NCMEC/VICS records")
    parser.add_argument("--postgres", default=None, help="server URL; a scratch database is made")
    parser.add_argument("--no-tx", action="store_true", help="skip the threatexchange anchor")
    parser.add_argument("--keep", default=None, help="move the imported SQLite file here")
    parser.add_argument(
        "--only",
        choices=("txt", "ncmec", "vics"),
        default=None,
        help="run one part (txt: the PDQ import and its anchors); --postgres adds its import",
    )
    args = parser.parse_args()
    n = args.n
    out: dict[str, Any] = {"bench": "exchange", "n": n, "records": args.records}
    out["load_start"] = round(os.getloadavg()[0], 1)  # the machine is shared
    parts = {args.only} if args.only else {"txt", "ncmec", "vics"}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if "txt" in parts:
            _txt(out, d, n, args)
        if "ncmec" in parts:
            _ncmec(out, d, args)
        if "vics" in parts:
            vics_part(d, args.records, out, args.postgres)
    out["load_end"] = round(os.getloadavg()[0], 1)
    scale, rscale = n / 10_000_000, args.records / 1_000_000
    checks = {
        "sqlite_import_s": (out.get("sqlite_import_s"), 60 * scale),
        "ratio_to_anchor": (out.get("ratio_to_anchor"), 1.5),
        "sqlite_import_rss_mb": (out.get("sqlite_import_rss_mb"), 1024),
        "sqlite_bytes_per_entry": (out.get("sqlite_bytes_per_entry"), 150),
        "matchable_s": (out.get("matchable_s"), 10 * scale),
        "ncmec_import_s": (out.get("ncmec_import_s"), 60 * rscale),
        "ncmec_import_rss_mb": (out.get("ncmec_import_rss_mb"), 1024),
        "vics_import_s": (out.get("vics_import_s"), 60 * rscale),
        "pg_import_s": (out.get("pg_import_s"), 120 * scale),
        "pg_import_rss_mb": (out.get("pg_import_rss_mb"), 1024),
        "pg_ncmec_import_s": (out.get("pg_ncmec_import_s"), 120 * rscale),
        "pg_ncmec_import_rss_mb": (out.get("pg_ncmec_import_rss_mb"), 1024),
    }
    out["targets"] = {
        k: {"limit": round(lim, 2), "met": v <= lim}
        for k, (v, lim) in checks.items()
        if v is not None
    }
    print(json.dumps(out))


def _ncmec(out: dict[str, Any], d: Path, args: argparse.Namespace) -> None:
    """NCMEC XML of `--records` entries into SQLite (and PostgreSQL with `--postgres`)."""
    xml = d / "ncmec.xml"
    xml.write_bytes(make_document(args.records))
    got = ridgeline_import(str(d / "x.db"), "ncmec", xml, "--format", "ncmec-xml")
    assert got["added"] == args.records, got
    out["ncmec_import_s"], out["ncmec_import_rss_mb"] = got["s"], got["rss_mb"]
    out["ncmec_import_cpu_s"] = got["cpu_s"]
    if args.postgres:
        name = f"ridgeline_bench_exchange_ncmec_{os.getpid()}"
        try:
            url = fresh_pg(args.postgres, name)
            got = ridgeline_import(url, "ncmec", xml, "--format", "ncmec-xml")
            assert got["added"] == args.records, got
            out["pg_ncmec_import_s"], out["pg_ncmec_import_rss_mb"] = got["s"], got["rss_mb"]
            out["pg_ncmec_import_cpu_s"] = got["cpu_s"]
        finally:
            drop_pg(args.postgres, name)
    xml.unlink()


def _txt(out: dict[str, Any], d: Path, n: int, args: argparse.Namespace) -> None:
    """The PDQ txt import, its sqlite3 anchor, matchable, threatexchange, PostgreSQL."""
    txt = d / "pdq.txt"
    write_pdq(txt, n)
    wall, cpu = anchor_sqlite(d / "anchor.db", txt)
    out["anchor_executemany_s"], out["anchor_executemany_cpu_s"] = round(wall, 2), round(cpu, 2)
    out["anchor_bytes_per_entry"] = dbstat(d / "anchor.db", n)[0]
    (d / "anchor.db").unlink()
    db = str(d / "r.db")
    got = ridgeline_import(db, "pdq", txt, "--signal", "pdq")
    assert got["added"] == n, got
    out["sqlite_import_s"], out["sqlite_import_rss_mb"] = got["s"], got["rss_mb"]
    out["sqlite_import_cpu_s"] = got["cpu_s"]
    out["ratio_to_anchor"] = round(got["s"] / out["anchor_executemany_s"], 2)
    out["sqlite_bytes_per_entry"], out["sqlite_bytes_by_object"] = dbstat(Path(db), n)
    pack_bytes = sum(p.stat().st_size for p in Path(db + ".index").glob("packs/*.rlpack"))
    out["sqlite_pack_bytes_per_entry"] = round(pack_bytes / n, 1)  # beside the file, until built
    out["matchable_s"], out["matchable_cpu_s"], out["matchable_from_pack"] = matchable(db)
    if args.keep:  # for profiling the index build on the same database afterwards
        os.replace(db, args.keep)
    if not args.no_tx:
        tx = tx_fetch(d, txt)
        out["tx_fetch_s"], out["tx_fetch_rss_mb"] = tx["s"], tx["rss_mb"]
    if args.postgres:
        name = f"ridgeline_bench_exchange_{os.getpid()}"  # benches may run at once
        try:
            got = ridgeline_import(fresh_pg(args.postgres, name), "pdq", txt, "--signal", "pdq")
            assert got["added"] == n, got
            out["pg_import_s"], out["pg_import_rss_mb"] = got["s"], got["rss_mb"]
            out["pg_import_cpu_s"] = got["cpu_s"]
        finally:
            drop_pg(args.postgres, name)
    txt.unlink()


if __name__ == "__main__":
    main()
