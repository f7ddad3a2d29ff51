"""vPDQ: conformance with upstream's reference hashes, the match rule, text format, bad input.

The 13 benign reference videos are hashed once per test session (every frame) and
compared with the upstream output in `../shared/reference/vpdq/hashes/`.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import random
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ridgeline.cli import main
from ridgeline.errors import BadInput, InvalidHash
from ridgeline.signals import HashOptions, get_signal
from ridgeline.vpdq import (
    VpdqFrame,
    VpdqMatch,
    format_frames,
    frames_to_words,
    hash_video,
    match,
    parse_frames,
    prepare_frames,
)

NAMES = [
    "chair-19-sd-bar",
    "chair-20-sd-bar",
    "chair-22-sd-grey-bar",
    "chair-22-sd-sepia-bar",
    "chair-22-with-large-logo-bar",
    "chair-22-with-small-logo-bar",
    "chair-orig-22-sd-bar",
    "doorknob-hd-no-bar",
    "pattern-hd-no-bar",
    "pattern-longer-no-bar",
    "pattern-sd-grey-bar",
    "pattern-sd-with-large-logo-bar",
    "pattern-sd-with-small-logo-bar",
]
CHAIRS = [n for n in NAMES if n.startswith("chair-")]
LARGE_LOGO_CHAIR = "chair-22-with-large-logo-bar"
PATTERN_HD = ["pattern-hd-no-bar", "pattern-longer-no-bar"]
PATTERN_SD = ["pattern-sd-grey-bar", "pattern-sd-with-small-logo-bar"]
PATTERN_SD_LARGE_LOGO = "pattern-sd-with-large-logo-bar"

#: Ordered pairs whose upstream query-match percentage lies within 5 points of the 80 %
#: threshold, where a 1-frame difference may flip the decision; their decisions are not
#: compared. (The compared threshold is 0 %, which every pair meets, so it skips none.)
#: small-logo chair as query against chair-19: 82.8 % upstream.
EXPECTED_BORDERLINE = {("chair-22-with-small-logo-bar", "chair-19-sd-bar")}

H0 = "0" * 64


def flip(hex_hash: str, bits: int) -> str:
    """`hex_hash` with its lowest `bits` bits inverted (distance exactly `bits`)."""
    value = int(hex_hash, 16) ^ ((1 << bits) - 1)
    return f"{value:064x}"


def frame(n: int, h: str = H0, quality: int = 100) -> VpdqFrame:
    return VpdqFrame(n, quality, h, n / 30)


def random_hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


@pytest.fixture(scope="session")
def vpdq_dir(reference_dir: Path) -> Path:
    return reference_dir / "vpdq"


@pytest.fixture(scope="session")
def upstream(vpdq_dir: Path) -> dict[str, list[VpdqFrame]]:
    return {n: parse_frames((vpdq_dir / "hashes" / f"{n}.txt").read_text()) for n in NAMES}


@pytest.fixture(scope="session")
def ours(vpdq_dir: Path) -> dict[str, list[VpdqFrame]]:
    """Every frame of every reference video, hashed once for the whole session."""
    return {n: hash_video(vpdq_dir / "videos" / f"{n}.mp4") for n in NAMES}


# ---------------------------------------------------------------- conformance


def test_reference_set_is_complete(vpdq_dir: Path) -> None:
    assert sorted(p.stem for p in (vpdq_dir / "videos").glob("*.mp4")) == NAMES
    assert sorted(p.stem for p in (vpdq_dir / "hashes").glob("*.txt")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_frame_matches_upstream(
    name: str, ours: dict[str, list[VpdqFrame]], upstream: dict[str, list[VpdqFrame]]
) -> None:
    mine, ref = ours[name], upstream[name]
    assert len(mine) == len(ref)
    assert [f.frame_number for f in mine] == [f.frame_number for f in ref]
    distances = (
        np.bitwise_count(np.bitwise_xor(frames_to_words(mine), frames_to_words(ref)))
        .sum(axis=1)
        .tolist()
    )
    worst = max(distances)
    assert worst <= 10, f"frame {distances.index(worst)} is {worst} bits from upstream"
    # In practice the conversion reproduces upstream almost bit for bit.
    assert sum(d == 0 for d in distances) >= 0.95 * len(ref)
    assert max(abs(a.quality - b.quality) for a, b in zip(mine, ref, strict=True)) <= 2
    assert max(abs(a.timestamp - b.timestamp) for a, b in zip(mine, ref, strict=True)) <= 0.002
    assert parse_frames(format_frames(mine)) == mine  # computed hashes survive storage as text


def _decisions(hashes: dict[str, list[VpdqFrame]]) -> dict[tuple[str, str], VpdqMatch]:
    return {(a, b): match(hashes[a], hashes[b]) for a in NAMES for b in NAMES if a != b}


def test_match_decisions_equal_upstream(
    ours: dict[str, list[VpdqFrame]], upstream: dict[str, list[VpdqFrame]]
) -> None:
    ref = _decisions(upstream)
    mine = _decisions(ours)
    borderline = {pair for pair, m in ref.items() if abs(m.query_match_percent - 80.0) < 5}
    assert borderline == EXPECTED_BORDERLINE
    differing = [
        (pair, ref[pair], mine[pair])
        for pair in ref
        if pair not in borderline and ref[pair].is_match != mine[pair].is_match
    ]
    assert differing == []
    # The skipped pairs come out the same as well with these hashes.
    assert all(ref[p].is_match == mine[p].is_match for p in borderline)


@pytest.mark.parametrize("source", ["upstream", "ours"])
def test_reference_facts(source: str, request: pytest.FixtureRequest) -> None:
    hashes: dict[str, list[VpdqFrame]] = request.getfixturevalue(source)
    d = _decisions(hashes)
    others = [c for c in CHAIRS if c != LARGE_LOGO_CHAIR]
    # Most chair variants match each other (every pair except the large logo one).
    assert all(d[a, b].is_match for a in others for b in others if a != b)
    # The large-logo chair matches none: about 10 % of its frames match.
    for c in others:
        assert not d[LARGE_LOGO_CHAIR, c].is_match
        assert not d[c, LARGE_LOGO_CHAIR].is_match
        assert 5 <= d[LARGE_LOGO_CHAIR, c].query_match_percent <= 15
    # Patterns: an HD family and an SD family that do not match each other.
    for family in (PATTERN_HD, PATTERN_SD):
        assert all(d[a, b].is_match for a in family for b in family if a != b)
    for a in PATTERN_HD:
        for b in PATTERN_SD:
            assert not d[a, b].is_match and not d[b, a].is_match
    for p in PATTERN_HD + PATTERN_SD:
        assert not d[PATTERN_SD_LARGE_LOGO, p].is_match
        assert not d[p, PATTERN_SD_LARGE_LOGO].is_match
    # The doorknob matches nothing else, in either direction; no chair matches a pattern.
    for n in NAMES:
        if n != "doorknob-hd-no-bar":
            assert not d["doorknob-hd-no-bar", n].is_match
            assert not d[n, "doorknob-hd-no-bar"].is_match
    assert not any(d[c, p].is_match or d[p, c].is_match for c in CHAIRS for p in NAMES[8:])


def test_interval_sampling(ours: dict[str, list[VpdqFrame]], vpdq_dir: Path) -> None:
    name = "doorknob-hd-no-bar"  # 120 frames at 30 frames/s: 4 seconds
    every = {f.frame_number: f for f in ours[name]}
    for interval, expected in ((1.0, 4), (0.5, 8)):
        sampled = hash_video(vpdq_dir / "videos" / f"{name}.mp4", interval=interval)
        assert abs(len(sampled) - expected) <= 1
        times = [f.timestamp for f in sampled]
        assert times == sorted(times) and len(set(times)) == len(times)
        step = int(interval * 30)
        assert [f.frame_number for f in sampled] == list(range(0, 120, step))
        assert all(every[f.frame_number] == f for f in sampled)  # same frames, same hashes


def test_max_frames_and_limits(vpdq_dir: Path) -> None:
    video = vpdq_dir / "videos" / "doorknob-hd-no-bar.mp4"
    with pytest.raises(BadInput, match="limit of 10 hashed frames"):
        hash_video(video, max_frames=10)
    with pytest.raises(BadInput, match="1280x720 exceeds the limit of 100000 pixels"):
        hash_video(video, max_pixels=100_000)
    with pytest.raises(BadInput, match=r"duration 4\.0 s exceeds the limit of 1 s"):
        hash_video(video, max_duration=1.0)
    assert len(hash_video(video, interval=1.0, max_frames=4)) == 4
    with pytest.raises(ValueError, match="interval"):
        hash_video(video, interval=-1.0)
    with pytest.raises(ValueError, match="max_frames"):
        hash_video(video, max_frames=0)


# ---------------------------------------------------------------- bad input


def _png(path: Path) -> Path:
    pixels = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, v: p.write_bytes(b""), "empty file"),
        (lambda p, v: p.write_bytes(v.read_bytes()[: v.stat().st_size // 2]), "truncated"),
        (lambda p, v: p.write_bytes(random.Random(7).randbytes(200_000)), "not a readable video"),
        (lambda p, v: _png(p), "still image"),
        (lambda p, v: p.write_text("frame_number,quality\n" * 100), "not a readable video"),
    ],
    ids=["empty", "truncated", "random-bytes", "png", "text"],
)
def test_bad_inputs(make: object, message: str, tmp_path: Path, vpdq_dir: Path) -> None:
    target = tmp_path / "input.mp4"
    make(target, vpdq_dir / "videos" / "chair-19-sd-bar.mp4")  # type: ignore[operator]
    with pytest.raises(BadInput, match=message) as info:
        hash_video(target)
    assert str(target) in str(info.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        hash_video(tmp_path / "absent.mp4")
    with pytest.raises(BadInput, match="not a file"):
        hash_video(tmp_path)


def test_audio_only_file(tmp_path: Path) -> None:
    target = tmp_path / "tone.wav"
    samples = (np.sin(np.arange(8000) / 5) * 8000).astype("<i2")
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    with pytest.raises(BadInput, match="no video stream"):
        hash_video(target)


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.mark.parametrize("suffix", [".m3u8", ".mp4"])
def test_playlists_do_not_fetch_or_follow(suffix: str, tmp_path: Path, vpdq_dir: Path) -> None:
    """A playlist posing as a video must not make FFmpeg fetch URLs or open other files."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/segment.ts"
        playlist = tmp_path / f"list{suffix}"
        playlist.write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{url}\n#EXT-X-ENDLIST\n"
        )
        concat = tmp_path / f"concat{suffix}"
        video = vpdq_dir / "videos" / "doorknob-hd-no-bar.mp4"
        concat.write_text(f"ffconcat version 1.0\nfile '{video}'\nfile '{url}'\n")
        for target in (playlist, concat):
            with pytest.raises(BadInput, match="not a readable video"):
                hash_video(target)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert _CountingHandler.requests == []


def test_cut_mid_file_without_decoder_error(tmp_path: Path, vpdq_dir: Path) -> None:
    # Cut off the last quarter: the tail of the frame index then points past the end.
    data = (vpdq_dir / "videos" / "pattern-sd-grey-bar.mp4").read_bytes()
    target = tmp_path / "cut.mp4"
    target.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(BadInput, match="truncated"):
        hash_video(target)


def test_generated_video_hashes(tmp_path: Path) -> None:
    """A video made in code (drifting random blocks) through PyAV: count, times, quality."""
    import av

    path = tmp_path / "made.mp4"
    blocks = np.random.default_rng(5).integers(0, 256, size=(12, 20, 3), dtype=np.uint8)
    pattern = blocks.repeat(8, axis=0).repeat(8, axis=1)  # 96 x 160
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for i in range(25):
            rgb = np.ascontiguousarray(pattern[:, i : i + 128])
            video_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(video_frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frames = hash_video(path)
    assert [f.frame_number for f in frames] == list(range(25))
    assert [f.timestamp for f in frames] == [round(i / 10, 3) for i in range(25)]
    assert all(f.quality >= 50 for f in frames)
    assert match(frames, frames).is_match


# ---------------------------------------------------------------- text format


@pytest.mark.parametrize("name", NAMES)
def test_reference_files_round_trip(name: str, vpdq_dir: Path) -> None:
    text = (vpdq_dir / "hashes" / f"{name}.txt").read_text()
    canonical = "\n".join(text.splitlines()) + "\n"
    assert format_frames(parse_frames(text)) == canonical


def test_parse_is_tolerant() -> None:
    h = "AB" * 32
    text = f"\r\n  0, 100 ,{h},0.000  \r\n\n\t1,99,{h.lower()},0.0333\n   \n"
    frames = parse_frames(text)
    assert frames == [VpdqFrame(0, 100, "ab" * 32, 0.0), VpdqFrame(1, 99, "ab" * 32, 0.0333)]
    assert format_frames(frames) == f"0,100,{'ab' * 32},0.000\n1,99,{'ab' * 32},0.033\n"
    assert parse_frames("") == [] and format_frames([]) == ""


GOOD = f"0,100,{'0' * 64},0.000"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (f"0,100,{'0' * 64}", "expected 4 comma-separated fields.*got 3"),
        (f"0,100,{'0' * 64},0.1,extra", "expected 4 .*got 5"),
        (f"x,100,{'0' * 64},0.1", "frame_number 'x'"),
        (f"-1,100,{'0' * 64},0.1", "frame_number '-1'"),
        (f"0,101,{'0' * 64},0.1", "quality must be an integer from 0 to 100, got 101"),
        (f"0,9.5,{'0' * 64},0.1", "quality '9.5'"),
        (f"0,100,{'0' * 63},0.1", "pdq_hex .* not 64 hexadecimal"),
        (f"0,100,{'g' * 64},0.1", "pdq_hex .* not 64 hexadecimal"),
        (f"0,100,{'0' * 64},soon", "timestamp 'soon'"),
        (f"0,100,{'0' * 64},-1", "timestamp must be a finite number"),
        (f"0,100,{'0' * 64},nan", "timestamp must be a finite number"),
    ],
)
def test_parse_errors_name_the_line(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^line 3: {message}"):
        parse_frames(f"{GOOD}\n\n{bad}\n{GOOD}\n")


def test_frame_json_round_trip_and_errors() -> None:
    f = VpdqFrame(7, 88, "c" * 64, 0.233)
    assert f.to_json() == {"frame_number": 7, "quality": 88, "hash": "c" * 64, "timestamp": 0.233}
    assert VpdqFrame.from_json(json.loads(json.dumps(f.to_json()))) == f
    assert VpdqFrame.from_json({**f.to_json(), "hash": " " + "C" * 64, "timestamp": 1}) == (
        VpdqFrame(7, 88, "c" * 64, 1.0)
    )
    with pytest.raises(ValueError, match="missing quality, timestamp"):
        VpdqFrame.from_json({"frame_number": 1, "hash": "c" * 64})
    with pytest.raises(ValueError, match="must be an object"):
        VpdqFrame.from_json(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quality"):
        VpdqFrame(0, True, "c" * 64, 0.0)
    with pytest.raises(ValueError, match="hash"):
        VpdqFrame(0, 50, "C" * 64, 0.0)


# ---------------------------------------------------------------- match rule


def test_distance_threshold_is_inclusive() -> None:
    q = [frame(0)]
    assert match(q, [frame(0, flip(H0, 31))]).query_match_percent == 100.0
    assert match(q, [frame(0, flip(H0, 32))]).query_match_percent == 0.0
    assert match(q, [frame(0, flip(H0, 10))], distance_threshold=9).query_match_percent == 0.0


def test_percent_thresholds_are_inclusive() -> None:
    rng = random.Random(1)
    query = [frame(i, random_hash(rng)) for i in range(5)]
    compared = [*query[:4], frame(9, random_hash(rng))]
    m = match(query, compared)
    assert (m.query_match_percent, m.compared_match_percent, m.is_match) == (80.0, 80.0, True)
    assert not match(query, compared, query_match_threshold=80.1).is_match
    assert match(query, compared, compared_match_threshold=80.0).is_match
    assert not match(query, compared, compared_match_threshold=81.0).is_match


def test_duplicates_are_counted_once_and_low_quality_ignored() -> None:
    rng = random.Random(2)
    a, b, c = (random_hash(rng) for _ in range(3))
    # Query: hash a in 8 frames, b once, c once with low quality (dropped).
    query = [frame(i, a) for i in range(8)] + [frame(8, b), frame(9, c, quality=49)]
    compared = [frame(0, a), frame(1, c)]
    assert prepare_frames(query) == [query[0], query[8]]
    m = match(query, compared)
    # After dedupe + quality filter the query is {a, b}: 1 of 2 match (without dedupe: 8/9).
    assert m.query_match_percent == 50.0
    # Compared is {a, c}; c's twin in the query has low quality, so only a matches.
    assert m.compared_match_percent == 50.0
    assert match(query, compared, quality_threshold=0).compared_match_percent == 100.0
    # Dedupe keeps the first frame of a hash; its quality decides (upstream order).
    first_low = [frame(0, a, quality=10), frame(1, a, quality=90)]
    assert match(first_low, compared).query_match_percent == 0.0


def test_empty_sides_never_match() -> None:
    low = [frame(0, quality=10)]
    assert match([], [frame(0)]) == VpdqMatch(0.0, 0.0, False)
    assert match(low, [frame(0)]) == VpdqMatch(0.0, 0.0, False)
    assert match([frame(0)], low, query_match_threshold=0.0).is_match is False


def _brute(q: list[VpdqFrame], c: list[VpdqFrame]) -> tuple[float, float]:
    """Straight transcription of the rule, pair by pair, as an oracle."""

    def prep(fs: list[VpdqFrame]) -> list[VpdqFrame]:
        seen: dict[str, VpdqFrame] = {}
        for f in fs:
            seen.setdefault(f.hash, f)
        return [f for f in seen.values() if f.quality >= 50]

    qs, cs = prep(q), prep(c)

    def hits(xs: list[VpdqFrame], ys: list[VpdqFrame]) -> int:
        return sum(
            any((int(x.hash, 16) ^ int(y.hash, 16)).bit_count() <= 31 for y in ys) for x in xs
        )

    return hits(qs, cs) * 100 / len(qs), hits(cs, qs) * 100 / len(cs)


def test_vectorised_match_equals_pairwise_rule() -> None:
    rng = random.Random(3)
    for trial in range(20):
        base = [random_hash(rng) for _ in range(rng.randint(1, 30))]
        q = [frame(i, rng.choice(base), rng.choice([10, 60, 100])) for i in range(40)]
        # Compared frames are query hashes with 20-40 flipped bits, or fresh hashes.
        c = []
        for i in range(rng.randint(1, 50)):
            h = int(rng.choice(base), 16)
            for bit in rng.sample(range(256), rng.randint(20, 40)):
                h ^= 1 << bit
            c.append(frame(i, f"{h:064x}" if rng.random() < 0.7 else random_hash(rng), 80))
        if not any(f.quality >= 50 for f in q):
            continue
        m = match(q, c)
        assert (m.query_match_percent, m.compared_match_percent) == _brute(q, c), trial


def test_match_blocks_large_inputs() -> None:
    """More frames than one block of the distance matrix holds; answers stay exact."""
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)
    q = [VpdqFrame(i, 100, bytes(r).hex(), 0.0) for i, r in enumerate(raw)]
    c = [VpdqFrame(i, 100, flip(f.hash, 31), 0.0) for i, f in enumerate(q[::3])]
    c += [
        VpdqFrame(0, 100, bytes(r).hex(), 0.0)
        for r in rng.integers(0, 256, (1000, 32), dtype=np.uint8)
    ]
    m = match(q, c)
    assert m.query_match_percent == pytest.approx(1000 * 100 / 3000)
    assert m.compared_match_percent == pytest.approx(50.0)


# ---------------------------------------------------------------- signal and CLI


def test_signal_wrapper(vpdq_dir: Path, upstream: dict[str, list[VpdqFrame]]) -> None:
    vpdq = get_signal("vpdq")
    text = (vpdq_dir / "hashes" / "chair-19-sd-bar.txt").read_text()
    assert vpdq.normalize(text.upper().replace("\n", "\r\n")) == text
    with pytest.raises(InvalidHash, match=r"vpdq.*line 1"):
        vpdq.normalize("0,100,zz,0.0")
    other = format_frames(upstream["chair-22-with-small-logo-bar"])
    expected = match(upstream["chair-19-sd-bar"], upstream["chair-22-with-small-logo-bar"])
    assert vpdq.distance(text, other) == pytest.approx(100 - expected.query_match_percent)
    assert vpdq.matches(text, other)  # 96.3 % of chair-19's frames match
    value = vpdq.compute(
        vpdq_dir / "videos" / "doorknob-hd-no-bar.mp4", HashOptions(video_interval=1)
    )
    assert [f["frame_number"] for f in value] == [0, 30, 60, 90]
    assert vpdq.canonical_values(value) == [format_frames(VpdqFrame.from_json(v) for v in value)]


def test_cli_hash_jsonl(vpdq_dir: Path, ours: dict[str, list[VpdqFrame]]) -> None:
    video = vpdq_dir / "videos" / "pattern-sd-grey-bar.mp4"
    result = CliRunner().invoke(
        main, ["hash", "--signals", "vpdq", str(video), "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in io.StringIO(result.stdout) if line.strip()]
    assert len(rows) == 1 and rows[0]["path"] == os.fspath(video)
    frames = rows[0]["signals"]["vpdq"]
    assert frames == [f.to_json() for f in ours["pattern-sd-grey-bar"]]
    assert set(frames[0]) == {"frame_number", "quality", "hash", "timestamp"}
