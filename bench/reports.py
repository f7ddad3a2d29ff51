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
  `/v1/match` upload hit on a list with the `report` action minus a hit on a list
  with `flag` only, interleaved hit by hit in the same run (medians;
  `scan_report_adds_ms`, `match_report_adds_ms` in wall-clock time per hit,
  `..._cpu_ms` in this process's CPU time), beside a hit's own cost without a draft
  (`scan_hit_ms`, `match_hit_ms`); and two harder `/v1/match` cases:
  `match_report_ctx_adds_ms`, each upload with its own context (user id, screen name,
  email, IP capture event: a different report document every time, so nothing about
  it can be reused from the previous draft), and `match_report_blocks_adds_ms`, a
  block of report hits against a block of flag hits (not interleaved: each report hit
  then also pays for re-reading the pages the previous draft's commit changed, which
  in the interleaved runs falls on the flag hit after it). `draft_adds_ms_max` is the
  largest of these wall-clock figures. SQLite file store; the draft carries the 1 KiB
  file encrypted.
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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _benign(tag: str, i: int) -> bytes:
    """1 KiB of benign text, distinct per tag and number."""
    return (f"{tag} benign bench file {i}\n" * 60).encode()[:1024]


def _drafts(count: int, rounds: int) -> dict[str, object]:
    """What a `report` action adds to a hit: a hit on a list whose action is `report`
    minus a hit on a list whose action is `flag`, interleaved one by one in the same
    run, so that whatever else the machine does falls on both alike:

    - scan: one `scan()` (one job, in this process) of a folder where matching files
      of the two lists alternate; a hit's cost is the time from the previous file's
      result to its own (hash, match, record, act: the draft with its file encrypted,
      in the hit's transaction); per hit, the median `report` hit minus the median
      `flag` hit, wall and CPU time, over `rounds` scans of `count` files of each;
    - /v1/match: uploads through the whole app in this process (Starlette's test
      client: routing, multipart, hashing, matching, the draft's transaction),
      alternating a file on the `flag` list and one on the `report` list; per hit,
      the median `report` request minus the median `flag` request.
    """
    import hashlib
    import tempfile
    from pathlib import Path

    from sqlalchemy import select
    from starlette.testclient import TestClient

    from ridgeline import lists as L
    from ridgeline.evidence import generate_key_file
    from ridgeline.reports.drafts import ReportSink
    from ridgeline.scan.actions import ReportRequest, set_list_actions
    from ridgeline.scan.flood import FloodPolicy
    from ridgeline.scan.models import ScanFile
    from ridgeline.scan.pipeline import ScanOptions, scan
    from ridgeline.service.app import ServiceConfig, create_app
    from ridgeline.service.keys import create_key
    from ridgeline.store import Store

    out: dict[str, object] = {"hits": count, "rounds": rounds}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key_file = root / "evidence.key"
        key = generate_key_file(key_file)
        folder = root / "uploads"
        folder.mkdir()
        kinds: dict[str, str] = {}
        scanned: dict[str, list[bytes]] = {"flag": [], "report": []}
        for i in range(count):
            for kind in ("flag", "report"):
                data = _benign(kind, i)
                path = folder / f"{i:05d}-{kind}.txt"  # walk order: flag, report, flag, ...
                path.write_bytes(data)
                kinds[str(path)] = kind
                scanned[kind].append(data)
        uploads = {k: [_benign("upload " + k, i) for i in range(count)] for k in scanned}
        passes = ("ctx", "blocks")
        more = {(p, k): [_benign(f"{p} {k}", i) for i in range(count * rounds)]
                for p in passes for k in scanned}  # fmt: skip
        store = Store.open(root / "bench.db")
        with store.session() as s:
            for kind in ("flag", "report"):
                hl = L.create_list(s, kind)
                extra = [d for p in passes for d in more[(p, kind)]]
                for data in scanned[kind] + uploads[kind] + extra:
                    L.add_entry(s, hl, {"md5": hashlib.md5(data).hexdigest()})
                set_list_actions(s, kind, [kind])
            _, token = create_key(s, "bench", "provider", rate_limit=1e9)
        options = ScanOptions(report_sink=ReportSink(key, actor="scan"),
                              flood=FloodPolicy(max_matches=10**9))  # fmt: skip
        wall: dict[str, list[float]] = {"flag": [], "report": []}
        cpu: dict[str, list[float]] = {"flag": [], "report": []}
        last = [0.0, 0.0]

        def on_result(row: dict[str, Any]) -> None:
            t, c = time.perf_counter(), time.process_time()
            kind = kinds[row["path"]]
            wall[kind].append(t - last[0])
            cpu[kind].append(c - last[1])
            acted = [a["action"] for a in row["actions"]]
            assert acted == [kind], row
            last[:] = [t, c]

        for _ in range(rounds):
            last[:] = [time.perf_counter(), time.process_time()]
            summary = scan(store, [folder], options, on_result=on_result)
            assert summary.matched == 2 * count and summary.reports == count, summary
        out["scan_hit_ms"] = round(_median(wall["flag"]) * 1e3, 3)
        out["scan_report_adds_ms"] = round(
            (_median(wall["report"]) - _median(wall["flag"])) * 1e3, 3
        )
        out["scan_report_adds_cpu_ms"] = round(
            (_median(cpu["report"]) - _median(cpu["flag"])) * 1e3, 3
        )

        config = ServiceConfig(db=store.url, evidence_key_file=str(key_file), access_log=False)
        app = create_app(config, store)
        headers = {"Authorization": f"Bearer {token}"}
        lat: dict[str, list[float]] = {"flag": [], "report": []}
        lcpu: dict[str, list[float]] = {"flag": [], "report": []}
        with TestClient(app) as client:
            for i in range(20):  # warm up: caches, the first connection
                client.post("/v1/match", files={"file": ("w.txt", _benign("warm", i))},
                            headers=headers)  # fmt: skip
            for _ in range(rounds):
                for i in range(count):
                    for kind in ("flag", "report"):
                        data = uploads[kind][i]
                        t, c = time.perf_counter(), time.process_time()
                        res = client.post(
                            "/v1/match", files={"file": ("u.txt", data)}, headers=headers
                        )
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

            def context(i: int) -> str:
                at = f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
                return json.dumps({
                    "user_id": f"uid-{i}", "screen_name": f"user{i}",
                    "emails": [f"user{i}@example.com"],
                    "ips": [{"ip": f"192.0.2.{i % 254 + 1}", "event": "Upload", "at": at}],
                })  # fmt: skip

            def hit(data: bytes, kind: str, ctx: str | None) -> tuple[float, float]:
                form = {"context": ctx} if ctx is not None else None
                t, c = time.perf_counter(), time.process_time()
                res = client.post("/v1/match", files={"file": ("u.txt", data)}, data=form,
                                  headers=headers)  # fmt: skip
                took = time.perf_counter() - t, time.process_time() - c
                acted = [a["action"] for a in res.json()["actions"]]
                assert acted == (["report"] if kind == "report" else []), res.text
                return took

            ctx_lat: dict[str, list[float]] = {"flag": [], "report": []}
            for i in range(count * rounds):
                for kind in ("flag", "report"):
                    ctx_lat[kind].append(hit(more[("ctx", kind)][i], kind, context(i))[0])
            out["match_report_ctx_adds_ms"] = round(
                (_median(ctx_lat["report"]) - _median(ctx_lat["flag"])) * 1e3, 3
            )
            block_lat: dict[str, list[float]] = {"flag": [], "report": []}
            for r in range(rounds):
                for kind in ("flag", "report"):
                    for i in range(r * count, (r + 1) * count):
                        block_lat[kind].append(hit(more[("blocks", kind)][i], kind, None)[0])
            out["match_report_blocks_adds_ms"] = round(
                (_median(block_lat["report"]) - _median(block_lat["flag"])) * 1e3, 3
            )
        # the draft alone (build, validate, encrypt, three INSERTs) in an open transaction
        sink = ReportSink(key, actor="scan")
        with store.session() as s:
            rows = list(s.scalars(select(ScanFile).where(ScanFile.matches != []).limit(count)))
            requests = [
                ReportRequest(name=Path(r.path).name, path=r.path, sha256=r.sha256,
                              signals=r.signals, matches=[], origin={"source": "bench"},
                              data=_benign("alone", i))
                for i, r in enumerate(rows)
            ]  # fmt: skip
            c = time.process_time()
            for request in requests:
                sink(s, request)
            out["draft_alone_cpu_ms"] = round((time.process_time() - c) / len(requests) * 1e3, 3)
        store.close()
    out["draft_adds_ms_max"] = max(
        float(str(out[name]))
        for name in ("scan_report_adds_ms", "match_report_adds_ms", "match_report_ctx_adds_ms",
                     "match_report_blocks_adds_ms")
    )  # fmt: skip
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
    out: dict[str, object] = {
        "bench": "reports",
        "reports": n,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # others on the machine inflate times
    }
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
