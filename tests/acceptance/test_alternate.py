"""The Alternate Request Syntax (1.0.3 Communication 1.3): supported in 1.0.3, refused in 2.0.0."""

from __future__ import annotations

import asyncio
import base64
import uuid
from urllib.parse import urlencode

import httpx
import orjson

from tests.conftest import Server, Tenant
from tests.statements import statement

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def client(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url + "/xapi", timeout=30)


def auth(tenant: Tenant) -> str:
    return "Basic " + base64.b64encode(f"{tenant.key}:{tenant.secret}".encode()).decode()


async def test_put_and_get_statements_with_everything_in_the_form(server: Server, tenant: Tenant) -> None:
    sid = str(uuid.uuid4())
    async with client(server) as c:
        r = await c.post("/statements", params={"method": "PUT"}, headers=FORM, data={
            "statementId": sid, "content": orjson.dumps(statement()).decode(),
            "Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"})
        assert r.status_code == 204, r.text
        r = await c.post("/statements", params={"method": "GET"}, headers=FORM, data={
            "statementId": sid, "Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3"})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == sid


async def test_content_is_read_as_utf_8_whatever_charset_the_form_s_content_type_names(
        server: Server, tenant: Tenant) -> None:
    """1.3.s3.b5: "The LRS MUST interpret this content as a UTF-8 string" (it is text of a form,
    itself UTF-8): a charset in the Content-Type form parameter does not change how it is read."""
    async with client(server) as c:
        for charset in ("iso-8859-1", '"UTF-16"', "windows-1252"):
            sid = str(uuid.uuid4())
            s = statement(activity="utf8-" + charset.strip('"'))
            s["object"]["definition"] = {"name": {"nb-NO": "Ærø og Tromsø"}}
            r = await c.post("/statements", params={"method": "PUT"}, headers=FORM, data={
                "statementId": sid, "content": orjson.dumps(s).decode(), "Authorization": auth(tenant),
                "X-Experience-API-Version": "1.0.3", "Content-Type": f"application/json; charset={charset}"})
            assert r.status_code == 204, (charset, r.text)
            r = await c.get("/statements", params={"statementId": sid},
                            headers={"Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3"})
            assert r.json()["object"]["definition"]["name"] == {"nb-NO": "Ærø og Tromsø"}, charset


async def test_a_form_cut_off_before_it_ends_is_not_acted_on(server: Server, tenant: Tenant) -> None:
    """A client that hangs up before its form body is complete sent no request: nothing of it is
    applied. Acting on the part that arrived applied a state PUT whose If-Match had not arrived
    (a check skipped), and stored a statement from a request never finished. The log says the
    client went (499), not that the server failed (500)."""
    agent = orjson.dumps({"mbox": "mailto:kari@example.org"}).decode()
    where = {"activityId": "https://courses.example.org/cut", "agent": agent, "stateId": "cut-" + uuid.uuid4().hex}
    head = {"Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3"}
    async with client(server) as c:
        assert (await c.put("/activities/state", params=where, json={"v": "original"}, headers=head)).status_code == 204
        form = urlencode({**head, **where, "Content-Type": "application/json", "content": '{"v": "overwritten"}',
                          "If-Match": '"' + "0" * 40 + '"'}).encode()
        cut = form[:form.index(b"&If-Match")]
        host, port = server.base_url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /xapi/activities/state?method=PUT HTTP/1.1\r\nHost: spor\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     + f"Content-Length: {len(form)}\r\nX-Request-Id: req-cut-form\r\n\r\n".encode() + cut)
        await writer.drain()
        await asyncio.sleep(0.3)  # the server has the part that was sent
        writer.close()
        for _ in range(600):  # the request's log line, 30 s at most
            lines = [orjson.loads(x) for x in server.logs().splitlines() if "req-cut-form" in x]
            if any(x.get("event") == "request" for x in lines):
                break
            await asyncio.sleep(0.05)
        got = await c.get("/activities/state", params=where, headers=head)
    assert got.json() == {"v": "original"}
    assert [x["status"] for x in lines if x.get("event") == "request"] == [499], lines
    assert not any(x.get("event") == "unhandled_error" for x in lines), lines


async def test_documents_with_if_match_from_the_form(server: Server, tenant: Tenant) -> None:
    agent = orjson.dumps({"mbox": "mailto:kari@example.org"}).decode()
    common = {"Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3",
              "activityId": "https://courses.example.org/a", "agent": agent, "stateId": "s"}
    async with client(server) as c:
        r = await c.post("/activities/state", params={"method": "PUT"}, headers=FORM,
                         data={**common, "content": '{"a": 1}', "Content-Type": "application/json"})
        assert r.status_code == 204, r.text
        g = await c.post("/activities/state", params={"method": "GET"}, headers=FORM, data=common)
        assert g.json() == {"a": 1} and g.headers["Content-Type"] == "application/json"
        # a HEAD's response has no body (Communication 1.1), the GET's headers otherwise
        h = await c.post("/activities/state", params={"method": "HEAD"}, headers=FORM, data=common)
        assert h.status_code == 200 and h.content == b"" and h.headers["ETag"] == g.headers["ETag"]
        h = await c.post("/statements", params={"method": "HEAD"}, headers=FORM, data={
            "Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3", "limit": "1"})
        assert h.status_code == 200 and h.content == b"" and h.headers["X-Experience-API-Consistent-Through"]
        r = await c.post("/activities/state", params={"method": "POST"}, headers=FORM,
                         data={**common, "content": '{"b": 2}', "Content-Type": "application/json",
                               "If-Match": '"wrong"'})
        assert r.status_code == 412
        r = await c.post("/activities/state", params={"method": "DELETE"}, headers=FORM,
                         data={**common, "If-Match": g.headers["ETag"]})
        assert r.status_code == 204


async def test_a_document_keeps_the_form_s_content_type_or_none_as_a_normal_request_would(
        server: Server, tenant: Tenant) -> None:
    """Without a Content-Type form parameter a document is application/octet-stream, as without
    the header in the normal syntax (it was stored as application/json, and then could not be
    merged); a charset given is rewritten to utf-8, which the content is (1.3.s3.b5)."""
    agent = orjson.dumps({"mbox": "mailto:kari@example.org"}).decode()
    common = {"Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3",
              "activityId": "https://courses.example.org/a", "agent": agent}
    async with client(server) as c:
        for state_id, form_type, stored in (("plain", None, "application/octet-stream"),
                                            ("latin", "text/plain; charset=ISO-8859-1", "text/plain; charset=utf-8")):
            data = {**common, "stateId": state_id, "content": "Tromsø"}
            if form_type:
                data["Content-Type"] = form_type
            r = await c.post("/activities/state", params={"method": "PUT"}, headers=FORM, data=data)
            assert r.status_code == 204, r.text
            g = await c.post("/activities/state", params={"method": "GET"}, headers=FORM,
                             data={**common, "stateId": state_id})
            assert g.headers["Content-Type"] == stored and g.content == "Tromsø".encode(), state_id


async def test_malformed_alternate_requests_are_400(server: Server, tenant: Tenant) -> None:
    base = {"Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3"}
    async with client(server) as c:
        # not POST
        r = await c.put("/statements", params={"method": "PUT"}, headers=FORM, data=base)
        assert r.status_code == 400
        # other query parameters next to method
        r = await c.post("/statements", params={"method": "PUT", "statementId": str(uuid.uuid4())}, headers=FORM,
                         data={**base, "content": orjson.dumps(statement()).decode()})
        assert r.status_code == 400
        # no content for a PUT
        r = await c.post("/statements", params={"method": "PUT"}, headers=FORM, data=base)
        assert r.status_code == 400
        # not a form
        r = await c.post("/statements", params={"method": "PUT"}, json={**base, "statementId": str(uuid.uuid4())})
        assert r.status_code == 400
        # an unsupported version in the form
        r = await c.post("/statements", params={"method": "GET"}, headers=FORM,
                         data={**base, "X-Experience-API-Version": "0.8"})
        assert r.status_code == 400
        assert r.json()["error"]["status"] == 400


async def test_a_header_parameter_that_no_header_can_hold_is_400(server: Server, tenant: Tenant) -> None:
    """A form value becomes a request header: text outside Latin-1 (it was a 500) and control
    characters (a second header smuggled in with a line break) are refused, naming the parameter."""
    base = {"Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3"}
    content = orjson.dumps(statement()).decode()
    async with client(server) as c:
        for name, value, extra in (("If-Match", "\u20ac", {}), ("X-Experience-API-Version", "1.0.3\u20ac", {}),
                                   ("Content-Type", "application/json\ufffd", {"content": content}),
                                   ("If-None-Match", "*\r\nX-Injected: 1", {}), ("If-Match", "a\x00b", {})):
            method = "PUT" if "content" in extra else "GET"
            params = {"method": method}
            data = {**base, **extra, name: value}
            if method == "PUT":
                data["statementId"] = str(uuid.uuid4())
            r = await c.post("/statements" if method == "PUT" else "/about", params=params, headers=FORM, data=data)
            assert r.status_code == 400, (name, value, r.status_code, r.text)
            assert f"{name}: a header parameter" in r.json()["error"]["message"]


async def test_alternate_syntax_is_refused_in_2_0_0(server: Server, tenant: Tenant) -> None:
    async with client(server) as c:
        r = await c.post("/statements", params={"method": "GET"}, headers=FORM,
                         data={"Authorization": auth(tenant), "X-Experience-API-Version": "2.0.0"})
        assert r.status_code == 400
        assert "2.0.0" in r.json()["error"]["message"]
        r = await c.post("/statements", params={"method": "GET"},
                         headers={**FORM, "X-Experience-API-Version": "2.0.0", "Authorization": auth(tenant)},
                         data={"limit": "1"})
        assert r.status_code == 400


async def test_a_version_given_in_the_form_overrides_the_header_and_is_checked(server: Server, tenant: Tenant) -> None:
    """Communication 1.3.s3.b7: the form's X-Experience-API-Version is the request's version, so
    an unsupported one is 400 even when the real header says 1.0.3."""
    sid = str(uuid.uuid4())
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi", auth=(tenant.key, tenant.secret)) as c:
        r = await c.post("/statements", params={"method": "PUT"},
                         data={"statementId": sid, "X-Experience-API-Version": "0.8",
                               "content": orjson.dumps(statement()).decode()},
                         headers={"X-Experience-API-Version": "1.0.3"})
    assert r.status_code == 400, r.text
    assert "0.8" in r.json()["error"]["message"]


async def test_a_form_of_too_many_fields_is_refused_before_anything_else(server: Server, tenant: Tenant) -> None:
    """Four million empty fields held a worker 9.5 s and took it to 900 MB, before the request
    was authenticated (the credential is in the form): a document audit."""
    async with client(server) as c:
        body = b"x=&" * 200_000 + b"X-Experience-API-Version=1.0.3"
        r = await c.post("/activities/state", params={"method": "GET"}, headers=FORM, content=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("the form has more than 64 form parameters; at most 64")


async def test_form_text_that_is_not_utf_8_or_given_twice_is_400_and_nothing_is_stored(
        server: Server, tenant: Tenant) -> None:
    """content=ok%FFok was stored with U+FFFD in place of the byte; content=A&content=B stored B."""
    agent = orjson.dumps({"mbox": f"mailto:form-{uuid.uuid4().hex[:8]}@example.org"}).decode()
    where = {"activityId": "https://courses.example.org/form-text", "agent": agent, "stateId": "s"}
    creds = {"Authorization": auth(tenant), "X-Experience-API-Version": "1.0.3"}
    async with client(server) as c:
        for body, message in (
            (urlencode({**where, **creds}) + "&content=ok%FFok",
             "form parameter 'content' is not UTF-8 once percent-decoded (byte 0xFF at octet 2)"),
            (urlencode({**where, **creds, "content": "A"}) + "&content=B",
             "form parameter 'content' given more than once"),
            (urlencode({**where, **creds, "content": "A"}) + "&stateId=t",
             "form parameter 'stateId' given more than once"),
            (urlencode({**where, **creds, "content": "A"}) + "&authorization=x",
             "form parameter 'authorization' given more than once"),
            (urlencode({**where, **creds}) + "&content=100%", "form parameter 'content' has a '%' not followed by two"),
        ):
            r = await c.post("/activities/state", params={"method": "PUT"}, headers=FORM, content=body.encode())
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["message"].startswith(message), r.text
        r = await c.get("/activities/state", params=where, headers=creds)
        assert r.status_code == 404, r.text
