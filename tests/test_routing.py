"""Routing: offline geolocation (iptocc and a MaxMind-format city database written here
with mmdb-writer), the routing-rules table with its fallback desk, and the reasons each
availability records. Never by the reporter's address."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from ridgeline import auditlog, routing
from ridgeline.reports.model import Address, EstimatedLocation, PersonOrUserReported, Report
from ridgeline.store import Store
from triage_samples import INCIDENT, make_file, make_report, store_received

RULES_CSV = """country,state,agency
US,TX,Texas ICAC Task Force
US,,US federal desk
GB,,UK NCA CEOP
*,,International desk
"""


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    """A small MaxMind-format city database over the documentation ranges."""
    writer = MMDBWriter(ip_version=6, database_type="Test-City", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["192.0.2.0/24"]),
        {
            "country": {"iso_code": "US"},
            "subdivisions": [{"iso_code": "TX"}],
            "city": {"names": {"en": "Austin"}},
        },
    )
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "GB"}})
    writer.insert_network(
        IPSet(["2001:db8::/32"]),
        {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "WA"}]},
    )
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def table() -> routing.RoutingTable:
    rules = routing.parse_rules_csv(RULES_CSV)
    out = {(r.country, r.state or ""): r.agency for r in rules if r.country != "*"}
    return routing.RoutingTable(out, "International desk")


def test_geolocation_with_the_city_database(city_db: Path) -> None:
    geo = routing.Geolocator(city_db)
    p = geo.locate("192.0.2.77")
    assert p is not None and (p.country, p.state, p.city) == ("US", "TX", "Austin")
    assert p.source == "city database city.mmdb"
    v6 = geo.locate("2001:db8::1")
    assert v6 is not None and v6.text == "US/WA"
    assert geo.locate("203.0.113.5") is None  # in no database
    assert geo.locate("not an ip") is None
    geo.close()


def test_geolocation_with_iptocc_only() -> None:
    geo = routing.Geolocator(None)
    # Documentation and private ranges are in iptocc's table nowhere.
    assert geo.locate("192.0.2.1") is None
    assert geo.locate("10.1.2.3") is None
    # A public resolver's address (not a person) shows iptocc's embedded table is used.
    p = geo.locate("8.8.8.8")
    assert p is not None and p.country == "US" and p.state is None and p.source == "iptocc"


def test_bad_city_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a maxmind database")
    with pytest.raises(routing.BadCityDatabase, match="expected a MaxMind DB"):
        routing.Geolocator(junk)


def test_rules_csv_errors_name_the_line() -> None:
    with pytest.raises(routing.BadRoutingRules, match="header country,state,agency"):
        routing.parse_rules_csv("a,b\n1,2\n")
    bad = "country,state,agency\nXX,,A\nUS,Texas,B\nUS,TX,\nUS,TX,C\nUS,TX,D\n*,NY,E\n"
    with pytest.raises(routing.BadRoutingRules) as err:
        routing.parse_rules_csv(bad)
    msg = str(err.value)
    assert "line 2: 'XX' is not an ISO 3166-1" in msg
    assert "line 3: 'Texas' is not a US state code" in msg
    assert "line 4: the agency is empty" in msg
    assert "line 6: US/TX repeats line 5" in msg
    assert "line 7: the fallback row (*) takes no state" in msg


def test_route_by_address_ip_and_never_the_reporter(
    city_db: Path, table: routing.RoutingTable
) -> None:
    geo = routing.Geolocator(city_db)
    report = make_report(
        address=Address(city="Austin", state="TX", country="US"),
        ips=[("192.0.2.10", False), ("198.51.100.9", True)],  # the second is a proxy
        reporter_address=Address(city="Mountain View", state="CA", country="US"),
    )
    got = routing.route(report, [make_file(1, ip="198.51.100.20")], table, geo)
    by = {a.agency: a for a in got}
    assert set(by) == {"Texas ICAC Task Force", "UK NCA CEOP"}
    tx = by["Texas ICAC Task Force"]
    assert (tx.country, tx.state) == ("US", "TX")
    assert tx.why == (
        "reported person's address: US/TX (rule US/TX)",
        "reported person's IP 192.0.2.10 (Login) (city database city.mmdb): US/TX (rule US/TX)",
    )
    assert by["UK NCA CEOP"].why == (
        "file 0 upload IP 198.51.100.20 (Upload) (city database city.mmdb): GB (rule GB)",
    )
    assert not any("CA" in w for a in got for w in a.why)  # the reporter's own address


def test_route_country_rule_state_fallthrough_and_fallback(table: routing.RoutingTable) -> None:
    geo = routing.Geolocator(None)
    ny = routing.route(make_report(address=Address(state="NY")), [], table, geo)
    assert [(a.agency, a.why) for a in ny] == [
        ("US federal desk", ("reported person's address: US/NY (rule US)",))
    ]
    fr = routing.route(
        make_report(address=Address(country="FR", non_usa_state="Bretagne")), [], table, geo
    )
    assert fr[0].agency == "International desk"
    assert fr[0].why == (
        "reported person's address: FR/Bretagne (no rule for FR/Bretagne: fallback desk)",
    )
    nothing = routing.route(
        make_report(reporter_address=Address(state="CA", country="US")), [], table, geo
    )
    assert nothing == [
        routing.Availability(
            "International desk",
            ("no located subject in the report (the reporter's address is never used)",),
        )
    ]
    est = Report(
        incident_summary=make_report().incident_summary,
        persons_reported=(
            PersonOrUserReported(
                estimated_location=EstimatedLocation(country_code="GB", region="Kent")
            ),
        ),
    )
    got = routing.route(est, [], table, geo)
    assert got[0].agency == "UK NCA CEOP"
    assert got[0].why == ("reported person's location estimated by the ESP: GB/Kent (rule GB)",)


def test_import_list_and_record(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(RULES_CSV)
    with store.session() as s:
        rules = routing.import_file(s, path, actor="admin-a")
        assert [r.to_json() for r in rules][:2] == [
            {"country": "*", "state": None, "agency": "International desk"},
            {"country": "GB", "state": None, "agency": "UK NCA CEOP"},
        ]
        table = routing.load_table(s)
        assert table.fallback == "International desk"
        assert table.rules[("US", "TX")] == "Texas ICAC Task Force"
        rec = s.query(auditlog.LogRecord).filter_by(action="routing.import").one()
        assert json.loads(rec.details)["rules"] == 4
    with store.session() as s:  # importing again replaces the table
        routing.import_rules(
            s, routing.parse_rules_csv("country,state,agency\nUS,,Desk A\n"), fallback="Desk Z"
        )
        assert routing.load_table(s) == routing.RoutingTable({("US", ""): "Desk A"}, "Desk Z")
        with pytest.raises(Exception, match="not both"):
            routing.import_rules(s, routing.parse_rules_csv(RULES_CSV), fallback="X")
    at = INCIDENT + dt.timedelta(days=3)
    with store.session() as s:
        rid = store_received(s, make_report())
        other = store_received(s, make_report())
        n = routing.record_many(
            s,
            [
                (
                    rid,
                    [
                        routing.Availability("Desk A", ("a",), "US", None),
                        routing.Availability("Desk Z", ("b",)),
                    ],
                ),
                (other, [routing.Availability("Desk Z", ("c",))]),
            ],
            at=at,
        )
        assert n == 3
    with store.session() as s:
        got = [a.to_json() for a in routing.available_to(s, rid)]
        assert got[0] == {
            "agency": "Desk A",
            "at": "2026-11-04T12:00:00Z",
            "why": ["a"],
            "country": "US",
            "state": None,
            "made_by": "rules",
        }
        assert routing.is_available(s, rid, "Desk Z") and not routing.is_available(s, rid, "Desk B")
        assert [a.report_id for a in routing.reports_for(s, "Desk Z")] == [other, rid]
        routing.make_available(s, rid, "Desk B", "the suspect moved", actor="analyst-a")
        # recording again keeps what is there
        routing.record(s, rid, [routing.Availability("Desk A", ("again",))])
        agencies = [(a.agency, a.made_by) for a in routing.available_to(s, rid)]
        assert agencies == [("Desk A", "rules"), ("Desk Z", "rules"), ("Desk B", "analyst-a")]
        assert s.query(auditlog.LogRecord).filter_by(action="routing.make_available").count() == 1
