"""GET /about (Communication 2.8): public and version-header free."""

from __future__ import annotations

import httpx

from tests.conftest import Server


async def test_about_needs_neither_credentials_nor_version_header(server: Server) -> None:
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi") as c:
        r = await c.get("/about")
        assert r.status_code == 200
        assert r.json() == {"version": ["1.0.3", "2.0.0"], "extensions": {}}
        assert r.headers["X-Experience-API-Version"]
        h = await c.head("/about")
        assert h.status_code == 200 and h.content == b""


async def test_about_refuses_a_parameter_it_does_not_take(server: Server) -> None:
    """Communication 3.2: a parameter the LRS does not recognise is 400, on every resource."""
    async with httpx.AsyncClient(timeout=30, base_url=server.base_url + "/xapi") as c:
        r = await c.get("/about", params={"foo": "bar"})
        assert r.status_code == 400
        assert "foo" in r.json()["error"]["message"]
        assert r.headers["X-Experience-API-Version"]
