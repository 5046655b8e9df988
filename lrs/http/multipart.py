"""xAPI attachments carried in ``multipart/mixed`` bodies.

Three pure functions, no HTTP framework types and no database:

* :func:`parse_statement_multipart` splits a PUT/POST ``/statements`` body into the JSON of the
  first part and the attachment parts that follow it (xAPI Communication 1.5.2, RFC 2046 §5.1).
* :func:`check_attachments` applies the matching rules between the Attachment Objects of the
  parsed statements and the received parts (Communication 1.5.2 "LRS Requirements").
* :func:`build_multipart_mixed` builds the response of ``GET /statements?attachments=true``
  (Communication 2.1.3, "attachments" parameter).

Section numbers are those of the 1.0.3 spec (``1.5.2.s2.b2.b3`` and so on); the 2.0.0 text of
these sections is the same, only unnumbered.

The parser works with ``bytes.find`` over the body, never a regular expression over it, so a
multi-megabyte attachment costs a few C-level scans and one copy of each part.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from lrs.errors import BadRequest, PayloadTooLarge
from lrs.ops.charset import as_utf8
from lrs.ops.statements import statement_attachments
from lrs.settings import Settings

__all__ = [
    "AttachmentPart",
    "build_multipart_mixed",
    "check_attachments",
    "declared_content_types",
    "declared_hashes",
    "hash_algorithm_for",
    "parse_statement_multipart",
]

_CRLF = b"\r\n"
_LF = b"\n"
# RFC 2046 §5.1.1: a part without a Content-Type header is text/plain in US-ASCII.
_DEFAULT_PART_CONTENT_TYPE = "text/plain; charset=us-ascii"

# xAPI Communication 1.5.2.s4.b4: providers SHOULD use SHA-256, SHA-384 or SHA-512; "sha2" may be
# any SHA-2 digest, so SHA-224 is accepted as well. The hex length tells which one was used.
_HASH_BY_HEX_LENGTH: dict[int, str] = {
    56: "sha224",
    64: "sha256",
    96: "sha384",
    128: "sha512",
}
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """One attachment part of a ``multipart/mixed`` statement request or response.

    ``sha2`` is the value of the part's ``X-Experience-API-Hash`` header, lower-cased (a hex
    digest is case-insensitive); ``content`` is the raw octets, never transfer-encoded
    (Communication 1.5.2.s2.b2.b4).
    """

    sha2: str
    content_type: str
    content: bytes


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def parts_allowed(max_batch_statements: int) -> int:
    """The most parts one request may have: the statements, then two attachments for each
    statement of the largest batch (SPOR_MAX_BATCH_STATEMENTS; 10,001 by default). Each part
    costs ~10 µs of Python on the event loop: 60 MB of 458,000 empty parts held it 4.4 s (a
    memory audit)."""
    return 1 + 2 * max_batch_statements


MAX_PARTS = parts_allowed(Settings.max_batch_statements)  # (with the default setting)


def parse_statement_multipart(
    body: bytes, content_type: str, *, max_part_bytes: int, max_parts: int = MAX_PARTS
) -> tuple[bytes, list[AttachmentPart]]:
    """Split a ``multipart/mixed`` statement request into its JSON and its attachment parts.

    Returns the bytes of the first part as UTF-8 (the statement or batch, still to be parsed as
    JSON by the caller; decoded from the charset its Content-Type names, lrs.ops.charset) and
    the remaining parts in body order. The rules enforced:

    * the Content-Type is ``multipart/mixed`` with a non-empty ``boundary`` parameter
      (Communication 1.5.2.s2.b2, RFC 2046 §5.1.1);
    * the body contains at least one part and ends with the close delimiter ``--boundary--``;
      anything before the first delimiter (the preamble) or after the close delimiter
      (the epilogue) is ignored, as RFC 2046 says;
    * the first part's Content-Type is ``application/json`` (1.5.2.s2.b2.b1 and b6);
    * every later part has an ``X-Experience-API-Hash`` header (1.5.2.s2.b2.b3) and
      ``Content-Transfer-Encoding: binary`` (1.5.2.s2.b2.b4);
    * no part's content is larger than ``max_part_bytes`` (1.5.2.s3.b7 lets the LRS refuse
      what is larger than it is configured to allow), and there are at most ``max_parts``.

    Line breaks are CRLF as RFC 2046 requires; a body whose first delimiter line ends in a bare
    LF is read with LF line breaks throughout, since some clients build bodies that way.

    Raises:
        BadRequest: the content type or body is not a well-formed xAPI multipart request.
        PayloadTooLarge: a part is larger than ``max_part_bytes``, or there are too many parts.
    """
    boundary = _boundary_from_content_type(content_type)
    dash_boundary = b"--" + boundary

    # RFC 2046 §5.1.1: the first delimiter may open the body, or follow a preamble and a line
    # break. The delimiter proper is "<CRLF>--boundary"; only the very first one may lack the
    # leading line break.
    if body.startswith(dash_boundary):
        line_start = 0
    else:
        found = body.find(b"\n" + dash_boundary)
        if found < 0:
            raise BadRequest("multipart body does not contain the boundary given in the Content-Type header")
        line_start = found + 1

    pos = line_start + len(dash_boundary)
    eol = _delimiter_line_end(body, pos)
    if eol is None:
        raise BadRequest("multipart body: the first boundary line is malformed")
    if eol == b"":  # "--boundary--" straight away: a multipart body with no part at all
        raise BadRequest("multipart body has no parts; the first part must hold the statements")
    delimiter = eol + dash_boundary
    pos = _skip_delimiter_line(body, pos, eol)

    parts: list[tuple[int, dict[str, str], bytes]] = []
    while True:
        number = len(parts) + 1
        if number > max_parts:
            raise PayloadTooLarge(f"multipart body has more than {max_parts:,} parts (the statements and at most "
                                  f"{max_parts - 1:,} attachments a request); send fewer statements a request")
        next_delim = body.find(delimiter, pos)
        if next_delim < 0:
            raise BadRequest(f"multipart body is not terminated by the closing boundary (part {number} never ends)")
        headers, content_start = _split_part_headers(body, pos, next_delim, eol, number)
        size = max(0, next_delim - content_start)
        if eol == _CRLF and _bare_lf_delimiter(body, content_start, next_delim, dash_boundary):
            # the body's first delimiter line ends in CRLF, so every delimiter is CRLF--boundary;
            # one after a bare LF is not a delimiter, and the part would swallow what follows it
            raise BadRequest(
                f"multipart part {number} contains the boundary after a bare LF line break; the first "
                "boundary line ends in CRLF, so every boundary line must (RFC 2046 §5.1.1)"
            )
        if size > max_part_bytes:
            raise PayloadTooLarge(
                f"multipart part {number} is {size} bytes, larger than the limit of {max_part_bytes} bytes"
            )
        parts.append((number, headers, body[content_start:next_delim] if size else b""))

        after = next_delim + len(delimiter)
        line_end = _delimiter_line_end(body, after)
        if line_end is None:
            # The boundary string appeared as a prefix of something else: RFC 2046 §5.1.1
            # forbids it inside the encapsulated parts, so the body is malformed.
            raise BadRequest(f"multipart body: malformed boundary line after part {number}")
        if line_end == b"":
            break  # the close delimiter "--boundary--"; the epilogue is ignored
        pos = _skip_delimiter_line(body, after, line_end)

    first_number, first_headers, json_body = parts[0]
    first_type = first_headers.get("content-type")
    if first_type is None or _media_type(first_type) != "application/json":
        # Communication 1.5.2.s2.b2.b1: the first part holds the statements, as application/json.
        shown = first_type if first_type is not None else "none (text/plain by default)"
        raise BadRequest(
            f"multipart part {first_number} must have Content-Type application/json "
            f"(it holds the statements), got {shown}"
        )

    json_body = as_utf8(json_body, first_type, f"multipart part {first_number}")
    attachments: list[AttachmentPart] = []
    for number, headers, content in parts[1:]:
        sha2 = headers.get("x-experience-api-hash", "").strip()
        if not sha2:
            raise BadRequest(
                f"multipart part {number} has no X-Experience-API-Hash header; every part after "
                "the statements must carry the sha2 of its attachment"
            )
        encoding = headers.get("content-transfer-encoding")
        if encoding is None:
            raise BadRequest(
                f"multipart part {number} (X-Experience-API-Hash {sha2}) has no "
                "Content-Transfer-Encoding header; xAPI requires Content-Transfer-Encoding: binary"
            )
        if encoding.strip().lower() != "binary":
            raise BadRequest(
                f"multipart part {number} (X-Experience-API-Hash {sha2}) has "
                f"Content-Transfer-Encoding {encoding.strip()}; xAPI requires binary"
            )
        attachments.append(
            AttachmentPart(
                sha2=sha2.lower(),
                content_type=headers.get("content-type", _DEFAULT_PART_CONTENT_TYPE).strip(),
                content=content,
            )
        )
    return json_body, attachments


def _bare_lf_delimiter(body: bytes, start: int, end: int, dash_boundary: bytes) -> bool:
    """Whether ``body[start:end]`` holds ``LF--boundary`` ending a line or closing the body,
    i.e. a delimiter line written with LF line breaks inside a CRLF body."""
    needle = _LF + dash_boundary
    found = body.find(needle, start, end)
    while found >= 0:
        after = found + len(needle)
        if _delimiter_line_end(body, after) is not None:
            return True
        found = body.find(needle, after, end)
    return False


def _boundary_from_content_type(content_type: str) -> bytes:
    """Return the boundary of a ``multipart/mixed`` Content-Type value, or raise BadRequest."""
    media_type, params = _parse_content_type(content_type)
    if media_type != "multipart/mixed":
        raise BadRequest(f"expected a multipart/mixed Content-Type, got {media_type or 'none'}")
    boundary = params.get("boundary")
    if not boundary:
        raise BadRequest("multipart/mixed Content-Type has no boundary parameter")
    if "\r" in boundary or "\n" in boundary:
        raise BadRequest("multipart/mixed boundary must not contain line breaks")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise BadRequest("multipart/mixed boundary must be ASCII") from None


def _parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Parse ``type/subtype; name=value; name="quoted; value"`` (RFC 2045 §5.1).

    A quoted boundary may contain ``;``, ``=`` and other tspecials (the spec's own example uses
    ``boundary="abcABC0123'()+_,-./:=?"``), so the parameters are scanned, not split.
    """
    media, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1  # closing quote
            val = "".join(chars)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            val = rest[i:end].strip()
            i = end
        if name and name not in params:
            params[name] = val
    return media.strip().lower(), params


def _media_type(value: str) -> str:
    """The ``type/subtype`` of a Content-Type value, lower-cased, parameters dropped."""
    return value.split(";", 1)[0].strip().lower()


def _delimiter_line_end(body: bytes, pos: int) -> bytes | None:
    """Classify what follows ``--boundary`` at ``pos``.

    Returns ``b""`` for a close delimiter (``--``), the line break (CRLF or LF) that ends an
    ordinary delimiter line after optional transport padding (RFC 2046 §5.1.1 allows linear
    white space there), or ``None`` if the line is malformed.
    """
    if body.startswith(b"--", pos):
        return b""
    n = len(body)
    while pos < n and body[pos] in b" \t":
        pos += 1
    if body.startswith(_CRLF, pos):
        return _CRLF
    if body.startswith(_LF, pos):
        return _LF
    return None


def _skip_delimiter_line(body: bytes, pos: int, eol: bytes) -> int:
    """Return the offset just after the line break ending the delimiter line at ``pos``."""
    return body.index(eol, pos) + len(eol)


# Any C0 control but the horizontal tab, and DEL.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _split_part_headers(
    body: bytes, start: int, next_delim: int, eol: bytes, number: int
) -> tuple[dict[str, str], int]:
    """Parse the header block of the part starting at ``start``.

    Returns the headers (names lower-cased) and the offset where the content begins. The
    blank line that ends the headers may share its last line break with the next delimiter
    (a part with empty content), hence the search window reaching ``len(eol)`` past it.
    """
    if body.startswith(eol, start):  # no headers at all: the blank line comes first
        return {}, start + len(eol)
    blank = body.find(eol + eol, start, next_delim + len(eol))
    if blank < 0:
        raise BadRequest(f"multipart part {number} has no blank line after its headers")
    block = body[start:blank]
    headers: dict[str, str] = {}
    last: str | None = None
    for raw_line in block.split(eol):
        line = raw_line.decode("latin-1")
        control = _HEADER_CONTROL.search(line)
        if control is not None:
            # RFC 5322 §2.2: a header field holds no control character but the tab of folding.
            # A bare CR or LF inside a line would be stored with the part's Content-Type and
            # break (or forge) the headers of every attachments=true response carrying it.
            named = "a NUL character" if control.group() == "\x00" else "a control character"
            raise BadRequest(
                f"multipart part {number} has {named} (U+{ord(control.group()):04X}) in a header line: {line[:80]!r}"
            )
        if line[:1] in (" ", "\t") and last is not None:
            # RFC 5322 §2.2.3 folding: a continuation line belongs to the previous header.
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            raise BadRequest(f"multipart part {number} has a malformed header line: {line[:80]!r}")
        headers[name] = value.strip()
        last = name
    return headers, blank + 2 * len(eol)


# --------------------------------------------------------------------------------------------
# Matching statements and parts
# --------------------------------------------------------------------------------------------


def hash_algorithm_for(sha2: str) -> str | None:
    """Name of the hashlib algorithm a hex ``sha2`` value was made with, or None if unknown.

    SHA-2 digests differ in length (224/256/384/512 bits), so the hex length decides.
    """
    if len(sha2) not in _HASH_BY_HEX_LENGTH or not set(sha2.lower()) <= _HEX_DIGITS:
        return None
    return _HASH_BY_HEX_LENGTH[len(sha2)]


def check_attachments(statements: list[dict[str, Any]], parts: list[AttachmentPart]) -> dict[str, AttachmentPart]:
    """Match the statements' Attachment Objects with the received parts.

    Works for ``application/json`` requests too (pass no parts): then every attachment must
    have a ``fileUrl`` (Communication 1.5.2.s2.b1). Rules, each failure a BadRequest naming the
    sha2:

    * each part's content really hashes to its ``X-Experience-API-Hash``, with the SHA-2
      variant given by the hex length; the LRS matches data to attachments only by this hash
      (1.5.2.s1.b4);
    * each part is referenced by the ``sha2`` of some attachment (1.5.2.s2.b2.b2: every part
      after the first is the raw data of an attachment; conformance test XAPI-00128 sends an
      excess part and expects 400);
    * each attachment without a ``fileUrl`` has a part with its ``sha2`` (1.5.2.s3.b5).

    Several parts with one hash are the same data (the hash was checked), so one is kept
    (1.5.2.s2.b2.b5 asks senders for one copy anyway). The ``length`` and ``contentType``
    properties are not compared with the part: the spec makes no LRS rule of it and the
    conformance suite itself sends attachments whose ``length`` differs from the data.

    Returns the parts by lower-cased sha2.
    """
    by_sha2: dict[str, AttachmentPart] = {}
    for part in parts:
        sha2 = part.sha2.strip().lower()
        algorithm = hash_algorithm_for(sha2)
        if algorithm is None:
            raise BadRequest(
                f"X-Experience-API-Hash {part.sha2} is not a hex SHA-224, SHA-256, SHA-384 or SHA-512 digest"
            )
        # every part is checked, a second copy of a hash too: whether a request is refused
        # must not depend on which copy comes first
        actual = hashlib.new(algorithm, part.content).hexdigest()
        if actual != sha2:
            raise BadRequest(
                f"the data of the part with X-Experience-API-Hash {part.sha2} does not match "
                f"that hash (its {algorithm.upper()} is {actual})"
            )
        by_sha2.setdefault(sha2, part)

    declared: set[str] = set()
    needing_data: list[str] = []
    for attachment in statement_attachments(statements):
        declared_sha2 = attachment.get("sha2")
        if not isinstance(declared_sha2, str):
            continue  # the statement schema reports a missing or non-string sha2
        declared.add(declared_sha2.lower())
        if attachment.get("fileUrl") is None:
            needing_data.append(declared_sha2)

    for sha2, part in by_sha2.items():
        if sha2 not in declared:
            raise BadRequest(
                f"the part with X-Experience-API-Hash {part.sha2} is not referenced by the sha2 "
                "of any attachment in the statements"
            )
    for sha2 in needing_data:
        if sha2.lower() not in by_sha2:
            raise BadRequest(
                f"attachment with sha2 {sha2} has no fileUrl and no multipart part with that X-Experience-API-Hash"
            )
    return by_sha2


# --------------------------------------------------------------------------------------------
# Building responses
# --------------------------------------------------------------------------------------------


def declared_content_types(statements: list[Any]) -> dict[str, str]:
    """The ``contentType`` the statements' Attachment Objects declare, by lower-cased sha2 (the
    first one wins where statements share data). A response part carries it: where a part's
    Content-Type and its attachment's ``contentType`` are both given they MUST match
    (Communication 1.5.2.s2.b7), and the data may have arrived with another one or none (then
    text/plain, RFC 2046). A value that is not printable ASCII (a line break, a control or a
    non-ASCII character, which the schema's "; parameters" let through) is left out: a header
    holds it badly or not at all."""
    declared: dict[str, str] = {}
    for attachment in statement_attachments(statements):
        sha2, content_type = attachment.get("sha2"), attachment.get("contentType")
        if isinstance(sha2, str) and isinstance(content_type, str):
            value = content_type.strip()
            if _PRINTABLE_ASCII.fullmatch(value):
                declared.setdefault(sha2.lower(), value)
    return declared


def declared_hashes(statements: list[Any]) -> dict[str, str]:
    """The ``sha2`` of the statements' Attachment Objects as they spell it, by lower-cased sha2
    (the first spelling wins). A response part's X-Experience-API-Hash repeats it, so a client
    that matches the two as strings finds its data whatever case it wrote the digest in."""
    spelled: dict[str, str] = {}
    for attachment in statement_attachments(statements):
        sha2 = attachment.get("sha2")
        if isinstance(sha2, str) and hash_algorithm_for(sha2) is not None:
            spelled.setdefault(sha2.lower(), sha2)
    return spelled


_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_OPAQUE_CONTENT_TYPE = "application/octet-stream"


def build_multipart_mixed(json_body: bytes, parts: list[AttachmentPart]) -> tuple[bytes, str]:
    """Build a ``multipart/mixed`` body: the JSON first, then each attachment's raw data.

    This is the transmission format of Communication 1.5.2 that ``GET /statements`` must use
    when ``attachments=true`` (2.1.3). The first part is ``application/json``; each attachment
    part has ``Content-Type``, ``Content-Transfer-Encoding: binary`` and
    ``X-Experience-API-Hash`` (1.5.2.s2.b2.b3, b4, b6). An attachment appears once even when
    several statements use it (1.5.2.s2.b2.b5). The boundary is random and is re-drawn in the
    unlikely case that it occurs in the data (RFC 2046 §5.1.1).

    A content type that is not printable ASCII (stored before the parser refused control
    characters in part headers, or non-ASCII text) is sent as ``application/octet-stream``:
    a header cannot hold it, and one stored part must not break every response carrying it.

    Returns the body and the Content-Type header value, ``multipart/mixed; boundary=...``.

    Raises:
        ValueError: a part's sha2 is not a hex digest (the parser and the store only keep those).
    """
    unique: list[AttachmentPart] = []
    seen: set[str] = set()
    for part in parts:
        key = part.sha2.lower()
        if key in seen:
            continue
        seen.add(key)
        if hash_algorithm_for(part.sha2) is None:
            raise ValueError(f"attachment sha2 is not a hex SHA-2 digest: {part.sha2!r}")
        content_type = part.content_type.strip()
        if not _PRINTABLE_ASCII.fullmatch(content_type):
            content_type = _OPAQUE_CONTENT_TYPE
        unique.append(AttachmentPart(part.sha2, content_type, part.content))

    while True:
        boundary = "xapi-" + secrets.token_hex(16)
        marker = boundary.encode("ascii")
        if marker not in json_body and not any(marker in p.content for p in unique):
            break

    dash = b"--" + marker
    chunks: list[bytes] = [
        dash,
        b"\r\nContent-Type: application/json\r\n\r\n",
        json_body,
    ]
    for part in unique:
        header = (
            f"\r\n--{boundary}\r\n"
            f"Content-Type: {part.content_type}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"X-Experience-API-Hash: {part.sha2}\r\n\r\n"
        )
        chunks.append(header.encode("utf-8"))
        chunks.append(part.content)
    chunks.append(b"\r\n" + dash + b"--\r\n")
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"
