"""Helpers every resource module shares: the caller, the version, bodies within limits,
parameter parsing."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

import orjson
from starlette.requests import Request

from lrs.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from lrs.http import versions
from lrs.ops import languages
from lrs.ops.principal import Principal

# The Consistent-Through of a Statements response that names no store (the credentials were
# refused, or the request never reached a handler): true of every store, since nothing was
# stored before the epoch.
NO_STORE_THROUGH = "1970-01-01T00:00:00.000Z"


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is a number in ASCII digits: str.isdigit alone also takes ² (which int()
    refuses) and ٣ (which it reads)."""
    return text.isascii() and text.isdigit()


# What ascii_number gives for a number of more significant digits than this: above every bound
# a parameter has (and int() refuses more than 4,300 digits: a 500 where it was let through).
_LONGEST = 18


def ascii_number(text: str) -> int | None:
    """``text`` as a whole number if it is one in ASCII digits, else None; a number of more than
    18 significant digits as 10**18, which is past every bound of a parameter."""
    if not ascii_digits(text):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= _LONGEST else 10**_LONGEST


def xapi_version(request: Request) -> str:
    """The negotiated version, or a 400 when the header is missing or unsupported."""
    state = request.scope.setdefault("state", {})
    v = state.get("xapi_version")
    if v is None:
        v = state["xapi_version"] = versions.require(single_header(request, "X-Experience-API-Version"))
    return str(v)


def single_header(request: Request, name: str) -> str | None:
    """The value of a header that is sent once (RFC 9110 5.3: a field not defined as a list),
    None when absent; given twice, a 400 naming it. Which of two was meant cannot be known, and
    a proxy joining them into one line would change the answer (an HTTP audit: the first won)."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once")
    return values[0] if values else None


def list_header(request: Request, name: str) -> str | None:
    """The value of a header defined as a comma-separated list (If-Match, If-None-Match,
    Accept-Language, Content-Encoding), its lines joined as one (RFC 9110 5.3: sent on several
    lines it means the same; the first line alone was read, so an `If-None-Match: *` on a second
    line was not heard and a document was overwritten; a documents audit). None when absent."""
    values = request.headers.getlist(name)
    return ", ".join(values) if values else None


async def principal(request: Request) -> Principal:
    """Authenticate the request (401 when that fails)."""
    request.state.authentication_tried = True
    p: Principal = await request.app.state.authenticator.authenticate(
        single_header(request, "Authorization"), request.client.host if request.client else None)
    # set first: a 429 names the store's Consistent-Through too
    request.state.principal = p
    request.app.state.rate_limiter.check(p.credential_id if p.credential_id is not None else p.authority_key)
    return p


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing with 413 as soon as it grows past ``limit`` bytes, and with 415 a
    body with a content coding (RFC 9110 8.4.1): Spor would otherwise read gzip as the content."""
    codings = [c.strip().lower() for c in (list_header(request, "content-encoding") or "").split(",")]
    coded = ", ".join(c for c in codings if c not in ("", "identity"))
    if coded:
        raise UnsupportedMediaType(f"Content-Encoding {coded!r} is not supported; send the body unencoded")
    declared = request.headers.get("content-length")
    if declared and ascii_digits(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def only_params(request: Request, allowed: Collection[str], what: str | None = None) -> None:
    """400 naming the query parameters this request may not carry (Communication 3.2: unknown
    parameters, and known ones in the wrong case, are refused), and one given twice: every xAPI
    parameter takes one value, and which of two was meant is not for the LRS to guess."""
    unknown = set(request.query_params) - set(allowed)
    if unknown:
        where = what or f"{request.method} {request.url.path}"
        shown = (name if name.strip() else repr(name) for name in sorted(unknown))  # ('' or ' ' visible)
        raise BadRequest(f"unknown parameter(s) for {where}: {', '.join(shown)}")
    items = request.query_params.multi_items()
    if len(items) != len(request.query_params):
        repeated = sorted({name for name in request.query_params if len(request.query_params.getlist(name)) > 1})
        raise BadRequest(f"parameter {', '.join(repeated)} given more than once")
    refuse_nul(items)


def refuse_nul(params: Iterable[tuple[str, str]]) -> None:
    """400 naming a parameter whose name or value holds a NUL character: PostgreSQL's text
    refuses it, so it would otherwise end in a failed query."""
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            raise BadRequest(f"{name}: contains a NUL character")


# The most JSON values (elements and member values, containers included) one body may hold.
# Parsed, every value is a Python object: 60 MB of "[],[],..." made 20 million of them, 1.8 GB
# and 6 s of the event loop (a memory audit), where 60 MB of statements is ~40,000 of ~80
# values each. A million values is ~85 MB parsed; a batch of the most statements a request may
# carry (5,000) may hold 200 values a statement.
MAX_JSON_VALUES = 1_000_000
# Bodies this small cannot hold that many values (each takes two octets at least).
_COUNT_VALUES_FROM = 1024 * 1024
# A JSON string whose escapes are taken out (its quotes included): what the count of values
# leaves out. Unclosed, it takes the rest of the body. One match a string, not a step an escape:
# 60 MB of `\\,` in one string held the event loop 1.1 s when escapes were matched one by one,
# 0.3 s now (an audit); backtracking made an unclosed one quadratic before that (a review).
_JSON_STRING = re.compile(rb'"[^"]*"?')


def json_values_at_most(body: bytes) -> int:
    """An upper bound on the number of JSON values in ``body`` (exact up to empty containers):
    every value but the first follows a `,` or opens a container's first element, so one more
    than the `,` `[` `{` outside strings. C-speed counts first; strings are taken out only when
    those counts, which include the strings' contents, are over MAX_JSON_VALUES."""
    quick = _values_by_punctuation(body)
    if quick <= MAX_JSON_VALUES:
        return quick
    unescaped = _without_escapes(body)
    # each string is a value or an object's key, and every key has a value: more than twice the
    # limit in strings is over it (and saves taking out millions of them one by one). Counted
    # without escapes, every quote is a string's own (a review: `\\\\"` fooled a count of
    # escaped quotes into ten million matches, 1.7 s)
    strings = unescaped.count(b'"') // 2
    if strings > 2 * MAX_JSON_VALUES:
        return strings // 2
    return _values_outside_strings(unescaped)


def json_values(body: bytes) -> int:
    """The number of JSON values in ``body``, each empty container counted twice: one more
    than the `,` `[` `{` outside strings."""
    return _values_outside_strings(_without_escapes(body))


def _values_outside_strings(unescaped: bytes) -> int:
    """:func:`json_values` of a body whose escapes are taken out (:func:`_without_escapes`)."""
    return _values_by_punctuation(_JSON_STRING.sub(b"", unescaped))


def _without_escapes(body: bytes) -> bytes:
    """``body`` with its strings' escapes taken out. Inside a string a backslash and the octet
    after it are one escape, read left to right: taking out every `\\\\` and then every `\\"`
    leaves no quote that is not a string's own, whatever the strings hold."""
    return body.replace(b"\\\\", b"").replace(b'\\"', b"")


def _values_by_punctuation(text: bytes) -> int:
    return 1 + text.count(b",") + text.count(b"[") + text.count(b"{")


def parse_json(body: bytes, what: str = "request body") -> Any:
    """orjson-parse, or a 400 saying where parsing failed; a 413 for more than MAX_JSON_VALUES
    values."""
    if not body:
        raise BadRequest(f"{what} is empty; expected JSON")
    if len(body) >= _COUNT_VALUES_FROM and (n := json_values_at_most(body)) > MAX_JSON_VALUES:
        raise PayloadTooLarge(f"{what} holds about {n:,} JSON values, more than the {MAX_JSON_VALUES:,} one request "
                              "may carry: split a batch into smaller ones (a single statement cannot hold that many)")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in str(exc):
            # orjson says "surrogates not allowed ... char 0" for any bad byte: say which and where
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as bad:
                byte = body[bad.start:bad.start + 1].hex().upper()
                raise BadRequest(f"{what} is not valid JSON: not UTF-8 (byte 0x{byte} at octet {bad.start}, "
                                 f"{bad.reason}); send UTF-8, or name the charset in the Content-Type") from None
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None


def parse_bool(params: Any, name: str) -> bool:
    """A boolean query parameter: 'true' or 'false' (as in JSON), default false."""
    raw = params.get(name)
    if raw is None:
        return False
    if raw.lower() == "true":
        return True
    if raw.lower() == "false":
        return False
    raise BadRequest(f"{name}: must be true or false, got {raw!r}")


def media_type(request: Request) -> str:
    """The Content-Type without parameters, lower-cased ('' when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def accept_languages(request: Request) -> languages.Ranges:
    """The Accept-Language ranges and qualities (lrs/ops/languages.py applies them)."""
    return languages.parse_accept_language(list_header(request, "accept-language") or "")
