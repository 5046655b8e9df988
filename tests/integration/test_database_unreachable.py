"""A database host that stops answering (a failover whose old address takes connections and never
replies) costs a request SPOR_DB_CONNECT_TIMEOUT seconds and a 503, not asyncpg's minute."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
import httpx
import pytest

from lrs.app import create_app
from lrs.settings import Settings
from lrs.store.db import TCP_USER_TIMEOUT_MS, create_pool, fail_fast_on_a_silent_host
from projections import api as analyst_api
from projections import runner
from tests.conftest import make_tenant
from tests.proxy import DatabaseProxy


async def test_a_request_gets_503_within_the_connect_timeout(db_url: str) -> None:
    proxy = DatabaseProxy(db_url)
    url = await proxy.start()
    app = create_app(Settings.from_env().with_(database_url=url, pool_min_size=1, pool_max_size=2,
                                               db_connect_timeout=1))
    tenant = await make_tenant(db_url, "http://testserver")
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver/xapi",
                auth=(tenant.key, tenant.secret), headers={"X-Experience-API-Version": "2.0.0"}) as client:
            assert (await client.get("/statements", params={"limit": "1"})).status_code == 200
            proxy.black_hole = True
            proxy.cut()
            # the first requests meet the cut connections; then the pool opens new ones
            for _ in range(4):
                t0 = time.monotonic()
                r = await asyncio.wait_for(client.get("/statements", params={"limit": "1"}), timeout=30)
                took = time.monotonic() - t0
                assert r.status_code == 503, r.text
                assert took < 10  # the 1 s connect timeout, not asyncpg's minute
    finally:
        await proxy.close()


def _silent_host_options(conn: asyncpg.Connection) -> tuple[int, ...]:
    sock = conn._transport.get_extra_info("socket")
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))


async def test_every_long_lived_connection_notices_a_host_gone_silent(db_url: str) -> None:
    """Keepalive and TCP_USER_TIMEOUT on the pool's connections and on the projection worker's, so
    a database host that falls silent (no reset, no answer) is given up on in about a minute,
    not after the kernel's 15 minutes and more of retransmissions. (Making a host fall silent
    needs a firewall this test cannot change: it checks the sockets are set up so.)"""
    want = (1, 30, 10, 3, TCP_USER_TIMEOUT_MS)
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            assert _silent_host_options(conn) == want
    finally:
        await pool.close()
    worker_conn = await runner.connect(db_url)
    try:
        assert _silent_host_options(worker_conn) == want
    finally:
        await worker_conn.close()
    listener = await runner.Worker(db_url, [])._listen()
    try:
        assert _silent_host_options(listener) == want
    finally:
        await listener.close()


class _RefusingSocket:
    family = socket.AF_INET

    def setsockopt(self, *args: object) -> None:
        raise OSError(92, "Protocol not available")


class _Transport:
    def get_extra_info(self, name: str) -> object:
        return _RefusingSocket()


class _Conn:
    _transport = _Transport()


def test_a_platform_that_refuses_the_options_still_gets_its_connections() -> None:
    """The options are a help, not a condition: a kernel or sandbox that refuses one is logged
    once, and the connection (so the pool, so every request) goes on without it."""
    fail_fast_on_a_silent_host(_Conn())  # type: ignore[arg-type]
    fail_fast_on_a_silent_host(_Conn())  # type: ignore[arg-type]


async def test_an_analyst_read_that_loses_its_database_is_a_503(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A view whose connection is cut under it (here the handler meets the error asyncpg raises)
    answers 503 with Retry-After, as the xAPI does; it was a 500 with a traceback."""
    async def cut(request: object, stores: list[int]) -> object:
        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    monkeypatch.setattr(analyst_api, "_projections", cut)
    app = create_app(Settings.from_env().with_(database_url=db_url))
    analyst = await make_tenant(db_url, "http://testserver", scopes=["all/read"])
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        r = await client.get("/api/v1/projections", auth=(analyst.key, analyst.secret))
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] and "closed" not in r.text
