"""CORS for browser content (xAPI Communication 1.3.s1: cross-domain tracking) as pure ASGI.

Browser-hosted content (cmi5 AUs, Kursbyggeren packages) talks to the LRS from another origin
with an Authorization header and the xAPI headers, so every such request is preflighted. The
preflight (OPTIONS with Access-Control-Request-Method) on /xapi/* is answered here, before
authentication and version negotiation, which a preflight never carries. Every response to a
request with an Origin gets Access-Control-Allow-Origin and the headers a script may read.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = "GET, HEAD, PUT, POST, DELETE, OPTIONS"
ALLOW_HEADERS = ("Authorization, Content-Type, Content-Length, X-Experience-API-Version, If-Match, If-None-Match, "
                 "If-Modified-Since, If-Unmodified-Since, "
                 "Accept-Language, X-Request-Id")
EXPOSE_HEADERS = ("ETag, Last-Modified, X-Experience-API-Consistent-Through, X-Experience-API-Version, "
                  "X-Request-Id, Content-Type, Retry-After")  # (content honours a 429's or 503's wait)
MAX_AGE = "86400"


class CORSMiddleware:
    """Answers CORS preflights on ``prefix`` and decorates responses to cross-origin requests."""

    def __init__(self, app: ASGIApp, prefix: str = "/xapi") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                # Echo the origin (not "*"): any origin may call, but caches must key on it.
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
            (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
            (b"access-control-max-age", MAX_AGE.encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]})
        await send({"type": "http.response.body", "body": b""})
