"""The one small interface every signal type (hash algorithm) implements.

A signal type knows its name, how to validate and normalise a hash string, how to
compare two hashes and what threshold to use by default, and, where it can, how to
compute itself from content. Built-ins and third-party plug-ins register through the
`ridgeline.signals` entry point group and are treated the same.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ridgeline.errors import NotComputable

#: What kind of content a signal can be computed from.
ContentKind = Literal["file", "image", "video"]

#: JSON-compatible value that `compute` returns: a string for cryptographic hashes,
#: `{"hash", "quality"}` for PDQ, a list of frames for vPDQ.
SignalValue = Any

#: Default pixel limit: larger images are refused as possible decompression bombs.
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own default limit (twice its warning limit)


@dataclass(frozen=True)
class HashOptions:
    """Explicit options for computing signals, passed down unchanged to every signal."""

    mode: Literal["exact", "fast"] = "exact"
    #: Also compute the 8 dihedral variants (rotations and flips) of image hashes.
    dihedral: bool = False
    #: Hash every frame of animated images instead of the first only.
    all_frames: bool = False
    #: Refuse images with more pixels than this (decompression bombs).
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: vPDQ sampling: None hashes every frame, otherwise one frame per this many seconds.
    video_interval: float | None = None


class SignalType(ABC):
    """A hash algorithm as Ridgeline sees it.

    Subclasses are small value objects; instances are registered, not classes, so a
    plug-in may be configured (for example a different default threshold).
    """

    #: Registry name, exactly as in CONVENTIONS.md (`md5`, `pdq`, ...).
    name: str
    #: Human description of the canonical string, used in error messages.
    expected_form: str
    #: Content this signal is computed from; empty if it cannot be computed here.
    content_kinds: frozenset[ContentKind] = frozenset()
    #: Distance at or below which two hashes match (0 means equal only).
    default_threshold: float = 0

    @abstractmethod
    def normalize(self, value: str) -> str:
        """Return the canonical form of `value` or raise `InvalidHash`."""

    @abstractmethod
    def distance(self, a: str, b: str) -> float:
        """Distance between two canonical hashes (0 means identical)."""

    def matches(self, a: str, b: str, threshold: float | None = None) -> bool:
        """True when the two canonical hashes are within the threshold."""
        limit = self.default_threshold if threshold is None else threshold
        return self.distance(a, b) <= limit

    def can_compute(self, kind: ContentKind) -> bool:
        """Whether `compute` works for content of this kind."""
        return kind in self.content_kinds or "file" in self.content_kinds

    def compute(self, path: Path, options: HashOptions) -> SignalValue:
        """Compute the signal from a file; raise `NotComputable` where impossible."""
        raise NotComputable(f"{self.name} cannot be computed by Ridgeline")

    def canonical_values(self, value: SignalValue) -> list[str]:
        """The canonical hash strings inside a computed value (for storing and matching)."""
        return [value] if isinstance(value, str) else []

    def __repr__(self) -> str:
        return f"<signal {self.name}>"


class StreamingSignal(SignalType):
    """A signal computed from the raw bytes of any file in one streaming pass.

    `ridgeline.hashing` feeds one read of the file to every streaming signal at
    once, so md5, sha1 and sha256 of a multi-GB file cost one read and constant memory.
    """

    content_kinds: frozenset[ContentKind] = frozenset({"file"})

    @abstractmethod
    def new_hasher(self) -> hashlib._Hash:
        """A fresh incremental hasher (`update` / `hexdigest`)."""

    def compute(self, path: Path, options: HashOptions) -> SignalValue:
        return stream_digests(path, [self])[self.name]


CHUNK_SIZE = 1 << 20


def stream_digests(path: Path, signals: list[StreamingSignal]) -> Mapping[str, str]:
    """Hash a file with several streaming signals in one read of constant memory."""
    hashers = {s.name: s.new_hasher() for s in signals}
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}
