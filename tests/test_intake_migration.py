"""Migration 0024 (the identifier index covering linking's reads, two unqueried indexes
gone, an identifier's `original` stored only when it differs from its value) on a store
holding linked reports: down to 0023 and up again keeps every identifier as it reads,
and intake goes on after it."""

from __future__ import annotations

import sqlalchemy as sa

from migrate_to import migrate_to
from ridgeline import intake
from ridgeline.fastread import HEAD_REVISION
from ridgeline.intake import synthetic
from ridgeline.reports import received
from ridgeline.reports.identifiers import Identifier
from ridgeline.store import Store


def _indexes(store: Store, table: str) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(store.engine).get_indexes(table)}


def _stored_originals(store: Store) -> list[tuple[str, str | None]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT value, original FROM report_identifiers ORDER BY id"))
        return [(str(v), o) for v, o in rows]


def _take(store: Store, lines: list[bytes], start: int, pipeline: intake.Pipeline) -> None:
    items = [intake.Incoming(f"day.jsonl:{start + n}", b, "json") for n, b in enumerate(lines)]
    for _ in pipeline.run(store, items=items, batch=20, parse_ahead=False):
        pass


def test_down_and_up_keeps_identifiers_and_links(store: Store) -> None:
    lines = list(synthetic.jsonl_lines(synthetic.Population(80)))
    _take(store, lines[:60], 0, intake.Pipeline())
    with store.session() as s:
        # one identifier the report gave no written form for
        received.store_identifiers(s, [(1, [Identifier("email", "bare@example.com", "victim")])])
    with store.session() as s:
        ids = [int(r) for r in s.execute(sa.text("SELECT id FROM received_reports")).scalars()]
        before = received.identifiers_of(s, ids)
    assert before[1][-1].original is None
    assert any(i.original not in (None, i.value) for v in before.values() for i in v)
    stored = _stored_originals(store)
    # at head: a second copy of the value is not stored, a missing one is ''
    assert sum(o is None for _, o in stored) > len(stored) // 2
    assert ("bare@example.com", "") in stored
    assert "ix_report_identifiers_lookup" in _indexes(store, "report_identifiers")

    migrate_to(store, "0023")
    assert store.current_revision() == "0023"
    assert "ix_report_identifiers_kind_value" in _indexes(store, "report_identifiers")
    assert "ix_received_reports_sha256" in _indexes(store, "received_reports")
    assert "ix_case_links_kind_value" in _indexes(store, "case_links")
    # 0023's form: the written value always, NULL when there was none
    old = _stored_originals(store)
    assert ("bare@example.com", None) in old
    assert all(o is not None for v, o in old if v != "bare@example.com")

    migrate_to(store, HEAD_REVISION)
    assert _stored_originals(store) == stored
    assert "ix_case_links_kind_value" not in _indexes(store, "case_links")
    with store.session() as s:
        assert received.identifiers_of(s, ids) == before
    # and intake goes on after it: the rest is stored and linked
    _take(store, lines[60:], 60, intake.Pipeline())
    with store.session() as s:
        assert s.execute(sa.text("SELECT count(*) FROM case_reports")).scalar_one() == 80
