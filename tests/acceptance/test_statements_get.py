"""Fetching one statement (xAPI Communication 2.1.3 statementId / voidedStatementId) and voiding
(Data 2.3.2, Communication 2.1.4).

Section numbers are those of the 1.0.3 documents; the 2.0.0 text is the same. Each test uses
its own actors and activities, so one store per module keeps the tests independent.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.module_clients import agent_param, clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)
from tests.statements import agent, statement, with_id

VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def voiding(target: str, by: str = "admin") -> dict[str, Any]:
    return with_id({
        "actor": agent(by),
        "verb": {"id": VOIDED, "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": target},
    })


async def post(xapi: httpx.AsyncClient, body: Any) -> list[str]:
    r = await xapi.post("/statements", json=body)
    assert r.status_code == 200, r.text
    return list(r.json())


async def ids_for_agent(xapi: httpx.AsyncClient, name: str) -> list[str]:
    r = await xapi.get("/statements", params={"agent": agent_param(name)})
    assert r.status_code == 200, r.text
    return [s["id"] for s in r.json()["statements"]]


# ---------------------------------------------------------------------------------------------
# statementId


async def test_get_by_statement_id_returns_the_statement_exactly_as_sent_plus_lrs_properties(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.3.s1: statementId returns that single Statement (not a StatementResult);
    format=exact (the default) returns it as received (Data 2.3.1)."""
    s = with_id(statement(actor=unique("kari"), activity=unique("course"),
                          result={"score": {"scaled": 0.5}, "success": True, "duration": "PT1H0M0S"}))
    await post(xapi, s)
    r = await xapi.get("/statements", params={"statementId": s["id"]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    got = r.json()
    assert "statements" not in got
    for key in ("id", "actor", "verb", "object", "result"):
        assert got[key] == s[key], key
    assert {"stored", "authority", "version", "timestamp"} <= got.keys()


async def test_get_by_statement_id_accepts_an_upper_case_uuid(xapi: httpx.AsyncClient) -> None:
    """Data 2.4.1: a UUID is a value, not a string; its hex digits are case-insensitive (RFC 4122 3)."""
    s = with_id(statement(actor=unique("kari")))
    await post(xapi, s)
    r = await xapi.get("/statements", params={"statementId": s["id"].upper()})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == s["id"]


async def test_get_by_unknown_statement_id_is_404(xapi: httpx.AsyncClient) -> None:
    """Communication 3.2.s2.b4: 404 for the single-statement GET of an id the LRS does not have."""
    r = await xapi.get("/statements", params={"statementId": str(uuid.uuid4())})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["message"]


# the last three are forms Python's uuid.UUID takes but Data 4.4's standard string form is not
@pytest.mark.parametrize("bad", ["not-a-uuid", "1234", "", "6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6",
                                 "6f1d4c2e8a7b4c3d9e2f1a2b3c4d5e6f", "{6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6f}",
                                 "urn:uuid:6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6f"])
async def test_get_by_malformed_statement_id_is_400(xapi: httpx.AsyncClient, bad: str) -> None:
    """Data 2.2.s4.b4: parameter values are validated like statement values; a statementId that
    is not a UUID is a bad argument (Communication 3.2.s2.b1), not "not found"."""
    r = await xapi.get("/statements", params={"statementId": bad})
    assert r.status_code == 400, r.text


async def test_get_with_both_statement_id_and_voided_statement_id_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b1."""
    s = with_id(statement(actor=unique("kari")))
    await post(xapi, s)
    r = await xapi.get("/statements", params={"statementId": s["id"], "voidedStatementId": s["id"]})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert "statementId" in msg and "voidedStatementId" in msg


@pytest.mark.parametrize(
    "extra",
    [
        {"limit": "1"},
        {"ascending": "true"},
        {"verb": "http://adlnet.gov/expapi/verbs/completed"},
        {"activity": "https://courses.example.org/hand-hygiene"},
        {"since": "2020-01-01T00:00:00Z"},
        {"until": "2100-01-01T00:00:00Z"},
        {"registration": "6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6f"},
        {"related_agents": "false"},
        {"related_activities": "false"},
        {"agent": '{"mbox": "mailto:kari@example.org"}'},
    ],
    ids=lambda d: next(iter(d)),
)
async def test_get_with_statement_id_and_another_parameter_is_400(
    xapi: httpx.AsyncClient, extra: dict[str, str],
) -> None:
    """Communication 2.1.3.s2.b2: statementId/voidedStatementId with any parameter other than
    "attachments" or "format" is rejected with 400 (whether or not the statement exists)."""
    for key in ("statementId", "voidedStatementId"):
        r = await xapi.get("/statements", params={key: str(uuid.uuid4()), **extra})
        assert r.status_code == 400, (key, r.text)
        assert next(iter(extra)) in r.json()["error"]["message"]


async def test_get_with_statement_id_and_format_and_attachments_is_allowed(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s2.b2: "format" and "attachments" may accompany statementId."""
    s = with_id(statement(actor=unique("kari")))
    await post(xapi, s)
    r = await xapi.get("/statements", params={"statementId": s["id"], "format": "ids", "attachments": "false"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["id"] == s["id"]
    assert "display" not in got["verb"]
    assert "name" not in got["actor"]


# ---------------------------------------------------------------------------------------------
# Voiding


async def test_voided_statement_is_404_by_statement_id_and_returned_by_voided_statement_id(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.4.s1.b1: a voided statement is only returned when requested by
    voidedStatementId."""
    s = with_id(statement(actor=unique("kari")))
    await post(xapi, s)
    v = voiding(s["id"])
    await post(xapi, v)
    r = await xapi.get("/statements", params={"statementId": s["id"]})
    assert r.status_code == 404, r.text
    r = await xapi.get("/statements", params={"voidedStatementId": s["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == s["id"]
    assert r.json()["actor"] == s["actor"]


async def test_voided_statement_id_of_a_statement_that_is_not_voided_is_404(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.3.s1: voidedStatementId fetches a *voided* statement; an unvoided one is
    not found that way (Data 2.3.2.s2.b3 defines which statements are voided)."""
    s = with_id(statement(actor=unique("kari")))
    await post(xapi, s)
    r = await xapi.get("/statements", params={"voidedStatementId": s["id"]})
    assert r.status_code == 404, r.text


async def test_voided_statement_is_left_out_of_queries_and_the_voiding_statement_is_returned(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.4.s1.b1/b2: queries never return the voided statement, but do return the
    statements targeting it (the voiding statement included), which match the target's filters
    through the StatementRef rule (2.1.3.s3)."""
    kari = unique("kari")
    keep = with_id(statement(actor=kari, activity="keep"))
    target = with_id(statement(actor=kari, activity="mistake"))
    await post(xapi, [keep, target])
    v = voiding(target["id"], by=unique("admin"))
    await post(xapi, v)
    assert await ids_for_agent(xapi, kari) == [v["id"], keep["id"]]
    r = await xapi.get("/statements", params={"verb": VOIDED, "agent": agent_param(kari)})
    assert [s["id"] for s in r.json()["statements"]] == [v["id"]]


async def test_voiding_a_voiding_statement_does_not_void_it(xapi: httpx.AsyncClient) -> None:
    """Data 2.3.2.s1 / 2.3.2.s2.b3: a voiding statement cannot itself be voided; the first target
    stays voided."""
    s = with_id(statement(actor=unique("kari")))
    await post(xapi, s)
    v1 = voiding(s["id"])
    await post(xapi, v1)
    v2 = voiding(v1["id"])
    await post(xapi, v2)
    r = await xapi.get("/statements", params={"statementId": v1["id"]})
    assert r.status_code == 200, "a voiding statement was voided"
    assert (await xapi.get("/statements", params={"voidedStatementId": v1["id"]})).status_code == 404
    assert (await xapi.get("/statements", params={"statementId": s["id"]})).status_code == 404
    assert (await xapi.get("/statements", params={"voidedStatementId": s["id"]})).status_code == 200


async def test_voiding_statement_whose_object_is_not_a_statement_ref_is_400(xapi: httpx.AsyncClient) -> None:
    """Data 2.3.2.s2.b1: the object of a voiding statement MUST be a StatementRef."""
    s = with_id(statement(actor=unique("kari"), verb="voided"))
    s["verb"] = {"id": VOIDED, "display": {"en-US": "voided"}}
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 400, r.text
    assert "object" in r.json()["error"]["message"]
    assert (await xapi.get("/statements", params={"statementId": s["id"]})).status_code == 404


async def test_voiding_a_statement_not_yet_stored_is_accepted_and_voids_it_when_it_arrives(
    xapi: httpx.AsyncClient,
) -> None:
    """Data 2.3.2.s2.b5: the LRS SHOULD NOT* reject a voiding statement because its target is
    missing; 2.3.2.s2.b3: once the LRS contains both, the target is voided."""
    kari = unique("kari")
    target = with_id(statement(actor=kari))
    v = voiding(target["id"])
    await post(xapi, v)
    await post(xapi, target)
    assert (await xapi.get("/statements", params={"statementId": target["id"]})).status_code == 404
    assert (await xapi.get("/statements", params={"voidedStatementId": target["id"]})).status_code == 200
    assert await ids_for_agent(xapi, kari) == [v["id"]]


async def test_voiding_a_statement_in_the_same_batch_voids_it(xapi: httpx.AsyncClient) -> None:
    """Data 2.3.2.s2.b3 holds however the two statements arrive, one batch included."""
    target = with_id(statement(actor=unique("kari")))
    v = voiding(target["id"])
    await post(xapi, [target, v])
    assert (await xapi.get("/statements", params={"statementId": target["id"]})).status_code == 404
    assert (await xapi.get("/statements", params={"voidedStatementId": target["id"]})).status_code == 200


async def test_a_statement_ref_with_another_verb_does_not_void(xapi: httpx.AsyncClient) -> None:
    """Data 2.3.2.s1: only the reserved verb .../voided voids; other StatementRefs just refer."""
    target = with_id(statement(actor=unique("kari")))
    ref = with_id({"actor": agent(unique("ola")), "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                   "object": {"objectType": "StatementRef", "id": target["id"]}})
    await post(xapi, [target, ref])
    assert (await xapi.get("/statements", params={"statementId": target["id"]})).status_code == 200
