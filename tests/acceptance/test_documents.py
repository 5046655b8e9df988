"""The Document Resources over HTTP: State, Activity Profile, Agent Profile (xAPI Communication
2.2, 2.3, 2.6, 2.7, 3.1), for both xAPI versions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Tenant

AGENT = {"objectType": "Agent", "mbox": "mailto:kari@example.org"}
ACTIVITY = "https://courses.example.org/hand-hygiene"
REG = "6a1d3f4e-2b1c-4e5f-9a8b-7c6d5e4f3a2b"

PATHS = {"state": "/activities/state", "activity_profile": "/activities/profile", "agent_profile": "/agents/profile"}
ID_PARAM = {"state": "stateId", "activity_profile": "profileId", "agent_profile": "profileId"}


def context(resource: str) -> dict[str, str]:
    """The context parameters of a resource (without the document id)."""
    if resource == "state":
        return {"activityId": ACTIVITY, "agent": orjson.dumps(AGENT).decode()}
    if resource == "activity_profile":
        return {"activityId": ACTIVITY}
    return {"agent": orjson.dumps(AGENT).decode()}


def params(resource: str, doc_id: str = "doc") -> dict[str, str]:
    return {**context(resource), ID_PARAM[resource]: doc_id}


CREATE = {"If-None-Match": "*"}  # accepted by every resource and version for a new document

resources = pytest.mark.parametrize("resource", list(PATHS))


async def put(xapi: httpx.AsyncClient, resource: str, body: Any, doc_id: str = "doc",
              headers: dict[str, str] | None = None, content_type: str = "application/json") -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await xapi.put(PATHS[resource], params=params(resource, doc_id), content=content,
                          headers={"Content-Type": content_type, **(headers or {})})


async def post(xapi: httpx.AsyncClient, resource: str, body: Any, doc_id: str = "doc",
               headers: dict[str, str] | None = None, content_type: str = "application/json") -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await xapi.post(PATHS[resource], params=params(resource, doc_id), content=content,
                           headers={"Content-Type": content_type, **(headers or {})})


async def get(xapi: httpx.AsyncClient, resource: str, doc_id: str = "doc") -> httpx.Response:
    return await xapi.get(PATHS[resource], params=params(resource, doc_id))


def version(xapi: httpx.AsyncClient) -> str:
    return xapi.headers["X-Experience-API-Version"]


@resources
async def test_put_then_get_returns_content_type_quoted_sha1_etag_and_last_modified(
        xapi: httpx.AsyncClient, resource: str) -> None:
    content = b"\x00\x01binary \xff"
    r = await put(xapi, resource, content, headers=CREATE, content_type="application/octet-stream")
    assert r.status_code == 204, r.text
    g = await get(xapi, resource)
    assert g.status_code == 200
    assert g.content == content
    assert g.headers["Content-Type"] == "application/octet-stream"
    assert g.headers["ETag"] == f'"{hashlib.sha1(content).hexdigest()}"'
    assert g.headers["Last-Modified"].endswith(" GMT")
    h = await xapi.head(PATHS[resource], params=params(resource))
    assert h.status_code == 200 and h.content == b"" and h.headers["ETag"] == g.headers["ETag"]


@resources
async def test_post_merges_top_level_properties_of_json_documents(xapi: httpx.AsyncClient, resource: str) -> None:
    assert (await post(xapi, resource, {"x": "foo", "y": "bar", "o": {"a": 1, "b": 2}})).status_code == 204
    assert (await post(xapi, resource, {"x": "bash", "z": "faz", "o": {"c": 3}})).status_code == 204
    g = await get(xapi, resource)
    # xAPI Communication 2.2.s7: only top-level properties merge; "o" is replaced whole.
    assert g.json() == {"x": "bash", "y": "bar", "z": "faz", "o": {"c": 3}}
    assert g.headers["Content-Type"] == "application/json"


@resources
async def test_a_merge_keeps_the_members_it_does_not_set_exactly_as_stored(
        xapi: httpx.AsyncClient, resource: str) -> None:
    """Communication 2.2: a merge sets the posted top-level properties; the others keep their
    values, even those a double cannot hold (they came back as 1.2345678901234568e+29)."""
    stored = (b'{"learnerRef": 123456789012345678901234567890, "exact": 0.1000000000000000000001, '
              b'"huge": 1e400, "n\\u00f8kkel": "verdi", "x": 1}')
    assert (await put(xapi, resource, stored, headers=CREATE)).status_code == 204
    assert (await post(xapi, resource, b'{"x": 2, "new": [1e400]}')).status_code == 204
    assert (await get(xapi, resource)).content == (
        b'{"learnerRef": 123456789012345678901234567890,"exact": 0.1000000000000000000001,'
        b'"huge": 1e400,"n\\u00f8kkel": "verdi","x": 2,"new": [1e400]}')


@resources
async def test_a_merge_reads_each_side_in_the_charset_it_names_and_stores_utf8(
        xapi: httpx.AsyncClient, resource: str) -> None:
    """Communication 2.2.s7 "de-serialize the Objects represented by each document": a stored
    ISO-8859-1 document was read as UTF-8 (400 "not UTF-8" for Tromsø), or merged with UTF-8 bytes
    and kept its ISO-8859-1 label (a reader decoding by it saw Ã…); a UTF-16 POST or a UTF-8
    byte order mark was 400 (a documents audit). The merge is UTF-8, labelled so."""
    latin = "application/json; charset=iso-8859-1"
    stored = '{"by": "Tromsø"}'.encode("iso-8859-1")
    assert (await put(xapi, resource, stored, doc_id="latin", headers=CREATE, content_type=latin)).status_code == 204
    r = await post(xapi, resource, '{"navn": "Åse"}'.encode("utf-16"), doc_id="latin",
                   content_type="application/json; charset=UTF-16")
    assert r.status_code == 204, r.text
    g = await get(xapi, resource, "latin")
    assert g.headers["Content-Type"] == "application/json"
    assert orjson.loads(g.content) == {"by": "Tromsø", "navn": "Åse"}

    # UTF-8 sent under an ISO-8859-1 label by mistake (a PUT stores it as sent): valid UTF-8, so
    # read as such, not garbled to Ã\u0085se (a review)
    mislabelled = '{"name": "Åse Sørli"}'.encode()
    assert (await put(xapi, resource, mislabelled, doc_id="mislabelled", headers=CREATE,
                      content_type=latin)).status_code == 204
    assert (await post(xapi, resource, {"page": 2}, doc_id="mislabelled")).status_code == 204
    assert orjson.loads((await get(xapi, resource, "mislabelled")).content) == {"name": "Åse Sørli", "page": 2}

    bom = "\ufeff".encode()
    assert (await put(xapi, resource, bom + b'{"a": 1}', doc_id="bom", headers=CREATE)).status_code == 204
    assert (await post(xapi, resource, bom + b'{"b": 2}', doc_id="bom")).status_code == 204
    assert orjson.loads((await get(xapi, resource, "bom")).content) == {"a": 1, "b": 2}

    # a label Spor does not read is a 400 that names it, and nothing changes
    r = await post(xapi, resource, b'{"c": 3}', doc_id="bom", content_type="application/json; charset=koi8-r")
    assert r.status_code == 400 and "koi8-r" in r.json()["error"]["message"], r.text
    assert orjson.loads((await get(xapi, resource, "bom")).content) == {"a": 1, "b": 2}


@resources
async def test_post_refuses_to_merge_when_either_side_is_not_a_json_object(
        xapi: httpx.AsyncClient, resource: str) -> None:
    await put(xapi, resource, b"plain text", doc_id="text", headers=CREATE, content_type="text/plain")
    r = await post(xapi, resource, {"a": 1}, doc_id="text")
    assert r.status_code == 400 and r.json()["error"]["status"] == 400
    assert (await get(xapi, resource, "text")).content == b"plain text"

    await post(xapi, resource, {"a": 1}, doc_id="json")
    assert (await post(xapi, resource, b"more text", doc_id="json", content_type="text/plain")).status_code == 400
    assert (await post(xapi, resource, b"[1, 2]", doc_id="json")).status_code == 400
    assert (await post(xapi, resource, b"{not json", doc_id="json")).status_code == 400
    assert (await post(xapi, resource, b'{"a": NaN}', doc_id="json")).status_code == 400
    assert (await post(xapi, resource, b'{"a": 1} {"b": 2}', doc_id="json")).status_code == 400
    assert (await get(xapi, resource, "json")).json() == {"a": 1}
    # A JSON-typed POST that creates a document must still be a JSON object (XAPI-00235).
    assert (await post(xapi, resource, b"{broken", doc_id="new")).status_code == 400
    assert (await get(xapi, resource, "new")).status_code == 404


@resources
async def test_put_over_an_existing_document_without_precondition(xapi: httpx.AsyncClient, resource: str) -> None:
    assert (await put(xapi, resource, {"v": 1}, headers=CREATE)).status_code == 204
    r = await put(xapi, resource, {"v": 2})
    if resource == "state" and version(xapi) == "1.0.3":
        # 1.0.3 Communication 3.1.s3: State writes need no concurrency headers.
        assert r.status_code == 204
        assert (await get(xapi, resource)).json() == {"v": 2}
    else:
        assert r.status_code == 409
        assert "If-Match" in r.json()["error"]["message"]
        assert (await get(xapi, resource)).json() == {"v": 1}


@pytest.mark.parametrize("resource", ["activity_profile", "agent_profile"])
async def test_put_of_a_new_profile_without_precondition_is_refused(xapi: httpx.AsyncClient, resource: str) -> None:
    r = await put(xapi, resource, {"v": 1})
    # 1.0.3: the conformance suite wants 400 (XAPI-00273); 2.0.0: 428 Precondition Required.
    assert r.status_code == (400 if version(xapi) == "1.0.3" else 428)
    assert r.json()["error"]["message"]
    assert (await get(xapi, resource)).status_code == 404


async def test_put_of_a_new_state_without_precondition_is_accepted(xapi: httpx.AsyncClient) -> None:
    assert (await put(xapi, "state", {"v": 1})).status_code == 204


@resources
async def test_if_match_and_if_none_match(xapi: httpx.AsyncClient, resource: str) -> None:
    assert (await put(xapi, resource, {"v": 1}, headers={"If-Match": '"abc"'})).status_code == 412
    assert (await put(xapi, resource, {"v": 1}, headers=CREATE)).status_code == 204
    etag = (await get(xapi, resource)).headers["ETag"]
    assert (await put(xapi, resource, {"v": 2}, headers=CREATE)).status_code == 412
    assert (await put(xapi, resource, {"v": 2}, headers={"If-None-Match": etag})).status_code == 412
    assert (await put(xapi, resource, {"v": 2}, headers={"If-Match": '"0000"'})).status_code == 412
    assert (await post(xapi, resource, {"w": 2}, headers={"If-Match": '"0000"'})).status_code == 412
    assert (await xapi.delete(PATHS[resource], params=params(resource),
                              headers={"If-Match": '"0000"'})).status_code == 412
    assert (await get(xapi, resource)).json() == {"v": 1}
    # If-Match compares strongly (RFC 9110 13.1.1): the document's own tag sent weak is no match;
    # If-None-Match compares weakly, so there it is
    assert (await put(xapi, resource, {"v": 2}, headers={"If-Match": f"W/{etag}"})).status_code == 412
    assert (await post(xapi, resource, {"w": 2}, headers={"If-Match": f"W/{etag}"})).status_code == 412
    assert (await xapi.delete(PATHS[resource], params=params(resource),
                              headers={"If-Match": f"W/{etag}"})).status_code == 412
    assert (await put(xapi, resource, {"v": 2}, headers={"If-None-Match": f"W/{etag}"})).status_code == 412
    assert (await get(xapi, resource)).json() == {"v": 1}
    assert (await put(xapi, resource, {"v": 2}, headers={"If-Match": f'W/"x", {etag}'})).status_code == 204
    etag2 = (await get(xapi, resource)).headers["ETag"]
    assert etag2 != etag
    assert (await post(xapi, resource, {"w": 3}, headers={"If-Match": etag2})).status_code == 204
    assert (await put(xapi, resource, {"v": 4}, headers={"If-Match": "*"})).status_code == 204
    etag4 = (await get(xapi, resource)).headers["ETag"]
    assert (await xapi.delete(PATHS[resource], params=params(resource), headers={"If-Match": etag4})).status_code == 204
    assert (await get(xapi, resource)).status_code == 404
    assert (await xapi.delete(PATHS[resource], params=params(resource), headers={"If-Match": "*"})).status_code == 412


@resources
async def test_if_match_and_if_none_match_on_several_lines_are_one_list(xapi: httpx.AsyncClient, resource: str) -> None:
    """RFC 9110 5.3, 13.1.1-2: list headers sent on several lines mean the lines joined. The first
    line alone was read: an If-None-Match: * on a second line was not heard and the document
    overwritten (a documents audit)."""
    assert (await put(xapi, resource, {"v": 1}, headers=CREATE)).status_code == 204
    etag = (await get(xapi, resource)).headers["ETag"]
    r = await xapi.put(PATHS[resource], params=params(resource), content=orjson.dumps({"v": 2}),
                       headers=[("Content-Type", "application/json"), ("If-None-Match", '"abc"'),
                                ("If-None-Match", "*")])
    assert r.status_code == 412, r.text
    assert (await get(xapi, resource)).json() == {"v": 1}
    r = await xapi.put(PATHS[resource], params=params(resource), content=orjson.dumps({"v": 3}),
                       headers=[("Content-Type", "application/json"), ("If-Match", '"stale"'), ("If-Match", etag)])
    assert r.status_code == 204, r.text
    assert (await get(xapi, resource)).json() == {"v": 3}


@resources
async def test_racing_writers_with_the_same_if_match_one_wins_the_others_get_412(
        xapi: httpx.AsyncClient, resource: str) -> None:
    assert (await put(xapi, resource, {"v": 0}, headers=CREATE)).status_code == 204
    etag = (await get(xapi, resource)).headers["ETag"]
    # Distinct bodies (none equal to the current one): an identical rewrite keeps the ETag.
    responses = await asyncio.gather(*(put(xapi, resource, {"v": i}, headers={"If-Match": etag}) for i in range(1, 9)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [204] + [412] * 7
    winner = next(i for i, r in enumerate(responses, start=1) if r.status_code == 204)
    assert (await get(xapi, resource)).json() == {"v": winner}


@resources
async def test_id_list_with_since_and_last_modified(xapi: httpx.AsyncClient, resource: str) -> None:
    await put(xapi, resource, {"v": 1}, doc_id="first", headers=CREATE)
    await asyncio.sleep(0.05)
    middle = time.time()
    await asyncio.sleep(0.05)
    await put(xapi, resource, {"v": 2}, doc_id="second", headers=CREATE)
    r = await xapi.get(PATHS[resource], params=context(resource))
    assert r.status_code == 200
    assert sorted(r.json()) == ["first", "second"]
    assert r.headers["Last-Modified"] and r.headers["ETag"].startswith('"')
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f".{int(middle % 1 * 1000):03d}Z"
    r = await xapi.get(PATHS[resource], params={**context(resource), "since": since})
    assert r.json() == ["second"]
    r = await xapi.get(PATHS[resource], params={**context(resource), "since": "2999-01-01T00:00:00Z"})
    assert r.json() == [] and "Last-Modified" not in r.headers
    assert (await xapi.get(PATHS[resource], params={**context(resource), "since": "yesterday"})).status_code == 400


@resources
async def test_since_at_the_ends_of_time_or_on_a_leap_second_is_answered(xapi: httpx.AsyncClient,
                                                                         resource: str) -> None:
    """Valid timestamps whose instant lies an offset beyond what a datetime holds in UTC (they
    were a 500), and leap seconds (RFC 3339 allows second 60; they were a 400): answered as the
    instant they name, clamped to the ends of time."""
    await put(xapi, resource, {"v": 1}, doc_id="only", headers=CREATE)
    for since, ids in (("0001-01-01T00:00:00+01:00", ["only"]), ("9999-12-31T23:59:59-01:00", []),
                       ("9999-12-31T23:59:60-01:00", []), ("2016-12-31T23:59:60Z", ["only"])):
        r = await xapi.get(PATHS[resource], params={**context(resource), "since": since})
        assert (r.status_code, r.json()) == (200, ids), (since, r.text)


async def test_state_registration_is_part_of_the_key_and_multiple_delete(xapi: httpx.AsyncClient) -> None:
    base = params("state", "s")
    for reg in (None, REG):
        p = {**base, **({"registration": reg} if reg else {})}
        r = await xapi.put(PATHS["state"], params=p, json={"reg": reg})
        assert r.status_code == 204
    other = {**base, "stateId": "t"}
    await xapi.put(PATHS["state"], params=other, json={})
    assert (await xapi.get(PATHS["state"], params=base)).json() == {"reg": None}
    assert (await xapi.get(PATHS["state"], params={**base, "registration": REG.upper()})).json() == {"reg": REG}
    ids = (await xapi.get(PATHS["state"], params={**context("state"), "registration": REG})).json()
    assert ids == ["s"]
    # Without a registration the list covers every registration, each id once ("s" is stored
    # under two).
    assert sorted((await xapi.get(PATHS["state"], params=context("state"))).json()) == ["s", "t"]
    # Multiple-document DELETE with a registration deletes that registration's State only.
    r = await xapi.delete(PATHS["state"], params={**context("state"), "registration": REG})
    assert r.status_code == 204
    assert (await xapi.get(PATHS["state"], params={**base, "registration": REG})).status_code == 404
    assert (await xapi.get(PATHS["state"], params=base)).status_code == 200
    # Without one, every State of the Activity and Agent (Communication 2.3.s5).
    assert (await xapi.delete(PATHS["state"], params=context("state"))).status_code == 204
    assert (await xapi.get(PATHS["state"], params=context("state"))).json() == []


async def test_multiple_document_delete_honours_if_match_and_if_none_match(xapi: httpx.AsyncClient) -> None:
    """Communication 3.1.s4.b7/b11/b12: a DELETE's If-Match and If-None-Match hold or nothing
    changes (412). For the State documents of an Activity and Agent as a whole, the ETag is the
    one GET of their id list gives (a spec audit: they were ignored and everything deleted)."""
    for doc_id in ("a", "b"):
        assert (await xapi.put(PATHS["state"], params=params("state", doc_id), json={"d": doc_id})).status_code == 204
    listing = await xapi.get(PATHS["state"], params=context("state"))
    etag = listing.headers["ETag"]
    for headers in ({"If-Match": '"0000000000000000000000000000000000000000"'}, {"If-None-Match": "*"},
                    {"If-None-Match": etag}, {"If-Match": f"W/{etag}"}):
        r = await xapi.delete(PATHS["state"], params=context("state"), headers=headers)
        assert r.status_code == 412, (headers, r.text)
        assert sorted((await xapi.get(PATHS["state"], params=context("state"))).json()) == ["a", "b"], headers
    assert (await xapi.delete(PATHS["state"], params=context("state"), headers={"If-Match": etag})).status_code == 204
    assert (await xapi.get(PATHS["state"], params=context("state"))).json() == []
    # none left: If-Match * fails, If-None-Match * holds
    assert (await xapi.delete(PATHS["state"], params=context("state"), headers={"If-Match": "*"})).status_code == 412
    assert (await xapi.delete(PATHS["state"], params=context("state"),
                              headers={"If-None-Match": "*"})).status_code == 204


@resources
async def test_an_etag_in_upper_case_names_the_same_document_and_an_empty_one_none(
        xapi: httpx.AsyncClient, resource: str) -> None:
    """Spor's ETags are lower-case hex (Communication 3.1.s4.b2); the same digits in upper case
    are the same tag (clients and test suites send them so). "" is a tag that matches nothing."""
    assert (await put(xapi, resource, {"v": 1}, headers=CREATE)).status_code == 204
    etag = (await get(xapi, resource)).headers["ETag"]
    assert (await put(xapi, resource, {"v": 2}, headers={"If-Match": '""'})).status_code == 412
    assert (await put(xapi, resource, {"v": 2}, headers={"If-Match": etag.upper()})).status_code == 204
    stale = etag
    etag = (await get(xapi, resource)).headers["ETag"]
    # unquoted and in upper case: still the current tag; the tag before it, in any case, is not
    assert (await put(xapi, resource, {"v": 3}, headers={"If-Match": stale.strip('"').upper()})).status_code == 412
    assert (await put(xapi, resource, {"v": 3}, headers={"If-Match": etag.strip('"').upper()})).status_code == 204
    assert (await get(xapi, resource)).json() == {"v": 3}


@pytest.mark.parametrize(("path", "allowed"), [
    ("/statements", {"GET", "HEAD", "POST", "PUT"}),
    *[(p, {"GET", "HEAD", "PUT", "POST", "DELETE"}) for p in PATHS.values()],
    ("/activities", {"GET", "HEAD"}), ("/agents", {"GET", "HEAD"}), ("/about", {"GET", "HEAD"}),
])
async def test_a_405_lists_every_method_of_the_resource_in_allow(
        xapi: httpx.AsyncClient, path: str, allowed: set[str]) -> None:
    """RFC 9110 15.5.6: a 405 carries Allow with the resource's methods (a spec audit: it listed
    the methods of one route of the path, e.g. only HEAD, GET on /activities/state)."""
    r = await xapi.request("PATCH", path)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize(("path", "query"), [
    ("/statements", [("limit", "1"), ("limit", "2")]),
    ("/statements", [("agent", orjson.dumps(AGENT).decode()), ("agent", '{"mbox": "mailto:ola@example.org"}')]),
    ("/activities", [("activityId", ACTIVITY), ("activityId", ACTIVITY + "/2")]),
    ("/agents", [("agent", orjson.dumps(AGENT).decode())] * 2),
    ("/activities/state", [*params("state").items(), ("stateId", "other")]),
])
async def test_a_parameter_given_twice_is_400_naming_it(xapi: httpx.AsyncClient, path: str, query: list) -> None:
    """Every xAPI parameter takes one value; two were answered with the last one on /statements,
    /activities and /agents (a spec audit)."""
    r = await xapi.get(path, params=query)
    assert r.status_code == 400 and "given more than once" in r.text and query[-1][0] in r.text, r.text


async def test_delete_of_a_missing_document_is_204(xapi: httpx.AsyncClient) -> None:
    for resource in PATHS:
        assert (await xapi.delete(PATHS[resource], params=params(resource, "never"))).status_code == 204


@resources
async def test_bad_parameters_are_400_with_a_json_error(xapi: httpx.AsyncClient, resource: str) -> None:
    path = PATHS[resource]
    good = params(resource)
    bad: list[dict[str, str]] = [
        {**good, "unknown": "x"},
        {**{k.lower() if k != "agent" else "Agent": v for k, v in good.items()}},  # wrong case
        {k: v for k, v in good.items() if k != ID_PARAM[resource]},  # PUT without the id
    ]
    if "agent" in good:
        bad += [{**good, "agent": "not json"}, {**good, "agent": '{"name": "no ifi"}'},
                {k: v for k, v in good.items() if k != "agent"}]
    if "activityId" in good:
        bad += [{**good, "activityId": "true"}, {k: v for k, v in good.items() if k != "activityId"}]
    if resource == "state":
        bad += [{**good, "registration": r} for r in (
            "not-a-uuid", "6f1d4c2e8a7b4c3d9e2f1a2b3c4d5e6f", "{6f1d4c2e-8a7b-4c3d-9e2f-1a2b3c4d5e6f}")]
    else:
        bad.append({**good, "registration": REG})
    for p in bad:
        r = await xapi.put(path, params=p, json={"a": 1}, headers=CREATE)
        assert r.status_code == 400, (p, r.text)
        assert r.headers["Content-Type"] == "application/json" and r.json()["error"]["status"] == 400
    assert (await xapi.get(path, params={**good, "since": "2020-01-01T00:00:00Z"})).status_code == 400


async def test_a_group_is_an_agent_parameter_in_2_0_0_only(xapi: httpx.AsyncClient) -> None:
    group = {"objectType": "Group", "mbox": "mailto:team@example.org", "name": "Team"}
    p = {"agent": orjson.dumps(group).decode(), "profileId": "g"}
    r = await xapi.put(PATHS["agent_profile"], params=p, json={"a": 1}, headers=CREATE)
    assert r.status_code == (400 if version(xapi) == "1.0.3" else 204)


async def test_a_document_over_the_size_limit_is_413(xapi: httpx.AsyncClient) -> None:
    big = b"x" * (16 * 1024 * 1024 + 1)  # settings.max_document_bytes defaults to 16 MiB
    r = await put(xapi, "state", big, content_type="application/octet-stream")
    assert r.status_code == 413 and r.json()["error"]["status"] == 413
    assert (await get(xapi, "state")).status_code == 404


async def test_a_merge_that_would_grow_a_document_past_the_size_limit_is_413(xapi: httpx.AsyncClient) -> None:
    """The size limit is on documents, not only on request bodies: merges of bodies each under it
    grew a state document to 30 MiB, which no PUT could write back (a probe). The merge that would
    pass 16 MiB is 413, and the document stays as it was."""
    chunk = "x" * (6 * 1024 * 1024)
    assert (await post(xapi, "state", {"k0": chunk}, doc_id="grow")).status_code == 204
    assert (await post(xapi, "state", {"k1": chunk}, doc_id="grow")).status_code == 204
    r = await post(xapi, "state", {"k2": chunk}, doc_id="grow")
    assert r.status_code == 413 and "merged document" in r.json()["error"]["message"], r.text
    assert sorted((await get(xapi, "state", doc_id="grow")).json()) == ["k0", "k1"]


async def test_documents_are_separated_by_store(xapi: httpx.AsyncClient, server: Any) -> None:
    from tests.conftest import make_tenant, xapi_client
    await put(xapi, "state", {"mine": True})
    other = await make_tenant(server.database_url, server.base_url)
    async with xapi_client(server, other, version(xapi)) as c:
        assert (await get(c, "state")).status_code == 404


@resources
async def test_a_content_type_is_kept_without_surrounding_whitespace_and_given_twice_is_400(
        xapi: httpx.AsyncClient, tenant: Tenant, resource: str) -> None:
    """A document audit: 'text/plain \t ' was stored and sent back so (RFC 9110 5.5: no
    whitespace around a field value), and of two Content-Type headers the first was taken."""
    # (httpx will not send trailing whitespace: over a socket, as another client might)
    url = xapi.build_request("PUT", PATHS[resource], params=params(resource)).url
    basic = base64.b64encode(f"{tenant.key}:{tenant.secret}".encode()).decode()
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\n"
                     f"X-Experience-API-Version: {version(xapi)}\r\nIf-None-Match: *\r\n"
                     "Content-Type: text/plain \t \r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".encode())
        assert (await asyncio.wait_for(reader.read(), 30)).startswith(b"HTTP/1.1 204")
    finally:
        writer.close()
    g = await get(xapi, resource)
    assert (g.content, g.headers["Content-Type"]) == (b"hello", "text/plain")
    r = await xapi.put(PATHS[resource], params=params(resource, "twice"), content=b"x",
                       headers=[("Content-Type", "text/plain"), ("Content-Type", "application/json"), *CREATE.items()])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == "Content-Type given more than once"
    assert (await get(xapi, resource, "twice")).status_code == 404
