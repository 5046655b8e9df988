"""JSON bodies in the character set their Content-Type names.

JSON exchanged between systems is UTF-8 (RFC 8259 section 8.1), and that is what Spor reads when
the Content-Type names no charset. A client that labels its JSON otherwise
(``application/json; charset=utf-16``, from some Windows tools) is read as it says, rather than
refused as "not valid JSON", when the label is one of the Unicode and Western European charsets
below; any other label is a 400 that names it (Python's own codec names, such as
``unicode_escape``, are no HTTP charsets, and some would rewrite the JSON's escapes). UTF-16 and
UTF-32 without a byte order mark are big-endian (RFC 2781 4.3). A UTF-8 byte order mark, which
RFC 8259 lets a parser ignore, is dropped.
"""

from __future__ import annotations

import codecs
import re

from lrs.errors import BadRequest

# Content-Type parameters: name=token or name="quoted string" (RFC 9110 5.6.6)
_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_UTF8 = frozenset({"utf-8", "ascii"})
# The charsets read besides UTF-8, by Python's name for them; the byte order when none is marked.
_OTHERS = {"utf-16": "utf-16-be", "utf-16-be": "utf-16-be", "utf-16-le": "utf-16-le",
           "utf-32": "utf-32-be", "utf-32-be": "utf-32-be", "utf-32-le": "utf-32-le",
           "iso8859-1": "iso8859-1", "iso8859-15": "iso8859-15", "cp1252": "cp1252"}
_BOMS = ((codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF32_LE, "utf-32-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF16_LE, "utf-16-le"))
_BOM = codecs.BOM_UTF8


def charset_of(content_type: str) -> str | None:
    """The charset parameter of a Content-Type, lower-cased (None when it names none)."""
    for name, value in _PARAM.findall(content_type):
        if name.lower() == "charset":
            return value.strip('"').lower()
    return None


_SINGLE_BYTE = frozenset({"iso8859-1", "iso8859-15", "cp1252"})


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def as_utf8(body: bytes, content_type: str, what: str, *, utf8_first: bool = False) -> bytes:
    """``body`` as UTF-8, decoded from the charset ``content_type`` names (none: UTF-8 already).
    ``utf8_first``: a body labelled with a single-byte charset that is valid UTF-8 is read as
    UTF-8 (a label set by mistake: text in ISO-8859-1 with letters beyond ASCII is all but never
    valid UTF-8, while UTF-8 read as ISO-8859-1 turns every ø into Ã¸)."""
    label = charset_of(content_type) or "utf-8"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        name = ""
    if utf8_first and name in _SINGLE_BYTE and _is_utf8(body):
        name = "utf-8"
    if name in _UTF8:
        return body.removeprefix(_BOM)
    if name not in _OTHERS:
        raise BadRequest(f"{what}: charset {label!r} is not one Spor reads; send UTF-8")
    encoding = _OTHERS[name]
    if name in ("utf-16", "utf-32"):
        for bom, marked in _BOMS:
            if body.startswith(bom) and marked.startswith(name):
                encoding, body = marked, body[len(bom):]
                break
    try:
        text = body.decode(encoding)
    except UnicodeError as exc:
        raise BadRequest(f"{what} is not {label} text: {exc}") from None
    return text.removeprefix("\ufeff").encode()
