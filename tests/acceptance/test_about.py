"""GET /about (Communication 2.8): public and version-header free."""

from __future__ import annotations

import httpx

from tests.conftest import Server


async def test_about_needs_neither_credentials_nor_version_header(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base_url + "/xapi") as c:
        r = await c.get("/about")
        assert r.status_code == 200
        assert r.json() == {"version": ["1.0.3", "2.0.0"], "extensions": {}}
        assert r.headers["X-Experience-API-Version"]
        h = await c.head("/about")
        assert h.status_code == 200 and h.content == b""
