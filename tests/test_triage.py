"""Triage: rules files, every rule with its reason, batched facts from the lists and the
victims registry, stored priorities, overrides in the tamper-evident log, the queue."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ridgeline import auditlog, triage
from ridgeline.errors import BadInput, NotFound
from ridgeline.lists.core import add_entry, create_list
from ridgeline.store import Store
from ridgeline.triage import TriageFacts
from ridgeline.victims.registry import import_records, link_series
from triage_samples import (
    ENTICEMENT,
    INCIDENT,
    MOLESTATION,
    TRAFFICKING,
    make_file,
    make_report,
    sha,
    store_received,
)

RULES = triage.default_rules()
RECEIVED = INCIDENT + dt.timedelta(days=30)  # not recent: recency stays out of the way


def facts(**kw: object) -> TriageFacts:
    kw.setdefault("received_at", RECEIVED)
    return TriageFacts(**kw)  # type: ignore[arg-type]


def rules_of(a: triage.Assessment) -> list[str]:
    return [r.rule for r in a.reasons]


# ---------------------------------------------------------------- rules files


def test_defaults_are_the_documented_toml() -> None:
    assert triage.parse_rules({}, source="defaults") == RULES
    assert RULES.incident_types[TRAFFICKING] == 1
    assert RULES.annotations == {"sextortion": 2, "sadistic_online_exploitation": 1}
    assert json.loads(json.dumps(RULES.to_json()))["victim_age"] == {"under": 13, "priority": 2}


def test_rules_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "rules.toml"
    toml.write_text('[incident_types]\n"Child Sex Tourism" = 2\n[linked_reports]\nat_least = 2\n')
    rules = triage.load_rules(toml)
    assert rules.incident_types == {"Child Sex Tourism": 2}  # the table replaces the default
    assert rules.linked_at_least == 2 and rules.linked_reports == 2  # priority kept
    assert rules.source == str(toml)
    js = tmp_path / "rules.json"
    js.write_text(json.dumps({"escalation": {"priority": False}, "default_priority": 3}))
    off = triage.load_rules(js)
    assert off.escalation is None
    a = triage.assess(make_report(escalate="child in danger now"), (), facts(), off)
    assert "escalation" not in rules_of(a)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"escalaton": {}}, "unknown section(s) escalaton"),
        ({"victim_age": {"undr": 3}}, "[victim_age] has unknown key(s) undr"),
        ({"incident_types": {"Enticement": 1}}, "'Enticement' is not a CyberTipline incident"),
        ({"annotations": {"spamm": 1}}, "'spamm' is not a report annotation"),
        ({"escalation": {"priority": 5}}, "[escalation]: priority must be 1, 2, 3 or 4"),
        ({"combinations": [{"when": ["new_material", "nope"], "priority": 1}]}, "'nope'"),
        ({"recency": {"within_days": -1}}, "[recency] within_days must be a whole number"),
    ],
)
def test_bad_rules_name_the_key(doc: dict[str, object], needle: str) -> None:
    with pytest.raises(triage.BadRules) as err:
        triage.parse_rules(doc)
    assert needle in str(err.value)


def test_unreadable_rules_file(tmp_path: Path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_text("[escalation\n")
    with pytest.raises(triage.BadRules, match="not valid toml"):
        triage.load_rules(bad)
    with pytest.raises(triage.BadRules, match="cannot read"):
        triage.load_rules(tmp_path / "missing.toml")


# ---------------------------------------------------------------- each rule


def test_plain_report_is_standard_with_a_default_reason() -> None:
    a = triage.assess(
        make_report(), [make_file(1)], facts(files_with_hashes=1, files_on_lists=1), RULES
    )
    assert a.priority == 3
    assert rules_of(a) == ["default"]


def test_escalation_by_the_reporter() -> None:
    a = triage.assess(
        make_report(escalate="User says he will meet the child tonight"), (), facts(), RULES
    )
    assert a.priority == 1
    assert a.reasons[0].rule == "escalation"
    assert "meet the child tonight" in a.reasons[0].detail


@pytest.mark.parametrize(("kind", "prio"), [(TRAFFICKING, 1), (MOLESTATION, 1), (ENTICEMENT, 2)])
def test_incident_types(kind: str, prio: int) -> None:
    a = triage.assess(make_report(incident_type=kind), (), facts(), RULES)
    assert a.priority == prio
    assert a.reasons[0].detail == f"incident type: {kind}"


def test_annotations() -> None:
    a = triage.assess(make_report(sadistic=True), (), facts(), RULES)
    assert (a.priority, rules_of(a)) == (1, ["sadistic_online_exploitation"])
    a = triage.assess(make_report(sextortion=True), (), facts(), RULES)
    assert (a.priority, rules_of(a)) == (2, ["sextortion"])


def test_new_material_and_known_material() -> None:
    new = triage.assess(make_report(), [make_file(1)], facts(files_with_hashes=1), RULES)
    assert new.priority == 2 and rules_of(new) == ["new_material"]
    assert "none of 1 file(s) matched a hash list" in new.reasons[0].detail
    known = triage.assess(
        make_report(),
        [make_file(1), make_file(2)],
        facts(files_with_hashes=2, files_on_lists=1),
        RULES,
    )
    assert "new_material" not in rules_of(known)


def test_meme_files_are_not_new_material() -> None:
    f = facts(files_with_hashes=2, files_on_lists=0, new_files=0)
    a = triage.assess(make_report(), [make_file(1, meme=True), make_file(2, meme=True)], f, RULES)
    assert "new_material" not in rules_of(a) and a.priority == 4


def test_unidentified_series() -> None:
    a = triage.assess(make_report(), (), facts(unidentified_series=("NCMEC:S-1",)), RULES)
    assert a.priority == 2
    assert a.reasons[0].detail.endswith("NCMEC:S-1")


def test_victim_age_and_the_sextortion_combination() -> None:
    a = triage.assess(make_report(victim_age=10), (), facts(), RULES)
    assert (a.priority, rules_of(a)) == (2, ["victim_age"])
    assert triage.assess(make_report(victim_age=15), (), facts(), RULES).priority == 3
    both = triage.assess(make_report(victim_age=10, sextortion=True), (), facts(), RULES)
    assert both.priority == 1
    assert both.reasons[-1].detail == "sextortion and victim_age together"


def test_access_to_children_by_keyword_and_by_minor_recipient() -> None:
    a = triage.assess(make_report(info="He says he is a youth soccer coach."), (), facts(), RULES)
    assert a.priority == 2 and "'coach'" in a.reasons[0].detail
    # word boundaries: "coaching" is not "coach"
    assert triage.assess(make_report(info="coaching"), (), facts(), RULES).priority == 3
    b = triage.assess(make_report(recipient_age=15), (), facts(), RULES)
    assert rules_of(b) == ["access_to_children"] and "aged 15" in b.reasons[0].detail
    # with apparently new material: imminent danger
    c = triage.assess(
        make_report(info="my daughter"), [make_file(1)], facts(files_with_hashes=1), RULES
    )
    assert c.priority == 1 and c.reasons[-1].rule == "combination"


def test_linked_reports() -> None:
    assert triage.assess(make_report(), (), facts(linked_reports=4), RULES).priority == 3
    a = triage.assess(make_report(), (), facts(linked_reports=5), RULES)
    assert a.priority == 2 and "linked to 5 other report(s)" in a.reasons[0].detail


def test_recency_raises_only_a_raised_priority() -> None:
    recent = facts(received_at=INCIDENT + dt.timedelta(days=2))
    a = triage.assess(make_report(incident_type=ENTICEMENT), (), recent, RULES)
    assert a.priority == 1 and rules_of(a) == ["incident_type", "recency"]
    assert "raised from 2 to 1" in a.reasons[-1].detail
    plain = triage.assess(
        make_report(),
        [make_file(1)],
        facts(files_with_hashes=1, files_on_lists=1, received_at=INCIDENT + dt.timedelta(days=1)),
        RULES,
    )
    assert plain.priority == 3


def test_informational() -> None:
    a = triage.assess(
        make_report(batched=True),
        [make_file(1, meme=True)],
        facts(files_with_hashes=1, files_on_lists=1),
        RULES,
    )
    assert a.priority == 4 and a.label == "informational"
    assert "batched report (VIRAL_POTENTIAL_MEME)" in a.reasons[0].detail
    assert "potential meme" in a.reasons[0].detail
    assert triage.assess(make_report(user=None), (), facts(), RULES).priority == 4
    # anything raised wins over informational
    b = triage.assess(make_report(batched=True, sextortion=True), (), facts(), RULES)
    assert b.priority == 2 and "informational" not in rules_of(b)


def test_assessment_json() -> None:
    a = triage.assess(make_report(incident_type=TRAFFICKING), (), facts(), RULES)
    assert a.to_json() == {
        "priority": 1,
        "label": "a child may be in imminent danger",
        "reasons": [
            {"rule": "incident_type", "priority": 1, "detail": f"incident type: {TRAFFICKING}"}
        ],
        "rules": "defaults",
    }


# ---------------------------------------------------------------- facts from the store


def test_gather_facts_lists_and_unidentified_series(store: Store) -> None:
    with store.session() as s:
        hl = create_list(s, "known")
        entry = add_entry(s, hl, {"sha256": sha(1)})
        entry_id = entry.id
    record = {
        "database": "NCMEC",
        "victim_id": "v1",
        "series": ["S-9"],
        "first_seen": "2019-03-01T00:00:00Z",
        "identified_at": None,
        "hashes": [{"signal": "sha256", "value": sha(3)}],
    }
    import_records(store, [("v.jsonl", [json.dumps(record)])])
    link_series(store, "NCMEC", "S-9", by="test", entry_id=entry_id)
    link_series(store, "NCMEC", "S-9", by="test", sha256=sha(3))
    items = [
        triage.Item(make_report(), [make_file(1)], RECEIVED),  # on a list, series unidentified
        triage.Item(make_report(), [make_file(2)], RECEIVED),  # new material
        triage.Item(make_report(), [make_file(3), make_file(2)], RECEIVED),  # series by sha256
        triage.Item(make_report(), [], RECEIVED),
    ]
    with store.session() as s:
        got = triage.gather_facts(s, items, linked_reports=[0, 1, 2, 3], store=store)
    assert [(f.files_with_hashes, f.files_on_lists) for f in got] == [
        (1, 1),
        (1, 0),
        (2, 0),
        (0, 0),
    ]
    assert got[0].unidentified_series == ("NCMEC:S-9",)
    assert got[1].unidentified_series == ()
    assert got[2].unidentified_series == ("NCMEC:S-9",)
    assert [f.linked_reports for f in got] == [0, 1, 2, 3]
    first = triage.assess(items[0].report, items[0].files, got[0], RULES)
    assert rules_of(first) == ["unidentified_series"]


def test_gather_facts_ignores_retired_entries(store: Store) -> None:
    with store.session() as s:
        hl = create_list(s, "known")
        e = add_entry(s, hl, {"sha256": sha(1)})
        from ridgeline.lists.core import retire_entry

        retire_entry(s, e, actor="test")
    with store.session() as s:
        (f,) = triage.gather_facts(s, [triage.Item(make_report(), [make_file(1)])])
    assert (f.files_with_hashes, f.files_on_lists) == (1, 0)


# ---------------------------------------------------------------- stored, override, queue


def test_record_override_queue(store: Store) -> None:
    t0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    with store.session() as s:
        ids = [
            store_received(s, make_report(), received_at=t0 + dt.timedelta(hours=h))
            for h in range(4)
        ]
        prios = [3, 1, 3, 2]
        triage.record_many(
            s,
            [
                (
                    rid,
                    t0 + dt.timedelta(hours=h),
                    triage.Assessment(p, (triage.Reason("t", p, f"p{p}"),)),
                )
                for h, (rid, p) in enumerate(zip(ids, prios, strict=True))
            ],
        )
    with store.session() as s:
        q = triage.queue(s)
        assert [r.report_id for r in q] == [ids[1], ids[3], ids[0], ids[2]]
        assert q[0].top_reason == "p1"
        stored = triage.current(s, ids[2])
        assert stored is not None and stored.priority == 3 and stored.reasons[0].detail == "p3"
        triage.override(s, ids[2], 1, "call from the ESP: live stream tonight", actor="analyst-a")
    with store.session() as s:
        q = triage.queue(s)
        assert [r.report_id for r in q][:2] == [ids[1], ids[2]]  # same priority: older first
        assert q[1].overridden and q[1].top_reason.startswith("override: call from the ESP")
        cur = triage.current(s, ids[2])
        assert cur is not None and cur.to_json()["override"]["computed_priority"] == 3
        recs = s.query(auditlog.LogRecord).filter_by(action="triage.override").all()
        assert len(recs) == 1 and recs[0].actor == "analyst-a"
        assert json.loads(recs[0].details) == {
            "from": 3,
            "to": 1,
            "computed_priority": 3,
            "reason": "call from the ESP: live stream tonight",
        }
        assert auditlog.verify(s).ok
        # a re-assessment keeps the override in force
        triage.record(s, ids[2], t0, triage.Assessment(4, ()))
        again = triage.current(s, ids[2])
        assert again is not None and (again.priority, again.computed_priority) == (1, 4)
        assert [r.report_id for r in triage.queue(s, priority=2)] == [ids[3]]


def test_override_needs_a_reason_and_a_priority(store: Store) -> None:
    with store.session() as s:
        rid = store_received(s, make_report())
        triage.record(s, rid, RECEIVED, triage.Assessment(3, ()))
        with pytest.raises(BadInput, match="needs a reason"):
            triage.override(s, rid, 2, "  ")
        with pytest.raises(BadInput, match="priority must be 1, 2, 3 or 4"):
            triage.override(s, rid, 0, "why")
        with pytest.raises(NotFound, match="has not been triaged"):
            triage.override(s, rid + 99, 1, "why")
