"""Refused reads of personal data land in the audit trail beside the reads (lrs/ops/audit.py):
a dashboard credential asking for a person's transcript, a credential without a read scope
querying statements, one limited to its own statements opening another's. The trail's search by
person finds each attempt; the client gets the same refusal as before. Reads of an agent's
documents and names are audited too. Over the real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from lrs.errors import Forbidden
from lrs.ops import audit
from lrs.ops.principal import Principal
from lrs.store.audit import PgAuditRepository
from lrs.store.embedded import EmbeddedPostgres
from lrs.store.queries import sql
from tests.conftest import Server, audit_trail, make_tenant, server_of_its_own, xapi_client
from tests.statements import statement


async def _trail(server: Server, store: str) -> list[asyncpg.Record]:
    return await audit_trail(server.database_url, store)


async def _about(server: Server, key: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(server.database_url)
    try:
        return await conn.fetch(sql("audit_by_person"), key, 100, None)
    finally:
        await conn.close()


async def test_a_dashboard_credential_asking_for_a_transcript_is_refused_and_audited(server: Server) -> None:
    dashboard = await make_tenant(server.database_url, server.base_url, scopes=["analytics/aggregates"])
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url, auth=(dashboard.key, dashboard.secret)) as c:
        r = await c.get("/api/v1/transcripts/P-0042", params={"format": "csv"})
        assert r.status_code == 403, r.text
        assert "scope" in r.json()["error"]["message"]
        # the views it may read are audited as reads, not as refusals
        assert (await c.get("/api/v1/compliance/rollup")).status_code == 200
    trail = await _trail(server, dashboard.store)
    refused = [t for t in trail if "refused" in t["request"]]
    assert [(t["action"], t["records"]) for t in refused] == [("analyst.transcript", 0)]
    request = refused[0]["request"]
    assert request["refused"]["status"] == 403 and "scope" in request["refused"]["reason"]
    assert request["persons"] == ["P-0042"] and request["path"] == "/api/v1/transcripts/P-0042"
    assert request["format"] == "csv"
    assert [t["action"] for t in trail if "refused" not in t["request"]] == ["analyst.compliance-rollup"]
    about = await _about(server, "P-0042")
    assert [(a["action"], a["records"]) for a in about] == [("analyst.transcript", 0)]


async def test_a_credential_without_a_read_scope_querying_statements_is_refused_and_audited(
        server: Server) -> None:
    writer = await make_tenant(server.database_url, server.base_url, scopes=["statements/write"])
    agent = '{"mbox":"mailto:refused.query@example.org"}'
    async with xapi_client(server, writer) as c:
        r = await c.get("/statements", params={"agent": agent})
    assert r.status_code == 403, r.text
    [t] = await _trail(server, writer.store)
    assert t["action"] == "statements.query" and t["records"] == 0
    assert t["request"]["refused"]["status"] == 403
    assert t["request"]["agent"] == "mbox:mailto:refused.query@example.org"
    about = await _about(server, "mbox:mailto:refused.query@example.org")
    assert [(a["action"], a["store"]) for a in about] == [("statements.query", writer.store)]


async def test_opening_a_statement_that_is_not_one_s_own_is_a_404_for_the_client_and_a_refusal_in_the_trail(
        server: Server) -> None:
    owner = await make_tenant(server.database_url, server.base_url)
    mine_only = await make_tenant(server.database_url, server.base_url, scopes=["statements/read/mine",
                                                                                 "statements/write"],
                                  store=owner.store)
    actor = {"mbox": "mailto:opened.by.someone@example.org"}
    async with xapi_client(server, owner) as c:
        [sid] = (await c.post("/statements", json={**statement(), "actor": actor})).json()
        # a read that succeeds names whom the statement is about, so the search by person finds it
        assert (await c.get("/statements", params={"statementId": sid})).status_code == 200
    absent = sid[:-1] + ("1" if sid[-1] == "0" else "0")
    async with xapi_client(server, mine_only) as c:
        r = await c.get("/statements", params={"statementId": sid})
        nothing = await c.get("/statements", params={"statementId": absent})
    # the client cannot tell someone else's statement from none at all
    assert r.status_code == nothing.status_code == 404, r.text
    assert r.json()["error"]["message"].replace(sid, "ID") == nothing.json()["error"]["message"].replace(absent, "ID")
    same = {"content-type", "x-experience-api-version"}
    assert {k: v for k, v in r.headers.items() if k in same} == {k: v for k, v in nothing.headers.items() if k in same}
    trail = await _trail(server, owner.store)
    gets = [(t["records"], t["request"].get("refused"), t["request"].get("agent")) for t in trail
            if t["action"] == "statements.get"]
    assert gets == [
        (1, None, "mbox:mailto:opened.by.someone@example.org"),
        (0, {"status": 404, "reason": "the statement exists but is not the caller's own"},
         "mbox:mailto:opened.by.someone@example.org"),
        (0, {"status": 404, "reason": "no such statement"}, None),
    ]
    about = await _about(server, "mbox:mailto:opened.by.someone@example.org")
    assert sorted(a["records"] for a in about) == [0, 1]


async def test_a_statement_read_by_id_refused_for_want_of_a_scope_is_recorded_cut_to_size(server: Server) -> None:
    """What a refused caller asked is recorded as it came, cut to MAX_RECORDED_CHARS: a
    credential shipped inside course content cannot write rows of any size into the trail."""
    writer = await make_tenant(server.database_url, server.base_url, scopes=["statements/write"])
    huge = "x" * 100_000
    async with xapi_client(server, writer) as c:
        r = await c.post("/statements", params={"method": "GET"},
                         content=f"statementId={huge}".encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 403, r.text
        long_agent = '{"mbox":"mailto:' + "y" * 5000 + '@example.org"}'
        assert (await c.get("/statements", params={"agent": long_agent})).status_code == 403
    [by_id, query] = await _trail(server, writer.store)
    assert by_id["action"] == "statements.get" and by_id["request"]["refused"]["status"] == 403
    kept = by_id["request"]["statementId"]
    assert kept.startswith("xxx") and kept.endswith("(100000 characters)")
    assert len(kept) < audit.MAX_RECORDED_CHARS + 40
    # an agent key that long is kept too (cut), where a whole one could not be indexed
    assert query["action"] == "statements.query" and query["request"]["agent"].endswith("characters)")


async def test_a_read_about_an_agent_with_a_very_long_identifier_is_recorded_and_found(server: Server) -> None:
    """A key longer than a record keeps (a 600-character account name): the read is answered (it
    was a 500: the whole key could not be indexed) and the search by person finds it."""
    tenant = await make_tenant(server.database_url, server.base_url)
    name = "n" * 600
    agent = json.dumps({"account": {"homePage": "https://id.example.org", "name": name}})
    async with xapi_client(server, tenant) as c:
        r = await c.get("/statements", params={"agent": agent})
        assert r.status_code == 200, r.text
    conn = await asyncpg.connect(server.database_url)
    try:
        found = await PgAuditRepository(conn).by_person(f"account:https://id.example.org|{name}")
    finally:
        await conn.close()
    assert [(f["action"], f["store"]) for f in found] == [("statements.query", tenant.store)]
    # the key as the trail shows it (cut), copied into a search, finds it too
    conn = await asyncpg.connect(server.database_url)
    try:
        again = await PgAuditRepository(conn).by_person(json.loads(found[0]["request"])["agent"])
    finally:
        await conn.close()
    assert [f["id"] for f in again] == [f["id"] for f in found]


async def test_nul_characters_are_a_400_not_a_failed_query_and_a_refusal_keeps_them_readable(server: Server) -> None:
    tenant = await make_tenant(server.database_url, server.base_url)
    writer = await make_tenant(server.database_url, server.base_url, scopes=["statements/write"])
    state = {"activityId": "https://x.example.org/a", "agent": '{"mbox":"mailto:nul@example.org"}'}
    async with xapi_client(server, tenant) as c:
        r = await c.get("/activities/state", params={**state, "stateId": "a\x00b"})
        assert r.status_code == 400 and "NUL" in r.text, r.text
        # the documents keep the whole Agent: a NUL in its name is a 400 too (it was a 500)
        named = {**state, "agent": '{"name":"a\\u0000b","mbox":"mailto:nul@example.org"}', "stateId": "s"}
        r = await c.put("/activities/state", params=named, json={"p": 1})
        assert r.status_code == 400 and "NUL" in r.text, r.text
        # a backslash followed by u0000 is text like any other
        literal = {**named, "agent": '{"name":"C:\\\\u0000x","mbox":"mailto:nul@example.org"}'}
        assert (await c.put("/activities/state", params=literal, json={"p": 1})).status_code == 204
        inside = '{"account":{"homePage":"https://id.example.org","name":"a\\u0000b"}}'
        for path in ("/statements", "/agents"):
            r = await c.get(path, params={"agent": inside})
            assert r.status_code == 400 and "NUL" in r.text, (path, r.text)
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url, auth=(writer.key, writer.secret)) as c:
        assert (await c.get("/api/v1/compliance", params={"unit": "a\x00b"})).status_code == 403
    async with xapi_client(server, writer) as c:
        # a refused probe with a NUL in the agent's name still names whom it was about
        probe = '{"mbox":"mailto:victim@example.org","name":"\\u0000"}'
        assert (await c.get("/agents", params={"agent": probe})).status_code == 403
    [t, agents] = await _trail(server, writer.store)
    assert t["request"]["unit"] == "a\ufffdb" and t["request"]["refused"]["status"] == 403
    assert agents["action"] == "agents.get" and agents["request"]["agent"] == "mbox:mailto:victim@example.org"


async def test_an_analyst_record_keeps_a_bounded_number_of_parameters(server: Server) -> None:
    writer = await make_tenant(server.database_url, server.base_url, scopes=["statements/write"])
    # junk first, then the view's own filters: those are kept whatever comes before them
    many = {f"p{i:03d}": "v" * 100 for i in range(300)} | {"param.more": "0", "unit": "U7", "as_of": "2025-01-01"}
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url, auth=(writer.key, writer.secret)) as c:
        assert (await c.get("/api/v1/transcripts/P-0100", params=many)).status_code == 403
    [t] = await _trail(server, writer.store)
    kept = [k for k in t["request"] if k.startswith("p") and k[1:].isdigit()]
    assert len(kept) == 20 and t["request"]["param.more"] == 281
    assert t["request"]["unit"] == "U7" and t["request"]["as_of"] == "2025-01-01"
    assert t["request"]["persons"] == ["P-0100"]


async def test_an_analyst_refusal_names_the_people_asked_for_and_query_parameters_cannot_pose_as_the_record(
        server: Server) -> None:
    writer = await make_tenant(server.database_url, server.base_url, scopes=["statements/write"])
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url, auth=(writer.key, writer.secret)) as c:
        r = await c.get("/api/v1/compliance", params={"person": "P-0043", "persons": "P-0099",
                                                       "path": "/api/v1/course-status", "agent": "mbox:planted"})
    assert r.status_code == 403
    [t] = await _trail(server, writer.store)
    request = t["request"]
    assert request["path"] == "/api/v1/compliance" and request["persons"] == ["P-0043"]
    assert request["param.persons"] == "P-0099" and request["param.path"] == "/api/v1/course-status"
    assert "agent" not in request and request["param.agent"] == "mbox:planted"
    assert await _about(server, "P-0099") == [] and await _about(server, "mbox:planted") == []
    assert [a["action"] for a in await _about(server, "P-0043")] == ["analyst.compliance"]


@pytest.fixture(scope="module")
def server_without_a_trail(pg: EmbeddedPostgres) -> Iterator[Server]:
    with server_of_its_own(pg) as s:
        yield s


async def test_a_refusal_is_still_a_refusal_when_the_trail_cannot_be_written(server_without_a_trail: Server) -> None:
    """The database refuses the audit row (the server's role may not insert into it here): the
    client still gets its 403, not a 500, and the server logs that the record was lost, without
    what was asked."""
    s = server_without_a_trail
    writer = await make_tenant(s.database_url, s.base_url, scopes=["statements/write"])
    conn = await asyncpg.connect(s.database_url)
    try:
        await conn.execute("REVOKE INSERT ON audit_log FROM spor_app")
    finally:
        await conn.close()
    someone = '{"mbox":"mailto:z@example.org"}'
    async with xapi_client(s, writer) as c:
        assert (await c.get("/statements", params={"agent": someone})).status_code == 403
        state = {"activityId": "https://x.example.org/a", "stateId": "s", "agent": someone}
        assert (await c.get("/activities/state", params=state)).status_code == 403
    async with httpx.AsyncClient(timeout=30, base_url=s.base_url, auth=(writer.key, writer.secret)) as c:
        assert (await c.get("/api/v1/transcripts/P-0007")).status_code == 403
    lost: list[dict] = []
    for _ in range(50):  # the server writes its log lines as it answers; wait for the third
        lost = [json.loads(line) for line in s.logs().splitlines() if "audit_refusal_lost" in line]
        if len(lost) == 3:
            break
        await asyncio.sleep(0.1)
    # the error's kind and code only: what was asked stays out of the log
    kinds = [(x["error"], x["sqlstate"], x["status"]) for x in lost]
    assert kinds == [("InsufficientPrivilegeError", "42501", 403)] * 3
    assert "z@example.org" not in json.dumps(lost) and "P-0007" not in json.dumps(lost)


class _BrokenTrail:
    async def record(self, principal: Principal, action: str, request: dict, records: int) -> None:
        raise ConnectionError("the database went away")


class _Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **kw: object) -> None:
        self.lines.append((event, kw))


async def test_a_refusal_that_cannot_be_recorded_is_still_a_refusal_and_is_logged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _Lines()
    monkeypatch.setattr(audit, "log", lines)
    who = Principal(store_id=1, credential_id=7, scopes=frozenset({"statements/write"}),
                    authority={"mbox": "mailto:x@example.org"}, authority_key="mbox:x@example.org")
    refusal = Forbidden("this credential lacks the scope for this request")
    # returns (the caller raises its refusal as before) instead of raising the trail's error
    await audit.record_refusal(_BrokenTrail(), who, "statements.query", {"agent": "mbox:y@example.org"}, refusal)
    [(event, fields)] = lines.lines
    assert event == "audit_refusal_lost" and fields["error"] == "ConnectionError"
    assert fields["status"] == 403 and fields["credential"] == 7
    assert "y@example.org" not in repr(fields)  # what was asked (personal data) stays out of the log


async def test_reads_of_an_agent_s_documents_and_names_are_audited_and_activity_profiles_are_not(
        server: Server) -> None:
    """State and Agent Profile documents are kept per agent (a bookmark, a cmi5 session's
    progress), and the Agents resource returns the names Spor holds for a person: reading them is
    reading a person's records, found by the trail's search by person. Activity profiles are
    about no one."""
    tenant = await make_tenant(server.database_url, server.base_url)
    writer = await make_tenant(server.database_url, server.base_url, scopes=["statements/write"],
                               store=tenant.store)
    agent = '{"mbox":"mailto:document.reader@example.org"}'
    key = "mbox:mailto:document.reader@example.org"
    activity = "https://courses.example.org/audited-documents"
    state = {"activityId": activity, "agent": agent}
    async with xapi_client(server, tenant) as c:
        for sid in ("bookmark", "suspend"):
            put = await c.put("/activities/state", params={**state, "stateId": sid}, json={"p": 1})
            assert put.status_code == 204
        await c.put("/agents/profile", params={"agent": agent, "profileId": "prefs"}, json={"lang": "nb"},
                    headers={"If-None-Match": "*"})
        await c.put("/activities/profile", params={"activityId": activity, "profileId": "p"}, json={"x": 1},
                    headers={"If-None-Match": "*"})
        assert (await c.get("/activities/state", params={**state, "stateId": "bookmark"})).status_code == 200
        assert (await c.get("/activities/state", params=state)).json() == ["bookmark", "suspend"]
        assert (await c.get("/agents/profile", params={"agent": agent, "profileId": "prefs"})).status_code == 200
        assert (await c.get("/agents", params={"agent": agent})).status_code == 200
        assert (await c.get("/agents/profile", params={"agent": agent})).json() == ["prefs"]
        assert (await c.head("/activities/state", params={**state, "stateId": "suspend"})).status_code == 200
        profile = await c.get("/activities/profile", params={"activityId": activity, "profileId": "p"})
        assert profile.status_code == 200
        # absent: not recorded (nothing of anyone's was read)
        assert (await c.get("/activities/state", params={**state, "stateId": "none"})).status_code == 404
    async with xapi_client(server, writer) as c:
        assert (await c.get("/activities/state", params={**state, "stateId": "bookmark"})).status_code == 403
        assert (await c.get("/agents", params={"agent": agent})).status_code == 403
    trail = await _trail(server, tenant.store)
    assert [(t["action"], t["records"], t["request"]["agent"], "refused" in t["request"]) for t in trail] == [
        ("state.get", 1, key, False), ("state.ids", 2, key, False), ("agent_profile.get", 1, key, False),
        # the Agents resource: the names Spor holds (none here; the Person has the identifier)
        ("agents.get", 0, key, False), ("agent_profile.ids", 1, key, False), ("state.get", 1, key, False),
        ("state.get", 0, key, True), ("agents.get", 0, key, True)]
    got = trail[0]["request"]
    assert got["id"] == "bookmark" and got["activityId"] == activity and got["resource"] == "state"
    assert trail[6]["request"]["refused"]["status"] == 403
    assert trail[1]["request"]["since"] is None and trail[1]["request"]["registration"] is None
    assert trail[5]["request"]["id"] == "suspend"  # HEAD is a read
    assert len(await _about(server, key)) == 8


async def test_the_trail_tells_a_caller_s_own_statement_asked_with_the_other_voided_state(server: Server) -> None:
    owner = await make_tenant(server.database_url, server.base_url, scopes=["statements/read/mine",
                                                                             "statements/write"])
    async with xapi_client(server, owner) as c:
        [sid] = (await c.post("/statements", json=statement())).json()
        assert (await c.get("/statements", params={"voidedStatementId": sid})).status_code == 404
    [t] = [t for t in await _trail(server, owner.store) if t["action"] == "statements.get"]
    assert t["request"]["refused"] == {"status": 404, "reason": "the caller's own statement, not voided"}


async def test_agents_get_counts_the_names_spor_holds(server: Server) -> None:
    tenant = await make_tenant(server.database_url, server.base_url)
    who = {"mbox": "mailto:named.person@example.org", "name": "Kari Nordmann"}
    async with xapi_client(server, tenant) as c:
        assert (await c.post("/statements", json={**statement(), "actor": who})).status_code == 200
        r = await c.get("/agents", params={"agent": '{"mbox":"mailto:named.person@example.org"}'})
        assert r.json()["name"] == ["Kari Nordmann"]
    [t] = [t for t in await _trail(server, tenant.store) if t["action"] == "agents.get"]
    assert t["records"] == 1
