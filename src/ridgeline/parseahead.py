"""A bulk job's parsing done in a second process, so the writing process only writes.

SQLite takes one writer, and CPython's sqlite3 takes the GIL back for every row of an
`executemany`, so a parse thread beside the writer only queues behind it. A second
process has its own interpreter: it reads and parses the input and sends ready-made
frames (bytes the caller encodes, e.g. with msgspec) down a pipe, while the first
process turns them into rows. On the two cores of a small server that is up to twice
the throughput of one process for an import whose parsing costs as much as its writes.

The child is `python -m ridgeline.parseahead MODULE:FUNCTION`, given its argument on
stdin, and nothing is pickled: the producer is named by its import path, its argument
and its frames are bytes. A producer is a plain generator function in an importable
module::

    def produce(arg: bytes) -> Iterator[bytes]: ...

An error the producer raises on purpose (a `RidgelineError`) comes back in the parent as
the same class with the same message, so the edges answer it as they would have; anything
else, or a child that dies, is a `ParseAheadFailed` naming what happened.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from ridgeline.errors import RidgelineError

#: Set to 0 to keep every bulk job in one process (a one-core machine, debugging).
ENV_SWITCH = "RIDGELINE_PARSE_AHEAD"

#: Frames read off the pipe ahead of the caller.
AHEAD = 8

_HEADER = struct.Struct("<IB")  # payload length, kind
_DATA, _ERROR, _END = 1, 2, 3


class ParseAheadFailed(RidgelineError):
    """The parsing process failed in a way its producer did not raise on purpose (a bug
    in it, or it was killed): the job stops there, as on any other error."""

    code = "parse_ahead_failed"
    http_status = 500
    exit_status = 1


def available() -> bool:
    """Whether a second process is worth starting: off with `RIDGELINE_PARSE_AHEAD=0`,
    and off on a machine with one usable core (the two would take turns)."""
    if os.environ.get(ENV_SWITCH, "1").strip() in {"0", "false", "no", "off"}:
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return cores >= 2


def _producer(target: str) -> Callable[[bytes], Iterator[bytes]]:
    module, _, name = target.partition(":")
    if not module or not name:
        raise ParseAheadFailed(f"producer {target!r}: expected MODULE:FUNCTION")
    func = getattr(importlib.import_module(module), name, None)
    if not callable(func):
        raise ParseAheadFailed(f"producer {target!r}: {name} is not a function of {module}")
    return func  # type: ignore[no-any-return]


def _error_payload(exc: BaseException) -> bytes:
    if isinstance(exc, RidgelineError):
        module = type(exc).__module__
        if module == "__main__":  # the child runs this module as __main__
            module = __name__ if __name__ != "__main__" else "ridgeline.parseahead"
        kind = f"{module}:{type(exc).__qualname__}"
        text = str(exc)
    else:
        kind = ""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return kind.encode() + b"\0" + text.encode("utf-8", "replace")


def _raise_from_payload(target: str, payload: bytes) -> None:
    kind, _, raw = payload.partition(b"\0")
    text = raw.decode("utf-8", "replace")
    if kind:
        module, _, qualname = kind.decode().partition(":")
        cls: object = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        if isinstance(cls, type) and issubclass(cls, RidgelineError):
            # rebuilt without its constructor (whose arguments differ per class): the
            # class, code, statuses and message are what the edges use
            err = cls.__new__(cls)
            Exception.__init__(err, text)
            raise err
    raise ParseAheadFailed(f"parsing process {target}: {text}")


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    if len(data) != size:
        return None
    return data


@contextlib.contextmanager
def frames(target: str, arg: bytes | Iterable[bytes]) -> Iterator[Iterator[bytes]]:
    """The producer's frames, read from a second process as it makes them.

    `arg` may be given as pieces (an iterable of bytes, made as they are written): the
    child gets their concatenation, and a big argument (a bulk job's whole input) is
    never held whole in this process.

    Up to `AHEAD` frames are read ahead of the caller (a thread empties the pipe), so
    the producer runs ahead by about that much and the memory of both stays level.
    Leaving the block early (an error in the caller, a `break`) stops the child; a
    child that dies raises `ParseAheadFailed`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen(  # our own interpreter and module
        [sys.executable, "-m", "ridgeline.parseahead", target],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        bufsize=1 << 20,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr_chunks: list[bytes] = []
    stderr = proc.stderr
    drain = threading.Thread(target=lambda: stderr_chunks.append(stderr.read()), daemon=True)
    drain.start()

    # The argument is let go of once written: a bulk job's argument can be its whole
    # input (a hundred megabytes), which need not stay in this process for the run.
    pending: list[Iterable[bytes]] = [[arg] if isinstance(arg, bytes | bytearray) else arg]
    del arg

    failed: list[BaseException] = []

    def feed() -> None:
        assert proc.stdin is not None
        try:
            for piece in pending.pop():
                proc.stdin.write(piece)
                del piece
        except BrokenPipeError:
            pass
        except BaseException as exc:  # making the argument failed: the child must not
            failed.append(exc)  # take a cut one for the whole of it
            proc.kill()
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)  # a big argument must not block
    feeder.start()

    # Frames are read off the pipe by a thread, up to AHEAD of them ahead of the
    # caller: on a shared machine the two processes are not always running at once,
    # and with only the pipe between them (64 KiB, a frame is megabytes) each waited
    # for the other's next time slice at every frame.
    pulled: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()

    def put(item: tuple[int, bytes] | None) -> bool:
        while not stop.is_set():
            try:
                pulled.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pull() -> None:
        out = proc.stdout
        assert out is not None
        try:
            while not stop.is_set():
                header = _read_exact(out, _HEADER.size)
                if header is None:
                    break
                size, kind = _HEADER.unpack(header)
                payload = _read_exact(out, size)
                if payload is None or not put((kind, payload)) or kind != _DATA:
                    return
        except (OSError, ValueError):  # the pipe closed under us: the caller left
            return
        put(None)  # the child's output ended without its end frame

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()

    def read() -> Iterator[bytes]:
        while True:
            item = pulled.get()
            if item is None:
                break
            kind, payload = item
            if kind == _DATA:
                yield payload
            elif kind == _ERROR:
                proc.wait()
                _raise_from_payload(target, payload)
            elif kind == _END:
                if proc.wait() == 0:
                    return
                break
        code = proc.wait()
        feeder.join(timeout=5)
        if failed:
            raise failed[0]
        drain.join(timeout=5)
        tail = b"".join(stderr_chunks).decode("utf-8", "replace").strip()[-2000:]
        raise ParseAheadFailed(
            f"parsing process {target} ended early (exit status {code})"
            + (f": {tail}" if tail else "")
        )

    try:
        yield read()
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        puller.join(timeout=5)
        proc.stdout.close()
        feeder.join(timeout=5)
        drain.join(timeout=5)


def iterate(target: str, arg: bytes) -> Iterator[bytes]:
    """`frames` as a plain generator, for a caller that reads every frame: the child is
    stopped when the generator is closed or collected."""
    with frames(target, arg) as it:
        yield from it


def run_inline(target: str, arg: bytes) -> Iterator[bytes]:
    """The same producer in this process: the path for small inputs, one-core machines
    and `RIDGELINE_PARSE_AHEAD=0`, so both paths run the same code."""
    return _producer(target)(arg)


def _child(target: str) -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=1 << 20)
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    arg = sys.stdin.buffer.read()
    try:
        for frame in _producer(target)(arg):
            out.write(_HEADER.pack(len(frame), _DATA))
            out.write(frame)
        out.write(_HEADER.pack(0, _END))
        out.flush()
        return 0
    except BrokenPipeError:  # the parent stopped reading
        return 1
    except BaseException as exc:  # every failure goes back to the parent
        payload = _error_payload(exc)
        with contextlib.suppress(BrokenPipeError):
            out.write(_HEADER.pack(len(payload), _ERROR))
            out.write(payload)
            out.flush()
        return 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m ridgeline.parseahead MODULE:FUNCTION < ARG\n")
        raise SystemExit(2)
    raise SystemExit(_child(sys.argv[1]))
