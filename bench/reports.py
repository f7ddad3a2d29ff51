"""CyberTipline report throughput: validate + serialise rich reports, one core.

Builds N synthetic rich reports (samples.rich_report: most of the schema filled in,
about 90 elements each), then times in this process, single-threaded:
- `validate_serialise_per_s`: `validate_report` (schema rules and NCMEC's extra rules)
  plus `report_to_xml` (schema order) per report — the target is 10,000/s/core;
- `validate_per_s` and `serialise_per_s` separately;
- `etree_anchor_per_s`: plain xml.etree building and serialising the same documents
  from their JSON dicts (no validation), as a reference point for the machine;
- `parse_per_s`: reading the XML back into typed objects (structure checked);
- `draft_build_us`: building and validating a draft for one matched file (CPU);
  `draft_in_txn_ms`: storing it with its encrypted file inside the caller's
  transaction (as a scan writes its results; `draft_in_txn_cpu_ms` in CPU time) and
  `draft_own_txn_ms`: one SQLite
  transaction (and commit) per draft; wall clock — the target is <= 1 ms per hit.
Rates are per second of this process's CPU time (`time.process_time`), so they are
per core and do not drop when other processes share the machine; the main rate is
also given per wall-clock second (`validate_serialise_wall_per_s`). Prints ONE JSON line.

Usage: python bench/reports.py [--reports 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import xml.etree.ElementTree as ET
from typing import Any

from ridgeline.reports import documents as docs
from ridgeline.reports import samples


def _etree(tag: str, value: Any, parent: ET.Element | None) -> ET.Element:
    node = ET.Element(tag) if parent is None else ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "value":
                node.text = str(child)
            elif isinstance(child, list):
                for item in child:
                    _etree(key, item, node)
            elif isinstance(child, dict):
                _etree(key, child, node)
            else:
                _etree(key, child, node)
    else:
        node.text = str(value)
    return node


def _drafts(count: int) -> dict[str, object]:
    """Cost of a report draft for a scan or /v1/match hit: building and validating the
    draft alone, and storing it (one SQLite transaction each, file encrypted)."""
    import datetime as dt
    import tempfile
    from pathlib import Path

    from ridgeline.evidence import EvidenceKey
    from ridgeline.reports import core, drafts
    from ridgeline.store import Store

    key = EvidenceKey(bytes(range(32)))
    context = drafts.UploadContext(
        user_id="uid-1",
        emails=("user@example.com",),
        ips=(drafts.IpEvent("192.0.2.1", "Upload", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),),
    )
    hits = [
        drafts.DraftInput(
            [
                drafts.MatchedFile(
                    name=f"f{i}.jpg",
                    hashes={"md5": f"{i:032x}", "sha256": f"{i:064x}"},
                    matches=(drafts.MatchedEntry("known", i, "md5", 0, (("industry", "A1"),)),),
                    data=b"benign bench bytes %d" % i,
                )
            ],
            context,
        )
        for i in range(count)
    ]
    t = time.process_time()
    for d in hits:
        report = drafts.report_for(d)
        core.check_all(report, [drafts.file_details_for(f, d.context) for f in d.files])
    build_us = (time.process_time() - t) / count * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "bench.db")
        t = time.perf_counter()
        for d in hits:
            with store.session() as session:
                drafts.draft_from_matches(session, d, key)
        own_ms = (time.perf_counter() - t) / count * 1e3
        t, cpu = time.perf_counter(), time.process_time()
        with store.session() as session:  # inside the caller's transaction, as scan does
            for d in hits:
                drafts.draft_from_matches(session, d, key)
        in_ms = (time.perf_counter() - t) / count * 1e3
        in_cpu_ms = (time.process_time() - cpu) / count * 1e3
        store.close()
    return {
        "draft_build_us": round(build_us, 1),
        "draft_in_txn_ms": round(in_ms, 3),
        "draft_in_txn_cpu_ms": round(in_cpu_ms, 3),
        "draft_own_txn_ms": round(own_ms, 3),
    }


def rate(count: int, seconds: float) -> int:
    return round(count / seconds) if seconds > 0 else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=20000)
    args = parser.parse_args()
    n = args.reports
    reports = [samples.rich_report(i) for i in range(n)]
    dicts = [docs.to_json(r) for r in reports]
    out: dict[str, object] = {"bench": "reports", "reports": n, "cpus": os.cpu_count()}
    for r in reports[:200]:  # warm up: generate the per-type functions, fill caches
        docs.validate_report(r)
        docs.report_to_xml(r)

    t, wall = time.process_time(), time.perf_counter()
    for r in reports:
        if docs.errors(docs.validate_report(r)):
            raise SystemExit("a sample report does not validate")
        docs.report_to_xml(r)
    out["validate_serialise_per_s"] = rate(n, time.process_time() - t)
    out["validate_serialise_wall_per_s"] = rate(n, time.perf_counter() - wall)

    t = time.process_time()
    for r in reports:
        docs.validate_report(r)
    out["validate_per_s"] = rate(n, time.process_time() - t)

    t = time.process_time()
    xml = [docs.report_to_xml(r) for r in reports]
    out["serialise_per_s"] = rate(n, time.process_time() - t)

    t = time.process_time()
    for d in dicts:
        ET.tostring(_etree("report", d, None), encoding="utf-8")
    out["etree_anchor_per_s"] = rate(n, time.process_time() - t)

    t = time.process_time()
    for data in xml[: max(1, n // 4)]:
        docs.report_from_xml(data)
    out["parse_per_s"] = rate(max(1, n // 4), time.process_time() - t)
    out.update(_drafts(max(50, n // 100)))
    out["xml_bytes"] = len(xml[0])
    out["elements"] = sum(1 for _ in ET.fromstring(xml[0]).iter())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
