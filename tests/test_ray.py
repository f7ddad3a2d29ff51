"""The Ray engine on a real local Ray instance gives the same results as the local one."""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ridgeline import lists as L
from ridgeline.scan.pipeline import ScanOptions, scan
from ridgeline.store import Store

ray = pytest.importorskip("ray")

BAD = b"known bad (synthetic)\n"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()


def _tree(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        img = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).resize((96, 96))
        img.save(root / f"img{i}.png")
    (root / "bad.txt").write_bytes(BAD)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("in/bad.txt", BAD)
        zf.writestr("../evil.txt", BAD)
    (root / "pack.zip").write_bytes(buf.getvalue())
    return root


def _comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**r, "actions": [{k: v for k, v in a.items() if k != "report_id"} for a in r["actions"]]}
        for r in rows
    ]


@pytest.mark.slow
def test_ray_engine_matches_local_engine(ray_cluster: None, store: Store, tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    from ridgeline.hashing import hash_file

    with store.session() as s:
        hl = L.create_list(s, "known")
        L.add_entry(s, hl, {"md5": hashlib.md5(BAD).hexdigest()})
        L.add_entry(s, hl, {"pdq": hash_file(root / "img1.png").signals["pdq"]["hash"]})
    local: list[dict[str, Any]] = []
    remote: list[dict[str, Any]] = []
    from ridgeline.reports.drafts import ReportSink

    opts = {"lists": ["known"], "actions": ["flag", "report"], "report_sink": ReportSink(None)}
    s1 = scan(store, [root], ScanOptions(**opts), on_result=local.append)
    s2 = scan(store, [root], ScanOptions(engine="ray", **opts), on_result=remote.append)
    assert _comparable(local) == _comparable(remote)
    assert (s1.files, s1.matched, s1.errors, s1.reports) == (
        s2.files,
        s2.matched,
        s2.errors,
        s2.reports,
    )
    assert s2.matched == 3 and s2.errors == 2  # bad.txt, zip member, img1; broken.png, ../evil.txt
