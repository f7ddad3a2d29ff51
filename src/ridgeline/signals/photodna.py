"""PhotoDNA: stored, exchanged and compared here, never computed.

PhotoDNA is proprietary; licensed software computes the 144-byte vector and
Ridgeline keeps it as base64 (192 characters), as NCMEC hash-sharing and VICS files
carry it, and compares vectors by Euclidean distance.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence

from ridgeline.errors import InvalidHash
from ridgeline.signals.base import SignalType

PHOTODNA_BYTES = 144


def decode_photodna(canonical: str) -> bytes:
    """The 144 bytes of a canonical PhotoDNA string."""
    return base64.b64decode(canonical)


class PhotoDNASignal(SignalType):
    """Euclidean distance between 144-byte vectors; the threshold is set per list."""

    name = "photodna"
    expected_form = "144 bytes as base64 (192 characters)"
    # No universal threshold exists: lists set their own. The default only matches
    # vectors that are byte-identical or nearly so.
    default_threshold = 0.0
    index_kind = "l2"
    key_width = PHOTODNA_BYTES
    max_threshold = 3060.0  # the largest distance there is: sqrt(144 * 255**2)

    def normalize(self, value: str) -> str:
        text = "".join(value.split()) if isinstance(value, str) else ""
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidHash(self.name, str(value), self.expected_form) from None
        if len(raw) != PHOTODNA_BYTES:
            raise InvalidHash(self.name, str(value), self.expected_form)
        return base64.b64encode(raw).decode("ascii")

    def encode_keys(self, keys: Sequence[str]) -> bytes:
        return b"".join(decode_photodna(k) for k in keys)

    def distance(self, a: str, b: str) -> float:
        va, vb = decode_photodna(a), decode_photodna(b)
        return math.sqrt(sum((x - y) * (x - y) for x, y in zip(va, vb, strict=True)))


PHOTODNA = PhotoDNASignal()
