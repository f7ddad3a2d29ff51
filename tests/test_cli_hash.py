"""`ridgeline hash` on images: batches with good and bad files, output shapes, options."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ridgeline.cli import main
from ridgeline.cli.hash import _table_row
from ridgeline.hashing import hash_file
from ridgeline.pdq import hash_rgb
from ridgeline.signals.pdq import hamming


def make_photo(width: int, height: int, seed: int) -> np.ndarray:
    """A benign synthetic picture: smooth gradient, a few soft blocks, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 200 // width + 30, y * 200 // height + 20, (x * y) % 97 + 80], -1)
    for _ in range(5):
        x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        img[y0 : y0 + height // 4, x0 : x0 + width // 4] = rng.integers(0, 256, 3)
    img = img + rng.integers(-3, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG declaring huge dimensions (a decompression bomb's header)."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    data = b"\x89PNG\r\n\x1a\n"
    for chunk in (ihdr, idat):
        data += struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data)


def _rows(output: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    return {Path(r["path"]).name: r for r in rows}


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    photo = make_photo(320, 240, seed=5)
    Image.fromarray(photo).save(folder / "a-good.png")
    Image.fromarray(make_photo(400, 300, seed=6)).save(folder / "b-good.jpg", quality=90)
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(folder / "c-flat.png")
    jpeg = (folder / "b-good.jpg").read_bytes()
    (folder / "d-truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "e-empty.jpg").write_bytes(b"")
    (folder / "f-random.jpg").write_bytes(np.random.default_rng(1).bytes(4096))
    _png_header_only(folder / "g-bomb.png", 30000, 30000)
    (folder / "h-notes.txt").write_text("plain text is hashed as a file, not an error\n")
    sub = folder / "sub"
    sub.mkdir()
    Image.fromarray(photo).save(sub / "i-copy.bmp")
    return folder


def test_batch_goes_on_past_bad_files(batch: Path) -> None:
    result = CliRunner().invoke(main, ["hash", "-r", str(batch), "--format", "jsonl"])
    assert result.exit_code == 1, result.output
    rows = _rows(result.stdout)
    assert len(rows) == 9
    for name in ("a-good.png", "b-good.jpg", "c-flat.png", "i-copy.bmp"):
        row = rows[name]
        assert set(row) == {"path", "signals", "error"}
        assert row["error"] is None
        assert set(row["signals"]) == {"md5", "sha1", "sha256", "pdq"}
        assert set(row["signals"]["pdq"]) == {"hash", "quality"}
        path = Path(row["path"])
        assert row["signals"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rows["a-good.png"]["signals"]["pdq"] == rows["i-copy.bmp"]["signals"]["pdq"]
    assert rows["c-flat.png"]["signals"]["pdq"]["quality"] < 50  # present, flagged by quality
    expected_errors = {
        "d-truncated.jpg": "truncated",
        "e-empty.jpg": "empty",
        "f-random.jpg": "not a recognised image",
        "g-bomb.png": "decompression bomb|too large",
    }
    for name, fragment in expected_errors.items():
        error = rows[name]["error"]
        assert error and error.startswith("pdq: "), (name, error)
        assert any(f in error for f in fragment.split("|")), (name, error)
        assert "md5" in rows[name]["signals"]  # the bytes are still fingerprinted
    assert rows["h-notes.txt"]["error"] is None and "pdq" not in rows["h-notes.txt"]["signals"]
    assert "4 of 9 file(s) had errors" in result.stderr


def test_jobs_two_gives_the_same_rows(batch: Path) -> None:
    runner = CliRunner()
    one = runner.invoke(main, ["hash", "-r", str(batch), "--format", "jsonl"])
    two = runner.invoke(main, ["hash", "-r", str(batch), "--format", "jsonl", "--jobs", "2"])
    assert two.exit_code == 1
    assert one.stdout == two.stdout  # same rows, same (input) order


def test_dihedral_fast_and_table(batch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner(env={"COLUMNS": "100"})  # the width a pipe gets, whatever the terminal
    good = str(batch / "b-good.jpg")
    dih = runner.invoke(main, ["hash", good, "--dihedral", "--format", "json"])
    assert dih.exit_code == 0, dih.output
    (row,) = json.loads(dih.stdout)
    variants = row["signals"]["pdq"]["dihedral"]
    assert list(variants) == [
        "orig",
        "rot90",
        "rot180",
        "rot270",
        "flipx",
        "flipy",
        "flipplus",
        "flipminus",
    ]
    assert variants["orig"]["hash"] == row["signals"]["pdq"]["hash"]
    fast = runner.invoke(main, ["hash", good, "--mode", "fast", "--format", "jsonl"])
    assert fast.exit_code == 0
    fast_hash = json.loads(fast.stdout)["signals"]["pdq"]["hash"]
    assert hamming(fast_hash, row["signals"]["pdq"]["hash"]) <= 16
    monkeypatch.chdir(batch)  # a long temporary path would wrap inside its column
    table = runner.invoke(main, ["hash", "c-flat.png", "--format", "table"])
    assert table.exit_code == 0 and "c-flat.png" in table.stdout, table.stdout
    flat = hash_file(batch / "c-flat.png").to_json()
    assert "low quality: not matched" in _table_row(flat)["signals"]["pdq"]  # type: ignore[index]


def test_all_frames_and_max_pixels(tmp_path: Path) -> None:
    frames = [Image.fromarray(make_photo(96, 80, seed=30 + i)) for i in range(3)]
    anim = tmp_path / "anim.gif"
    frames[0].save(anim, save_all=True, append_images=frames[1:], duration=50)
    runner = CliRunner()
    out = runner.invoke(main, ["hash", str(anim), "--all-frames", "--format", "jsonl"])
    assert out.exit_code == 0
    pdq = json.loads(out.stdout)["signals"]["pdq"]
    assert [f["frame"] for f in pdq] == [0, 1, 2]
    limited = runner.invoke(main, ["hash", str(anim), "--max-pixels", "1000", "--format", "jsonl"])
    assert limited.exit_code == 1
    assert "over the limit of 1,000" in json.loads(limited.stdout)["error"]


def test_real_process_and_mislabelled_image(tmp_path: Path) -> None:
    """The installed console script, as users run it; a damaged .jpg is not a silent pass."""
    photo = make_photo(200, 160, seed=8)
    good = tmp_path / "photo.png"
    Image.fromarray(photo).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this was once a jpeg")
    script = Path(sys.executable).with_name("ridgeline")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ridgeline.cli"]
    proc = subprocess.run(
        [*cmd, "hash", str(good), str(broken), "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 1, proc.stderr
    rows = _rows(proc.stdout)
    assert rows["photo.png"]["signals"]["pdq"]["hash"] == hash_rgb(photo)[0]
    assert "not a recognised image" in rows["broken.jpg"]["error"]


def test_crypto_hashes_of_a_multi_megabyte_file(tmp_path: Path) -> None:
    data = np.random.default_rng(3).bytes(5 * 1024 * 1024 + 123)  # crosses chunk boundaries
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    result = hash_file(path)
    assert result.error is None
    assert result.signals == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _in_terminal(argv: list[str], columns: int = 100) -> str:
    """Run `ridgeline ARGV` on a real pseudo-terminal (stdout and stderr) and return all
    it wrote, as a user at a 100-column terminal would see it."""
    import pty
    import select

    script = Path(sys.executable).with_name("ridgeline")
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40"}
    proc = subprocess.Popen([str(script), *argv], stdin=secondary, stdout=secondary,
                            stderr=secondary, env=env, close_fds=True)  # fmt: skip
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(primary)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_terminal_table_fits_and_shows_hash_and_quality(batch: Path, tmp_path: Path) -> None:
    """On a 100-column terminal: lines fit, the whole PDQ hash and the low-quality
    marker are shown, and after the progress bar the header starts its own line."""
    many = tmp_path / "many"
    many.mkdir()
    for i in range(20):
        (many / f"note-{i:02d}.txt").write_text(f"note {i}\n")
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(many / "z-flat.png")
    flat = hash_file(many / "z-flat.png").to_json()["signals"]["pdq"]["hash"]  # type: ignore[index]
    shown = _in_terminal(["hash", "-r", str(many)])
    lines = shown.split("\n")
    assert max(len(line.rsplit("\r", 1)[-1]) for line in lines) <= 100, shown
    assert flat in shown and "(low quality: not matched)" in shown
    header = next(i for i, line in enumerate(lines) if line.startswith("path"))
    assert lines[header].split() == ["path", "signals", "error"], lines[header]
    assert "errors 0" in lines[header - 1]  # the bar ended its own line first


def test_eighty_columns_keep_every_hash_whole(tmp_path: Path) -> None:
    """On an 80-column terminal (the usual default) sha256 and PDQ stay on one line each:
    the empty `error` column gives up its room rather than the hash being folded."""
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(tmp_path / "flat.png")
    signals = hash_file(tmp_path / "flat.png").to_json()["signals"]
    shown = _in_terminal(["hash", str(tmp_path / "flat.png")], columns=80)
    lines = shown.split("\n")
    assert max(len(line) for line in lines) <= 80, shown
    assert signals["sha256"] in shown and signals["pdq"]["hash"] in shown, shown  # type: ignore[index]
    assert "(low quality: not matched)" in shown
    assert lines[0].split() == ["path", "signals"], lines[0]


def test_empty_results_still_print_a_header(db_path: str) -> None:
    runner = CliRunner(env={"COLUMNS": "100"})  # the width a pipe gets, whatever the terminal
    for args, header in (
        (["lists", "ls"], ["name", "purpose", "enabled", "entries"]),
        (["keys", "list"], ["id", "prefix", "name", "role"]),
        (["reviewers", "ls"], ["name", "reviewer", "senior"]),
        (["evidence", "ls"], ["id", "entry_id", "size"]),
        (["quarantine", "list"], ["id", "original_path", "sha256"]),
    ):
        res = runner.invoke(main, [*args, "--db", db_path, "--format", "table"])
        assert res.exit_code == 0, (args, res.output)
        first = res.stdout.splitlines()[0].split()
        assert first[: len(header)] == header, (args, res.stdout)
