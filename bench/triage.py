"""Benchmark triage and routing, the part of the intake pipeline they own; one JSON line.

    .venv/bin/python bench/triage.py                  # 100,000 reports, SQLite
    .venv/bin/python bench/triage.py --pg postgresql://postgres@127.0.0.1:5432/test
                                     # and the same on a fresh PostgreSQL database
    .venv/bin/python bench/triage.py --n 20000 --db postgresql://...   # that database

Synthetic reports (documentation IPs, example.com addresses; a MaxMind-format city
database written here for the documentation ranges) are stored as received reports
first (not timed: that is intake's part), then timed: `gather_facts` (list lookups of
every file hash against a list of 10,000 entries), `assess`, `record_many`, `route`
and `routing.record_many`, in chunks of 2,000 as intake calls them. The anchor is a
plain bulk INSERT of the same number of rows into the triage table's shape in the same
run, so the ratio says how much of the time is the rules rather than the database.
Budget (issue 13): the whole intake of 100,000 reports in <= 60 s on SQLite and
<= 120 s on PostgreSQL; `budget_share` is the share of that budget triage and routing
take (scaled to 100,000). With `--pg` the line has a `postgresql` object with the same
fields, measured in the same run after SQLite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, insert

from ridgeline import routing, triage
from ridgeline.lists.core import NewEntry, create_list, insert_entries, start_import
from ridgeline.reports.documents import to_json
from ridgeline.reports.model import (
    Address,
    Email,
    FileDetails,
    IncidentSummary,
    IpCaptureEvent,
    OriginalFileHash,
    Person,
    PersonOrUserReported,
    Report,
    ReportAnnotations,
    Reporter,
    Victim,
)
from ridgeline.reports.models import ReceivedReport
from ridgeline.store import Store

TYPES = (
    "Child Pornography (possession, manufacture, and distribution)",
    "Online Enticement of Children for Sexual Acts",
    "Child Sex Trafficking",
)
STATES = ("TX", "CA", "NY", "WA", "FL")


def synth(i: int, t0: dt.datetime) -> tuple[Report, list[FileDetails]]:
    ip = f"192.0.2.{i % 250 + 1}" if i % 3 else f"198.51.100.{i % 250 + 1}"
    report = Report(
        incident_summary=IncidentSummary(
            incident_type=TYPES[i % 7 % 3],
            incident_date_time=t0 - dt.timedelta(days=i % 40),
            escalate_to_high_priority="imminent meeting" if i % 97 == 0 else None,
            report_annotations=ReportAnnotations(sextortion=True) if i % 13 == 0 else None,
        ),
        reporter=Reporter(reporting_person=Person(emails=(Email(value="desk@esp.example.com"),))),
        persons_reported=(
            PersonOrUserReported(
                person=Person(
                    emails=(Email(value=f"user{i}@example.com"),),
                    addresses=(Address(state=STATES[i % 5], country="US"),) if i % 2 else (),
                ),
                screen_name=f"user{i}",
                ip_capture_events=(IpCaptureEvent(ip_address=ip, event_name="Login"),),
            ),
        ),
        victims=(Victim(person=Person(age=8 + i % 9)),) if i % 5 == 0 else (),
    )
    files = [
        FileDetails(
            file_viewed_by_esp=bool(i % 2),
            original_file_hashes=(
                OriginalFileHash(value=f"{(i * 3 + k) % 200_000:064x}", hash_type="SHA256"),
            ),
        )
        for k in range(2)
    ]
    return report, files


def city_db(path: Path) -> Path:
    w = MMDBWriter(ip_version=6, database_type="Bench-City", ipv4_compatible=True)
    w.insert_network(
        IPSet(["192.0.2.0/24"]),
        {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "TX"}]},
    )
    w.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "GB"}})
    w.to_db_file(str(path))
    return path


BUDGET_S = {"sqlite": 60.0, "postgresql": 120.0}


def run(store: Store, n: int, chunk_size: int, tmp: Path) -> dict[str, Any]:
    """Fill `store` with n received reports, then time triage and routing of them."""
    t0 = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    args = argparse.Namespace(n=n, chunk=chunk_size)
    with store.session() as s:
        hl = create_list(s, "bench-known")
        batch = start_import(s, hl, batch="bench", fmt="txt", status="confirmed", actor="bench")
        insert_entries(
            s, hl, batch, [NewEntry({"sha256": f"{k * 20:064x}"}) for k in range(10_000)]
        )
        routing.import_rules(
            s,
            [routing.Rule("US", st, f"{st} ICAC") for st in STATES]
            + [routing.Rule("GB", None, "UK NCA CEOP")],
            fallback="International desk",
        )
    docs = [synth(i, t0) for i in range(args.n)]
    ids: list[int] = []
    with store.session() as s:
        for start in range(0, args.n, 5000):
            chunk = docs[start : start + 5000]
            rows = [
                {
                    "source": "bench",
                    "idempotency_key": f"bench:{start + j}",
                    "sha256": "0" * 64,
                    "received_at": t0,
                    "format": "json",
                    "document": {"report": to_json(r), "files": [to_json(f) for f in fs]},
                    "incident_type": r.incident_summary.incident_type
                    if r.incident_summary
                    else None,
                    "file_count": len(fs),
                    "warnings": [],
                }
                for j, (r, fs) in enumerate(chunk)
            ]
            ids += list(s.scalars(insert(ReceivedReport).returning(ReceivedReport.id), rows))
    rules = triage.default_rules()
    geo = routing.Geolocator(city_db(tmp / f"city-{uuid.uuid4().hex[:6]}.mmdb"))
    start = time.perf_counter()
    cpu0 = time.process_time()
    phases = {"facts": 0.0, "assess": 0.0, "route": 0.0, "store": 0.0}
    with store.session() as s:
        table = routing.load_table(s)
        for c in range(0, args.n, args.chunk):
            part = docs[c : c + args.chunk]
            pid = ids[c : c + args.chunk]
            a = time.perf_counter()
            items = [triage.Item(r, fs, t0) for r, fs in part]
            facts = triage.gather_facts(s, items, store=store)
            b = time.perf_counter()
            assessed = [
                triage.assess(r, fs, f, rules) for (r, fs), f in zip(part, facts, strict=True)
            ]
            d = time.perf_counter()
            routed = [routing.route(r, fs, table, geo) for r, fs in part]
            e = time.perf_counter()
            triage.record_many(s, [(i, t0, x) for i, x in zip(pid, assessed, strict=True)])
            routing.record_many(s, list(zip(pid, routed, strict=True)))
            f_ = time.perf_counter()
            phases["facts"] += b - a
            phases["assess"] += d - b
            phases["route"] += e - d
            phases["store"] += f_ - e
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    # anchor: a bare bulk insert of the same number of rows, same shape, same backend
    anchor_table = Table(
        "bench_anchor",
        MetaData(),
        Column("report_id", Integer, primary_key=True, autoincrement=False),
        Column("priority", Integer),
        Column("reasons", Text),
        Column("at", DateTime(timezone=True)),
    )
    anchor_table.create(store.engine)
    a0 = time.perf_counter()
    with store.engine.begin() as conn:
        for c in range(0, args.n, 5000):
            conn.execute(
                anchor_table.insert(),
                [
                    {"report_id": i, "priority": 3, "reasons": '[{"rule":"default"}]', "at": t0}
                    for i in ids[c : c + 5000]
                ],
            )
    anchor = time.perf_counter() - a0
    with store.session() as s:
        queue_top = [r.priority for r in triage.queue(s, limit=5)]
    backend = store.engine.dialect.name
    return {
        "backend": backend,
        "reports": args.n,
        "seconds": round(total, 2),
        "reports_per_s": round(args.n / total),
        "cpu_seconds": round(cpu, 2),
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "anchor_bulk_insert_s": round(anchor, 2),
        "ratio_to_anchor": round(total / anchor, 1) if anchor else None,
        "budget_share": round(total * 100_000 / args.n / BUDGET_S.get(backend, 60.0), 3),
        "queue_top_priorities": queue_top,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--db", default=None, help="run on this database only")
    ap.add_argument("--pg", default=None, help="also run on a fresh database of this server")
    ap.add_argument("--chunk", type=int, default=2000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-triage-"))
    store = Store.open(args.db or tmp / "bench.db")
    try:
        out: dict[str, Any] = {"bench": "triage", **run(store, args.n, args.chunk, tmp)}
    finally:
        store.close()
    if args.pg and not args.db:
        from exchange import drop_pg, fresh_pg  # bench/exchange.py, beside this file

        name = f"ridgeline_bench_triage_{uuid.uuid4().hex[:8]}"
        pg = Store.open(fresh_pg(args.pg, name))
        try:
            out["postgresql"] = run(pg, args.n, args.chunk, tmp)
        finally:
            pg.close()
            drop_pg(args.pg, name)
    out["load_avg"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
