"""Series and identification on every match (`match`, `scan`, `/v1/lookup`, `/v1/match`,
report drafts), every match a sighting, and "actively traded" from the fifth occasion."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.matching import Matcher, Query
from ridgeline.service.app import ServiceConfig, create_app
from ridgeline.service.keys import create_key
from ridgeline.store import Store
from ridgeline.victims.annotate import SeriesAnnotator
from ridgeline.victims.models import MergedVictim, SeriesLink, Sighting
from ridgeline.victims.registry import import_records, link_series

IDENTIFIED = b"benign test file one (identified series)\n"
OPEN = b"benign test file two (unidentified series)\n"
LOOSE = b"benign test file three (series linked by its sha256 only)\n"
OTHER = b"benign test file four (no series)\n"
IDENT_TEXT = "series S-ID, victim identified on 2021-03-04 by FBI"
OPEN_TEXT = "series S-OPEN, victim not identified: possible ongoing abuse"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def world(store: Store) -> dict[str, int]:
    """Two victims in two series; list entries for four benign files, three in a series."""
    lines = [
        {
            "database": "NCMEC",
            "victim_id": "V1",
            "series": ["S-ID"],
            "first_seen": "2020-01-01",
            "identified_at": "2021-03-04",
            "identifying_agency": "FBI",
        },
        {  # four occasions so far: the next sighting makes the fifth
            "database": "NCMEC",
            "victim_id": "V2",
            "series": ["S-OPEN"],
            "first_seen": "2020-01-01",
            "sightings": ["2020-02-01", "2020-03-01", "2020-04-01"],
        },
    ]
    import_records(store, [("f", [json.dumps(x) for x in lines])])
    with store.session() as s:
        hl = L.create_list(s, "known")
        ids = {
            name: L.add_entry(s, hl, {"sha256": sha(data)}).id
            for name, data in (("ident", IDENTIFIED), ("open", OPEN), ("loose", LOOSE))
        }
        ids["other"] = L.add_entry(s, hl, {"sha256": sha(OTHER)}).id
    link_series(store, "NCMEC", "S-ID", by="analyst@example.com", entry_id=ids["ident"])
    link_series(store, "NCMEC", "S-OPEN", by="analyst@example.com", entry_id=ids["open"])
    link_series(store, "NCMEC", "S-OPEN", by="analyst@example.com", sha256=sha(LOOSE))
    return ids


def occasions(store: Store) -> list[tuple[int, bool]]:
    with store.session() as s:
        return [
            (int(o), t is not None)
            for o, t in s.execute(
                select(MergedVictim.occasions, MergedVictim.traded_since).order_by(MergedVictim.id)
            )
        ]


def test_matcher_annotates_in_one_query_and_records_sightings(store: Store, tmp_path: Path) -> None:
    ids = world(store)
    matcher = Matcher.open(store, str(tmp_path / "index"))
    annotator = SeriesAnnotator(store, background=False)
    matcher.annotator = annotator
    groups = [
        [Query("sha256", sha(data))] for data in (IDENTIFIED, OPEN, LOOSE, OTHER, b"unlisted")
    ]
    found = matcher.match_each(groups)
    assert annotator.queries == 1  # one batched series_status for the whole lookup
    by_entry = {m.entry_id: m for group in found for m in group}
    assert by_entry[ids["ident"]].identification == IDENT_TEXT
    assert by_entry[ids["ident"]].series == ("NCMEC/S-ID",)
    assert by_entry[ids["open"]].identification == OPEN_TEXT
    assert by_entry[ids["loose"]].series == ("NCMEC/S-OPEN",)  # by the file's sha256
    other = by_entry[ids["other"]]
    assert other.series is None and other.identification is None
    assert "identification" not in other.to_json()
    assert found[4] == []
    # each content matching a series is a sighting of its victims (S-OPEN twice here, in
    # the same second: one row, one more occasion), written in one flush
    with store.session() as s:
        sources = [
            str(x) for x in s.scalars(select(Sighting.source).where(Sighting.source == "match"))
        ]
    assert sources == ["match"] * 2
    assert occasions(store) == [(2, False), (5, True)]
    # cached: the same lookup asks the registry nothing more, but says "actively traded"
    # (the flush dropped the cache so the new occasion shows at once)
    again = matcher.match([Query("sha256", sha(OPEN))])
    assert again[0].identification == OPEN_TEXT + "; actively traded"
    queries = annotator.queries
    matcher.match([Query("sha256", sha(OPEN))])
    assert annotator.queries == queries
    annotator.close()
    matcher.close()


def _run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_cli_match_and_scan_and_report_drafts(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    store = Store.open(db)
    world(store)
    store.close()
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in (("a.bin", IDENTIFIED), ("b.bin", OPEN), ("c.bin", OTHER)):
        (folder / name).write_bytes(data)
    out = _run("match", "--db", db, "--format", "jsonl", str(folder / "a.bin"))
    (row,) = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    assert {m["identification"] for m in row["matches"]} == {IDENT_TEXT}
    out = _run(
        "scan", "--db", db, "--format", "jsonl", "--list", "known", "--action", "report",
        str(folder),
    )  # fmt: skip
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.stdout.splitlines()) if r}
    assert rows["a.bin"]["matches"][0]["identification"] == IDENT_TEXT
    assert rows["b.bin"]["matches"][0]["identification"].startswith(OPEN_TEXT)
    assert "identification" not in rows["c.bin"]["matches"][0]
    store = Store.open(db)
    try:
        with store.session() as s:
            sources = list(s.scalars(select(Sighting.source).where(Sighting.source == "scan")))
        assert len(sources) == 2  # the scan's two series matches were sightings
        assert rows["a.bin"]["actions"]  # the report action fired on the annotated match
    finally:
        store.close()


def test_service_lookup_fast_path_and_match(store: Store) -> None:
    ids = world(store)
    with store.session() as s:
        _, key = create_key(s, "provider", "provider", rate_limit=1000)
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(ServiceConfig(), store)
    with TestClient(app) as client:
        for _ in range(2):  # the first through the route (verifies the key), then fast path
            r = client.get(
                "/v1/lookup", params={"signal": "sha256", "value": sha(IDENTIFIED)}, headers=headers
            )
            assert r.status_code == 200, r.text
            (m,) = r.json()["matches"]
            assert m["identification"] == IDENT_TEXT and m["series"] == ["NCMEC/S-ID"]
        r = client.post(
            "/v1/match",
            json={"signals": {"sha256": [sha(OPEN), sha(OTHER)]}},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        matches = {m["entry_id"]: m for m in r.json()["matches"]}
        assert matches[ids["open"]]["identification"].startswith(OPEN_TEXT)
        assert "identification" not in matches[ids["other"]]
        annotator = client.app.state.matcher.annotator  # type: ignore[attr-defined]
        assert isinstance(annotator, SeriesAnnotator)
    # shutdown flushed the buffered sightings: of S-ID's victim and of S-OPEN's
    with store.session() as s:
        sighted = set(s.scalars(select(Sighting.record_id).where(Sighting.source == "service")))
    assert len(sighted) == 2


def test_partner_series_on_entries(store: Store, tmp_path: Path) -> None:
    """Entries carrying a partner's series (VICS, via the exchange) say their status too:
    from the registry when it knows the series (linked once, then as any link), else
    from the partner's flag."""
    world(store)
    files = {
        "known-series": b"benign five\n",
        "vics-yes": b"benign six\n",
        "vics-no": b"benign 7\n",
    }
    with store.session() as s:
        hl = L.create_list(s, "exchange")
        ids = {}
        for (name, data), (series, flag) in zip(
            files.items(), (("S-OPEN", None), ("VICS-77", True), ("VICS-78", False)), strict=True
        ):
            entry = L.add_entry(s, hl, {"sha256": sha(data)})
            entry.series, entry.victim_identified = series, flag
            ids[name] = entry.id
    matcher = Matcher.open(store, str(tmp_path / "index"))
    matcher.annotator = annotator = SeriesAnnotator(store, background=False)
    found = matcher.match_each([[Query("sha256", sha(d))] for d in files.values()])
    said = {m.entry_id: m.identification for group in found for m in group}
    assert (said[ids["known-series"]] or "").startswith(OPEN_TEXT)
    assert said[ids["vics-yes"]] == "series VICS-77, victim identified (per list exchange)"
    assert said[ids["vics-no"]] == ("series VICS-78, victim not identified: possible ongoing abuse")
    with store.session() as s:
        links = s.scalars(select(SeriesLink.linked_by).where(SeriesLink.entry_id.in_(ids.values())))
        assert list(links) == ["list entry"]
    annotator.close()
    matcher.close()
