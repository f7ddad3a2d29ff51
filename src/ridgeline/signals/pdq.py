"""PDQ: Meta's 256-bit perceptual image hash, compared by Hamming distance."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from ridgeline.errors import InvalidHash
from ridgeline.signals.base import (
    ContentKind,
    HashOptions,
    PdqValue,
    Query,
    SignalType,
    SignalValue,
)

_HEX64 = re.compile(r"[0-9a-f]{64}")

#: Hashes with quality below this are not matched by default (CONVENTIONS.md).
MIN_QUALITY = 50
PDQ_THRESHOLD = 31
#: Dihedral variant names that are the content as given (not queried twice).
_IDENTITY_VARIANTS = frozenset({"orig", "original", "identity", "d0"})
#: Two unrelated PDQ hashes differ in about half their 256 bits: beyond 128 everything
#: matches. Above Meta's recommended 31 false matches climb (docs/signals.md).
PDQ_MAX_THRESHOLD = 128


def normalize_pdq(value: str) -> str:
    """Canonical PDQ: 64 lowercase hex digits (upstream bit order)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _HEX64.fullmatch(text):
        raise InvalidHash("pdq", str(value), "64 hexadecimal characters (256 bits)")
    return text


def hamming(a: str, b: str) -> int:
    """Hamming distance between two canonical PDQ hex strings."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def pdq_frames(value: SignalValue) -> list[PdqValue]:
    """The image's hash, or each frame's of an animated image (`--all-frames`)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [cast(PdqValue, v) for v in value if isinstance(v, dict) and "hash" in v]
    return []


class PDQSignal(SignalType):
    """Images only; value is `{"hash", "quality"}` (+ `"dihedral"` on request)."""

    name = "pdq"
    expected_form = "64 hexadecimal characters (256 bits)"
    content_kinds: frozenset[ContentKind] = frozenset({"image"})
    default_threshold = PDQ_THRESHOLD
    min_quality = MIN_QUALITY
    index_kind = "hamming256"
    key_width = 32
    hex_keys = True
    quality_column = "quality"
    max_threshold = PDQ_MAX_THRESHOLD
    safe_threshold = PDQ_THRESHOLD

    def normalize(self, value: str) -> str:
        return normalize_pdq(value)

    def distance(self, a: str, b: str) -> float:
        return hamming(a, b)

    def compute(self, path: Path, options: HashOptions) -> SignalValue:
        from ridgeline.pdq import pdq_signal_value  # heavy imports only when hashing

        return pdq_signal_value(path, options)

    def canonical_values(self, value: SignalValue) -> list[str]:
        return [frame["hash"] for frame in pdq_frames(value)]

    def queries(self, value: SignalValue, *, dihedral: bool = False) -> list[Query]:
        """One query per frame, with its quality; with `dihedral` its 7 other variants."""
        out: list[Query] = []
        animated = isinstance(value, list)
        for i, frame in enumerate(pdq_frames(value)):
            label = f"frame{i}" if animated else ""
            quality = frame.get("quality")
            out.append(Query(self.name, frame["hash"], quality, label))
            if not dihedral:
                continue
            for variant, h in (frame.get("dihedral") or {}).items():
                if variant in _IDENTITY_VARIANTS:
                    continue
                out.append(
                    Query(
                        self.name,
                        h["hash"],
                        h.get("quality", quality),
                        f"{label}:{variant}" if label else variant,
                    )
                )
        return out

    def encode_keys(self, keys: Sequence[str]) -> bytes:
        return bytes.fromhex("".join(keys))


PDQ = PDQSignal()
