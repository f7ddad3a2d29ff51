"""CyberTipline report throughput: validate + serialise rich reports, one core.

Builds N synthetic rich reports (samples.rich_report: most of the schema filled in,
about 90 elements each), then times in this process, single-threaded:
- `validate_serialise_per_s`: `validate_report` (schema rules and NCMEC's extra rules)
  plus `report_to_xml` (schema order) per report — the target is 10,000/s/core;
- `validate_per_s` and `serialise_per_s` separately;
- `etree_anchor_per_s`: plain xml.etree building and serialising the same documents
  from their JSON dicts (no validation), as a reference point for the machine;
- `parse_per_s`: reading the XML back into typed objects (structure checked).
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
    out["xml_bytes"] = len(xml[0])
    out["elements"] = sum(1 for _ in ET.fromstring(xml[0]).iter())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
