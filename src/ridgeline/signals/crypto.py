"""Cryptographic file hashes: md5, sha1, sha256 (exact match only)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from ridgeline.errors import InvalidHash
from ridgeline.signals.base import StreamingSignal


class HexDigestSignal(StreamingSignal):
    """A hashlib digest written as lowercase hex; compared for equality, indexed by its bytes."""

    max_threshold = 0.0  # exact: any other threshold would mean nothing

    def __init__(self, name: str, hex_length: int) -> None:
        self.name = name
        self.hex_length = hex_length
        self.key_width = hex_length // 2
        self.expected_form = f"{hex_length} hexadecimal characters"
        self._pattern = re.compile(rf"[0-9a-f]{{{hex_length}}}")

    def normalize(self, value: str) -> str:
        text = value.strip().lower() if isinstance(value, str) else ""
        if not self._pattern.fullmatch(text):
            raise InvalidHash(self.name, str(value), self.expected_form)
        return text

    def distance(self, a: str, b: str) -> float:
        return 0 if a == b else 1

    hex_keys = True

    def encode_keys(self, keys: Sequence[str]) -> bytes:
        return bytes.fromhex("".join(keys))

    def new_hasher(self) -> hashlib._Hash:
        return hashlib.new(self.name)


MD5 = HexDigestSignal("md5", 32)
SHA1 = HexDigestSignal("sha1", 40)
SHA256 = HexDigestSignal("sha256", 64)
