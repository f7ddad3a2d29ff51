"""A short atheris run of every fuzz target (tests/fuzz_targets.py; `make fuzz` runs them
longer), and the inputs the fuzzers found that crashed a parser, each as a regression
test of what the parser must do with it now."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fuzz_targets
from ridgeline import exchange, vpdq
from ridgeline.errors import BadInput
from ridgeline.hashing import hash_file
from ridgeline.intake.sources import from_paths
from ridgeline.reports import documents, received

#: Per target in `make test`: a few seconds or this many inputs, whichever comes first.
SECONDS = int(os.environ.get("RIDGELINE_FUZZ_SECONDS", "2"))
RUNS = int(os.environ.get("RIDGELINE_FUZZ_RUNS", "20000"))
#: A fixed seed keeps `make test` repeatable (the same inputs in the same order, cut by
#: time); `make fuzz` explores with fresh seeds and longer runs.
SEED = int(os.environ.get("RIDGELINE_FUZZ_SEED", "1"))


@pytest.mark.parametrize("target", sorted(fuzz_targets.TARGETS))
def test_fuzz_target_briefly(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, seed in enumerate(fuzz_targets.TARGETS[target].seeds()):
        (corpus / f"seed-{n}").write_bytes(seed)
    run = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "fuzz_run.py"), target,
         f"-max_total_time={SECONDS}", f"-runs={RUNS}", f"-seed={SEED}",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=SECONDS * 10 + 120, check=False,
    )  # fmt: skip
    tail = run.stderr[-4000:]
    assert run.returncode == 0, tail
    done = [line for line in run.stderr.splitlines() if line.startswith("Done ")]
    assert done and int(done[0].split()[1]) > 0, tail  # "Done N runs in S second(s)"
    assert not list(tmp_path.glob("crash-*"))


def test_seeds_are_accepted_where_they_are_valid() -> None:
    """The seeds exercise the parsers' good paths, not only their refusals."""
    for fmt in ("ncmec-xml", "vics", "icse", "stopncii", "csv", "jsonl"):
        seeds = fuzz_targets.TARGETS[f"exchange-{fmt}"].seeds()
        assert any(exchange.parse_bytes(s, fmt, signal="md5").records for s in seeds), fmt
    xml, details, sub, js, _ = fuzz_targets.TARGETS["cybertip"].seeds()
    assert documents.report_from_xml(xml) is not None
    assert documents.file_details_from_xml(details) is not None
    assert received.parse_document(sub).report is not None
    assert received.parse_document(js).report is not None


# ---------------------------------------------------------------- crashes found, now fixed


@pytest.mark.parametrize("encoding", ["UTF-6", "x-no-such", "EBCDIC-XYZ"])
def test_an_unknown_xml_encoding_is_bad_input(encoding: str) -> None:
    """Found by exchange-ncmec-xml: an unknown `encoding=` escaped as LookupError (500)."""
    doc = f'<?xml version="1.0" encoding="{encoding}"?>\n<queryResult/>'.encode()
    with pytest.raises(BadInput, match="unknown encoding"):
        exchange.parse_bytes(doc, "ncmec-xml")
    with pytest.raises(BadInput):
        received.parse_document(doc, "xml")


@pytest.mark.parametrize("ts", [176706370229200, -1e300, 1e300])
def test_an_unrepresentable_stopncii_time_rejects_that_record_only(ts: float) -> None:
    """Found by exchange-stopncii: a lastModtimestamp past year 9999 ended the whole parse
    in a ValueError, so the file's good records were lost with it."""
    good = {"signalType": "VideoMD5", "hashValue": "0" * 31 + "1", "lastModtimestamp": 1}
    bad = {**good, "hashValue": "0" * 31 + "2", "lastModtimestamp": ts}
    doc = json.dumps({"hashRecords": [good, bad, {**good, "hashValue": "0" * 31 + "3"}]})
    result = exchange.parse_bytes(doc.encode(), "stopncii")
    assert [r.position for r in result.records] == ["/hashRecords/0", "/hashRecords/2"]
    (error,) = result.errors
    assert error["position"] == "/hashRecords/1"
    assert "not a representable time" in error["error"]


CRASHES = sorted((Path(__file__).parent / "data" / "fuzz").glob("*/crash-*"))


@pytest.mark.parametrize("path", CRASHES, ids=lambda p: f"{p.parent.name}/{p.name[:14]}")
def test_every_input_that_crashed_a_target_is_now_refused_cleanly(path: Path) -> None:
    """The fuzzers' crash inputs, kept as found (tests/data/fuzz/TARGET/crash-*)."""
    fuzz_targets.TARGETS[path.parent.name].run(path.read_bytes())


def _crash(target: str, name: str = "") -> Path:
    """The kept crash input of `target` (the one whose file name starts with `name`)."""
    return next(p for p in CRASHES if p.parent.name == target and p.name.startswith(name))


def test_a_corrupt_zip_member_is_refused_with_its_name(tmp_path: Path) -> None:
    """Found by intake-zip: bad deflate data in a member escaped as zlib.error."""
    archive = tmp_path / "reports.zip"
    archive.write_bytes(_crash("intake-zip", "crash-e9915b0d").read_bytes())
    errors = [i.error for i in from_paths([str(archive)]) if i.error]
    assert errors and any("cannot be read" in e for e in errors), errors


def test_undecodable_video_metadata_and_codec_less_streams_are_bad_input() -> None:
    """Found by video and upload: PyAV raised UnicodeDecodeError on a container's
    metadata, and a stream with no decoder has no codec context (AttributeError)."""
    with pytest.raises(BadInput, match="not a readable video"):
        vpdq.hash_video(_crash("video"))
    result = hash_file(_crash("upload"))
    assert result.error is not None and "without a decodable codec" in result.error


def test_a_json_lines_bomb_is_streamed_not_read_whole(tmp_path: Path) -> None:
    """bench/hostile.py: a zip whose reports.jsonl member held 1 GB of zeros took 2.1 GB
    of RSS (JSON-lines members were read whole, up to 4 GB); lines are streamed now and
    a line longer than a report can be is refused without reading the rest."""
    import resource

    archive = tmp_path / "bomb.zip"
    block = b"\x00" * (16 << 20)
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("reports.jsonl", "w", force_zip64=True) as fh,
    ):
        fh.write(b'{"report": {}}\n')
        for _ in range(16):  # 256 MB
            fh.write(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = list(from_paths([str(archive)]))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert got[0].data == b'{"report": {}}' and got[0].error is None
    assert got[-1].error is not None and "longer than a report can be" in got[-1].error
    assert grown_mb < 100, grown_mb


def test_a_received_document_nested_too_deep_is_an_invalid_document() -> None:
    """bench/hostile.py: JSON nested 50k deep reached json.loads and ended in a
    RecursionError (a 500 from /v1/intake); it is refused like any malformed JSON."""
    deep = b"[" * 50_000 + b"]" * 50_000
    for doc in (deep, b'{"report": ' + deep + b"}"):
        with pytest.raises(documents.InvalidDocument, match="not valid JSON"):
            received.parse_document(doc, "json")


def test_a_zip_member_without_a_name_does_not_end_the_intake(tmp_path: Path) -> None:
    """Found by intake-zip: an empty member name made ZipInfo.is_dir() raise IndexError,
    ending the whole intake; the nameless member is skipped, the others are read."""
    archive = tmp_path / "noname.zip"
    nameless = zipfile.ZipInfo("x")
    nameless.filename = ""
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(nameless, b"{}")
        zf.writestr("a.json", b'{"report": {}}')
    got = list(from_paths([str(archive)]))
    assert [(i.source.rsplit("!", 1)[1], i.data, i.error) for i in got] == [
        ("a.json", b'{"report": {}}', None)
    ]


def _zip_with_member_name(archive: Path, raw_name: bytes) -> None:
    """A zip whose one member's name bytes are `raw_name` (same length as "ab.json"),
    flagged as UTF-8 as zipfile flags non-ASCII names."""
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ab.json", b"{}")
    data = bytearray(archive.read_bytes().replace(b"ab.json", raw_name))
    for magic, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flags
        start = data.index(magic) + at
        data[start + 1] |= 0x08  # bit 11: the name is UTF-8
    archive.write_bytes(bytes(data))


def test_a_zip_whose_member_name_is_not_its_flagged_utf8_is_refused(tmp_path: Path) -> None:
    """Found by intake-zip: zipfile raised UnicodeDecodeError while opening a zip whose
    UTF-8-flagged member name is not UTF-8, ending the intake; the zip is refused."""
    archive = tmp_path / "badname.zip"
    _zip_with_member_name(archive, b"a\x82.json")
    got = list(from_paths([str(archive)]))
    assert len(got) == 1 and got[0].error is not None, got
    assert "not a readable zip" in got[0].error


def test_scan_reports_an_unreadable_or_nameless_zip_member_and_goes_on(tmp_path: Path) -> None:
    """The same zips under `scan`'s archive walker: a bad name is an error row for the
    archive, an empty member name an error row for that member, a zip version zipfile
    does not know (found by intake-zip: NotImplementedError) an error row, and the walk
    goes on."""
    from ridgeline.scan.archives import Walker

    folder = tmp_path / "in"
    folder.mkdir()
    _zip_with_member_name(folder / "a.zip", b"a\x82.json")
    nameless = zipfile.ZipInfo("x")
    nameless.filename = ""
    with zipfile.ZipFile(folder / "b.zip", "w") as zf:
        zf.writestr(nameless, b"{}")
        zf.writestr("ok.txt", b"benign")
    (folder / "c.txt").write_bytes(b"plain")
    with zipfile.ZipFile(folder / "d.zip", "w") as zf:
        zf.writestr("new.txt", b"benign")
    data = bytearray((folder / "d.zip").read_bytes())
    data[data.index(b"PK\x01\x02") + 6] = 236  # "version needed to extract" 23.6
    (folder / "d.zip").write_bytes(bytes(data))
    work = tmp_path / "work"
    work.mkdir()
    items = list(Walker(work_dir=work).walk([folder]))
    rows = [(Path(i.display).name, i.error) for i in items]
    assert rows[0][0] == "a.zip" and "bad archive" in str(rows[0][1]), rows
    assert any("empty or NUL" in str(e) for _, e in rows), rows
    assert [n for n, e in rows if e is None] == ["b.zip!ok.txt", "c.txt"], rows
    assert "NotImplementedError: zip file version 23.6" in str(dict(rows)["d.zip"]), rows
