"""The triage, routing and statistics commands on a real SQLite file, as an analyst
runs them after `ridgeline reports intake`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ridgeline import auditlog
from ridgeline.cli import main
from ridgeline.reports.model import Address
from ridgeline.store import Store
from test_referral import doc
from triage_samples import TRAFFICKING, make_file, make_report


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_routing_import_intake_queue_override_stats(db_path: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.csv"
    rules.write_text("country,state,agency\nUS,TX,Texas ICAC Task Force\n*,,International desk\n")
    code, out, err = run("routing", "import", str(rules), "--db", db_path, "--format", "jsonl")
    assert code == 0, err
    assert jsonl(out)[0] == {"country": "*", "state": None, "agency": "International desk"}
    code, out, _ = run("routing", "ls", "--db", db_path, "--format", "json")
    assert [r["agency"] for r in json.loads(out)] == ["International desk", "Texas ICAC Task Force"]
    bad = tmp_path / "bad.csv"
    bad.write_text("country,state,agency\nZZ,,X\n")
    code, _, err = run("routing", "import", str(bad), "--db", db_path)
    assert code == 2 and "line 2: 'ZZ' is not an ISO 3166-1" in err

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_bytes(
        doc(make_report(incident_type=TRAFFICKING, address=Address(state="TX", country="US")),
            [make_file(1, viewed=False)])
    )  # fmt: skip
    (folder / "b.json").write_bytes(doc(make_report(user="beta")))
    code, out, err = run("reports", "intake", str(folder), "--db", db_path)
    assert code == 0, err
    a, b = (row["report_id"] for row in jsonl(out))
    assert isinstance(a, int) and isinstance(b, int)
    code, out, err = run("reports", "show", str(a), "--received", "--db", db_path,
                         "--format", "json")  # fmt: skip
    assert code == 0, err
    shown = json.loads(out)
    assert shown["priority"] == 1
    assert [r["rule"] for r in shown["reasons"]] == ["incident_type", "new_material"]
    assert [x["agency"] for x in shown["available_to"]] == ["Texas ICAC Task Force"]
    assert shown["available_to"][0]["why"] == ["reported person's address: US/TX (rule US/TX)"]
    store = Store.open(db_path)

    code, out, _ = run("reports", "queue", "--db", db_path, "--format", "jsonl")
    rows = jsonl(out)
    assert [r["report_id"] for r in rows] == [a, b]
    assert rows[0]["priority"] == 1 and rows[0]["top_reason"] == f"incident type: {TRAFFICKING}"
    code, out, err = run(
        "reports", "override", str(b), "--priority", "2", "--reason", "ESP phoned",
        "--actor", "analyst-a", "--db", db_path, "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    shown = json.loads(out)
    assert shown["priority"] == 2 and shown["override"]["by"] == "analyst-a"
    code, _, err = run("reports", "override", str(b), "--priority", "2", "--reason", " ",
                       "--db", db_path)  # fmt: skip
    assert code == 2 and "needs a reason" in err
    code, _, err = run("reports", "override", "999", "--priority", "1", "--reason", "x",
                       "--db", db_path)  # fmt: skip
    assert code == 1 and "has not been triaged" in err

    charts = tmp_path / "charts"
    code, out, err = run("reports", "stats", "--db", db_path, "--format", "json",
                         "--charts", str(charts))  # fmt: skip
    assert code == 0, err
    st = json.loads(out)
    assert st["by_priority"] == {"1": 1, "2": 1, "3": 0, "4": 0}
    assert st["by_agency"] == {"International desk": 1, "Texas ICAC Task Force": 1}
    names = sorted(Path(p).name for p in st["charts"])
    assert names == sorted(f"{c}.{e}" for c in ("agency", "country", "incident_type", "priority")
                           for e in ("png", "svg"))  # fmt: skip
    assert (charts / "priority.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (charts / "agency.svg").read_bytes()[:500]
    code, out, _ = run("reports", "stats", "--db", db_path, "--format", "json",
                       "--since", "2099-01-01T00:00:00Z")  # fmt: skip
    assert json.loads(out)["reports"] == 0

    agency = "Texas ICAC Task Force"
    code, _, err = run("routing", "legal-process", str(a), "--agency", agency, "--reference",
                       "W-9", "--issued-on", "2026-13-01", "--db", db_path)  # fmt: skip
    assert code == 2 and "is not a date" in err
    code, out, err = run("routing", "legal-process", str(a), "--agency", agency, "--reference",
                         "W-9", "--db", db_path, "--format", "json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["kind"] == "warrant"
    code, _, err = run("routing", "legal-process", str(b), "--agency", agency, "--reference",
                       "W-9", "--db", db_path)  # fmt: skip
    assert code == 1 and "no received report" in err  # not available to that agency
    code, out, err = run("routing", "make-available", str(b), "--agency", agency, "--reason",
                         "the suspect moved", "--actor", "analyst-a", "--db", db_path,
                         "--format", "json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["made_by"] == "analyst-a"
    code, _, err = run("routing", "make-available", "999", "--agency", agency, "--reason", "x",
                       "--db", db_path)  # fmt: skip
    assert code == 1 and "no received report 999" in err
    code, out, _ = run("routing", "preservation", str(a), "--agency", agency, "--text",
                       "--db", db_path)  # fmt: skip
    assert out.startswith(f"Preservation request: received report {a}")
    with store.session() as s:
        actions = [r.action for r in s.query(auditlog.LogRecord).order_by(auditlog.LogRecord.seq)]
    assert "routing.import" in actions and "triage.override" in actions
    assert actions[-3:] == ["le.legal_process", "routing.make_available", "le.preservation_request"]
    store.close()


def test_triage_rules_command(tmp_path: Path) -> None:
    code, out, _ = run("reports", "triage-rules", "--toml")
    assert code == 0 and out.startswith("# Ridgeline triage rules")
    path = tmp_path / "r.toml"
    path.write_text(out)
    code, out, _ = run("reports", "triage-rules", "--rules", str(path), "--format", "json")
    assert json.loads(out)["victim_age"] == {"under": 13, "priority": 2}
    path.write_text("[victim_age]\nundr = 3\n")
    code, _, err = run("reports", "triage-rules", "--rules", str(path))
    assert code == 2 and "[victim_age] has unknown key(s) undr" in err


def test_routing_locate_with_a_city_database(tmp_path: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    w = MMDBWriter(ip_version=6, database_type="Test-City", ipv4_compatible=True)
    w.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "CA"},
                                                 "subdivisions": [{"iso_code": "ON"}]})  # fmt: skip
    db = tmp_path / "c.mmdb"
    w.to_db_file(str(db))
    code, out, _ = run("routing", "locate", "203.0.113.9", "192.0.2.1", "--city-db", str(db),
                       "--format", "jsonl")  # fmt: skip
    assert code == 0
    assert [(r["country"], r["state"]) for r in jsonl(out)] == [("CA", "ON"), (None, None)]
