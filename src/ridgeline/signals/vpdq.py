"""vPDQ: per-frame PDQ hashes of a video, in the upstream text format."""

from __future__ import annotations

from pathlib import Path

from ridgeline.errors import InvalidHash
from ridgeline.signals.base import ContentKind, HashOptions, SignalType, SignalValue


class VPDQSignal(SignalType):
    """A video's frames: `frame_number,quality,pdq_hex,timestamp_seconds` per line.

    `distance` is 100 minus the query-match percentage of the upstream rule, so the
    default threshold of 20 means "at least 80 % of the query's frames match";
    `ridgeline.vpdq.match` gives both percentages and the full rule.
    """

    name = "vpdq"
    expected_form = "lines of frame_number,quality,pdq_hex,timestamp_seconds"
    content_kinds: frozenset[ContentKind] = frozenset({"video"})
    default_threshold = 20.0

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
        return [frame.to_json() for frame in frames]

    def canonical_values(self, value: SignalValue) -> list[str]:
        from ridgeline.vpdq import VpdqFrame, format_frames

        if isinstance(value, list):
            return [format_frames([VpdqFrame.from_json(v) for v in value])]
        return []


VPDQ = VPDQSignal()
