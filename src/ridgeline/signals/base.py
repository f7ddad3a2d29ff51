"""The one interface every signal type (hash algorithm) implements: the plug-in point.

A signal type holds everything signals differ in, so nothing outside
`ridgeline.signals` (and the index engine its `index_kind` names) branches on a
signal's name: how to validate, normalise and compare a hash, its default threshold
and minimum quality, how to compute it from content, how a computed value becomes
queries (quality gate, dihedral variants, frames), how a stored value is indexed
(engine kind, key bytes, rows per value) and which columns carry it in exports.
Built-ins and third-party plug-ins register instances through the `ridgeline.signals`
entry point group and are treated the same.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NotRequired

from typing_extensions import TypedDict

from ridgeline.errors import BadInput, NotComputable

#: What kind of content a signal can be computed from.
ContentKind = Literal["file", "image", "video"]

#: Which engine indexes a signal's keys (`ridgeline.index` picks the engine by this):
#: "exact" equal fixed-width keys; "hamming256" 256-bit keys within a Hamming radius;
#: "frames256" several 256-bit keys per value whose candidates `confirm` decides;
#: "l2" byte vectors within a Euclidean radius.
IndexKind = Literal["exact", "hamming256", "frames256", "l2"]


class PdqHash(TypedDict):
    """One PDQ hash with its quality (a dihedral variant, or a frame of an image)."""

    hash: str
    quality: int


class PdqValue(TypedDict):
    """The computed `pdq` signal of an image (or of one frame with `frame`)."""

    hash: str
    quality: int
    #: With `HashOptions.dihedral`: variant name -> hash, the original included.
    dihedral: NotRequired[dict[str, PdqHash]]
    #: With `HashOptions.all_frames` on an animated image: the frame index.
    frame: NotRequired[int]


class VpdqFrameValue(TypedDict):
    """One frame of a computed `vpdq` signal (upstream vPDQ fields)."""

    frame_number: int
    quality: int
    hash: str
    timestamp: float


#: What `compute` returns, JSON-compatible as `ridgeline hash` prints it: a string for
#: cryptographic and plug-in hashes, a `PdqValue` for an image (a list of them for every
#: frame of an animated image), a list of `VpdqFrameValue` for a video.
SignalValue = str | PdqValue | list[PdqValue] | list[VpdqFrameValue]


@dataclass(frozen=True)
class Query:
    """One hash to look up: signal, canonical value, optional quality and variant label."""

    signal: str
    value: str
    quality: int | None = None
    #: "" for the content as given; a dihedral variant name or frame label otherwise.
    variant: str = ""


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
    #: Hashes whose quality is below this are neither indexed nor queried (None: no gate).
    min_quality: int | None = None
    #: Computed by `ridgeline hash` (and so matched by `match FILE` and `scan`) by default
    #: for every content kind it can be computed from.
    computed_by_default: bool = True
    #: The engine that indexes this signal's keys, and the bytes of one key.
    index_kind: IndexKind = "exact"
    #: `encode_keys` is `bytes.fromhex` of the canonical (lowercase hex) value, so a
    #: stored key (`lists.models.entry_key`, those raw bytes) is already its index key
    #: and an index build need not turn rows into text and back.
    hex_keys: bool = False
    key_width: int = 32
    #: "frames256" only: radius within which one key (frame) is a candidate.
    key_radius: float = 0
    #: Native CSV/JSONL column that carries the hash's quality (None: it has none).
    quality_column: str | None = None
    #: Largest threshold a list may set (None: unbounded); exact signals have 0.
    max_threshold: float | None = None
    #: Thresholds above this are accepted with a warning (None: never warn).
    safe_threshold: float | None = None

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

    def check_threshold(self, value: float) -> str | None:
        """`BadInput` outside 0..max_threshold; a warning above the safe range, else None."""
        high = self.max_threshold
        if not value >= 0 or (high is not None and value > high):
            if high == 0:
                bounds = "0 (an exact signal: equal hashes only)"
            elif high is None:
                bounds = "zero or more"
            else:
                bounds = f"between 0 and {high:g}"
            raise BadInput(f"threshold for {self.name} must be {bounds}, not {value:g}")
        if self.safe_threshold is not None and value > self.safe_threshold:
            return (
                f"threshold {value:g} for {self.name} is above the safe range "
                f"0..{self.safe_threshold:g}: expect unrelated content to match"
            )
        return None

    def can_compute(self, kind: ContentKind) -> bool:
        """Whether `compute` works for content of this kind."""
        return kind in self.content_kinds or "file" in self.content_kinds

    def compute(self, path: Path, options: HashOptions) -> SignalValue:
        """Compute the signal from a file; raise `NotComputable` where impossible."""
        raise NotComputable(f"{self.name} cannot be computed by Ridgeline")

    def canonical_values(self, value: SignalValue) -> list[str]:
        """The canonical hash strings inside a computed value (for storing and matching)."""
        return [value] if isinstance(value, str) else []

    # -- matching: how a computed value becomes lookups -------------------------------

    def queries(self, value: SignalValue, *, dihedral: bool = False) -> list[Query]:
        """The lookups a computed value makes (PDQ adds qualities, frames and variants)."""
        return [Query(self.name, v) for v in self.canonical_values(value)]

    def usable(self, quality: int | None, min_quality: int | None = None) -> bool:
        """Whether a hash of this quality is matched (`min_quality` overrides the default)."""
        limit = self.min_quality if min_quality is None else min_quality
        return quality is None or limit is None or self.min_quality is None or quality >= limit

    # -- indexing: how a canonical value becomes index keys ----------------------------

    def index_keys(self, value: str, quality: int | None) -> list[str]:
        """The keys a stored canonical value is indexed under (none: never matched)."""
        return [value] if self.usable(quality) else []

    def query_keys(self, value: str) -> list[str]:
        """The keys a canonical query value is searched by ("frames256": its frames)."""
        return [value]

    def encode_keys(self, keys: Sequence[str]) -> bytes:
        """Keys as `key_width` bytes each; by default the sha256 of the canonical string,
        so a plug-in whose hashes only compare equal needs nothing more."""
        return b"".join(hashlib.sha256(k.encode()).digest() for k in keys)

    def confirm(self, query: str, stored: str, threshold: float) -> float | None:
        """ "frames256": the distance of a candidate found by its keys, or None if no match."""
        distance = self.distance(query, stored)
        return distance if distance <= threshold else None

    # -- exchange: how a value travels in Ridgeline's own CSV/JSONL --------------------

    def export_columns(self) -> tuple[str, ...]:
        """Native CSV columns of this signal: its hash, then its quality if it has one."""
        return (self.name,) if self.quality_column is None else (self.name, self.quality_column)

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

    def compute(self, path: Path, options: HashOptions) -> str:
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
