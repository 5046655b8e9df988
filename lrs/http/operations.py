"""Operational endpoints: /health and /metrics (Prometheus text format)."""

from __future__ import annotations

import asyncio

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response


async def health(request: Request) -> Response:
    """Alive, and whether the database answers within a second (503 when it does not)."""
    database = "ok"
    try:
        await asyncio.wait_for(request.app.state.pool.fetchval("SELECT 1"), timeout=1.0)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        database = f"unavailable: {type(exc).__name__}"
    status = 200 if database == "ok" else 503
    return JSONResponse({"status": "ok" if status == 200 else "degraded", "database": database}, status_code=status)


async def metrics(request: Request) -> Response:
    return PlainTextResponse(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")
