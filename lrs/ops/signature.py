"""Signed statements (xAPI Data 2.6).

A signed statement carries a JSON Web Signature (RFC 7515) as an attachment whose usageType is
``http://adlnet.gov/expapi/attachments/signature``. The LRS MUST reject malformed signatures
with 400 (Data 2.6.s5.b1) and, to decide that, MUST (2.6.s5.b3): decode the JWS and load the
statement from its payload; check that this statement is logically equivalent to the one
received (Statement comparison, Data 2.3.1.s9); verify the signature against the X.509
certificate of the ``x5c`` header when there is one; check the signature requirements
(2.6.s4: contentType ``application/octet-stream``, alg RS256/RS384/RS512).

Without ``x5c`` there is no key to verify with. The spec asks for verification only "if the JWS
header includes an X.509 certificate" and the conformance suite signs without ``x5c`` and
expects 200, so such a signature is accepted once it is well formed. The x5c check is "a way to
catch mistakes in the signature, not a security measure" (note under 2.6.s5): the certificate
chain is not validated against any trust store.

Section numbers are those of the 1.0.3 spec; the 2.0.0 text is the same, unnumbered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from lrs.errors import BadRequest
from lrs.ops.comparison import first_difference, instant, lower_uuid, normalize_body

__all__ = [
    "SIGNATURE_CONTENT_TYPE",
    "SIGNATURE_USAGE_TYPE",
    "verify_signed_statement",
]

SIGNATURE_USAGE_TYPE = "http://adlnet.gov/expapi/attachments/signature"
SIGNATURE_CONTENT_TYPE = "application/octet-stream"

# Data 2.6.s4.b4: the JWS MUST use RS256, RS384 or RS512 (RSASSA-PKCS1-v1_5, RFC 7518 §3.3).
# (cryptography is imported when a signature is first verified: ~7 MB on top of the app that a
# server process held for nothing while no signed statement came, bench/ingest (e).)
_HASH_FOR_ALG = {"RS256": "SHA256", "RS384": "SHA384", "RS512": "SHA512"}
_B64URL_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class _HasContent(Protocol):
    """Anything with the raw bytes of an attachment, e.g. ``lrs.http.multipart.AttachmentPart``."""

    @property
    def content(self) -> bytes: ...


def verify_signed_statement(statement: dict[str, Any], parts_by_sha2: Mapping[str, _HasContent], version: str) -> None:
    """Check every signature attachment of ``statement``; return None if all are well formed.

    ``parts_by_sha2`` maps a sha2 (as returned by ``check_attachments``: lower-cased) to the
    received part. Only the statement's own attachments are considered: a SubStatement is not
    signed on its own. Call it with the statement as received; the differences that the LRS's
    own assignments make (id, authority, stored, version, timestamp) are ignored anyway.
    ``version`` is the request's xAPI version, whose comparison rules apply.

    Raises:
        BadRequest: with a message starting ``signature:`` that says what is wrong.
    """
    attachments = statement.get("attachments")
    if not isinstance(attachments, list):
        return
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("usageType") != SIGNATURE_USAGE_TYPE:
            continue
        try:
            _verify_one(statement, attachment, parts_by_sha2, version)
        except (RecursionError, OverflowError) as exc:
            # a payload nested deeper than the comparison goes, or holding a time outside the
            # years 1 to 9999 (the statement itself is validated first, lrs.ops.statements.store_statements)
            raise BadRequest(f"signature: the JWS payload cannot be compared with the statement ({exc})") from None


def _verify_one(
    statement: dict[str, Any], attachment: dict[str, Any], parts_by_sha2: Mapping[str, _HasContent], version: str
) -> None:
    content_type = attachment.get("contentType")
    media_type = content_type.split(";", 1)[0].strip().lower() if isinstance(content_type, str) else None
    if media_type != SIGNATURE_CONTENT_TYPE:
        # Data 2.6.s4.b1: the signature attachment has contentType application/octet-stream.
        raise BadRequest(f"signature: attachment contentType must be {SIGNATURE_CONTENT_TYPE}, not {content_type!r}")
    sha2 = attachment.get("sha2")
    part = None
    if isinstance(sha2, str):
        part = parts_by_sha2.get(sha2.lower()) or parts_by_sha2.get(sha2)
    if part is None:
        # XAPI-00115: a signature attachment without the signature data attached is rejected.
        raise BadRequest(f"signature: no multipart part carries the JWS of attachment sha2 {sha2}")

    header, payload_bytes, signing_input, signature = _decode_compact_jws(part.content)

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _HASH_FOR_ALG:
        raise BadRequest(f"signature: unsupported alg {alg}; the JWS must use RS256, RS384 or RS512")
    crit = header.get("crit")
    if crit is not None:
        # RFC 7515 §4.1.11: a recipient MUST reject a JWS whose critical extensions it does not
        # understand; this LRS understands none.
        raise BadRequest(f"signature: unsupported critical JWS header parameters {crit!r}")

    try:
        # The parser the statement itself went through (lrs/http/common.py parse_json), so both
        # hold numbers alike: an integer beyond 64 bits is a double on both sides, not a float
        # here against an exact integer there. orjson refuses NaN, Infinity and bad UTF-8.
        payload = orjson.loads(payload_bytes)
    except orjson.JSONDecodeError:
        # Data 2.6.s4.b3: the payload MUST be a valid JSON serialization of the statement.
        raise BadRequest("signature: JWS payload is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("signature: JWS payload is not a JSON statement object")

    if "x5c" in header:
        _verify_with_x5c(header["x5c"], alg, signing_input, signature)

    for key in _SET_ONLY_WHEN_ABSENT:
        if key in payload and key not in statement:
            # The LRS sets id and timestamp only where the statement has none (Data 2.3.1.b1),
            # so a statement that lacks what its signed original had is not that statement:
            # stored, it would carry an id or time the signature contradicts.
            raise BadRequest(
                f"signature: the JWS payload has {'an' if key == 'id' else 'a'} {key} ({str(payload[key])[:80]!r}) "
                "and the statement "
                f"sent has none; send the statement with the {key} it was signed with"
            )

    difference = first_difference(
        _normalize_statement(payload, statement, version, is_payload=True),
        _normalize_statement(statement, payload, version, is_payload=False),
        "",
    )
    if difference is not None:
        raise BadRequest(
            f"signature: payload does not match the statement (first difference at {difference or 'the top level'})"
        )


def _b64url_decode(segment: bytes, what: str) -> bytes:
    """Decode one unpadded base64url segment of a compact JWS (RFC 7515 §2, §7.1)."""
    if not set(segment) <= _B64URL_ALPHABET or len(segment) % 4 == 1:
        raise BadRequest(f"signature: JWS {what} is not valid base64url")
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise BadRequest(f"signature: JWS {what} is not valid base64url") from None


def _decode_compact_jws(raw: bytes) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """Split a JWS Compact Serialization into header, payload, signing input and signature.

    Data 2.6.s4.b2: compact serialization SHOULD* be used and the JSON serialization "will be
    forbidden in a future version"; this LRS accepts only the compact form.
    """
    token = raw.strip()
    if token.startswith(b"{"):
        raise BadRequest("signature: JWS JSON serialization is not supported; use compact serialization")
    segments = token.split(b".")
    if len(segments) != 3:
        raise BadRequest(
            "signature: the attachment is not a JWS in compact serialization "
            "(expected three base64url parts separated by dots)"
        )
    header_b64, payload_b64, signature_b64 = segments
    header_bytes = _b64url_decode(header_b64, "header")
    try:
        header = orjson.loads(header_bytes)
    except orjson.JSONDecodeError:
        raise BadRequest("signature: JWS header is not valid JSON") from None
    if not isinstance(header, dict):
        raise BadRequest("signature: JWS header is not a JSON object")
    payload = _b64url_decode(payload_b64, "payload")
    signature = _b64url_decode(signature_b64, "signature")
    if not signature:
        raise BadRequest("signature: JWS has an empty signature")
    return header, payload, header_b64 + b"." + payload_b64, signature


def _verify_with_x5c(x5c: object, alg: str, signing_input: bytes, signature: bytes) -> None:
    """Verify the JWS with the key of the first certificate of ``x5c`` (RFC 7515 §4.1.6).

    x5c holds standard base64 (not base64url) DER certificates, the signer's first.
    """
    if not isinstance(x5c, list) or not x5c or not isinstance(x5c[0], str):
        raise BadRequest("signature: x5c header must be a non-empty array of base64 certificates")
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        der = base64.b64decode(x5c[0], validate=True)
        certificate = x509.load_der_x509_certificate(der)
        public_key = certificate.public_key()
    except (binascii.Error, ValueError):
        raise BadRequest("signature: the first x5c certificate cannot be parsed") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise BadRequest(f"signature: the x5c certificate does not hold an RSA key, as {alg} needs")
    try:
        public_key.verify(signature, signing_input, padding.PKCS1v15(), getattr(hashes, _HASH_FOR_ALG[alg])())
    except InvalidSignature:
        raise BadRequest("signature: the JWS signature does not verify against the x5c certificate") from None


# --------------------------------------------------------------------------------------------
# Statement comparison (Data 2.3.1 "Statement Immutability" and 2.3.1.s9)
# --------------------------------------------------------------------------------------------
#
# Differences that could have been caused by the exceptions to immutability MUST be ignored;
# other differences, including other serializations, MUST NOT (2.3.1.s9.b1, b2). Both sides are
# normalized, then compared as JSON values with their types (so 1 and 1.0, or true and 1, differ).

_LRS_ASSIGNED_ALWAYS_IGNORED = ("authority", "stored", "version")
_SET_ONLY_WHEN_ABSENT = ("id", "timestamp")


def _normalize_statement(
    stmt: dict[str, Any], other: dict[str, Any], version: str, *, is_payload: bool
) -> dict[str, Any]:
    """Normalize a top-level statement for comparison with ``other``.

    * authority, stored, version: assigned or overwritten by the LRS (2.3.1.b1), ignored;
    * id, timestamp: the LRS assigns them only when absent (2.3.1.b1), so they are compared
      when both sides have them (timestamps as points in time, 2.3.1.b4); a payload without
      them signed the statement before they were set. (One the payload has and the statement
      lacks is refused before this, in ``_verify_one``.)
    * attachments: not part of the statement (2.3.1.b6) and the signature attachment cannot be
      in its own payload (2.6.s4.b3, "before the signature was added"). If the payload lists
      attachments they must equal the received ones minus the signature attachments; if it
      lists none they are ignored.
    """
    out = dict(stmt)
    for key in _LRS_ASSIGNED_ALWAYS_IGNORED:
        out.pop(key, None)
    if "id" in out and "id" in other:
        out["id"] = lower_uuid(out["id"])
    else:
        out.pop("id", None)
    if "timestamp" in out and "timestamp" in other:
        out["timestamp"] = instant(out["timestamp"])
    else:
        out.pop("timestamp", None)

    payload_attachments = (stmt if is_payload else other).get("attachments")
    if payload_attachments is None:
        out.pop("attachments", None)
    else:
        attachments = out.get("attachments")
        if isinstance(attachments, list):
            kept = [a for a in attachments if not (isinstance(a, dict) and a.get("usageType") == SIGNATURE_USAGE_TYPE)]
            out["attachments"] = kept
        if out.get("attachments") in ([], None):
            out.pop("attachments", None)
    return normalize_body(out, version)
