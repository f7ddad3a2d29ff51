"""PDQ hashing: bit-exact conformance with Meta's reference C++ and the upstream test data.

Oracles: `reference/pdq/expected-pdqhash.csv` (made with Pillow + the `pdqhash` binding of
Meta's C++), the `pdqhash` package itself on generated pixels, and upstream's rules
(bridge edits within 31 bits, dihedral images within 10 bits).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ridgeline.errors import BadInput
from ridgeline.pdq import (
    DIHEDRAL_VARIANTS,
    _pdqcore,
    hash_file,
    hash_rgb,
    hash_rgb_dihedral,
    is_matchable,
    pdq_signal_value,
)
from ridgeline.signals import HashOptions
from ridgeline.signals.pdq import MIN_QUALITY, hamming

pdqhash = pytest.importorskip("pdqhash")  # the oracle (test extra), never used by the library


def _oracle(pixels: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.ascontiguousarray(pixels))
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(), int(quality)


def _oracle_dihedral(pixels: np.ndarray) -> list[str]:
    vectors, _ = pdqhash.compute_dihedral(np.ascontiguousarray(pixels))
    return [np.packbits(np.asarray(v, dtype=np.uint8)).tobytes().hex() for v in vectors]


def _rows(reference_dir: Path) -> list[dict[str, str]]:
    with open(reference_dir / "pdq" / "expected-pdqhash.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_every_reference_row_is_bit_identical(reference_dir: Path) -> None:
    """The exactness contract: same pixels (Pillow, convert("RGB")) -> same bits, same quality."""
    rows = _rows(reference_dir)
    assert len(rows) >= 30
    for row in rows:
        path = reference_dir / "pdq" / row["path"]
        expected = (row["pdq"], int(row["quality"]))
        assert hash_rgb(_rgb(path)) == expected, row["path"]
        # and through the file loader, as `ridgeline hash` computes it
        value = pdq_signal_value(path, HashOptions())
        assert isinstance(value, dict)
        assert (value["hash"], value["quality"]) == expected, row["path"]
        assert hash_file(path) == expected


def test_reference_covers_low_quality(reference_dir: Path) -> None:
    qualities = {r["path"]: int(r["quality"]) for r in _rows(reference_dir)}
    low = [p for p, q in qualities.items() if not is_matchable(q)]
    assert "misc/small.jpg" in low and qualities["misc/small.jpg"] == 0
    assert all(q < MIN_QUALITY for p, q in qualities.items() if p in low)
    assert is_matchable(MIN_QUALITY) and not is_matchable(MIN_QUALITY - 1)


@pytest.mark.parametrize(
    "shape",
    [
        (64, 64),
        (5, 5),
        (5, 300),
        (63, 65),
        (127, 129),
        (128, 128),
        (255, 257),
        (333, 97),
        (719, 1031),
    ],
)
def test_matches_reference_cpp_on_generated_pixels(shape: tuple[int, int]) -> None:
    """Edge sizes: the 64x64 no-blur path, window 1 and 2, odd sizes, non-square."""
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w]
    smooth = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
    flat = np.full((h, w, 3), 77, dtype=np.uint8)
    for pixels in (noise, smooth.astype(np.uint8), flat):
        assert hash_rgb(pixels) == _oracle(pixels)
        variants = hash_rgb_dihedral(pixels)
        assert [variants[n][0] for n in DIHEDRAL_VARIANTS] == _oracle_dihedral(pixels)


def test_fast_luma_equals_the_reference_formula_for_every_colour() -> None:
    """The SIMD/integer luma must round like the reference's double formula on all 2^24
    (r, g, b) triples, in both the packed RGB and the 4-byte (RGBX/RGBA) layouts."""
    assert _pdqcore.luma_mismatches() == 0


def test_random_sizes_contents_and_layouts_match_reference_cpp() -> None:
    """A fuzz over sizes whose widths hit every SIMD tail (8-lane blocks plus 0-7),
    window sizes 1-16, and contents flat, noise, gradients and two-level, through
    packed RGB, RGBX, flipped and transposed views."""
    rng = np.random.default_rng(20261121)
    shapes = [(int(rng.integers(5, 300)), int(rng.integers(5, 300))) for _ in range(24)]
    shapes += [(1999, 37), (41, 2000), (1203, 777)]
    for i, (h, w) in enumerate(shapes):
        kind = i % 4
        if kind == 0:
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == 1:
            pixels = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        elif kind == 2:
            y, x = np.mgrid[0:h, 0:w]
            grad = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * y) % 256], -1)
            pixels = grad.astype(np.uint8)
        else:
            pixels = (rng.integers(0, 2, (h, w, 3)) * 255).astype(np.uint8)
        layout = i % 3
        if layout == 1:
            arg = np.dstack([pixels, rng.integers(0, 256, (h, w), dtype=np.uint8)])
        elif layout == 2:
            pixels = pixels.swapaxes(0, 1)[::-1]
            arg = pixels
        else:
            arg = pixels
        assert hash_rgb(arg) == _oracle(pixels), (h, w, kind, layout)


def test_portable_path_gives_the_same_bits_as_the_simd_path(tmp_path: Path) -> None:
    """Machines without AVX2 take the scalar code; force it in a child process."""
    rng = np.random.default_rng(5)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((97, 203), (300, 41))]
    arrays.append(np.dstack([arrays[0], arrays[0][:, :, 0]]))  # RGBX layout
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"a{i}.npy", a)
    script = (
        "import sys, json, numpy as np\n"
        "from ridgeline.pdq import _pdqcore\n"
        "out = [_pdqcore.hash_pixels(np.load(p), True) for p in sys.argv[1:]]\n"
        "print(json.dumps({'luma': _pdqcore.luma_mismatches(), 'hashes': out}))\n"
    )
    env = {**os.environ, "RIDGELINE_PDQ_NO_SIMD": "1"}
    files = [str(tmp_path / f"a{i}.npy") for i in range(len(arrays))]
    done = subprocess.run(
        [sys.executable, "-c", script, *files], env=env, capture_output=True, text=True, check=True
    )
    child = json.loads(done.stdout)
    assert child["luma"] == 0
    assert [tuple(h) for h in child["hashes"]] == [
        tuple(json.loads(json.dumps(_pdqcore.hash_pixels(a, True)))) for a in arrays
    ]
    assert child["hashes"][0][0][0] == _oracle(arrays[0])[0]


def test_tiny_images_get_the_zero_hash() -> None:
    assert hash_rgb(np.zeros((4, 100, 3), np.uint8)) == ("0" * 64, 0)
    assert hash_rgb(np.full((100, 3, 3), 200, np.uint8)) == ("0" * 64, 0)


def test_strided_views_grey_and_rgba_equal_their_copies(reference_dir: Path) -> None:
    rgb = _rgb(reference_dir / "pdq" / "labelme-subset" / "q0122.jpg")
    for view in (rgb[::-1], rgb[:, ::-1], rgb.swapaxes(0, 1), np.rot90(rgb), rgb[10:200, 5:250]):
        assert hash_rgb(view) == hash_rgb(np.ascontiguousarray(view))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert hash_rgb(bgr[:, :, ::-1]) == hash_rgb(rgb)  # channel-reversed view
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])
    assert hash_rgb(rgba) == hash_rgb(rgb)  # alpha ignored, as convert("RGB") drops it
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    assert hash_rgb(grey) == hash_rgb(np.repeat(grey[:, :, None], 3, axis=2))


def test_bad_pixel_arrays_are_refused_clearly() -> None:
    with pytest.raises(BadInput, match="uint8"):
        hash_rgb(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(BadInput, match="shape"):
        hash_rgb(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(BadInput, match="shape"):
        hash_rgb(np.zeros(10, np.uint8))


def test_bridge_mods_all_match_the_original(reference_dir: Path) -> None:
    folder = reference_dir / "pdq" / "bridge-mods"
    orig = hash_file(folder / "aaa-orig.jpg")[0]
    mods = sorted(folder.glob("*.jpg"))
    assert len(mods) == 12
    for path in mods:
        h, quality = hash_file(path)
        assert hamming(h, orig) <= 31, path.name
        assert quality >= MIN_QUALITY


DIH_FILES = {
    "orig": "bridge-1-original.jpg",
    "rot90": "bridge-2-rotate-90.jpg",
    "rot180": "bridge-3-rotate-180.jpg",
    "rot270": "bridge-4-rotate-270.jpg",
    "flipx": "bridge-5-flipx.jpg",
    "flipy": "bridge-6-flipy.jpg",
    "flipplus": "bridge-7-flip-plus-1.jpg",
    "flipminus": "bridge-8-flip-minus-1.jpg",
}


def test_dihedral_variants_match_the_transformed_images(reference_dir: Path) -> None:
    folder = reference_dir / "pdq" / "dih"
    value = pdq_signal_value(folder / DIH_FILES["orig"], HashOptions(dihedral=True))
    assert isinstance(value, dict)
    variants = value["dihedral"]
    assert list(variants) == list(DIHEDRAL_VARIANTS)
    assert variants["orig"]["hash"] == value["hash"]
    for name, filename in DIH_FILES.items():
        actual = hash_file(folder / filename)[0]
        # measured 0-8 bits; upstream's rule for a different pipeline is <= 10
        assert hamming(actual, variants[name]["hash"]) <= 10, name
        others = [hamming(actual, v["hash"]) for n, v in variants.items() if n != name]
        assert min(others) > 64, name  # and far from every other variant


def test_dihedral_names_follow_numpy_transforms(reference_dir: Path) -> None:
    rgb = _rgb(reference_dir / "pdq" / "dih" / DIH_FILES["orig"])
    variants = hash_rgb_dihedral(rgb)
    transforms = {
        "orig": rgb,
        "rot90": np.rot90(rgb, 1),
        "rot180": np.rot90(rgb, 2),
        "rot270": np.rot90(rgb, -1),
        "flipx": rgb[::-1],
        "flipy": rgb[:, ::-1],
        "flipplus": rgb.swapaxes(0, 1),
        "flipminus": np.rot90(rgb, 2).swapaxes(0, 1),
    }
    for name, pixels in transforms.items():
        assert hamming(hash_rgb(pixels)[0], variants[name][0]) <= 10, name
        assert variants[name][1] == variants["orig"][1]


def test_upstream_cpp_dihedral_hashes_within_ten_bits(reference_dir: Path) -> None:
    with open(reference_dir / "pdq" / "upstream-cpp-dih.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    for row in rows:
        ours = hash_file(reference_dir / "pdq" / row["path"])[0]
        assert hamming(ours, row["pdq"]) <= 10, row["path"]


def test_fast_mode_stays_close_to_exact_on_reference(reference_dir: Path) -> None:
    rows = _rows(reference_dir)
    deviations = []
    for row in rows:
        value = pdq_signal_value(reference_dir / "pdq" / row["path"], HashOptions(mode="fast"))
        assert isinstance(value, dict)
        deviations.append(hamming(value["hash"], row["pdq"]))
    assert sum(deviations) / len(deviations) <= 6
    assert max(deviations) <= 16
