"""Exchange throughput: NCMEC XML parse, import, export, signed release and pull.

Generates N synthetic entries (random benign md5/sha1 values) into an NCMEC
hash-sharing document, then times in this process, on SQLite files in a temp dir:
parse, import (one transaction), NCMEC/VICS export, release, and pull into a second
database; then the same list exported as our own CSV and imported into a third
database (the one import writer, fed by the native parser). Prints ONE JSON line.

Usage: python bench/exchange.py [--entries 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from ridgeline import exchange, releases
from ridgeline import lists as L
from ridgeline.store import Store


def make_document(n: int, seed: int = 1) -> bytes:
    """An NCMEC `queryResult` with n image entries of random hex digests."""
    rng = random.Random(seed)
    parts = ['<queryResult xmlns="https://hashsharing.ncmec.org/npo/v2/">']
    parts.append(f'<images count="{n}" maxTimestamp="2026-01-01T00:00:00Z">')
    for i in range(n):
        md5, sha1 = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(160):040x}"
        parts.append(
            f'<image><id>b{i}</id><member id="1">Bench</member>'
            f"<timestamp>2026-01-01T00:00:00Z</timestamp><classification>A1</classification>"
            f"<fingerprints><md5>{md5}</md5><sha1>{sha1}</sha1></fingerprints></image>"
        )
    parts.append("</images></queryResult>")
    return "".join(parts).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20000)
    args = parser.parse_args()
    out: dict[str, object] = {"bench": "exchange", "entries": args.entries}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        doc = d / "ncmec.xml"
        doc.write_bytes(make_document(args.entries))
        t = time.perf_counter()
        parsed = exchange.parse_bytes(doc.read_bytes(), "ncmec-xml")
        out["parse_per_s"] = round(len(parsed.records) / (time.perf_counter() - t))
        store = Store.open(d / "a.db")
        t = time.perf_counter()
        with store.session() as session:
            hash_list = L.create_list(session, "bench")
            report = exchange.apply_records(session, hash_list, parsed)
        out["import_per_s"] = round(report.added / (time.perf_counter() - t))
        for fmt in ("ncmec-xml", "vics"):
            t = time.perf_counter()
            with store.session() as session:
                data = exchange.export_list(session, L.get_list(session, "bench"), fmt)
            out[f"export_{fmt}_per_s"] = round(args.entries / (time.perf_counter() - t))
            out[f"export_{fmt}_bytes"] = len(data)
        releases.generate_keypair(d / "k.key", d / "k.pub")
        t = time.perf_counter()
        with store.session() as session:
            releases.create_release(
                session, L.get_list(session, "bench"), releases.load_private_key(d / "k.key"),
                d / "rel",
            )  # fmt: skip
        out["release_s"] = round(time.perf_counter() - t, 3)
        other = Store.open(d / "b.db")
        t = time.perf_counter()
        with other.session() as session:
            releases.pull_release(session, d / "rel", releases.load_public_key(d / "k.pub"))
        out["pull_s"] = round(time.perf_counter() - t, 3)
        with store.session() as session:
            (d / "list.csv").write_bytes(
                exchange.export_list(session, L.get_list(session, "bench"), "csv")
            )
        third = Store.open(d / "c.db")
        t = time.perf_counter()
        with third.session() as session:
            report = exchange.import_file(
                session, L.create_list(session, "bench"), d / "list.csv", "csv"
            )
        out["import_csv_per_s"] = round(report.added / (time.perf_counter() - t))
        third.close()
        store.close()
        other.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
