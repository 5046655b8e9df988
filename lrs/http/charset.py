"""JSON bodies in the character set their Content-Type names.

JSON exchanged between systems is UTF-8 (RFC 8259 section 8.1), and that is what Spor reads when
the Content-Type names no charset. A client that labels its JSON otherwise
(``application/json; charset=utf-16``, from some Windows tools) is read as it says, rather than
refused as "not valid JSON"; a label Python has no text codec for is a 400 that names it. A UTF-8
byte order mark, which RFC 8259 lets a parser ignore, is dropped.
"""

from __future__ import annotations

import re

from lrs.errors import BadRequest

_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]*)\"?", re.IGNORECASE)
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_BOM = b"\xef\xbb\xbf"


def as_utf8(body: bytes, content_type: str, what: str) -> bytes:
    """``body`` as UTF-8, decoded from the charset ``content_type`` names (none: UTF-8 already)."""
    found = _CHARSET.search(content_type)
    charset = found.group(1).lower() if found else "utf-8"
    if charset in _UTF8:
        return body[len(_BOM):] if body.startswith(_BOM) else body
    try:
        text = body.decode(charset)
    except LookupError:
        raise BadRequest(f"{what}: charset {charset!r} is not a text encoding Spor knows; send UTF-8") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not {charset} text: {exc.reason} at byte {exc.start}") from None
    return text.removeprefix("\ufeff").encode("utf-8", "surrogatepass")
