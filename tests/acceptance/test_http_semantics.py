"""HTTP semantics every resource shares (an HTTP audit): no cache keeps personal data, one Host,
no redirects for a trailing slash, If-Unmodified-Since on document writes, and what browser
content may read of a response."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson

from tests.conftest import Server, Tenant, xapi_client

AGENT = orjson.dumps({"mbox": "mailto:http-semantics@example.org"}).decode()
STATE = {"activityId": "https://courses.example.org/http", "agent": AGENT, "stateId": "s"}


async def test_personal_data_is_never_cached_and_about_may_be(server: Server, tenant: Tenant) -> None:
    """RFC 9111 5.2.2.5: responses holding learning records carry Cache-Control: no-store (a
    browser on a shared ward PC keyed its cache on the URL alone, Authorization aside)."""
    async with xapi_client(server, tenant, "2.0.0") as c:
        for r in (await c.get("/statements"), await c.get("/activities/state", params=STATE),
                  await c.get("/agents", params={"agent": AGENT}), await c.get("/statements", params={"limit": "x"})):
            assert r.headers.get("cache-control") == "no-store", (r.request.url, r.headers)
        assert "cache-control" not in (await c.get("/about")).headers
    async with httpx.AsyncClient(base_url=server.base_url) as c:
        assert (await c.get("/api/v1/openapi.json")).headers.get("cache-control") == "no-store"


async def test_a_trailing_slash_is_404_not_a_redirect(server: Server, tenant: Tenant) -> None:
    async with xapi_client(server, tenant, "2.0.0") as c:
        for method in ("GET", "POST", "PUT"):
            r = await c.request(method, "/statements/", content=b"{}", headers={"Content-Type": "application/json"})
            assert r.status_code == 404, (method, r.status_code, r.headers)


async def test_an_http_1_1_request_without_exactly_one_host_is_400(server: Server) -> None:
    """RFC 9112 3.2 (MUST); of two Host lines the first was taken, and made a redirect's target."""
    host, port = server.base_url.removeprefix("http://").split(":")
    for head in (b"GET /xapi/about HTTP/1.1\r\nConnection: close\r\n\r\n",
                 b"GET /xapi/about HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head)
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert response.startswith(b"HTTP/1.1 400"), response
        assert b"exactly one Host header" in response and b"x-experience-api-version" in response.lower()
    reader, writer = await asyncio.open_connection(host, int(port))  # HTTP/1.0 needs none
    writer.write(b"GET /xapi/about HTTP/1.0\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_if_unmodified_since_guards_document_writes(server: Server, tenant: Tenant) -> None:
    """RFC 9110 13.1.4: without If-Match, a write is refused (412) when the document changed after
    the date given. It was ignored: a DELETE meant to fail deleted, a POST merged."""
    past = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    future = format_datetime(datetime.now(UTC) + timedelta(days=1), usegmt=True)
    async with xapi_client(server, tenant, "2.0.0") as c:
        assert (await c.put("/activities/state", params=STATE, content=b'{"x":1}',
                            headers={"Content-Type": "application/json", "If-None-Match": "*"})).status_code == 204
        for method, body in (("DELETE", b""), ("POST", b'{"y":2}'), ("PUT", b'{"z":3}')):
            r = await c.request(method, "/activities/state", params=STATE, content=body,
                                headers={"Content-Type": "application/json", "If-Unmodified-Since": past})
            assert r.status_code == 412, (method, r.text)
            assert r.json()["error"]["message"].startswith("If-Unmodified-Since: the document was last modified at")
        assert (await c.get("/activities/state", params=STATE)).json() == {"x": 1}
        # a date after the change lets it through; one that is no date is ignored (13.1.4)
        for value in (future, "yesterday"):
            r = await c.post("/activities/state", params=STATE, content=b'{"y":2}',
                             headers={"Content-Type": "application/json", "If-Unmodified-Since": value})
            assert r.status_code == 204, (value, r.text)
        # If-Match, when given, decides alone
        etag = (await c.get("/activities/state", params=STATE)).headers["ETag"]
        r = await c.delete("/activities/state", params=STATE, headers={"If-Match": etag, "If-Unmodified-Since": past})
        assert r.status_code == 204, r.text


async def test_browser_content_may_read_retry_after(server: Server, tenant: Tenant) -> None:
    async with xapi_client(server, tenant, "2.0.0") as c:
        r = await c.get("/about", headers={"Origin": "https://kurs.example.org"})
    assert "Retry-After" in r.headers["access-control-expose-headers"]


async def test_a_percent_encoded_method_parameter_is_the_alternate_syntax(server: Server, tenant: Tenant) -> None:
    async with xapi_client(server, tenant, "1.0.3") as c:
        r = await c.post(str(c.base_url).rstrip("/") + "/about?%6Dethod=GET", content=b"X-Experience-API-Version=1.0.3",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text


async def test_an_unknown_parameter_with_an_empty_name_is_named_visibly(server: Server, tenant: Tenant) -> None:
    async with xapi_client(server, tenant, "2.0.0") as c:
        r = await c.get(str(c.base_url).rstrip("/") + "/statements?=x&limit=1")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "unknown parameter(s) for GET statements: ''"


async def test_a_conditional_get_of_a_document_answers_304_or_412(server: Server, tenant: Tenant) -> None:
    """RFC 9110 13.2: If-None-Match naming the document's ETag (or If-Modified-Since not before its
    Last-Modified) is 304 with the ETag and no body; an If-Match naming another ETag is 412. All
    were answered 200 with the whole document (an HTTP audit)."""
    where = {**STATE, "stateId": "conditional"}
    async with xapi_client(server, tenant, "2.0.0") as c:
        assert (await c.put("/activities/state", params=where, content=b'{"page":1}',
                            headers={"Content-Type": "application/json", "If-None-Match": "*"})).status_code == 204
        full = await c.get("/activities/state", params=where)
        etag, modified = full.headers["ETag"], full.headers["Last-Modified"]
        for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'}, {"If-None-Match": "*"},
                        {"If-Modified-Since": modified}):
            r = await c.get("/activities/state", params=where, headers=headers)
            assert (r.status_code, r.content, r.headers["ETag"]) == (304, b"", etag), headers
        for headers in ({"If-None-Match": '"other"'}, {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
                        {"If-Match": etag}, {"If-Modified-Since": "no date"}):
            r = await c.get("/activities/state", params=where, headers=headers)
            assert (r.status_code, r.content) == (200, b'{"page":1}'), headers
        r = await c.get("/activities/state", params=where, headers={"If-Match": '"other"'})
        assert r.status_code == 412 and etag.strip('"') in r.json()["error"]["message"]
        r = await c.head("/activities/state", params=where, headers={"If-None-Match": etag})
        assert r.status_code == 304


async def test_conditional_requests_come_after_credentials_and_read_only_what_they_can(
        server: Server, tenant: Tenant) -> None:
    """A review: a 304 must not answer a request whose credentials are refused; an unreadable
    If-None-Match on a GET is as none (it never failed a GET before); a multiple-document DELETE
    honours If-Unmodified-Since against its newest document, as a single one does."""
    where = {**STATE, "stateId": "after-credentials"}
    async with xapi_client(server, tenant, "2.0.0") as c:
        assert (await c.put("/activities/state", params=where, content=b"x",
                            headers={"Content-Type": "text/plain", "If-None-Match": "*"})).status_code == 204
        etag = (await c.get("/activities/state", params=where)).headers["ETag"]
        r = await c.get("/activities/state", params=where, headers={"If-None-Match": ","})
        assert (r.status_code, r.content) == (200, b"x")
        set_of = {k: v for k, v in where.items() if k != "stateId"}
        r = await c.delete("/activities/state", params=set_of,
                           headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
        assert r.status_code == 412, r.text
        assert (await c.get("/activities/state", params=where)).status_code == 200
    async with httpx.AsyncClient(base_url=server.base_url + "/xapi") as anonymous:
        r = await anonymous.get("/activities/state", params=where,
                                headers={"If-None-Match": etag, "X-Experience-API-Version": "2.0.0"})
        assert r.status_code == 401


async def test_a_version_or_credentials_header_given_twice_is_400(server: Server, tenant: Tenant) -> None:
    """An HTTP audit: of two X-Experience-API-Version (or Authorization) lines the first decided;
    a proxy that joins them into one line would change the answer."""
    async with xapi_client(server, tenant, "2.0.0") as c:
        r = await c.get("/statements", headers=[("X-Experience-API-Version", "1.0.3"),
                                                ("X-Experience-API-Version", "2.0.0")])
        assert (r.status_code, r.json()["error"]["message"]) == (400, "X-Experience-API-Version given more than once")
        twice = [("Authorization", "Basic eDp5"), ("Authorization", "Basic eDp5")]
        r = await c.get("/statements", auth=None, headers=twice)  # (auth=None: only these two)
        assert (r.status_code, r.json()["error"]["message"]) == (400, "Authorization given more than once")
