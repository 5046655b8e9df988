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
