"""The error hierarchy of Spor.

Every error a request can end in is one of these classes; ``lrs.http.errors`` maps each class to
its HTTP status in one table, looked up along the class hierarchy (the way Starlette resolves
exception handlers). Routes raise; they never build error responses by hand.
"""

from __future__ import annotations


class LRSError(Exception):
    """Base of every error that ends a request with an xAPI error response."""

    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(LRSError):
    """The request is malformed or a statement or document breaks a rule of the spec (400)."""

    status = 400


class Unauthorized(LRSError):
    """No credentials, or credentials that do not check out (401)."""

    status = 401


class Forbidden(LRSError):
    """The credential is valid but may not do this (403)."""

    status = 403


class NotFound(LRSError):
    """The resource or the addressed document or statement does not exist (404)."""

    status = 404


class MethodNotAllowed(LRSError):
    """The resource exists but does not support this HTTP method (405)."""

    status = 405


class Conflict(LRSError):
    """The write collides with what is stored, e.g. a statement id reused with other content (409)."""

    status = 409


class PreconditionFailed(LRSError):
    """An If-Match / If-None-Match precondition does not hold (412)."""

    status = 412


class PayloadTooLarge(LRSError):
    """The request body or a part of it is larger than the configured limit (413)."""

    status = 413


class UnsupportedMediaType(LRSError):
    """The request's Content-Type cannot be handled by this resource (415)."""

    status = 415


class PreconditionRequired(LRSError):
    """A write that the spec says must carry a precondition header came without one (428)."""

    status = 428


class TooManyRequests(LRSError):
    """The credential exceeded its request rate (429); carries a Retry-After header."""

    status = 429


class ServiceUnavailable(LRSError):
    """The database cannot be reached or refuses work right now (503)."""

    status = 503
