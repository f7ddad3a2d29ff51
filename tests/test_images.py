"""Image loading for PDQ: formats and modes made in code, EXIF orientation, animation,
fast mode, and every kind of bad input with a clear error.

The contract checked throughout: a file hashes exactly like the pixels Pillow's
`.convert("RGB")` gives for it (what the reference CSV was made from).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from ridgeline.errors import BadInput, DecompressionBomb
from ridgeline.pdq import hash_rgb, iter_frames, load_rgb, pdq_signal_value
from ridgeline.pdq.fast import pick_scale
from ridgeline.pdq.images import borrow_pixels, orient, to_pixels
from ridgeline.signals import HashOptions
from ridgeline.signals.pdq import hamming


def make_photo(width: int = 320, height: int = 240, seed: int = 1) -> np.ndarray:
    """A benign synthetic photo: gradient, soft shapes, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 200 // width + 30, y * 200 // height + 20, (x + y) * 120 // (width + height) + 60], -1
    )
    img = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = (
            x0 + int(rng.integers(width // 10, width // 2)),
            y0 + int(rng.integers(height // 10, height // 2)),
        )
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=color)
    img = img.filter(ImageFilter.GaussianBlur(2))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-3, 4, (height, width, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def pdq(path: Path, **kw: Any) -> dict[str, Any]:
    value = pdq_signal_value(path, HashOptions(**kw))
    assert isinstance(value, dict)
    return value


def convert_rgb_hash(path: Path, frame: int = 0) -> tuple[str, int]:
    with Image.open(path) as im:
        im.seek(frame)
        return hash_rgb(np.asarray(im.convert("RGB")))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_photo()


LOSSLESS = {
    "png": {},
    "bmp": {},
    "tiff": {},
    "webp": {"lossless": True},
}


@pytest.mark.parametrize("fmt", sorted(LOSSLESS))
def test_lossless_formats_hash_the_source_pixels(
    tmp_path: Path, photo: np.ndarray, fmt: str
) -> None:
    path = tmp_path / f"img.{fmt}"
    Image.fromarray(photo).save(path, **LOSSLESS[fmt])  # type: ignore[arg-type]
    value = pdq(path)
    assert (value["hash"], value["quality"]) == hash_rgb(photo)
    assert value["quality"] >= 50


@pytest.mark.parametrize(
    ("suffix", "kwargs"),
    [
        ("jpg", {"quality": 90}),
        ("webp", {"quality": 80}),
        ("avif", {"quality": 80}),
        ("heic", {"quality": 80}),
    ],
)
def test_lossy_formats(
    tmp_path: Path, photo: np.ndarray, suffix: str, kwargs: dict[str, Any]
) -> None:
    if suffix == "heic":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
    path = tmp_path / f"img.{suffix}"
    Image.fromarray(photo).save(path, **kwargs)
    value = pdq(path)
    assert (value["hash"], value["quality"]) == convert_rgb_hash(path)
    assert hamming(value["hash"], hash_rgb(photo)[0]) <= 31  # the same picture


def _modes(photo: np.ndarray) -> dict[str, Image.Image]:
    rgb = Image.fromarray(photo)
    grey = rgb.convert("L")
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    la = grey.copy()
    la.putalpha(128)
    palette = rgb.quantize(64)
    palette_t = palette.copy()
    palette_t.info["transparency"] = 0
    i16 = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    return {
        "L.png": grey,
        "RGBA.png": rgba,
        "LA.png": la,
        "P.png": palette,
        "P-transparent.png": palette_t,
        "P.gif": palette,
        "I16.png": i16,
        "1.png": grey.convert("1"),
        "I.tiff": grey.convert("I"),
        "F.tiff": grey.convert("F"),
        "CMYK.jpg": rgb.convert("CMYK"),
        "CMYK.tiff": rgb.convert("CMYK"),
    }


def test_every_mode_hashes_like_convert_rgb(tmp_path: Path, photo: np.ndarray) -> None:
    for name, im in _modes(photo).items():
        path = tmp_path / name
        im.save(path)
        with Image.open(path) as check:
            stored_mode = check.mode
        value = pdq(path)
        assert (value["hash"], value["quality"]) == convert_rgb_hash(path), (name, stored_mode)
        if name in ("L.png", "RGBA.png", "P.png", "CMYK.tiff"):
            assert hamming(value["hash"], hash_rgb(photo)[0]) <= 31, name


def test_borrowed_pixels_equal_convert_rgb_and_outlive_the_image(photo: np.ndarray) -> None:
    """RGB/RGBA/RGBX/L pixels are read from Pillow's memory without a copy; they must be
    the pixels convert("RGB") gives, read-only, and stay valid after the image is gone."""
    src = Image.fromarray(photo)
    for mode in ("RGB", "RGBA", "RGBX", "L"):
        im = src.convert(mode)
        expected = np.asarray(im.convert("RGB")).copy()
        pixels = borrow_pixels(im)
        assert pixels is not None, mode
        assert not pixels.flags.writeable
        assert pixels.shape[:2] == expected.shape[:2]
        im.close()
        del im
        Image.new("RGB", src.size, (1, 2, 3)).load()  # reuse freed memory, if any was freed
        assert hash_rgb(pixels) == hash_rgb(expected), mode
        rgb = pixels if pixels.ndim == 2 else pixels[:, :, :3]
        if pixels.ndim == 3:
            assert np.array_equal(rgb, expected), mode
        else:
            assert np.array_equal(rgb, expected[:, :, 0]), mode
    # over Pillow's 16 MiB memory block, rows are not contiguous: the copy is used
    big = Image.new("RGB", (2100, 2100), (10, 200, 30))
    assert borrow_pixels(big) is None
    assert to_pixels(big).shape == (2100, 2100, 3)


def test_sixteen_bit_follows_pillow_clipping(tmp_path: Path, reference_dir: Path) -> None:
    """Documented choice: 16-bit values are clipped to 0-255 as convert("RGB") does, which
    keeps the reference row exact and is what other Pillow-based PDQ tools compute."""
    path = reference_dir / "pdq" / "misc" / "I16.png"
    with Image.open(path) as im:
        assert im.mode == "I;16"
    value = pdq(path)
    assert (value["hash"], value["quality"]) == convert_rgb_hash(path)
    assert value["quality"] < 50  # near-white after clipping: unmatchable, not a false match


def _frames(n: int) -> list[Image.Image]:
    return [Image.fromarray(make_photo(160, 120, seed=10 + i)) for i in range(n)]


@pytest.mark.parametrize("suffix", ["gif", "webp"])
def test_animated_first_frame_by_default_every_frame_on_request(
    tmp_path: Path, suffix: str
) -> None:
    frames = _frames(3)
    path = tmp_path / f"anim.{suffix}"
    extra: dict[str, Any] = {"lossless": True} if suffix == "webp" else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 3
    first = pdq(path)
    assert (first["hash"], first["quality"]) == convert_rgb_hash(path, 0)
    every = pdq_signal_value(path, HashOptions(all_frames=True))
    assert isinstance(every, list) and [f["frame"] for f in every] == [0, 1, 2]
    for f in every:
        assert (f["hash"], f["quality"]) == convert_rgb_hash(path, f["frame"])
    assert len({f["hash"] for f in every}) == 3  # really different frames
    if suffix == "webp":  # lossless: the frames are the source pixels
        assert [f["hash"] for f in every] == [hash_rgb(np.asarray(fr))[0] for fr in frames]
    with_dih = pdq_signal_value(path, HashOptions(all_frames=True, dihedral=True))
    assert isinstance(with_dih, list) and all(len(f["dihedral"]) == 8 for f in with_dih)


def test_all_frames_on_a_still_image_is_one_value(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "still.png"
    Image.fromarray(photo).save(path)
    assert pdq_signal_value(path, HashOptions(all_frames=True)) == pdq(path)


def _with_orientation(im: Image.Image, value: int) -> Image.Exif:
    exif = im.getexif()
    exif[0x0112] = value
    return exif


def test_orient_matches_pillow_exif_transpose(tmp_path: Path) -> None:
    stored = make_photo(90, 60, seed=3)
    for value in range(1, 9):
        path = tmp_path / f"o{value}.png"
        im = Image.fromarray(stored)
        im.save(path, exif=_with_orientation(im, value))
        with Image.open(path) as reopened:
            upright = np.asarray(ImageOps.exif_transpose(reopened).convert("RGB"))
        assert np.array_equal(orient(stored, value), upright), value
        got = pdq(path)
        assert (got["hash"], got["quality"]) == hash_rgb(upright), value
        assert np.array_equal(load_rgb(path), upright)


def test_rotated_phone_photo_matches_its_upright_copy(tmp_path: Path) -> None:
    """A camera stores the sensor image and EXIF 6 (display turned 90 degrees clockwise)."""
    upright = make_photo(240, 320, seed=4)
    sensor = np.ascontiguousarray(np.rot90(upright, 1))  # what the sensor recorded
    path = tmp_path / "phone.png"
    im = Image.fromarray(sensor)
    im.save(path, exif=_with_orientation(im, 6))
    assert pdq(path)["hash"] == hash_rgb(upright)[0]
    raw = iter_frames(path, apply_orientation=False)
    assert hash_rgb(next(raw).pixels)[0] == hash_rgb(sensor)[0]
    # for lists made by tools that ignore EXIF, --dihedral still covers the stored pixels
    dih = pdq(path, dihedral=True)["dihedral"]
    raw_hash = hash_rgb(sensor)[0]
    assert min(hamming(raw_hash, v["hash"]) for v in dih.values()) <= 31  # a match
    jpg = tmp_path / "phone.jpg"
    im.save(jpg, quality=92, exif=_with_orientation(im, 6))
    assert hamming(pdq(jpg)["hash"], hash_rgb(upright)[0]) <= 16


@pytest.mark.parametrize("suffix", ["heic", "avif"])
def test_heic_avif_orientation_is_applied_once(tmp_path: Path, suffix: str) -> None:
    """pillow_heif turns HEIC upright itself (and resets the tag); AVIF keeps the tag."""
    if suffix == "heic":
        pytest.importorskip("pillow_heif").register_heif_opener()
    upright = make_photo(240, 320, seed=9)
    sensor = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))
    path = tmp_path / f"phone.{suffix}"
    sensor.save(path, quality=90, exif=_with_orientation(sensor, 6).tobytes())
    value = pdq(path)
    assert hamming(value["hash"], hash_rgb(upright)[0]) <= 31
    assert load_rgb(path).shape == upright.shape


def test_reference_files_carry_no_rotating_orientation(reference_dir: Path) -> None:
    """So applying EXIF orientation keeps every reference row exact (checked in test_pdq)."""
    for path in sorted((reference_dir / "pdq").rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            with Image.open(path) as im:
                assert im.getexif().get(0x0112, 1) in (0, 1), path.name


# ---------------------------------------------------------------- fast mode


def test_fast_mode_on_large_generated_jpegs(tmp_path: Path) -> None:
    deviations = []
    for i, (w, h) in enumerate([(1280, 960), (1000, 1400), (1600, 900)]):
        path = tmp_path / f"big{i}.jpg"
        Image.fromarray(make_photo(w, h, seed=20 + i)).save(path, quality=88)
        exact, fast = pdq(path), pdq(path, mode="fast")
        deviations.append(hamming(exact["hash"], fast["hash"]))
        assert abs(exact["quality"] - fast["quality"]) <= 10
    assert sum(deviations) / len(deviations) <= 6, deviations
    # EXIF orientation applies in fast mode too (the small image is turned upright)
    upright = make_photo(900, 1200, seed=40)
    sensor = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))
    phone = tmp_path / "phone.jpg"
    sensor.save(phone, quality=90, exif=_with_orientation(sensor, 6))
    assert pick_scale(1200, 900) > 1
    assert hamming(pdq(phone, mode="fast")["hash"], hash_rgb(upright)[0]) <= 16


def test_fast_mode_other_formats_and_small_images(tmp_path: Path) -> None:
    big = make_photo(900, 700, seed=7)
    png = tmp_path / "big.png"
    Image.fromarray(big).save(png)
    assert pick_scale(900, 700) == 4
    assert hamming(pdq(png, mode="fast")["hash"], hash_rgb(big)[0]) <= 12
    small = tmp_path / "small.png"
    Image.fromarray(make_photo(200, 150)).save(small)
    assert pick_scale(200, 150) == 1
    assert pdq(small, mode="fast") == pdq(small)  # small images: fast is exact


# ---------------------------------------------------------------- bad input


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG that declares huge dimensions (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
    data += struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    data += struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    path.write_bytes(data)


def test_bad_inputs_raise_clear_errors(tmp_path: Path, photo: np.ndarray) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(photo).save(good, quality=90)
    data = good.read_bytes()
    cases: dict[str, tuple[bytes | None, str]] = {
        "empty.jpg": (b"", "empty file"),
        "truncated.jpg": (data[: len(data) // 3], "truncated"),
        "random.jpg": (np.random.default_rng(0).bytes(5000), "not a recognised image"),
        "notes.txt": (b"hello, this is text\n" * 20, "not a recognised image"),
        "fake.png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a recognised image|corrupt"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content or b"")
        with pytest.raises(BadInput, match=message):
            pdq_signal_value(path, HashOptions())
    with pytest.raises(BadInput, match="directory"):
        pdq_signal_value(tmp_path, HashOptions())
    with pytest.raises(BadInput, match="unreadable"):
        pdq_signal_value(tmp_path / "missing.jpg", HashOptions())
    assert pdq(good)["quality"] >= 50  # the good file was never the problem


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, photo: np.ndarray) -> None:
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 30000, 30000)
    assert bomb.stat().st_size < 200
    with pytest.raises(DecompressionBomb, match=r"30000x30000|900000000|decompression bomb"):
        pdq_signal_value(bomb, HashOptions())
    smaller = tmp_path / "smaller.png"
    _png_header_only(smaller, 5000, 4000)  # under Pillow's limit, over ours below
    with pytest.raises(
        DecompressionBomb, match="5000x4000 = 20,000,000 pixels, over the limit of 1,000,000"
    ):
        pdq_signal_value(smaller, HashOptions(max_pixels=1_000_000))
    ok = tmp_path / "ok.png"
    Image.fromarray(photo).save(ok)
    with pytest.raises(DecompressionBomb):
        pdq_signal_value(ok, HashOptions(max_pixels=320 * 240 - 1))
    assert pdq(ok, max_pixels=320 * 240)["quality"] >= 50


def test_beyond_pillows_limit_the_message_names_max_pixels(tmp_path: Path) -> None:
    """Pillow refuses at twice its own limit before we look: the message is still ours."""
    from click.testing import CliRunner

    from ridgeline.cli import main

    huge = tmp_path / "huge.png"
    _png_header_only(huge, 30000, 30000)  # 900 M pixels: Pillow's own check fires first
    with pytest.raises(DecompressionBomb) as caught:
        pdq_signal_value(huge, HashOptions())
    assert str(caught.value) == (
        "image declares 900,000,000 pixels, over the limit of 178,956,970 (possible "
        "decompression bomb; raise --max-pixels to allow it)"
    )
    with pytest.raises(DecompressionBomb, match=r"over the limit of 50,000,000 .*--max-pixels"):
        pdq_signal_value(huge, HashOptions(max_pixels=50_000_000))  # the service's default
    res = CliRunner().invoke(main, ["hash", str(huge), "--signals", "pdq", "--format", "json"])
    assert res.exit_code == 1
    assert "raise --max-pixels to allow it" in res.stdout
    assert "could be decompression bomb DOS attack" not in res.output  # Pillow's words


def _png(width: int, height: int, raw: bytes, interlace: int = 0) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    out = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    idat = b"IDAT" + zlib.compress(raw)
    out += struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    return out + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def test_truncated_png_is_reported_not_hashed(tmp_path: Path, photo: np.ndarray) -> None:
    """Pixel data that ends early (cleanly) would hash the black fill: report truncation."""
    rows = np.random.default_rng(3).integers(0, 255, (64, 64 * 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    cut = tmp_path / "cut.png"
    cut.write_bytes(_png(64, 64, raw[: len(raw) // 2]))  # half the rows, stream closed
    assert Image.open(cut).load() is not None  # Pillow itself says nothing
    with pytest.raises(BadInput, match=r"truncated image: .* ends after 6,176 of the 12,352"):
        pdq_signal_value(cut, HashOptions())
    with pytest.raises(BadInput, match="truncated image"):
        pdq_signal_value(cut, HashOptions(mode="fast"))
    stub = tmp_path / "stub.png"
    stub.write_bytes(_png(64, 64, b"\x00" * 64))  # the quality-2 file of the report
    with pytest.raises(BadInput, match="truncated image"):
        pdq_signal_value(stub, HashOptions())
    # complete files are untouched: black last row, interlaced, palette
    black_bottom = photo.copy()
    black_bottom[-40:] = 0
    Image.fromarray(black_bottom).save(tmp_path / "black.png")
    Image.fromarray(photo).save(tmp_path / "interlaced.png", interlace=1)
    Image.fromarray(photo).convert("P").save(tmp_path / "palette.png")
    for name in ("black.png", "interlaced.png", "palette.png"):
        assert pdq(tmp_path / name)["quality"] >= 50, name
    cut_interlaced = tmp_path / "cut-interlaced.png"
    cut_interlaced.write_bytes(_png(64, 64, raw[: len(raw) // 2], interlace=1))
    with pytest.raises(BadInput, match="truncated image"):
        pdq_signal_value(cut_interlaced, HashOptions())
