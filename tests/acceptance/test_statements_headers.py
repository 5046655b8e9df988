"""Headers of the Statements resource: version negotiation (xAPI Communication 3.3),
X-Experience-API-Consistent-Through (2.1.3.s2.b5), Last-Modified (2.1.3.s2.b8), HEAD (1.1) and
HTTP Basic authentication (4.0, 3.2.s2.b2).

Section numbers are those of the 1.0.3 documents; the 2.0.0 text is the same.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import orjson
import pytest

from lrs.ops.timestamps import parse_timestamp
from tests.conftest import Server, Tenant, make_tenant, xapi_client
from tests.module_clients import clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)
from tests.statements import agent, statement, with_id

CT = "X-Experience-API-Consistent-Through"
VERSION = "X-Experience-API-Version"


@pytest.fixture(scope="module")
async def raw(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no default headers and no credentials."""
    async with httpx.AsyncClient(base_url=server.base_url + "/xapi", timeout=30) as c:
        yield c


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# X-Experience-API-Version


@pytest.mark.parametrize("sent", ["1.0.3", "2.0.0"])
async def test_every_kind_of_response_carries_the_version_header(
    raw: httpx.AsyncClient, shared_tenant: Tenant, sent: str,
) -> None:
    """Communication 3.3.s3.b1: the version header is on every response: success, 400, 401,
    404, 409."""
    auth = {"Authorization": basic(shared_tenant.key, shared_tenant.secret), VERSION: sent}
    s = with_id(statement(actor=unique("kari")))
    responses = {
        "200": await raw.post("/statements", json=s, headers=auth),
        "200 GET": await raw.get("/statements", params={"statementId": s["id"]}, headers=auth),
        "400": await raw.get("/statements", params={"bogus": "1"}, headers=auth),
        "401": await raw.get("/statements", headers={VERSION: sent}),
        "404": await raw.get("/statements", params={"statementId": str(uuid.uuid4())}, headers=auth),
        "409": await raw.post("/statements", json={**s, "result": {"success": False}}, headers=auth),
    }
    for label, r in responses.items():
        assert r.status_code == int(label[:3]), (label, r.text)
        assert r.headers.get(VERSION) == sent, label


async def test_missing_version_header_is_400_and_still_carries_a_version_header(
    raw: httpx.AsyncClient, shared_tenant: Tenant,
) -> None:
    """Communication 3.3.s3.b4.1/b7: a request without the version header is rejected with 400 and
    a short description; 3.3.s3.b1: the response still names a version."""
    r = await raw.get("/statements", headers={"Authorization": basic(shared_tenant.key, shared_tenant.secret)})
    assert r.status_code == 400, r.text
    assert VERSION in r.json()["error"]["message"]
    assert r.headers.get(VERSION) in ("1.0.3", "2.0.0")


async def test_missing_version_header_on_post_stores_nothing(raw: httpx.AsyncClient, shared_tenant: Tenant) -> None:
    """Communication 3.3.s3.b4.1: the request is rejected, so the statement is not stored."""
    auth = {"Authorization": basic(shared_tenant.key, shared_tenant.secret)}
    s = with_id(statement(actor=unique("kari")))
    r = await raw.post("/statements", json=s, headers=auth)
    assert r.status_code == 400, r.text
    check = await raw.get("/statements", params={"statementId": s["id"]}, headers={**auth, VERSION: "1.0.3"})
    assert check.status_code == 404


@pytest.mark.parametrize("bad", ["0.9", "0.95", "1.1.0", "1.1", "2.1.0", "3.0.0", "banana", "", "1.0.", "1.0.x",
                                 "1.0.3.1", "2.0.0-rc1"])
async def test_unsupported_version_header_is_400(raw: httpx.AsyncClient, shared_tenant: Tenant, bad: str) -> None:
    """Communication 3.3.s3.b4 (before 1.0.0), b6 (1.1.0 or greater, other than the 2.0.0 this
    LRS also serves) and b7 (400 with a short description)."""
    auth = basic(shared_tenant.key, shared_tenant.secret)
    r = await raw.get("/statements", headers={"Authorization": auth, VERSION: bad})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]
    assert r.headers.get(VERSION) in ("1.0.3", "2.0.0")


@pytest.mark.parametrize("old", ["1.0", "1.0.0", "1.0.1", "1.0.2", "1.0.4", "1.0.99"])
async def test_older_1_0_versions_are_served_as_1_0_3(raw: httpx.AsyncClient, shared_tenant: Tenant, old: str) -> None:
    """Communication 3.3.s3.b3/b5: 1.0 and any 1.0.x are accepted ("MUST accept requests with a
    version header starting with 1.0."), a later patch than 1.0.3 too; 3.3.s3.b2: the response
    names the latest patch version, 1.0.3."""
    auth = {"Authorization": basic(shared_tenant.key, shared_tenant.secret), VERSION: old}
    s = with_id(statement(actor=unique("kari")))
    r = await raw.post("/statements", json=s, headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers[VERSION] == "1.0.3"
    r = await raw.get("/statements", params={"statementId": s["id"]}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers[VERSION] == "1.0.3"
    assert r.json()["version"] == "1.0.0"


# ---------------------------------------------------------------------------------------------
# X-Experience-API-Consistent-Through


async def test_consistent_through_is_on_every_statements_response_after_authentication(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b5: "on all responses to Statements Resource requests": PUT, POST,
    GET single, GET query, HEAD and error responses (400, 404, 409)."""
    s = with_id(statement(actor=unique("kari")))
    responses = {
        "PUT 204": await xapi.put("/statements", params={"statementId": s["id"]}, json=s),
        "POST 200": await xapi.post("/statements", json=with_id(statement(actor=unique("ola")))),
        "GET one 200": await xapi.get("/statements", params={"statementId": s["id"]}),
        "GET query 200": await xapi.get("/statements", params={"limit": "1"}),
        "HEAD 200": await xapi.head("/statements", params={"statementId": s["id"]}),
        "GET 404": await xapi.get("/statements", params={"statementId": str(uuid.uuid4())}),
        "GET 400": await xapi.get("/statements", params={"bogus": "1"}),
        "POST 400": await xapi.post("/statements", json={"actor": "nobody"}),
        "PUT 409": await xapi.put("/statements", params={"statementId": s["id"]},
                                  json={**s, "result": {"success": True}}),
    }
    now = datetime.now(UTC)
    for label, r in responses.items():
        assert r.status_code == int(label[-3:]), (label, r.text)
        assert CT in r.headers, label
        value = parse_timestamp(r.headers[CT])
        assert now - timedelta(minutes=5) < value <= now + timedelta(seconds=5), (label, r.headers[CT])


async def test_consistent_through_is_also_on_responses_refused_before_or_at_authentication(
        raw: httpx.AsyncClient, xapi: httpx.AsyncClient) -> None:
    """2.1.3.s2.b5 says all responses: a request refused for its credentials names no store, so it
    gets a time true of every store (the epoch); one refused for its version header after good
    credentials gets its store's time."""
    version = xapi.headers[VERSION]
    no_store = {
        "no credentials": await raw.get("/statements", headers={VERSION: version}),
        "wrong secret": await raw.get("/statements", headers={
            VERSION: version, "Authorization": basic("spor_nobody", "wrong")}),
    }
    for label, r in no_store.items():
        assert r.status_code == 401, label
        assert r.headers[CT] == "1970-01-01T00:00:00.000Z" and r.headers[VERSION], label
    no_version = xapi.build_request("GET", "/statements")
    del no_version.headers[VERSION]
    refused = {"no version header": await xapi.send(no_version),
               "unknown version": await xapi.get("/statements", headers={VERSION: "0.9"})}
    now = datetime.now(UTC)
    for label, r in refused.items():
        assert r.status_code == 400, (label, r.text)
        assert now - timedelta(minutes=5) < parse_timestamp(r.headers[CT]) <= now + timedelta(seconds=5), label


async def test_consistent_through_is_on_statements_responses_refused_before_any_handler(
        xapi: httpx.AsyncClient) -> None:
    """2.1.3.s2.b5, "all responses to Statements Resource requests": a method the resource does not
    have (405) and, under 1.0.3, alternate request syntax refused for its form. These never reach
    the handler that reads the store's time, so they carry the epoch, true of every store."""
    version = xapi.headers[VERSION]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = {
        "DELETE": await xapi.delete("/statements"),
        "PATCH": await xapi.patch("/statements", json={}),
        "alternate syntax sent as GET": await xapi.get("/statements", params={"method": "GET"}),
        "alternate syntax with a second query parameter": await xapi.post(
            "/statements", params={"method": "GET", "ascending": "true"}, content=b"limit=1", headers=form),
        "alternate syntax for an unknown method": await xapi.post(
            "/statements", params={"method": "OPTIONS"}, content=b"limit=1", headers=form),
    }
    for label, r in refused.items():
        assert r.status_code in (400, 405), (label, r.status_code, r.text)
        assert r.headers.get(CT) is not None, (label, version)
        parse_timestamp(r.headers[CT])


async def test_consistent_through_is_not_before_the_stored_time_of_a_statement_just_written(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.3.s2.b5: every statement stored before Consistent-Through is available;
    so once a write has returned, the next response's value is at or after its "stored"."""
    s = with_id(statement(actor=unique("kari")))
    post = await xapi.post("/statements", json=s)
    assert post.status_code == 200
    r = await xapi.get("/statements", params={"statementId": s["id"]})
    stored = parse_timestamp(r.json()["stored"])
    assert parse_timestamp(r.headers[CT]) >= stored
    assert parse_timestamp(post.headers[CT]) >= stored


async def test_consistent_through_is_iso_8601(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b5: ISO 8601 combined date and time, with a time zone."""
    r = await xapi.get("/statements", params={"limit": "1"})
    value = r.headers[CT]
    assert "T" in value and (value.endswith("Z") or value[-6] in "+-"), value
    assert parse_timestamp(value).tzinfo is not None


# ---------------------------------------------------------------------------------------------
# Last-Modified


async def test_single_get_has_last_modified_matching_stored(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b8: Last-Modified matches the statement's "stored" (HTTP dates
    have whole seconds)."""
    s = with_id(statement(actor=unique("kari")))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    r = await xapi.get("/statements", params={"statementId": s["id"]})
    assert "Last-Modified" in r.headers
    last_modified = parsedate_to_datetime(r.headers["Last-Modified"])
    stored = parse_timestamp(r.json()["stored"]).replace(microsecond=0)
    assert last_modified == stored


async def test_a_response_s_date_is_never_before_its_last_modified(xapi: httpx.AsyncClient) -> None:
    """RFC 9110 8.8.2.1: Last-Modified is not later than Date. uvicorn's Date was renewed once a
    second, so a statement stored and read back within that second had a Last-Modified up to a
    second after the response's Date (an audit: 0-10 of 40-150 tries). One Date header only."""
    for _ in range(60):
        s = with_id(statement(actor=unique("kari")))
        assert (await xapi.post("/statements", json=s)).status_code == 200
        r = await xapi.get("/statements", params={"statementId": s["id"]})
        assert len(r.headers.get_list("date")) == 1, r.headers
        assert parsedate_to_datetime(r.headers["Last-Modified"]) <= parsedate_to_datetime(r.headers["Date"]), r.headers
        await asyncio.sleep(0.013)  # (to land at other points within a second)


async def test_voided_statement_get_has_last_modified(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b8 applies to voidedStatementId fetches as well."""
    s = with_id(statement(actor=unique("kari")))
    v = with_id({"actor": agent("admin"), "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                 "object": {"objectType": "StatementRef", "id": s["id"]}})
    assert (await xapi.post("/statements", json=[s, v])).status_code == 200
    r = await xapi.get("/statements", params={"voidedStatementId": s["id"]})
    assert r.status_code == 200
    stored = parse_timestamp(r.json()["stored"]).replace(microsecond=0)
    assert parsedate_to_datetime(r.headers["Last-Modified"]) == stored


# ---------------------------------------------------------------------------------------------
# HEAD


IGNORED_ON_COMPARE = {"date", "x-request-id", "content-length", CT.lower()}


@pytest.mark.parametrize("kind", ["single", "query", "missing", "bad"])
async def test_head_has_the_status_and_headers_of_get_and_no_body(xapi: httpx.AsyncClient, kind: str) -> None:
    """Communication 1.1.s3.b1: HEAD is answered as the identical GET would be, without a body
    (Content-Length may differ, b2)."""
    s = with_id(statement(actor=unique("kari")))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    params = {
        "single": {"statementId": s["id"]},
        "query": {"agent": orjson.dumps(s["actor"]).decode()},
        "missing": {"statementId": str(uuid.uuid4())},
        "bad": {"bogus": "1"},
    }[kind]
    g = await xapi.get("/statements", params=params)
    h = await xapi.head("/statements", params=params)
    assert h.status_code == g.status_code
    assert h.content == b""
    for name, value in g.headers.items():
        if name.lower() in IGNORED_ON_COMPARE:
            continue
        assert h.headers.get(name) == value, name
    assert CT in h.headers


# ---------------------------------------------------------------------------------------------
# Authentication


async def test_no_credentials_is_401_with_a_basic_challenge(raw: httpx.AsyncClient) -> None:
    """Communication 3.2.s2.b2 and RFC 7235 3.1: 401 when authentication is required, with a
    WWW-Authenticate challenge."""
    for method in ("GET", "POST", "PUT", "HEAD"):
        r = await raw.request(method, "/statements", headers={VERSION: "1.0.3"},
                              params={"statementId": str(uuid.uuid4())} if method == "PUT" else None,
                              json=statement() if method in ("POST", "PUT") else None)
        assert r.status_code == 401, (method, r.text)
        assert r.headers.get("WWW-Authenticate", "").lower().startswith("basic"), method


async def test_wrong_secret_is_401_and_stores_nothing(raw: httpx.AsyncClient, shared_tenant: Tenant) -> None:
    """Communication 3.2.s2.b2: credentials that are refused -> 401; nothing is applied."""
    s = with_id(statement(actor=unique("kari")))
    wrong = basic(shared_tenant.key, "wrong-secret")
    r = await raw.post("/statements", json=s, headers={VERSION: "1.0.3", "Authorization": wrong})
    assert r.status_code == 401, r.text
    assert "WWW-Authenticate" in r.headers
    good = {VERSION: "1.0.3", "Authorization": basic(shared_tenant.key, shared_tenant.secret)}
    assert (await raw.get("/statements", params={"statementId": s["id"]}, headers=good)).status_code == 404


async def test_unknown_key_is_401(raw: httpx.AsyncClient) -> None:
    """Communication 3.2.s2.b2."""
    r = await raw.get("/statements", headers={VERSION: "1.0.3", "Authorization": basic("spor_nosuchkey", "x")})
    assert r.status_code == 401, r.text


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"no-colon").decode(),
     "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Bearer abc.def.ghi", "Digest username=x", "garbage"],
)
async def test_malformed_authorization_header_is_401_not_400_or_500(raw: httpx.AsyncClient, header: str) -> None:
    """Communication 3.2.s2.b2: credentials that cannot be accepted are refused with 401."""
    r = await raw.get("/statements", headers={VERSION: "1.0.3", "Authorization": header})
    assert r.status_code == 401, r.text
    assert r.headers.get(VERSION) == "1.0.3"


async def test_a_credential_sees_only_its_own_stores_statements(xapi: httpx.AsyncClient, server: Server) -> None:
    """DESIGN 5 (stores are tenants): another store's credential gets 404 for the id and an empty
    query result."""
    s = with_id(statement(actor=unique("kari")))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    other = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, other, xapi.headers[VERSION]) as stranger:
        assert (await stranger.get("/statements", params={"statementId": s["id"]})).status_code == 404
        r = await stranger.get("/statements", params={"agent": orjson.dumps(s["actor"]).decode()})
        assert r.json()["statements"] == []


@pytest.mark.parametrize("sent", ["2.0", "2.0.0", "2.0.1"])
async def test_2_0_and_any_2_0_patch_are_served_as_2_0_0(raw: httpx.AsyncClient, shared_tenant: Tenant,
                                                       sent: str) -> None:
    """xAPI 2.0 (conformance requirement XAPI-00331): a version header other than "2.0" or "2.0.x"
    is refused, so those are served, as 2.0.0, the one 2.0 version there is."""
    auth = {"Authorization": basic(shared_tenant.key, shared_tenant.secret), VERSION: sent}
    s = with_id(statement(actor=unique("kari")))
    r = await raw.post("/statements", json=s, headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers[VERSION] == "2.0.0"
    r = await raw.get("/statements", params={"statementId": s["id"]}, headers=auth)
    assert r.status_code == 200 and r.headers[VERSION] == "2.0.0" and r.json()["version"] == "2.0.0"
