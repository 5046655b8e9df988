"""Storing statements over HTTP: PUT and POST (xAPI Communication 2.1.1, 2.1.2), idempotent
re-sends and conflicts (Data 2.3.1 comparison rules), all-or-nothing batches (Communication
3.2.s3.b9), and the properties the LRS sets itself (Data 2.4.1, 2.4.7 - 2.4.10).

Section numbers are those of the 1.0.3 documents; the 2.0.0 text of these rules is the same
unless a test says otherwise. Every test writes under its own actor/activity names, so one
store per module is enough and the statements of one test never show up in another's counts.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from lrs.ops.timestamps import parse_timestamp
from tests.conftest import Tenant
from tests.module_clients import clients, shared_tenant, unique, xapi  # noqa: F401 (fixtures)
from tests.statements import HOMEPAGE, agent, statement, with_id


def fresh(**extra: Any) -> dict[str, Any]:
    """A statement with its own actor and activity, so queries on them see only this test."""
    return statement(actor=unique("kari"), activity=unique("course"), **extra)


def activity_of(s: dict[str, Any]) -> str:
    return str(s["object"]["id"])


def iri(slug: str) -> str:
    """The Activity id ``tests.statements.statement(activity=slug)`` uses."""
    return f"https://courses.example.org/{slug}"


async def stored_for_activity(xapi: httpx.AsyncClient, activity: str) -> list[dict[str, Any]]:
    r = await xapi.get("/statements", params={"activity": activity, "related_activities": "true"})
    assert r.status_code == 200, r.text
    return list(r.json()["statements"])


async def get_one(xapi: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    r = await xapi.get("/statements", params={"statementId": sid})
    assert r.status_code == 200, r.text
    return dict(r.json())


# ---------------------------------------------------------------------------------------------
# PUT


async def test_put_with_statement_id_returns_204_and_the_statement_is_stored_under_that_id(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.1: PUT stores one statement under statementId and returns 204 No Content."""
    s = with_id(fresh())
    r = await xapi.put("/statements", params={"statementId": s["id"]}, json=s)
    assert r.status_code == 204, r.text
    assert r.content == b""
    got = await get_one(xapi, s["id"])
    assert got["id"] == s["id"]
    assert got["actor"] == s["actor"]
    assert got["object"]["id"] == activity_of(s)


async def test_put_without_id_in_body_stores_it_under_the_statement_id_parameter(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.1.s3.b2/b3: the statementId parameter names the statement; a body without
    "id" is stored under it."""
    s = fresh()
    sid = str(uuid.uuid4())
    r = await xapi.put("/statements", params={"statementId": sid}, json=s)
    assert r.status_code == 204, r.text
    assert (await get_one(xapi, sid))["id"] == sid


async def test_put_with_body_id_not_matching_statement_id_is_400_and_stores_nothing(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.1.s3.b3: where provided, "id" MUST match the statementId parameter."""
    s = with_id(fresh())
    other = str(uuid.uuid4())
    r = await xapi.put("/statements", params={"statementId": other}, json=s)
    assert r.status_code == 400, r.text
    assert "statementId" in r.json()["error"]["message"]
    assert (await xapi.get("/statements", params={"statementId": other})).status_code == 404
    assert (await xapi.get("/statements", params={"statementId": s["id"]})).status_code == 404


async def test_put_without_statement_id_parameter_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.1.s1 (statementId is Required) and 3.2.s2.b1 (missing argument -> 400)."""
    s = with_id(fresh())
    r = await xapi.put("/statements", json=s)
    assert r.status_code == 400, r.text
    assert "statementId" in r.json()["error"]["message"]
    assert await stored_for_activity(xapi, activity_of(s)) == []


async def test_put_with_malformed_statement_id_is_400(xapi: httpx.AsyncClient) -> None:
    """Data 2.2.s4.b4 (parameters are validated like statement values): a statementId that is not a
    UUID is 400."""
    r = await xapi.put("/statements", params={"statementId": "not-a-uuid"}, json=fresh())
    assert r.status_code == 400, r.text
    assert "statementId" in r.json()["error"]["message"]


async def test_put_with_an_array_body_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.1.s1: the content of PUT is one Statement object, not a batch."""
    s = with_id(fresh())
    r = await xapi.put("/statements", params={"statementId": s["id"]}, json=[s])
    assert r.status_code == 400, r.text
    assert await stored_for_activity(xapi, activity_of(s)) == []


async def test_put_same_statement_again_is_204_and_keeps_a_single_copy(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.1.s2.b2/b3: a statement id the LRS already has, with matching content,
    changes nothing (no second copy)."""
    s = with_id(fresh())
    first = await xapi.put("/statements", params={"statementId": s["id"]}, json=s)
    assert first.status_code == 204, first.text
    before = await get_one(xapi, s["id"])
    again = await xapi.put("/statements", params={"statementId": s["id"]}, json=s)
    assert again.status_code == 204, again.text
    assert [x["id"] for x in await stored_for_activity(xapi, activity_of(s))] == [s["id"]]
    assert (await get_one(xapi, s["id"]))["stored"] == before["stored"]


async def test_put_same_id_with_different_content_is_409_and_the_original_is_unchanged(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.1.s2.b2/b3: same id, content that does not match -> 409 Conflict, and the
    stored statement is not modified."""
    s = with_id(fresh())
    assert (await xapi.put("/statements", params={"statementId": s["id"]}, json=s)).status_code == 204
    changed = {**s, "verb": {"id": "http://adlnet.gov/expapi/verbs/failed", "display": {"en-US": "failed"}}}
    r = await xapi.put("/statements", params={"statementId": s["id"]}, json=changed)
    assert r.status_code == 409, r.text
    assert s["id"] in r.json()["error"]["message"]
    got = await get_one(xapi, s["id"])
    assert got["verb"]["id"] == s["verb"]["id"]


# ---------------------------------------------------------------------------------------------
# POST


async def test_post_single_statement_returns_200_and_a_list_with_its_id(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s1: 200 OK with an array of the statement id(s)."""
    s = with_id(fresh())
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == [s["id"]]


async def test_post_batch_returns_200_with_the_ids_in_request_order(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s1: ids in the same order as the statements sent, including ids the LRS
    generated for statements sent without one."""
    activity = unique("course")
    batch = [
        with_id(statement(actor=unique("a"), activity=activity)),
        statement(actor=unique("b"), activity=activity),
        with_id(statement(actor=unique("c"), activity=activity)),
        statement(actor=unique("d"), activity=activity),
    ]
    r = await xapi.post("/statements", json=batch)
    assert r.status_code == 200, r.text
    ids = r.json()
    assert len(ids) == 4
    assert ids[0] == batch[0]["id"] and ids[2] == batch[2]["id"]
    for sid, sent in zip(ids, batch, strict=True):
        got = await get_one(xapi, sid)
        assert got["actor"] == sent["actor"], "the id at this position belongs to another statement"


async def test_batch_with_one_invalid_statement_is_400_and_stores_none_of_it(xapi: httpx.AsyncClient) -> None:
    """Communication 3.2.s3.b9: a batch is rejected if any statement in it is rejected."""
    activity = unique("course")
    good = with_id(statement(actor=unique("a"), activity=activity))
    bad = with_id(statement(actor=unique("b"), activity=activity))
    bad["actor"] = {"mbox": "not-a-mailto"}
    r = await xapi.post("/statements", json=[good, bad])
    assert r.status_code == 400, r.text
    assert "[1].actor.mbox" in r.json()["error"]["message"]
    assert (await xapi.get("/statements", params={"statementId": good["id"]})).status_code == 404
    assert await stored_for_activity(xapi, iri(activity)) == []


async def test_batch_with_the_same_id_twice_is_400_and_stores_none_of_it(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s2.b6: a batch with two or more statements of one id is rejected with 400."""
    activity = unique("course")
    sid = str(uuid.uuid4())
    a = {**statement(actor=unique("a"), activity=activity), "id": sid}
    b = {**statement(actor=unique("b"), activity=activity), "id": sid}
    other = with_id(statement(actor=unique("c"), activity=activity))
    r = await xapi.post("/statements", json=[other, a, b])
    assert r.status_code == 400, r.text
    assert sid in r.json()["error"]["message"]
    assert await stored_for_activity(xapi, iri(activity)) == []


async def test_batch_with_the_same_statement_twice_is_400(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s2.b6 also covers identical copies: the rule is about the id."""
    s = with_id(fresh())
    r = await xapi.post("/statements", json=[s, s])
    assert r.status_code == 400, r.text
    assert await stored_for_activity(xapi, activity_of(s)) == []


async def test_repost_of_identical_statement_is_200_and_keeps_a_single_copy(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s2.b4/b5: a matching re-send changes nothing: no second copy."""
    s = with_id(fresh())
    assert (await xapi.post("/statements", json=s)).status_code == 200
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 200, r.text
    assert r.json() == [s["id"]]
    assert [x["id"] for x in await stored_for_activity(xapi, activity_of(s))] == [s["id"]]


async def test_repost_differing_only_in_what_comparison_ignores_is_200_not_409(xapi: httpx.AsyncClient) -> None:
    """Data 2.3.1.s9.b1: differences the immutability exceptions allow are ignored: Verb display
    (2.3.1.b3), Activity definition (b2), timestamp serialisation (b4), authority/stored/version
    (b1), e-mail domain case (b7)."""
    s = with_id(fresh(timestamp="2024-05-02T10:00:00.000Z"))
    s["actor"] = {"objectType": "Agent", "mbox": f"mailto:{unique('kari')}@example.org"}
    assert (await xapi.post("/statements", json=s)).status_code == 200
    variant = {
        **s,
        "actor": {"objectType": "Agent", "mbox": s["actor"]["mbox"].replace("@example.org", "@EXAMPLE.org")},
        "verb": {"id": s["verb"]["id"], "display": {"en-GB": "finished"}},
        "object": {"objectType": "Activity", "id": activity_of(s)},
        "timestamp": "2024-05-02T12:00:00.000+02:00",
        "authority": agent("someone-else"),
        "stored": "2020-01-01T00:00:00.000Z",
    }
    r = await xapi.post("/statements", json=variant)
    assert r.status_code == 200, r.text
    assert len(await stored_for_activity(xapi, activity_of(s))) == 1


async def test_repost_with_same_id_and_different_content_is_409(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s2.b5 and Data 2.3.1.s9.b2: a real difference (here the result) is a
    conflict, and the stored statement stays as it was."""
    s = with_id(fresh())
    assert (await xapi.post("/statements", json=s)).status_code == 200
    r = await xapi.post("/statements", json={**s, "result": {"success": False}})
    assert r.status_code == 409, r.text
    assert "result" not in await get_one(xapi, s["id"])


async def test_batch_with_a_conflicting_id_is_409_and_stores_nothing_of_the_batch(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s2.b2/b5 with 3.2.s3.b9: one conflicting statement rejects the batch;
    the new statements around it are not stored."""
    activity = unique("course")
    existing = with_id(statement(actor=unique("a"), activity=activity))
    assert (await xapi.post("/statements", json=existing)).status_code == 200
    new_before = with_id(statement(actor=unique("b"), activity=activity))
    clash = {**existing, "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}}
    new_after = with_id(statement(actor=unique("c"), activity=activity))
    r = await xapi.post("/statements", json=[new_before, clash, new_after])
    assert r.status_code == 409, r.text
    assert [x["id"] for x in await stored_for_activity(xapi, iri(activity))] == [existing["id"]]


async def test_batch_mixing_an_already_stored_statement_and_new_ones_stores_only_the_new(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.2.s2.b4: the known statement is acknowledged, not stored again."""
    activity = unique("course")
    known = with_id(statement(actor=unique("a"), activity=activity))
    assert (await xapi.post("/statements", json=known)).status_code == 200
    new = with_id(statement(actor=unique("b"), activity=activity))
    r = await xapi.post("/statements", json=[known, new])
    assert r.status_code == 200, r.text
    assert r.json() == [known["id"], new["id"]]
    assert sorted(x["id"] for x in await stored_for_activity(xapi, iri(activity))) == sorted([known["id"], new["id"]])


# ---------------------------------------------------------------------------------------------
# Properties the LRS sets


async def test_id_is_generated_as_a_uuid_when_absent_and_the_statement_is_stored_under_it(
    xapi: httpx.AsyncClient,
) -> None:
    """Data 2.4.1.s2.b1: the LRS generates the id of a statement received without one; ids are
    UUIDs in standard string form (Data 2.4.1.s1)."""
    r = await xapi.post("/statements", json=fresh())
    assert r.status_code == 200, r.text
    [sid] = r.json()
    assert str(uuid.UUID(sid)) == sid
    assert (await get_one(xapi, sid))["id"] == sid


async def test_stored_is_set_by_the_lrs_and_overrides_a_sent_value(xapi: httpx.AsyncClient) -> None:
    """Data 2.4.8.s3.b2: the LRS MUST set "stored", overwriting any value received."""
    before = datetime.now(UTC) - timedelta(seconds=5)
    s = with_id(fresh(stored="2001-02-03T04:05:06.000Z"))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    got = await get_one(xapi, s["id"])
    stored = parse_timestamp(got["stored"])
    assert stored > before
    assert stored < datetime.now(UTC) + timedelta(seconds=5)


async def test_authority_is_the_credentials_agent_and_overrides_a_sent_authority(
    xapi: httpx.AsyncClient, shared_tenant: Tenant
) -> None:
    """Data 2.4.9.s3.b2/b4: with HTTP Basic the authority is the credential's Agent, overwriting
    what the client sent."""
    s = with_id(fresh(authority={"objectType": "Agent", "account": {"homePage": HOMEPAGE, "name": "forged"}}))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    got = await get_one(xapi, s["id"])
    assert got["authority"]["objectType"] == "Agent"
    assert got["authority"]["account"]["name"] == shared_tenant.key
    assert got["authority"]["account"]["name"] != "forged"
    unsent = with_id(fresh())
    assert (await xapi.post("/statements", json=unsent)).status_code == 200
    assert (await get_one(xapi, unsent["id"]))["authority"] == got["authority"]


async def test_version_is_set_to_1_0_0_when_absent_under_1_0_3(clients: dict[str, httpx.AsyncClient]) -> None:
    """Data 2.4.10.s3.b3: a statement without version is returned with "1.0.0"."""
    xapi = clients["1.0.3"]
    s = with_id(fresh())
    assert (await xapi.post("/statements", json=s)).status_code == 200
    assert (await get_one(xapi, s["id"]))["version"] == "1.0.0"


async def test_version_is_set_to_2_0_0_when_absent_under_2_0_0(clients: dict[str, httpx.AsyncClient]) -> None:
    """xAPI 2.0 Data 2.4.10: a statement without version is returned with "2.0.0"."""
    xapi = clients["2.0.0"]
    s = with_id(fresh())
    assert (await xapi.post("/statements", json=s)).status_code == 200
    assert (await get_one(xapi, s["id"]))["version"] == "2.0.0"


async def test_a_sent_1_0_x_version_is_retained(clients: dict[str, httpx.AsyncClient]) -> None:
    """Data 2.4.10.s3.b1/b3: a statement is returned with the version it was accepted with."""
    xapi = clients["1.0.3"]
    s = with_id(fresh(version="1.0.2"))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    assert (await get_one(xapi, s["id"]))["version"] == "1.0.2"


async def test_a_version_not_starting_with_1_0_is_rejected_under_1_0_3(clients: dict[str, httpx.AsyncClient]) -> None:
    """Data 2.4.10.s3.b2: a version that does not start with "1.0." is rejected (400)."""
    xapi = clients["1.0.3"]
    s = with_id(fresh(version="1.1.0"))
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 400, r.text
    assert "version" in r.json()["error"]["message"]


async def test_timestamp_is_set_to_stored_when_absent(xapi: httpx.AsyncClient) -> None:
    """Data 2.4.7.s2 / 2.4.7.s3.b2: without a timestamp the LRS uses the "stored" value."""
    s = with_id(fresh())
    assert (await xapi.post("/statements", json=s)).status_code == 200
    got = await get_one(xapi, s["id"])
    assert parse_timestamp(got["timestamp"]) == parse_timestamp(got["stored"])


async def test_a_sent_timestamp_is_kept_as_the_same_instant(xapi: httpx.AsyncClient) -> None:
    """Data 2.3.1.b4: the timestamp may be re-serialised, but the point in time is kept."""
    s = with_id(fresh(timestamp="2023-11-05T08:30:15.123+01:00"))
    assert (await xapi.post("/statements", json=s)).status_code == 200
    got = await get_one(xapi, s["id"])
    assert parse_timestamp(got["timestamp"]) == parse_timestamp(s["timestamp"])


async def test_timestamps_are_returned_in_utc_under_2_0_0(clients: dict[str, httpx.AsyncClient]) -> None:
    """xAPI 2.0 Data 4.5 (1.0.3 Data 4.5 SHOULD*): the LRS returns Timestamps in UTC: statement
    timestamp, stored, and the timestamp of a SubStatement."""
    xapi = clients["2.0.0"]
    sub = statement(actor=unique("ola"), activity=unique("course"), timestamp="2024-06-30T23:30:00.000-02:00")
    sub["objectType"] = "SubStatement"
    s = with_id(fresh(timestamp="2024-03-01T14:00:00.000+02:00"))
    s["verb"] = {"id": "http://adlnet.gov/expapi/verbs/planned", "display": {"en-US": "planned"}}
    s["object"] = sub
    assert (await xapi.post("/statements", json=s)).status_code == 200
    got = await get_one(xapi, s["id"])
    assert got["timestamp"] == "2024-03-01T12:00:00.000Z"
    assert got["stored"].endswith("Z")
    assert got["object"]["timestamp"] == "2024-07-01T01:30:00.000Z"


async def test_a_leap_second_is_stored_as_one_in_utc_under_2_0_0(clients: dict[str, httpx.AsyncClient]) -> None:
    """RFC 3339 (which xAPI 2.0 timestamps follow) allows second 60, a leap second; it is a valid
    timestamp and must not cost the record. In UTC it stays the second 60 of its minute, in the
    statement and in a SubStatement; 1.0.3 keeps it as sent."""
    sub = statement(actor=unique("ola"), activity=unique("course"), timestamp="2016-12-31T18:59:60.25-05:00")
    sub["objectType"] = "SubStatement"
    s = with_id(fresh(timestamp="2017-01-01T00:59:60+01:00"))
    s["verb"] = {"id": "http://adlnet.gov/expapi/verbs/planned", "display": {"en-US": "planned"}}
    s["object"] = sub
    r = await clients["2.0.0"].post("/statements", json=s)
    assert r.status_code == 200, r.text
    got = await get_one(clients["2.0.0"], s["id"])
    assert got["timestamp"] == "2016-12-31T23:59:60.000Z"
    assert got["object"]["timestamp"] == "2016-12-31T23:59:60.250Z"
    old = with_id(fresh(timestamp="2016-12-31T23:59:60Z"))
    assert (await clients["1.0.3"].post("/statements", json=old)).status_code == 200
    assert (await get_one(clients["1.0.3"], old["id"]))["timestamp"] == "2016-12-31T23:59:60Z"


async def test_a_timestamp_in_the_first_millennium_keeps_four_year_digits_under_2_0_0(
        clients: dict[str, httpx.AsyncClient]) -> None:
    """The conversion to UTC wrote the year 1 as "1-01-01T00:00:00.000Z", which is no timestamp."""
    s = with_id(fresh(timestamp="0001-01-01T00:00:00Z"))
    assert (await clients["2.0.0"].post("/statements", json=s)).status_code == 200
    assert (await get_one(clients["2.0.0"], s["id"]))["timestamp"] == "0001-01-01T00:00:00.000Z"


async def test_a_timestamp_whose_utc_instant_is_outside_the_calendar_is_refused_under_2_0_0(
        clients: dict[str, httpx.AsyncClient]) -> None:
    """9999-12-31T23:59:59-01:00 is a year-10000 instant in UTC, which no RFC 3339 timestamp can
    write: under 2.0 (timestamps returned in UTC) that is a 400 naming the property, not a 500."""
    for where, ts in (("timestamp", "9999-12-31T23:59:59-01:00"), ("timestamp", "0001-01-01T00:00:00+01:00"),
                      ("object.timestamp", "9999-12-31T23:59:60-01:00")):
        s = with_id(fresh(timestamp="2024-03-01T14:00:00.000+02:00") if where != "timestamp" else fresh(timestamp=ts))
        if where == "object.timestamp":
            sub = statement(actor=unique("ola"), activity=unique("course"), timestamp=ts)
            sub["objectType"] = "SubStatement"
            s["verb"] = {"id": "http://adlnet.gov/expapi/verbs/planned", "display": {"en-US": "planned"}}
            s["object"] = sub
        r = await clients["2.0.0"].post("/statements", json=s)
        assert r.status_code == 400, (ts, r.status_code, r.text)
        assert f"{where}: " in r.text and "outside the years 0001 to 9999 in UTC" in r.text, r.text


# ---------------------------------------------------------------------------------------------
# Ids compared as UUIDs, and concurrent writers


async def test_statement_id_parameter_and_body_id_differing_only_in_case_are_the_same_id(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.1.s3.b3 compares ids; a UUID's hex digits are case-insensitive (RFC 4122
    3), so upper- and lower-case spellings name one statement."""
    s = with_id(fresh())
    r = await xapi.put("/statements", params={"statementId": s["id"].upper()}, json=s)
    assert r.status_code == 204, r.text
    again = await xapi.post("/statements", json={**s, "id": s["id"].upper()})
    assert again.status_code == 200, again.text
    assert [x["id"] for x in await stored_for_activity(xapi, activity_of(s))] == [s["id"]]


async def test_concurrent_posts_of_one_new_statement_store_it_once_and_all_succeed(xapi: httpx.AsyncClient) -> None:
    """Communication 2.1.2.s2.b4: identical statements racing each other are still one statement;
    every sender gets 200 (the later ones are matching re-sends), none a 409 or 500."""
    s = with_id(fresh())
    results = await asyncio.gather(*(xapi.post("/statements", json=s) for _ in range(12)))
    assert [r.status_code for r in results] == [200] * 12, [r.text for r in results if r.status_code != 200]
    assert [x["id"] for x in await stored_for_activity(xapi, activity_of(s))] == [s["id"]]


async def test_concurrent_posts_of_one_id_with_different_content_store_one_and_conflict_the_rest(
    xapi: httpx.AsyncClient,
) -> None:
    """Communication 2.1.2.s2.b5: when two different statements with one id race, exactly one is
    stored; the others get 409 (never 500), and what is stored is one of the sent versions, whole."""
    sid = str(uuid.uuid4())
    course = unique("course")
    versions = [{**statement(actor=unique(f"p{i}"), activity=course), "id": sid} for i in range(6)]
    results = await asyncio.gather(*(xapi.post("/statements", json=v) for v in versions))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 5, [r.text for r in results]
    winner = versions[[r.status_code for r in results].index(200)]
    got = await get_one(xapi, sid)
    assert got["actor"] == winner["actor"]
    assert [x["id"] for x in await stored_for_activity(xapi, iri(course))] == [sid]
