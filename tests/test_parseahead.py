"""The second parsing process: frames arrive whole and in order, errors keep their
class, a dying child is an error (never a short result), and leaving early stops it."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pytest

from ridgeline import parseahead
from ridgeline.errors import BadInput

HERE = __name__  # the child imports this module by the same name


def produce_numbers(arg: bytes) -> Iterator[bytes]:
    count, size = struct.unpack("<II", arg)
    for i in range(count):
        yield struct.pack("<I", i) + bytes([i % 251]) * size


def produce_bad_input(arg: bytes) -> Iterator[bytes]:
    yield b"first"
    raise BadInput(f"line 2 of {arg.decode()}: not a hash")


def produce_bug(arg: bytes) -> Iterator[bytes]:
    yield b"first"
    raise KeyError("no such column")


def produce_then_die(arg: bytes) -> Iterator[bytes]:
    yield b"first"
    os._exit(9)


def produce_forever(arg: bytes) -> Iterator[bytes]:
    with open(arg.decode(), "w") as pid_file:
        pid_file.write(str(os.getpid()))
    while True:
        yield b"x" * 65536


def test_frames_arrive_whole_and_in_order_past_the_pipe_buffer() -> None:
    arg = struct.pack("<II", 300, 200_000)  # 60 MB, far past a pipe's 64 KiB
    with parseahead.frames(f"{HERE}:produce_numbers", arg) as it:
        got = list(it)
    assert len(got) == 300
    for i, frame in enumerate(got):
        assert struct.unpack("<I", frame[:4])[0] == i
        assert len(frame) == 200_004 and frame[4:] == bytes([i % 251]) * 200_000
    assert got == list(parseahead.run_inline(f"{HERE}:produce_numbers", arg))


def test_a_big_argument_and_no_frames() -> None:
    arg = struct.pack("<II", 0, 0) + b"\0" * 3_000_000
    assert list(parseahead.iterate(f"{HERE}:produce_numbers", arg[:8])) == []
    with parseahead.frames(f"{HERE}:produce_numbers", arg[:8]) as it:
        assert list(it) == []


def produce_echo(arg: bytes) -> Iterator[bytes]:
    yield arg


def test_an_argument_in_pieces_arrives_whole() -> None:
    pieces = [bytes([i]) * 100_000 for i in range(30)]  # 3 MB, past the pipe buffer
    assert list(parseahead.iterate(f"{HERE}:produce_echo", iter(pieces))) == [b"".join(pieces)]


def test_a_failing_argument_is_raised_and_the_child_gets_no_cut_one() -> None:
    def pieces() -> Iterator[bytes]:
        yield b"x" * 100_000
        raise BadInput("the input went away")

    with pytest.raises(BadInput, match="went away"):
        list(parseahead.iterate(f"{HERE}:produce_echo", pieces()))


def test_an_error_raised_on_purpose_keeps_its_class_and_message() -> None:
    seen: list[bytes] = []
    target = f"{HERE}:produce_bad_input"
    with (
        pytest.raises(BadInput, match=r"line 2 of hashes.txt: not a hash") as info,
        parseahead.frames(target, b"hashes.txt") as it,
    ):
        seen.extend(it)
    assert seen == [b"first"]
    assert info.value.code == "bad_input" and info.value.exit_status == 2


def test_a_bug_in_the_producer_is_reported_with_what_it_was() -> None:
    with pytest.raises(parseahead.ParseAheadFailed, match="KeyError: 'no such column'"):
        list(parseahead.iterate(f"{HERE}:produce_bug", b""))


def test_a_child_that_dies_is_an_error_not_a_short_result() -> None:
    with pytest.raises(parseahead.ParseAheadFailed, match="exit status 9"):
        list(parseahead.iterate(f"{HERE}:produce_then_die", b""))


def test_a_producer_that_is_not_there_is_named() -> None:
    with pytest.raises(parseahead.ParseAheadFailed, match="nothing is not a function"):
        list(parseahead.iterate(f"{HERE}:nothing", b""))
    with pytest.raises(parseahead.ParseAheadFailed, match="expected MODULE:FUNCTION"):
        list(parseahead.iterate("no-colon", b""))


def test_leaving_early_stops_the_child(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pid_file = tmp_path / "pid"
    with parseahead.frames(f"{HERE}:produce_forever", str(pid_file).encode()) as it:
        assert len(next(it)) == 65536
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not a zombie
        os.kill(pid, 0)


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parseahead.ENV_SWITCH, "0")
    assert not parseahead.available()
    monkeypatch.setenv(parseahead.ENV_SWITCH, "1")
    assert parseahead.available() == (len(os.sched_getaffinity(0)) >= 2)
