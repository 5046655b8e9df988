"""Whole responses for HTTP/1.0 clients.

HTTP/1.0 has no chunked transfer coding, and a server must not send ``Transfer-Encoding`` in
answer to a request that did not say HTTP/1.1 or later (RFC 9112, section 6.1). uvicorn chunks
every response that names no ``Content-Length``, and the streamed CSV exports of the analyst
API cannot name theirs before the last row. For an HTTP/1.0 request such a response is
gathered here and sent whole, with its ``Content-Length``, up to ``HTTP10_BODY_MAX`` bytes;
beyond that, nothing of it having been sent, the answer is 505 (HTTP Version Not Supported)
saying so: a larger export needs HTTP/1.1.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP10_BODY_MAX = 64 * 1024 * 1024


class Http10BodyTooLarge(RuntimeError):
    """A streamed response to an HTTP/1.0 request grew past what is gathered for it."""


class Http10WholeResponses:
    """Gathers a response without Content-Length to an HTTP/1.0 request and sends it whole."""

    def __init__(self, app: ASGIApp, limit: int = HTTP10_BODY_MAX) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("http_version") != "1.0" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        parts: list[bytes] = []
        size = 0

        async def gather(message: Message) -> None:
            nonlocal start, size
            if message["type"] == "http.response.start":
                named = {name.lower() for name, _ in message.get("headers", ())}
                if message["status"] in (204, 304) or {b"content-length", b"transfer-encoding"} & named:
                    await send(message)
                else:
                    start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                raise Http10BodyTooLarge(f"a streamed response to an HTTP/1.0 request passed {self.limit} bytes; "
                                         "the client must use HTTP/1.1")
            parts.append(body)
            if not message.get("more_body", False):
                whole = b"".join(parts)
                parts.clear()
                headers = [*start.get("headers", ()), (b"content-length", str(len(whole)).encode())]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": whole})

        try:
            await self.app(scope, receive, gather)
        except Http10BodyTooLarge as exc:
            body = orjson.dumps({"error": {"status": 505, "message": str(exc)}})
            await send({"type": "http.response.start", "status": 505,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
