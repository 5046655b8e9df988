"""Single sign-on over HTTP: a person with an OpenID Connect token reads their own statements,
and nothing else; every such read lands in the audit trail.

The test serves its own identity provider (discovery + JWKS) on loopback and signs real tokens.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from lrs.store.embedded import EmbeddedPostgres
from lrs.store.queries import sql
from tests.conftest import Server, make_tenant, new_database, start_server, stop_server, xapi_client
from tests.integration.test_oidc import Idp, KeyPair, _handler, rsa_pair, sign
from tests.statements import statement

HOMEPAGE = "https://helseid.example.org"
AUDIENCE = "spor-api"
STORE = "sunnaas-test"


@pytest.fixture(scope="module")
def idp_server() -> Iterator[tuple[Idp, KeyPair]]:
    state = Idp()
    key = rsa_pair("k1")
    state.publish(key.jwk)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, key
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def sso_server(pg: EmbeddedPostgres, idp_server: tuple[Idp, KeyPair]) -> Iterator[Server]:
    idp, _ = idp_server
    url = asyncio.run(new_database(pg))
    env = {
        "SPOR_OIDC_ISSUER": idp.issuer,
        "SPOR_OIDC_AUDIENCE": AUDIENCE,
        "SPOR_OIDC_ACCOUNT_HOMEPAGE": HOMEPAGE,
        "SPOR_OIDC_STORE": STORE,
    }
    s = start_server(url, env)
    try:
        yield s
    finally:
        stop_server(s)


def token(idp_server: tuple[Idp, KeyPair], person: str, **extra: Any) -> str:
    idp, key = idp_server
    now = int(time.time())
    return sign(key, {"iss": idp.issuer, "aud": AUDIENCE, "sub": person, "iat": now, "nbf": now,
                      "exp": now + 300, **extra})


def person_agent(person: str) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": HOMEPAGE, "name": person}}


@pytest.fixture(scope="module")
async def seeded(sso_server: Server) -> AsyncIterator[None]:
    tenant = await make_tenant(sso_server.database_url, sso_server.base_url, store=STORE)
    async with xapi_client(sso_server, tenant, "2.0.0") as c:
        mine = [{**statement(activity=f"course-{i}"), "actor": person_agent("pseudo-kari")} for i in range(3)]
        theirs = [{**statement(activity="course-x"), "actor": person_agent("pseudo-ola")}]
        assert (await c.post("/statements", json=mine + theirs)).status_code == 200
    yield


def bearer_client(server: Server, tok: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url + "/xapi", timeout=30,
                             headers={"Authorization": f"Bearer {tok}", "X-Experience-API-Version": "2.0.0"})


async def test_a_person_reads_exactly_their_own_statements(
    sso_server: Server, seeded: None, idp_server: tuple[Idp, KeyPair]
) -> None:
    async with bearer_client(sso_server, token(idp_server, "pseudo-kari")) as c:
        r = await c.get("/statements")
    assert r.status_code == 200, r.text
    actors = {s["actor"]["account"]["name"] for s in r.json()["statements"]}
    assert actors == {"pseudo-kari"} and len(r.json()["statements"]) == 3


async def test_a_person_asking_for_someone_else_is_refused(
    sso_server: Server, seeded: None, idp_server: tuple[Idp, KeyPair]
) -> None:
    async with bearer_client(sso_server, token(idp_server, "pseudo-kari")) as c:
        other = orjson.dumps(person_agent("pseudo-ola")).decode()
        r = await c.get("/statements", params={"agent": other})
    assert r.status_code == 403, r.text
    # the attempt is in the audit trail, found by the person it was about
    conn = await asyncpg.connect(sso_server.database_url)
    try:
        about = await conn.fetch(sql("audit_by_person"), f"account:{HOMEPAGE}|pseudo-ola", 100, None)
    finally:
        await conn.close()
    tried = [a for a in about if a["person"] == f"account:{HOMEPAGE}|pseudo-kari"]
    assert [(a["action"], a["records"]) for a in tried] == [("statements.query", 0)]
    refused = orjson.loads(tried[0]["request"])["refused"]
    assert refused["status"] == 403 and "only the person's own" in refused["reason"]


async def test_a_person_cannot_write_statements(
    sso_server: Server, seeded: None, idp_server: tuple[Idp, KeyPair]
) -> None:
    async with bearer_client(sso_server, token(idp_server, "pseudo-kari")) as c:
        r = await c.post("/statements", json=statement())
    assert r.status_code == 403, r.text


async def test_expired_and_wrong_audience_tokens_get_401_with_a_bearer_challenge(
    sso_server: Server, idp_server: tuple[Idp, KeyPair]
) -> None:
    past = int(time.time()) - 3600
    expired = token(idp_server, "pseudo-kari", iat=past - 60, nbf=past - 60, exp=past)
    wrong_aud = token(idp_server, "pseudo-kari", aud="another-api")
    for tok, message in ((expired, "token expired"), (wrong_aud, "wrong audience")):
        async with bearer_client(sso_server, tok) as c:
            r = await c.get("/statements")
        assert r.status_code == 401
        assert message in r.json()["error"]["message"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_person_s_reads_are_audited(
    sso_server: Server, seeded: None, idp_server: tuple[Idp, KeyPair]
) -> None:
    async with bearer_client(sso_server, token(idp_server, "pseudo-kari")) as c:
        assert (await c.get("/statements", params={"limit": "2"})).status_code == 200
    conn = await asyncpg.connect(sso_server.database_url)
    try:
        rows = await conn.fetch("SELECT person, action, records FROM audit_log WHERE person = $1",
                                f"account:{HOMEPAGE}|pseudo-kari")
    finally:
        await conn.close()
    assert any(r["action"] == "statements.query" and r["records"] == 2 for r in rows)


async def test_a_person_reads_what_they_are_actor_or_object_of_not_others_statements_referring_to_theirs(
    sso_server: Server, idp_server: tuple[Idp, KeyPair]
) -> None:
    """A person's query and their reads by id agree: statements they are the actor or the object
    of (or a member of either, a Group), by the statements' own terms. A colleague's statement
    that refers to theirs inherits its terms (Communication 2.1.3), but is the colleague's: the
    query gave it to them with the colleague's note, by id it was 404, and a statement about
    them as its object was 404 by id (a security audit)."""
    tenant = await make_tenant(sso_server.database_url, sso_server.base_url, store=STORE)
    per, rita = person_agent("pseudo-per"), {"objectType": "Agent", "mbox": "mailto:rita.kollega@example.org"}
    hal = {"objectType": "Agent", "mbox": "mailto:hal.kollega@example.org"}
    own = {**statement(activity="course-per"), "actor": per}
    about = {**statement(), "actor": rita, "object": per}
    group = {**statement(activity="course-team"), "actor": {"objectType": "Group", "member": [per, hal]}}
    async with xapi_client(sso_server, tenant, "2.0.0") as c:
        ids = (await c.post("/statements", json=[own, about, group])).json()
        note = {**statement(), "actor": rita, "object": {"objectType": "StatementRef", "id": ids[0]},
                "result": {"response": "a private note about the attempt"}}
        ids += (await c.post("/statements", json=note)).json()
        # a reader of the store reads the group's statement by id: the trail finds it by each member
        assert (await c.get("/statements", params={"statementId": ids[2]})).status_code == 200
    async with bearer_client(sso_server, token(idp_server, "pseudo-per")) as c:
        page = (await c.get("/statements")).json()["statements"]
        assert sorted(s["id"] for s in page) == sorted(ids[:3])
        for sid, status in zip(ids, (200, 200, 200, 404), strict=True):
            assert (await c.get("/statements", params={"statementId": sid})).status_code == status, sid
        # filtering by the note's verb finds nothing of the colleague's either
        verb = (await c.get("/statements", params={"verb": note["verb"]["id"]})).json()["statements"]
        assert ids[3] not in {s["id"] for s in verb}
    conn = await asyncpg.connect(sso_server.database_url)
    try:
        for_hal = await conn.fetch(sql("audit_by_person"), "mbox:mailto:hal.kollega@example.org", 100, None)
        mine = await conn.fetch("SELECT request FROM audit_log WHERE person = $1 AND action = 'statements.query'",
                                f"account:{HOMEPAGE}|pseudo-per")
    finally:
        await conn.close()
    # the reader's read and the person's, of the statement of a group hal is a member of
    gets = [a for a in for_hal if a["action"] == "statements.get"]
    assert sorted((orjson.loads(a["request"])["statementId"], a["person"] or "") for a in gets) == [
        (ids[2], ""), (ids[2], f"account:{HOMEPAGE}|pseudo-per")]
    # and the person's two queries, which returned that statement too (its persons name hal)
    queries = [a for a in for_hal if a["action"] != "statements.get"]
    assert [(a["action"], a["person"]) for a in queries] == [("statements.query", f"account:{HOMEPAGE}|pseudo-per")] * 2
    assert all("mbox:mailto:hal.kollega@example.org" in orjson.loads(a["request"])["persons"] for a in queries)
    # a person's query is recorded with the agent it was limited to
    assert {orjson.loads(r["request"])["agent"] for r in mine} == {f"account:{HOMEPAGE}|pseudo-per"}
