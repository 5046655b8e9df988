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


async def test_refused_alternate_syntax_still_carries_version_and_request_id(server: Server, tenant: Tenant) -> None:
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi", auth=(tenant.key, tenant.secret)) as c:
        r = await c.post("/statements", params={"method": "GET"}, data={"limit": "1"},
                         headers={"X-Experience-API-Version": "2.0.0"})
    assert r.status_code == 400
    assert r.headers["X-Experience-API-Version"] == "2.0.0"
    assert r.headers["X-Request-Id"]
