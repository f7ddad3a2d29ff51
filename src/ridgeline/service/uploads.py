"""Uploads and (opt-in) URL fetches: size limits, type sniffing, hashing with a timeout.

Uploads are streamed to a private temporary file with a byte cap; the type comes
from the content (`ridgeline.media.sniff_bytes`), never from the client's claim.
URLs are fetched only from hosts on a configured allow-list, never following
redirects, with the same byte cap.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager, suppress
from typing import IO
from urllib.parse import urlsplit

from ridgeline.errors import (
    BadInput,
    BadUrl,
    FetchDisabled,
    FetchFailed,
    TimedOut,
    TooLarge,
    UnsupportedType,
    UrlNotAllowed,
)
from ridgeline.hashing import HashResult, hash_file
from ridgeline.media import sniff_bytes
from ridgeline.signals import HashOptions

CHUNK = 1 << 20
#: When this process last finished hashing an upload (the refresher trims the heap after).
_last_hashed = [0.0]


def last_hashed() -> float:
    """`time.monotonic()` of the end of the last upload hashed here (0: none yet)."""
    return _last_hashed[0]


_pool = ThreadPoolExecutor(max_workers=max(4, (os.cpu_count() or 2) * 2), thread_name_prefix="hash")


@contextmanager
def spooled_upload(
    source: IO[bytes],
    max_bytes: int,
    allowed_kinds: Sequence[str],
    *,
    held: list[bytes] | None = None,
) -> Iterator[str]:
    """Copy an upload to a temporary file (deleted afterwards); checks size and type.

    With `held`, an upload that arrived in one chunk (at most `CHUNK` bytes) is also
    appended to it: the bytes the file holds, already in memory, so that a caller that
    needs them (a `report` draft) does not read the file back. A larger upload is not
    kept (`held` stays empty): read the file."""
    fd, path = tempfile.mkstemp(prefix="ridgeline-upload-")
    try:
        total = 0
        head = b""
        first = b""
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                if total == 0:
                    first = chunk
                total += len(chunk)
                if total > max_bytes:
                    raise TooLarge(f"upload exceeds {max_bytes} bytes")
                if len(head) < 512:
                    head += chunk[: 512 - len(head)]
                out.write(chunk)
        if held is not None and total and len(first) == total:
            held.append(bytes(first))
        if total == 0:
            raise BadInput("the upload is empty")
        kind, _ = sniff_bytes(head)
        if kind not in allowed_kinds:
            raise UnsupportedType(
                f"uploads must be {' or '.join(allowed_kinds)}; this content is {kind}",
            )
        yield path
    finally:
        with suppress(OSError):
            os.unlink(path)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def fetch_url(url: str, allow_hosts: Sequence[str], max_bytes: int, timeout: float) -> IO[bytes]:
    """Open an allow-listed http(s) URL (no redirects); the caller reads with a byte cap."""
    if not allow_hosts:
        raise FetchDisabled("fetching URLs is disabled (no allow-list configured)")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise BadUrl(f"not an http(s) URL: {url!r}")
    allowed = {h.lower() for h in allow_hosts}
    port_host = f"{host}:{parts.port}" if parts.port else host
    if host not in allowed and port_host not in allowed:
        raise UrlNotAllowed(f"host {host!r} is not on the fetch allow-list")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        response: http.client.HTTPResponse = opener.open(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise FetchFailed(f"fetching {url} failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchFailed(f"fetching {url} failed: {exc}") from None
    length = response.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        response.close()
        raise TooLarge(f"remote content exceeds {max_bytes} bytes")
    return response


def hash_with_timeout(
    path: str,
    options: HashOptions,
    timeout: float,
    signals: Sequence[str] | None = None,
    *,
    partial: bool = False,
) -> HashResult:
    """Hash a spooled upload, answering 504 if it takes longer than `timeout`.

    With `partial`, a result with some signals is returned even when others failed
    (its `error` says why), so matching can still use the hashes it has.
    """
    future = _pool.submit(hash_file, path, signals, options)
    try:
        result = future.result(timeout=timeout)
    except FutureTimeout:
        raise TimedOut(f"hashing took longer than {timeout:g}s") from None
    finally:
        _last_hashed[0] = time.monotonic()
    if result.error and not result.signals:
        raise BadInput(result.error)
    if result.error and not partial:
        too_large = "pixel" in result.error or "bomb" in result.error.lower()
        raise (TooLarge if too_large else BadInput)(result.error)
    return result
