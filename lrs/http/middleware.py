"""Request plumbing as one pure ASGI middleware: request id, xAPI version negotiation and
header, the structured access log line and the request metrics."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lrs.errors import LRSError
from lrs.http.common import NO_STORE_THROUGH, ascii_digits
from lrs.http.errors import error_response, internal_error
from lrs.http.versions import LATEST, negotiate
from lrs.logs import REQUEST_SCOPE, RequestScope, log
from lrs.metrics import Metrics
from lrs.ops.timestamps import http_date_now

# A request id a client may set (X-Request-Id): short, of characters safe in logs and headers
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

KNOWN_PATHS = frozenset({
    "/xapi/statements", "/xapi/activities", "/xapi/activities/state", "/xapi/activities/profile",
    "/xapi/agents", "/xapi/agents/profile", "/xapi/about", "/health", "/metrics",
})


class RequestMiddleware:
    """Binds a request id, negotiates the xAPI version, logs and measures every request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, default_version: str = LATEST) -> None:
        self.app = app
        self.metrics = metrics
        self.default_version = default_version
        metrics.describe("spor_http_requests_total", "counter", "HTTP requests by method, path and status.")
        metrics.describe("spor_http_request_seconds", "histogram", "HTTP request latency by method and path.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # a client's own request id is kept when it is a plausible id; anything else (megabytes
        # to fill the log, control characters) gets one of ours
        sent_id = headers.get("x-request-id")
        request_id = sent_id if sent_id is not None and _REQUEST_ID.fullmatch(sent_id) else uuid.uuid4().hex
        path: str = scope["path"].rstrip("/") or "/"
        is_xapi = path.startswith("/xapi")
        private = (is_xapi and path != "/xapi/about") or path.startswith("/api")
        version = negotiate(headers.get("x-experience-api-version")) if is_xapi else None
        # The version is negotiated by the handler (lrs.http.common.xapi_version) from the
        # headers it sees, which the alternate request syntax may have rewritten; the header's
        # own version here only names the version of responses that never reach a handler.
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        # RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one Host
        # (of two, the first was taken)
        hosts = sum(1 for k, _ in scope["headers"] if k == b"host")
        target = self.app if hosts == 1 or scope.get("http_version") != "1.1" else _host_refused(hosts)
        started = False
        # Whether a client that waits to be asked for its body (Expect: 100-continue) has been
        # asked: uvicorn sends 100 Continue when the application first reads the body. A client
        # that sends its body, asked or unasked, gets its answer on the open connection, which
        # reads past the rest of the body: closing it while the body still arrives would reset
        # it, and the client would lose the answer.
        asked = headers.get("expect", "").lower() != "100-continue" or not _has_body(headers)

        async def receive_and_note() -> Message:
            nonlocal asked
            asked = True
            return await receive()

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                out = MutableHeaders(scope=message)
                out["X-Request-Id"] = request_id
                out["Date"] = http_date_now()  # (uvicorn's is off: lrs.cli)
                if private and "cache-control" not in out:
                    # learning records and documents are personal data: no cache keeps them,
                    # the browser's on a shared ward PC included (RFC 9111 5.2.2.5)
                    out["Cache-Control"] = "no-store"
                if not asked:
                    # Answered before the body it waits to send was asked for (401, 413 for a
                    # declared size, a bad version header): the connection cannot carry another
                    # request, since what the client sends next would be taken for the rest of
                    # this body (RFC 9110 10.1.1, RFC 9112 9.6). Say so; the server then closes
                    # it after this response.
                    out["Connection"] = "close"
                if is_xapi:
                    # The version the handler served (set by lrs.http.common.xapi_version; the
                    # alternate request syntax may carry it in its form), else the header's.
                    served = scope["state"].get("xapi_version") or version
                    out["X-Experience-API-Version"] = served or self.default_version
                if path == "/xapi/statements" and "x-experience-api-consistent-through" not in out:
                    # Communication 2.1.3: "on all responses to Statements Resource requests",
                    # those answered before a handler too (405, the alternate request syntax
                    # refused); the handlers send their store's time
                    out["X-Experience-API-Consistent-Through"] = NO_STORE_THROUGH
            await send(message)

        request_scope = RequestScope()
        structlog.contextvars.bind_contextvars(request_id=request_id, **{REQUEST_SCOPE: request_scope})
        start = time.perf_counter()
        cut_off = False
        try:
            try:
                await target(scope, receive_and_note, send_with_headers)
            except Exception as exc:
                if started:
                    # The response is under way (a streamed export whose read failed): nothing
                    # more can be sent, and the server's own report of the error comes after
                    # this request's context is gone, so it is logged here with the request id.
                    cut_off = True
                    # (an error Starlette has a handler for, raised after the start, arrives wrapped
                    # in a RuntimeError: name the error itself)
                    wrapped = isinstance(exc, RuntimeError) and isinstance(exc.__cause__, LRSError | HTTPException)
                    cause = exc.__cause__ if wrapped else exc
                    log.error("response_cut_off", method=scope["method"], path=path, status=status,
                              error=repr(cause), exc_info=exc)
                    # reported once: the outer error handler, which can send nothing now, stays quiet
                    scope["state"]["response_cut_off"] = True
                    raise
                # Answered here, not by Starlette's outermost handler, so that the 500 has the
                # request id and version header every response carries.
                await internal_error(exc)(scope, receive_and_note, send_with_headers)
        finally:
            elapsed = time.perf_counter() - start
            label = path if path in KNOWN_PATHS else "other"
            method = scope["method"]
            self.metrics.inc("spor_http_requests_total", method=method, path=label, status=str(status))
            self.metrics.observe("spor_http_request_seconds", elapsed, method=method, path=label)
            marked = {"cut_off": True} if cut_off else {}
            log.info("request", method=method, path=path, status=status, ms=round(elapsed * 1000, 2), **marked)
            request_scope.open = False  # (tasks it started, still running, keep the context: lrs.logs)
            structlog.contextvars.clear_contextvars()


def _host_refused(hosts: int) -> ASGIApp:
    said = "no Host header" if hosts == 0 else f"{hosts} Host headers"
    return error_response(400, f"an HTTP/1.1 request needs exactly one Host header; this one has {said}")


def _has_body(headers: Headers) -> bool:
    """Whether a request declares a body: a Content-Length above 0, or a chunked one."""
    length = headers.get("content-length", "").strip()
    declared = ascii_digits(length) and int(length) > 0
    return declared or "chunked" in headers.get("transfer-encoding", "").lower()
