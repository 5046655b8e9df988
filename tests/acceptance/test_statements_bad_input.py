"""Bad input to the Statements resource ends in a 4xx that says what was wrong, never a 500
(xAPI Communication 3.2: 3.2.s2.b1 invalid arguments and malformed JSON -> 400, 3.2.s3.b2 a message
explaining the cause, 3.2.s3.b6 content type that does not match the content, 3.2.s3.b11 too large
-> 413; Data 2.2.s4 statement structure).

Section numbers are those of the 1.0.3 documents; the 2.0.0 text is the same.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import random
import string
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from lrs.http.common import MAX_JSON_VALUES
from lrs.store.embedded import EmbeddedPostgres
from tests.conftest import Server, make_tenant, server_of_its_own, xapi_client
from tests.module_clients import clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)
from tests.statements import statement, with_id

SMALL_LIMIT = 4096


@pytest.fixture
def one(clients: dict[str, httpx.AsyncClient]) -> httpx.AsyncClient:
    """For checks of the body before any version-specific rule applies: one version is enough."""
    return clients["2.0.0"]


@pytest.fixture(scope="module")
def small_server(pg: EmbeddedPostgres) -> Iterator[Server]:
    """A server of its own whose request bodies may be at most SMALL_LIMIT bytes."""
    with server_of_its_own(pg, {"SPOR_MAX_BODY_BYTES": str(SMALL_LIMIT)}) as s:
        yield s


def error_message(r: httpx.Response) -> str:
    """The JSON error body's message (Communication 3.2.s3.b2: a message explaining the cause)."""
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers.get("content-type")
    body = r.json()
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


async def assert_not_stored(xapi: httpx.AsyncClient, sid: str) -> None:
    assert (await xapi.get("/statements", params={"statementId": sid})).status_code == 404


# ---------------------------------------------------------------------------------------------
# Bodies that are not statements


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"{", "JSON"),
        (b'{"actor": }', "JSON"),
        (b"\xff\xfe\x00garbage", "JSON"),
        (b"[1, 2, 3]", "statement"),
        (b'["a", "b"]', "statement"),
        (b"[{}, 5]", "statement"),
        (b"null", "statement"),
        (b"42", "statement"),
        (b'"a string"', "statement"),
        (b"[[]]", "statement"),
    ],
    ids=["empty", "truncated", "syntax", "binary", "array-of-numbers", "array-of-strings", "object-and-number",
         "null", "number", "string", "nested-array"],
)
async def test_post_body_that_is_not_statements_is_400_with_a_message(
    one: httpx.AsyncClient, body: bytes, words: str,
) -> None:
    """Communication 3.2.s2.b1: malformed JSON or structures that are not statements -> 400."""
    xapi = one
    r = await xapi.post("/statements", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert words.lower() in error_message(r).lower()


@pytest.mark.parametrize("body", [b"{", b"[1,2]", b"null", b"[]"])
async def test_put_body_that_is_not_a_statement_is_400(one: httpx.AsyncClient, body: bytes) -> None:
    """Communication 2.1.1.s1 / 3.2.s2.b1: PUT takes one statement object."""
    xapi = one
    sid = str(uuid.uuid4())
    r = await xapi.put("/statements", params={"statementId": sid}, content=body,
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    error_message(r)
    await assert_not_stored(xapi, sid)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml",
                                          "application/x-www-form-urlencoded; charset=utf-8",
                                          "image/png"])
async def test_statement_sent_with_a_content_type_other_than_json_is_400(
    one: httpx.AsyncClient, content_type: str,
) -> None:
    """Communication 3.2.s3.b6: the content type must match the content (JSON -> application/json)."""
    xapi = one
    s = with_id(statement(actor=unique("kari")))
    r = await xapi.post("/statements", content=orjson.dumps(s), headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text
    error_message(r)
    await assert_not_stored(xapi, s["id"])


async def test_json_content_type_with_charset_parameter_is_accepted(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.1: application/json with parameters is still application/json."""
    s = with_id(statement(actor=unique("kari")))
    r = await xapi.post("/statements", content=orjson.dumps(s),
                        headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("content_type", "encode"), [
    ("application/json; charset=utf-16", lambda text: text.encode("utf-16")),
    ('application/json; charset="UTF-16LE"', lambda text: text.encode("utf-16-le")),
    ("application/json; charset=iso-8859-1", lambda text: text.encode("latin-1")),
    ("application/json", lambda text: b"\xef\xbb\xbf" + text.encode()),  # a UTF-8 byte order mark
    ("application/json; charset=utf-16", lambda text: text.encode("utf-16-be")),  # no mark: big-endian
    ("application/json; charset=UTF-32", lambda text: text.encode("utf-32")),
    ('application/json; foo="x;charset=klingon"; charset=windows-1252', lambda text: text.encode("cp1252")),
])
async def test_json_in_the_charset_its_content_type_names_is_read_as_such(
        xapi: httpx.AsyncClient, content_type: str, encode: Any) -> None:
    """RFC 8259 8.1: JSON is UTF-8 between systems, but a body labelled otherwise is read as it
    says rather than refused as invalid JSON (and a UTF-8 byte order mark may be ignored)."""
    s = with_id(statement(actor=unique("kari")))
    s["verb"]["display"] = {"nb-NO": "fullførte"}
    r = await xapi.post("/statements", content=encode(orjson.dumps(s).decode()), headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    got = await xapi.get("/statements", params={"statementId": s["id"]})
    assert got.json()["verb"]["display"] == {"nb-NO": "fullførte"}


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("application/json; charset=klingon", b"{}", "charset 'klingon' is not one Spor reads"),
    ("application/json; charset=base64", b"{}", "charset 'base64' is not one Spor reads"),
    # (Python's own codec names: these made a 500, or rewrote the JSON's escapes)
    ("application/json; charset=undefined", b"{}", "charset 'undefined' is not one Spor reads"),
    ("application/json; charset=punycode", b"abc-9999999", "charset 'punycode' is not one Spor reads"),
    ("application/json; charset=unicode_escape", b'{"a": "\\u0022"}', "charset 'unicode_escape' is not one Spor"),
    ("application/json; charset=utf-16le", b"{\x00\x00\xd8}", "request body is not utf-16le text"),
])
async def test_a_charset_that_cannot_be_read_is_400_naming_it(
        xapi: httpx.AsyncClient, content_type: str, body: bytes, message: str) -> None:
    r = await xapi.post("/statements", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text
    assert message in error_message(r)


@pytest.mark.parametrize(("body", "message"), [
    ('{"actor": "Bj\u00f8rn"}'.encode("latin-1"), "byte 0xF8 at octet 13, invalid start byte"),
    (b"\xff\xfe{}", "byte 0xFF at octet 0, invalid start byte"),
    (b'{"a": "\xc0\xaf"}', "byte 0xC0 at octet 7, invalid start byte"),
])
async def test_a_body_that_is_not_utf_8_is_400_naming_the_byte_and_where(
        xapi: httpx.AsyncClient, body: bytes, message: str) -> None:
    """A Latin-1 body sent without a charset was "str is not valid UTF-8: surrogates not
    allowed: line 1 column 1 (char 0)": no surrogate, and not where (a robustness audit)."""
    r = await xapi.post("/statements", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert error_message(r) == (f"request body is not valid JSON: not UTF-8 ({message}); "
                                "send UTF-8, or name the charset in the Content-Type")


async def test_a_multipart_statement_part_in_utf_16_is_read_as_such(xapi: httpx.AsyncClient) -> None:
    s = with_id(statement(actor=unique("kari")))
    content = b"attached text"
    sha2 = hashlib.sha256(content).hexdigest()
    s["attachments"] = [{"usageType": "http://example.org/usage", "display": {"en-US": "a"},
                         "contentType": "text/plain", "length": len(content), "sha2": sha2}]
    body = (b"--b0\r\nContent-Type: application/json; charset=utf-16\r\n\r\n"
            + orjson.dumps(s).decode().encode("utf-16")
            + b"\r\n--b0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n"
            + b"X-Experience-API-Hash: " + sha2.encode() + b"\r\n\r\n" + content + b"\r\n--b0--\r\n")
    r = await xapi.post("/statements", content=body, headers={"Content-Type": 'multipart/mixed; boundary="b0"'})
    assert r.status_code == 200, r.text
    assert r.json() == [s["id"]]


async def test_multipart_declared_without_a_boundary_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 1.5.2.s2.b2: a multipart/mixed body must conform to RFC 2046 (boundary)."""
    s = with_id(statement(actor=unique("kari")))
    r = await xapi.post("/statements", content=orjson.dumps(s), headers={"Content-Type": "multipart/mixed"})
    assert r.status_code == 400, r.text
    assert "boundary" in error_message(r)


# ---------------------------------------------------------------------------------------------
# Statement validation names the JSON path


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda s: s.update(actor={"mbox": "kari@example.org"}), "actor.mbox"),
        (lambda s: s.update(verb={"id": "not an iri"}), "verb.id"),
        (lambda s: s["verb"].pop("id"), "verb"),
        (lambda s: s.pop("actor"), "actor"),
        (lambda s: s.update(result={"score": {"scaled": 2.5}}), "result.score.scaled"),
        (lambda s: s.update(result={"success": "true"}), "result.success"),
        (lambda s: s.update(context={"registration": "not-a-uuid"}), "context.registration"),
        (lambda s: s.update(timestamp="last tuesday"), "timestamp"),
        (lambda s: s.update(id="not-a-uuid"), "id"),
        (lambda s: s.update(bogus=1), "bogus"),
        (lambda s: s.update(result=None), "result"),
        (lambda s: s["object"].update(objectType="activity"), "object.objectType"),
    ],
    ids=["mbox-without-mailto", "verb-id-not-iri", "verb-without-id", "no-actor", "scaled-over-1", "success-as-string",
         "registration-not-uuid", "timestamp-not-iso", "id-not-uuid", "unknown-property", "null-value",
         "objectType-wrong-case"],
)
async def test_invalid_statement_is_400_naming_the_json_path(xapi: httpx.AsyncClient, mutate: Any, path: str) -> None:
    """Data 2.2.s4.b1 (the LRS MUST reject such statements) and 3.2.s3.b2 (a message explaining the
    cause): the message names where in the statement the problem is."""
    s = statement(actor=unique("kari"))
    mutate(s)
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 400, r.text
    assert path in error_message(r)


async def test_invalid_statement_in_a_batch_names_its_index(xapi: httpx.AsyncClient) -> None:
    """In a batch, the path starts with the statement's position, so the sender can find it."""
    good = with_id(statement(actor=unique("kari")))
    bad = with_id(statement(actor=unique("ola")))
    bad["actor"] = {"mbox": "ola@example.org"}
    r = await xapi.post("/statements", json=[good, good | {"id": str(uuid.uuid4())}, bad])
    assert r.status_code == 400, r.text
    assert "[2].actor.mbox" in error_message(r)
    await assert_not_stored(xapi, good["id"])


async def test_deeply_nested_json_is_rejected_without_a_server_error(xapi: httpx.AsyncClient) -> None:
    """Hostile input is still just bad input: 400, not 500."""
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await xapi.post("/statements", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text[:200]


async def test_extensions_with_deep_nesting_do_not_cause_a_server_error(xapi: httpx.AsyncClient) -> None:
    """Extensions may hold any JSON (Data 2.4.6 / 5.3); a deeply nested value is accepted or
    rejected, never a 500."""
    value: Any = "leaf"
    for _ in range(200):
        value = {"k": value}
    s = with_id(statement(actor=unique("kari"), result={"extensions": {"https://ext.example.org/deep": value}}))
    r = await xapi.post("/statements", json=s)
    assert r.status_code in (200, 400, 413), r.text[:200]


# ---------------------------------------------------------------------------------------------
# Size limit (own server with a small SPOR_MAX_BODY_BYTES)


async def test_body_over_the_configured_limit_is_413_with_a_message(small_server: Server) -> None:
    """Communication 3.2.s3.b11/b12: a request larger than the configured maximum is rejected with
    413 Request Entity Too Large; the statement is not stored."""
    tenant = await make_tenant(small_server.database_url, small_server.base_url)
    async with xapi_client(small_server, tenant) as xapi:
        s = with_id(statement(actor=unique("kari"), result={"response": "x" * (SMALL_LIMIT * 2)}))
        r = await xapi.post("/statements", json=s)
        assert r.status_code == 413, r.text
        assert str(SMALL_LIMIT) in error_message(r)
        assert "X-Experience-API-Consistent-Through" in r.headers
        await assert_not_stored(xapi, s["id"])
        small = with_id(statement(actor=unique("kari")))
        assert (await xapi.post("/statements", json=small)).status_code == 200


async def test_chunked_body_over_the_limit_is_413(small_server: Server) -> None:
    """Communication 3.2.s3.b11: the limit holds without a Content-Length header too."""
    tenant = await make_tenant(small_server.database_url, small_server.base_url)
    s = with_id(statement(actor=unique("kari"), result={"response": "x" * (SMALL_LIMIT * 2)}))
    payload = orjson.dumps(s)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 1000):
            yield payload[i:i + 1000]

    async with xapi_client(small_server, tenant) as xapi:
        r = await xapi.post("/statements", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        await assert_not_stored(xapi, s["id"])


async def test_put_body_over_the_limit_is_413(small_server: Server) -> None:
    """Communication 3.2.s3.b11 for PUT."""
    tenant = await make_tenant(small_server.database_url, small_server.base_url)
    async with xapi_client(small_server, tenant, "2.0.0") as xapi:
        s = with_id(statement(actor=unique("kari"), result={"response": "y" * (SMALL_LIMIT * 2)}))
        r = await xapi.put("/statements", params={"statementId": s["id"]}, json=s)
        assert r.status_code == 413, r.text
        await assert_not_stored(xapi, s["id"])


async def test_json_nested_too_deeply_is_a_400_not_a_500(xapi: httpx.AsyncClient) -> None:
    """Extension values are any JSON; the parser takes deeper nesting than the writer (254
    levels) or the validator (~256): a statement or an agent parameter nested 300 deep was a 500."""
    s = statement()
    s["result"] = {"extensions": {"https://example.org/ext/deep": "__deep__"}}
    body = orjson.dumps(s).replace(b'"__deep__"', b"[" * 300 + b"1" + b"]" * 300)
    r = await xapi.post("/statements", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert error_message(r) == ('result.extensions["https://example.org/ext/deep"][…]: nested more than 254 levels '
                                "deep (objects and arrays within the statement); Spor stores JSON nested at most 254 "
                                "levels"), r.text
    # the deepest the writer takes: the statement, result, extensions and 251 arrays
    for depth, status in ((251, 200), (252, 400)):
        body = orjson.dumps(s).replace(b'"__deep__"', b"[" * depth + b"1" + b"]" * depth)
        r = await xapi.post("/statements", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, (depth, r.text)
    agent = '{"mbox":' + "[" * 300 + "1" + "]" * 300 + "}"  # (orjson cannot write it either)
    for path in ("/statements", "/agents"):
        r = await xapi.get(path, params={"agent": agent})
        assert r.status_code == 400, (path, r.text)


NUL_PLACES = [
    (lambda s: s.update(actor={"mbox": "mailto:a\x00@example.org"}), "actor.mbox"),
    (lambda s: s["verb"].update(id="http://example.org/verbs/x\x00"), "verb.id"),
    (lambda s: s["object"].update(definition={"name": {"en": "\x00"}}), "object.definition.name.en"),
    (lambda s: s.update(result={"response": "a\x00b"}), "result.response"),
    (lambda s: s.update(result={"extensions": {"https://example.org/ext/\x00": 1}}),
     "result.extensions.https://example.org/ext/\\u0000 (a property name)"),
    (lambda s: s.update(context={"contextActivities": {"parent": [{"id": "https://example.org/c\x00"}]}}),
     "context.contextActivities.parent[0].id"),
]


@pytest.mark.parametrize(("mutate", "path"), NUL_PLACES)
async def test_a_nul_character_outside_extension_values_is_400_naming_where(
        xapi: httpx.AsyncClient, mutate: Any, path: str) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000. An identifier with one was a 500 on the
    append; a free-text member with one was stored, and then every re-send of the same statement
    was a 500 (the comparison read stored payloads as jsonb) and the read models could not parse
    it. Refused with the member's path, and nothing of the batch is kept. (Extension values may
    hold it: the next test.)"""
    good = with_id(statement(actor=unique("kari")))
    bad = with_id(statement(actor=unique("ola")))
    mutate(bad)
    r = await xapi.post("/statements", json=[good, bad])
    assert r.status_code == 400, r.text
    assert f"[1].{path}: contains the character U+0000 (NUL)" in error_message(r), error_message(r)
    await assert_not_stored(xapi, good["id"])
    r = await xapi.put("/statements", params={"statementId": bad["id"]}, json=bad)
    assert r.status_code == 400 and f"{path}: contains the character U+0000" in error_message(r), r.text


async def test_an_extension_value_may_hold_a_nul_character(xapi: httpx.AsyncClient, server: Server) -> None:
    """Data 4.1: an LRS "MUST NOT reject a Statement based on the values of the extensions map",
    and JSON strings may hold U+0000. The statement is stored and returned as sent, a re-send is
    the same statement and a changed one a conflict, the canonical Activity definition (kept as
    jsonb, which cannot hold the character) has U+FFFD there, and the read models take the
    statement like any other (migration 0026)."""
    kari = unique("kari")
    activity = f"https://courses.example.org/nul-{kari}"
    s = with_id(statement(actor=kari))
    s["object"] = {"id": activity, "definition": {"extensions": {"https://ext.example.org/d": "x\x00y"}}}
    s["result"] = {"completion": True, "extensions": {"https://ext.example.org/r": ["\x00", {"k": "a\x00"}]}}
    s["context"] = {"extensions": {"https://ext.example.org/c": "\\\x00"}}
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 200, r.text
    got = (await xapi.get("/statements", params={"statementId": s["id"]})).json()
    assert (got["result"], got["context"], got["object"]) == (s["result"], s["context"], s["object"])
    assert (await xapi.post("/statements", json=s)).status_code == 200  # the same again
    changed = {**s, "result": {**s["result"], "completion": False}}
    assert (await xapi.post("/statements", json=changed)).status_code == 409
    definition = (await xapi.get("/activities", params={"activityId": activity})).json()["definition"]
    assert definition["extensions"] == {"https://ext.example.org/d": "x\ufffdy"}
    conn = await asyncpg.connect(server.database_url)
    try:  # what the projection workers read of it (a jsonb cast of the body failed before 0026)
        store = await conn.fetchval("SELECT store_id FROM statements WHERE statement_id = $1::uuid", s["id"])
        facts = await conn.fetch("SELECT statement_id::text AS id FROM projections.statement_facts($1, 0, $2) "
                                 "WHERE statement_id = $3::uuid", store, 2**63 - 1, s["id"])
    finally:
        await conn.close()
    assert [f["id"] for f in facts] == [s["id"]]


async def test_a_backslash_before_u0000_is_ordinary_text(xapi: httpx.AsyncClient) -> None:
    s = with_id(statement(actor=unique("kari")))
    s["result"] = {"response": "C:\\u0000\\dir"}
    assert (await xapi.post("/statements", json=s)).status_code == 200
    again = await xapi.post("/statements", json=s)  # the same statement sent again is accepted
    assert again.status_code == 200, again.text
    got = await xapi.get("/statements", params={"statementId": s["id"]})
    assert got.json()["result"]["response"] == "C:\\u0000\\dir"


async def test_a_nul_in_an_attachment_part_header_is_400(xapi: httpx.AsyncClient) -> None:
    s = statement()
    content = b"hello"
    sha2 = hashlib.sha256(content).hexdigest()
    s["attachments"] = [{"usageType": "https://example.org/usage", "display": {"en": "a"},
                         "contentType": "text/plain", "length": len(content), "sha2": sha2}]
    body = (b"--x\r\nContent-Type: application/json\r\n\r\n" + orjson.dumps(s) + b"\r\n--x\r\n"
            b"Content-Type: te\x00xt/plain\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: "
            + sha2.encode() + b"\r\n\r\n" + content + b"\r\n--x--\r\n")
    r = await xapi.post("/statements", content=body, headers={"Content-Type": "multipart/mixed; boundary=x"})
    assert r.status_code == 400 and "NUL" in r.text, r.text


async def test_an_identifier_too_long_to_index_is_400_and_its_neighbours_are_stored(
        xapi: httpx.AsyncClient) -> None:
    """A B-tree entry holds about 2,700 bytes: an activity id of 3,000 random letters (random, so
    PostgreSQL cannot compress it) with a definition, which the store keeps by its id, was a 500.
    It is refused with 400 saying what is too long; the requests group commit joined with it are
    stored (a robustness probe sent them together). A verb id as long is stored and found: the
    filter terms are indexed by a hash of the term (migration 0043), where it too was a 400."""
    letters = "".join(random.choice(string.ascii_letters) for _ in range(3000))
    long_activity = with_id(statement(actor=unique("kari"), activity=letters))
    good = [with_id(statement(actor=unique("ola"))) for _ in range(6)]
    answers = await asyncio.gather(xapi.post("/statements", json=long_activity),
                                   *(xapi.post("/statements", json=g) for g in good))
    assert answers[0].status_code == 400, answers[0].text
    assert "too long for Spor to index" in error_message(answers[0]) \
        and "activity id" in error_message(answers[0])
    assert [a.status_code for a in answers[1:]] == [200] * len(good)
    for g in good:
        assert (await xapi.get("/statements", params={"statementId": g["id"]})).status_code == 200
    await assert_not_stored(xapi, long_activity["id"])

    long_verb = with_id(statement(actor=unique("kari")))
    long_verb["verb"] = {"id": "http://example.org/verbs/" + letters}
    r = await xapi.post("/statements", json=long_verb)
    assert r.status_code == 200, r.text
    found = await xapi.get("/statements", params={"verb": long_verb["verb"]["id"], "format": "ids"})
    assert [s["id"] for s in found.json()["statements"]] == [long_verb["id"]]

    r = await xapi.put("/activities/state", params={
        "activityId": "https://courses.example.org/a", "agent": '{"mbox":"mailto:kari@example.org"}',
        "stateId": letters}, json={"page": 1})
    assert r.status_code == 400 and "stateId" in error_message(r), r.text


async def test_a_body_with_a_content_coding_is_415_and_nothing_is_stored(xapi: httpx.AsyncClient) -> None:
    """RFC 9110 8.4.1: a content coding the server does not support is 415. A gzipped statement was
    a 400 about invalid UTF-8, and a gzipped state document was stored as its gzip bytes under the
    JSON type it named (a robustness probe)."""
    s = with_id(statement(actor=unique("kari")))
    packed = gzip.compress(orjson.dumps(s))
    r = await xapi.post("/statements", content=packed,
                        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 415 and "Content-Encoding 'gzip'" in error_message(r), r.text
    await assert_not_stored(xapi, s["id"])
    where = {"activityId": "https://courses.example.org/gz", "agent": '{"mbox":"mailto:kari@example.org"}',
             "stateId": "gz-" + uuid.uuid4().hex}
    r = await xapi.put("/activities/state", params=where, content=gzip.compress(b'{"page": 1}'),
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 415, r.text
    assert (await xapi.get("/activities/state", params=where)).status_code == 404
    ok = await xapi.post("/statements", json=with_id(statement(actor=unique("ola"))),
                         headers={"Content-Encoding": "identity"})
    assert ok.status_code == 200, ok.text
    # a list header on several lines is one list: identity twice is still no coding, gzip on a
    # second line is one (a review)
    ok = await xapi.post("/statements", json=with_id(statement(actor=unique("ola"))),
                         headers=[("Content-Encoding", "identity"), ("Content-Encoding", "identity")])
    assert ok.status_code == 200, ok.text
    s = with_id(statement(actor=unique("kari")))
    r = await xapi.post("/statements", content=gzip.compress(orjson.dumps(s)),
                        headers=[("Content-Type", "application/json"), ("Content-Encoding", "identity"),
                                 ("Content-Encoding", "gzip")])
    assert r.status_code == 415 and "Content-Encoding 'gzip'" in error_message(r), r.text
    await assert_not_stored(xapi, s["id"])


async def test_a_body_of_more_json_values_than_one_request_may_carry_is_413(one: httpx.AsyncClient) -> None:
    """60 MB of "[],[],..." in an extension became 20 million Python objects (1.8 GB, the event
    loop held 5 s: a memory audit). A body of more than MAX_JSON_VALUES values is 413 before it
    is parsed (a single statement, a PUT, a batch); a long string full of commas and brackets
    is a few values and is stored."""
    crowded = with_id(statement(actor=unique("kari"), result={"extensions": {
        "https://example.org/values": [[] for _ in range(MAX_JSON_VALUES)]}}))
    r = await one.post("/statements", json=crowded)
    assert r.status_code == 413, r.text
    assert "JSON values, more than the 1,000,000 one request may carry: split a batch" in error_message(r)
    await assert_not_stored(one, crowded["id"])
    r = await one.put("/statements", params={"statementId": crowded["id"]}, json=crowded)
    assert r.status_code == 413, r.text
    many = [with_id(statement(actor=unique("kari"), result={"extensions": {"https://example.org/v": list(range(300))}}))
            for _ in range(3400)]
    r = await one.post("/statements", json=many)
    assert r.status_code == 413, r.text
    await assert_not_stored(one, many[0]["id"])
    commas = with_id(statement(actor=unique("kari"), result={"response": ",[{" * 1_000_000}))
    r = await one.post("/statements", json=commas)
    assert r.status_code == 200, r.text
