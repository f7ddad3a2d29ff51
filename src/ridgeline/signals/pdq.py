"""PDQ: Meta's 256-bit perceptual image hash, compared by Hamming distance."""

from __future__ import annotations

import re
from pathlib import Path

from ridgeline.errors import InvalidHash
from ridgeline.signals.base import ContentKind, HashOptions, SignalType, SignalValue

_HEX64 = re.compile(r"[0-9a-f]{64}")

#: Hashes with quality below this are not matched by default (CONVENTIONS.md).
MIN_QUALITY = 50
PDQ_THRESHOLD = 31


def normalize_pdq(value: str) -> str:
    """Canonical PDQ: 64 lowercase hex digits (upstream bit order)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _HEX64.fullmatch(text):
        raise InvalidHash("pdq", str(value), "64 hexadecimal characters (256 bits)")
    return text


def hamming(a: str, b: str) -> int:
    """Hamming distance between two canonical PDQ hex strings."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


class PDQSignal(SignalType):
    """Images only; value is `{"hash", "quality"}` (+ `"dihedral"` on request)."""

    name = "pdq"
    expected_form = "64 hexadecimal characters (256 bits)"
    content_kinds: frozenset[ContentKind] = frozenset({"image"})
    default_threshold = PDQ_THRESHOLD

    def normalize(self, value: str) -> str:
        return normalize_pdq(value)

    def distance(self, a: str, b: str) -> float:
        return hamming(a, b)

    def compute(self, path: Path, options: HashOptions) -> SignalValue:
        from ridgeline.pdq import pdq_signal_value  # heavy imports only when hashing

        return pdq_signal_value(path, options)

    def canonical_values(self, value: SignalValue) -> list[str]:
        if isinstance(value, dict):
            return [value["hash"]]
        if isinstance(value, list):  # every frame of an animated image
            return [v["hash"] for v in value]
        return []


PDQ = PDQSignal()
