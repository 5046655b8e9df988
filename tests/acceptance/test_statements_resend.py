"""Re-sending a statement id: equal by the comparison rules is accepted, else 409; and refusals
of the alternate request syntax still carry the xAPI headers."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Server, Tenant, xapi_client
from tests.statements import statement


async def test_durations_equal_to_the_hundredth_are_the_same_statement(server: Server, tenant: Tenant) -> None:
    async with xapi_client(server, tenant, "2.0.0") as c:
        sid = str(uuid.uuid4())
        first = {**statement(), "result": {"duration": "PT1.2S"}}
        assert (await c.put("/statements", params={"statementId": sid}, json=first)).status_code == 204
        again = {**statement(), "result": {"duration": "PT1.201S"}}
        assert (await c.put("/statements", params={"statementId": sid}, json=again)).status_code == 204
        other = {**statement(), "result": {"duration": "PT1.3S"}}
        r = await c.put("/statements", params={"statementId": sid}, json=other)
        assert r.status_code == 409 and sid in r.json()["error"]["message"]


async def test_under_1_0_3_a_duration_is_compared_as_a_string(server: Server, tenant: Tenant) -> None:
    """1.0.3 Data 2.3.1.b8: "the Result Duration is considered a string for purposes of Statement
    comparison": PT1.2S re-sent as PT1.20S is another statement (409), as it is not in 2.0.0."""
    async with xapi_client(server, tenant, "1.0.3") as c:
        sid = str(uuid.uuid4())
        first = {**statement(), "result": {"duration": "PT1.2S"}}
        assert (await c.put("/statements", params={"statementId": sid}, json=first)).status_code == 204
        assert (await c.put("/statements", params={"statementId": sid}, json=first)).status_code == 204
        again = {**statement(), "result": {"duration": "PT1.20S"}}
        r = await c.put("/statements", params={"statementId": sid}, json=again)
        assert r.status_code == 409 and sid in r.json()["error"]["message"]


async def test_a_language_tag_in_another_case_is_the_same_statement(server: Server, tenant: Tenant) -> None:
    """Data 2.3.1.b7 and RFC 5646 2.1.1: language tags carry no case."""
    async with xapi_client(server, tenant, "2.0.0") as c:
        sid = str(uuid.uuid4())
        first = {**statement(), "context": {"language": "nb-NO"}}
        assert (await c.put("/statements", params={"statementId": sid}, json=first)).status_code == 204
        again = {**statement(), "context": {"language": "NB-no"}}
        assert (await c.put("/statements", params={"statementId": sid}, json=again)).status_code == 204
        other = {**statement(), "context": {"language": "nn-NO"}}
        assert (await c.put("/statements", params={"statementId": sid}, json=other)).status_code == 409


async def test_refused_alternate_syntax_still_carries_version_and_request_id(server: Server, tenant: Tenant) -> None:
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi", auth=(tenant.key, tenant.secret)) as c:
        r = await c.post("/statements", params={"method": "GET"}, data={"limit": "1"},
                         headers={"X-Experience-API-Version": "2.0.0"})
    assert r.status_code == 400
    assert r.headers["X-Experience-API-Version"] == "2.0.0"
    assert r.headers["X-Request-Id"]
