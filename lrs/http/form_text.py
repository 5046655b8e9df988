"""Query strings and form bodies read strictly as UTF-8 text (xAPI Communication 1.4.s1.b1).

Starlette and ``urllib.parse.parse_qsl`` turn a percent-escape that is not UTF-8 into U+FFFD
and read raw non-ASCII bytes of a query string as Latin-1. Either way two different values
become one: ``stateId=%FF`` and ``stateId=%FE`` named the same document, and an agent
``Bj%F8rn`` (Latin-1 for Bjørn) read the profile of ``Bj%E6rn`` (Bjærn). Here such a value is a
400 that names the parameter, so a value reaches the resources exactly as sent or not at all.

* :func:`form_pairs` splits ``name=value&...`` into decoded pairs, or raises :class:`TextError`.
* :class:`QueryTextMiddleware` refuses a request whose query string is not such text, before
  anything reads it.
"""

from __future__ import annotations

import codecs
import itertools
import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from lrs.http.errors import error_response

__all__ = ["QueryTextMiddleware", "TextError", "form_pairs"]


class TextError(ValueError):
    """A query string or form that is not percent-encoded UTF-8 text; the message names where."""


def form_pairs(raw: bytes, what: str, *, raw_utf8: bool, max_fields: int | None = None) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of ``application/x-www-form-urlencoded`` text, in order.

    ``+`` is a space and ``%XX`` an octet (the WHATWG urlencoded parser, as ``parse_qsl``); the
    octets of each name and value must be UTF-8. ``raw_utf8`` is for a form body: unescaped
    non-ASCII bytes are read as UTF-8, and a ``%`` not followed by two hex digits is refused (a
    body is decoded in one C-level pass, see :func:`_unescape`). Without it (a query string,
    which must be percent-encoded, RFC 3986 §2) unescaped non-ASCII bytes are refused and a
    stray ``%`` is kept as it is, as ``parse_qsl`` keeps it. Empty fields (``a=1&&b=2``) are
    skipped.

    Raises:
        TextError: a name or value is not UTF-8, a raw non-ASCII byte where none may be, a stray
            ``%`` in a form, or more than ``max_fields`` fields. ``what`` ("query parameter",
            "form parameter") starts the message.
    """
    if not raw:
        return []
    # the fields one at a time, never a list of them all: a form of 64 MiB of "&" is no list of
    # 64 million empty fields (and more than max_fields others end the reading)
    fields = [m.group() for m in itertools.islice(_FIELD.finditer(raw), None if max_fields is None else max_fields + 1)]
    if max_fields is not None and len(fields) > max_fields:
        raise TextError(f"the form has more than {max_fields} {what}s; at most {max_fields} are accepted")
    if not raw_utf8 and not raw.isascii():
        raise TextError(f"a {what} holds a byte that is not ASCII; percent-encode its UTF-8 (RFC 3986 §2.5)")
    if raw.isascii() and b"%" not in raw:
        # nothing to unescape but "+": plain ASCII is UTF-8 already
        return [_plain(field.decode("ascii")) for field in fields]
    pairs: list[tuple[str, str]] = []
    for field in fields:
        name_raw, _, value_raw = field.partition(b"=")
        name = _text(name_raw, what, None, raw_utf8)
        pairs.append((name, _text(value_raw, what, name, raw_utf8)))
    return pairs


def _plain(field: str) -> tuple[str, str]:
    name, _, value = field.partition("=")
    return name.replace("+", " "), value.replace("+", " ")


def _text(raw: bytes, what: str, name: str | None, strict_escapes: bool) -> str:
    where = f"{what} {name[:100]!r}" if name is not None else f"a {what} name"
    raw = raw.replace(b"+", b" ")
    if not strict_escapes:
        octets = unquote_to_bytes(raw)  # (a query string: at most the head's 64 KiB)
    else:
        try:
            octets = _unescape(raw)
        except _StrayPercent as stray:
            raise TextError(f"{where} has a '%' not followed by two hex digits (at octet {stray.offset}); "
                            "send a % as %25") from None
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = octets[exc.start:exc.start + 1].hex().upper()
        raise TextError(
            f"{where} is not UTF-8 once percent-decoded (byte 0x{bad} at octet {exc.start}); "
            "xAPI strings are UTF-8 (Communication 1.4)"
        ) from None


_STRAY_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_FIELD = re.compile(rb"[^&]+")
_NON_ASCII_ESCAPE = re.compile(rb"%[89A-Fa-f][0-9A-Fa-f]")


class _StrayPercent(ValueError):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


def _unescape(raw: bytes) -> bytes:
    """``%XX`` escapes decoded in C; a ``%`` not followed by two hex digits raises _StrayPercent
    with its offset (the escape codec refuses the ``\\x`` it becomes; a scan of the whole for
    one took 0.6 s of 60 MB in one call, so only a piece that fails is scanned).

    ``unquote_to_bytes`` splits at every ``%`` into a list of small bytes objects: a 64 MiB form
    of ``%41%41...`` (the body limit) took 10 s and 5 GB, before the request was authenticated,
    since the credential is in the form. As ``\\xXX`` escapes (backslashes doubled first, so
    nothing else is an escape) the escape codec decodes it in about 1 s and three times its size.
    A large value is decoded a MiB at a time (never cutting an escape): each C call holds the
    interpreter ~20 ms, so the event loop gets its turns between them while a worker thread
    decodes (``lrs.http.alternate`` decodes a large form in one).
    """
    if b"%" not in raw:
        return raw
    out: list[bytes] = []
    start = 0
    while start < len(raw):
        end = min(start + _UNESCAPE_CHUNK, len(raw))
        cut = raw.rfind(b"%", end - 2, end)  # an escape begun in the last two bytes goes whole
        if end < len(raw) and cut > start:
            end = cut
        piece = raw[start:end]
        try:
            out.append(_escape_decode(piece))
        except ValueError:
            stray = _STRAY_PERCENT.search(piece)
            raise _StrayPercent(start + (stray.start() if stray is not None else 0)) from None
        start = end
    return b"".join(out)


_UNESCAPE_CHUNK = 1 << 20


def _escape_decode(raw: bytes) -> bytes:
    return codecs.escape_decode(raw.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]  # type: ignore[attr-defined]


def _utf8_once_decoded(raw: bytes) -> bool:
    """Whether a query string is ASCII and UTF-8 once percent-decoded: one decode of the whole.
    Fields are split at ASCII bytes, which no UTF-8 sequence holds, so the whole is UTF-8 if
    and only if every name and value is; only a string that is not is split to say where."""
    if not raw.isascii():
        return False
    if _NON_ASCII_ESCAPE.search(raw) is None:
        return True  # every escape an ASCII octet: nothing to decode
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class QueryTextMiddleware:
    """Refuses (400) a request whose query string is not percent-encoded UTF-8 text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw: bytes = scope.get("query_string", b"")
            if raw and not _utf8_once_decoded(raw):
                try:
                    form_pairs(raw, "query parameter", raw_utf8=False)
                except TextError as exc:
                    await error_response(400, str(exc))(scope, receive, send)
                    return
        await self.app(scope, receive, send)
