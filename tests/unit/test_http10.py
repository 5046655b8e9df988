"""Http10WholeResponses: a response without Content-Length to an HTTP/1.0 request is sent whole."""

from __future__ import annotations

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from lrs.http.http10 import Http10WholeResponses


def _streaming(parts: list[bytes], headers: list[tuple[bytes, bytes]] | None = None, status: int = 200):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})
    return app


async def _run(app: Http10WholeResponses, version: str, method: str = "GET") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http", "http_version": version, "method": method}, receive, send)
    return sent


async def test_http_1_0_gets_one_body_with_its_length() -> None:
    sent = await _run(Http10WholeResponses(_streaming([b"a,b\r\n", b"1,2\r\n", b""])), "1.0")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert (b"content-length", b"10") in sent[0]["headers"]
    assert sent[1]["body"] == b"a,b\r\n1,2\r\n" and not sent[1].get("more_body")


@pytest.mark.parametrize(("version", "method", "headers", "status"), [
    ("1.1", "GET", [], 200),  # chunks are HTTP/1.1's
    ("1.0", "HEAD", [], 200),  # no body
    ("1.0", "GET", [(b"Content-Length", b"10")], 200),  # its length known
    ("1.0", "GET", [], 204),  # no body
])
async def test_other_responses_pass_as_they_are(version: str, method: str, headers: list[tuple[bytes, bytes]],
                                                status: int) -> None:
    sent = await _run(Http10WholeResponses(_streaming([b"a,b\r\n", b"1,2\r\n"], headers, status)), version, method)
    assert len(sent) == 3 and sent[0]["headers"] == headers


async def test_a_body_past_the_limit_is_a_505_saying_so_and_nothing_of_it_is_sent() -> None:
    sent = await _run(Http10WholeResponses(_streaming([b"x" * 6, b"x" * 6]), limit=10), "1.0")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 505
    body = orjson.loads(sent[1]["body"])
    assert body["error"]["status"] == 505 and "must use HTTP/1.1" in body["error"]["message"]
    assert (b"content-length", str(len(sent[1]["body"])).encode()) in sent[0]["headers"]
