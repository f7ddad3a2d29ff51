"""vPDQ: per-frame PDQ hashes of a video, and the upstream vPDQ match rule.

A vPDQ hash is a list of frames, each `frame_number,quality,pdq_hex,timestamp_seconds`
(the text format Meta's `vpdq` writes). Frames are decoded with PyAV, so no system
ffmpeg is needed, converted to RGB24 at their full size (upstream does not downscale
by default) and hashed with Ridgeline's PDQ. Matching follows python-threatexchange
(the library HMA uses): frames are de-duplicated by hash, low-quality frames dropped,
and a frame matches when some frame of the other video lies within the distance
threshold; the two percentages then decide the match.
"""

from __future__ import annotations

import math
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ridgeline.errors import BadInput

__all__ = [
    "DEFAULT_COMPARED_MATCH_THRESHOLD",
    "DEFAULT_DISTANCE_THRESHOLD",
    "DEFAULT_MAX_DURATION",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY_THRESHOLD",
    "DEFAULT_QUERY_MATCH_THRESHOLD",
    "VpdqFrame",
    "VpdqMatch",
    "format_frames",
    "frames_to_words",
    "hash_video",
    "match",
    "parse_frames",
    "prepare_frames",
]

#: Frames below this PDQ quality are ignored when matching (upstream default).
DEFAULT_QUALITY_THRESHOLD = 50
#: Two frames match when their PDQ Hamming distance is at most this (upstream default).
DEFAULT_DISTANCE_THRESHOLD = 31
#: Percentage of the query's frames that must match for a video match.
DEFAULT_QUERY_MATCH_THRESHOLD = 80.0
#: Percentage of the compared video's frames that must match (upstream: 0, i.e. any).
DEFAULT_COMPARED_MATCH_THRESHOLD = 0.0

#: Work bounds for `hash_video`; a video beyond them is refused with `BadInput`.
DEFAULT_MAX_FRAMES = 500_000  # hashed frames: ~4.6 hours at 30 frames/s, every frame
DEFAULT_MAX_DURATION = 6 * 3600.0  # seconds of video decoded
DEFAULT_MAX_PIXELS = 8192 * 8192  # per frame; 8K UHD is 7680 x 4320

#: Threads hashing frames while the main thread decodes (PDQ releases the GIL).
_HASH_THREADS = max(1, min(4, os.cpu_count() or 1))

#: swscale flags for the YUV -> RGB24 conversion (no resizing). Upstream asks for
#: SWS_AREA, but the FFmpeg it was built against converted same-size frames with its
#: unscaled path: nearest-neighbour chroma and exact rounding. SWS_POINT |
#: SWS_ACCURATE_RND reproduces that, and with it the reference hashes; FFmpeg 8's
#: default fast path drifts by up to ~20 bits on low-contrast frames.
_SWS_FLAGS = 0x10 | 0x40000  # SWS_POINT | SWS_ACCURATE_RND

#: Upstream writes timestamps with three decimals (`%.3f`).
TIMESTAMP_DECIMALS = 3

_HEX64 = re.compile(r"[0-9a-f]{64}")
_INT = re.compile(r"[+]?[0-9]+")


def _check_frame_fields(frame_number: Any, quality: Any, hash_: Any, timestamp: Any) -> None:
    """Raise ValueError naming the first bad field."""
    if isinstance(frame_number, bool) or not isinstance(frame_number, int) or frame_number < 0:
        raise ValueError(f"frame_number must be a non-negative integer, got {frame_number!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be an integer from 0 to 100, got {quality!r}")
    if not isinstance(hash_, str) or not _HEX64.fullmatch(hash_):
        raise ValueError(f"hash must be 64 lowercase hexadecimal characters, got {hash_!r}")
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
        or timestamp < 0
    ):
        raise ValueError(f"timestamp must be a finite number of seconds >= 0, got {timestamp!r}")


@dataclass(frozen=True)
class VpdqFrame:
    """One hashed frame: its index in decode order, PDQ quality and hash, time in seconds."""

    frame_number: int
    quality: int
    hash: str
    timestamp: float

    def __post_init__(self) -> None:
        _check_frame_fields(self.frame_number, self.quality, self.hash, self.timestamp)

    def to_json(self) -> dict[str, Any]:
        return {
            "frame_number": self.frame_number,
            "quality": self.quality,
            "hash": self.hash,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> VpdqFrame:
        """Build a frame from `to_json` output; hash case and surrounding space are forgiven."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a vPDQ frame must be an object, got {type(d).__name__}")
        missing = [k for k in ("frame_number", "quality", "hash", "timestamp") if k not in d]
        if missing:
            raise ValueError(f"vPDQ frame is missing {', '.join(missing)}")
        hash_ = d["hash"].strip().lower() if isinstance(d["hash"], str) else d["hash"]
        timestamp = d["timestamp"]
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            timestamp = float(timestamp)
        return cls(d["frame_number"], d["quality"], hash_, timestamp)

    def to_line(self) -> str:
        """The upstream text line (no newline)."""
        seconds = f"{self.timestamp:.{TIMESTAMP_DECIMALS}f}"
        return f"{self.frame_number},{self.quality},{self.hash},{seconds}"


@dataclass(frozen=True)
class VpdqMatch:
    """Outcome of comparing two videos under the upstream vPDQ rule."""

    query_match_percent: float
    compared_match_percent: float
    is_match: bool


# ---------------------------------------------------------------- text format


def _parse_line(line: str) -> VpdqFrame:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 4:
        raise ValueError(
            f"expected 4 comma-separated fields frame_number,quality,pdq_hex,timestamp_seconds;"
            f" got {len(fields)}"
        )
    number_s, quality_s, hash_s, time_s = fields
    if not _INT.fullmatch(number_s):
        raise ValueError(f"frame_number {number_s!r} is not a non-negative integer")
    if not _INT.fullmatch(quality_s):
        raise ValueError(f"quality {quality_s!r} is not an integer from 0 to 100")
    hash_s = hash_s.lower()
    if not _HEX64.fullmatch(hash_s):
        raise ValueError(f"pdq_hex {hash_s!r} is not 64 hexadecimal characters")
    try:
        timestamp = float(time_s)
    except ValueError:
        raise ValueError(f"timestamp {time_s!r} is not a number of seconds") from None
    return VpdqFrame(int(number_s), int(quality_s), hash_s, timestamp)


def parse_frames(text: str) -> list[VpdqFrame]:
    """Parse the upstream text format, one frame per line.

    Blank lines and surrounding white space are ignored and hex may be upper case;
    a bad line raises `ValueError` naming its (1-based) line number and the problem.
    """
    if not isinstance(text, str):
        raise ValueError(f"vPDQ text must be a string, got {type(text).__name__}")
    frames: list[VpdqFrame] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            frames.append(_parse_line(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return frames


def format_frames(frames: Iterable[VpdqFrame]) -> str:
    """Canonical text: one upstream line per frame, each ending in a newline."""
    return "".join(frame.to_line() + "\n" for frame in frames)


# ---------------------------------------------------------------- hashing


def _hasher() -> Callable[[npt.NDArray[np.uint8]], tuple[str, int]]:
    from ridgeline.pdq import hash_rgb

    return hash_rgb


def _check_limit(name: str, value: int | float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _frame_rate(stream: Any) -> float:
    """Frames per second as upstream takes it: average rate, else the stream's base rate."""
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate and Fraction(rate) > 0:
            return float(rate)
    return 0.0


def _is_still_image_format(format_name: str) -> bool:
    """FFmpeg demuxes single images (`png_pipe`, `image2`, ...) as one-frame videos."""
    names = format_name.split(",")
    return any(n.endswith("_pipe") or n in ("image2", "apng", "webp") for n in names)


def hash_video(
    path: str | os.PathLike[str],
    *,
    interval: float | None = None,
    max_frames: int | None = None,
    max_duration: float | None = None,
    max_pixels: int | None = None,
) -> list[VpdqFrame]:
    """Hash a video's frames with PDQ, the way upstream vPDQ does.

    `interval=None` (or 0) hashes every frame; otherwise every Nth decoded frame with
    N = int(interval * frame rate), upstream's "seconds per hash". Frame numbers count
    decoded frames from 0; timestamps are presentation times (PTS * time base) from the
    stream start, rounded to milliseconds as upstream prints them.

    Work is bounded: more than `max_frames` hashed frames (default `DEFAULT_MAX_FRAMES`),
    more than `max_duration` seconds (`DEFAULT_MAX_DURATION`) or a frame larger than
    `max_pixels` (`DEFAULT_MAX_PIXELS`) raises `BadInput`, as do missing, empty,
    corrupt, truncated and non-video files.
    """
    import av  # heavy import only when hashing

    if interval is not None and (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or interval < 0
    ):
        raise ValueError(f"interval must be a number of seconds >= 0 or None, got {interval!r}")
    _check_limit("max_frames", max_frames)
    _check_limit("max_duration", max_duration)
    _check_limit("max_pixels", max_pixels)
    frame_limit = DEFAULT_MAX_FRAMES if max_frames is None else max_frames
    duration_limit = DEFAULT_MAX_DURATION if max_duration is None else max_duration
    pixel_limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels

    p = Path(path)
    shown = os.fspath(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise BadInput(f"{shown}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{shown}: unreadable ({exc.strerror or exc})") from None
    if not p.is_file():
        raise BadInput(f"{shown}: not a file")
    if size == 0:
        raise BadInput(f"{shown}: empty file, not a video")

    hash_rgb = _hasher()
    try:
        # "file:" and the protocol whitelist keep FFmpeg from reading a name such as
        # "concat:..." as a protocol, or a playlist inside the file from reaching out.
        container = av.open(
            "file:" + os.path.abspath(p), mode="r", options={"protocol_whitelist": "file"}
        )
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:  # undecodable metadata
        raise BadInput(f"{shown}: not a readable video ({_av_reason(exc)})") from None
    try:
        if _is_still_image_format(container.format.name):
            raise BadInput(
                f"{shown}: a still image ({container.format.name}), not a video;"
                " hash images with pdq"
            )
        if not container.streams.video:
            raise BadInput(f"{shown}: no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a stream FFmpeg has no decoder for
            raise BadInput(f"{shown}: video stream without a decodable codec")
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height and width * height > pixel_limit:
            raise BadInput(
                f"{shown}: frame size {width}x{height} exceeds the limit of {pixel_limit} pixels"
            )
        declared = _declared_duration(container, stream)
        if declared is not None and declared > duration_limit:
            raise BadInput(
                f"{shown}: duration {declared:.1f} s exceeds the limit of {duration_limit:g} s"
            )
        fps = _frame_rate(stream)
        step = 1
        if interval:
            step = max(1, int(interval * fps)) if fps else 0
        frames = _hash_stream(
            container, stream, hash_rgb, shown, step, interval or 0.0, fps,
            frame_limit, duration_limit, pixel_limit,
        )  # fmt: skip
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{shown}: corrupt or truncated video ({_av_reason(exc)})") from None
    finally:
        container.close()
    if not frames:
        raise BadInput(f"{shown}: no decodable video frames")
    return frames


def _av_reason(exc: Exception) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    return str(reason)


def _declared_duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return None


def _hash_stream(
    container: Any,
    stream: Any,
    hash_rgb: Callable[[npt.NDArray[np.uint8]], tuple[str, int]],
    shown: str,
    step: int,
    interval: float,
    fps: float,
    frame_limit: int | float,
    duration_limit: float,
    pixel_limit: int | float,
) -> list[VpdqFrame]:
    """Decode and hash; `step` 0 means sample by timestamp (no usable frame rate)."""
    time_base = stream.time_base
    start = stream.start_time
    frames: list[VpdqFrame] = []
    # PDQ releases the GIL: hash in worker threads while this thread decodes, keeping
    # a bounded number of frames in flight so memory stays small for long videos.
    pending: deque[tuple[int, float, Future[tuple[str, int]]]] = deque()
    next_due = 0.0
    decoded = 0
    wanted = 0

    def collect(until: int) -> None:
        while len(pending) > until:
            number, seconds, future = pending.popleft()
            pdq_hex, quality = future.result()
            frames.append(VpdqFrame(number, int(quality), pdq_hex, seconds))

    with ThreadPoolExecutor(max_workers=_HASH_THREADS) as pool:
        for index, frame in enumerate(container.decode(stream)):
            decoded = index + 1
            if frame.pts is not None and time_base:
                if start is None:
                    start = frame.pts
                seconds = float((frame.pts - start) * time_base)
            else:
                seconds = index / fps if fps else 0.0
            seconds = max(seconds, 0.0)
            if seconds > duration_limit:
                raise BadInput(f"{shown}: longer than the limit of {duration_limit:g} s")
            if step:
                if index % step:
                    continue
            elif seconds + 1e-9 < next_due:
                continue
            else:
                next_due = seconds + interval
            if frame.width * frame.height > pixel_limit:
                raise BadInput(
                    f"{shown}: frame {index} size {frame.width}x{frame.height} exceeds the"
                    f" limit of {pixel_limit} pixels"
                )
            wanted += 1
            if wanted > frame_limit:
                raise BadInput(f"{shown}: more than the limit of {frame_limit} hashed frames")
            # One swscale thread: per-frame thread start-up costs more than it saves
            # here, and the hashing threads already keep the cores busy.
            pixels = frame.to_ndarray(format="rgb24", interpolation=_SWS_FLAGS, threads=1)
            future = pool.submit(hash_rgb, pixels)
            pending.append((index, round(seconds, TIMESTAMP_DECIMALS), future))
            collect(2 * _HASH_THREADS)
        collect(0)
    # The container's frame count may exceed what decodes by a few frames (edit lists);
    # far fewer means the file was cut short without the decoder noticing.
    declared = stream.frames or 0
    if declared and declared - decoded > max(2, declared // 50):
        raise BadInput(f"{shown}: truncated video: decoded {decoded} of {declared} frames")
    return frames


# ---------------------------------------------------------------- matching


def frames_to_words(frames: Sequence[VpdqFrame]) -> npt.NDArray[np.uint64]:
    """PDQ hashes as an (N, 4) uint64 array (hex read as big-endian words).

    Any fixed word order gives the same Hamming distances; this one keeps the hex
    string's bit order.
    """
    if not frames:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = bytes.fromhex("".join(f.hash for f in frames))
    return np.frombuffer(raw, dtype=">u8").reshape(-1, 4).astype(np.uint64)


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: npt.NDArray[np.uint64], out: npt.NDArray[np.uint8]) -> None:
    """Set bits of each word into `out`."""
    if hasattr(np, "bitwise_count"):
        np.bitwise_count(x, out=out)
    else:  # numpy < 2.0: count byte by byte through a table
        as_bytes = x.view(np.uint8).reshape(*x.shape, 8)
        _POPCOUNT8[as_bytes].sum(axis=-1, dtype=np.uint8, out=out)


#: Pairs compared per block; bounds the scratch memory (~11 bytes a pair, ~11 MiB).
_BLOCK_PAIRS = 1 << 20


def _mutual_matches(
    a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64], threshold: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """For each row of `a` and of `b`: is some row of the other within `threshold` bits?

    One pass over blocks of the distance matrix answers both directions; scratch
    arrays are reused across blocks (`out=`), which halves the time of fresh ones.
    """
    a_hit = np.zeros(len(a), dtype=bool)
    b_hit = np.zeros(len(b), dtype=bool)
    if not len(a) or not len(b):
        return a_hit, b_hit
    rows = max(1, min(len(a), _BLOCK_PAIRS // len(b)))
    columns = [np.ascontiguousarray(b[:, w])[None, :] for w in range(4)]
    xor = np.empty((rows, len(b)), dtype=np.uint64)
    bits = np.empty((rows, len(b)), dtype=np.uint8)
    dist = np.empty((rows, len(b)), dtype=np.uint16)  # up to 256: too big for uint8
    for lo in range(0, len(a), rows):
        block = a[lo : lo + rows]
        n = len(block)
        x, c, d = xor[:n], bits[:n], dist[:n]
        for w in range(4):
            np.bitwise_xor(block[:, w, None], columns[w], out=x)
            _popcount(x, out=c)
            if w == 0:
                d[...] = c
            else:
                np.add(d, c, out=d)
        close = d <= threshold
        a_hit[lo : lo + n] = close.any(axis=1)
        b_hit |= close.any(axis=0)
    return a_hit, b_hit


def prepare_frames(
    frames: Sequence[VpdqFrame], quality_threshold: int = DEFAULT_QUALITY_THRESHOLD
) -> list[VpdqFrame]:
    """The frames that take part in matching, in upstream order: drop frames repeating
    an earlier frame's hash, then those with quality < `quality_threshold`.

    Index-based matchers use this to count a video's frames the way `match` does.
    """
    seen: set[str] = set()
    kept: list[VpdqFrame] = []
    for f in frames:
        if f.hash not in seen:
            seen.add(f.hash)
            kept.append(f)
    return [f for f in kept if f.quality >= quality_threshold]


def match(
    query: Sequence[VpdqFrame],
    compared: Sequence[VpdqFrame],
    *,
    quality_threshold: int = DEFAULT_QUALITY_THRESHOLD,
    distance_threshold: int = DEFAULT_DISTANCE_THRESHOLD,
    query_match_threshold: float = DEFAULT_QUERY_MATCH_THRESHOLD,
    compared_match_threshold: float = DEFAULT_COMPARED_MATCH_THRESHOLD,
) -> VpdqMatch:
    """Compare two videos by the upstream vPDQ rule (python-threatexchange's brute matcher).

    Each side is de-duplicated by hash and frames with quality < `quality_threshold`
    dropped. A frame matches when a frame of the other side is at Hamming distance
    <= `distance_threshold`. Percentages are matched frames * 100 / remaining frames;
    the videos match when query % >= `query_match_threshold` and compared % >=
    `compared_match_threshold`. A side with no frames left gives 0 % (upstream's C++
    rule; the Python one would divide by zero), so it never matches.
    """
    q = prepare_frames(query, quality_threshold)
    c = prepare_frames(compared, quality_threshold)
    if not q or not c:
        return VpdqMatch(0.0, 0.0, False)
    q_hit, c_hit = _mutual_matches(frames_to_words(q), frames_to_words(c), distance_threshold)
    q_pct = int(q_hit.sum()) * 100 / len(q)
    c_pct = int(c_hit.sum()) * 100 / len(c)
    return VpdqMatch(
        q_pct, c_pct, q_pct >= query_match_threshold and c_pct >= compared_match_threshold
    )
