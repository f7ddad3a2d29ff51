"""Content sniffing: is this file an image, a video, or just bytes?

Decided from the leading bytes, never from the file name, so a renamed file is
hashed by what it is. Shared by `hash`, `scan` and the HTTP upload checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Kind = Literal["image", "video", "file"]

_ISO_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
                     b"avif", b"avis"}  # fmt: skip
_ISO_VIDEO_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
                     b"M4V ", b"M4VP", b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"dash",
                     b"mmp4", b"f4v ", b"MSNV", b"XAVC", b"crx "}  # fmt: skip


def sniff_bytes(head: bytes) -> tuple[Kind, str | None]:
    """(kind, media type) from the first 64+ bytes of a file."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video", "video/x-msvideo"
    if head[:2] == b"BM" and len(head) >= 14:
        return "image", "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image", "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, min(len(head), 64), 4)}
        if brand in _ISO_IMAGE_BRANDS or (
            brand not in _ISO_VIDEO_BRANDS and compatible & _ISO_IMAGE_BRANDS
        ):
            return "image", "image/avif" if brand in (b"avif", b"avis") else "image/heic"
        if brand == b"qt  ":
            return "video", "video/quicktime"
        return "video", "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head.startswith(b"FLV"):
        return "video", "video/x-flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "video", "video/x-ms-asf"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "video", "video/mpeg"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "video", "video/mp2t"
    if head.startswith(b"OggS") and b"theora" in head[:64].lower():
        return "video", "video/ogg"
    if head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") or head.startswith(b"icns"):
        return "image", "image/x-icon"
    if (
        head.startswith((b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"))
        and len(head) > 2
        and head[2:3].isspace()
    ):
        return "image", "image/x-portable-anymap"
    if head.startswith(b"\x00\x00\x00\x0cjP  ") or head.startswith(b"\xff\x4f\xff\x51"):
        return "image", "image/jp2"
    if head.startswith(b"8BPS"):
        return "image", "image/vnd.adobe.photoshop"
    if head.startswith(b"qoif"):
        return "image", "image/qoi"
    return "file", None


def sniff(path: Path) -> tuple[Kind, str | None]:
    """(kind, media type) of a file on disk."""
    with open(path, "rb") as fh:
        head = fh.read(256)
    return sniff_bytes(head)
