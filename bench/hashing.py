"""PDQ/vPDQ hashing throughput, per core, against the reference path. Prints ONE JSON line.

Generates benign photographic-looking JPEGs in code (smooth gradients, soft shapes, mild
noise), then measures in this single process:

* reference: Pillow full decode + `.convert("RGB")` + `pdqhash.compute` (Meta's C++);
* exact: `ridgeline.pdq.pdq_signal_value` in exact mode, and that it is bit-identical
  (hash and quality) to the reference on every image;
* fast: the same in fast mode, with mean/max Hamming deviation from exact;
* vPDQ: `ridgeline.vpdq.hash_video` frames/s on the reference videos, with PyAV decode +
  `pdqhash.compute` per frame as the anchor.

Usage: python bench/hashing.py [--images 24] [--videos 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
SIZES = [(1600, 1000), (1200, 1200), (1680, 1050), (1400, 1000), (1000, 1500)]


def make_photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A benign synthetic 'photo': a lit gradient sky/ground, soft shapes, sensor noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    corners = rng.uniform(30, 230, size=(4, 3)).astype(np.float32)
    fx, fy = (x / (width - 1))[..., None], (y / (height - 1))[..., None]
    base = (
        corners[0] * (1 - fx) * (1 - fy)
        + corners[1] * fx * (1 - fy)
        + corners[2] * (1 - fx) * fy
        + corners[3] * fx * fy
    )
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = (
            int(rng.integers(width // 12, width // 3)),
            int(rng.integers(height // 12, height // 3)),
        )
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=color)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=color)
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.5, 4))))
    arr = np.asarray(img).astype(np.float32)
    arr += rng.normal(0, 4, size=arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def generate(folder: Path, n: int, seed: int = 2026) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        path = folder / f"photo-{i:03d}.jpg"
        make_photo(rng, w, h).save(path, quality=int(rng.integers(80, 95)))
        paths.append(path)
    return paths


def _vec_to_hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def reference_hash(path: Path) -> tuple[str, int]:
    import pdqhash

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    bits, quality = pdqhash.compute(arr)
    return _vec_to_hex(bits), int(quality)


def timed(fn: Any, items: list[Any], rounds: int) -> tuple[float, list[Any]]:
    """Best-of-`rounds` wall time of mapping `fn` over `items`, and the last results."""
    best = float("inf")
    results: list[Any] = []
    for _ in range(rounds):
        start = time.perf_counter()
        results = [fn(item) for item in items]
        best = min(best, time.perf_counter() - start)
    return best, results


def bench_images(paths: list[Path], rounds: int) -> dict[str, Any]:
    from ridgeline.pdq import pdq_signal_value
    from ridgeline.signals import HashOptions
    from ridgeline.signals.pdq import hamming

    exact_opts, fast_opts = HashOptions(mode="exact"), HashOptions(mode="fast")
    t_ref, ref = timed(reference_hash, paths, 1)  # slow: one round is enough
    t_exact, exact = timed(lambda p: pdq_signal_value(p, exact_opts), paths, rounds)
    t_fast, fast = timed(lambda p: pdq_signal_value(p, fast_opts), paths, rounds)
    identical = sum(
        e["hash"] == r[0] and e["quality"] == r[1] for e, r in zip(exact, ref, strict=True)
    )
    dev = [hamming(f["hash"], e["hash"]) for f, e in zip(fast, exact, strict=True)]
    n = len(paths)
    pixels = 0
    for p in paths:
        with Image.open(p) as im:
            pixels += im.size[0] * im.size[1]
    return {
        "images": n,
        "megapixels_mean": round(pixels / n / 1e6, 2),
        "reference_images_per_s": round(n / t_ref, 2),
        "exact_images_per_s": round(n / t_exact, 2),
        "exact_bit_identical": identical == n,
        "exact_identical_count": identical,
        "fast_images_per_s": round(n / t_fast, 2),
        "fast_mean_deviation_bits": round(sum(dev) / n, 2),
        "fast_max_deviation_bits": max(dev),
        "exact_speedup": round(t_ref / t_exact, 2),
        "fast_speedup": round(t_ref / t_fast, 2),
    }


def reference_video_frames(path: Path) -> int:
    """Anchor: PyAV decode of every frame + pdqhash.compute; returns frames hashed."""
    import av
    import pdqhash

    n = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            pdqhash.compute(frame.to_ndarray(format="rgb24"))
            n += 1
    return n


def bench_videos(n_videos: int) -> dict[str, Any]:
    videos = sorted((REFERENCE / "vpdq" / "videos").glob("*.mp4"))[:n_videos]
    out: dict[str, Any] = {"videos": len(videos)}
    if not videos:
        why = "skipped (--videos 0)" if n_videos <= 0 else f"no reference videos under {REFERENCE}"
        return {"vpdq": None, "vpdq_error": why}
    start = time.perf_counter()
    anchor_frames = sum(reference_video_frames(v) for v in videos)
    out["vpdq_anchor_frames_per_s"] = round(anchor_frames / (time.perf_counter() - start), 1)
    try:
        from ridgeline.vpdq import hash_video
    except Exception as exc:  # another part of the project, possibly not there yet
        out["vpdq"] = None
        out["vpdq_error"] = f"ridgeline.vpdq not importable: {exc}"
        return out
    try:
        start = time.perf_counter()
        frames = sum(len(hash_video(v)) for v in videos)
        elapsed = time.perf_counter() - start
    except Exception as exc:
        out["vpdq"] = None
        out["vpdq_error"] = f"hash_video failed: {type(exc).__name__}: {exc}"
        return out
    out["vpdq"] = {"frames": frames, "frames_per_s": round(frames / elapsed, 1)}
    out["vpdq_speedup_vs_anchor"] = round(
        out["vpdq"]["frames_per_s"] / out["vpdq_anchor_frames_per_s"], 2
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="generated JPEGs (1-2 MP)")
    parser.add_argument("--videos", type=int, default=2, help="reference videos for vPDQ")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds (best of)")
    args = parser.parse_args(argv)
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core: per-core numbers
        pinned = True
    except (AttributeError, OSError):
        pinned = False
    from ridgeline.hashing import tune_malloc

    # as in `ridgeline hash` and its workers and the service (applies to both paths)
    result: dict[str, Any] = {
        "bench": "hashing",
        "single_core": pinned,
        "malloc_tuned": tune_malloc(),
    }
    with tempfile.TemporaryDirectory(prefix="ridgeline-bench-") as tmp:
        paths = generate(Path(tmp), args.images)
        result.update(bench_images(paths, args.rounds))
    result.update(bench_videos(args.videos))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
