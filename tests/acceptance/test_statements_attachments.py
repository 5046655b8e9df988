"""Attachments and signed statements over HTTP (xAPI Communication 1.5.2 multipart/mixed,
2.1.3 "attachments" parameter; Data 2.4.11 Attachments, 2.6 Signed Statements).

Section numbers are those of the 1.0.3 documents; the 2.0.0 text is the same.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from lrs.ops.terms import agent_key
from lrs.store.embedded import EmbeddedPostgres
from tests.conftest import Server, audit_trail, make_tenant, server_of_its_own, xapi_client
from tests.module_clients import clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)
from tests.statements import statement, with_id

SIGNATURE = "http://adlnet.gov/expapi/attachments/signature"
CERTIFICATE_USAGE = "https://example.org/attachment-usage/certificate-of-completion"


def attachment_object(content: bytes, *, usage: str = CERTIFICATE_USAGE, content_type: str = "text/plain",
                      file_url: str | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {
        "usageType": usage,
        "display": {"en-US": "Certificate"},
        "contentType": content_type,
        "length": len(content),
        "sha2": hashlib.sha256(content).hexdigest(),
    }
    if file_url:
        a["fileUrl"] = file_url
    return a


def multipart(statements: Any, parts: list[tuple[bytes, str]], *, hashes_: list[str] | None = None,
              boundary: str | None = None) -> tuple[bytes, str]:
    """An xAPI multipart/mixed body (Communication 1.5.2.s2.b2): JSON first, then raw parts with
    X-Experience-API-Hash and Content-Transfer-Encoding: binary."""
    boundary = boundary or "spor-test-" + uuid.uuid4().hex
    out = [f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(), orjson.dumps(statements)]
    for i, (content, ctype) in enumerate(parts):
        sha2 = hashes_[i] if hashes_ else hashlib.sha256(content).hexdigest()
        out.append(f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: binary\r\n"
                   f"X-Experience-API-Hash: {sha2}\r\n\r\n".encode())
        out.append(content)
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(out), f'multipart/mixed; boundary="{boundary}"'


def parse_multipart_response(r: httpx.Response) -> list[Message]:
    """The parts of a multipart/mixed response, parsed with the standard library (independent of
    the server's own multipart code)."""
    raw = b"Content-Type: " + r.headers["content-type"].encode() + b"\r\n\r\n" + r.content
    msg = message_from_bytes(raw)
    assert msg.is_multipart()
    return list(msg.get_payload())  # type: ignore[arg-type]


def part_bytes(part: Message) -> bytes:
    content = part.get_payload(decode=True)
    assert isinstance(content, bytes)
    return content


async def post_multipart(
    xapi: httpx.AsyncClient, statements: Any, parts: list[tuple[bytes, str]], **kw: Any,
) -> httpx.Response:
    body, ctype = multipart(statements, parts, **kw)
    return await xapi.post("/statements", content=body, headers={"Content-Type": ctype})


async def assert_not_stored(xapi: httpx.AsyncClient, sid: str) -> None:
    assert (await xapi.get("/statements", params={"statementId": sid})).status_code == 404


# ---------------------------------------------------------------------------------------------
# multipart/mixed


async def test_multipart_post_with_matching_part_is_200_and_get_with_attachments_returns_it(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 1.5.2.s3.b4 (accept statements with attachments in multipart/mixed) and
    2.1.3.s2.b6 (attachments=true -> multipart response including the attachment data)."""
    content = f"Certificate of completion for {unique('kari')}\n".encode()
    s = with_id(statement(actor=unique("kari"), attachments=[attachment_object(content)]))
    r = await post_multipart(xapi, s, [(content, "text/plain")])
    assert r.status_code == 200, r.text
    assert r.json() == [s["id"]]

    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/mixed")
    parts = parse_multipart_response(r)
    assert parts[0].get_content_type() == "application/json"
    got = orjson.loads(part_bytes(parts[0]))
    assert got["id"] == s["id"]
    assert got["attachments"] == s["attachments"]
    [data] = parts[1:]
    assert data["X-Experience-API-Hash"] == hashlib.sha256(content).hexdigest()
    assert data["Content-Transfer-Encoding"] == "binary"
    assert part_bytes(data) == content


async def test_query_with_attachments_true_returns_multipart_with_each_attachment(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b6 for a StatementResult: the first part is the StatementResult, the
    following parts the attachment data (1.5.2.s2.b2.b5: one copy each)."""
    kari = unique("kari")
    one, two = b"first attachment " + kari.encode(), b"second attachment " + kari.encode()
    a = with_id(statement(actor=kari, attachments=[attachment_object(one)]))
    b = with_id(statement(actor=kari, attachments=[attachment_object(two), attachment_object(one)]))
    r = await post_multipart(xapi, [a, b], [(one, "text/plain"), (two, "text/plain")])
    assert r.status_code == 200, r.text
    r = await xapi.get("/statements", params={"agent": orjson.dumps(a["actor"]).decode(), "attachments": "true"})
    assert r.status_code == 200, r.text
    parts = parse_multipart_response(r)
    result = orjson.loads(part_bytes(parts[0]))
    assert [x["id"] for x in result["statements"]] == [b["id"], a["id"]]
    by_hash = {p["X-Experience-API-Hash"]: part_bytes(p) for p in parts[1:]}
    assert by_hash == {hashlib.sha256(one).hexdigest(): one, hashlib.sha256(two).hexdigest(): two}


async def test_each_returned_part_carries_the_content_type_its_attachment_declares(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s2.b7: where a part's header and its attachment's property are both
    given (Content-Type and contentType), they MUST match, statement results included. The data
    may have come with another Content-Type, or none (then text/plain by RFC 2046): the response
    part says what the statement declares, for a single statement and for a query."""
    kari = unique("kari")
    pdf, png = b"%PDF-1.4 certificate " + kari.encode(), b"\x89PNG badge " + kari.encode()
    s = with_id(statement(actor=kari, attachments=[attachment_object(pdf, content_type="application/pdf"),
                                                   attachment_object(png, content_type="image/png")]))
    boundary = "spor-test-" + uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(), orjson.dumps(s),
        # no Content-Type header on the PDF's part, and another one on the PNG's
        f"\r\n--{boundary}\r\nContent-Transfer-Encoding: binary\r\n"
        f"X-Experience-API-Hash: {hashlib.sha256(pdf).hexdigest()}\r\n\r\n".encode(), pdf,
        f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
        f"X-Experience-API-Hash: {hashlib.sha256(png).hexdigest()}\r\n\r\n".encode(), png,
        f"\r\n--{boundary}--\r\n".encode()])
    r = await xapi.post("/statements", content=body, headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})
    assert r.status_code == 200, r.text
    for params in ({"statementId": s["id"]}, {"agent": orjson.dumps(s["actor"]).decode()}):
        r = await xapi.get("/statements", params={**params, "attachments": "true"})
        assert r.status_code == 200, r.text
        types = {p["X-Experience-API-Hash"]: p["Content-Type"] for p in parse_multipart_response(r)[1:]}
        assert types == {hashlib.sha256(pdf).hexdigest(): "application/pdf",
                         hashlib.sha256(png).hexdigest(): "image/png"}, params


async def test_attachments_true_includes_an_upper_case_hash_and_a_substatements_attachment(
        xapi: httpx.AsyncClient) -> None:
    """2.1.3.s2.b6: attachments=true includes every attachment the LRS accepted with data: one
    declared with its sha2 in upper case, and one of a SubStatement (both were left out)."""
    kari = unique("kari")
    upper, inner = b"upper-case hash " + kari.encode(), b"substatement's own " + kari.encode()
    a = with_id(statement(actor=kari, attachments=[{**attachment_object(upper),
                                                    "sha2": hashlib.sha256(upper).hexdigest().upper()}]))
    b = with_id(statement(actor=kari))
    b["object"] = {"objectType": "SubStatement", "actor": b["actor"], "verb": b["verb"],
                   "object": {"id": "https://courses.example.org/inner"}, "attachments": [attachment_object(inner)]}
    r = await post_multipart(xapi, [a, b], [(upper, "text/plain"), (inner, "text/plain")],
                             hashes_=[hashlib.sha256(upper).hexdigest().upper(), hashlib.sha256(inner).hexdigest()])
    assert r.status_code == 200, r.text
    for s, content, spelled in ((a, upper, str.upper), (b, inner, str.lower)):
        r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
        parts = parse_multipart_response(r)
        assert orjson.loads(part_bytes(parts[0]))["id"] == s["id"]
        assert [(p["X-Experience-API-Hash"], part_bytes(p)) for p in parts[1:]] == [
            (spelled(hashlib.sha256(content).hexdigest()), content)]
    r = await xapi.get("/statements", params={"agent": orjson.dumps(a["actor"]).decode(), "attachments": "true"})
    assert {part_bytes(p) for p in parse_multipart_response(r)[1:]} == {upper, inner}


async def test_attachments_true_is_multipart_even_when_there_is_no_attachment(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b6: with attachments=true the LRS MUST use the multipart format; the
    first part is the JSON."""
    s = with_id(statement(actor=unique("kari")))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/mixed")
    parts = parse_multipart_response(r)
    assert len(parts) == 1
    assert orjson.loads(part_bytes(parts[0]))["id"] == s["id"]


async def test_get_with_attachments_false_is_json_without_attachment_data(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b7: attachments=false -> application/json, no raw data."""
    content = b"not to be sent " + uuid.uuid4().bytes
    s = with_id(statement(actor=unique("kari"), attachments=[attachment_object(content)]))
    assert (await post_multipart(xapi, s, [(content, "application/octet-stream")])).status_code == 200
    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "false"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["attachments"] == s["attachments"]
    assert content not in r.content


async def test_binary_attachment_data_round_trips_byte_for_byte(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s2.b2.b4: parts are binary; CR, LF and NUL bytes are data."""
    content = bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n"
    a = attachment_object(content, content_type="application/octet-stream")
    s = with_id(statement(actor=unique("kari"), attachments=[a]))
    assert (await post_multipart(xapi, s, [(content, "application/octet-stream")])).status_code == 200
    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    parts = parse_multipart_response(r)
    assert part_bytes(parts[1]) == content


async def test_part_whose_data_does_not_match_its_hash_is_400_and_nothing_is_stored(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s1 (attachments are matched by SHA-2) and 1.5.2.s3.b5: data that does not
    hash to the declared sha2 leaves the attachment without data -> 400."""
    content = b"the real content"
    s = with_id(statement(actor=unique("kari"), attachments=[attachment_object(content)]))
    declared = hashlib.sha256(content).hexdigest()
    r = await post_multipart(xapi, s, [(b"tampered content", "text/plain")], hashes_=[declared])
    assert r.status_code == 400, r.text
    assert hashlib.sha256(content).hexdigest() in r.json()["error"]["message"]
    await assert_not_stored(xapi, s["id"])


async def test_attachment_without_file_url_and_without_part_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s3.b5: an attachment with neither fileUrl nor a matching part -> reject."""
    content = b"never sent"
    s = with_id(statement(actor=unique("kari"), attachments=[attachment_object(content)]))
    r = await post_multipart(xapi, s, [])
    assert r.status_code == 400, r.text
    assert hashlib.sha256(content).hexdigest() in r.json()["error"]["message"]
    await assert_not_stored(xapi, s["id"])


async def test_attachment_without_file_url_in_plain_json_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s2.b1: an application/json request must give a fileUrl for every
    attachment."""
    s = with_id(statement(actor=unique("kari"), attachments=[attachment_object(b"data that never came")]))
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 400, r.text
    await assert_not_stored(xapi, s["id"])


async def test_file_url_only_attachment_in_plain_json_is_200(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s2.b1 / 1.5.2.s4.b3: application/json is fine when every attachment has
    a fileUrl; the attachment object is stored as sent."""
    a = attachment_object(b"hosted elsewhere", file_url="https://files.example.org/certificates/123.pdf")
    s = with_id(statement(actor=unique("kari"), attachments=[a]))
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 200, r.text
    got = (await xapi.get("/statements", params={"statementId": s["id"]})).json()
    assert got["attachments"] == [a]


async def test_a_file_url_statement_does_not_get_data_another_statement_sent(xapi: httpx.AsyncClient) -> None:
    """attachments=true returns the data a statement came with, not data of the same hash that
    another statement sent: with a credential that reads only its own statements, naming a
    known hash with a made-up fileUrl fetched another authority's file (a security audit)."""
    content = f"Appraisal for {unique('kari')}: confidential\n".encode()
    sent = with_id(statement(actor=unique("kari"), attachments=[attachment_object(content)]))
    assert (await post_multipart(xapi, sent, [(content, "text/plain")])).status_code == 200
    probe = with_id(statement(actor=unique("ola"), attachments=[
        attachment_object(content, file_url="https://files.example.org/made-up.txt")]))
    assert (await xapi.post("/statements", json=probe)).status_code == 200
    r = await xapi.get("/statements", params={"statementId": probe["id"], "attachments": "true"})
    parts = parse_multipart_response(r)
    assert len(parts) == 1 and content not in r.content
    r = await xapi.get("/statements", params={"statementId": sent["id"], "attachments": "true"})
    assert part_bytes(parse_multipart_response(r)[1]) == content


async def test_multipart_without_any_attachment_objects_is_accepted(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s3.b8: multipart batches without Attachment objects SHOULD* be accepted."""
    s = with_id(statement(actor=unique("kari")))
    r = await post_multipart(xapi, [s], [])
    assert r.status_code == 200, r.text
    assert r.json() == [s["id"]]


async def test_part_not_referenced_by_any_attachment_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s2.b2.b2: each part after the first is the data of an attachment of the
    statements; a stray part is a malformed request."""
    s = with_id(statement(actor=unique("kari")))
    r = await post_multipart(xapi, s, [(b"stray", "text/plain")])
    assert r.status_code == 400, r.text
    await assert_not_stored(xapi, s["id"])


async def test_put_with_multipart_stores_the_attachment(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s2.b2.b2: multipart is available for PUT as well as POST."""
    content = b"put attachment " + uuid.uuid4().bytes
    a = attachment_object(content, content_type="application/octet-stream")
    s = with_id(statement(actor=unique("kari"), attachments=[a]))
    body, ctype = multipart(s, [(content, "application/octet-stream")])
    r = await xapi.put("/statements", params={"statementId": s["id"]}, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 204, r.text
    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    assert part_bytes(parse_multipart_response(r)[1]) == content


# ---------------------------------------------------------------------------------------------
# Signed statements


@pytest.fixture(scope="module")
def signer() -> tuple[rsa.RSAPrivateKey, list[str]]:
    """An RSA key and a self-signed certificate for a fictional signer, as a JWS x5c chain."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Testsykehuset signing service (fictional)")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7)).sign(key, hashes.SHA256()))
    return key, [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def compact_jws(key: rsa.RSAPrivateKey, x5c: list[str], payload: bytes) -> bytes:
    """RS256 JWS in compact serialization (RFC 7515 7.1) with the x5c header (4.1.6)."""
    header = b64url(orjson.dumps({"alg": "RS256", "x5c": x5c}))
    signing_input = header + b"." + b64url(payload)
    return signing_input + b"." + b64url(key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))


def sign(stmt: dict[str, Any], token: bytes) -> dict[str, Any]:
    """The statement with the signature attachment added (Data 2.6.s4)."""
    signature = attachment_object(token, usage=SIGNATURE, content_type="application/octet-stream")
    return {**stmt, "attachments": [*stmt.get("attachments", []), signature]}


async def test_signed_statement_with_valid_rs256_signature_is_200_and_returned_with_its_signature(
    xapi: httpx.AsyncClient, signer: tuple[rsa.RSAPrivateKey, list[str]]
) -> None:
    """Data 2.6.s4/s5: a well-formed JWS over the statement, verifiable with the x5c certificate,
    is accepted; the signature is an attachment returned with attachments=true."""
    key, x5c = signer
    s = with_id(statement(actor=unique("kari")))
    token = compact_jws(key, x5c, orjson.dumps(s))
    signed = sign(s, token)
    r = await post_multipart(xapi, signed, [(token, "application/octet-stream")])
    assert r.status_code == 200, r.text
    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    parts = parse_multipart_response(r)
    assert part_bytes(parts[1]) == token


async def test_a_signed_statement_is_validated_before_its_signature_is_compared(
    xapi: httpx.AsyncClient, signer: tuple[rsa.RSAPrivateKey, list[str]]
) -> None:
    """A signed statement with a timestamp outside the years 1 to 9999 in UTC was a 500: the
    signature comparison read the time before the statement was refused for it. It is answered
    now as the same statement unsigned is (a robustness probe): under 2.0.0, which stores
    timestamps in UTC, a 400 saying so; under 1.0.3, which keeps them as sent, stored."""
    key, x5c = signer
    s = with_id(statement(actor=unique("kari")))
    s["timestamp"] = "0001-01-01T00:00:00+01:00"
    token = compact_jws(key, x5c, orjson.dumps(s))
    r = await post_multipart(xapi, sign(s, token), [(token, "application/octet-stream")])
    unsigned = await xapi.post("/statements", json={**s, "id": str(uuid.uuid4())})
    assert r.status_code == unsigned.status_code == (400 if xapi.headers["X-Experience-API-Version"] == "2.0.0"
                                                      else 200), (r.text, unsigned.text)
    if r.status_code == 400:
        assert r.json()["error"]["message"] == unsigned.json()["error"]["message"], r.text
        assert "outside the years 0001 to 9999 in UTC" in r.text


async def test_a_signed_statement_nested_too_deeply_is_refused_before_its_signature_is_compared(
    xapi: httpx.AsyncClient, signer: tuple[rsa.RSAPrivateKey, list[str]]
) -> None:
    """An extension nested 1,000 levels passes the parser and the schema, but the signature
    comparison cannot walk it (Python's recursion limit): the statement is refused for its
    nesting, as unsigned, before its signature is compared, never a 500."""
    key, x5c = signer
    s = with_id(statement(actor=unique("kari")))
    s["result"] = {"extensions": {"https://example.org/ext/deep": "__deep__"}}
    deep = b"[" * 1000 + b"1" + b"]" * 1000
    payload = orjson.dumps(s).replace(b'"__deep__"', deep)
    token = compact_jws(key, x5c, payload)
    body, content_type = multipart(sign(s, token), [(token, "application/octet-stream")])
    r = await xapi.post("/statements", content=body.replace(b'"__deep__"', deep),
                        headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(
        'result.extensions["https://example.org/ext/deep"][…]: nested more than 254 levels deep'), r.text
    await assert_not_stored(xapi, s["id"])


async def test_signed_statement_whose_payload_bytes_were_tampered_with_is_400(
    xapi: httpx.AsyncClient, signer: tuple[rsa.RSAPrivateKey, list[str]]
) -> None:
    """Data 2.6.s5.b1/b3: the signature must verify against the x5c certificate; a payload changed
    after signing (the signature kept) is a malformed signature -> 400."""
    key, x5c = signer
    s = with_id(statement(actor=unique("kari")))
    token = compact_jws(key, x5c, orjson.dumps(s))
    header, _, signature = token.split(b".")
    forged = {**s, "result": {"success": True}}
    tampered = header + b"." + b64url(orjson.dumps(forged)) + b"." + signature
    r = await post_multipart(xapi, sign(forged, tampered), [(tampered, "application/octet-stream")])
    assert r.status_code == 400, r.text
    assert "signature" in r.json()["error"]["message"]
    await assert_not_stored(xapi, s["id"])


async def test_signed_statement_that_differs_from_its_signed_payload_is_400(
    xapi: httpx.AsyncClient, signer: tuple[rsa.RSAPrivateKey, list[str]]
) -> None:
    """Data 2.6.s5.b3: the statement received must be equivalent to the JWS payload; changing the
    statement after signing it is rejected."""
    key, x5c = signer
    s = with_id(statement(actor=unique("kari")))
    token = compact_jws(key, x5c, orjson.dumps(s))
    changed = {**s, "result": {"success": False}}
    r = await post_multipart(xapi, sign(changed, token), [(token, "application/octet-stream")])
    assert r.status_code == 400, r.text
    assert "signature" in r.json()["error"]["message"]
    await assert_not_stored(xapi, s["id"])


async def test_signature_attachment_that_is_not_a_jws_is_400(xapi: httpx.AsyncClient) -> None:
    """Data 2.6.s5.b1: a malformed signature is rejected with 400."""
    s = with_id(statement(actor=unique("kari")))
    junk = b"this is not a JWS"
    r = await post_multipart(xapi, sign(s, junk), [(junk, "application/octet-stream")])
    assert r.status_code == 400, r.text
    await assert_not_stored(xapi, s["id"])


async def test_a_control_character_in_a_part_header_is_400_and_attachments_true_reads_stay_whole(
    xapi: httpx.AsyncClient,
) -> None:
    """A bare CR inside a part's Content-Type was kept, stored, and made every attachments=true
    read of the statement (and every query page holding it) a 500 (an attachments audit). It is
    a 400 naming the character now, and nothing is stored."""
    kari = unique("kari")
    content = b"certificate " + kari.encode()
    declared = attachment_object(content, content_type="text/plain; name=caf\u00e9")
    s = with_id(statement(actor=kari, attachments=[declared]))
    r = await post_multipart(xapi, s, [(content, "text/plain\rX-Injected: 1")])
    assert r.status_code == 400, r.text
    assert "part 2 has a control character (U+000D) in a header line" in r.json()["error"]["message"]
    await assert_not_stored(xapi, s["id"])

    # declared with a non-ASCII contentType (which the schema lets through) and sent with a plain part
    r = await post_multipart(xapi, s, [(content, "text/plain")])
    assert r.status_code == 200, r.text
    for params in ({"statementId": s["id"]}, {"agent": orjson.dumps(s["actor"]).decode()}):
        r = await xapi.get("/statements", params={**params, "attachments": "true"})
        assert r.status_code == 200, r.text
        [data] = parse_multipart_response(r)[1:]
        assert (data.get_content_type(), part_bytes(data)) == ("text/plain", content)


async def test_the_part_hash_header_repeats_the_sha2_as_the_statement_spells_it(xapi: httpx.AsyncClient) -> None:
    """A statement declaring its sha2 in upper case gets its data back under that spelling, so a
    client matching the JSON's sha2 with the part's X-Experience-API-Hash as strings finds it."""
    content = b"upper " + unique("kari").encode()
    upper = hashlib.sha256(content).hexdigest().upper()
    s = with_id(statement(actor=unique("kari"), attachments=[{**attachment_object(content), "sha2": upper}]))
    r = await post_multipart(xapi, s, [(content, "text/plain")])
    assert r.status_code == 200, r.text
    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    parts = parse_multipart_response(r)
    assert orjson.loads(part_bytes(parts[0]))["attachments"][0]["sha2"] == upper
    assert [p["X-Experience-API-Hash"] for p in parts[1:]] == [upper]


async def test_a_statement_lacking_the_id_its_signature_holds_is_400(
    xapi: httpx.AsyncClient, signer: tuple[rsa.RSAPrivateKey, list[str]]
) -> None:
    """Data 2.6: the LRS gives an id only to a statement without one; a statement sent without the
    id of its signed original was stored under a new id its signature contradicts."""
    key, x5c = signer
    s = with_id(statement(actor=unique("kari")))
    token = compact_jws(key, x5c, orjson.dumps(s))
    sent = {k: v for k, v in sign(s, token).items() if k != "id"}
    r = await post_multipart(xapi, sent, [(token, "application/octet-stream")])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("signature: the JWS payload has an id")
    await assert_not_stored(xapi, s["id"])
    r = await xapi.get("/statements", params={"agent": orjson.dumps(s["actor"]).decode()})
    assert r.json()["statements"] == []

    # a PUT gives the id in its statementId parameter: the signed id there is the statement's
    body, ctype = multipart(sent, [(token, "application/octet-stream")])
    other = str(uuid.uuid4())
    r = await xapi.put("/statements", params={"statementId": other}, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400, r.text
    assert "first difference at id" in r.json()["error"]["message"]
    r = await xapi.put("/statements", params={"statementId": s["id"]}, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 204, r.text
    r = await xapi.get("/statements", params={"statementId": s["id"], "attachments": "true"})
    assert part_bytes(parse_multipart_response(r)[1]) == token


async def test_a_bad_signature_in_a_batch_names_its_statement(
    xapi: httpx.AsyncClient, signer: tuple[rsa.RSAPrivateKey, list[str]]
) -> None:
    """A batch's schema errors name the statement ([2].verb.id ...); its signature errors do too."""
    key, x5c = signer
    good = [with_id(statement(actor=unique("kari"))) for _ in range(2)]
    bad = with_id(statement(actor=unique("kari")))
    tokens = [compact_jws(key, x5c, orjson.dumps(s)) for s in good]
    bad_token = compact_jws(key, x5c, orjson.dumps({**bad, "result": {"success": True}}))
    batch = [sign(good[0], tokens[0]), sign(good[1], tokens[1]), sign(bad, bad_token)]
    parts = [(t, "application/octet-stream") for t in (*tokens, bad_token)]
    r = await post_multipart(xapi, batch, parts)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("[2] signature: payload does not match the statement")
    for s in (*good, bad):
        await assert_not_stored(xapi, s["id"])


@pytest.fixture(scope="module")
def budget_server(pg: EmbeddedPostgres) -> Iterator[Server]:
    """A server whose query pages carry at most 1,000 bytes of attachment data."""
    with server_of_its_own(pg, {"SPOR_QUERY_ATTACHMENT_BYTES_MAX": "1000"}) as s:
        yield s


async def test_a_page_with_attachments_ends_at_the_byte_budget_and_more_goes_on(budget_server: Server) -> None:
    """Ten statements with 30 MB of attachments each made one 300 MB response held in memory
    (an attachments audit: 75 -> 619 MB). A page now ends where its attachment data would pass
    SPOR_QUERY_ATTACHMENT_BYTES_MAX (its first statement always in), and more goes on: every
    statement once, each with its data."""
    tenant = await make_tenant(budget_server.database_url, budget_server.base_url)
    async with xapi_client(budget_server, tenant, "2.0.0") as xapi:
        kari = unique("kari")
        files = [bytes([i]) * 400 for i in range(5)] + [b"big" * 500]  # 400 B each, then 1,500 B
        sent = []
        for content in files:
            s = with_id(statement(actor=kari, attachments=[attachment_object(content)]))
            r = await post_multipart(xapi, s, [(content, "text/plain")])
            assert r.status_code == 200, r.text
            sent.append((s["id"], content))
        shared = with_id(statement(actor=kari, attachments=[attachment_object(files[0])]))  # data already on a page
        assert (await post_multipart(xapi, shared, [(files[0], "text/plain")])).status_code == 200
        plain = with_id(statement(actor=kari))
        assert (await xapi.post("/statements", json=plain)).status_code == 200
        pages: list[list[str]] = []
        got: dict[str, bytes] = {}
        r = await xapi.get("/statements", params={"agent": orjson.dumps(plain["actor"]).decode(),
                                                  "attachments": "true", "ascending": "true"})
        while True:
            assert r.status_code == 200, r.text
            parts = parse_multipart_response(r)
            page = orjson.loads(part_bytes(parts[0]))
            pages.append([s["id"] for s in page["statements"]])
            assert sum(len(part_bytes(p)) for p in parts[1:]) <= 1000 or len(page["statements"]) == 1
            got |= {p["X-Experience-API-Hash"]: part_bytes(p) for p in parts[1:]}
            if not page["more"]:
                break
            r = await xapi.get(budget_server.base_url + page["more"])
        ids = [i for p in pages for i in p]
        assert ids == [sid for sid, _ in sent] + [shared["id"], plain["id"]]
        # 400 + 400 fit and a third would not; the 1,500 B file (over the budget alone) is a page
        # of its own, first on it; the statement sharing file 0 carries it again on its own page
        assert [len(p) for p in pages] == [2, 2, 1, 1, 2]
        assert set(got.values()) == set(files)


async def test_the_audit_of_a_page_cut_by_the_attachment_budget_names_only_whom_it_holds(
        budget_server: Server) -> None:
    """A query's audit row counts and names the statements its response holds: those the
    attachment budget left for the next page are recorded with that page (a review: they were
    recorded with both)."""
    tenant = await make_tenant(budget_server.database_url, budget_server.base_url)
    people = [unique(n) for n in ("kari", "ola", "per")]
    async with xapi_client(budget_server, tenant, "2.0.0") as xapi:
        for i, who in enumerate(people):
            content = bytes([i]) * 600  # two would pass the 1,000-byte budget
            s = with_id(statement(actor=who, attachments=[attachment_object(content)]))
            assert (await post_multipart(xapi, s, [(content, "text/plain")])).status_code == 200
        r = await xapi.get("/statements", params={"attachments": "true", "ascending": "true"})
        pages = 1
        while True:
            assert r.status_code == 200, r.text
            page = orjson.loads(part_bytes(parse_multipart_response(r)[0]))
            assert len(page["statements"]) == 1
            if not page["more"]:
                break
            r = await xapi.get(budget_server.base_url + page["more"])
            pages += 1
    assert pages == 3
    queries = [q for q in await audit_trail(budget_server.database_url, tenant.store)
               if q["action"] == "statements.query"]
    assert [(q["records"], q["request"]["persons"]) for q in queries] == [
        (1, [agent_key(statement(actor=who)["actor"])]) for who in people]


async def _posted_with_attachments(client: httpx.AsyncClient) -> tuple[dict, bytes, bytes]:
    kari = unique("kari")
    text, binary = f"Certificate for {kari}\n".encode(), bytes(range(256)) * 400
    s = with_id(statement(actor=kari, attachments=[attachment_object(text),
                                                   attachment_object(binary, content_type="application/pdf")]))
    r = await post_multipart(client, s, [(text, "text/plain"), (binary, "application/pdf")])
    assert r.status_code == 200, r.text
    return s, text, binary


async def test_head_with_attachments_says_what_get_would_send_without_a_body(xapi: httpx.AsyncClient) -> None:
    """HEAD is GET without the body (RFC 9110 9.3.2): a multipart response's Content-Length is the
    one GET sends (its random boundary has a fixed length), for one statement and for a query."""
    s, _, _ = await _posted_with_attachments(xapi)
    for params in ({"statementId": s["id"], "attachments": "true"},
                   {"agent": orjson.dumps(s["actor"]).decode(), "attachments": "true"}):
        got = await xapi.get("/statements", params=params)
        head = await xapi.head("/statements", params=params)
        assert got.status_code == head.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"].startswith("multipart/mixed; boundary=")
        assert int(head.headers["content-length"]) == len(got.content) > 102_400


async def test_head_with_attachments_reads_no_attachment_data(server: Server) -> None:
    """HEAD takes the attachments' types and sizes, not their data, from the store (a page of
    large files read only to be thrown away), and GET still reads the data."""
    from lrs.app import create_app
    from lrs.settings import Settings

    tenant = await make_tenant(server.database_url, server.base_url)
    app = create_app(Settings.from_env().with_(database_url=server.database_url, pool_min_size=1, pool_max_size=2))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver/xapi", auth=(tenant.key, tenant.secret),
            headers={"X-Experience-API-Version": "1.0.3"}) as client:
        s, text, binary = await _posted_with_attachments(client)
        repo = app.state.statements
        reads: list[list[str]] = []
        contents = repo.attachment_contents

        async def counted(store_id: int, sha2s: list[str]) -> list:
            reads.append(sha2s)
            return await contents(store_id, sha2s)

        repo.attachment_contents = counted
        params = {"statementId": s["id"], "attachments": "true"}
        head = await client.head("/statements", params=params)
        assert head.status_code == 200 and reads == []
        got = await client.get("/statements", params=params)
        assert got.status_code == 200 and len(reads) == 1
        assert int(head.headers["content-length"]) == len(got.content)
        assert {part_bytes(p) for p in parse_multipart_response(got)[1:]} == {text, binary}
