from __future__ import annotations

import httpx

from tests.statements import statement, with_id


async def test_post_then_get_by_id_returns_the_statement(xapi: httpx.AsyncClient) -> None:
    s = with_id(statement())
    r = await xapi.post("/statements", json=s)
    assert r.status_code == 200, r.text
    assert r.json() == [s["id"]]
    g = await xapi.get("/statements", params={"statementId": s["id"]})
    assert g.status_code == 200, g.text
    body = g.json()
    assert body["id"] == s["id"]
    assert body["actor"] == s["actor"]
    assert "stored" in body and "authority" in body
    assert g.headers["X-Experience-API-Consistent-Through"]
