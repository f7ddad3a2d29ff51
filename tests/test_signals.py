"""Signal types: canonical forms, clear errors, distances and the plug-in registry."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ridgeline.errors import InvalidHash, UnknownSignal
from ridgeline.signals import all_signals, get_signal, normalize
from ridgeline.signals.base import stream_digests
from ridgeline.signals.crypto import MD5, SHA1, SHA256

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def test_builtins_are_registered() -> None:
    assert {"md5", "sha1", "sha256", "pdq", "vpdq", "photodna"} <= set(all_signals())


@pytest.mark.parametrize(
    ("signal", "raw", "canonical"),
    [
        ("md5", "  D41D8CD98F00B204E9800998ECF8427E \n", "d41d8cd98f00b204e9800998ecf8427e"),
        (
            "sha1",
            "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
        ("sha256", "\t" + "AB" * 32, "ab" * 32),
        ("pdq", PDQ_A.upper(), PDQ_A),
    ],
)
def test_normalize_accepts_case_and_whitespace(signal: str, raw: str, canonical: str) -> None:
    assert normalize(signal, raw) == canonical


@pytest.mark.parametrize(
    ("signal", "bad"),
    [
        ("md5", "d41d8cd98f00b204e9800998ecf8427"),  # 31 chars
        ("md5", "g41d8cd98f00b204e9800998ecf8427e"),
        ("sha1", ""),
        ("sha256", "ab" * 31),
        ("pdq", PDQ_A[:-1]),
        ("pdq", PDQ_A + "00"),
        ("pdq", "not a hash"),
        ("photodna", "AAAA"),
        ("photodna", "!" * 192),
    ],
)
def test_bad_hash_names_signal_and_form(signal: str, bad: str) -> None:
    with pytest.raises(InvalidHash) as info:
        normalize(signal, bad)
    message = str(info.value)
    assert signal in message
    assert "expected" in message


def test_unknown_signal_lists_installed() -> None:
    with pytest.raises(UnknownSignal) as info:
        get_signal("nope")
    assert "pdq" in str(info.value)


def test_pdq_distance_is_hamming() -> None:
    pdq = get_signal("pdq")
    flipped = format(int(PDQ_A, 16) ^ 0b1011, "064x")
    assert pdq.distance(PDQ_A, PDQ_A) == 0
    assert pdq.distance(PDQ_A, flipped) == 3
    assert pdq.matches(PDQ_A, flipped)
    far = format(int(PDQ_A, 16) ^ ((1 << 32) - 1), "064x")
    assert pdq.distance(PDQ_A, far) == 32
    assert not pdq.matches(PDQ_A, far)
    assert pdq.matches(PDQ_A, far, threshold=32)


def test_photodna_euclidean() -> None:
    pdna = get_signal("photodna")
    a = bytes(range(144))
    b = bytearray(a)
    b[0] += 3
    b[1] += 4
    ca = pdna.normalize(base64.b64encode(a).decode())
    cb = pdna.normalize(base64.b64encode(bytes(b)).decode())
    assert len(ca) == 192
    assert pdna.distance(ca, cb) == pytest.approx(5.0)
    assert pdna.matches(ca, ca)
    assert not pdna.matches(ca, cb)
    assert pdna.matches(ca, cb, threshold=5)


def test_photodna_cannot_be_computed(tmp_path: Path) -> None:
    assert not get_signal("photodna").can_compute("image")


def test_streaming_digests_equal_hashlib(tmp_path: Path) -> None:
    data = hashlib.sha256(b"seed").digest() * 200_000  # 6.4 MB, several read chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    got = stream_digests(path, [MD5, SHA1, SHA256])
    assert got == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_third_party_plugin_through_entry_point(tmp_path: Path) -> None:
    """A package that only declares an entry point adds a signal without touching Ridgeline."""
    site = tmp_path / "site"
    pkg = site / "myhashes"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import hashlib
            from ridgeline.signals.crypto import HexDigestSignal
            BLAKE = HexDigestSignal("blake2b", 128)
            """
        )
    )
    dist = site / "myhashes-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myhashes\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ridgeline.signals]\nblake2b = myhashes:BLAKE\n")
    blob = tmp_path / "x.bin"
    blob.write_bytes(b"hello")
    code = textwrap.dedent(
        f"""
        import sys, json
        sys.path.insert(0, {str(site)!r})
        from ridgeline.hashing import hash_file
        from ridgeline.signals import all_signals
        assert "blake2b" in all_signals()
        print(json.dumps(hash_file({str(blob)!r}, ["blake2b", "md5"]).to_json()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    row = json.loads(out.stdout)
    assert row["signals"]["blake2b"] == hashlib.blake2b(b"hello").hexdigest()
    assert row["signals"]["md5"] == hashlib.md5(b"hello").hexdigest()
    assert row["error"] is None


def _plugin_site(tmp_path: Path) -> Path:
    """The docs/signals.md blake2b plug-in as an installed distribution (dist-info)."""
    site = tmp_path / "site"
    pkg = site / "myhashes"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from ridgeline.signals.crypto import HexDigestSignal\n"
        'BLAKE = HexDigestSignal("blake2b", 128)\n'
    )
    dist = site / "myhashes-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myhashes\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ridgeline.signals]\nblake2b = myhashes:BLAKE\n")
    return site


def test_plugin_signal_through_every_path(tmp_path: Path, serve_process: Any) -> None:
    """create list -> import -> index -> match -> scan -> /v1/match -> export -> re-import,
    with a plug-in that only declares an entry point; its hashes survive every step."""
    import httpx

    site = _plugin_site(tmp_path)
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(src)])}
    db = str(tmp_path / "plug.db")
    ridgeline = str(Path(sys.executable).parent / "ridgeline")

    def cli(*args: str, expect: int = 0) -> str:
        done = subprocess.run([ridgeline, *args], env=env, capture_output=True, text=True)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done.stdout

    files = tmp_path / "files"
    files.mkdir()
    known, other = files / "known.bin", files / "other.bin"
    known.write_bytes(b"a benign synthetic document\n" * 50)
    other.write_bytes(b"another benign synthetic document\n")
    blake = hashlib.blake2b(known.read_bytes()).hexdigest()

    cli("lists", "create", "plug", "--db", db)
    listing = tmp_path / "plug.jsonl"
    listing.write_text(json.dumps({"signals": {"blake2b": blake.upper()}, "source": "t"}) + "\n")
    cli("lists", "import", "plug", str(listing), "--db", db)

    # `match`: a plain hash by --signal, and a file on every signal it has (the plug-in too)
    (row,) = [json.loads(x) for x in cli(
        "match", "--list", "plug", "--signal", "blake2b", blake, "--db", db, "--format", "jsonl"
    ).splitlines()]  # fmt: skip
    assert [(m["signal"], m["value"]) for m in row["matches"]] == [("blake2b", blake)]
    out = cli("match", "--list", "plug", str(known), str(other), "--db", db, "--format", "jsonl")
    first, second = (json.loads(x) for x in out.splitlines())
    assert first["signals"]["blake2b"] == blake
    assert [m["signal"] for m in first["matches"]] == ["blake2b"] and second["matches"] == []

    # `scan`
    report = tmp_path / "scan.jsonl"
    cli(
        "scan",
        str(files),
        "--list",
        "plug",
        "--db",
        db,
        "--output",
        str(report),
        "--format",
        "jsonl",
    )
    by_path = {Path(r["path"]).name: r for r in map(json.loads, report.read_text().splitlines())}
    assert [m["signal"] for m in by_path["known.bin"]["matches"]] == ["blake2b"]
    assert by_path["other.bin"]["matches"] == []

    # `/v1/match` on a real server that loaded the plug-in
    key = json.loads(cli("keys", "create", "--role", "provider", "--db", db, "--format", "json"))
    server = serve_process("serve", "--port", "{port}", "--db", db, env=env)
    headers = {"X-API-Key": key["key"]}
    res = httpx.post(
        f"{server.base}/v1/match", headers=headers, files={"file": ("k.bin", known.read_bytes())}
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["signals"]["blake2b"] == blake
    assert [m["signal"] for m in body["matches"]] == ["blake2b"]
    assert body["matches"] == first["matches"]
    res = httpx.post(
        f"{server.base}/v1/match", headers=headers, json={"signals": {"blake2b": blake}}
    )
    assert [m["entry_id"] for m in res.json()["matches"]] == [row["matches"][0]["entry_id"]]

    # every export format; the native ones carry the plug-in's column and import back
    for fmt in ("csv", "jsonl", "ncmec-xml", "vics", "icse", "stopncii"):
        exported = tmp_path / f"export.{fmt}"
        cli("lists", "export", "plug", "--format", fmt, "--out", str(exported), "--db", db)
        assert exported.exists()
    header = (tmp_path / "export.csv").read_text().splitlines()[0].split(",")
    assert "blake2b" in header and header.index("blake2b") < header.index("classifications")
    for fmt in ("csv", "jsonl"):
        cli("lists", "create", f"again-{fmt}", "--db", db)
        cli("lists", "import", f"again-{fmt}", str(tmp_path / f"export.{fmt}"), "--format", fmt,
            "--db", db)  # fmt: skip
        entries = json.loads(
            cli("lists", "entries", "ls", f"again-{fmt}", "--db", db, "--format", "json")
        )
        assert [e["signals"] for e in entries] == [{"blake2b": blake}], fmt
