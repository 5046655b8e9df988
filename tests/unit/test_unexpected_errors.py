"""An unexpected exception is answered with a JSON 500 that still carries the headers every
response has: the request id and xAPI version (lrs/http/middleware.py), and on the Statements
resource the Consistent-Through header (lrs/http/statements.py consistent)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lrs.http.errors import HANDLERS
from lrs.http.middleware import RequestMiddleware
from lrs.http.statements import NO_STORE_THROUGH, consistent
from lrs.metrics import Metrics


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


def app() -> Starlette:
    return Starlette(
        routes=[Route("/xapi/activities", broken), Route("/xapi/statements", consistent(broken))],
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        middleware=[Middleware(RequestMiddleware, metrics=Metrics(), default_version="2.0.0")])


async def test_a_500_carries_the_request_id_and_version_header() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://spor") as c:
        r = await c.get("/xapi/activities", headers={"X-Experience-API-Version": "1.0.3", "X-Request-Id": "r-1"})
    assert r.status_code == 500
    assert r.json() == {"error": {"status": 500, "message": "internal error; the request was not applied"}}
    assert r.headers["X-Request-Id"] == "r-1" and r.headers["X-Experience-API-Version"] == "1.0.3"
    assert "a bug" not in r.text


async def test_a_500_of_the_statements_resource_carries_consistent_through_too() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://spor") as c:
        r = await c.get("/xapi/statements", headers={"X-Experience-API-Version": "2.0.0"})
    assert r.status_code == 500
    # no store is known here (nothing authenticated it): the time that is true of every store
    assert r.headers["X-Experience-API-Consistent-Through"] == NO_STORE_THROUGH
    assert r.headers["X-Experience-API-Version"] == "2.0.0" and r.headers["X-Request-Id"]
