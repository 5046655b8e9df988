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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class StepWritesProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`StepWrites` transport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.step_writes = StepWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(self.step_writes)  # type: ignore[arg-type]

    def eof_received(self) -> None:
        # The client half-closed (``shutdown(SHUT_WR)`` after its request, as `nc -N` does): the
        # event loop closes the socket's transport itself once this returns, not through
        # StepWrites, so a response written in this step must reach it first (it was dropped).
        self.step_writes.flush()
        super().eof_received()
