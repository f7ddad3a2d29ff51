"""A bulk intake prepared in a second process (`Pipeline.run`, `ridgeline.parseahead`)
stores exactly what the same producer run in-process and the per-batch `ingest` store:
the same outcomes, cases, bundles, priorities with reasons, routing, identifiers and
rows, with duplicates and refused documents among them, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ridgeline import intake, parseahead, routing
from ridgeline.errors import BadInput
from ridgeline.intake import synthetic
from ridgeline.reports import documents, samples
from ridgeline.store import BATCH_WAL_PAGES, Store

RULES = "country,state,agency\nUS,WA,Washington ICAC\nUS,,US federal desk\n*,,International\n"
BATCH = 64


def _items(n: int = 100) -> list[intake.Incoming]:
    lines = list(synthetic.jsonl_lines(synthetic.Population(n)))
    items = [intake.Incoming(f"day.jsonl:{n}", line, "json") for n, line in enumerate(lines)]
    items += [intake.Incoming(f"again:{n}", lines[n], "json") for n in range(0, n, 17)]
    items += [
        intake.Incoming("bad.json", b"{not json", "json"),
        intake.Incoming("schema.json", b'{"report": {"incidentSummary": 7}, "extra": 1}', "json"),
        intake.Incoming("unread.json", b"", "json", error="cannot read: truncated zip member"),
        intake.Incoming("keyed:1", lines[5], "json", idempotency_key="client-key-1"),
        intake.Incoming("keyed:2", lines[6], "json", idempotency_key="client-key-1"),
    ]
    return items


#: What intake writes, children first.
TABLES = (
    "report_availability", "triage_priorities", "file_bundle_reports", "file_bundles",
    "case_links", "case_reports", "cases", "report_identifiers", "received_reports",
)  # fmt: skip


def _wipe(store: Store) -> None:
    """Empty intake's tables and restart their ids (the next run gets the same ids)."""
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            return
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
        has_seq = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
        ).first()
        if has_seq:
            conn.execute(text("DELETE FROM sqlite_sequence"))


def _snapshot(store: Store) -> dict[str, Any]:
    """Everything intake stored, keyed by source (ids are the same too: same order)."""
    queries = {
        "received": "SELECT source, idempotency_key, sha256, format, document, raw, "
        "incident_type, incident_at, reporter, file_count, warnings FROM received_reports",
        "identifiers": "SELECT r.source, i.kind, i.value, i.role, i.service, i.device_type, "
        "i.event_at, i.possible_proxy, i.original, i.id FROM report_identifiers i "
        "JOIN received_reports r ON r.id = i.report_id",
        "cases": "SELECT r.source, cr.case_id FROM case_reports cr "
        "JOIN received_reports r ON r.id = cr.report_id",
        "links": "SELECT report_a, report_b, kind, value, cut FROM case_links",
        "bundles": "SELECT b.kind, b.value, b.report_count, m.report_id FROM file_bundles b "
        "JOIN file_bundle_reports m ON m.bundle_id = b.id",
        "triage": "SELECT r.source, t.priority, t.reasons, t.rules FROM triage_priorities t "
        "JOIN received_reports r ON r.id = t.report_id",
        "routing": "SELECT r.source, a.agency, a.why, a.country, a.state FROM "
        "report_availability a JOIN received_reports r ON r.id = a.report_id",
    }
    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for name, sql in queries.items():
            rows = [
                tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
                      for v in row)
                for row in conn.execute(text(sql))
            ]  # fmt: skip
            out[name] = sorted(rows, key=repr)
    return out


def _digest(snapshot: dict[str, Any]) -> str:
    return hashlib.sha256(repr(snapshot).encode()).hexdigest()


def _pipeline(store: Store) -> intake.Pipeline:
    with store.session() as s:
        routing.import_csv(s, RULES.encode())
    return intake.Pipeline(steps=intake.default_steps(store))


def test_second_process_inline_and_per_batch_store_the_same(store: Store) -> None:
    assert parseahead.available(), "the test needs two cores"
    items = _items()
    results = {}
    for way in ("batches", "inline", "child"):
        _wipe(store)
        pipeline = _pipeline(store)
        rows: list[dict[str, Any]] = []
        if way == "batches":
            for start in range(0, len(items), BATCH):
                with store.session() as s:
                    got = pipeline.ingest(s, items[start : start + BATCH])
                rows += [{**o.to_json(), "case_id": o.case_id} for o in got]
        else:
            for got in pipeline.run(store, items=items, batch=BATCH, parse_ahead=way == "child"):
                rows += [{**o.to_json(), "case_id": o.case_id} for o in got]
        results[way] = (rows, _snapshot(store))
    rows, snap = results["batches"]
    assert [r["status"] for r in rows].count("refused") == 3
    assert [r["status"] for r in rows].count("duplicate") == 7
    assert all(r["problems"] for r in rows if r["status"] == "refused")
    assert snap["triage"] and snap["routing"] and snap["links"] and snap["identifiers"]
    for way in ("inline", "child"):
        assert results[way][0] == rows, way
        assert _digest(results[way][1]) == _digest(snap), way


def test_a_rerun_of_the_same_input_stores_nothing_twice(sqlite_store: Store) -> None:
    """Keys already stored come back as duplicates with the first delivery's id, from the
    second process as from this one."""
    items = _items(60)
    pipeline = _pipeline(sqlite_store)
    first = [o for got in pipeline.run(sqlite_store, items=items, batch=BATCH) for o in got]
    again = [
        o
        for got in pipeline.run(sqlite_store, items=items, batch=BATCH, parse_ahead=True)
        for o in got
    ]
    assert [o.report_id for o in again] == [o.report_id for o in first]
    assert {o.status for o in again} == {"duplicate", "refused"}
    assert [o.problems for o in again if o.status == "refused"] == [
        o.problems for o in first if o.status == "refused"
    ]


def test_a_run_checkpoints_every_few_batches_and_gives_the_setting_back(
    sqlite_store: Store,
) -> None:
    """`Pipeline.run` commits batch after batch on a connection that checkpoints the WAL
    every `BATCH_WAL_PAGES` pages (not SQLite's 1,000: a checkpoint after each commit);
    the connection goes back to the pool with SQLite's setting."""
    seen: list[int] = []

    def look(session: Any, _accepted: Any) -> None:
        seen.append(session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one())

    pipeline = intake.Pipeline(steps=[look])
    out = [o for got in pipeline.run(sqlite_store, items=_items(150), batch=BATCH) for o in got]
    assert {o.status for o in out} >= {"stored"}
    assert len(seen) >= 3 and set(seen) == {BATCH_WAL_PAGES}
    with sqlite_store.session() as s:
        assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 1000


def _folder(tmp_path: Path) -> list[str]:
    folder = tmp_path / "in"
    (folder / "one").mkdir(parents=True)
    (folder / "one" / "report.xml").write_bytes(documents.report_to_xml(samples.rich_report(1)))
    (folder / "one" / "fileDetails-0.xml").write_bytes(
        documents.file_details_to_xml(samples.file_details("d" * 32))
    )
    (folder / "bad.json").write_text(json.dumps({"report": {"bogus": 1}}))
    (folder / "broken.xml").write_text("<report><unclosed>")
    lines = list(synthetic.jsonl_lines(synthetic.Population(20)))
    with zipfile.ZipFile(tmp_path / "batch.zip", "w") as zf:
        zf.writestr("many.jsonl", b"\n".join(lines + lines[:3]) + b"\n")
        zf.writestr("r/report.xml", documents.report_to_xml(samples.rich_report(2)))
    return [str(folder), str(tmp_path / "batch.zip")]


def test_files_read_in_the_second_process_store_the_same(store: Store, tmp_path: Path) -> None:
    """`reports intake PATH...` reads the files where it prepares them: XML submissions,
    zips and JSON lines, refusals and repeats come out the same as read in-process."""
    paths = _folder(tmp_path)
    results = {}
    for child in (False, True):
        _wipe(store)
        pipeline = _pipeline(store)
        rows = [
            {**o.to_json(), "case_id": o.case_id}
            for got in pipeline.run(store, paths=paths, batch=16, parse_ahead=child)
            for o in got
        ]
        results[child] = (rows, _snapshot(store))
    rows, snap = results[False]
    assert [r["status"] for r in rows].count("refused") == 2
    assert [r["status"] for r in rows].count("duplicate") == 3
    assert {r["source"] for r in rows if r["status"] == "stored"} >= {
        f"{paths[0]}/one",
        f"{paths[1]}!r/report.xml",
    }
    assert results[True][0] == rows
    assert _digest(results[True][1]) == _digest(snap)
    with pytest.raises(BadInput, match="no such file"):
        next(pipeline.run(store, paths=[str(tmp_path / "nowhere")], parse_ahead=True))
