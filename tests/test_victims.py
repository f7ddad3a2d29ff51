"""The victims registry: import, merge (hashes and same_as, transitively), export, links."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import func, select

from ridgeline.store import Store
from ridgeline.victims.models import MergedVictim, Sighting, VictimRecord
from ridgeline.victims.registry import (
    add_sightings,
    export_records,
    import_records,
    link_series,
    merges,
    series_status,
)
from ridgeline.victims.synth import generate

H1, H2 = "a" * 64, "b" * 64


def _line(**fields: object) -> str:
    base: dict[str, object] = {"first_seen": "2020-01-01"}
    base.update(fields)
    return json.dumps(base)


def test_synthetic_world_merges_to_the_known_victims(store: Store) -> None:
    world = generate(7, 400)
    lines = [json.dumps(r) for r in world.json_records()]
    result = import_records(store, [("synth", lines)])
    assert result.errors == ()
    assert result.records == len(lines) == int(world.captured.sum())
    assert result.victims == int(world.known.sum())
    with store.session() as s:
        # every merged victim holds the records of exactly one true victim
        rows = s.execute(select(VictimRecord.victim_key, VictimRecord.merged_id)).all()
    by_truth: dict[str, set[int]] = {}
    for key, merged in rows:
        by_truth.setdefault(key.split("-", 1)[1], set()).add(merged)
    assert all(len(m) == 1 for m in by_truth.values())
    assert len({m for ms in by_truth.values() for m in ms}) == len(by_truth)
    # importing the same files again replaces, and changes nothing
    again = import_records(store, [("synth", lines)])
    assert again.replaced == len(lines) and again.victims == result.victims
    exported = [r.to_json() for r in export_records(store)]
    assert sorted(json.dumps(e, sort_keys=True) for e in exported) == sorted(
        json.dumps(json.loads(x), sort_keys=True) for x in lines
    )


def test_transitive_merge_with_reasons_and_earliest_times(store: Store) -> None:
    lines = [
        _line(
            database="A",
            victim_id="1",
            hashes=[{"signal": "sha256", "value": H1}],
            first_seen="2019-05-01",
            sightings=["2019-06-01T00:00:00Z"],
        ),
        _line(
            database="B",
            victim_id="x",
            hashes=[{"signal": "sha256", "value": H1.upper()}, {"signal": "sha256", "value": H2}],
            identified_at="2021-01-01",
            identifying_agency="BKA",
            region="DE",
            sightings=["2019-06-01T00:00:00Z", "2020-02-01"],
        ),
        _line(
            database="C",
            victim_id="q",
            same_as=[{"database": "B", "victim_id": "x"}],
            first_seen="2018-01-01",
            identified_at="2022-01-01",
            identifying_agency="FBI",
            sightings=["2020-03-01", "2020-04-01"],
        ),
        _line(database="C", victim_id="other", same_as=[{"database": "Z", "victim_id": "9"}]),
        _line(database="A", victim_id="2", hashes=[{"signal": "sha256", "value": H2}]),
    ]
    result = import_records(store, [("f", lines)])
    assert result.victims == 2  # {A/1, B/x, C/q, A/2} and {C/other}
    reasons = merges(store)
    assert {(m.reason, m.detail) for m in reasons} == {
        ("hash", f"sha256:{H1}"),
        ("hash", f"sha256:{H2}"),
        ("same_as", "B/x"),
    }
    with store.session() as s:
        big = s.execute(select(MergedVictim).where(MergedVictim.records == 4)).scalar_one()
    assert big.databases == "A,B,C"
    assert big.first_seen.replace(tzinfo=dt.UTC) == dt.datetime(2018, 1, 1, tzinfo=dt.UTC)
    assert big.first_seen_source == "C"
    assert big.identified_at.replace(tzinfo=dt.UTC) == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    assert big.identifying_agency == "BKA" and big.region == "DE"
    # occasions: 2018-01-01, 2019-05-01, 2019-06-01 (twice = once), 2020-01-01, 02, 03, 04
    assert big.occasions == 7
    assert big.traded_since.replace(tzinfo=dt.UTC) == dt.datetime(2020, 2, 1, tzinfo=dt.UTC)


def test_bad_lines_are_named_and_good_ones_kept(store: Store) -> None:
    lines = [
        _line(database="A", victim_id="1"),
        "{not json",
        _line(database="A", victim_id="2", age_band="teen"),
        _line(database="A", victim_id="3", hashes=[{"signal": "md5", "value": "zz"}]),
        _line(database="A", victim_id="4", identifying_agency="FBI"),
        _line(database="A", victim_id="1"),
        _line(database="A", victim_id="5", region="Germany"),
        _line(database="A", victim_id="6"),
    ]
    result = import_records(store, [("in.jsonl", lines)])
    assert [(e.line, e.source) for e in result.errors] == [
        (2, "in.jsonl"),
        (3, "in.jsonl"),
        (4, "in.jsonl"),
        (5, "in.jsonl"),
        (6, "in.jsonl"),
        (7, "in.jsonl"),
    ]
    assert "age_band" in result.errors[1].message and "md5" in result.errors[2].message
    assert "duplicate" in result.errors[4].message
    assert result.records == 2
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(VictimRecord)).scalar() == 2


def test_series_links_and_sightings(store: Store) -> None:
    import_records(store, [("f", [_line(database="A", victim_id="1", series=["S1"])])])
    link_id = link_series(store, "A", "S1", by="analyst@example.com", sha256="c" * 64)
    assert link_id > 0
    from ridgeline.victims.models import Series

    with store.session() as s:
        sid = s.execute(select(Series.id)).scalar_one()
    assert add_sightings(store, [sid], dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "match") == 1
    with store.session() as s:
        assert s.execute(select(Sighting.source)).scalars().all() == ["match"]


def test_series_status_for_entries_and_files_in_one_query(store: Store) -> None:
    from ridgeline.lists import create_list
    from ridgeline.lists.models import Entry

    import_records(
        store,
        [
            (
                "f",
                [
                    _line(
                        database="NCMEC",
                        victim_id="1",
                        series=["S-ID"],
                        identified_at="2021-03-04",
                        identifying_agency="FBI",
                    ),
                    _line(
                        database="NCMEC",
                        victim_id="2",
                        series=["S-OPEN"],
                        sightings=["2020-02-01", "2020-03-01", "2020-04-01", "2020-05-01"],
                    ),
                ],
            )
        ],
    )
    with store.session() as s:
        hash_list = create_list(s, "known")
        entry = Entry(list_id=hash_list.id)
        s.add(entry)
        s.flush()
        entry_id = entry.id
    link_series(store, "NCMEC", "S-ID", by="analyst", entry_id=entry_id)
    link_series(store, "NCMEC", "S-OPEN", by="analyst", sha256="d" * 64)
    status = series_status(store, entry_ids=[entry_id, 999], sha256s=["d" * 64, "e" * 64])
    assert set(status) == {entry_id, "d" * 64}
    (ident,) = status[entry_id]
    assert ident.identified and ident.identifying_agency == "FBI"
    assert ident.text == "series S-ID, victim identified on 2021-03-04 by FBI"
    (open_,) = status["d" * 64]
    assert not open_.identified and open_.actively_traded
    assert open_.text == (
        "series S-OPEN, victim not identified: possible ongoing abuse; actively traded"
    )


def test_cli_link_series_to_a_file(tmp_path: Path) -> None:
    """`ridgeline victims link` (an analyst's link): the file's status then names the
    series; an unknown series and a bad sha256 are refused with their exit codes."""
    from click.testing import CliRunner

    from ridgeline.cli import main

    db = str(tmp_path / "r.db")
    source = tmp_path / "v.jsonl"
    source.write_text(
        _line(
            database="NCMEC",
            victim_id="v1",
            series=["S-7"],
            identified_at="2021-05-01",
            identifying_agency="FBI",
        )
        + "\n"
    )
    runner = CliRunner()
    assert runner.invoke(main, ["db", "init", "--db", db]).exit_code == 0
    assert runner.invoke(main, ["victims", "import", str(source), "--db", db]).exit_code == 0
    linked = runner.invoke(
        main,
        [
            *("victims", "link", "NCMEC", "S-7", "--sha256", H1.upper()),
            *("--by", "analyst 7", "--db", db, "--format", "json"),
        ],
    )
    assert linked.exit_code == 0, linked.output
    assert json.loads(linked.output)["series"] == "S-7"
    status = series_status(Store.open(db), sha256s=[H1])[H1]
    assert [s.text for s in status] == ["series S-7, victim identified on 2021-05-01 by FBI"]
    unknown = runner.invoke(
        main, ["victims", "link", "NCMEC", "S-8", "--sha256", H1, "--by", "a", "--db", db]
    )
    assert unknown.exit_code == 1 and "no series" in unknown.output
    bad = runner.invoke(
        main, ["victims", "link", "NCMEC", "S-7", "--sha256", "zz", "--by", "a", "--db", db]
    )
    assert bad.exit_code == 2
