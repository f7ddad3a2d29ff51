"""Fast-mode PDQ: the 64x64 PDQ downsample predicted from a block-averaged small image.

Why it works: exact PDQ blurs the full-size luma with two box passes per axis and then
samples 64x64 points, so each of the 4,096 samples is a fixed weighted sum of full-size
pixels, separable into a row weight vector and a column weight vector. A JPEG decoded
at 1/2, 1/4 or 1/8 scale in the DCT domain (and `Image.reduce` for other formats) gives
the mean of each s x s block, so summing each weight vector over its blocks predicts the
same 64x64 samples from an image s^2 times smaller, with no full-size decode. The
weights are computed from the full-size dimensions exactly as the reference's box filter
defines them (window ceil(dim/128), its edge windows, two passes, decimation indices).

The rest (quality, DCT, median, bits) is the exact C code. Deviation from exact mode is
measured in docs/pdq.md.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ridgeline.pdq import _pdqcore

#: Block sizes tried, largest first (libjpeg's DCT scaling factors).
SCALES = (8, 4, 2)
#: Smallest box window (per axis, = ceil(dim/128)) for which fast mode approximates;
#: below it (images with a side <= 256 pixels) fast mode falls back to exact hashing,
#: which is cheap at that size anyway.
MIN_WINDOW = 3


def _window(dim: int) -> int:
    return (dim + 127) // 128


def pick_scale(width: int, height: int) -> int:
    """Block size for an image: the largest of 8, 4, 2 not above the blur window
    along either axis, or 1 (use exact mode)."""
    window = min(_window(width), _window(height))
    if window < MIN_WINDOW:
        return 1
    for s in SCALES:
        if s <= window:
            return s
    return 1


@lru_cache(maxsize=64)
def axis_weights(n: int, scale: int) -> np.ndarray:
    """(64, ceil(n/scale)) weights: row k gives decimated sample k of the reference's
    two-pass box blur along an axis of length n, as a sum over blocks of `scale`."""
    window = _window(n)
    half = (window + 2) // 2
    p = np.arange(n)
    lo = np.maximum(0, p - (window - half))  # reference box window of output p
    hi = np.minimum(n - 1, p + half - 1)
    inv = 1.0 / (hi - lo + 1)
    centres = ((np.arange(64) + 0.5) * n / 64).astype(np.int64)
    # first pass: output c averages q in [lo_c, hi_c]; second pass: each q averages [lo_q, hi_q]
    rows, qs, vals = [], [], []
    for k, c in enumerate(centres):
        q = np.arange(lo[c], hi[c] + 1)
        rows.append(np.full(q.size, k))
        qs.append(q)
        vals.append(inv[c] * inv[q])
    r, q, v = np.concatenate(rows), np.concatenate(qs), np.concatenate(vals)
    diff = np.zeros((64, n + 1))
    np.add.at(diff, (r, lo[q]), v)
    np.add.at(diff, (r, hi[q] + 1), -v)
    full = np.cumsum(diff, axis=1)[:, :n]
    return np.ascontiguousarray(np.add.reduceat(full, np.arange(0, n, scale), axis=1))


def luma_of(pixels: np.ndarray) -> np.ndarray:
    """Float64 PDQ luma of RGB(A) pixels, or grey as is."""
    if pixels.ndim == 2:
        return pixels.astype(np.float64)
    px = pixels.astype(np.float64)
    return px[..., 0] * 0.299 + px[..., 1] * 0.587 + px[..., 2] * 0.114


def predict64(small_luma: np.ndarray, full_height: int, full_width: int, scale: int) -> np.ndarray:
    """The 64x64 float32 PDQ downsample predicted from block means (see module doc)."""
    wc = axis_weights(full_height, scale)
    wr = axis_weights(full_width, scale)
    h, w = small_luma.shape
    if wc.shape[1] != h or wr.shape[1] != w:
        raise ValueError(
            f"small image is {w}x{h}, expected {wr.shape[1]}x{wc.shape[1]} for "
            f"{full_width}x{full_height} at 1/{scale}"
        )
    out = np.empty((64, 64), dtype=np.float32)
    _pdqcore.project64(np.ascontiguousarray(small_luma, dtype=np.float64), wc, wr, out)
    return out
