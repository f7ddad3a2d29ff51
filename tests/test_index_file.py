"""The on-disk index format: round trip, and every kind of damage is detected."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from ridgeline.index import CorruptIndex, HammingIndex, IndexFile, write_index_file
from ridgeline.index.fileformat import FORMAT_VERSION, MAGIC, checksum


def _write(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    index = HammingIndex.build(rng.integers(0, 256, (500, 32), dtype=np.uint8), m=16)
    sections = {
        **index.sections(),
        "entries": np.arange(500, dtype=np.uint32),
        "lists": np.ones(500, dtype=np.uint32),
    }
    path = tmp_path / "pdq.rlidx"
    write_index_file(path, {"signal": "pdq", "seq": 7}, sections)
    return path, sections


def test_round_trip_maps_the_same_arrays(tmp_path: Path) -> None:
    path, sections = _write(tmp_path)
    f = IndexFile.open(path)
    assert f.header["signal"] == "pdq" and f.header["seq"] == 7
    assert f.header["format_version"] == FORMAT_VERSION
    for name, arr in sections.items():
        assert f.arrays[name].dtype == arr.dtype
        np.testing.assert_array_equal(f.arrays[name], arr)
        assert not f.arrays[name].flags.writeable
        assert f.arrays[name].ctypes.data % 4096 == 0  # page-aligned sections
    assert path.read_bytes()[:8] == MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["pdq.rlidx"]  # no temp files left
    rebuilt = HammingIndex.from_sections(f.arrays, f.header.get("params", {}))
    q = sections["hashes"][:5]
    assert rebuilt.search(q, 31).row.tolist() == list(range(5))


def test_checksum_is_stable_and_sensitive() -> None:
    data = bytes(range(256)) * 5 + b"xyz"
    assert checksum(data) == checksum(bytearray(data))
    for i in (0, 31, 32, 1000, len(data) - 1):
        changed = bytearray(data)
        changed[i] ^= 1
        assert checksum(changed) != checksum(data)
    assert checksum(data[:-1]) != checksum(data)


def _corrupt(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x40
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("section", ["hashes", "mih_offsets", "mih_ids", "entries", "lists"])
def test_a_flipped_bit_in_any_section_is_detected(tmp_path: Path, section: str) -> None:
    path, _ = _write(tmp_path)
    header = IndexFile.open(path).header
    desc = next(d for d in header["sections"] if d["name"] == section)
    _corrupt(path, desc["offset"] + desc["nbytes"] // 2)
    with pytest.raises(CorruptIndex, match=f"section {section} checksum"):
        IndexFile.open(path)


def test_truncation_and_bad_headers_are_detected(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) - 100])
    with pytest.raises(CorruptIndex, match="size"):
        IndexFile.open(path)
    path.write_bytes(good[:10])
    with pytest.raises(CorruptIndex, match="truncated header"):
        IndexFile.open(path)
    path.write_bytes(b"NOTANIDX" + good[8:])
    with pytest.raises(CorruptIndex, match="not a Ridgeline index"):
        IndexFile.open(path)
    path.write_bytes(good[:8] + struct.pack("<I", 99) + good[12:])
    with pytest.raises(CorruptIndex, match="format version 99"):
        IndexFile.open(path)
    hlen = struct.unpack_from("<I", good, 12)[0]
    text = good[24 : 24 + hlen].replace(b'"seq": 7', b'"seq": 8')
    assert json.loads(text)["seq"] == 8
    path.write_bytes(good[:24] + text + good[24 + hlen :])
    with pytest.raises(CorruptIndex, match="header checksum"):
        IndexFile.open(path)


def test_sections_over_64_mib_use_chunked_checksums(tmp_path: Path) -> None:
    big = np.zeros(70 << 20, dtype=np.uint8)
    big[-1] = 1
    path = tmp_path / "big.rlidx"
    write_index_file(path, {"signal": "pdq"}, {"big": big})
    np.testing.assert_array_equal(IndexFile.open(path).arrays["big"][-2:], [0, 1])
    desc = IndexFile.open(path).header["sections"][0]
    assert desc["checksum"] != checksum(big)  # the chunked form, not one pass
    _corrupt(path, desc["offset"] + (66 << 20))
    with pytest.raises(CorruptIndex, match="section big checksum"):
        IndexFile.open(path)
