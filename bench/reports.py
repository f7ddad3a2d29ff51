"""CyberTipline report throughput: validate + serialise rich reports, one core.

Builds N synthetic rich reports (samples.rich_report: most of the schema filled in,
about 90 elements each), then times in this process, single-threaded:
- `validate_serialise_per_s`: `validate_report` (schema rules and NCMEC's extra rules)
  plus `report_to_xml` (schema order) per report — the target is 10,000/s/core;
- `validate_per_s` and `serialise_per_s` separately;
- `etree_anchor_per_s`: plain xml.etree building and serialising the same documents
  from their JSON dicts (no validation), as a reference point for the machine;
- `parse_per_s`: reading the XML back into typed objects (structure checked);
- what a `report` action adds to a hit (the target is <= 1 ms): a scan hit and a
  `/v1/match` upload hit on a list with the `report` action minus the same hit on a
  list with `flag` only, same run, alternating (`scan_report_adds_ms`,
  `match_report_adds_ms`, wall clock per hit; `..._cpu_ms` in this process's CPU
  time; `draft_adds_ms_max` the larger of the two wall-clock figures), beside the
  hit's own cost without a draft (`scan_hit_ms`, `match_hit_ms`). SQLite file store.
Rates are per second of this process's CPU time (`time.process_time`), so they are
per core and do not drop when other processes share the machine; the main rate is
also given per wall-clock second (`validate_serialise_wall_per_s`). Prints ONE JSON line.

Usage: python bench/reports.py [--reports 20000] [--hits 300] [--rounds 3]
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


def _hit_files(folder: Any, prefix: str, count: int) -> list[bytes]:
    """`count` distinct benign files (1 KiB of text) in `folder`; their bytes."""
    folder.mkdir()
    out = []
    for i in range(count):
        data = (f"{prefix} benign bench file {i}\n" * 40).encode()[:1024]
        (folder / f"{prefix}{i:05d}.txt").write_bytes(data)
        out.append(data)
    return out


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _drafts(count: int, rounds: int) -> dict[str, object]:
    """What a `report` action adds to a hit, measured as a hit with it minus a hit
    without it, in the same run, on the same machine state:

    - scan: `scan()` (one job, in this process) of `count` matching files on a list
      whose action is `flag`, then of `count` files on a list whose action is
      `report` (a CyberTipline draft with the file encrypted), alternating for
      `rounds` rounds; per hit, the median round's difference, in wall and CPU time;
    - /v1/match: uploads through the whole app in this process (Starlette's test
      client: routing, multipart, hashing, matching, the draft's transaction), one
      request per file, alternating a file on the `flag` list and one on the `report`
      list; per hit, the difference of the medians, wall and CPU time.
    """
    import hashlib
    import tempfile
    from pathlib import Path

    from starlette.testclient import TestClient

    from ridgeline import lists as L
    from ridgeline.evidence import generate_key_file
    from ridgeline.reports.drafts import ReportSink
    from ridgeline.scan.actions import set_list_actions
    from ridgeline.scan.flood import FloodPolicy
    from ridgeline.scan.pipeline import ScanOptions, scan
    from ridgeline.service.app import ServiceConfig, create_app
    from ridgeline.service.keys import create_key
    from ridgeline.store import Store

    out: dict[str, object] = {"hits": count, "rounds": rounds}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key_file = root / "evidence.key"
        key = generate_key_file(key_file)
        flagged = _hit_files(root / "flagged", "f", count)
        reported = _hit_files(root / "reported", "r", count)
        up_flag = [d.replace(b"benign", b"upload", 1) for d in flagged]
        up_rep = [d.replace(b"benign", b"upload", 1) for d in reported]
        store = Store.open(root / "bench.db")
        with store.session() as s:
            for name, files, actions in (
                ("flagged", flagged + up_flag, ["flag"]),
                ("reported", reported + up_rep, ["report"]),
            ):
                hl = L.create_list(s, name)
                for data in files:
                    L.add_entry(s, hl, {"md5": hashlib.md5(data).hexdigest()})
                set_list_actions(s, name, actions)
            _, token = create_key(s, "bench", "provider", rate_limit=1e9)
        sink = ReportSink(key, actor="scan")
        flood = FloodPolicy(max_matches=10**9)
        wall: dict[str, list[float]] = {"flag": [], "report": []}
        cpu: dict[str, list[float]] = {"flag": [], "report": []}
        for _ in range(rounds):
            for kind, folder, lists in (
                ("flag", root / "flagged", ["flagged"]),
                ("report", root / "reported", ["reported"]),
            ):
                options = ScanOptions(lists=lists, report_sink=sink, flood=flood)
                t, c = time.perf_counter(), time.process_time()
                summary = scan(store, [folder], options)
                wall[kind].append((time.perf_counter() - t) / count)
                cpu[kind].append((time.process_time() - c) / count)
                assert summary.matched == count, summary
                assert summary.reports == (count if kind == "report" else 0), summary
        diffs = [r - f for f, r in zip(wall["flag"], wall["report"], strict=True)]
        cdiffs = [r - f for f, r in zip(cpu["flag"], cpu["report"], strict=True)]
        out["scan_hit_ms"] = round(_median(wall["flag"]) * 1e3, 3)
        out["scan_report_adds_ms"] = round(_median(diffs) * 1e3, 3)
        out["scan_report_adds_cpu_ms"] = round(_median(cdiffs) * 1e3, 3)

        config = ServiceConfig(db=store.url, evidence_key_file=str(key_file), access_log=False)
        app = create_app(config, store)
        headers = {"Authorization": f"Bearer {token}"}
        lat: dict[str, list[float]] = {"flag": [], "report": []}
        lcpu: dict[str, list[float]] = {"flag": [], "report": []}
        with TestClient(app) as client:
            for warm in up_flag[:20]:  # warm up: caches, first connection, first draft
                client.post("/v1/match", files={"file": ("w.txt", warm)}, headers=headers)
            for _ in range(rounds):
                for kind, data in [
                    pair for f, r in zip(up_flag, up_rep, strict=True)
                    for pair in (("flag", f), ("report", r))
                ]:  # fmt: skip
                    t, c = time.perf_counter(), time.process_time()
                    res = client.post("/v1/match", files={"file": ("u.txt", data)}, headers=headers)
                    lat[kind].append(time.perf_counter() - t)
                    lcpu[kind].append(time.process_time() - c)
                    acted = [a["action"] for a in res.json()["actions"]]
                    assert acted == (["report"] if kind == "report" else []), res.text
        out["match_hit_ms"] = round(_median(lat["flag"]) * 1e3, 3)
        out["match_report_adds_ms"] = round(
            (_median(lat["report"]) - _median(lat["flag"])) * 1e3, 3
        )
        out["match_report_adds_cpu_ms"] = round(
            (_median(lcpu["report"]) - _median(lcpu["flag"])) * 1e3, 3
        )
        store.close()
    out["draft_adds_ms_max"] = max(
        float(str(out["scan_report_adds_ms"])), float(str(out["match_report_adds_ms"]))
    )
    return out


def rate(count: int, seconds: float) -> int:
    return round(count / seconds) if seconds > 0 else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=20000)
    parser.add_argument("--hits", type=int, default=300, help="Hits per kind and round.")
    parser.add_argument("--rounds", type=int, default=3)
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
    out.update(_drafts(args.hits, args.rounds))
    out["xml_bytes"] = len(xml[0])
    out["elements"] = sum(1 for _ in ET.fromstring(xml[0]).iter())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
