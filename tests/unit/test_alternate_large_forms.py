"""Large alternate-syntax forms take turns (lrs/http/alternate.py): a form is read whole before its
credential, inside it, can be checked, and decoded it is held ~3.6 times over (four
unauthenticated 60 MB forms at once: 586 MB, a memory audit). Past LARGE_FORM_BYTES a form reads
on only with a turn, held until it is decoded; the others wait having read a MiB or so.

Driven at the ASGI interface the server calls: the request bodies arrive when the test says."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from lrs.http import alternate
from lrs.http.alternate import LARGE_FORM_BYTES, LARGE_FORMS_AT_ONCE, AlternateRequestMiddleware

CHUNK = 256 * 1024


class Client:
    """One request's body, a chunk each time the test releases one; counts what was read."""

    def __init__(self, chunks: int) -> None:
        self.left = chunks
        self.read = 0
        self.go = asyncio.Semaphore(0)

    async def receive(self) -> Message:
        await self.go.acquire()
        self.read += 1
        self.left -= 1
        field = b"content=" if self.read == 1 else b""
        return {"type": "http.request", "body": field + b"A" * CHUNK, "more_body": self.left > 0}

    def send_all(self) -> None:
        for _ in range(self.left):
            self.go.release()


async def test_large_forms_are_read_and_decoded_one_at_a_time() -> None:
    assert LARGE_FORMS_AT_ONCE == 1
    served: list[tuple[str, int]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        served.append((scope["method"], len(message["body"])))

    middleware = AlternateRequestMiddleware(app, max_body_bytes=64 << 20)
    scope: dict[str, Any] = {
        "type": "http", "method": "POST", "path": "/xapi/statements", "query_string": b"method=PUT",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
    }

    async def no_send(message: Message) -> None:
        raise AssertionError(f"nothing is sent by the middleware here: {message}")

    chunks = LARGE_FORM_BYTES // CHUNK + 4
    first, second = Client(chunks), Client(chunks)
    a = asyncio.create_task(middleware(scope, first.receive, no_send))
    for _ in range(LARGE_FORM_BYTES // CHUNK + 2):  # past the large-form size: the turn is taken
        first.go.release()
    b = asyncio.create_task(middleware(scope, second.receive, no_send))
    second.send_all()
    await asyncio.sleep(0.05)
    # the second form stopped once it was large, waiting for the turn, with at most a MiB or so read
    assert second.read * CHUNK <= LARGE_FORM_BYTES + CHUNK and second.read < chunks and not b.done()
    first.send_all()
    await asyncio.wait_for(asyncio.gather(a, b), 10)
    assert served == [("PUT", chunks * CHUNK), ("PUT", chunks * CHUNK)]
    assert second.read == chunks


async def test_a_form_holding_the_turn_must_keep_coming(monkeypatch: pytest.MonkeyPatch) -> None:
    """One unauthenticated client sending a byte a minute held the turn for good (a review): a
    form that has it must keep coming at LARGE_FORM_MIN_BYTES_PER_SECOND after a grace, or it
    is refused with 408 and the next form gets the turn."""
    monkeypatch.setattr(alternate, "LARGE_FORM_GRACE_SECONDS", 0.3)
    served: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        served.append(len((await receive())["body"]))

    middleware = AlternateRequestMiddleware(app, max_body_bytes=64 << 20)
    scope: dict[str, Any] = {
        "type": "http", "method": "POST", "path": "/xapi/statements", "query_string": b"method=PUT",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
    }
    answered: list[Message] = []

    async def send(message: Message) -> None:
        answered.append(message)

    async def nothing(message: Message) -> None:
        raise AssertionError(f"the second form is served, not answered here: {message}")

    chunks = LARGE_FORM_BYTES // CHUNK + 4
    slow, next_one = Client(chunks), Client(chunks)
    a = asyncio.create_task(middleware(scope, slow.receive, send))
    for _ in range(LARGE_FORM_BYTES // CHUNK + 2):  # the turn is taken, then nothing more comes
        slow.go.release()
    b = asyncio.create_task(middleware(scope, next_one.receive, nothing))
    next_one.send_all()
    await asyncio.wait_for(asyncio.gather(a, b), 10)
    assert answered[0]["type"] == "http.response.start" and answered[0]["status"] == 408
    assert (b"connection", b"close") in answered[0]["headers"]  # the rest of the body is not read
    assert b"came too slowly" in b"".join(m.get("body", b"") for m in answered)
    assert served == [chunks * CHUNK]
