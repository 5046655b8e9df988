"""format=canonical (Communication 2.1.3): Activities carry the LRS's canonical definition,
language maps cut to the best language for Accept-Language; exact keeps what was sent."""

from __future__ import annotations

import uuid

import httpx

from tests.statements import statement


async def test_canonical_format_uses_the_canonical_definition_in_the_asked_language(xapi: httpx.AsyncClient) -> None:
    activity = f"https://courses.example.org/canonical-{uuid.uuid4().hex[:8]}"
    first = statement()
    first["object"] = {"id": activity, "definition": {"name": {"en-US": "Old name"}}}
    second = statement(actor="ola")
    second["object"] = {"id": activity, "definition": {"name": {"en-US": "Hand hygiene", "nb-NO": "Håndhygiene"}}}
    first_id = (await xapi.post("/statements", json=first)).json()[0]
    assert (await xapi.post("/statements", json=second)).status_code == 200

    canonical = await xapi.get("/statements", params={"statementId": first_id, "format": "canonical"},
                               headers={"Accept-Language": "nb-NO, en;q=0.5"})
    assert canonical.json()["object"]["definition"]["name"] == {"nb-NO": "Håndhygiene"}
    assert canonical.json()["verb"]["display"] == {"nb-NO": "completed"}

    exact = await xapi.get("/statements", params={"statementId": first_id})
    assert exact.json()["object"]["definition"]["name"] == {"en-US": "Old name"}

    page = await xapi.get("/statements", params={"activity": activity, "format": "canonical"},
                          headers={"Accept-Language": "en-US"})
    names = [s["object"]["definition"]["name"] for s in page.json()["statements"]]
    assert names == [{"en-US": "Hand hygiene"}, {"en-US": "Hand hygiene"}]
    # the body depends on Accept-Language: said so (RFC 9110 12.5.5), for canonical only
    assert canonical.headers["Vary"] == page.headers["Vary"] == "Accept-Language"
    assert "vary" not in exact.headers

    # a list header sent on two lines means the same as one line (RFC 9110 5.3): the first line
    # alone was read (a query audit)
    two_lines = await xapi.get("/statements", params={"statementId": first_id, "format": "canonical"},
                               headers=[("Accept-Language", "en;q=0.1"), ("Accept-Language", "nb")])
    assert two_lines.json()["object"]["definition"]["name"] == {"nb-NO": "Håndhygiene"}


async def test_a_deeply_nested_canonical_definition_does_not_make_other_statements_unreadable(
        xapi: httpx.AsyncClient) -> None:
    """An Activity definition may nest its extensions nearly as deep as JSON is written here (254
    levels), and is accepted. Put in place deeper in another statement (a context activity), the
    whole would be deeper than that: the canonical read of every statement naming the activity was
    a 500. That statement now keeps the definition it carries; the rest of it is canonical."""
    activity = f"https://courses.example.org/deep-{uuid.uuid4().hex[:8]}"
    value: object = "bottom"
    for _ in range(249):  # the deep statement is written (254 levels), the other one with it in place not
        value = [value]
    deep = statement()
    deep["object"] = {"id": activity, "definition": {"extensions": {"https://ext.example.org/deep": value}}}
    assert (await xapi.post("/statements", json=deep)).status_code == 200
    other = statement(actor="ola")
    other["context"] = {"contextActivities": {"parent": [{"id": activity}]}}
    other_id = (await xapi.post("/statements", json=other)).json()[0]
    r = await xapi.get("/statements", params={"statementId": other_id, "format": "canonical"})
    assert r.status_code == 200, r.text
    assert r.json()["context"]["contextActivities"]["parent"] == [{"id": activity}]
    page = await xapi.get("/statements", params={"activity": activity, "related_activities": "true",
                                                 "format": "canonical"})
    assert page.status_code == 200 and len(page.json()["statements"]) == 2, page.text
