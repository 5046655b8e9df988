"""Re-sending a statement id: equal by the comparison rules is accepted, else 409; and refusals
of the alternate request syntax still carry the xAPI headers."""

from __future__ import annotations

import uuid

import httpx
import pytest

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


@pytest.mark.parametrize(("first", "again"), [(True, 1), (False, 0), (1, 1.0), ([True], [1]),
                                              ({"k": False}, {"k": 0.0}), (1, "1")])
async def test_a_value_of_another_json_type_is_another_statement(server: Server, tenant: Tenant, first: object,
                                                                  again: object) -> None:
    """Data 2.3.1.s9.b2: differences not among the exceptions MUST NOT be ignored. Compared by
    Python's ==, true was 1 and 1.0, so an extension re-sent as 1 got 200 and was not stored (a
    fuzzing audit). 1 and 1.0 are one JSON number but two serializations, which the rule names;
    a signed statement's payload was compared so already."""
    ext = "https://ext.example.org/flag"
    async with xapi_client(server, tenant, "2.0.0") as c:
        sid = str(uuid.uuid4())
        sent = {**statement(), "result": {"extensions": {ext: first}}}
        assert (await c.put("/statements", params={"statementId": sid}, json=sent)).status_code == 204
        assert (await c.put("/statements", params={"statementId": sid}, json=sent)).status_code == 204
        other = {**statement(), "result": {"extensions": {ext: again}}}
        r = await c.put("/statements", params={"statementId": sid}, json=other)
        assert r.status_code == 409 and sid in r.json()["error"]["message"], r.text
        r = await c.post("/statements", json={**other, "id": sid})
        assert r.status_code == 409, r.text


async def test_a_language_tag_sent_twice_in_two_cases_compares_in_any_member_order(
        server: Server, tenant: Tenant) -> None:
    """The tags of a language map were lower-cased into a dict, so of {"en-US": "a", "EN-us": "b"}
    the last member won: the same statement with its members in the other order was 409."""
    async with xapi_client(server, tenant, "2.0.0") as c:
        sid = str(uuid.uuid4())
        attachment = {"usageType": "http://id.tincanapi.com/attachment/certificate", "contentType": "text/plain",
                      "length": 5, "sha2": "a" * 64, "fileUrl": "https://files.example.org/cert.txt"}
        sent = {**statement(), "attachments": [{**attachment, "display": {"en-US": "a", "EN-us": "b"}}]}
        assert (await c.put("/statements", params={"statementId": sid}, json=sent)).status_code == 204
        swapped = {**statement(), "attachments": [{**attachment, "display": {"EN-us": "b", "en-US": "a"}}]}
        assert (await c.put("/statements", params={"statementId": sid}, json=swapped)).status_code == 204
        other = {**statement(), "attachments": [{**attachment, "display": {"EN-us": "a", "en-US": "a"}}]}
        assert (await c.put("/statements", params={"statementId": sid}, json=other)).status_code == 409


async def test_refused_alternate_syntax_still_carries_version_and_request_id(server: Server, tenant: Tenant) -> None:
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi", auth=(tenant.key, tenant.secret)) as c:
        r = await c.post("/statements", params={"method": "GET"}, data={"limit": "1"},
                         headers={"X-Experience-API-Version": "2.0.0"})
    assert r.status_code == 400
    assert r.headers["X-Experience-API-Version"] == "2.0.0"
    assert r.headers["X-Request-Id"]
