"""The report writer and validator give the same bytes and problems as before.

`tests/data/reports_golden.json` holds, for each synthetic document of
`report_variants` (about 1,200: the samples and every field of them set to awkward
values), a digest of its XML and of its validation problems, in order, as the
writer and validator produced them before their fast paths (compiled.py) were
reworked. Regenerate only for an intended change of output:
`python tests/test_reports_bytes.py > tests/data/reports_golden.json`.
The generic engine (schema.write_node / schema.check) is a second, independent
oracle for the bytes and the set of problems.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import report_variants as rv
from ridgeline.reports import compiled, schema
from ridgeline.reports import documents as docs
from ridgeline.reports import model as m

GOLDEN = Path(__file__).parent / "data" / "reports_golden.json"
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _digest(xml: bytes, problems: list[docs.Problem]) -> str:
    """Digests of the XML and of the problems (in order), apart so each can be told."""
    listed = json.dumps([p.to_json() for p in problems], ensure_ascii=False).encode()
    return hashlib.sha256(xml).hexdigest()[:24] + " " + hashlib.sha256(listed).hexdigest()[:24]


def digests() -> dict[str, list[str]]:
    reports = [
        _digest(docs.report_to_xml(r), docs.validate_report(r, now=NOW)) for r in rv.reports()
    ]
    details = []
    for fd in rv.file_details():
        xml = docs.file_details_to_xml(fd)
        details.append(_digest(xml, docs.validate_file_details(fd)))
        details.append(_digest(xml, docs.validate_file_details(fd, for_filing=True)))
    return {"reports": reports, "fileDetails": details}


def test_output_and_problems_match_the_golden_digests() -> None:
    golden = json.loads(GOLDEN.read_text())
    now = digests()
    assert len(now["reports"]) == len(golden["reports"]) > 1000
    assert len(now["fileDetails"]) == len(golden["fileDetails"]) > 300
    for kind in ("reports", "fileDetails"):
        pairs = enumerate(zip(now[kind], golden[kind], strict=True))
        changed = [i for i, (a, b) in pairs if a != b]
        assert changed == [], f"{kind} whose output or problems changed: {changed[:20]}"


def _generic_problems(node: m.Report | m.FileDetails, root: str) -> set[docs.Problem]:
    problems: list[docs.Problem] = []
    schema.check(node, root, problems)

    def extra(n: schema.Node, path: str) -> None:
        if type(n) in compiled.EXTRAS:
            compiled.EXTRAS[type(n)](n, path, problems)

    schema.walk(node, extra, root)
    return set(problems)


def test_fast_paths_agree_with_the_generic_engine_on_every_variant() -> None:
    """Bytes and problems equal the generic engine's, and the fast checker says "no
    problem" exactly when the full checker finds none (so it can never hide one)."""
    invalid = 0
    for report in rv.reports():
        out: list[str] = []
        schema.write_node(report, "report", out)
        xml = docs.report_to_xml(report)
        assert xml.endswith("".join(out[1:]).encode()), report
        problems: list[docs.Problem] = []
        compiled.check(report, "report", problems)
        assert set(problems) == _generic_problems(report, "report"), report
        full: list[docs.Problem] = []
        compiled.checker(m.Report)(report, "report", full)
        assert compiled.fast_checker(m.Report)(report) == (not full), report
        invalid += bool(problems)
    for fd in rv.file_details():
        out = []
        schema.write_node(fd, "fileDetails", out)
        assert docs.file_details_to_xml(fd).endswith("".join(out).encode())
        problems = []
        compiled.check(fd, "fileDetails", problems)
        assert set(problems) == _generic_problems(fd, "fileDetails"), fd
        full = []
        compiled.checker(m.FileDetails)(fd, "fileDetails", full)
        assert compiled.fast_checker(m.FileDetails)(fd) == (not full), fd
        invalid += bool(problems)
    assert invalid > 300  # the variants do exercise the rules


if __name__ == "__main__":
    print(json.dumps(digests(), indent=0))


def test_ip_check_accepts_exactly_what_ipaddress_accepts() -> None:
    """The IPv4 regex shortcut of the IP capture check says what ipaddress says."""
    import ipaddress
    import random

    def reference(text: str) -> bool:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return True

    rng = random.Random(12)
    alphabet = "0123456789.:abcdefABCDEF%x /٣"
    texts = [
        *("192.0.2.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3"),
        *("1.2.3.4.5", "1.2.3.04", "198.51.100.7 ", "2001:db8::1", "::ffff:192.0.2.1"),
        *("fe80::1%eth0", "2001:db8::g", "", "1.2.3.4\n", "١.2.3.4", "::", "1..2.3"),
        *("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 18))) for _ in range(20000)),
        *(".".join(str(rng.randint(0, 300)) for _ in range(4)) for _ in range(5000)),
    ]
    assert [docs._is_ip(t) for t in texts] == [reference(t) for t in texts]
