"""Walk folders and archives (zip, tar, tar.gz; nested) into files to scan.

Members are never written under their own names: each is copied to a numbered file
inside a private work folder, so no member path (absolute, `..`, links) can escape
it. Unsafe names and link members are reported as errors, not extracted. Bomb
limits (member count, total bytes, per-member bytes, expansion ratio, depth) are
enforced while copying, on the bytes actually read rather than on header claims.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ridgeline.errors import DecompressionBomb

#: Separator between an archive and a member in reported paths (`a.zip!dir/b.jpg`).
MEMBER_SEP = "!"
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what one top-level archive may expand to."""

    max_depth: int = 3
    max_members: int = 100_000
    max_total_bytes: int = 8 << 30
    max_member_bytes: int = 2 << 30
    #: Largest allowed ratio of uncompressed bytes to the archive's size on disk.
    max_ratio: float = 200.0

    def to_json(self) -> dict[str, Any]:
        return {
            "max_depth": self.max_depth,
            "max_members": self.max_members,
            "max_total_bytes": self.max_total_bytes,
            "max_member_bytes": self.max_member_bytes,
            "max_ratio": self.max_ratio,
        }


@dataclass
class ScanItem:
    """One thing to scan: a file on disk, an extracted member, or an error in walking."""

    #: Where the bytes are now (the file itself, or the extracted copy).
    path: str
    #: What is reported: the file path, or `archive!member` for members.
    display: str
    #: The top-level file on disk it came from (itself for plain files).
    top: str
    size: int | None = None
    mtime_ns: int | None = None
    error: str | None = None
    member: bool = False
    #: Resume found this file unchanged since an earlier scan.
    skipped: bool = False
    #: Size of the top-level file (the archive's, for members).
    top_size: int | None = None
    #: Why the walk skipped it without scanning (a symbolic link), if it did.
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "path": self.path,
            "display": self.display,
            "top": self.top,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "error": self.error,
            "member": self.member,
            "skipped": self.skipped,
            "top_size": self.top_size,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanItem:
        return cls(**data)


def archive_type(path: str | os.PathLike[str]) -> str | None:
    """`zip` or `tar` (plain or gzip/bz2/xz-compressed) by content, else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with tarfile.open(path, "r:*") as tf:
                tf.next()
            return "tar"
        except (tarfile.TarError, OSError, EOFError):
            return None
    return None


def unsafe_member_name(name: str) -> str | None:
    """Why a member name could escape its folder, or None when it is safe."""
    if not name or "\x00" in name:
        return "empty or NUL in member name"
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return "absolute member path"
    if ".." in PurePosixPath(text).parts:
        return "member path escapes the archive (..)"
    return None


@dataclass
class _Budget:
    """What one top-level archive has used so far, across nesting levels."""

    limits: ArchiveLimits
    compressed_size: int
    members: int = 0
    total: int = 0
    counter: int = 0

    def take_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise DecompressionBomb(f"archive bomb: more than {self.limits.max_members} members")

    def take_bytes(self, n: int, member_total: int) -> None:
        self.total += n
        if member_total > self.limits.max_member_bytes:
            raise DecompressionBomb(
                f"archive bomb: a member expands beyond {self.limits.max_member_bytes} bytes"
            )
        if self.total > self.limits.max_total_bytes:
            raise DecompressionBomb(
                f"archive bomb: expands beyond {self.limits.max_total_bytes} bytes in total"
            )
        if self.total > 1 << 20 and self.total > self.limits.max_ratio * max(
            self.compressed_size, 1
        ):
            raise DecompressionBomb(
                f"archive bomb: expands more than {self.limits.max_ratio:g} times its size"
            )


def _copy_capped(src: IO[bytes], dest: Path, budget: _Budget) -> int:
    written = 0
    with open(dest, "wb") as out:
        while chunk := src.read(COPY_CHUNK):
            written += len(chunk)
            budget.take_bytes(len(chunk), written)
            out.write(chunk)
    return written


@dataclass
class Walker:
    """Expands paths into `ScanItem`s, extracting archives under `work_dir`."""

    work_dir: Path
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    archives: bool = True
    #: Resume hook: files (plain or archives) for which it returns True are not expanded.
    skip: Callable[[ScanItem], bool] | None = None

    def walk(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[ScanItem]:
        """Every file under `paths` (folders recursively, sorted), members included.

        Symbolic links met inside a folder are not followed: a link leaving the folder
        would scan (and quarantine) something outside what was asked for, and a link
        inside it names a file the walk reaches under its own path. Each is a skipped
        row with its reason. A sub-folder that cannot be read is an error row.
        """
        for raw in paths:
            p = os.fspath(raw)
            if os.path.isdir(p):
                yield from self._walk_folder(p)
            else:
                yield from self.expand(p)

    def _walk_folder(self, top: str) -> Iterator[ScanItem]:
        failed: list[OSError] = []
        root_real = os.path.realpath(top)
        for root, dirs, files in os.walk(top, onerror=failed.append):
            while failed:
                yield _folder_error(failed.pop(0))
            dirs.sort()
            for name in sorted(dirs):
                path = os.path.join(root, name)
                if os.path.islink(path):
                    yield _link_item(path, root_real)
            for name in sorted(files):
                path = os.path.join(root, name)
                if os.path.islink(path):
                    yield _link_item(path, root_real)
                else:
                    yield from self.expand(path)
        while failed:
            yield _folder_error(failed.pop(0))

    def top_item(self, path: str) -> ScanItem:
        """A plain file (not expanded), with the stat resume needs."""
        try:
            st = os.stat(path)
        except OSError as exc:
            return ScanItem(path, path, path, error=f"unreadable: {exc.strerror or exc}")
        if not stat.S_ISREG(st.st_mode):
            return ScanItem(path, path, path, error="not a regular file")
        return ScanItem(
            path, path, path, size=st.st_size, mtime_ns=st.st_mtime_ns, top_size=st.st_size
        )

    def expand(self, path: str) -> Iterator[ScanItem]:
        """The file itself, or its members when it is an archive."""
        item = self.top_item(path)
        if item.error is None and self.skip is not None and self.skip(item):
            item.skipped = True
            yield item
            return
        if item.error or not self.archives:
            yield item
            return
        kind = archive_type(path)
        if kind is None:
            yield item
            return
        budget = _Budget(self.limits, compressed_size=item.size or 0)
        yield from self._members(item, path, kind, path, budget, depth=1)

    def _members(
        self, top: ScanItem, path: str, kind: str, display: str, budget: _Budget, depth: int
    ) -> Iterator[ScanItem]:
        if depth > self.limits.max_depth:
            yield self._error(top, display, f"archive nested deeper than {self.limits.max_depth}")
            return
        folder = self.work_dir / f"a{id(budget):x}_{budget.counter}"
        budget.counter += 1
        folder.mkdir(parents=True, exist_ok=True)
        try:
            reader = _zip_members(path) if kind == "zip" else _tar_members(path)
            for name, problem, opener in reader:
                shown = f"{display}{MEMBER_SEP}{name}"
                if problem:
                    yield self._error(top, shown, problem)
                    continue
                budget.take_member()
                dest = folder / f"m{budget.members}"
                with opener() as src:
                    size = _copy_capped(src, dest, budget)
                inner = archive_type(dest)
                if inner is not None:
                    yield from self._members(top, str(dest), inner, shown, budget, depth + 1)
                    continue
                yield ScanItem(
                    str(dest), shown, top.top, size=size, mtime_ns=top.mtime_ns, member=True,
                    top_size=top.size,
                )  # fmt: skip
        except DecompressionBomb as exc:
            yield self._error(top, display, str(exc))
        except (
            zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError,
            NotImplementedError,  # a zip version or compression zipfile does not know
        ) as exc:  # fmt: skip
            yield self._error(top, display, f"bad archive: {type(exc).__name__}: {exc}")
        except RuntimeError as exc:  # encrypted zip members
            yield self._error(top, display, f"bad archive: {exc}")

    @staticmethod
    def _error(top: ScanItem, display: str, message: str) -> ScanItem:
        return ScanItem(
            top.path, display, top.top, size=top.size, mtime_ns=top.mtime_ns, error=message,
            member=display != top.display, top_size=top.size,
        )  # fmt: skip


Member = tuple[str, str | None, Any]


def _folder_error(exc: OSError) -> ScanItem:
    path = os.fspath(exc.filename) if exc.filename is not None else "?"
    return ScanItem(path, path, path, error=f"unreadable folder: {exc.strerror or exc}")


def _link_item(path: str, root_real: str) -> ScanItem:
    """A skipped row for a symbolic link found while walking a folder."""
    target = os.path.realpath(path)
    inside = target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)
    reason = (
        "symbolic link inside the scanned folder (not followed; its target is scanned)"
        if inside
        else "symbolic link leaving the scanned folder (not followed)"
    )
    return ScanItem(path, path, path, skipped=True, reason=reason)


def _zip_members(path: str) -> Iterator[Member]:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.filename.endswith("/"):  # not is_dir(): IndexError on an empty name
                continue
            name = info.filename
            problem = unsafe_member_name(name)
            mode = info.external_attr >> 16
            if problem is None and stat.S_ISLNK(mode):
                problem = "symbolic link member not extracted"
            if problem is None and info.flag_bits & 0x1:
                problem = "encrypted member not extracted"
            yield name, problem, (lambda info=info: zf.open(info))


def _tar_members(path: str) -> Iterator[Member]:
    with tarfile.open(path, "r:*") as tf:
        for info in tf:
            if info.isdir():
                continue
            name = info.name
            problem = unsafe_member_name(name)
            if problem is None and (info.issym() or info.islnk()):
                problem = "link member not extracted"
            elif problem is None and not info.isreg():
                problem = "special member (device, fifo) not extracted"
            yield name, problem, (lambda info=info: _tar_open(tf, info))


def _tar_open(tf: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    fh = tf.extractfile(info)
    if fh is None:
        raise tarfile.TarError(f"cannot read member {info.name}")
    return fh
