"""Rows of every table after importing awkward NCMEC XML and VICS JSON files, to compare
a writer change before and after (issue 10: "the same rows in every table").

Writes four files of 20,000 records each into `--dir` (NCMEC: repeated ids that
update, shared hashes, upper-case hex, a bad fingerprint beside a good one, unknown
fingerprints, videos, PDQ, no timestamp, deletions before and after their entries and
unmatched ones; VICS: categories 0/4/unknown/missing, repeated MediaIDs,
AlternativeHashes, odd offsets, Series, VictimIdentified, unknown fields, the UK
profile, records with no hash), imports each (the second of each format with
`since="last"`) into a list without review and into one with review and
`not_listable="reference"`, and writes the import summaries and every table's rows
(sorted; times, batch names and log details masked) to OUT. Compare two runs with `cmp`.

Usage: python bench/import_dump.py OUT [--db sqlite|POSTGRES_URL] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from ridgeline import exchange
from ridgeline import lists as L
from ridgeline.store import Store

RECORDS = 20_000
#: Columns whose values differ run to run (times, batch names, chained log hashes).
MASKED = {"at", "created_at", "updated_at", "deleted_at", "batch", "prev_hash", "hash"}
MASKED |= {"details", "mac", "recorded_at", "upd"}


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def ncmec(seed: int, n: int, base: int = 0) -> bytes:
    """An NCMEC document of n entries with every awkward case above."""
    rng = random.Random(seed)
    pool = [(_hex(rng, 128), _hex(rng, 160)) for _ in range(n // 4)]
    out = [
        '<?xml version="1.0"?>\n<queryResult xmlns="https://hashsharing.ncmec.org/npo/v2/">',
        f'<images count="{n}">',
    ]
    dels = []
    members = [
        '<member id="1">Bench</member>',
        '<member id="2"/>',
        "",
        '<member id="3">Other</member>',
    ]
    labels = ["<classification>A1</classification>", "<classification>b2</classification>", ""]
    labels.append("<classification>X9</classification>")
    for i in range(n):
        r = rng.random()
        eid = f"e{base + i}" if rng.random() > 0.1 else f"e{rng.randrange(base + n)}"
        md5, sha1 = (_hex(rng, 128), _hex(rng, 160)) if rng.random() > 0.1 else rng.choice(pool)
        if rng.random() < 0.05:
            md5 = md5.upper()
        ts = f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:00:00Z"
        member = rng.choice(members)
        label = rng.choice(labels)
        stamp = f"<timestamp>{ts}</timestamp>" if rng.random() > 0.05 else ""
        fps = f"<md5>{md5}</md5><sha1>{sha1}</sha1>"
        if r < 0.03:
            fps = f"<md5>zz{md5[2:]}</md5><sha1>{sha1}</sha1>"
        elif r < 0.05:
            fps = f"<md5>{md5}</md5><tmk-pdqf>abc{i}</tmk-pdqf>"
        elif r < 0.06:
            fps = f"<pdq>{_hex(rng, 256)}</pdq>"
        elif r < 0.065:
            fps = "<md5>nothex</md5>"
        elif r < 0.08:
            fps = f"<sha1>{sha1}</sha1>"
        tag = "image" if rng.random() > 0.1 else "video"
        out.append(
            f"<{tag}><id>{eid}</id>{member}{stamp}{label}<fingerprints>{fps}</fingerprints></{tag}>"
        )
        if rng.random() < 0.03:
            dels.append((rng.choice([f"e{rng.randrange(base + n + 50)}"]), ts, member))
    half = len(dels) // 2
    out.append("</images>")
    out.append("<deletedImages>")
    for eid, ts, member in dels[:half]:
        out.append(
            f"<deletedImage><id>{eid}</id>{member}<timestamp>{ts}</timestamp></deletedImage>"
        )
    out.append("</deletedImages>")
    out.append("<images>")  # a second group after the deletions
    for eid, ts, member in dels[half:]:
        out.append(
            f"<image><id>{eid}x</id>{member}<timestamp>{ts}</timestamp>"
            f"<fingerprints><md5>{_hex(rng, 128)}</md5></fingerprints></image>"
        )
    out.append("</images>")
    out.append("<deletedVideos>")
    for eid, ts, member in dels[half:]:
        out.append(
            f"<deletedVideo><id>{eid}</id>{member}<timestamp>{ts}</timestamp></deletedVideo>"
        )
    out.append("</deletedVideos>")
    out.append("</queryResult>")
    return "\n".join(out).encode()


def vics(seed: int, n: int, base: int = 0) -> bytes:
    """A VICS 2.0 `#Media` file of n media with every awkward case above."""
    rng = random.Random(seed)
    pool = [(_hex(rng, 128).upper(), _hex(rng, 160).upper()) for _ in range(n // 4)]
    media = []
    dates = ["2026-01-01T00:00:00Z", "", "2025-12-31T10:00:00"]
    for i in range(n):
        if rng.random() > 0.1:
            md5, sha1 = _hex(rng, 128).upper(), _hex(rng, 160).upper()
        else:
            md5, sha1 = rng.choice(pool)
        media_id = base + i if rng.random() > 0.1 else rng.randrange(base + n)
        m: dict[str, Any] = {
            "MediaID": media_id,
            "Category": rng.choice([1, 1, 1, 2, 3, 0, 4, "2", 9]),
        }
        r = rng.random()
        if r < 0.9:
            m["MD5"] = md5
        if r > 0.05:
            m["SHA1"] = sha1
        if r < 0.02:
            m["MD5"] = "XYZ"
        if rng.random() < 0.9:
            dates[1] = f"2026-0{rng.randint(1, 9)}-01T00:00:00+01:00Z"
            m["DateUpdated"] = rng.choice(dates)
        if rng.random() < 0.05:
            m["AlternativeHashes"] = [
                {"HashName": "PDQ", "HashValue": _hex(rng, 256)},
                {"HashName": "Foo", "HashValue": "1"},
            ]
        if rng.random() < 0.05:
            m["Series"] = rng.choice(["S1", "S2", ""])
        if rng.random() < 0.05:
            m["VictimIdentified"] = rng.choice([True, False, "true"])
        if rng.random() < 0.03:
            m["Comment"] = f"c{i}"
        if rng.random() < 0.01:
            m["Category"] = None
        if rng.random() < 0.01:
            m = {"MediaID": i}
        media.append(m)
    profile = rng.choice(["US", "US", "UK"])
    context = (
        f"http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{profile}/$metadata#Media"
    )
    return json.dumps({"@odata.context": context, "value": media}).encode()


def open_store(db: str) -> Store:
    """A new, empty database: a SQLite file, or a scratch PostgreSQL database."""
    if db == "sqlite":
        path = Path(tempfile.gettempdir()) / f"import_dump_{os.getpid()}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return Store.open(str(path), create=True)
    server = db.rsplit("/", 1)[0]
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS ridgeline_import_dump WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE ridgeline_import_dump"))
    admin.dispose()
    return Store.open(f"{server}/ridgeline_import_dump", create=True)


def dump(store: Store, out: Path, summaries: list[dict[str, Any]]) -> None:
    """Summaries, then every table's rows sorted, values that vary masked."""
    postgres = store.dialect == "postgresql"
    with out.open("w") as fh, store.engine.connect() as conn:
        for summary in summaries:
            fh.write(json.dumps(summary, sort_keys=True) + "\n")
        if postgres:
            query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        for (table,) in list(conn.execute(text(query))):
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            columns = list(result.keys())
            rows = []
            for row in result:
                values = []
                for column, value in zip(columns, row, strict=True):
                    masked = column in MASKED or (
                        table == "log_records"
                        and column not in ("seq", "actor", "action", "subject")
                    )
                    if masked:
                        value = "<t>" if value is not None else None
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).hex()
                    json_column = (table, column) in {
                        ("exchange_meta", "data"),
                        ("entries", "classifications"),
                        ("entries", "case_numbers"),
                    }
                    if json_column and isinstance(value, str):
                        value = json.loads(value)
                    values.append(value)
                rows.append(json.dumps(values, default=str, sort_keys=True))
            rows.sort()
            fh.write(f"## {table} {columns} {len(rows)}\n")
            fh.writelines(r + "\n" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL server URL")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "import_dump")
    args = parser.parse_args()
    args.dir.mkdir(exist_ok=True)
    files = []
    for fmt, make, ext in (("ncmec-xml", ncmec, "xml"), ("vics", vics, "json")):
        for page, (seed, base) in enumerate(((11, 0), (12, 15_000))):
            path = args.dir / f"{fmt}{page}.{ext}"
            if not path.exists():
                path.write_bytes(make(seed, RECORDS, base))
            files.append((fmt, path, page))
    store = open_store(args.db)
    with store.session() as session:
        for name, quorum in (("n", 0), ("v", 0), ("r", 2)):
            L.create_list(session, name, review_quorum=quorum)
    summaries = []
    for fmt, path, page in files:
        plain = "v" if fmt == "vics" else "n"
        for name, options in ((plain, {}), ("r", {"not_listable": "reference"})):
            with store.session() as session:
                hash_list = L.get_list(session, name)
                since = "last" if page else None
                report = exchange.import_file(session, hash_list, path, fmt, since=since, **options)
                summary = report.to_json()
                summary.pop("batch")
                summaries.append(summary)
    dump(store, args.out, summaries)
    store.close()
    print(json.dumps({"out": str(args.out), "imports": [s["added"] for s in summaries]}))


if __name__ == "__main__":
    main()
