"""Unit tests for lrs.ops.signature: JWS-signed statements (xAPI Data 2.6).

Keys and certificates are generated here with ``cryptography``; JWS tokens are assembled by hand
(RFC 7515 compact serialization) so that the tests do not share code with the module under test.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import uuid
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from lrs.errors import BadRequest
from lrs.http.multipart import (
    AttachmentPart,
    check_attachments,
    parse_statement_multipart,
)
from lrs.ops.signature import verify_signed_statement

SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"
HASHES: dict[str, hashes.HashAlgorithm] = {
    "RS256": hashes.SHA256(),
    "RS384": hashes.SHA384(),
    "RS512": hashes.SHA512(),
}


# --------------------------------------------------------------------------------------------
# Keys, certificates and JWS construction
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_for(private_key: Any, issuer_key: Any = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Spor test signer")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(issuer_key or private_key, hashes.SHA256())
    )


def x5c_of(*certificates: x509.Certificate) -> list[str]:
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certificates]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(header: dict[str, Any], payload: bytes, private_key: rsa.RSAPrivateKey | None) -> str:
    """A compact JWS; RS* algorithms are signed with ``private_key``, HS256 with a shared secret."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}"
    alg = header.get("alg")
    if isinstance(alg, str) and alg in HASHES:
        assert private_key is not None
        signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), HASHES[alg])
    elif alg == "HS256":
        signature = hmac.new(b"shared secret", signing_input.encode(), hashlib.sha256).digest()
    else:
        signature = b""
    return f"{signing_input}.{b64url(signature)}"


def base_statement() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "actor": {
            "objectType": "Agent",
            "mbox": "mailto:learner@example.com",
            "name": "Learner",
        },
        "verb": {
            "id": "http://adlnet.gov/expapi/verbs/experienced",
            "display": {"en-US": "experienced"},
        },
        "object": {
            "objectType": "Activity",
            "id": "http://example.com/activities/tax-return",
            "definition": {"name": {"en-US": "How to file a tax return"}},
        },
        "result": {"score": {"raw": 1}, "duration": "PT1H"},
        "timestamp": "2013-04-01T12:00:00Z",
    }


def signed(
    payload_stmt: dict[str, Any] | None = None,
    *,
    received: dict[str, Any] | None = None,
    alg: str = "RS256",
    private_key: rsa.RSAPrivateKey | None = None,
    header_extra: dict[str, Any] | None = None,
    token: str | None = None,
    content_type: str = "application/octet-stream",
) -> tuple[dict[str, Any], dict[str, AttachmentPart]]:
    """A received statement carrying a signature attachment, and its parts by sha2.

    The payload is the statement before the signature was added (Data 2.6.s4.b3); the received
    statement is ``received`` (default: the payload) with the signature attachment appended.
    """
    payload_stmt = payload_stmt if payload_stmt is not None else base_statement()
    if token is None:
        token = jws(
            {"alg": alg, **(header_extra or {})},
            json.dumps(payload_stmt).encode(),
            private_key,
        )
    content = token.encode()
    sha2 = hashlib.sha256(content).hexdigest()
    statement = copy.deepcopy(received if received is not None else payload_stmt)
    statement.setdefault("attachments", []).append(
        {
            "usageType": SIGNATURE_USAGE,
            "display": {"en-US": "Signed by the test"},
            "contentType": content_type,
            "length": len(content),
            "sha2": sha2,
        }
    )
    return statement, {sha2: AttachmentPart(sha2, "application/octet-stream", content)}


# --------------------------------------------------------------------------------------------
# Accepted signatures
# --------------------------------------------------------------------------------------------


def test_statement_without_signature_attachment_needs_nothing() -> None:
    stmt = base_statement()
    stmt["attachments"] = [{"usageType": "http://example.com/other", "sha2": "00" * 32}]
    verify_signed_statement(stmt, {}, "2.0.0")
    verify_signed_statement(base_statement(), {}, "2.0.0")


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
def test_accepts_rs_algorithms_without_x5c(alg: str, key: rsa.RSAPrivateKey) -> None:
    # Conformance XAPI-00117 signs without x5c and expects 200: there is nothing to verify with.
    verify_signed_statement(*signed(alg=alg, private_key=key), "2.0.0")


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
def test_accepts_rs_algorithms_verified_against_x5c(alg: str, key: rsa.RSAPrivateKey) -> None:
    x5c = {"x5c": x5c_of(certificate_for(key))}
    verify_signed_statement(*signed(alg=alg, private_key=key, header_extra=x5c), "2.0.0")


def test_verifies_with_the_first_certificate_of_a_chain(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    chain = x5c_of(certificate_for(key, issuer_key=other_key), certificate_for(other_key))
    verify_signed_statement(*signed(private_key=key, header_extra={"x5c": chain}), "2.0.0")


def test_ignores_what_the_lrs_assigns(key: rsa.RSAPrivateKey) -> None:
    payload = base_statement()
    del payload["id"]
    del payload["timestamp"]
    received = copy.deepcopy(payload)
    received.update(
        id=str(uuid.uuid4()),
        timestamp="2024-01-01T00:00:00Z",
        stored="2024-01-01T00:00:01Z",
        version="1.0.3",
        authority={
            "objectType": "Agent",
            "account": {"homePage": "http://lrs.example", "name": "x"},
        },
    )
    verify_signed_statement(*signed(payload, received=received, private_key=key), "2.0.0")


def test_ignores_differences_the_immutability_exceptions_allow(
    key: rsa.RSAPrivateKey,
) -> None:
    payload = base_statement()
    payload["actor"] = {
        "objectType": "Group",
        "member": [{"mbox": "mailto:a@example.com"}, {"mbox": "mailto:b@example.com"}],
        "mbox": "mailto:team@Example.COM",
    }
    payload["context"] = {
        "registration": "EC531277-B57B-4C15-8D91-D292C5B2B8F7",
        "contextActivities": {
            "parent": {
                "id": "http://example.com/course",
                "definition": {"name": {"en": "C"}},
            }
        },
    }
    received = copy.deepcopy(payload)
    received["id"] = payload["id"].upper()
    received["timestamp"] = "2013-04-01T14:00:00+02:00"  # same instant, other zone
    received["verb"]["display"] = {"nb-NO": "opplevde"}
    del received["object"]["definition"]
    del received["object"]["objectType"]
    received["actor"]["member"].reverse()
    received["actor"]["member"][0]["objectType"] = "Agent"
    received["actor"]["mbox"] = "MAILTO:team@example.com"
    received["context"]["registration"] = payload["context"]["registration"].lower()
    received["context"]["contextActivities"]["parent"] = [{"id": "http://example.com/course", "objectType": "Activity"}]
    verify_signed_statement(*signed(payload, received=received, private_key=key), "2.0.0")


def test_numbers_beyond_64_bits_compare_as_the_statement_holds_them(key: rsa.RSAPrivateKey) -> None:
    # The statement is parsed by orjson on its way in (lrs/http/common.py), which reads an
    # integer beyond 64 bits as a double; the payload, signed over the exact digits, is read the
    # same way, so an identical statement is not refused for it.
    payload = base_statement()
    payload["result"]["extensions"] = {"http://example.com/ext/big": 123456789012345678901234567890,
                                       "http://example.com/ext/edge": 18446744073709551616}
    statement, parts = signed(payload, private_key=key)
    received = orjson.loads(json.dumps(statement))  # as the server reads the request
    assert isinstance(received["result"]["extensions"]["http://example.com/ext/big"], float)
    verify_signed_statement(received, parts, "2.0.0")


def test_payload_listing_the_other_attachments_matches(key: rsa.RSAPrivateKey) -> None:
    payload = base_statement()
    payload["attachments"] = [
        {
            "usageType": "http://example.com/cert",
            "display": {"en": "c"},
            "contentType": "image/png",
            "length": 3,
            "sha2": "ab" * 32,
        }
    ]
    verify_signed_statement(*signed(payload, private_key=key), "2.0.0")


def test_sha2_case_and_whitespace_around_the_token_do_not_matter(
    key: rsa.RSAPrivateKey,
) -> None:
    payload = base_statement()
    token = jws({"alg": "RS256"}, json.dumps(payload).encode(), key) + "\r\n"
    stmt, parts = signed(payload, token=token)
    stmt["attachments"][-1]["sha2"] = stmt["attachments"][-1]["sha2"].upper()
    verify_signed_statement(stmt, parts, "2.0.0")


def test_accepts_a_conformance_style_multipart_request_end_to_end(
    key: rsa.RSAPrivateKey,
) -> None:
    # Shaped like the ADL suite's signed requests: leading CRLF, no space after the colons,
    # no CRLF after the close delimiter, payload = statement without attachments.
    stmt = base_statement()
    token = jws({"alg": "RS256"}, json.dumps(stmt).encode(), key).encode()
    sha2 = hashlib.sha256(token).hexdigest()
    stmt["attachments"] = [
        {
            "usageType": SIGNATURE_USAGE,
            "display": {"en-US": "Signed"},
            "contentType": "application/octet-stream",
            "length": len(token),
            "sha2": sha2,
        }
    ]
    boundary = "-------------12345"
    body = (
        f"\r\n--{boundary}\r\nContent-Type:application/json\r\n\r\n".encode()
        + json.dumps(stmt).encode()
        + f"\r\n--{boundary}\r\nContent-Type:application/octet-stream\r\n"
        f"Content-Transfer-Encoding:binary\r\nX-Experience-API-Hash:{sha2}\r\n\r\n".encode()
        + token
        + f"\r\n--{boundary}--".encode()
    )
    json_body, parts = parse_statement_multipart(body, f"multipart/mixed; boundary={boundary}", max_part_bytes=1 << 20)
    statements = [json.loads(json_body)]
    by_sha2 = check_attachments(statements, parts)
    verify_signed_statement(statements[0], by_sha2, "2.0.0")


# --------------------------------------------------------------------------------------------
# Rejected signatures
# --------------------------------------------------------------------------------------------


def test_rejects_signature_attachment_with_other_content_type(
    key: rsa.RSAPrivateKey,
) -> None:
    # Conformance XAPI-00115, "bad content type".
    with pytest.raises(
        BadRequest,
        match="signature: attachment contentType must be application/octet-stream, not 'text/plain; charset=ascii'",
    ):
        verify_signed_statement(*signed(private_key=key, content_type="text/plain; charset=ascii"), "2.0.0")


def test_rejects_signature_attachment_without_its_data(key: rsa.RSAPrivateKey) -> None:
    stmt, _ = signed(private_key=key)
    sha2 = stmt["attachments"][-1]["sha2"]
    with pytest.raises(
        BadRequest,
        match=f"signature: no multipart part carries the JWS of attachment sha2 {sha2}",
    ):
        verify_signed_statement(stmt, {}, "2.0.0")


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ({"alg": "HS256"}, "HS256"),
        ({"alg": "none"}, "none"),
        ({"alg": "PS256"}, "PS256"),
        ({}, "None"),
        ({"alg": ["RS256"]}, r"\['RS256'\]"),
    ],
)
def test_rejects_other_algorithms(header: dict[str, Any], shown: str, key: rsa.RSAPrivateKey) -> None:
    token = jws(header, json.dumps(base_statement()).encode(), key)
    if token.endswith("."):  # no RS/HS signature was made: give it a non-empty one
        token += b64url(b"x")
    with pytest.raises(
        BadRequest,
        match=f"signature: unsupported alg {shown}; the JWS must use RS256, RS384 or RS512",
    ):
        verify_signed_statement(*signed(token=token), "2.0.0")


def test_rejects_payload_that_is_not_json(key: rsa.RSAPrivateKey) -> None:
    # Conformance XAPI-00116 "breakJson": the first double quote becomes a single quote.
    broken = json.dumps(base_statement()).replace('"', "'", 1).encode()
    token = jws({"alg": "RS256"}, broken, key)
    with pytest.raises(BadRequest, match="signature: JWS payload is not valid JSON"):
        verify_signed_statement(*signed(token=token), "2.0.0")


@pytest.mark.parametrize("payload", [b"[]", b'"statement"', b"NaN"])
def test_rejects_payload_that_is_not_a_statement_object(payload: bytes, key: rsa.RSAPrivateKey) -> None:
    token = jws({"alg": "RS256"}, payload, key)
    with pytest.raises(
        BadRequest,
        match=r"signature: JWS payload is not (valid JSON|a JSON statement object)",
    ):
        verify_signed_statement(*signed(token=token), "2.0.0")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not a jws", "the attachment is not a JWS in compact serialization"),
        ("a.b", "the attachment is not a JWS in compact serialization"),
        ("a.b.c.d.e", "the attachment is not a JWS in compact serialization"),
        (
            '{"payload": "e30", "signatures": []}',
            "JWS JSON serialization is not supported",
        ),
        ("ab+/.e30.c2ln", "JWS header is not valid base64url"),
        (f"{b64url(b'not json')}.e30.c2ln", "JWS header is not valid JSON"),
        (f"{b64url(b'[1]')}.e30.c2ln", "JWS header is not a JSON object"),
        (
            f"{b64url(json.dumps({'alg': 'RS256'}).encode())}.e30!.c2ln",
            "JWS payload is not valid base64url",
        ),
        (
            f"{b64url(json.dumps({'alg': 'RS256'}).encode())}.e30.",
            "JWS has an empty signature",
        ),
        (
            f"{b64url(json.dumps({'alg': 'RS256'}).encode())}.e30.a",
            "JWS signature is not valid base64url",
        ),
    ],
)
def test_rejects_malformed_jws(token: str, message: str) -> None:
    with pytest.raises(BadRequest, match=f"signature: {message}"):
        verify_signed_statement(*signed(token=token), "2.0.0")


def test_rejects_signature_made_with_another_key_than_the_x5c_certificate(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    header = {"x5c": x5c_of(certificate_for(other_key))}
    with pytest.raises(
        BadRequest,
        match="signature: the JWS signature does not verify against the x5c certificate",
    ):
        verify_signed_statement(*signed(private_key=key, header_extra=header), "2.0.0")


def test_rejects_tampered_payload_when_x5c_is_given(key: rsa.RSAPrivateKey) -> None:
    token = jws(
        {"alg": "RS512", "x5c": x5c_of(certificate_for(key))},
        json.dumps(base_statement()).encode(),
        key,
    )
    header, _, signature = token.split(".")
    tampered = f"{header}.{b64url(json.dumps(base_statement()).encode())}.{signature}"
    with pytest.raises(BadRequest, match="does not verify against the x5c certificate"):
        verify_signed_statement(*signed(token=tampered), "2.0.0")


@pytest.mark.parametrize(
    ("x5c", "message"),
    [
        ("MIIB", "x5c header must be a non-empty array of base64 certificates"),
        ([], "x5c header must be a non-empty array of base64 certificates"),
        (["!!!not base64!!!"], "the first x5c certificate cannot be parsed"),
        (
            [base64.b64encode(b"not a certificate").decode()],
            "the first x5c certificate cannot be parsed",
        ),
    ],
)
def test_rejects_unusable_x5c(x5c: object, message: str, key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(BadRequest, match=f"signature: {message}"):
        verify_signed_statement(*signed(private_key=key, header_extra={"x5c": x5c}), "2.0.0")


def test_rejects_x5c_certificate_with_a_non_rsa_key(key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    x5c = {"x5c": x5c_of(certificate_for(ec_key))}
    with pytest.raises(
        BadRequest,
        match="signature: the x5c certificate does not hold an RSA key, as RS256 needs",
    ):
        verify_signed_statement(*signed(private_key=key, header_extra=x5c), "2.0.0")


def test_rejects_unknown_critical_header_parameters(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(
        BadRequest,
        match=r"signature: unsupported critical JWS header parameters \['b64'\]",
    ):
        verify_signed_statement(*signed(private_key=key, header_extra={"crit": ["b64"], "b64": True}), "2.0.0")


def _mismatch(received_change: Any, key: rsa.RSAPrivateKey, payload: dict[str, Any] | None = None) -> str:
    payload = payload if payload is not None else base_statement()
    received = copy.deepcopy(payload)
    received_change(received)
    with pytest.raises(BadRequest, match="signature: payload does not match the statement") as caught:
        verify_signed_statement(*signed(payload, received=received, private_key=key), "2.0.0")
    return caught.value.message


def test_rejects_payload_for_another_verb(key: rsa.RSAPrivateKey) -> None:
    message = _mismatch(lambda s: s["verb"].update(id="http://adlnet.gov/expapi/verbs/passed"), key)
    assert message.endswith("(first difference at verb.id)")


def test_rejects_payload_with_another_statement_id(key: rsa.RSAPrivateKey) -> None:
    assert _mismatch(lambda s: s.update(id=str(uuid.uuid4())), key).endswith("(first difference at id)")


@pytest.mark.parametrize("key_name", ["id", "timestamp"])
def test_rejects_a_statement_lacking_the_id_or_timestamp_its_payload_signed(
    key_name: str, key: rsa.RSAPrivateKey
) -> None:
    # The LRS would set its own id or time where the signed original had one: the stored
    # statement would contradict its signature.
    payload = base_statement()
    received = copy.deepcopy(payload)
    del received[key_name]
    with pytest.raises(BadRequest) as caught:
        verify_signed_statement(*signed(payload, received=received, private_key=key), "2.0.0")
    article = "an" if key_name == "id" else "a"
    assert caught.value.message.startswith(f"signature: the JWS payload has {article} {key_name} (")
    assert f"the statement sent has none; send the statement with the {key_name} it was signed with" in (
        caught.value.message
    )


@pytest.mark.parametrize(("key_name", "value"), [("id", "not-a-uuid"), ("id", {"a": 1}), ("timestamp", "garbage")])
def test_rejects_a_payload_whose_id_or_timestamp_is_not_valid(
    key_name: str, value: Any, key: rsa.RSAPrivateKey
) -> None:
    payload = base_statement()
    payload[key_name] = value
    valid = base_statement()[key_name]
    message = _mismatch(lambda s: s.update({key_name: valid}), key, payload)
    assert message.endswith(f"(first difference at {key_name})")


def test_rejects_payload_with_another_instant(key: rsa.RSAPrivateKey) -> None:
    message = _mismatch(lambda s: s.update(timestamp="2013-04-01T12:00:01Z"), key)
    assert message.endswith("(first difference at timestamp)")


def test_rejects_different_serialization_of_a_number(key: rsa.RSAPrivateKey) -> None:
    # Data 2.3.1.s9.b2: other serializations of properties that are not exceptions count.
    message = _mismatch(lambda s: s["result"]["score"].update(raw=1.0), key)
    assert message.endswith("(first difference at result.score.raw)")


def test_rejects_result_duration_written_differently(key: rsa.RSAPrivateKey) -> None:
    # Data 2.3.1.b8: a duration is compared as a string.
    message = _mismatch(lambda s: s["result"].update(duration="PT60M"), key)
    assert message.endswith("(first difference at result.duration)")


def test_rejects_added_property(key: rsa.RSAPrivateKey) -> None:
    message = _mismatch(lambda s: s.update(context={"language": "nb-NO"}), key)
    assert message.endswith("(first difference at context)")


def test_rejects_substatement_with_another_timestamp(key: rsa.RSAPrivateKey) -> None:
    payload = base_statement()
    payload["object"] = {
        "objectType": "SubStatement",
        "actor": {"mbox": "mailto:learner@example.com"},
        "verb": {"id": "http://example.com/verbs/will-visit"},
        "object": {"id": "http://example.com/museum"},
        "timestamp": "2030-01-01T00:00:00Z",
    }
    message = _mismatch(lambda s: s["object"].update(timestamp="2030-01-02T00:00:00Z"), key, payload)
    assert message.endswith("(first difference at object.timestamp)")


def test_rejects_payload_whose_listed_attachments_differ(
    key: rsa.RSAPrivateKey,
) -> None:
    payload = base_statement()
    payload["attachments"] = [
        {
            "usageType": "http://example.com/cert",
            "display": {"en": "c"},
            "contentType": "image/png",
            "length": 3,
            "sha2": "ab" * 32,
        }
    ]
    message = _mismatch(lambda s: s["attachments"][0].update(sha2="cd" * 32), key, payload)
    assert message.endswith("(first difference at attachments[0].sha2)")


def test_a_payload_that_cannot_be_compared_is_a_400_not_an_error(key: rsa.RSAPrivateKey) -> None:
    """The statement is validated before its signature is checked (ops.store_statements); its
    JWS payload is not a statement the LRS validated: one with a time outside the years 1 to 9999
    in UTC was an OverflowError (a 500)."""
    received = base_statement()
    far = copy.deepcopy(received)
    far["timestamp"] = "0001-01-01T00:00:00+01:00"
    token = jws({"alg": "RS256"}, json.dumps(far).encode(), key)
    with pytest.raises(BadRequest, match=r"^signature: payload does not match .* \(first difference at timestamp"):
        verify_signed_statement(*signed(received, received=received, private_key=key, token=token), "2.0.0")
