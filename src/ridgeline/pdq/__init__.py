"""PDQ perceptual hashing of images, bit-identical to Meta's reference implementation.

`hash_rgb` hashes pixels you already have (the vPDQ video hasher calls it per frame);
`pdq_signal_value` hashes an image file for the `pdq` signal. The arithmetic lives in
the C extension `ridgeline.pdq._pdqcore` (see the comment at its top for why each step
is done exactly as it is); file decoding lives in `ridgeline.pdq.images`.

Hashes are 64 lowercase hex digits in upstream bit order, quality is 0-100. Hashes
with quality below `MIN_QUALITY` (50) are not matched by default (CONVENTIONS.md):
consumers call `is_matchable(quality)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ridgeline.errors import BadInput
from ridgeline.pdq import _pdqcore
from ridgeline.pdq.images import Frame, iter_frames, load_pixels, load_rgb
from ridgeline.signals.base import HashOptions, PdqValue
from ridgeline.signals.pdq import MIN_QUALITY

#: Names of the 8 dihedral variants, in the order upstream computes them. Each is
#: (within a few bits) the hash the image gets after that transformation, named as
#: upstream names them: `orig` as is; `rot90` turned 90 degrees counter-clockwise
#: (numpy `rot90(a, 1)`); `rot180`; `rot270` turned 90 degrees clockwise; `flipx`
#: mirrored top to bottom (`a[::-1]`); `flipy` mirrored left to right (`a[:, ::-1]`);
#: `flipplus` transposed (mirrored across the main diagonal); `flipminus` mirrored
#: across the anti-diagonal.
DIHEDRAL_VARIANTS: tuple[str, ...] = (
    "orig",
    "rot90",
    "rot180",
    "rot270",
    "flipx",
    "flipy",
    "flipplus",
    "flipminus",
)

__all__ = [
    "DIHEDRAL_VARIANTS",
    "MIN_QUALITY",
    "Frame",
    "hash_file",
    "hash_rgb",
    "hash_rgb_dihedral",
    "is_matchable",
    "iter_frames",
    "load_pixels",
    "load_rgb",
    "pdq_signal_value",
]


def is_matchable(quality: int) -> bool:
    """Whether a hash of this quality takes part in matching by default."""
    return quality >= MIN_QUALITY


def _check_pixels(pixels: Any) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        raise BadInput(f"pixels must be uint8, not {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise BadInput(
            f"pixels must have shape (height, width, 3) for RGB (or (h, w) grey), not {arr.shape}"
        )
    return arr


def hash_rgb(pixels: np.ndarray) -> tuple[str, int]:
    """Exact PDQ of an (h, w, 3) uint8 RGB array: (64 hex digits, quality 0-100).

    Any strides are accepted (flipped or transposed views hash without a copy). Also
    accepted: (h, w, 4), whose 4th channel is ignored, and (h, w) grey, hashed as if
    r = g = b. Images under 5 pixels on a side get the all-zero hash with quality 0,
    as upstream.
    """
    hashes, quality = _pdqcore.hash_pixels(_check_pixels(pixels))
    return hashes[0], quality


def hash_rgb_dihedral(pixels: np.ndarray) -> dict[str, tuple[str, int]]:
    """The 8 dihedral variants (`DIHEDRAL_VARIANTS`) from one blur and one DCT.

    As upstream, the variants are derived from the 16x16 DCT by sign flips and
    transposition, so they are within a few bits of (not always identical to) the
    hash of the actually rotated image. All share the quality of the original.
    Bit-identical to upstream's dihedral function, which, unlike its single hash, also
    blurs an exactly 64x64 input; so only for 64x64 input can `orig` differ from
    `hash_rgb` (by rounding, and visibly only for flat, low-quality images).
    """
    hashes, quality = _pdqcore.hash_pixels(_check_pixels(pixels), True)
    return {name: (h, quality) for name, h in zip(DIHEDRAL_VARIANTS, hashes, strict=True)}


def _hash_frame(frame: Frame, dihedral: bool) -> tuple[list[str], int]:
    if frame.luma64 is not None:  # fast mode: downsample already predicted
        hashes, quality = _pdqcore.hash_luma64(frame.luma64, dihedral)
    else:
        hashes, quality = _pdqcore.hash_pixels(_check_pixels(frame.pixels), dihedral)
    return hashes, quality


def _value(frame: Frame, dihedral: bool) -> PdqValue:
    hashes, q = _hash_frame(frame, dihedral)
    if not dihedral:
        return {"hash": hashes[0], "quality": q}
    variants = dict(zip(DIHEDRAL_VARIANTS, hashes, strict=True))
    h = variants["orig"]
    if frame.luma64 is None and frame.pixels.shape[:2] == (64, 64):
        h, q = hash_rgb(frame.pixels)  # see hash_rgb_dihedral on the 64x64 case
    return {
        "hash": h,
        "quality": q,
        "dihedral": {name: {"hash": vh, "quality": q} for name, vh in variants.items()},
    }


def pdq_signal_value(path: Path, options: HashOptions) -> PdqValue | list[PdqValue]:
    """The `pdq` signal of an image file.

    Returns `{"hash", "quality"}` (plus `"dihedral": {variant: {"hash", "quality"}}`
    with `options.dihedral`). With `options.all_frames` an animated image gives a list
    of `{"frame", "hash", "quality"}`, one per frame. Raises `BadInput` (or
    `DecompressionBomb`) for files that cannot be hashed, saying why.
    """
    values: list[PdqValue] = [
        {"frame": f.index, **_value(f, options.dihedral)}
        for f in iter_frames(
            Path(path),
            max_pixels=options.max_pixels,
            all_frames=options.all_frames,
            mode=options.mode,
        )
    ]  # frames are hashed as they are decoded; only the small results are kept
    if options.all_frames and len(values) > 1:
        return values
    first = values[0]
    first.pop("frame", None)
    return first


def hash_file(path: Path, options: HashOptions | None = None) -> tuple[str, int]:
    """(hash, quality) of an image file's first frame; a convenience over `pdq_signal_value`."""
    opts = options or HashOptions()
    for frame in iter_frames(Path(path), max_pixels=opts.max_pixels, mode=opts.mode):
        hashes, quality = _hash_frame(frame, False)
        return hashes[0], quality
    raise BadInput("image has no frames")  # pragma: no cover - Pillow always has one
