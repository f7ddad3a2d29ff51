"""Fuzz targets: every parser of outside input, each fed arbitrary bytes.

A target may refuse its input only the documented way: a `RidgelineError` the API would
answer with a 4xx (bad input, invalid hash, too large, ...) or, for the parsers whose
contract is `ValueError` naming the problem (vPDQ text, victims.jsonl records, signal
plug-ins' `normalize`), a plain `ValueError`. Anything else — a RecursionError, a
TypeError, a KeyError, a 500-class `RidgelineError` — is a crash, and so is a broken
invariant (a normalized hash that does not normalize to itself).

Run by `tests/fuzz_run.py` under atheris (`make fuzz`, and briefly by tests/test_fuzz.py);
each target's seed corpus is made here in code from benign synthetic data.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ridgeline import exchange, vpdq
from ridgeline.errors import RidgelineError
from ridgeline.hashing import hash_file
from ridgeline.intake.sources import from_paths
from ridgeline.media import sniff_bytes
from ridgeline.pdq.images import load_pixels
from ridgeline.reports import documents, received, samples
from ridgeline.signals import all_signals, normalize
from ridgeline.victims.records import parse_batches, parse_lines

DATA = Path(__file__).parent / "data" / "exchange"
#: Scratch files for path-based parsers (images, videos, zips) live in RAM when possible.
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


class Crash(AssertionError):
    """A broken invariant (as opposed to an exception escaping a parser)."""


def refused(exc: BaseException, *, value_error_ok: bool = False) -> bool:
    """Whether `exc` is a documented refusal rather than a crash."""
    if isinstance(exc, RidgelineError):
        return exc.http_status < 500
    return value_error_ok and type(exc) is ValueError


def _call(fn: Callable[[], object], *, value_error_ok: bool = False) -> None:
    try:
        fn()
    except Exception as exc:  # sorted into refusal or crash right here
        if not refused(exc, value_error_ok=value_error_ok):
            raise


def _scratch(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="ridgeline-fuzz-", suffix=suffix, dir=SCRATCH)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(name)


# ---------------------------------------------------------------- targets


def fuzz_exchange(fmt: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        def run() -> None:
            result = exchange.parse_bytes(data, fmt, signal="md5")
            for _ in result.records:
                pass
            if result.bare is not None:  # normalized by the import writer, as here
                for chunk in result.bare.chunks:
                    for _, text in chunk:
                        _call(lambda t=text: normalize(result.bare.signal, t))  # type: ignore[union-attr]

        _call(run)

    return target


def fuzz_hash_strings(data: bytes) -> None:
    """Every installed signal's `normalize` on arbitrary text: refuse or be idempotent."""
    text = data.decode("utf-8", "replace")
    for signal in all_signals().values():
        try:
            canonical = signal.normalize(text)
        except Exception as exc:
            if not refused(exc, value_error_ok=True):
                raise
            continue
        if signal.normalize(canonical) != canonical:
            raise Crash(f"{signal.name}: normalize is not idempotent on {text!r}")
        _call(lambda s=signal, c=canonical: s.distance(c, c), value_error_ok=True)


def fuzz_vpdq_text(data: bytes) -> None:
    _call(lambda: vpdq.parse_frames(data.decode("utf-8", "replace")), value_error_ok=True)


def fuzz_victims(data: bytes) -> None:
    lines = data.decode("utf-8", "replace").splitlines()
    for parse in (parse_lines, parse_batches):
        _call(lambda p=parse: list(p(lines, "fuzz.jsonl")), value_error_ok=True)


def fuzz_cybertip(data: bytes) -> None:
    """Received CyberTipline documents (intake), XML or JSON, and the filing side's own
    report / fileDetails readers and checks."""
    for fmt in (None, "xml", "json"):
        _call(lambda f=fmt: received.parse_document(data, f))
    _call(lambda: documents.report_from_xml(data))
    _call(lambda: documents.file_details_from_xml(data))
    _call(lambda: documents.check_report_xml(data))
    _call(lambda: documents.check_file_details_xml(data))


def fuzz_intake_zip(data: bytes) -> None:
    """A zip handed to `reports intake`: members read under limits, never extracted."""
    path = _scratch(data, ".zip")
    try:
        _call(
            lambda: [
                received.parse_document(i.data, i.format)
                for i in from_paths([str(path)])
                if not i.error
            ]
        )
    finally:
        path.unlink()


def fuzz_image(data: bytes) -> None:
    """The image decoding wrapper (Pillow + our bomb and truncation checks)."""
    sniff_bytes(data[:64])
    path = _scratch(data, ".img")
    try:
        for mode in ("exact", "fast"):
            _call(lambda m=mode: load_pixels(path, max_pixels=1 << 22, mode=m))  # type: ignore[arg-type]
    finally:
        path.unlink()


def fuzz_video(data: bytes) -> None:
    """The video decoding wrapper (PyAV) under tight limits."""
    path = _scratch(data, ".mp4")
    try:
        _call(lambda: vpdq.hash_video(path, max_frames=16, max_duration=5, max_pixels=1 << 20))
    finally:
        path.unlink()


def fuzz_upload(data: bytes) -> None:
    """What an upload to /v1/hash and /v1/match does after spooling: sniff, then every
    default signal for the kind; `hash_file` reports bad files, it never raises."""
    path = _scratch(data, ".bin")
    try:
        result = hash_file(path)
        if result.error is None and not result.signals:
            raise Crash("no signal and no error")
    finally:
        path.unlink()


# ---------------------------------------------------------------- seeds (benign, made here)


def _png(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _image_seeds() -> list[bytes]:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, fmt)
        out.append(buf.getvalue())
    return out


def _video_seed() -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        rng = np.random.default_rng(3)
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _exchange_seeds(fmt: str) -> list[bytes]:
    out = [p.read_bytes() for p in sorted(DATA.iterdir()) if _fixture_format(p.name) == fmt]
    if fmt in ("csv", "txt"):
        out.append(b"signal,hash\nmd5,0123456789abcdef0123456789abcdef\n")
        out.append(b"0123456789abcdef0123456789abcdef\n# comment\n")
    if fmt == "jsonl":
        out.append(b'{"signal": "md5", "hash": "0123456789abcdef0123456789abcdef"}\n')
    return out or [b""]


def _fixture_format(name: str) -> str | None:
    names = {
        "ncmec": exchange.ncmec.NAME,
        "vics": exchange.vics.NAME,
        "icse": exchange.icse.NAME,
        "stopncii": exchange.stopncii.NAME,
    }
    return next((fmt for prefix, fmt in names.items() if name.startswith(prefix)), None)


def _cybertip_seeds() -> list[bytes]:
    report = samples.rich_report()
    details = samples.file_details()
    xml = documents.report_to_xml(report)
    fd = documents.file_details_to_xml(details)
    from ridgeline.intake.sources import submission

    as_json = json.dumps(
        {"report": documents.to_json(report), "files": [documents.to_json(details)]}
    )
    deep = b'{"report": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # nesting: a known weak spot
    return [xml, fd, submission(xml, [fd]), as_json.encode(), deep]


def _zip_seed() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        seeds = _cybertip_seeds()
        for name, data in (("a/report.xml", seeds[2]), ("b.json", seeds[3]), ("c.xml", seeds[0])):
            zf.writestr(name, data)
    return buf.getvalue()


def _victim_seed() -> bytes:
    rec = {
        "database": "example-db",
        "victim_id": "v-1",
        "first_seen": "2025-01-01T00:00:00Z",
        "identified_at": None,
        "age_band": "unknown",
        "region": "DE",
        "series": ["s-1"],
        "hashes": [{"signal": "md5", "value": "0123456789abcdef0123456789abcdef"}],
        "same_as": [{"database": "other", "victim_id": "v-9"}],
        "sightings": ["2025-02-01T00:00:00Z", 1767225600],
    }
    return (json.dumps(rec) + "\n" + json.dumps({**rec, "victim_id": "v-2"}) + "\n").encode()


def _hash_seeds() -> list[bytes]:
    return [
        b"0123456789ABCDEF0123456789abcdef",
        b"  " + b"f" * 40 + b" ",
        b"e" * 64,
        b"1" * 64 + b",90",
        b"0,100," + b"a" * 64 + b",0.000\n1,100," + b"b" * 64 + b",0.250",
        b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6P",
    ]


@dataclass(frozen=True)
class Target:
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


def _exchange_target(fmt: str) -> Target:
    return Target(fuzz_exchange(fmt), lambda: _exchange_seeds(fmt))


TARGETS: dict[str, Target] = {
    **{f"exchange-{fmt}": _exchange_target(fmt) for fmt in exchange.IMPORT_FORMATS},
    "hash-strings": Target(fuzz_hash_strings, _hash_seeds),
    "vpdq-text": Target(fuzz_vpdq_text, lambda: [_hash_seeds()[4]]),
    "victims-jsonl": Target(fuzz_victims, lambda: [_victim_seed()]),
    "cybertip": Target(fuzz_cybertip, _cybertip_seeds),
    "intake-zip": Target(fuzz_intake_zip, lambda: [_zip_seed()]),
    "image": Target(fuzz_image, _image_seeds),
    "video": Target(fuzz_video, lambda: [_video_seed()]),
    "upload": Target(fuzz_upload, lambda: [*_image_seeds()[:2], _video_seed(), b"plain bytes"]),
}
