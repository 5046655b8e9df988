"""The one table that maps Spor's errors to HTTP responses.

Starlette resolves exception handlers along the exception's MRO, so the LRSError handler serves
every subclass; the status comes from the class itself (``lrs.errors``).
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from lrs.errors import LRSError
from lrs.logs import log


def error_body(status: int, message: str) -> bytes:
    """The JSON body of every error Spor answers: ``{"error": {"status": 400, "message": "..."}}``."""
    return orjson.dumps({"error": {"status": status, "message": message}})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error response with :func:`error_body`."""
    return Response(error_body(status, message), status_code=status, headers=headers, media_type="application/json")


async def lrs_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LRSError)
    if exc.status >= 500:
        log.warning("request_failed", status=exc.status, error=exc.message)
    return error_response(exc.status, exc.message, exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404:
        message = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message, dict(exc.headers or {}))


# The status a request the client gave up on is logged and counted with (nginx's "client closed
# request"); the response is never sent, there is no one to send it to.
CLIENT_GONE = 499


def internal_error(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    """The 500 of an unexpected exception (logged with its traceback); its text stays in the log.
    A client that hung up before its body arrived is not an error of the server: noted, and
    answered (to no one) with CLIENT_GONE. Nothing of such a request is applied."""
    if isinstance(exc, ClientDisconnect):
        log.info("client_disconnected")
        return error_response(CLIENT_GONE, "the client closed the connection before its request was complete")
    log.exception("unhandled_error", error=repr(exc))
    return error_response(500, "internal error; the request was not applied", headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    if request.scope.get("state", {}).get("response_cut_off"):
        # logged with its request id as response_cut_off (lrs/http/middleware.py); this 500
        # cannot be sent, the response having started
        return error_response(500, "internal error; the request was not applied")
    return internal_error(exc)


HANDLERS = {LRSError: lrs_error, HTTPException: http_error, Exception: unexpected_error}
