"""GET /activities: the canonical Activity object folded from statements (Communication 2.5)."""

from __future__ import annotations

import httpx

from tests.statements import statement

ACTIVITY = "https://courses.example.org/hand-hygiene"


async def test_definitions_from_statements_are_merged(xapi: httpx.AsyncClient) -> None:
    first = statement()
    first["object"]["definition"] = {"name": {"en-US": "Hand hygiene"}, "type": "http://example.org/old"}
    second = statement()
    second["object"]["definition"] = {"name": {"nb-NO": "Håndhygiene"}, "description": {"nb-NO": "Kurs"},
                                      "type": "http://adlnet.gov/expapi/activities/course"}
    assert (await xapi.post("/statements", json=first)).status_code == 200
    assert (await xapi.post("/statements", json=second)).status_code == 200
    r = await xapi.get("/activities", params={"activityId": ACTIVITY})
    assert r.status_code == 200
    assert r.json() == {
        "objectType": "Activity", "id": ACTIVITY,
        "definition": {"name": {"en-US": "Hand hygiene", "nb-NO": "Håndhygiene"}, "description": {"nb-NO": "Kurs"},
                       "type": "http://adlnet.gov/expapi/activities/course"},
    }
    assert r.headers["ETag"].startswith('"')
    h = await xapi.head("/activities", params={"activityId": ACTIVITY})
    assert h.status_code == 200 and h.content == b""


async def test_an_unknown_activity_is_still_an_activity_object(xapi: httpx.AsyncClient) -> None:
    r = await xapi.get("/activities", params={"activityId": "https://courses.example.org/never-seen"})
    assert r.status_code == 200
    assert r.json() == {"objectType": "Activity", "id": "https://courses.example.org/never-seen"}


async def test_bad_parameters_are_400(xapi: httpx.AsyncClient) -> None:
    for p in ({}, {"activityId": "true"}, {"activityid": ACTIVITY}, {"activityId": ACTIVITY, "extra": "1"}):
        r = await xapi.get("/activities", params=p)
        assert r.status_code == 400, p
        assert r.json()["error"]["status"] == 400
