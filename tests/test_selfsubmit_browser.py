"""The self-submission page in real Chromium against a real `ridgeline serve`.

The browser's PDQ equals `ridgeline hash` exact mode on every reference image and on
PNGs of every colour type, depth and interlace (the page's own decoder) and JPEGs with
EXIF orientations; no request carries media; a submission is matchable, flagged for
review by a provider's scan, and gone from matching within a second of withdrawal.

Debian's /usr/bin/chromium only (never a downloaded browser); skipped where missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser

from browser import (
    CHROMIUM,
    browser,  # noqa: F401  (fixture: the process's one Playwright and Chromium)
)
from ridgeline.pdq import hash_file
from ridgeline.service.keys import create_key
from ridgeline.store import Store

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "pdq"
if not REFERENCE.is_dir():
    REFERENCE = Path("/work/wt/shared/reference/pdq")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def _db(tmp_path: Path) -> str:
    path = tmp_path / "self.db"
    Store.open(path).close()
    return str(path)


def _serve(serve_process: Callable[..., Any], db: str, tmp_path: Path, workers: int = 1) -> Any:
    return serve_process(
        "serve", "--port", "{port}", "--db", db, "--index-dir", str(tmp_path / "index"),
        "--self-submit-rate", "20", "--workers", str(workers),
    )  # fmt: skip


def reference_images() -> list[Path]:
    return sorted(p for p in REFERENCE.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


# --- PNGs written byte by byte, so every colour type, depth and interlace is covered ----


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _pack_row(samples: np.ndarray, depth: int) -> bytes:
    """One row of samples (ints) packed at `depth` bits, big-endian."""
    flat = samples.reshape(-1).astype(np.uint32)
    if depth == 16:
        return flat.astype(">u2").tobytes()
    if depth == 8:
        return flat.astype(np.uint8).tobytes()
    per = 8 // depth
    out = bytearray((len(flat) + per - 1) // per)
    for i, v in enumerate(flat):
        out[i // per] |= int(v) << (8 - depth * (i % per + 1))
    return bytes(out)


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip


def write_png(
    samples: np.ndarray,
    depth: int,
    colour: int,
    *,
    interlace: bool = False,
    plte: bytes | None = None,
    exif_orientation: int | None = None,
    filters: bool = True,
) -> bytes:
    """A PNG of `samples` (h, w, channels) with filter types cycling 0-4 row by row."""
    h, w = samples.shape[:2]
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = bytearray()
    bpp = max(1, depth * samples.shape[2] // 8)
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        prev = bytes(len(_pack_row(sub[0], depth)))
        for j, row in enumerate(sub):
            line = _pack_row(row, depth)
            kind = (j % 5) if filters else 0
            enc = bytearray(len(line))
            for i, x in enumerate(line):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if kind == 0:
                    pred = 0
                elif kind == 1:
                    pred = a
                elif kind == 2:
                    pred = b
                elif kind == 3:
                    pred = (a + b) >> 1
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                enc[i] = (x - pred) & 255
            raw += bytes([kind]) + enc
            prev = line
    out = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, int(interlace))
    )
    if exif_orientation is not None:
        tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
        tiff += struct.pack(">HHIHH", 0x0112, 3, 1, exif_orientation, 0) + struct.pack(">I", 0)
        out += _chunk(b"eXIf", tiff)
    if plte is not None:
        out += _chunk(b"PLTE", plte)
    out += _chunk(b"gAMA", struct.pack(">I", 45455))  # browsers apply it; Pillow does not
    return out + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")


def _pattern(h: int, w: int, channels: int, top: int, seed: int) -> np.ndarray:
    """A benign picture: smooth gradients plus a checker, values 0..top."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        base = (np.sin(x / (7 + 3 * c)) + np.cos(y / (5 + 2 * c)) + 2) / 4
        checker = ((x // 9 + y // 11 + c) % 2) * 0.25
        planes.append(np.clip((base * 0.75 + checker) * top + rng.integers(0, 2, (h, w)), 0, top))
    return np.stack(planes, axis=2).astype(np.int64)


def generated_images(folder: Path) -> list[Path]:
    """PNGs of every colour type and depth (some interlaced, some with orientation) and
    JPEGs with EXIF orientations: all benign patterns made here."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, bytes]] = []
    h, w = 61, 83
    for depth in (1, 2, 4, 8, 16):
        cases.append((f"grey{depth}", write_png(_pattern(h, w, 1, 2**depth - 1, depth), depth, 0)))
    cases.append(("grey16-low", write_png(_pattern(h, w, 1, 400, 3), 16, 0)))
    for depth in (8, 16):
        top = 2**depth - 1
        cases.append((f"rgb{depth}", write_png(_pattern(h, w, 3, top, 10 + depth), depth, 2)))
        cases.append((f"la{depth}", write_png(_pattern(h, w, 2, top, 20 + depth), depth, 4)))
        cases.append((f"rgba{depth}", write_png(_pattern(h, w, 4, top, 30 + depth), depth, 6)))
    for depth in (1, 2, 4, 8):
        n = 2**depth
        plte = bytes(np.random.default_rng(depth).integers(0, 256, 3 * max(1, n - 1), np.uint8))
        cases.append(
            (
                f"palette{depth}",
                write_png(_pattern(h, w, 1, n - 1, 40 + depth), depth, 3, plte=plte),
            )
        )  # the last index lies past the palette: Pillow shows it black
    cases.append(("rgb8-adam7", write_png(_pattern(97, 131, 3, 255, 50), 8, 2, interlace=True)))
    cases.append(("grey2-adam7", write_png(_pattern(37, 29, 1, 3, 51), 2, 0, interlace=True)))
    cases.append(("rgba16-adam7", write_png(_pattern(45, 52, 4, 65535, 52), 16, 6, interlace=True)))
    rgba = _pattern(h, w, 4, 255, 60)
    rgba[..., 3] = np.where(rgba[..., 0] > 128, 0, 255)  # fully transparent pixels too
    cases.append(("rgba8-transparent", write_png(rgba, 8, 6)))
    for turn in (3, 6, 8):
        cases.append((f"png-turn{turn}", write_png(_pattern(h, w, 3, 255, 70 + turn), 8, 2,
                                                   exif_orientation=turn)))  # fmt: skip
    paths = []
    for name, data in cases:
        path = folder / f"{name}.png"
        path.write_bytes(data)
        paths.append(path)
    picture = Image.fromarray(_pattern(300, 420, 3, 255, 80).astype(np.uint8))
    for turn in (1, 3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = turn
        path = folder / f"jpeg-turn{turn}.jpg"
        picture.save(path, quality=88, exif=exif.tobytes())
        paths.append(path)
    grey = folder / "jpeg-grey.jpg"
    picture.convert("L").save(grey, quality=90)
    paths.append(grey)
    return paths


def _hash_in_page(page: Any, base: str, files: list[Path], query: str = "") -> list[dict[str, str]]:
    page.goto(f"{base}/submit-hashes/{query}")
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#files", [str(f) for f in files])
    page.wait_for_selector(f"body[data-hashed='{len(files)}']", timeout=120_000)
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        "#items tbody tr",
        "rows => rows.map(r => ({md5: r.dataset.md5, pdq: r.dataset.pdq, "
        "quality: r.dataset.quality}))",
    )
    return rows


def _watch(page: Any) -> list[Any]:
    seen: list[Any] = []
    page.on("request", lambda r: seen.append(r))
    return seen


def _assert_no_media(requests: list[Any], files: list[Path]) -> None:
    """No request carries any file's bytes; bodies are JSON with hashes only."""
    snippets = []
    for f in files:
        data = f.read_bytes()
        snippets += [data[i : i + 48] for i in range(0, len(data) - 48, max(48, len(data) // 16))]
    for r in requests:
        body = r.post_data_buffer or b""
        assert not any(s in body for s in snippets), f"{r.method} {r.url} carries file bytes"
        assert r.url.startswith("http://127.0.0.1:"), r.url  # nothing leaves for elsewhere
        if r.method != "GET":
            assert r.url.split("/submit-hashes/api/")[-1] in ("submissions", "status", "withdraw")
            sent = json.loads(body)
            assert set(sent) <= {"items", "case_number"}
            for item in sent.get("items", []):
                assert set(item) <= {"md5", "pdq", "quality"}


@pytest.mark.parametrize("wasm", ["pdq.wasm", "pdq-scalar.wasm"])
def test_browser_pdq_equals_exact_mode_on_every_reference_image(
    wasm: str,
    browser: Browser,  # noqa: F811
    tmp_path: Path,
    serve_process: Callable[..., Any],
) -> None:
    """Both builds (SIMD, and scalar for browsers without SIMD) on every image."""
    files = reference_images() + generated_images(tmp_path / "generated")
    assert len(reference_images()) >= 30
    server = _serve(serve_process, _db(tmp_path), tmp_path)
    page = browser.new_page()
    requests = _watch(page)
    rows = _hash_in_page(page, server.base, files, "" if wasm == "pdq.wasm" else "?pdq=scalar")
    assert page.get_attribute("body", "data-pdq-wasm") == wasm
    assert len(rows) == len(files)
    wrong = []
    for path, row in zip(files, rows, strict=True):
        expected, quality = hash_file(path)
        assert row["md5"] == hashlib.md5(path.read_bytes()).hexdigest(), path.name
        if (row["pdq"], int(row["quality"] or -1)) != (expected, quality):
            wrong.append((path.name, row["pdq"], row["quality"], expected, quality))
    assert not wrong, wrong
    # choosing and hashing files sent nothing but the page's own GETs
    assert all(r.method == "GET" for r in requests), [(r.method, r.url) for r in requests]
    _assert_no_media(requests, files)
    page.close()


def _provider_key(db: str) -> str:
    store = Store.open(db)
    with store.session() as s:
        _, secret = create_key(s, "provider-example", "provider")
    store.close()
    return secret


def _match(base: str, key: str, md5: str, pdq: str) -> list[dict[str, Any]]:
    res = httpx.post(
        f"{base}/v1/match",
        json={"signals": {"md5": md5, "pdq": pdq}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert res.status_code == 200, res.text
    matches: list[dict[str, Any]] = res.json()["matches"]
    return matches


def _ridgeline(*args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "ridgeline")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def test_submit_scan_flags_for_review_then_withdraw_within_a_second(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
    serve_process: Callable[..., Any],
) -> None:
    db = _db(tmp_path)
    key = _provider_key(db)
    server = _serve(serve_process, db, tmp_path, workers=2)  # withdrawal reaches both
    own = tmp_path / "mine"
    own.mkdir()
    photo = own / "photo.png"
    photo.write_bytes(write_png(_pattern(240, 320, 3, 255, 99), 8, 2))
    buf = io.BytesIO()
    Image.fromarray(_pattern(200, 260, 3, 255, 98).astype(np.uint8)).save(buf, "JPEG", quality=90)
    (own / "second.jpg").write_bytes(buf.getvalue())
    files = [photo, own / "second.jpg"]

    page = browser.new_page()
    requests = _watch(page)
    rows = _hash_in_page(page, server.base, files)
    shown = json.loads(page.inner_text("#payload"))
    assert shown == {"items": [{"md5": r["md5"], "pdq": r["pdq"], "quality": int(r["quality"])}
                               for r in rows]}  # fmt: skip
    page.click("#send")
    page.wait_for_selector("body[data-submitted]")
    case_number = page.inner_text("#case-result").strip()
    assert case_number.startswith("RL-") and len(case_number) == 22
    posts = [r for r in requests if r.method == "POST"]
    assert len(posts) == 1 and json.loads(posts[0].post_data_buffer) == shown

    md5, pdq = rows[0]["md5"], rows[0]["pdq"]
    deadline = time.monotonic() + 5
    while not (found := _match(server.base, key, md5, pdq)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found and all(m["review"] is True and m["purpose"] == "self-submitted" for m in found)
    assert {m["signal"] for m in found} == {"md5", "pdq"}

    # a provider's scan of an upload that is the same picture: flagged for review only,
    # even when quarantine is asked for; the list refuses to be set to act on its own
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    upload = uploads / "upload.png"
    upload.write_bytes(photo.read_bytes())
    refused = _ridgeline("lists", "actions", "self-submitted", "--set", "quarantine", "--db", db)
    assert refused.returncode == 2 and "human review" in refused.stderr, refused.stderr
    scan = _ridgeline(
        "scan", str(uploads), "--db", db, "--action", "quarantine",
        "--quarantine-dir", str(tmp_path / "q"), "--format", "jsonl",
    )  # fmt: skip
    assert scan.returncode in (0, 1), scan.stderr
    records = [json.loads(line) for line in scan.stdout.splitlines() if line.startswith("{")]
    actions = [a for r in records for a in r.get("actions", [])]
    assert {a["action"] for a in actions} == {"flag"}, records
    assert actions[0]["review"] == ["self-submitted"]
    assert actions[0]["downgraded"] == ["self-submitted"]
    assert upload.exists()  # not quarantined

    # withdraw on the page; matching forgets the hashes within a second
    page.on("dialog", lambda d: d.accept())
    page.fill("#withdraw-number", case_number)
    page.click("#withdraw-button")
    page.wait_for_selector("#withdraw-result[data-status='withdrawn']")
    withdrawn_at = time.monotonic()
    # Each request may reach either worker: keep asking, for both files, until well past
    # the second, so that a worker still matching after it cannot hide behind the other.
    while (elapsed := time.monotonic() - withdrawn_at) < 1.3:
        if _match(server.base, key, md5, pdq) or _match(
            server.base, key, rows[1]["md5"], rows[1]["pdq"]
        ):
            assert elapsed < 1.0, "still matching a second after withdrawal"
        time.sleep(0.02)
    page.click("#check")
    page.wait_for_function(
        "document.getElementById('withdraw-result').textContent.includes('Withdrawn')"
    )
    _assert_no_media(requests, files)
    page.close()


def test_spanish_page_language_switch_and_accessibility(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
    serve_process: Callable[..., Any],
) -> None:
    """Spanish from the browser's language, English by the switch; axe-core finds no
    violations in either, with files listed."""
    from axe_playwright_python.sync_playwright import Axe

    server = _serve(serve_process, _db(tmp_path), tmp_path)
    photo = tmp_path / "photo.png"
    photo.write_bytes(write_png(_pattern(64, 64, 3, 255, 5), 8, 2))
    page = browser.new_page(locale="es-ES")
    page.goto(f"{server.base}/submit-hashes/")
    assert page.get_attribute("html", "lang") == "es"
    assert "huellas" in page.inner_text("h1")
    page.set_input_files("#files", str(photo))
    page.wait_for_selector("body[data-hashed='1']")
    spanish = Axe().run(page)
    assert spanish.response["testEngine"]["name"] == "axe-core"  # it did run
    assert spanish.response["incomplete"] or spanish.response["inapplicable"]
    assert spanish.violations_count == 0, spanish.generate_report()
    page.click("a[hreflang='en']")
    page.wait_for_selector("html[lang='en']")
    assert "fingerprints" in page.inner_text("h1")
    english = Axe().run(page)
    assert english.violations_count == 0, english.generate_report()
    page.close()
