"""Refusals a demanding operator expects: floods get 429, stores cannot see each other through
any resource, and secrets never reach the logs."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from lrs.store.embedded import EmbeddedPostgres
from tests.conftest import Server, make_tenant, server_of_its_own, xapi_client
from tests.statements import statement


@pytest.fixture(scope="module")
def limited_server(pg: EmbeddedPostgres) -> Iterator[Server]:
    with server_of_its_own(pg, {"SPOR_RATE_LIMIT_PER_SECOND": "5", "SPOR_RATE_LIMIT_BURST": "10",
                                "SPOR_WRONG_SECRETS_BURST": "3", "SPOR_WRONG_SECRETS_PER_MINUTE": "6"}) as s:
        yield s


async def test_a_flood_from_one_credential_gets_429_with_retry_after(limited_server: Server) -> None:
    tenant = await make_tenant(limited_server.database_url, limited_server.base_url)
    other = await make_tenant(limited_server.database_url, limited_server.base_url)
    async with xapi_client(limited_server, tenant) as c:
        codes = [(await c.get("/statements", params={"limit": "1"})) for _ in range(30)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert "rate limit" in limited[0].json()["error"]["message"]
    # a Statements response like any other: the store's Consistent-Through (2.1.3.s2.b5)
    assert limited[0].headers["X-Experience-API-Consistent-Through"] != "1970-01-01T00:00:00.000Z"
    # another credential is not affected by the first one's flood
    async with xapi_client(limited_server, other) as c:
        assert (await c.get("/statements", params={"limit": "1"})).status_code == 200


async def test_wrong_secrets_for_a_key_get_429_without_locking_out_its_clients(limited_server: Server) -> None:
    tenant = await make_tenant(limited_server.database_url, limited_server.base_url)
    async with xapi_client(limited_server, tenant) as c:
        assert (await c.get("/statements", params={"limit": "1"})).status_code == 200
    async with httpx.AsyncClient(timeout=30, base_url=limited_server.base_url + "/xapi",
                                 headers={"X-Experience-API-Version": "1.0.3"}) as c:
        codes = [await c.get("/statements", auth=(tenant.key, f"guess-{i}")) for i in range(8)]
    assert [r.status_code for r in codes[:3]] == [401, 401, 401]
    assert {r.status_code for r in codes[3:]} == {429}, [r.status_code for r in codes]
    refused = codes[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert tenant.key in refused.json()["error"]["message"]
    assert refused.headers["X-Experience-API-Version"]
    # the client whose secret was verified before goes on working
    async with xapi_client(limited_server, tenant) as c:
        assert (await c.get("/statements", params={"limit": "1"})).status_code == 200


async def test_no_resource_shows_one_store_s_data_to_another(server: Server) -> None:
    a = await make_tenant(server.database_url, server.base_url)
    b = await make_tenant(server.database_url, server.base_url)
    activity = "https://courses.example.org/tenancy-check"
    agent = '{"account":{"homePage":"https://id.example.org","name":"emp-kari"}}'
    async with xapi_client(server, a, "2.0.0") as ca, xapi_client(server, b, "2.0.0") as cb:
        s = statement(activity="tenancy-check")
        r = await ca.post("/statements", json=s)
        sid = r.json()[0]
        await ca.put("/activities/state", params={"activityId": activity, "agent": agent, "stateId": "bookmark"},
                     json={"page": 7})
        await ca.put("/activities/profile", params={"activityId": activity, "profileId": "p"}, json={"x": 1},
                     headers={"If-None-Match": "*"})
        await ca.put("/agents/profile", params={"agent": agent, "profileId": "p"}, json={"x": 1},
                     headers={"If-None-Match": "*"})
        assert (await ca.get("/statements", params={"statementId": sid})).status_code == 200

        assert (await cb.get("/statements", params={"statementId": sid})).status_code == 404
        assert (await cb.get("/statements", params={"activity": activity})).json()["statements"] == []
        assert (await cb.get("/activities/state", params={"activityId": activity, "agent": agent,
                                                          "stateId": "bookmark"})).status_code == 404
        assert (await cb.get("/activities/state", params={"activityId": activity, "agent": agent})).json() == []
        profile = await cb.get("/activities/profile", params={"activityId": activity, "profileId": "p"})
        assert profile.status_code == 404
        assert (await cb.get("/agents/profile", params={"agent": agent, "profileId": "p"})).status_code == 404
        act = await cb.get("/activities", params={"activityId": activity})
        assert "definition" not in act.json() or act.json().get("definition") in ({}, None)


async def test_a_credential_without_scope_all_voids_only_its_own_statements(server: Server) -> None:
    """Data 2.3.2.s2.b4: a voiding from a source not authorized to void is refused whole with 403
    (a security audit: a course package's write key voided, or pre-voided by a chosen id, another
    system's completions, and they left transcripts and compliance)."""
    admin = await make_tenant(server.database_url, server.base_url)
    store = admin.store
    writer = await make_tenant(server.database_url, server.base_url, ["statements/write", "statements/read"], store)
    other = await make_tenant(server.database_url, server.base_url, ["statements/write", "statements/read"], store)

    def voiding(target: str) -> dict:
        return {"id": str(uuid.uuid4()), "actor": {"mbox": "mailto:lms@example.org"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": target}}

    theirs = {"id": str(uuid.uuid4()), **statement(actor="kari")}
    mine = {"id": str(uuid.uuid4()), **statement(actor="kari")}
    async with xapi_client(server, admin) as a, xapi_client(server, writer) as w, xapi_client(server, other) as o:
        assert (await a.post("/statements", json=theirs)).status_code == 200
        assert (await w.post("/statements", json=mine)).status_code == 200
        refused = {
            "another's statement": await w.post("/statements", json=[voiding(theirs["id"])]),
            "one not stored yet": await w.post("/statements", json=voiding(str(uuid.uuid4()))),
            "another's, beside a new one of its own": await w.post(
                "/statements", json=[{"id": str(uuid.uuid4()), **statement()}, voiding(theirs["id"])]),
            "a fellow writer's": await o.post("/statements", json=voiding(mine["id"])),
        }
        for what, r in refused.items():
            assert r.status_code == 403 and "scope all" in r.json()["error"]["message"], (what, r.text)
        # the same words whether the target is stored or not: a credential that may not read
        # another's statements does not learn from a refusal that one exists (an ops audit)
        said = {r.json()["error"]["message"].replace(theirs["id"], "T").split(" voids ")[1] for r in (
            refused["another's statement"], await w.post("/statements", json=voiding(str(uuid.uuid4()))))}
        assert len({m.split(",", 1)[1] for m in said}) == 1, said
        for sid in (theirs["id"], mine["id"]):
            assert (await a.get("/statements", params={"statementId": sid})).status_code == 200
        # its own, stored or in the same batch: allowed
        assert (await w.post("/statements", json=voiding(mine["id"]))).status_code == 200
        fresh = {"id": str(uuid.uuid4()), **statement()}
        assert (await w.post("/statements", json=[fresh, voiding(fresh["id"])])).status_code == 200
        # scope all voids anything, stored or not yet
        assert (await a.post("/statements", json=voiding(theirs["id"]))).status_code == 200
        assert (await a.post("/statements", json=voiding(str(uuid.uuid4())))).status_code == 200
        for sid in (theirs["id"], mine["id"], fresh["id"]):
            assert (await a.get("/statements", params={"voidedStatementId": sid})).status_code == 200, sid


async def test_a_credential_reading_only_its_own_learns_nothing_of_another_s_statement_by_filters(
        server: Server) -> None:
    """A statement targeting another by a StatementRef matches the filters its target matches
    (Communication 2.1.3). A statements/read/mine credential knowing the id of another's statement
    could so learn, filter by filter, whom it is about: its own statements match by their own
    terms and by those of its own statements they refer to, never by another's. A reader of the
    whole store still gets the referrer by the target's terms."""
    admin = await make_tenant(server.database_url, server.base_url)
    mine_only = await make_tenant(server.database_url, server.base_url,
                                  ["statements/write", "statements/read/mine"], admin.store)

    def ref(target: str, actor: str) -> dict:
        return {"id": str(uuid.uuid4()), **statement(actor=actor),
                "object": {"objectType": "StatementRef", "id": target}}

    theirs = {"id": str(uuid.uuid4()), **statement(actor="sigrid", verb="failed",
                                                    activity="psychiatry-" + uuid.uuid4().hex[:8])}
    own_target = {"id": str(uuid.uuid4()), **statement(actor="solveig")}
    probe = ref(theirs["id"], "kari")
    chained = ref(probe["id"], "kari")
    fair = ref(own_target["id"], "kari")
    sigrid = json.dumps(theirs["actor"])
    async with xapi_client(server, admin) as a, xapi_client(server, mine_only) as m:
        assert (await a.post("/statements", json=theirs)).status_code == 200
        assert (await m.post("/statements", json=[own_target, probe, chained, fair])).status_code == 200

        async def found(client: httpx.AsyncClient, **params: str) -> set[str]:
            r = await client.get("/statements", params=params)
            assert r.status_code == 200, r.text
            return {s["id"] for s in r.json()["statements"]}

        # by the other's actor, verb or activity: nothing of its own comes back
        assert await found(m, agent=sigrid) == set()
        assert await found(m, activity=theirs["object"]["id"]) == set()
        assert await found(m, verb=theirs["verb"]["id"], agent=json.dumps(probe["actor"])) == set()
        # by its own terms and its own target's, its statements do
        assert await found(m, agent=json.dumps(probe["actor"])) >= {probe["id"], chained["id"], fair["id"]}
        assert await found(m, agent=json.dumps(own_target["actor"])) == {own_target["id"], fair["id"]}
        # the whole store's reader gets the referrers by the target's terms (2.1.3)
        assert await found(a, agent=sigrid) == {theirs["id"], probe["id"], chained["id"]}


async def test_secrets_and_authorization_headers_never_reach_the_logs(server: Server) -> None:
    tenant = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, tenant) as c:
        await c.get("/statements", params={"limit": "1"})
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi") as c:
        await c.get("/statements", auth=(tenant.key, "wrong-" + tenant.secret),
                    headers={"X-Experience-API-Version": "2.0.0", "X-Request-Id": "req-secret-check"})
    # the refused request's own line comes after every line of both requests: wait for it, so a
    # line that is late cannot make this pass unchecked
    for _ in range(600):  # up to 30 s
        logs = server.logs()
        if "req-secret-check" in logs:
            break
        await asyncio.sleep(0.05)
    assert "req-secret-check" in logs
    basic = base64.b64encode(f"{tenant.key}:{tenant.secret}".encode()).decode()
    assert tenant.secret not in logs and basic not in logs


async def test_a_wrong_secret_is_a_401_and_a_log_line_naming_the_key_and_the_request(server: Server) -> None:
    tenant = await make_tenant(server.database_url, server.base_url)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi") as c:
        r = await c.get("/statements", auth=(tenant.key, "wrong-" + tenant.secret),
                        headers={"X-Experience-API-Version": "2.0.0", "X-Request-Id": "req-refused-1"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    line: dict = {}
    for _ in range(50):
        found = [json.loads(x) for x in server.logs().splitlines()
                 if "req-refused-1" in x and "authentication_refused" in x]
        if found:
            line = found[0]
            break
        await asyncio.sleep(0.1)
    assert line["reason"] == "wrong_secret" and line["key"] == tenant.key and line["client"] == "127.0.0.1"
    assert line["status"] == 401 and line["level"] == "warning"
    assert tenant.secret not in server.logs()


async def test_a_malformed_authorization_header_is_not_echoed_in_the_refusal(server: Server) -> None:
    """A credential sent without its scheme, or with a tab for the space, is refused without
    quoting it back (a security audit: the 401 body held the whole base64 credential); so is a
    bad Authorization form field of the alternate request syntax."""
    tenant = await make_tenant(server.database_url, server.base_url)
    basic = base64.b64encode(f"{tenant.key}:{tenant.secret}".encode()).decode()
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi") as c:
        for value in (f"Basic\t{basic}", basic, f"{tenant.key}:{tenant.secret}"):
            r = await c.get("/statements", headers={"Authorization": value, "X-Experience-API-Version": "2.0.0"})
            assert r.status_code == 401, value
            assert basic not in r.text and tenant.secret not in r.text, r.text
        r = await c.get("/statements", headers={"Authorization": "Negotiate abc", "X-Experience-API-Version": "2.0.0"})
        assert r.status_code == 401 and "'Negotiate'" in r.text
        r = await c.post("/statements", params={"method": "GET"}, headers={"X-Experience-API-Version": "1.0.3"},
                         data={"Authorization": f"Basic {basic}\x01"})
        assert r.status_code == 400 and basic not in r.text and "Authorization" in r.text, r.text


async def test_a_request_id_is_the_clients_only_when_it_is_a_short_plain_one(server: Server) -> None:
    """X-Request-Id is echoed and logged: megabytes of it filled the log (a security audit)."""
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url) as c:
        assert (await c.get("/health", headers={"X-Request-Id": "req-ok-1"})).headers["X-Request-Id"] == "req-ok-1"
        for sent in ("x" * 129, "a b", "x" * 50_000):  # (a whole head over 64 KiB is a 431 anyway)
            got = (await c.get("/health", headers={"X-Request-Id": sent})).headers["X-Request-Id"]
            assert got != sent and len(got) == 32, got


async def test_a_stored_document_is_served_so_that_a_browser_will_not_run_it(server: Server) -> None:
    """A State document of type text/html is what a client stored, not a page of the LRS: nosniff
    and a sandbox (a security audit)."""
    tenant = await make_tenant(server.database_url, server.base_url)
    params = {"activityId": "https://courses.example.org/x", "stateId": "page",
              "agent": json.dumps({"mbox": "mailto:kari@example.org"})}
    async with xapi_client(server, tenant) as c:
        r = await c.put("/activities/state", params=params, content=b"<script>alert(1)</script>",
                        headers={"Content-Type": "text/html"})
        assert r.status_code == 204
        r = await c.get("/activities/state", params=params)
    assert r.headers["Content-Type"] == "text/html"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Content-Security-Policy"] == "sandbox"


async def test_basic_credentials_that_cannot_name_a_key_are_401_not_500(server: Server) -> None:
    """Bytes outside ASCII where base64 belongs (they were a 500 before any check), and a key
    holding a NUL (the database refused to compare it: a 500): a 401 with the challenge, as for
    any credential that is not known."""
    async with httpx.AsyncClient(base_url=server.base_url + "/xapi", timeout=30) as c:
        for value in (b"Basic \xff\xff", b"Basic \xc3\xa6\xc3\xb8", b"Basic " + base64.b64encode(b"a\x00:b"),
                      b"Basic " + base64.b64encode(b"\x00:")):
            r = await c.get("/statements", headers={"Authorization": value, "X-Experience-API-Version": "1.0.3"})
            assert r.status_code == 401, (value, r.status_code, r.text)
            assert r.headers["WWW-Authenticate"].startswith("Basic")
