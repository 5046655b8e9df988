"""Limits on what a client may hold open without sending a request, which uvicorn has none of.

A request head (request line and headers) of at most ``RequestLimits.head_bytes`` (431 beyond it;
headers of any size were buffered whole, hundreds of MB on a few connections), complete within
``head_seconds`` of its first byte, and a body that never pauses for ``body_idle_seconds``
(while the application is not the one holding it up, nor a client waiting for its 100
Continue). A connection past those is closed; a handler waiting for the body sees the client
gone (logged as 499). The app sets the limits from its settings
(``LimitedRequestsProtocol.limits``, lrs.app.create_app), in each server process before it
serves; lrs/http/protocol.py's StepWritesProtocol, which uvicorn runs, builds on this class.
"""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from lrs.http.errors import error_body
from lrs.logs import log
from lrs.ops.timestamps import http_date_now


@dataclass(frozen=True)
class RequestLimits:
    head_bytes: int = 64 * 1024
    head_seconds: float = 30.0
    body_idle_seconds: float = 60.0
    # the X-Experience-API-Version of answers written here, to requests never parsed far enough
    # to say which version they speak (Communication 3.3: every response carries the header)
    xapi_version: str = "2.0.0"


# A request line (RFC 9112 3): a method token, a target, the version. A method the parser does not
# know in one is 501; bytes with no such line (binary, a TLS handshake, "hello") are no request.
_REQUEST_LINE = re.compile(rb"(?:^|\n)[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^\s]+ HTTP/[0-9]\.[0-9]\r?\n")


class LimitedRequestsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request limits above."""

    limits = RequestLimits()
    active: RequestResponseCycle | None = None  # the request being served (a later one may be queued)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self.active = cycle
        super()._start_asgi_task(cycle, app)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.reading_head = True  # the next bytes belong to a request head
        self.message_bytes = 0  # bytes received for the request being read (head, body, framing)
        self.body_bytes = 0  # of those, the body's
        self.head_size = 0  # the head's size as on the wire, from what the parser made of it
        # A head over the limit: nothing after it is parsed or served, and it is answered with
        # 431 once every request before it (pipelined) has had its response.
        self.refusing = False
        self.refusal = (431, "")  # the answer a refused request gets (status, message)
        self.transfer_codings: list[bytes] = []  # the request's Transfer-Encoding, coding by coding
        self.active = None
        self.deadline: asyncio.TimerHandle | None = None
        self.armed_waiting = False  # the body timer was armed while the client awaited 100 Continue
        self.last_data = b""
        super().connection_made(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self.refusing:
            return
        self.last_data = data  # what a parser error is about (send_400_response)
        self.message_bytes += len(data)
        if self.reading_head:
            if self.deadline is None:
                self._arm(self.limits.head_seconds)
        elif self.deadline is not None:
            self._arm(self.limits.body_idle_seconds)  # a body arriving: the idle time starts again
        super().data_received(data)
        if self.refusing:
            return
        if self.reading_head:
            if self.message_bytes > self.limits.head_bytes:
                self._over_limit()  # a head still incomplete past the limit (streamed, never ending)
        elif self.message_bytes - self.head_size - 2 * self.body_bytes > self.limits.head_bytes:
            # past its head, what is not body (chunk framing, trailer fields, which the parser
            # holds whole until each ends) may be the head's limit and the body's size again
            self._over_limit(now=True)

    def _should_upgrade(self) -> bool:
        return not self.refusing and super()._should_upgrade()

    def on_message_begin(self) -> None:
        if self.refusing:
            return
        self.head_size = 0
        self.transfer_codings = []
        if self.deadline is None:
            # a head that begins inside a read (after the end of a body) is timed from here
            self._arm(self.limits.head_seconds)
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self.refusing:
            return
        self.head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.refusing:
            return
        self.head_size += len(name) + len(value) + 4
        if not self.reading_head and self.head_size > self.limits.head_bytes:
            self._over_limit(now=True)  # trailer fields: part of the head's allowance
            return
        if self.reading_head and name.lower() == b"transfer-encoding":
            self.transfer_codings += [c.split(b";")[0].strip().lower() for c in value.split(b",") if c.strip()]
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.refusing:
            return
        self.reading_head = False
        # as on the wire: the request line's method, spaces and version, and the blank line
        self.head_size += len(self.parser.get_method()) + 13
        if self.head_size > self.limits.head_bytes:
            self._over_limit()  # a head over the limit that arrived whole in one read
            return
        codings = self.transfer_codings
        unknown = [c.decode("latin-1") for c in codings if c != b"chunked"]
        if codings and codings[-1] != b"chunked":
            # the body's length cannot be known: 400 and close (RFC 9112 6.3)
            self._over_limit(refusal=(400, "not a valid HTTP/1.1 request (Transfer-Encoding must end "
                                           "with chunked)"))
            return
        if unknown:
            # the parser frames "gzip, chunked" as chunked and would hand on the coded bytes as
            # the body: a coding the server does not know is 501 (RFC 9112 6.1), and the
            # connection ends (its body is never read)
            self._over_limit(refusal=(501, f"Transfer-Encoding {', '.join(unknown)} is not supported "
                                           "(only chunked is)"))
            return
        super().on_headers_complete()
        self._arm(self.limits.body_idle_seconds)

    def on_body(self, body: bytes) -> None:
        if not self.refusing:
            self.body_bytes += len(body)
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refusing:
            return
        self._disarm()
        self.reading_head = True
        self.message_bytes = self.body_bytes = 0  # (the rest of this read, a next request's, goes uncounted)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.refusing and not self.pipeline and (self.active is None or self.active.response_complete):
            self._refuse_head()  # every request before the refused one has had its answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.armed_waiting = self.cycle is not None and self.cycle.waiting_for_100_continue
        self.deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expired(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if not self.reading_head and (
                (self.flow is not None and self.flow.read_paused) or self.armed_waiting
                or (self.cycle is not None and self.cycle.waiting_for_100_continue)):
            # the application has not read what came, not asked for the body yet, or only just
            # did (a 100 Continue sent since): the delay is not the client's
            self._arm(self.limits.body_idle_seconds)
            return
        log.info("request_timed_out", client=self.client[0] if self.client else None,
                 phase="head" if self.reading_head else "body")
        self.transport.close()

    def _over_limit(self, *, now: bool = False, refusal: tuple[int, str] | None = None) -> None:
        """Answer 431 (or ``refusal``'s status and message) and close, reading and serving nothing
        more: at once for the request being received (``now``), else after the responses to the
        requests before it, if any are still on their way (pipelining: their clients must get
        their answers first)."""
        self.refusing = True
        if refusal is not None:
            self.refusal = refusal
        self._disarm()
        if now:
            if self.pipeline and self.pipeline[0][0] is self.cycle:
                self.pipeline.popleft()  # it was queued behind others: it is never served
            elif self.cycle is not None and self.cycle.response_started:
                self.transport.close()  # answered already (before its body was read): no second answer
                return
            else:
                self._refuse_head()  # it is the request being served: its answer is the 431
                return
        if self.pipeline or (self.active is not None and not self.active.response_complete):
            self.flow.pause_reading()
        else:
            self._refuse_head()

    def _refuse_head(self) -> None:
        if self.transport.is_closing():
            return
        status, message = self.refusal
        if status != 431:
            log.info("request_refused", client=self.client[0] if self.client else None, status=status)
            self._answer_and_close(status, message)
            return
        limit = self.limits.head_bytes
        log.info("request_head_too_large", client=self.client[0] if self.client else None, limit=limit)
        self._answer_and_close(431, f"request line and headers exceed {limit} bytes")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are no HTTP request, as an xAPI error (JSON, version
        header) instead of its plain text. uvicorn calls it inside its ``except`` for whatever
        the parser refuses: a method the parser does not know (``FOO``) is no malformed request,
        but 501 Not Implemented (RFC 9110 15.6.2; methods it knows but no route takes are 405
        from the app). A request refused already (its head: the parser then trips over what it
        was refused for) keeps that answer. One that is pipelined behind others is answered after
        their responses, as a head over the limit is: answered at once, the close cut off the
        responses before it (a review)."""
        if self.refusing:
            return
        if self.last_data.startswith(b"\x16\x03"):
            refusal = (400, "not a valid HTTP/1.1 request (a TLS handshake: this port speaks plain HTTP, http:// "
                            "rather than https://)")
        elif (isinstance(sys.exc_info()[1], httptools.HttpParserInvalidMethodError)
              and _REQUEST_LINE.search(self.last_data)):
            refusal = (501, "the request method is not one Spor implements (GET, HEAD, PUT, POST, DELETE, OPTIONS)")
        else:
            refusal = (400, f"not a valid HTTP/1.1 request ({msg.rstrip('.')})")
        # in a request's head: after the responses before it; in the body being read: now
        self._over_limit(now=not self.reading_head, refusal=refusal)

    def _answer_and_close(self, status: int, message: str) -> None:
        body = error_body(status, message)
        head = [STATUS_LINE[status], b"date: ", http_date_now().encode("ascii"), b"\r\n"]
        for name, value in self.server_state.default_headers:
            if name.lower() != b"date":
                head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\nx-experience-api-version: "
                    + self.limits.xapi_version.encode("ascii") + b"\r\ncontent-length: "
                    + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()
