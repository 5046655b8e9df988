"""CORS for browser-hosted content on /xapi/*."""

from __future__ import annotations

import httpx

from tests.conftest import Server

ORIGIN = "https://kurs.example.org"


async def test_preflight_is_answered_without_credentials(server: Server) -> None:
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi") as c:
        r = await c.options("/activities/state", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type,x-experience-api-version,if-match"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    for h in ("authorization", "content-type", "x-experience-api-version", "if-match", "if-none-match"):
        assert h in allowed
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]


async def test_responses_to_cross_origin_requests_expose_the_xapi_headers(xapi: httpx.AsyncClient) -> None:
    r = await xapi.get("/statements", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = r.headers["Access-Control-Expose-Headers"]
    for h in ("ETag", "Last-Modified", "X-Experience-API-Consistent-Through", "X-Experience-API-Version"):
        assert h in exposed
    # Errors carry the headers too, so the script can read the JSON error.
    e = await xapi.get("/activities", headers={"Origin": ORIGIN})
    assert e.status_code == 400 and e.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_same_origin_requests_get_no_cors_headers(xapi: httpx.AsyncClient) -> None:
    r = await xapi.get("/statements")
    assert "Access-Control-Allow-Origin" not in r.headers
