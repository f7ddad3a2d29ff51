"""`ridgeline match`: one JSON row per query, hashes, hash files and image files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner
from PIL import Image

from ridgeline.cli import main
from ridgeline.pdq import hash_file as pdq_hash_file


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _benign_image(path: Path) -> None:
    """Smoothly upscaled random colour blocks (benign, made in code, high PDQ quality).

    64x64 pixels: PDQ then needs no downsampling, so a rotated copy hashes to exactly
    one of the original's dihedral variants.
    """
    small = np.random.default_rng(1).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    Image.fromarray(small).resize((64, 64), Image.Resampling.BICUBIC).save(path)


def test_match_hashes_and_hash_file(db_path: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    hashes = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(5)]
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(hashes) + "\n")
    assert run("lists", "create", "known", "--threshold", "31", "--db", db_path)[0] == 0
    code, _, err = run(
        "lists",
        "import",
        "known",
        str(listed),
        "--signal",
        "pdq",
        "--format",
        "txt",
        "--db",
        db_path,
    )
    assert code == 0, err
    near = f"{int(hashes[1], 16) ^ 0b111:064x}"
    code, out, err = run(
        "match",
        "--list",
        "known",
        "--db",
        db_path,
        "--format",
        "jsonl",
        hashes[0].upper(),
        near,
        "0" * 64,
    )
    assert code == 0, err
    got = rows(out)
    assert [r["query"] for r in got] == [hashes[0].upper(), near, "0" * 64]
    assert [(m["list"], m["distance"]) for m in got[0]["matches"]] == [("known", 0)]
    assert [m["distance"] for m in got[1]["matches"]] == [3]
    assert got[2]["matches"] == []
    assert set(got[0]["matches"][0]) >= {"list", "entry_id", "distance"}
    queries = tmp_path / "queries.txt"
    queries.write_text("# queries\n" + "\n".join(hashes[2:]) + "\n\n")
    code, out, err = run(
        "match",
        "--list",
        "known",
        "--signal",
        "pdq",
        "--hashes",
        str(queries),
        "--db",
        db_path,
        "--format",
        "jsonl",
    )
    assert code == 0, err
    assert [len(r["matches"]) for r in rows(out)] == [1, 1, 1]


def test_match_image_files_and_dihedral(db_path: str, tmp_path: Path) -> None:
    original = tmp_path / "original.png"
    _benign_image(original)
    rotated = tmp_path / "rotated.png"
    Image.open(original).transpose(Image.Transpose.ROTATE_90).save(rotated)
    h, quality = pdq_hash_file(original)
    assert quality >= 50
    assert run("lists", "create", "imgs", "--db", db_path)[0] == 0
    listed = tmp_path / "l.txt"
    listed.write_text(h + "\n")
    run(
        "lists",
        "import",
        "imgs",
        str(listed),
        "--signal",
        "pdq",
        "--format",
        "txt",
        "--db",
        db_path,
    )
    code, out, err = run(
        "match", "--list", "imgs", "--db", db_path, "--format", "jsonl", str(original)
    )
    assert code == 0, err
    (row,) = rows(out)
    assert row["query"] == str(original) and row["signals"]["pdq"]["hash"] == h
    assert [m["distance"] for m in row["matches"]] == [0]
    code, out, err = run(
        "match",
        "--list",
        "imgs",
        "--dihedral",
        "--db",
        db_path,
        "--format",
        "jsonl",
        str(rotated),
    )
    assert code == 0, err
    (row,) = rows(out)
    (m,) = row["matches"]
    assert m["distance"] == 0 and m["variant"] not in ("", "orig")
    code, out, err = run(
        "match", "--list", "imgs", "--db", db_path, "--format", "jsonl", str(rotated)
    )
    assert code == 0 and rows(out)[0]["matches"] == []  # without --dihedral: no match


def test_bad_input_is_reported(db_path: str, tmp_path: Path) -> None:
    assert run("lists", "create", "known", "--db", db_path)[0] == 0
    code, _, err = run("match", "--list", "known", "--db", db_path, "not-a-hash")
    assert code == 2 and "neither a valid pdq hash" in err
    code, _, err = run("match", "--list", "missing", "--db", db_path, "0" * 64)
    assert code == 1 and "missing" in err
    code, _, err = run("match", "--list", "known", "--dihedral", "--db", db_path, "0" * 64)
    assert code == 2 and "image files" in err
    folder = tmp_path / "folder"
    folder.mkdir()  # exists, but has no signal at all
    code, out, err = run(
        "match", "--list", "known", "--db", db_path, "--format", "jsonl", str(folder)
    )
    assert code == 2 and rows(out)[0]["error"] == "not a file"
    code, _, err = run("match", "--db", db_path, "--hashes", str(tmp_path / "none.txt"))
    assert code == 2 and "cannot read" in err
