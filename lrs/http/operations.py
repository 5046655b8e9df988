"""Operational endpoints: /health and /metrics (Prometheus text format)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response


class DatabaseProbe:
    """Asks the database whether it answers, on a connection of its own.

    Through the pool, a server busy with requests looked down: the check waited over a second
    for a free connection and answered 503 (~1% of checks under 200 concurrent clients), and a
    load balancer takes such a server out of rotation just when it is needed. Checks that come
    while one is under way share its answer, so a flood of them costs one round trip. It says
    whether the database answers, not whether the pool has a connection free (the pool's size
    and use are on /metrics).
    """

    def __init__(self, url: str, timeout: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self._running: asyncio.Future[str] | None = None

    async def check(self) -> str:
        """"ok", or "unavailable: <kind of error>"."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._ask())
            self._running.add_done_callback(self._done)
        return await asyncio.shield(self._running)

    def _done(self, _: asyncio.Future[str]) -> None:
        self._running = None

    async def _ask(self) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.url)
                await self._conn.fetchval("SELECT 1")
            return "ok"
        except Exception as exc:  # whatever the driver raises, e.g. InternalClientError
            # a database killed mid-check gave asyncpg's InternalClientError, which is none of the
            # driver's usual classes: /health answered 500, not degraded (a crash audit)
            self._drop()
            return f"unavailable: {type(exc).__name__}"

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        """At shutdown: after a check under way (it may be opening the connection), drop it."""
        running = self._running
        if running is not None:
            with contextlib.suppress(Exception):
                await running
        self._drop()


async def health(request: Request) -> Response:
    """Alive, and whether the database answers within a second (503 when it does not)."""
    database = await request.app.state.database_probe.check()
    status = 200 if database == "ok" else 503
    return JSONResponse({"status": "ok" if status == 200 else "degraded", "database": database}, status_code=status)


async def metrics(request: Request) -> Response:
    """This process's figures, or with several processes (lrs/metrics_shared.py) all of theirs."""
    return PlainTextResponse(request.app.state.metrics_text(), media_type="text/plain; version=0.0.4")
