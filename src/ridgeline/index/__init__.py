"""Exact match indexes: PDQ/vPDQ Hamming range search, exact digests, PhotoDNA vectors.

`MatchIndex` is the store-backed entry point (`MatchIndex.open(store)`); the engines
(`HammingIndex`, `ExactIndex`, `EuclideanIndex`) work on plain numpy arrays.
"""

from ridgeline.index.engines import EuclideanIndex, ExactIndex
from ridgeline.index.fileformat import FORMAT_VERSION, CorruptIndex, IndexFile, write_index_file
from ridgeline.index.hamming import HammingIndex, SearchResult, brute_force, hex_to_rows
from ridgeline.index.match import Match, MatchIndex, SignalIndex, default_directory

__all__ = [
    "FORMAT_VERSION",
    "CorruptIndex",
    "EuclideanIndex",
    "ExactIndex",
    "HammingIndex",
    "IndexFile",
    "Match",
    "MatchIndex",
    "SearchResult",
    "SignalIndex",
    "brute_force",
    "default_directory",
    "hex_to_rows",
    "write_index_file",
]
