"""Statement queries (xAPI Communication 2.1.3): the filter parameters, the StatementRef rule
(2.1.3.s3), ordering and limits, the result formats with language filtering (2.1.3.s4), and the
parameter validation that goes with them (3.2.s3.b7/b8, Data 2.2.s4.b4).

Section numbers are those of the 1.0.3 documents; the 2.0.0 text is the same. Every test makes
its own people and activities (random suffixes), so a query on them sees only that test's
statements even though the module shares one store.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Server, make_tenant, xapi_client
from tests.module_clients import clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)
from tests.statements import agent, statement, with_id


def iri(slug: str) -> str:
    return f"https://courses.example.org/{slug}"


def js(value: Any) -> str:
    return orjson.dumps(value).decode()


def sref(target: str, by: str, verb: str = "confirmed") -> dict[str, Any]:
    return with_id({
        "actor": agent(by),
        "verb": {"id": f"http://example.org/verbs/{verb}", "display": {"en-US": verb}},
        "object": {"objectType": "StatementRef", "id": target},
    })


async def post(xapi: httpx.AsyncClient, body: Any) -> list[str]:
    r = await xapi.post("/statements", json=body)
    assert r.status_code == 200, r.text
    return list(r.json())


async def query(xapi: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    r = await xapi.get("/statements", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"statements", "more"}
    return list(body["statements"])


async def ids(xapi: httpx.AsyncClient, **params: str) -> list[str]:
    return [s["id"] for s in await query(xapi, **params)]


async def stored_of(xapi: httpx.AsyncClient, sid: str) -> str:
    r = await xapi.get("/statements", params={"statementId": sid})
    assert r.status_code == 200, r.text
    return str(r.json()["stored"])


# ---------------------------------------------------------------------------------------------
# agent


async def test_agent_filter_matches_actor_and_agent_object_but_not_others(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 agent: statements whose Actor or Object is the Agent (same IFI)."""
    kari, ola = unique("kari"), unique("ola")
    as_actor = with_id(statement(actor=kari))
    as_object = with_id({"actor": agent(ola), "verb": {"id": "http://example.org/verbs/mentored"},
                         "object": agent(kari)})
    other = with_id(statement(actor=ola))
    await post(xapi, [as_actor, as_object, other])
    assert await ids(xapi, agent=js(agent(kari))) == [as_object["id"], as_actor["id"]]


async def test_agent_filter_compares_only_the_ifi(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 agent: Agents are equal when they use the same IFI with equal values;
    "name" is not part of the comparison."""
    kari = unique("kari")
    s = with_id(statement(actor=kari))
    await post(xapi, s)
    renamed = {**agent(kari), "name": "Someone Else Entirely"}
    assert await ids(xapi, agent=js(renamed)) == [s["id"]]
    no_object_type = {"account": agent(kari)["account"]}
    assert await ids(xapi, agent=js(no_object_type)) == [s["id"]]


async def test_agent_filter_matches_a_group_that_has_the_agent_as_member(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 agent: Groups whose members match the Agent are a match."""
    kari, ola = unique("kari"), unique("ola")
    team = with_id(statement(actor=kari))
    team["actor"] = {"objectType": "Group", "name": "Night shift", "member": [agent(ola), agent(kari)]}
    await post(xapi, team)
    assert await ids(xapi, agent=js(agent(kari))) == [team["id"]]


async def test_agent_filter_with_an_identified_group_matches_statements_by_that_group(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 agent: the parameter may be an identified Group."""
    group = {"objectType": "Group", "name": "Ward 7",
             "account": {"homePage": "https://id.example.org", "name": unique("ward")}}
    s = with_id(statement(actor=unique("kari")))
    s["actor"] = group
    await post(xapi, s)
    assert await ids(xapi, agent=js(group)) == [s["id"]]


async def test_agent_filter_by_mbox_ignores_the_case_of_the_domain(xapi: httpx.AsyncClient) -> None:
    """Data 2.3.1.b7: the domain part of an e-mail address is case-insensitive."""
    local = unique("kari")
    s = with_id(statement())
    s["actor"] = {"objectType": "Agent", "mbox": f"mailto:{local}@example.org"}
    await post(xapi, s)
    assert await ids(xapi, agent=js({"mbox": f"mailto:{local}@Example.ORG"})) == [s["id"]]


async def test_agent_filter_without_related_agents_ignores_context_and_authority(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 agent vs related_agents: plain agent matching looks only at the
    Actor and Object."""
    kari = unique("kari")
    s = with_id(statement(actor=unique("ola"), context={"instructor": agent(kari)}))
    await post(xapi, s)
    assert await ids(xapi, agent=js(agent(kari))) == []


# ---------------------------------------------------------------------------------------------
# related_agents


async def test_related_agents_matches_context_agents_and_groups_also_in_a_substatement(
        xapi: httpx.AsyncClient) -> None:
    """2.0.0 related_agents: Context Agents and Context Groups count, also in a contained
    SubStatement (IEEE 9274.1.1, GET Statements parameters); 1.0.3 has neither property."""
    kari, team = unique("kari"), unique("team")
    group = {"objectType": "Group", "mbox": f"mailto:{team}@example.org"}
    ctx = {"contextAgents": [{"objectType": "contextAgent", "agent": agent(kari)}],
           "contextGroups": [{"objectType": "contextGroup", "group": group}]}
    top = with_id(statement(actor=unique("a"), context=ctx))
    sub = statement(actor=unique("b"), activity=unique("course"), context=ctx)
    sub["objectType"] = "SubStatement"
    inner = with_id(statement(actor=unique("c")))
    inner["verb"] = {"id": "http://adlnet.gov/expapi/verbs/planned"}
    inner["object"] = sub
    if xapi.headers["X-Experience-API-Version"] == "1.0.3":
        assert (await xapi.post("/statements", json=[top])).status_code == 400
        return
    await post(xapi, [top, inner])
    for who in (agent(kari), group):
        assert await ids(xapi, agent=js(who), related_agents="true") == [inner["id"], top["id"]]
        assert await ids(xapi, agent=js(who)) == []


async def test_related_agents_matches_instructor_team_and_substatement_actor(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 related_agents: Actor, Object, Authority, Instructor, Team, or any of
    these in a contained SubStatement."""
    kari = unique("kari")
    by_instructor = with_id(statement(actor=unique("a"), context={"instructor": agent(kari)}))
    team = {"objectType": "Group", "name": "Team", "member": [agent(unique("b")), agent(kari)]}
    by_team = with_id(statement(actor=unique("c"), context={"team": team}))
    sub = statement(actor=kari, activity=unique("course"))
    sub["objectType"] = "SubStatement"
    by_sub_actor = with_id(statement(actor=unique("d")))
    by_sub_actor["verb"] = {"id": "http://adlnet.gov/expapi/verbs/planned"}
    by_sub_actor["object"] = sub
    unrelated = with_id(statement(actor=unique("e")))
    await post(xapi, [by_instructor, by_team, by_sub_actor, unrelated])
    got = await ids(xapi, agent=js(agent(kari)), related_agents="true")
    assert got == [by_sub_actor["id"], by_team["id"], by_instructor["id"]]
    assert await ids(xapi, agent=js(agent(kari)), related_agents="false") == []


async def test_related_agents_matches_the_authority(xapi: httpx.AsyncClient, server: Server) -> None:
    """Communication 2.1.3.s1 related_agents includes Authority; the plain agent filter does not."""
    tenant = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, tenant, xapi.headers["X-Experience-API-Version"]) as own:
        s = with_id(statement(actor=unique("kari")))
        await post(own, s)
        authority = (await own.get("/statements", params={"statementId": s["id"]})).json()["authority"]
        assert await ids(own, agent=js(authority), related_agents="true") == [s["id"]]
        assert await ids(own, agent=js(authority)) == []


# ---------------------------------------------------------------------------------------------
# verb, activity, registration, related_activities


async def test_verb_filter_returns_only_that_verb(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 verb."""
    kari = unique("kari")
    done = with_id(statement(actor=kari, verb="completed"))
    tried = with_id(statement(actor=kari, verb="attempted"))
    await post(xapi, [done, tried])
    got = await ids(xapi, agent=js(agent(kari)), verb="http://adlnet.gov/expapi/verbs/attempted")
    assert got == [tried["id"]]


async def test_activity_filter_matches_the_object_only_unless_related_activities(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 activity / related_activities: plain matching is on the Object;
    related_activities also matches context activities and SubStatement properties."""
    course = unique("course")
    direct = with_id(statement(actor=unique("a"), activity=course))
    in_context = with_id(statement(actor=unique("b"), activity=unique("lesson"),
                                   context={"contextActivities": {"parent": [{"id": iri(course)}]}}))
    in_grouping = with_id(statement(actor=unique("c"), activity=unique("lesson"),
                                    context={"contextActivities": {"grouping": {"id": iri(course)}}}))
    sub = statement(actor=unique("d"), activity=course)
    sub["objectType"] = "SubStatement"
    in_sub = with_id(statement(actor=unique("e")))
    in_sub["verb"] = {"id": "http://adlnet.gov/expapi/verbs/planned"}
    in_sub["object"] = sub
    sub_ctx = statement(actor=unique("f"), activity=unique("lesson"),
                        context={"contextActivities": {"category": [{"id": iri(course)}]}})
    sub_ctx["objectType"] = "SubStatement"
    in_sub_context = with_id(statement(actor=unique("g")))
    in_sub_context["verb"] = {"id": "http://adlnet.gov/expapi/verbs/planned"}
    in_sub_context["object"] = sub_ctx
    unrelated = with_id(statement(actor=unique("h"), activity=unique("other")))
    await post(xapi, [direct, in_context, in_grouping, in_sub, in_sub_context, unrelated])
    assert await ids(xapi, activity=iri(course)) == [direct["id"]]
    related = await ids(xapi, activity=iri(course), related_activities="true")
    assert related == [in_sub_context["id"], in_sub["id"], in_grouping["id"], in_context["id"], direct["id"]]


async def test_registration_filter_returns_only_that_registration(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 registration."""
    kari = unique("kari")
    reg = str(uuid.uuid4())
    a = with_id(statement(actor=kari, context={"registration": reg}))
    b = with_id(statement(actor=unique("ola"), context={"registration": reg}))
    c = with_id(statement(actor=kari, context={"registration": str(uuid.uuid4())}))
    await post(xapi, [a, b, c])
    assert await ids(xapi, registration=reg) == [b["id"], a["id"]]
    assert await ids(xapi, registration=reg, agent=js(agent(kari))) == [a["id"]]


async def test_filters_combine_with_and(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1: every given filter narrows the result."""
    kari, ola, course = unique("kari"), unique("ola"), unique("course")
    hit = with_id(statement(actor=kari, verb="completed", activity=course))
    wrong_verb = with_id(statement(actor=kari, verb="attempted", activity=course))
    wrong_actor = with_id(statement(actor=ola, verb="completed", activity=course))
    wrong_activity = with_id(statement(actor=kari, verb="completed", activity=unique("x")))
    await post(xapi, [hit, wrong_verb, wrong_actor, wrong_activity])
    got = await ids(xapi, agent=js(agent(kari)), verb="http://adlnet.gov/expapi/verbs/completed", activity=iri(course))
    assert got == [hit["id"]]


# ---------------------------------------------------------------------------------------------
# StatementRef rule


async def test_a_statement_targeting_a_matching_statement_matches_agent_and_activity_filters(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.3.s3: a statement whose Object is a StatementRef meets the (non time)
    filters when its target does."""
    kari, ola, course = unique("kari"), unique("ola"), unique("course")
    target = with_id(statement(actor=kari, activity=course))
    await post(xapi, target)
    ref = sref(target["id"], by=ola)
    await post(xapi, ref)
    assert await ids(xapi, agent=js(agent(kari))) == [ref["id"], target["id"]]
    assert await ids(xapi, activity=iri(course)) == [ref["id"], target["id"]]
    completed = "http://adlnet.gov/expapi/verbs/completed"
    assert await ids(xapi, verb=completed, agent=js(agent(kari))) == [ref["id"], target["id"]]
    assert await ids(xapi, agent=js(agent(ola))) == [ref["id"]]


async def test_the_statement_ref_rule_applies_recursively(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s3: a targets b targets c; a matches when c meets the filter."""
    kari = unique("kari")
    c = with_id(statement(actor=kari))
    b = sref(c["id"], by=unique("ola"))
    a = sref(b["id"], by=unique("per"))
    await post(xapi, c)
    await post(xapi, b)
    await post(xapi, a)
    assert await ids(xapi, agent=js(agent(kari))) == [a["id"], b["id"], c["id"]]


async def test_the_statement_ref_rule_holds_when_the_target_arrives_after_the_reference(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.3.s3 describes a matching rule, not an arrival order: a reference stored
    before its target still matches once the target is stored."""
    kari = unique("kari")
    c = with_id(statement(actor=kari))
    b = sref(c["id"], by=unique("ola"))
    a = sref(b["id"], by=unique("per"))
    await post(xapi, a)
    await post(xapi, b)
    await post(xapi, c)
    assert await ids(xapi, agent=js(agent(kari))) == [c["id"], b["id"], a["id"]]


async def test_a_reference_to_a_statement_whose_own_target_arrived_late_still_matches(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s3 (recursive): b targets c before c is stored; c arrives; then a
    targets b. a matches c's filters through b like b does."""
    kari = unique("kari")
    c = with_id(statement(actor=kari))
    b = sref(c["id"], by=unique("ola"))
    a = sref(b["id"], by=unique("per"))
    await post(xapi, b)
    await post(xapi, c)
    await post(xapi, a)
    assert await ids(xapi, agent=js(agent(kari))) == [a["id"], c["id"], b["id"]]


async def test_since_and_until_apply_to_the_targeting_statement_not_its_target(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s3: the time based parameters are applied to the statement making the
    StatementRef."""
    kari = unique("kari")
    target = with_id(statement(actor=kari))
    await post(xapi, target)
    target_stored = await stored_of(xapi, target["id"])
    await asyncio.sleep(0.01)
    ref = sref(target["id"], by=unique("ola"))
    await post(xapi, ref)
    assert await ids(xapi, agent=js(agent(kari)), since=target_stored) == [ref["id"]]
    assert await ids(xapi, agent=js(agent(kari)), until=target_stored) == [target["id"]]


async def test_limit_applies_to_the_targeting_statements_themselves(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s3: limit counts the targeting statements in the result like any other."""
    kari = unique("kari")
    target = with_id(statement(actor=kari))
    await post(xapi, target)
    ref = sref(target["id"], by=unique("ola"))
    await post(xapi, ref)
    assert await ids(xapi, agent=js(agent(kari)), limit="1") == [ref["id"]]
    assert await ids(xapi, agent=js(agent(kari)), limit="1", ascending="true") == [target["id"]]


async def test_a_statement_ref_in_context_does_not_carry_the_target_filters(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s3 note: StatementRefs in context.statement do not affect filtering."""
    kari = unique("kari")
    target = with_id(statement(actor=kari))
    await post(xapi, target)
    context = {"statement": {"objectType": "StatementRef", "id": target["id"]}}
    other = with_id(statement(actor=unique("ola"), context=context))
    await post(xapi, other)
    assert await ids(xapi, agent=js(agent(kari))) == [target["id"]]


# ---------------------------------------------------------------------------------------------
# since, until, limit, ascending


async def test_since_is_exclusive_and_until_is_inclusive_on_stored(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1: since = stored after the timestamp (exclusive); until = stored at
    or before it (inclusive)."""
    kari = unique("kari")
    made = []
    for _ in range(3):
        s = with_id(statement(actor=kari))
        await post(xapi, s)
        made.append(s["id"])
        await asyncio.sleep(0.01)
    first, second, third = made
    stored = [await stored_of(xapi, sid) for sid in made]
    assert len(set(stored)) == 3, "statements posted 10 ms apart got the same stored time"
    a = js(agent(kari))
    assert await ids(xapi, agent=a, since=stored[0]) == [third, second]
    assert await ids(xapi, agent=a, until=stored[1]) == [second, first]
    assert await ids(xapi, agent=a, since=stored[0], until=stored[1]) == [second]
    assert await ids(xapi, agent=a, since=stored[2]) == []


async def test_since_accepts_a_timestamp_with_an_offset(xapi: httpx.AsyncClient) -> None:
    """Data 4.5: a Timestamp parameter may carry any offset; it names the same instant."""
    kari = unique("kari")
    s = with_id(statement(actor=kari))
    await post(xapi, s)
    a = js(agent(kari))
    assert await ids(xapi, agent=a, since="2000-01-01T02:00:00.000+02:00") == [s["id"]]
    assert await ids(xapi, agent=a, until="2000-01-01T02:00:00+02:00") == []


async def test_results_are_newest_stored_first_unless_ascending(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1: reverse chronological order of "stored" by default; ascending=true
    returns ascending order."""
    kari = unique("kari")
    made = []
    for _ in range(3):
        s = with_id(statement(actor=kari))
        await post(xapi, s)
        made.append(s["id"])
    a = js(agent(kari))
    assert await ids(xapi, agent=a) == made[::-1]
    assert await ids(xapi, agent=a, ascending="true") == made
    assert await ids(xapi, agent=a, ascending="false") == made[::-1]


async def test_limit_caps_the_number_of_statements_and_zero_means_the_server_maximum(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 limit: at most that many; 0 = as many as the server allows."""
    kari = unique("kari")
    batch = [with_id(statement(actor=kari)) for _ in range(5)]
    await post(xapi, batch)
    a = js(agent(kari))
    assert len(await ids(xapi, agent=a, limit="2")) == 2
    assert len(await ids(xapi, agent=a, limit="0")) == 5
    assert len(await ids(xapi, agent=a)) == 5


async def test_no_match_returns_200_with_an_empty_statement_list(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b4: no match is still 200 with a StatementResult whose statements
    array is empty (and, Data 2.5 StatementResult, an empty "more")."""
    r = await xapi.get("/statements", params={"agent": js(agent(unique("nobody")))})
    assert r.status_code == 200, r.text
    assert r.json() == {"statements": [], "more": ""}


# ---------------------------------------------------------------------------------------------
# format


def _rich(kari: str, course: str) -> dict[str, Any]:
    s = with_id(statement(actor=kari, activity=course))
    s["verb"] = {"id": "http://adlnet.gov/expapi/verbs/completed",
                 "display": {"en-US": "completed", "nb-NO": "fullførte", "de-DE": "abgeschlossen"}}
    s["object"]["definition"] = {
        "name": {"en-US": "Hand hygiene", "nb-NO": "Håndhygiene", "de-DE": "Händehygiene"},
        "description": {"en-US": "Basics", "nb-NO": "Grunnleggende"},
        "type": "http://adlnet.gov/expapi/activities/course",
    }
    return s


async def test_format_exact_returns_the_statement_as_received(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 format=exact (the default): objects exactly as received."""
    kari, course = unique("kari"), unique("course")
    s = _rich(kari, course)
    await post(xapi, s)
    for params in ({}, {"format": "exact"}):
        [got] = await query(xapi, agent=js(agent(kari)), **params)
        assert got["verb"] == s["verb"]
        assert got["object"] == s["object"]
        assert got["actor"] == s["actor"]


async def test_format_ids_keeps_only_identifiers_of_agents_verbs_and_activities(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1 format=ids: only what identifies Agents, Groups (each member of an
    anonymous Group), Verbs and Activities."""
    kari, course = unique("kari"), unique("course")
    s = _rich(kari, course)
    s["context"] = {"instructor": agent(unique("ola")),
                    "team": {"objectType": "Group", "name": "Anon team", "member": [agent(unique("per"))]},
                    "contextActivities": {"parent": [{"id": iri("parent"), "definition": {"name": {"en-US": "P"}}}]}}
    await post(xapi, s)
    [got] = await query(xapi, agent=js(agent(kari)), format="ids")
    assert got["id"] == s["id"]
    assert got["actor"] == {"objectType": "Agent", "account": s["actor"]["account"]}
    assert got["verb"] == {"id": s["verb"]["id"]}
    assert got["object"]["id"] == s["object"]["id"] and "definition" not in got["object"]
    assert "name" not in got["context"]["instructor"]
    assert "name" not in got["context"]["team"]
    assert [set(m) for m in got["context"]["team"]["member"]] == [{"objectType", "account"}]
    assert "definition" not in got["context"]["contextActivities"]["parent"][0]


async def test_format_ids_leaves_extension_values_as_sent(xapi: httpx.AsyncClient) -> None:
    """Extension values are any JSON (Data 2.2 / 4.1 Extensions), not Agents or Activities whatever
    their keys: format=ids trims only Agents, Groups, Verbs and Activities. One shaped like a
    malformed Group made the whole query 500."""
    kari = unique("kari")
    s = with_id(statement(actor=kari))
    odd = {"actor": {"member": [1]}, "verb": {"id": 1, "keep": 2}, "object": {"id": "x", "definition": {}}}
    agentish = {"objectType": "Agent", "name": "kept", "mbox": "mailto:kari.nordmann@example.org"}
    s["context"] = {"extensions": {iri("ext/odd"): odd}}
    s["result"] = {"extensions": {iri("ext/agentish"): agentish}}
    await post(xapi, s)
    for params in ({"agent": js(agent(kari))}, {"statementId": s["id"]}):
        r = await xapi.get("/statements", params={**params, "format": "ids"})
        assert r.status_code == 200, r.text
        got = r.json()["statements"][0] if "agent" in params else r.json()
        assert got["context"]["extensions"] == s["context"]["extensions"]
        assert got["result"]["extensions"] == s["result"]["extensions"]


async def test_format_canonical_applies_accept_language_as_rfc_2616_says(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s4.b5 / RFC 2616 14.4: a range matches a tag it equals or is a prefix
    of (followed by '-'); q=0 is not acceptable. en-US does not match en-GB."""
    kari = unique("kari")
    s = with_id(statement(actor=kari))
    s["verb"] = {"id": "http://adlnet.gov/expapi/verbs/experienced",
                 "display": {"en-GB": "read (GB)", "fr": "lu", "de": "gelesen"}}
    await post(xapi, s)
    for header, chosen in (("en-US, fr;q=0.8", "fr"), ("en;q=0.5, de;q=0.6", "de"), ("fr;q=0, de;q=0, *", "en-GB")):
        r = await xapi.get("/statements", params={"statementId": s["id"], "format": "canonical"},
                           headers={"Accept-Language": header})
        assert r.json()["verb"]["display"] == {chosen: s["verb"]["display"][chosen]}, header


async def test_format_canonical_keeps_one_language_chosen_by_accept_language(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s4.b1/b5: canonical returns one language per language map, chosen by
    Accept-Language applied to each map on its own; Agents stay as in exact."""
    kari, course = unique("kari"), unique("course")
    s = _rich(kari, course)
    await post(xapi, s)
    a = js(agent(kari))
    r = await xapi.get("/statements", params={"agent": a, "format": "canonical"},
                       headers={"Accept-Language": "nb-NO, en-US;q=0.5"})
    assert r.status_code == 200, r.text
    [got] = r.json()["statements"]
    assert got["verb"]["display"] == {"nb-NO": "fullførte"}
    assert got["object"]["definition"]["name"] == {"nb-NO": "Håndhygiene"}
    assert got["object"]["definition"]["description"] == {"nb-NO": "Grunnleggende"}
    assert got["actor"] == s["actor"]
    r = await xapi.get("/statements", params={"agent": a, "format": "canonical"},
                       headers={"Accept-Language": "de-DE;q=0.9, fr-FR"})
    [got] = r.json()["statements"]
    assert got["object"]["definition"]["name"] == {"de-DE": "Händehygiene"}
    # description has no de-DE entry: still exactly one language in the map
    assert len(got["object"]["definition"]["description"]) == 1


async def test_format_canonical_without_accept_language_still_returns_one_language_per_map(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.3.s4.b1: "MUST return only one language in each of these maps"."""
    kari, course = unique("kari"), unique("course")
    await post(xapi, _rich(kari, course))
    [got] = await query(xapi, agent=js(agent(kari)), format="canonical")
    assert len(got["verb"]["display"]) == 1
    assert len(got["object"]["definition"]["name"]) == 1


# ---------------------------------------------------------------------------------------------
# Parameter validation


@pytest.mark.parametrize(
    "params",
    [
        {"bogus": "1"},
        {"Agent": '{"mbox": "mailto:kari@example.org"}'},
        {"statementID": "6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6f"},
        {"LIMIT": "1"},
    ],
    ids=["unknown", "Agent", "statementID", "LIMIT"],
)
async def test_unknown_parameter_or_known_one_in_wrong_case_is_400(
    xapi: httpx.AsyncClient, params: dict[str, str],
) -> None:
    """Communication 3.2.s3.b7 (unrecognised parameters) and 3.2.s3.b8 (parameters matching the
    spec's in all but case) are rejected with 400, naming the parameter."""
    r = await xapi.get("/statements", params=params)
    assert r.status_code == 400, r.text
    assert next(iter(params)) in r.json()["error"]["message"]


async def test_a_limit_of_thousands_of_digits_is_the_server_maximum(xapi: httpx.AsyncClient) -> None:
    """More digits than int() converts (4,300) were a 500; a limit that long is simply above the
    server's maximum, as 10**9 is."""
    assert (await xapi.post("/statements", json=[statement() for _ in range(3)])).status_code == 200
    r = await xapi.get("/statements", params={"limit": "9" * 5000})
    assert r.status_code == 200 and len(r.json()["statements"]) >= 3, r.text
    r = await xapi.get("/statements", params={"limit": "0" * 5000 + "2"})  # leading zeros: 2
    assert r.status_code == 200 and len(r.json()["statements"]) == 2, r.text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("agent", "{not json"),
        ("agent", '"mailto:kari@example.org"'),
        ("agent", '{"mbox": "kari@example.org"}'),
        ("agent", '{"name": "No Identifier"}'),
        ("agent", '{"mbox": "mailto:a@example.org", "openid": "https://example.org/a"}'),
        ("verb", "not an iri"),
        ("activity", "not an iri"),
        ("registration", "not-a-uuid"),
        ("registration", "6f1d4c2e8a7b4c3d9e2f1a2b3c4d5e6f"),
        ("registration", "urn:uuid:6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6f"),
        ("since", "yesterday"),
        ("until", "2024-13-45T99:00:00Z"),
        ("limit", "-1"),
        ("limit", "ten"),
        ("limit", "\u00b2"),  # a superscript two: a digit to str.isdigit, not to int() (was a 500)
        ("limit", "\u0663"),  # an Arabic-Indic three: int() reads it, a limit is written in ASCII
        ("ascending", "yes"),
        ("related_agents", "1"),
        ("related_activities", "TRUE!"),
        ("format", "full"),
        ("attachments", "maybe"),
    ],
)
async def test_a_parameter_with_an_invalid_value_is_400_naming_it(
    xapi: httpx.AsyncClient, name: str, value: str,
) -> None:
    """Data 2.2.s4.b4: parameter values are validated to the same standards as the same types in
    statements (JSON Agent with exactly one IFI, IRI, UUID, Timestamp, boolean as in JSON);
    Communication 3.2.s2.b1: invalid arguments are 400."""
    r = await xapi.get("/statements", params={name: value})
    assert r.status_code == 400, r.text
    assert name in r.json()["error"]["message"]
