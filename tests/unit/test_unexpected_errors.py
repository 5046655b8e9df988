"""An unexpected exception is answered with a JSON 500 that still carries the headers every
response has: the request id and xAPI version (lrs/http/middleware.py), and on the Statements
resource the Consistent-Through header (lrs/http/statements.py consistent)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lrs.errors import BadRequest
from lrs.http import errors, middleware
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


class _Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def info(self, event: str, **kw: object) -> None:
        self.lines.append((event, kw))

    error = info
    exception = info


async def test_a_response_that_fails_after_it_started_is_logged_with_its_request_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A streamed export whose read fails mid-way: the client's connection is cut (nothing more
    can be sent), and the error is logged while the request's id is still bound, with the access
    line marked cut_off (its status says 200)."""
    lines = _Lines()
    monkeypatch.setattr(middleware, "log", lines)
    monkeypatch.setattr(errors, "log", lines)  # the outer handler's report must not come too

    async def rows() -> AsyncIterator[bytes]:
        yield b"person_id\n"
        raise RuntimeError("the read failed mid-way")

    async def export(request: Request) -> Response:
        return StreamingResponse(rows(), media_type="text/csv")

    seen: list[object] = []
    original = lines.error

    def error(event: str, **kw: object) -> None:
        seen.append(structlog.contextvars.get_contextvars().get("request_id"))
        original(event, **kw)

    lines.error = error  # type: ignore[method-assign]
    streaming = Starlette(routes=[Route("/api/v1/compliance", export)], exception_handlers=HANDLERS,  # type: ignore[arg-type]
                          middleware=[Middleware(RequestMiddleware, metrics=Metrics())])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=streaming), base_url="http://spor") as c:
        with pytest.raises(RuntimeError, match="mid-way"):
            await c.get("/api/v1/compliance", headers={"X-Request-Id": "r-export"})
    events = [(e, kw.get("status"), kw.get("cut_off")) for e, kw in lines.lines]
    assert events == [("response_cut_off", 200, None), ("request", 200, True)]
    assert seen == ["r-export"]
    assert "mid-way" in str(lines.lines[0][1]["error"])
    assert isinstance(lines.lines[0][1]["exc_info"], RuntimeError)  # the traceback goes with it


async def test_a_cut_off_response_names_its_own_error_not_the_one_that_caused_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost database connection mid-export: asyncpg's error, whose cause is the socket's, is
    the one reported (only Starlette's wrapper of an xAPI error is unwrapped)."""
    lines = _Lines()
    monkeypatch.setattr(middleware, "log", lines)
    monkeypatch.setattr(errors, "log", lines)

    async def rows() -> AsyncIterator[bytes]:
        yield b"person_id\n"
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as reset:
            raise ConnectionError("connection was closed in the middle of operation") from reset

    async def export(request: Request) -> Response:
        return StreamingResponse(rows(), media_type="text/csv")

    app = Starlette(routes=[Route("/api/v1/compliance", export)], exception_handlers=HANDLERS,  # type: ignore[arg-type]
                    middleware=[Middleware(RequestMiddleware, metrics=Metrics())])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spor") as c:
        with pytest.raises(ConnectionError):
            await c.get("/api/v1/compliance")
    [(event, fields)] = [line for line in lines.lines if line[0] != "request"]
    assert event == "response_cut_off" and "closed in the middle" in str(fields["error"])


async def test_an_xapi_error_after_the_start_is_reported_as_itself_not_as_starlette_s_wrapper(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _Lines()
    monkeypatch.setattr(middleware, "log", lines)
    monkeypatch.setattr(errors, "log", lines)

    async def rows() -> AsyncIterator[bytes]:
        yield b"person_id\n"
        raise BadRequest("a bad row mid-way")

    async def export(request: Request) -> Response:
        return StreamingResponse(rows(), media_type="text/csv")

    app = Starlette(routes=[Route("/api/v1/compliance", export)], exception_handlers=HANDLERS,  # type: ignore[arg-type]
                    middleware=[Middleware(RequestMiddleware, metrics=Metrics())])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spor") as c:
        with pytest.raises(RuntimeError, match="response already started"):
            await c.get("/api/v1/compliance")
    [(event, fields)] = [line for line in lines.lines if line[0] != "request"]
    assert event == "response_cut_off" and "a bad row mid-way" in str(fields["error"])
