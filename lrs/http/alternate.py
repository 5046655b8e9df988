"""The Alternate Request Syntax (xAPI 1.0.3 Communication 1.3) as pure ASGI request rewriting.

A request ``POST /xapi/...?method=PUT`` with an ``application/x-www-form-urlencoded`` body is
rewritten into the request it stands for before anything else sees it: the method from the
``method`` query parameter; the form parameters Authorization, X-Experience-API-Version,
Content-Type, Content-Length, If-Match and If-None-Match become headers (1.3.s3.b7); ``content``
becomes the body, read as UTF-8 (1.3.s3.b5); all other form parameters become the query
string (1.3.s3.b14). xAPI 2.0.0 (IEEE 9274.1.1) dropped the syntax: such a request is refused
with 400, as is a ``method`` parameter on anything but POST or next to other query parameters
(1.3.s3.b1-b3).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lrs.http.errors import error_response
from lrs.http.form_text import TextError, form_pairs
from lrs.http.versions import negotiate

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
HEADER_PARAMS = {h.lower(): h for h in (
    "Authorization", "X-Experience-API-Version", "Content-Type", "Content-Length", "If-Match", "If-None-Match",
)}
FORM_TYPE = "application/x-www-form-urlencoded"
# A form names at most the six header parameters, content, and a resource's query parameters
# (a statement query has thirteen). The cap bounds the parsing a request buys before it is
# authenticated: the credential travels inside the form.
MAX_FORM_FIELDS = 64
LARGE_FORM_BYTES = 1 << 20
LARGE_FORMS_AT_ONCE = 1
# A form holding the turn must keep coming: after a grace, at this many bytes a second on
# average, or 408 and the turn passes on (a review: one byte a minute held it for good).
LARGE_FORM_GRACE_SECONDS = 10.0
LARGE_FORM_MIN_BYTES_PER_SECOND = 64 * 1024
# their own two threads: decoding unauthenticated forms does not take the default pool, which
# name lookups of the database host use
_DECODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spor-form-decode")


# What an HTTP header value may hold (RFC 9110 field-value: visible ASCII, space, tab, obs-text).
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# A charset parameter of a Content-Type (its value quoted or not), with the separator before it.
_CHARSET = re.compile(r';\s*charset\s*=\s*(?:"[^"]*"|[^;]*)', re.IGNORECASE)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AlternateRequestMiddleware:
    """Rewrites 1.0.3 alternate-syntax requests on ``prefix``; refuses them for 2.0.0."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, prefix: str = "/xapi") -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix
        # Large forms read and decoded at once: one. A form is read before its credential is
        # checked and, decoded, is held ~3.6 times over (four unauthenticated 60 MB forms at
        # once: 586 MB, a memory audit); others wait with what they sent so far, a MiB each.
        self._large_forms = asyncio.Semaphore(LARGE_FORMS_AT_ONCE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        raw = scope.get("query_string", b"")
        if b"method" not in raw and not (scope["method"] == "POST" and b"%" in raw):  # (most: no parsing)
            await self.app(scope, receive, send)
            return
        try:
            query = form_pairs(raw, "query parameter", raw_utf8=False)
        except TextError:
            query = []  # (QueryTextMiddleware, outside this one, refuses it)
        if not any(name == "method" for name, _ in query):
            await self.app(scope, receive, send)
            return
        try:
            new_scope, body = await self._rewrite(scope, receive, query)
        except _Refused as exc:
            # refused part way through the body (too slow, too large): the rest of it is not
            # read, so the connection closes after the answer (RFC 9110 15.5.9; a review)
            mid_body = {"Connection": "close"} if exc.status in (408, 413) else None
            await error_response(exc.status, exc.message, mid_body)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if new_scope["method"] != "HEAD":
            await self.app(new_scope, replay, send)
            return

        async def without_body(message: Message) -> None:
            # The server saw a POST and would send the body; a HEAD's response has none
            # (Communication 1.1). Over HTTP it answers a POST, so its Content-Length is 0.
            if message["type"] == "http.response.start":
                message = {**message, "headers": [(k, v) for k, v in message.get("headers", [])
                                                  if k.lower() != b"content-length"] + [(b"content-length", b"0")]}
            elif message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(new_scope, replay, without_body)

    async def _rewrite(self, scope: Scope, receive: Receive, query: list[tuple[str, str]]) -> tuple[Scope, bytes]:
        headers = Headers(scope=scope)
        if scope["method"] != "POST":
            raise _Refused(400, "the alternate request syntax (method parameter) must be sent as POST "
                                "(xAPI Communication 1.3.s3.b1)")
        if len(query) != 1:
            raise _Refused(400, "with the alternate request syntax, method must be the only query parameter; "
                                "send the others as form parameters (xAPI Communication 1.3.s3.b3)")
        method = query[0][1].upper()
        if method not in METHODS:
            raise _Refused(400, f"method: {query[0][1]!r} is not an xAPI method")
        async with contextlib.AsyncExitStack() as large:
            raw = await self._read(receive, large)
            return self._rewritten(scope, headers, method, await self._form(headers, raw))

    async def _form(self, headers: Headers, raw: bytes) -> list[tuple[str, str]] | None:
        """The form's fields, each name once (None: the body is no form)."""
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != FORM_TYPE:
            # Refused regardless of version: in 2.0.0 because the syntax is gone, in 1.0.3
            # because the parameters can only travel as a form (1.3.s3.b4).
            return None
        try:
            # a large form is decoded in a thread, a MiB at a time (lrs/http/form_text.py): it is
            # read before its credential is checked, and the event loop serves on meanwhile
            parse = functools.partial(form_pairs, raw, "form parameter", raw_utf8=True, max_fields=MAX_FORM_FIELDS)
            form = (await asyncio.get_running_loop().run_in_executor(_DECODERS, parse)
                    if len(raw) > LARGE_FORM_BYTES else parse())
        except TextError as exc:
            raise _Refused(400, f"{exc} (xAPI Communication 1.3.s3.b5)") from None
        seen: set[str] = set()
        for name, _ in form:
            key = name.lower() if name.lower() in HEADER_PARAMS else name
            if key in seen:
                # as a query parameter given twice: which one was meant cannot be known
                raise _Refused(400, f"form parameter {name[:100]!r} given more than once")
            seen.add(key)
        return form

    def _rewritten(self, scope: Scope, headers: Headers, method: str,
                   parsed: list[tuple[str, str]] | None) -> tuple[Scope, bytes]:
        """The request the form stands for: its method, header parameters, query and body."""
        form = parsed or []
        form_headers = {HEADER_PARAMS[k.lower()]: v for k, v in form if k.lower() in HEADER_PARAMS}
        for name, value in form_headers.items():
            if not _HEADER_VALUE.fullmatch(value):
                got = "" if name == "Authorization" else f", got {value[:100]!r}"  # never echo a credential
                raise _Refused(400, f"{name}: a header parameter of the alternate request syntax must be "
                                    f"one line of Latin-1 text without control characters{got}")
        versions = {negotiate(headers.get("x-experience-api-version")),
                    negotiate(form_headers.get("X-Experience-API-Version"))}
        if "2.0.0" in versions:
            raise _Refused(400, "the alternate request syntax is not part of xAPI 2.0.0 (IEEE 9274.1.1); "
                                "send the request with its own method, headers and body")
        if parsed is None:
            raise _Refused(400, f"the alternate request syntax needs a {FORM_TYPE} body "
                                "(xAPI Communication 1.3.s3.b4)")
        content: bytes | None = None
        params: list[tuple[str, str]] = []
        for k, v in form:
            if k.lower() in HEADER_PARAMS:
                continue
            if k == "content":
                content = v.encode("utf-8")
            else:
                params.append((k, v))
        if method in ("PUT", "POST") and content is None:
            raise _Refused(400, "the alternate request syntax carries the body in a form parameter named "
                                "content (xAPI Communication 1.3.s3.b4)")
        body = content or b""
        new_headers: list[tuple[bytes, bytes]] = [
            (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type", b"content-length")
            and k.decode("latin-1").lower() not in HEADER_PARAMS
        ]
        for name, value in form_headers.items():
            if name in ("Content-Type", "Content-Length"):
                continue
            new_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        # Header parameters sent as real headers (other than the form's own type) stay.
        for name in ("authorization", "x-experience-api-version", "if-match", "if-none-match"):
            if HEADER_PARAMS[name] not in form_headers and name in headers:
                new_headers.append((name.encode(), headers[name].encode("latin-1")))
        if content is not None and "Content-Type" in form_headers:
            # content is text of the form, so UTF-8 whatever charset the form's Content-Type names
            # (1.3.s3.b5: "The LRS MUST interpret this content as a UTF-8 string"). Without a
            # Content-Type parameter the request has none, as a normal one would not: a document
            # is then stored as application/octet-stream, not as JSON it may not be.
            content_type = _CHARSET.sub("; charset=utf-8", form_headers["Content-Type"])
            new_headers.append((b"content-type", content_type.encode("latin-1")))
        new_headers.append((b"content-length", str(len(body)).encode()))
        query_string = urlencode(params).encode("latin-1")
        new_scope = dict(scope)
        new_scope.update(method=method, headers=new_headers, query_string=query_string)
        return new_scope, body

    async def _read(self, receive: Receive, large: contextlib.AsyncExitStack) -> bytes:
        """The whole body; once past LARGE_FORM_BYTES, read on only with a large form's turn
        (kept in ``large`` until the form is decoded)."""
        chunks: list[bytes] = []
        size = 0
        turn_at: float | None = None  # (loop time, size) when the turn was given
        turn_size = 0
        loop = asyncio.get_running_loop()
        while True:
            if size > LARGE_FORM_BYTES and turn_at is None:
                await large.enter_async_context(self._large_forms)
                turn_at, turn_size = loop.time(), size
            if turn_at is None:
                message = await receive()
            else:
                allowed = (turn_at + LARGE_FORM_GRACE_SECONDS
                           + (size - turn_size) / LARGE_FORM_MIN_BYTES_PER_SECOND - loop.time())
                try:
                    message = await asyncio.wait_for(receive(), max(allowed, 0.0))
                except TimeoutError:
                    raise _Refused(408, "the alternate-syntax form came too slowly: a large form must keep "
                                        f"coming at {LARGE_FORM_MIN_BYTES_PER_SECOND // 1024} KiB a second "
                                        "on average") from None
            if message["type"] == "http.disconnect":
                # the body never completed: nothing of it is acted on (a form cut off before its
                # If-Match would otherwise be applied without it)
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Refused(413, f"request body exceeds the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)
