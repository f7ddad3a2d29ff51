"""A deadline and a size cap on the header phase of every request (slowloris).

uvicorn times out idle keep-alive connections only after a response, and any byte
received cancels even that timer; a connection that sends nothing, or its request line
and headers one byte every few seconds, is held open for ever (measured on uvicorn
0.3x with httptools: a connection that sent nothing for 120 s was still open). Request
bodies have their own deadline (`ServiceConfig.body_timeout_s`, the guard); this closes
a connection whose request headers have not all arrived `header_timeout_s` seconds
after it opened, or after the previous response on it was sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Default seconds a client has to send a request's headers.
HEADER_TIMEOUT_S = 10.0
#: Longest request line plus headers (llhttp itself has no limit: a 1 MB header was
#: accepted and buffered); longer requests get 431 and the connection is closed.
MAX_HEADER_BYTES = 64 << 10


class _HeadersTooLarge(Exception):
    pass


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-phase deadline."""

    header_timeout_s: float = HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._too_large = False

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        super().on_message_begin()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            self._too_large = True
            raise _HeadersTooLarge  # httptools ends feed_data: uvicorn answers, closes

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        body = f"request line and headers over {MAX_HEADER_BYTES} bytes".encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expired(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # its headers are in already: no new deadline
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm()


def protocol_class(header_timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """The protocol with this deadline (a subclass: uvicorn instantiates it per connection)."""
    return type(
        "HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s}
    )
