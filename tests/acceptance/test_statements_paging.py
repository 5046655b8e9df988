"""Paging through query results with "more" (xAPI Communication 2.1.3.s1, Data 2.5 StatementResult):
each statement exactly once, in order, even while new statements arrive between pages.

Section numbers are those of the 1.0.3 documents; the 2.0.0 text is the same.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from lrs.ops.timestamps import parse_timestamp
from lrs.store.embedded import EmbeddedPostgres
from tests.conftest import Server, make_tenant, server_of_its_own, xapi_client
from tests.module_clients import clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)
from tests.statements import agent, statement, with_id


def js(value: Any) -> str:
    return orjson.dumps(value).decode()


async def post_each(xapi: httpx.AsyncClient, actor: str, n: int) -> list[str]:
    """Post n statements one request at a time (distinct stored order); their ids, oldest first."""
    made = []
    for _ in range(n):
        s = with_id(statement(actor=actor))
        r = await xapi.post("/statements", json=s)
        assert r.status_code == 200, r.text
        made.append(s["id"])
    return made


async def follow(xapi: httpx.AsyncClient, server: Server, more: str) -> dict[str, Any]:
    """GET a "more" IRL: relative to the LRS's host (Data 2.5: path and query, no scheme/host)."""
    assert more.startswith("/"), f"more must be a path without scheme and host, got {more!r}"
    r = await xapi.get(server.base_url + more)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def walk(xapi: httpx.AsyncClient, server: Server, params: dict[str, str]) -> list[list[str]]:
    r = await xapi.get("/statements", params=params)
    assert r.status_code == 200, r.text
    page = r.json()
    pages = [[s["id"] for s in page["statements"]]]
    while page["more"]:
        assert len(pages) < 50, "more never ends"
        page = await follow(xapi, server, page["more"])
        pages.append([s["id"] for s in page["statements"]])
    return pages


async def test_walking_more_with_limit_2_returns_every_statement_once_newest_first(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """Communication 2.1.3.s1: results in reverse stored order, limited per page, with "more"
    leading to the rest; Data 2.5: "more" is empty when there are no more results."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 5)
    pages = await walk(xapi, server, {"agent": js(agent(kari)), "limit": "2"})
    assert pages == [made[4:2:-1], made[2:0:-1], made[0:1]]


async def test_walking_more_ascending_returns_every_statement_once_oldest_first(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """Communication 2.1.3.s1 ascending=true, paged."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 5)
    pages = await walk(xapi, server, {"agent": js(agent(kari)), "limit": "2", "ascending": "true"})
    assert pages == [made[0:2], made[2:4], made[4:5]]


async def test_the_last_full_page_has_an_empty_more(xapi: httpx.AsyncClient, server: Server) -> None:
    """Data 2.5 StatementResult: "more" is an empty string when there are no more results, so a
    result that ends exactly on a page boundary does not point at an empty page."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 4)
    pages = await walk(xapi, server, {"agent": js(agent(kari)), "limit": "2"})
    assert pages == [made[3:1:-1], made[1::-1]]


async def test_paging_through_one_batch_with_a_shared_stored_time_returns_each_once(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """Statements of one batch may share one "stored" value; paging must still return each once,
    in the order of the batch (newest first = last of the batch first)."""
    kari = unique("kari")
    batch = [with_id(statement(actor=kari)) for _ in range(5)]
    r = await xapi.post("/statements", json=batch)
    assert r.status_code == 200, r.text
    made = [s["id"] for s in batch]
    pages = await walk(xapi, server, {"agent": js(agent(kari)), "limit": "2"})
    assert [sid for page in pages for sid in page] == made[::-1]
    pages = await walk(xapi, server, {"agent": js(agent(kari)), "limit": "2", "ascending": "true"})
    assert [sid for page in pages for sid in page] == made


async def test_more_keeps_the_filters_of_the_first_request(xapi: httpx.AsyncClient, server: Server) -> None:
    """A "more" IRL continues the same query: statements of other agents do not appear later."""
    kari, ola = unique("kari"), unique("ola")
    mine = []
    for _ in range(4):
        mine += await post_each(xapi, kari, 1)
        await post_each(xapi, ola, 1)
    pages = await walk(xapi, server, {"agent": js(agent(kari)), "limit": "1", "ascending": "true"})
    assert [sid for page in pages for sid in page] == mine


async def test_statements_arriving_between_pages_cause_no_repeats_or_skips(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """Paging by "more" must return each statement of the original result exactly once even when
    newer statements are stored between page requests (reverse stored order would otherwise shift
    the window and repeat statements)."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 5)
    r = await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "2"})
    page = r.json()
    seen = [s["id"] for s in page["statements"]]
    while page["more"]:
        await post_each(xapi, kari, 2)
        page = await follow(xapi, server, page["more"])
        seen += [s["id"] for s in page["statements"]]
    assert len(seen) == len(set(seen)), "a statement was returned twice"
    assert [sid for sid in seen if sid in made] == made[::-1], "an original statement was skipped or reordered"


async def test_every_page_of_a_query_reports_the_first_page_s_consistent_through(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """The pages of a query read up to the first page's horizon, so each reports the first page's
    Consistent-Through: a later one would claim statements stored since that no page holds, and a
    client reading incrementally since the last page's value would never see them."""
    kari = unique("kari")
    await post_each(xapi, kari, 3)
    r = await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "1"})
    first = r.headers["X-Experience-API-Consistent-Through"]
    page, throughs = r.json(), []
    while page["more"]:
        late = await post_each(xapi, kari, 1)  # stored after the first page, in no page of this query
        r = await xapi.get(server.base_url + page["more"])
        page = r.json()
        throughs.append(r.headers["X-Experience-API-Consistent-Through"])
        assert late[0] not in [s["id"] for s in page["statements"]]
    assert len(throughs) == 2 and set(throughs) == {first}, (first, throughs)
    stored = (await xapi.get("/statements", params={"statementId": late[0]})).json()["stored"]
    assert parse_timestamp(first) < parse_timestamp(stored)


async def test_a_more_token_of_an_earlier_spor_reports_a_consistent_through_its_pages_hold(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """A token made before tokens carried the first page's Consistent-Through (one followed across
    an upgrade): its pages report the moment before the newest statement at or before its horizon
    was stored, not the store's now (upgrade audit: statements stored after the horizon were in
    neither the chain nor a query since its Consistent-Through)."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 3)
    first = (await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "1"})).json()
    token = first["more"].split("more=", 1)[1]
    state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    del state["ct"]
    old = "/xapi/statements?more=" + base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")
    late = await post_each(xapi, kari, 1)
    r = await xapi.get(server.base_url + old)
    assert r.status_code == 200 and [s["id"] for s in r.json()["statements"]] == [made[1]]
    through = parse_timestamp(r.headers["X-Experience-API-Consistent-Through"])
    newest = (await xapi.get("/statements", params={"statementId": made[-1]})).json()["stored"]
    assert through == parse_timestamp(newest) - timedelta(microseconds=1)
    stored_late = (await xapi.get("/statements", params={"statementId": late[0]})).json()["stored"]
    assert through < parse_timestamp(stored_late)
    # the next token carries it on
    r = await xapi.get(server.base_url + r.json()["more"])
    assert parse_timestamp(r.headers["X-Experience-API-Consistent-Through"]) == through


async def test_statements_arriving_between_ascending_pages_cause_no_repeats_or_skips(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """As above, oldest first: every original statement exactly once, in order, and nothing twice."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 5)
    r = await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "2", "ascending": "true"})
    page = r.json()
    seen = [s["id"] for s in page["statements"]]
    while page["more"]:
        await post_each(xapi, kari, 1)
        page = await follow(xapi, server, page["more"])
        seen += [s["id"] for s in page["statements"]]
    assert len(seen) == len(set(seen)), "a statement was returned twice"
    assert [sid for sid in seen if sid in made] == made


async def test_a_statement_voided_between_pages_is_not_returned_on_a_later_page(
    xapi: httpx.AsyncClient, server: Server,
) -> None:
    """Communication 2.1.4.s1.b1: a voided statement is never returned by a query, later pages of
    a query started before the voiding included."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 4)
    r = await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "2"})
    first = r.json()
    voiding = with_id({"actor": agent(unique("admin")), "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                       "object": {"objectType": "StatementRef", "id": made[0]}})
    assert (await xapi.post("/statements", json=voiding)).status_code == 200
    rest = await follow(xapi, server, first["more"])
    assert [s["id"] for s in rest["statements"]] == [made[1]]


async def test_empty_result_has_empty_more_and_no_statements(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b4 / Data 2.5: no match -> 200, statements [] and more ""."""
    r = await xapi.get("/statements", params={"agent": js(agent(unique("nobody"))), "limit": "2"})
    assert r.status_code == 200, r.text
    assert r.json() == {"statements": [], "more": ""}


async def test_a_more_url_with_a_garbled_token_is_400_not_500(xapi: httpx.AsyncClient) -> None:
    """Communication 3.2.s2.b1: an invalid argument is a 400."""
    r = await xapi.get("/statements", params={"more": "definitely-not-a-token"})
    assert r.status_code == 400, r.text
    assert "more" in r.json()["error"]["message"]


async def test_a_more_url_cannot_be_followed_with_another_stores_credential(
    xapi: httpx.AsyncClient, server: Server
) -> None:
    """DESIGN 5 (stores are tenants): a continuation from one store never shows another store's
    statements, whoever follows it."""
    kari = unique("kari")
    await post_each(xapi, kari, 3)
    r = await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "1"})
    more = r.json()["more"]
    assert more
    other = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, other, xapi.headers["X-Experience-API-Version"]) as stranger:
        r = await stranger.get(server.base_url + more)
        assert r.status_code in (200, 400, 403, 404), r.text
        if r.status_code == 200:
            assert r.json()["statements"] == []


async def test_a_forged_more_token_asks_no_more_than_a_query_could(xapi: httpx.AsyncClient, server: Server) -> None:
    """The token is the client's to send back, and so to forge: a limit past the server's
    maximum is cut to it (a token asking for 10^9 rows read the whole store into memory), and a
    NUL in a filter term is a 400, not a failed query."""
    kari = unique("kari")
    batch = [statement(actor=kari) for _ in range(130)]
    assert (await xapi.post("/statements", json=batch)).status_code == 200
    first = (await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "1"})).json()
    token = first["more"].split("more=", 1)[1]
    state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))

    def forged(**changes: Any) -> str:
        raw = orjson.dumps({**state, **changes})
        return "/xapi/statements?more=" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    page = await follow(xapi, server, forged(limit=10**9))
    # the server's maximum (SPOR_QUERY_LIMIT_MAX, 100 by default), and a way on to the rest
    assert len(page["statements"]) == 100 and page["more"]
    r = await xapi.get(server.base_url + forged(verb="http://example.org/v\x00"))
    assert r.status_code == 400 and "continuation token" in r.text
    r = await xapi.get(server.base_url + forged(limit=-5))
    assert r.status_code == 400
    # every member is checked as a query's parameters are (each of these was a 500)
    for bad in ({"after": 2**63}, {"horizon": -1}, {"verb": 123}, {"fmt": "bogus"},
                {"since": "not a time"}, {"limit": "7"},
                # a Consistent-Through outside the years 1 to 9999 in UTC, or without a zone
                {"ct": "0001-01-01T00:00:00+01:00"}, {"ct": "9999-12-31T23:59:59-01:00"},
                {"ct": "2026-01-01T00:00:00"}, {"ct": 5}):
        r = await xapi.get(server.base_url + forged(**bad))
        assert r.status_code == 400 and "continuation token" in r.text, (bad, r.text)


async def test_since_and_until_at_the_ends_of_time_are_answered(xapi: httpx.AsyncClient) -> None:
    """Valid timestamps an offset beyond the first or last instant a datetime holds in UTC (each
    was a 500): taken as that end, so they mean what they say."""
    kari = unique("kari")
    made = await post_each(xapi, kari, 2)
    who = js(agent(kari))
    everything = {"since": "0001-01-01T00:00:00+01:00", "until": "9999-12-31T23:59:59-01:00"}
    r = await xapi.get("/statements", params={"agent": who, **everything})
    assert r.status_code == 200, r.text
    assert sorted(s["id"] for s in r.json()["statements"]) == sorted(made)
    nothing = {"since": "9999-12-31T23:59:59-01:00"}
    r = await xapi.get("/statements", params={"agent": who, **nothing})
    assert r.status_code == 200 and r.json()["statements"] == [], r.text
    r = await xapi.get("/statements", params={"agent": who, "until": "0001-01-01T00:00:00+01:00"})
    assert r.status_code == 200 and r.json()["statements"] == [], r.text


async def test_a_more_url_with_another_parameter_or_a_second_more_is_400(
        xapi: httpx.AsyncClient, server: Server) -> None:
    """A more URL takes no other parameters; one given twice was followed, the other ignored
    (every other repeated parameter is a 400: a robustness audit)."""
    kari = unique("kari")
    await post_each(xapi, kari, 3)
    r = await xapi.get("/statements", params={"agent": js(agent(kari)), "limit": "1"})
    more = r.json()["more"]
    r = await xapi.get(server.base_url + more + "&limit=2")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == "unknown parameter(s) for a more URL (it takes no other parameters): limit"
    first = more.split("more=", 1)[1]
    r = await xapi.get(server.base_url + more + "&more=" + first)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == "parameter more given more than once"


@pytest.fixture(scope="module")
def small_pages_server(pg: EmbeddedPostgres) -> Iterator[Server]:
    """A server whose query pages carry at most 6,000 bytes of statements."""
    with server_of_its_own(pg, {"SPOR_QUERY_STATEMENT_BYTES_MAX": "6000"}) as s:
        yield s


async def test_a_page_ends_at_the_statement_byte_budget_and_more_goes_on(small_pages_server: Server) -> None:
    """A page held `limit` statements whatever their size: a hundred statements of 60 MB each
    made one response of gigabytes, built in memory. A page now ends where its statements would
    pass SPOR_QUERY_STATEMENT_BYTES_MAX (its first always comes, however large), and more goes
    on: every statement once, in order, by every query path, GET and HEAD alike."""
    server = small_pages_server
    tenant = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, tenant, "2.0.0") as client:
        kari = unique("kari")
        pads = [1000, 1000, 1000, 9000, 1000, 2500, 1000]  # octets of padding; 9,000 alone is over
        sent = []
        for n in pads:
            s = with_id(statement(actor=kari, result={"extensions": {"https://example.org/pad": "x" * n}}))
            r = await client.post("/statements", json=s)
            assert r.status_code == 200, r.text
            sent.append(s["id"])
        for params in ({"agent": js(agent(kari))}, {"agent": js(agent(kari)), "ascending": "true"}, {}):
            pages: list[list[str]] = []
            r = await client.get("/statements", params=params)
            while True:
                assert r.status_code == 200, r.text
                body = r.json()
                pages.append([s["id"] for s in body["statements"]])
                assert len(body["statements"]) == 1 or len(r.content) <= 6000 + 100, (params, len(r.content))
                head = await client.head(r.url)
                assert head.status_code == 200 and head.headers["content-length"] == str(len(r.content))
                if not body["more"]:
                    break
                r = await client.get(server.base_url + body["more"])
            ids = [i for p in pages for i in p]
            if params.get("ascending"):
                assert ids == sent
            else:
                assert ids[: len(sent)] == sent[::-1]  # (the whole store holds only these)
                assert len(ids) == len(sent)
            # ~1.7 KB statements: three a page; the big one alone; the 3.2 KB one with one more
            sizes = [len(p) for p in pages]
            assert sizes == ([3, 1, 2, 1] if params.get("ascending") else [2, 1, 1, 3]), (params, sizes)


async def test_a_canonical_page_ends_at_the_budget_and_a_statement_naming_a_definition_often_keeps_its_own(
        small_pages_server: Server) -> None:
    """format=canonical puts each Activity's canonical definition into every statement naming
    it: 100 statements of 200 bytes naming an activity with a 6 MB definition made a 600 MB page
    (a memory audit). The budget holds for the page as sent, and a statement that names the
    activity so often that its definitions alone would pass the budget keeps the definitions it
    carries (languages still cut)."""
    server = small_pages_server
    tenant = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, tenant, "1.0.3") as client:
        activity = f"https://courses.example.org/{unique('big')}"
        big = {"name": {"en-US": "Big", "nb-NO": "Stor"}, "extensions": {"https://example.org/pad": "y" * 2000}}
        r = await client.post("/statements", json=with_id({
            "actor": agent(unique("author")), "verb": {"id": "http://adlnet.gov/expapi/verbs/authored"},
            "object": {"id": activity, "definition": big}}))
        assert r.status_code == 200, r.text
        verb = f"http://example.org/verbs/{unique('visited')}"
        tiny = [with_id({"actor": agent(unique("kari")), "verb": {"id": verb}, "object": {"id": activity}})
                for _ in range(6)]
        often = with_id({"actor": agent(unique("ola")), "verb": {"id": verb}, "object": {"id": activity},
                         "context": {"contextActivities": {"other": [{"id": activity}] * 20}}})
        for s in (*tiny, often):
            assert (await client.post("/statements", json=s)).status_code == 200
        pages: list[list[dict[str, Any]]] = []
        r = await client.get("/statements", params={"verb": verb, "format": "canonical", "ascending": "true"})
        while True:
            assert r.status_code == 200, r.text
            body = r.json()
            pages.append(body["statements"])
            assert len(body["statements"]) == 1 or len(r.content) <= 6000 + 100, len(r.content)
            if not body["more"]:
                break
            r = await client.get(server.base_url + body["more"])
        got = [s for p in pages for s in p]
        assert [s["id"] for s in got] == [s["id"] for s in (*tiny, often)]
        # ~2.6 KB each with the definition: two a page (exact, they are ~400 bytes: one page); the
        # one naming it often is ~1.8 KB with its own definitions, and on a page of its own
        assert [len(p) for p in pages] == [2, 2, 2, 1], [len(p) for p in pages]
        for s in got[:-1]:
            assert s["object"]["definition"] == {"name": {"en-US": "Big"}, "extensions": big["extensions"]}
        assert "definition" not in got[-1]["object"]  # twenty definitions would be 40 KB: its own
        assert got[-1]["context"]["contextActivities"]["other"] == [{"id": activity}] * 20
        r = await client.get("/statements", params={"verb": verb, "ascending": "true"})
        assert len(r.json()["statements"]) == 7 and not r.json()["more"]
