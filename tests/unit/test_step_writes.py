"""lrs.http.protocol on a real socket: the writes of one event-loop step leave in one write, in
order, and nothing written before a close is lost; HTTP/1.0 responses carry no chunk framing."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn

from lrs.http.protocol import StepWrites, StepWritesProtocol


class Counted:
    """A real transport, counting the writes that reach it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def _pair() -> tuple[StepWrites, Counted, socket.socket]:
    """StepWrites on a real asyncio transport (counted) at one end of a socket pair, and the
    other end."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    theirs.setblocking(False)
    counted = Counted(transport)  # type: ignore[arg-type]
    return StepWrites(counted, loop), counted, theirs  # type: ignore[arg-type]


async def _read_until_eof(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    out = b""
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 5):
        out += chunk
    return out


async def test_the_writes_of_one_step_leave_in_one_write() -> None:
    step, counted, peer = await _pair()
    step.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    step.write(b"{}")
    assert counted.writes == []  # held until the step ends
    assert step.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert counted.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    step.close()
    assert await _read_until_eof(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    peer.close()


async def test_writes_of_later_steps_follow_in_order() -> None:
    step, counted, peer = await _pair()
    step.write(b"head|")
    step.write(b"")  # nothing to write, nothing scheduled
    step.write(bytearray(b"part1|"))
    await asyncio.sleep(0)
    step.write(memoryview(b"part2|"))
    await asyncio.sleep(0)
    step.writelines([b"part3|", b"end"])
    await asyncio.sleep(0)
    assert counted.writes == [b"head|part1|", b"part2|", b"part3|end"]
    step.close()
    assert await _read_until_eof(peer) == b"head|part1|part2|part3|end"
    peer.close()


async def test_a_close_in_the_same_step_sends_what_was_written_first() -> None:
    # uvicorn closes the connection right after the body of a response that does not keep the
    # connection alive (HTTP/1.0): the held head and body must reach the socket before the close.
    step, counted, peer = await _pair()
    step.write(b"head|")
    step.write(b"body")
    step.close()
    assert step.is_closing()
    assert await _read_until_eof(peer) == b"head|body"
    await asyncio.sleep(0)  # the scheduled flush finds nothing left and writes nothing more
    assert counted.writes == [b"head|body"]
    peer.close()


async def test_an_abort_drops_what_is_held() -> None:
    step, counted, peer = await _pair()
    step.write(b"never sent")
    step.abort()
    await asyncio.sleep(0)
    assert counted.writes == []
    assert await _read_until_eof(peer) == b""
    peer.close()


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """uvicorn with Spor's protocol on a free loopback port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, http=StepWritesProtocol,
                                           log_config=None, log_level="critical", lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(3000):  # (30 s)
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, task.exception() if task.done() else "uvicorn did not start within 30 s"
    return server, task, server.servers[0].sockets[0].getsockname()[1]


def _streaming(fail: bool = False, stop: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["method"] == "POST":
            await receive()  # asks for the body: uvicorn answers an Expect: 100-continue now
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/csv")]})
        await send({"type": "http.response.body", "body": b"a,b\r\n", "more_body": True})
        await asyncio.sleep(0.01)
        if fail:
            raise RuntimeError("the export's read failed")
        if stop:
            return  # as an export does that gave up on a stalled reader
        await send({"type": "http.response.body", "body": b"1,2\r\n", "more_body": False})
    return app


async def _get(port: int, version: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /export HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_http_1_0_streams_without_chunks_and_the_close_ends_the_body() -> None:
    server, task, port = await _serve(_streaming())
    try:
        head, _, body = (await _get(port, "1.0")).partition(b"\r\n\r\n")
        chunked_head, _, chunked = (await _get(port, "1.1")).partition(b"\r\n\r\n")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /export HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
        expecting = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        server.should_exit = True
        await task
    assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
    assert b"connection: close" in head.lower() and body == b"a,b\r\n1,2\r\n"
    assert b"transfer-encoding: chunked" in chunked_head.lower() and chunked.endswith(b"0\r\n\r\n")
    # no 1xx to an HTTP/1.0 client (RFC 9110, 15.2), whatever it expects
    assert expecting.startswith(b"HTTP/1.1 200") and b"100 Continue" not in expecting


@pytest.mark.parametrize("how", ["fail", "stop"])
async def test_an_http_1_0_stream_that_fails_or_stops_midway_is_reset_not_closed(how: str) -> None:
    """Closed, the part would read as the whole export; a reset is an error to the client."""
    server, task, port = await _serve(_streaming(fail=how == "fail", stop=how == "stop"))
    try:
        with pytest.raises(ConnectionResetError):
            await _get(port, "1.0")
    finally:
        server.should_exit = True
        await task
