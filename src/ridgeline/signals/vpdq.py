"""vPDQ: per-frame PDQ hashes of a video, in the upstream text format."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ridgeline.errors import InvalidHash
from ridgeline.signals.base import (
    ContentKind,
    HashOptions,
    SignalType,
    SignalValue,
    VpdqFrameValue,
)
from ridgeline.signals.pdq import MIN_QUALITY

log = logging.getLogger(__name__)

#: vPDQ frames match when their PDQ distance is at most this (upstream default).
VPDQ_FRAME_RADIUS = 31


class VPDQSignal(SignalType):
    """A video's frames: `frame_number,quality,pdq_hex,timestamp_seconds` per line.

    `distance` is 100 minus the query-match percentage of the upstream rule, so the
    default threshold of 20 means "at least 80 % of the query's frames match";
    `ridgeline.vpdq.match` gives both percentages and the full rule. Indexed by its
    good frames: a frame within `key_radius` makes the stored video a candidate, and
    `confirm` applies the upstream rule to the candidate's whole value.
    """

    name = "vpdq"
    expected_form = "lines of frame_number,quality,pdq_hex,timestamp_seconds"
    content_kinds: frozenset[ContentKind] = frozenset({"video"})
    default_threshold = 20.0
    #: Frames below this quality are neither indexed nor searched.
    min_quality = MIN_QUALITY
    index_kind = "frames256"
    key_width = 32
    key_radius = VPDQ_FRAME_RADIUS
    max_threshold = 100.0  # 100 minus a percentage

    def normalize(self, value: str) -> str:
        from ridgeline.vpdq import format_frames, parse_frames

        try:
            return format_frames(parse_frames(value))
        except ValueError as exc:
            raise InvalidHash(self.name, str(value), f"{self.expected_form} ({exc})") from None

    def distance(self, a: str, b: str) -> float:
        from ridgeline.vpdq import match, parse_frames

        result = match(parse_frames(a), parse_frames(b))
        return 100.0 - result.query_match_percent

    def compute(self, path: Path, options: HashOptions) -> SignalValue:
        from ridgeline.vpdq import DEFAULT_MAX_PIXELS, hash_video

        # A lowered --max-pixels applies to video frames too; the image default
        # (178 Mpx) is far above any video, so the video default stays in force.
        frames = hash_video(
            path,
            interval=options.video_interval,
            max_pixels=min(options.max_pixels, DEFAULT_MAX_PIXELS),
        )
        return [
            VpdqFrameValue(
                frame_number=f.frame_number, quality=f.quality, hash=f.hash, timestamp=f.timestamp
            )
            for f in frames
        ]

    def canonical_values(self, value: SignalValue) -> list[str]:
        from ridgeline.vpdq import VpdqFrame, format_frames

        if isinstance(value, list):
            return [format_frames([VpdqFrame.from_json(v) for v in value])]
        return []

    def _good_frames(self, value: str) -> list[str]:
        from ridgeline.vpdq import parse_frames

        return [f.hash for f in parse_frames(value) if f.quality >= MIN_QUALITY]

    def index_keys(self, value: str, quality: int | None) -> list[str]:
        try:
            return self._good_frames(value)
        except ValueError:
            log.warning("unreadable vpdq value skipped")
            return []

    def query_keys(self, value: str) -> list[str]:
        return self._good_frames(value)

    def encode_keys(self, keys: Sequence[str]) -> bytes:
        return bytes.fromhex("".join(keys))

    def confirm(self, query: str, stored: str, threshold: float) -> float | None:
        from ridgeline.vpdq import match, parse_frames

        result = match(
            parse_frames(query),
            parse_frames(stored),
            distance_threshold=VPDQ_FRAME_RADIUS,
            query_match_threshold=100.0 - threshold,
        )
        return 100.0 - result.query_match_percent if result.is_match else None


VPDQ = VPDQSignal()
