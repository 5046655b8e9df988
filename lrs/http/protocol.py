"""uvicorn's httptools protocol, writing what one step of the event loop sends in one go.

uvicorn writes the status line and headers as soon as the application sends
``http.response.start``, and the body when it sends ``http.response.body``: two ``send``
system calls, and on a keep-alive connection two TCP segments the client wakes up for, where
one would do. Both messages are sent within one step of the event loop (nothing awaits between
them), so the transport here keeps the writes of a step and hands them to the socket together
when the step ends (``call_soon``): a response's head and body leave in one write. A streamed
body that awaits between its parts is still written part by part, each at the end of its step.
Under many small requests (single-statement POSTs) the head's own write was ~10% of a server
process's CPU (py-spy, bench/ingest (c)).

The protocol also enforces the request limits of lrs/http/request_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from lrs.http.request_limits import LimitedRequestsProtocol


class StepWrites:
    """A transport that joins the writes of one event-loop step into one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.parts: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self.parts:
            self.loop.call_soon(self.flush)
        self.parts.append(bytes(data))

    def writelines(self, parts: list[bytes]) -> None:
        for data in parts:
            self.write(data)

    def flush(self) -> None:
        if not self.parts:
            return
        data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        self.parts.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + sum(map(len, self.parts))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self.parts.clear()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        # is_closing, get_extra_info, pause_reading, resume_reading, set_protocol, ...
        return getattr(self.transport, name)


class Http10Cycle(RequestResponseCycle):
    """The request/response cycle of an HTTP/1.0 request.

    HTTP/1.0 has no chunked transfer coding, and a server must not send ``Transfer-Encoding``
    to a request that did not say HTTP/1.1 or later (RFC 9112, section 6.1); uvicorn chunks
    every response that names no ``Content-Length``, as the streamed CSV exports cannot. Such a
    response is sent here as HTTP/1.0 delimits a body without a length: by closing the
    connection after it (RFC 9112, section 6.3), which uvicorn does after every HTTP/1.0
    response anyway. It streams as before; only the chunk framing is left out.
    """

    close_delimited = False

    async def run_asgi(self, app: Any) -> None:
        # No 1xx response to an HTTP/1.0 client, whose Expect is to be ignored (RFC 9110, 10.1.1)
        self.waiting_for_100_continue = False

        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            finally:
                # raised or returned, a body begun and not ended (an export whose read failed,
                # or that stopped on a stalled reader) is reset, not closed: to an HTTP/1.0
                # client the close would end a whole response
                if self.close_delimited and not self.response_complete:
                    self._reset()

        await super().run_asgi(guarded)

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0) instead of FIN, unless the client is gone already."""
        if self.disconnected or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            named = {name.lower() for name, _ in message.get("headers", ())}
            if (self.scope["method"] != "HEAD" and message["status"] not in (204, 304)
                    and not {b"content-length", b"transfer-encoding"} & named):
                self.close_delimited = True
                self.chunked_encoding = False  # uvicorn adds chunking only while this is None
            await super().send(message)
            return
        if not self.close_delimited or message["type"] != "http.response.body" or self.response_complete:
            await super().send(message)
            return
        # what uvicorn does with a body, without the chunk framing (httptools_impl send)
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        body = message.get("body", b"")
        if body:
            self.transport.write(body)
        if not message.get("more_body", False):
            self.response_complete = True
            self.message_event.set()
            self.transport.close()
            self.on_response()


class StepWritesProtocol(LimitedRequestsProtocol):
    """uvicorn's httptools protocol (with the request limits) on a :class:`StepWrites` transport,
    with :class:`Http10Cycle` for HTTP/1.0 requests."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if cycle.scope.get("http_version") == "1.0":
            cycle.__class__ = Http10Cycle
        super()._start_asgi_task(cycle, app)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.step_writes = StepWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(self.step_writes)  # type: ignore[arg-type]

    def eof_received(self) -> None:
        # The client half-closed (``shutdown(SHUT_WR)`` after its request, as `nc -N` does): the
        # event loop closes the socket's transport itself once this returns, not through
        # StepWrites, so a response written in this step must reach it first (it was dropped).
        self.step_writes.flush()
        super().eof_received()
