"""`ridgeline hash PATH...`: compute signals for files, folders, images and videos."""

from __future__ import annotations

import sys
import time
from typing import IO

import click

from ridgeline.cli.common import POSITIVE, format_option, handle_errors, parse_signal_names
from ridgeline.hashing import hash_many, iter_files
from ridgeline.output import Writer, default_format
from ridgeline.signals import HashOptions
from ridgeline.signals.pdq import MIN_QUALITY

PROGRESS_MIN_FILES = 20


class Progress:
    """A one-line progress bar on stderr, shown only for many files on a terminal."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = total >= PROGRESS_MIN_FILES and self.stream.isatty()
        self.done = 0
        self.errors = 0
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, failed: bool) -> None:
        self.done += 1
        self.errors += failed
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(
                f"\r[{bar}] {self.done}/{self.total} {rate:.1f} files/s "
                f"ETA {eta:.0f}s errors {self.errors}"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


@click.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--signals",
    "signal_names",
    default=None,
    help="Comma-separated signals (default: every installed signal the content allows: "
    "md5,sha1,sha256 + pdq for images, vpdq for videos, + plug-ins).",
)
@click.option("-r", "--recursive", is_flag=True, help="Descend into folders.")
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
    help="Worker processes.",
)  # fmt: skip
@click.option(
    "--mode",
    type=click.Choice(["exact", "fast"]),
    default="exact",
    show_default=True,
    help="PDQ mode: exact (bit-identical to Meta's reference) or fast (downscaled decode).",
)
@click.option("--dihedral", is_flag=True, help="Also hash the 8 rotations/flips of images.")
@click.option("--all-frames", is_flag=True, help="Hash every frame of animated images.")
@click.option(
    "--video-interval",
    type=POSITIVE,
    default=None,
    help="vPDQ: hash one frame per this many seconds (default: every frame).",
)
@click.option(
    "--max-pixels", type=click.IntRange(min=1), default=None,
    help="Refuse larger images (bombs).",
)  # fmt: skip
@format_option
@handle_errors
def hash_command(
    paths: tuple[str, ...],
    signal_names: str | None,
    recursive: bool,
    jobs: int,
    mode: str,
    dihedral: bool,
    all_frames: bool,
    video_interval: float | None,
    max_pixels: int | None,
    fmt: str | None,
) -> None:
    """Hash files and print their signals (one row per file).

    Bad files get a per-file error and the batch goes on; the exit status is 1 if
    any file failed.
    """
    signals = parse_signal_names(signal_names)
    options = HashOptions(
        mode=mode,  # type: ignore[arg-type]
        dihedral=dihedral,
        all_frames=all_frames,
        video_interval=video_interval,
        **({"max_pixels": max_pixels} if max_pixels else {}),
    )
    files = list(iter_files(paths, recursive))
    fmt = fmt or default_format()
    progress = Progress(len(files))
    failed = 0
    with Writer(fmt, columns=["path", "signals", "error"], keep=["signals"]) as out:
        for result in hash_many(files, signals, options, jobs=max(1, jobs)):
            failed += result.error is not None
            progress.update(result.error is not None)
            if fmt == "table":
                out.write(_table_row(result.to_json()))
            else:
                out.write(result.to_json())
        progress.close()  # end the bar's line before the table is drawn
    if failed:
        click.echo(f"{failed} of {len(files)} file(s) had errors", err=True)
        sys.exit(1)


def _table_row(row: dict[str, object]) -> dict[str, object]:
    signals = row["signals"]
    assert isinstance(signals, dict)
    short = {}
    for name, value in signals.items():
        if isinstance(value, dict):
            low = "" if value["quality"] >= MIN_QUALITY else "\n(low quality: not matched)"
            short[name] = f"{value['hash']} q{value['quality']}{low}"
        elif isinstance(value, list):
            short[name] = f"{len(value)} frames"
        else:
            short[name] = value
    return {"path": row["path"], "signals": short, "error": row["error"]}
