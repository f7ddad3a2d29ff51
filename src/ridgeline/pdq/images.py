"""Image loading for perceptual hashing.

Why this module exists: PDQ's exactness contract is defined on the RGB pixels that
Pillow's `.convert("RGB")` produces, so every caller must decode the same way. This
module is that one way: every format Pillow reads plus HEIC/HEIF (through
`pillow_heif`) and AVIF (Pillow's own plug-in), a pixel limit checked from the header
before anything is decoded, EXIF orientation, animated frames, and a fast mode that
decodes JPEGs in the DCT domain at reduced size.

Errors are `ridgeline.errors.BadInput` (or `DecompressionBomb`) with a message that says
what is wrong with the file.
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ridgeline.errors import BadInput, DecompressionBomb
from ridgeline.pdq import _pdqcore, fast
from ridgeline.signals.base import DEFAULT_MAX_PIXELS

Mode = Literal["exact", "fast"]

#: EXIF orientation tag and the numpy view that shows each value upright.
ORIENTATION_TAG = 0x0112

_registered = False

# Errors that Pillow's decoders raise for damaged data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, zlib.error)


def register_plugins() -> None:
    """Teach Pillow HEIC/HEIF (AVIF is built into Pillow >= 11.2). Idempotent."""
    global _registered
    if _registered:
        return
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # optional at run time; HEIC files then fail as unrecognised
        pass
    _registered = True


@dataclass
class Frame:
    """One decoded frame, ready for the hasher.

    Exact mode: `pixels` as (h, w, 3) RGB, (h, w, 4) with the 4th channel ignored by
    the hasher, or (h, w) grey meaning r = g = b, and `luma64` None. Fast mode on a
    large image: `pixels` is the small block-averaged image that was decoded and
    `luma64` the predicted 64x64 PDQ downsample (see `ridgeline.pdq.fast`).
    """

    index: int
    pixels: np.ndarray
    luma64: np.ndarray | None = None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _over_limit(pixels: str, max_pixels: int) -> DecompressionBomb:
    """The one decompression-bomb message, whoever noticed (Pillow's check or ours)."""
    return DecompressionBomb(
        f"image declares {pixels} pixels, over the limit of {max_pixels:,} (possible "
        "decompression bomb; raise --max-pixels to allow it)"
    )


def _pillow_bomb(exc: Image.DecompressionBombError, max_pixels: int) -> DecompressionBomb:
    """Pillow's own refusal (it fires at twice its limit) in our words, naming --max-pixels."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return _over_limit(f"{int(found.group(1)):,}" if found else "more", max_pixels)


#: PNG colour type -> samples per pixel.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: (x start, y start, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip


def _png_expected_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    bits = depth * _PNG_CHANNELS.get(colour, 4)
    if not interlace:
        return height * (1 + (width * bits + 7) // 8)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        w, h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if w > 0 and h > 0:
            total += h * (1 + (w * bits + 7) // 8)
    return total


def png_short_data(path: Path) -> tuple[int, int] | None:
    """(decoded, needed) bytes when a PNG's pixel data ends before its last row, else None.

    Pillow fills the missing rows with black and says nothing when the compressed
    stream ends early but cleanly (a file cut and re-closed, a broken writer): the hash
    of such a file describes the damage, not the picture.
    """
    data = path.read_bytes()
    pos, inflate, decoded, header = 8, zlib.decompressobj(), 0, None
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR" and len(body) >= 13:
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            try:
                decoded += len(inflate.decompress(body))
            except zlib.error:
                return None  # damaged data: Pillow reports that itself
        elif kind in (b"IEND", b"fcTL", b"fdAT"):
            break
        pos += 12 + length
    if header is None:
        return None
    width, height, depth, colour, _, _, interlace = header
    needed = _png_expected_bytes(width, height, depth, colour, interlace)
    return (decoded, needed) if decoded < needed else None


def _check_png_complete(im: Image.Image, path: Path) -> None:
    """`BadInput` for a PNG whose pixel data stopped early (see `png_short_data`).

    Only images whose last row came out all zero (where the missing rows go), or that
    are interlaced, pay for the second inflate the check needs.
    """
    if im.format != "PNG" or getattr(im, "n_frames", 1) > 1:
        return
    width, height = im.size
    interlaced = bool(im.info.get("interlace"))
    if not interlaced and np.asarray(im.crop((0, height - 1, width, height))).any():
        return
    short = png_short_data(path)
    if short is not None:
        raise BadInput(
            f"truncated image: the PNG's pixel data ends after {short[0]:,} of the "
            f"{short[1]:,} bytes its {width}x{height} pixels need"
        )


@contextmanager
def open_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[Image.Image]:
    """Open (header only) and check the declared size against `max_pixels`.

    Pillow decodes lazily, so width x height is known before any pixel data is read;
    an image declaring more pixels than `max_pixels` is refused there.
    """
    register_plugins()
    if max_pixels <= 0:
        raise BadInput(f"max_pixels must be positive, not {max_pixels}")
    try:
        if path.is_dir():
            raise BadInput("is a directory, not an image file")
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput(f"unreadable: {exc.strerror or exc}") from None
    if size == 0:
        raise BadInput("empty file (0 bytes)")
    # Pillow refuses images over twice its own limit before we can look; let our
    # (explicit) limit be the one that applies.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise _pillow_bomb(exc, max_pixels) from None
    except UnidentifiedImageError:
        raise BadInput("not a recognised image format (corrupt, or not an image)") from None
    except PermissionError as exc:
        raise BadInput(f"unreadable: {exc.strerror or exc}") from None
    except _DECODE_ERRORS as exc:
        raise BadInput(f"corrupt image header: {_describe(exc)}") from None
    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise BadInput(f"image declares an empty size {width}x{height}")
        if width * height > max_pixels:
            raise _over_limit(f"{width}x{height} = {width * height:,}", max_pixels)
        yield im
    finally:
        im.close()


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8), 1 when absent or invalid."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # damaged EXIF must not make an image unhashable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(pixels: np.ndarray, value: int) -> np.ndarray:
    """A zero-copy numpy view of `pixels` shown upright for EXIF orientation `value`.

    Same result as Pillow's `ImageOps.exif_transpose` (checked in the tests).
    """
    if value == 2:
        return pixels[:, ::-1]
    if value == 3:
        return pixels[::-1, ::-1]
    if value == 4:
        return pixels[::-1]
    if value == 5:
        return pixels.swapaxes(0, 1)
    if value == 6:
        return pixels.swapaxes(0, 1)[:, ::-1]
    if value == 7:
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if value == 8:
        return pixels.swapaxes(0, 1)[::-1]
    return pixels


class _Borrowed:
    """Owner of a zero-copy numpy view of a Pillow image's memory: holds the Arrow
    capsules (which hold the image data) for as long as the view lives."""

    __slots__ = ("__array_interface__", "_capsules")

    def __init__(self, capsules: tuple[object, object], address: int, shape: tuple[int, ...]):
        self._capsules = capsules
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": "|u1",
            "data": (address, True),
        }


def borrow_pixels(im: Image.Image) -> np.ndarray | None:
    """A read-only view of an RGB/RGBA/RGBX/L image's own memory, or None.

    Why: `np.asarray(im)` packs a fresh copy (RGB becomes 3 bytes a pixel), which costs
    about as much CPU per megapixel as the blur. Pillow stores RGB as 4 bytes a pixel
    (the 4th unused, or alpha) and exports it zero-copy through the Arrow C data
    interface when the image sits in one memory block; the hasher ignores the 4th byte,
    so the pixels are the same as `.convert("RGB")` gives. None when Pillow cannot
    export (rows in several blocks, very large images) or the layout is unexpected.
    """
    width, height = im.size
    try:
        capsules = im.__arrow_c_array__()
        address, bpp = _pdqcore.arrow_address(capsules[0], capsules[1], width * height)
    except (ValueError, AttributeError, TypeError):
        return None
    shape = (height, width) if bpp == 1 else (height, width, bpp)
    return np.asarray(_Borrowed(capsules, address, shape))


def to_pixels(im: Image.Image) -> np.ndarray:
    """Pixels equal to `.convert("RGB")` for the hasher, without needless copies.

    RGB, RGBA, RGBX and L are borrowed from Pillow's memory without a copy where it can
    (`borrow_pixels`; RGB then comes as (h, w, 4) with an unused 4th byte). Otherwise
    RGB is used as is, RGBA keeps its alpha byte (the hasher ignores it, exactly as
    convert("RGB") drops it), L and LA become one grey plane (the hasher treats it as
    r = g = b, which is what convert("RGB") makes). Every other mode goes through
    Pillow's convert("RGB"): palette with or without transparency, CMYK, 1, I, I;16, F,
    YCbCr, LAB, HSV. Note that Pillow clips 16-bit and float values to 0-255 rather
    than scaling them; see docs/pdq.md.
    """
    mode = im.mode
    if mode in ("RGB", "RGBA", "RGBX", "L"):
        borrowed = borrow_pixels(im)
        if borrowed is not None:
            return borrowed
    if mode in ("RGB", "RGBA", "L"):
        return np.asarray(im)
    if mode == "LA":
        return np.asarray(im)[:, :, 0]
    if mode == "RGBX":
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))


_SWAPS_AXES = (5, 6, 7, 8)


def _fast_frame(im: Image.Image, index: int, full: tuple[int, int], turn: int) -> Frame | None:
    """Fast mode: block means at scale 1/s (JPEG DCT-domain decode, else `reduce`) and
    the predicted 64x64 downsample; None when the image is too small to gain."""
    width, height = full
    scale = fast.pick_scale(width, height)
    if scale == 1:
        return None
    small_size = (-(-width // scale), -(-height // scale))
    if im.size == small_size:  # drafted JPEG
        small = im
    elif im.size == full:
        base = im
        if base.mode == "LA":
            base = base.convert("L")
        elif base.mode not in ("RGB", "L"):
            base = base.convert("RGB")  # drops alpha, as exact mode does
        small = base.reduce(scale)
    else:
        return None
    if small.mode not in ("RGB", "L"):
        small = small.convert("RGB")
    pixels = np.asarray(small)
    luma = orient(fast.luma_of(pixels), turn)
    if turn in _SWAPS_AXES:
        width, height = height, width
    return Frame(index, pixels, fast.predict64(luma, height, width, scale))


def _draft_jpeg(im: Image.Image) -> None:
    """Ask libjpeg for a 1/2, 1/4 or 1/8 scale decode (DCT domain), grey when it can:
    JPEG's Y channel is the same weighted sum of R, G, B as PDQ's luma."""
    if im.format != "JPEG":
        return
    width, height = im.size
    scale = fast.pick_scale(width, height)
    if scale > 1:
        im.draft("L" if im.mode in ("RGB", "YCbCr", "L") else im.mode,
                 (width // scale, height // scale))  # fmt: skip


def iter_frames(
    path: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    all_frames: bool = False,
    mode: Mode = "exact",
    apply_orientation: bool = True,
) -> Iterator[Frame]:
    """Decode the first frame (or every frame) of an image file as hasher-ready pixels."""
    if mode not in ("exact", "fast"):
        raise BadInput(f"unknown mode {mode!r}: expected 'exact' or 'fast'")
    with open_image(path, max_pixels) as im:
        turn = orientation(im) if apply_orientation else 1
        n_frames = getattr(im, "n_frames", 1) if all_frames else 1
        for index in range(n_frames):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # palette/EXIF chatter from plug-ins
                    if index:
                        im.seek(index)
                    full = im.size
                    if mode == "fast" and not index:
                        _draft_jpeg(im)
                    im.load()
                    if not index:
                        _check_png_complete(im, path)
                    if im.size[0] * im.size[1] > max_pixels:
                        raise DecompressionBomb(
                            f"frame {index} is {im.size[0]}x{im.size[1]}, over the limit of "
                            f"{max_pixels:,} pixels"
                        )
                    frame = _fast_frame(im, index, full, turn) if mode == "fast" else None
                    if frame is None:
                        frame = Frame(index, orient(to_pixels(im), turn))
            except BadInput:
                raise
            except Image.DecompressionBombError as exc:
                raise _pillow_bomb(exc, max_pixels) from None
            except _DECODE_ERRORS as exc:
                where = f" (frame {index})" if index else ""
                raise BadInput(f"corrupt or truncated image{where}: {_describe(exc)}") from None
            yield frame


def load_pixels(
    path: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    mode: Mode = "exact",
    apply_orientation: bool = True,
) -> np.ndarray:
    """The first frame's hasher-ready pixels (see `Frame`)."""
    for frame in iter_frames(
        path, max_pixels=max_pixels, mode=mode, apply_orientation=apply_orientation
    ):
        return frame.pixels
    raise BadInput("image has no frames")  # pragma: no cover - Pillow always has one


def load_rgb(
    path: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    mode: Mode = "exact",
    apply_orientation: bool = True,
) -> np.ndarray:
    """The first frame as a (h, w, 3) uint8 RGB array, for callers that want plain RGB."""
    pixels = load_pixels(
        path, max_pixels=max_pixels, mode=mode, apply_orientation=apply_orientation
    )
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])
