"""Query parameters are UTF-8 text, exactly as sent (xAPI Communication 1.4.s1.b1).

A percent-escape that is not UTF-8 was read as U+FFFD, so different values became one: State
ids %FF and %FE named the same document, and the agent Bj%F8rn (Bjørn, sent in Latin-1) read
the profile of Bj%E6rn (Bjærn), another person (a document audit). Such a value is a 400 naming
the parameter now, on every resource, and nothing is read or written.
"""

from __future__ import annotations

import httpx
import orjson

from tests.module_clients import clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)

ACTIVITY = "https://courses.example.org/query-text"


def latin1_agent(name: str) -> bytes:
    """An agent parameter percent-encoded from Latin-1 instead of UTF-8."""
    account = {"account": {"homePage": "https://id.example.org", "name": name}}
    text = orjson.dumps(account).decode()
    return b"".join(b"%%%02X" % b for b in text.encode("latin-1"))


async def send(xapi: httpx.AsyncClient, method: str, path: str, query: bytes, **kw: object) -> httpx.Response:
    url = httpx.URL(str(xapi.base_url).rstrip("/") + path, query=query)
    return await xapi.request(method, url, **kw)  # type: ignore[arg-type]


async def test_state_ids_that_are_not_utf_8_are_400_not_one_document(xapi: httpx.AsyncClient) -> None:
    agent = orjson.dumps({"mbox": f"mailto:{unique('q')}@example.org"}).decode()
    base = httpx.QueryParams({"activityId": ACTIVITY, "agent": agent})
    for sid in (b"%FF", b"%FE"):
        r = await send(xapi, "PUT", "/activities/state", str(base).encode() + b"&stateId=" + sid,
                       content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(
            "query parameter 'stateId' is not UTF-8 once percent-decoded (byte 0x"), r.text
    r = await xapi.get("/activities/state", params=base)
    assert (r.status_code, r.json()) == (200, [])


async def test_an_agent_sent_in_latin_1_reads_no_one_s_profile(xapi: httpx.AsyncClient) -> None:
    bjorn = unique("Bjørn")
    r = await xapi.put("/agents/profile", params={"agent": orjson.dumps(
        {"account": {"homePage": "https://id.example.org", "name": bjorn}}).decode(), "profileId": "p"},
        content=b"Bjorn's", headers={"Content-Type": "text/plain", "If-None-Match": "*"})
    assert r.status_code == 204, r.text
    for method, path, rest in (("GET", "/agents/profile", b"&profileId=p"), ("GET", "/agents", b""),
                               ("GET", "/statements", b"")):
        r = await send(xapi, method, path, b"agent=" + latin1_agent(bjorn.replace("ø", "æ")) + rest)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["message"].startswith("query parameter 'agent' is not UTF-8"), r.text
        assert "X-Experience-API-Version" in r.headers


async def test_utf_8_escapes_and_a_stray_percent_still_work(xapi: httpx.AsyncClient) -> None:
    activity = f"https://courses.example.org/{unique('kurs')}-ø-100%"
    r = await xapi.put("/activities/profile", params={"activityId": activity, "profileId": "p"},
                       content=b"ok", headers={"Content-Type": "text/plain", "If-None-Match": "*"})
    assert r.status_code == 204, r.text
    query = str(httpx.QueryParams({"activityId": activity, "profileId": "p"})).encode()
    r = await send(xapi, "GET", "/activities/profile", query)
    assert (r.status_code, r.content) == (200, b"ok")
    # a stray % (not an escape) is kept as it is, as before
    r = await send(xapi, "GET", "/activities/profile", query.replace(b"100%25", b"100%") + b"")
    assert (r.status_code, r.content) == (200, b"ok"), r.text
