"""A statements query is recorded in the audit trail with whom its returned statements are about
(`persons`), as a statement read by id is, so the trail's search by person finds a query by verb
or activity that returned a person's statements. Over the real server."""

from __future__ import annotations

import asyncpg
import httpx

from lrs.ops.terms import agent_key
from lrs.store.queries import sql
from tests.conftest import Server, audit_trail, make_tenant, xapi_client
from tests.statements import agent, statement

KARI, OLA, PER, EVA = (agent_key(agent(n)) for n in ("kari", "ola", "per", "eva"))


async def _queries(server: Server, store: str) -> list[asyncpg.Record]:
    return [r for r in await audit_trail(server.database_url, store) if r["action"] == "statements.query"]


async def _reads_about(server: Server, key: str, store: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(server.database_url)
    try:
        return [r for r in await conn.fetch(sql("audit_by_person"), key, 100, None) if r["store"] == store]
    finally:
        await conn.close()


async def test_a_query_by_verb_records_whom_the_returned_statements_are_about(server: Server) -> None:
    tenant = await make_tenant(server.database_url, server.base_url)
    team = {"objectType": "Group", "name": "Team", "member": [agent("per")]}
    mentoring = statement(actor="eva", verb="mentored")
    mentoring["object"] = agent("ola")
    # an extension value holding the escape \u0000: its agents are read from the whole statement
    nul = statement(actor="ola", verb="attempted")
    nul["result"] = {"extensions": {"https://example.org/ext/note": "a\u0000b"}}
    sent = [statement(actor="kari"), {**statement(verb="completed"), "actor": team}, mentoring, nul]
    async with xapi_client(server, tenant) as c:
        assert (await c.post("/statements", json=sent)).status_code == 200
        completed = await c.get("/statements", params={"verb": "http://adlnet.gov/expapi/verbs/completed"})
        mentored = await c.get("/statements", params={"verb": "http://adlnet.gov/expapi/verbs/mentored"})
        attempted = await c.get("/statements", params={"verb": "http://adlnet.gov/expapi/verbs/attempted"})
        # one returned of two: the page's look-ahead statement was not given, and is not recorded
        first = await c.get("/statements", params={"verb": "http://adlnet.gov/expapi/verbs/completed", "limit": 1})
        nobody = await c.get("/statements", params={"verb": "http://adlnet.gov/expapi/verbs/failed"})
    for r in (completed, mentored, attempted, first, nobody):
        assert r.status_code == 200, r.text
    assert len(completed.json()["statements"]) == 2 and len(first.json()["statements"]) == 1

    recorded = await _queries(server, tenant.store)
    assert [q["records"] for q in recorded] == [2, 1, 1, 1, 0]
    persons = [q["request"].get("persons") for q in recorded]
    assert sorted(persons[0]) == sorted([KARI, PER])  # a Group actor: its member, who is identified
    assert sorted(persons[1]) == sorted([EVA, OLA])  # the actor and the Agent object
    assert persons[2] == [OLA]
    newest = completed.json()["statements"][0]["actor"]
    assert persons[3] == ([PER] if newest.get("objectType") == "Group" else [KARI])
    assert persons[4] is None  # nothing returned, no one named
    assert recorded[0]["request"]["verb"] == "http://adlnet.gov/expapi/verbs/completed"

    # the trail's search by person finds the queries that returned their statements
    assert [r["records"] for r in await _reads_about(server, OLA, tenant.store)] == [1, 1]
    assert len(await _reads_about(server, PER, tenant.store)) == 1 + (persons[3] == [PER])


async def test_a_more_page_is_recorded_with_whom_its_own_statements_are_about(server: Server) -> None:
    tenant = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, tenant) as c:
        sent = [statement(actor=n) for n in ("kari", "ola", "per")]
        assert (await c.post("/statements", json=sent)).status_code == 200
        page = await c.get("/statements", params={"limit": 2})
        more = page.json()["more"]
        assert more
    async with httpx.AsyncClient(base_url=server.base_url, auth=(tenant.key, tenant.secret), timeout=30,
                                 headers={"X-Experience-API-Version": "1.0.3"}) as raw:
        rest = await raw.get(more)
    assert rest.status_code == 200 and len(rest.json()["statements"]) == 1
    recorded = await _queries(server, tenant.store)
    assert [sorted(q["request"]["persons"]) for q in recorded] == [sorted([OLA, PER]), [KARI]]
