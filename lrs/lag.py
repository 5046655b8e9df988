"""Projection lag on /metrics: sampled periodically over one owner connection (the read models'
checkpoints of every store), so scrapes cost nothing."""

from __future__ import annotations

import asyncio

import asyncpg

from lrs.logs import log
from lrs.metrics import Metrics
from lrs.store.db import close_quietly, connect_direct
from projections import models, runner


async def sample_lag(database_url: str, metrics: Metrics, every: float = 15.0) -> None:
    """Run until cancelled: set spor_projection_lag_events/_seconds{projection,store}."""
    metrics.describe("spor_projection_lag_events", "gauge", "Events not yet applied, per projection and store.")
    metrics.describe("spor_projection_lag_seconds", "gauge", "Age of the oldest unapplied event, in seconds.")
    conn: asyncpg.Connection | None = None
    try:
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await connect_direct(database_url)
                for st in await runner.status(conn, list(models.ALL.values())):
                    labels = {"projection": st.projection, "store": st.store}
                    metrics.set("spor_projection_lag_events", float(st.lag_events), **labels)
                    metrics.set("spor_projection_lag_seconds", float(st.lag_seconds), **labels)
            except Exception as exc:  # the next sample tries again, on a new connection
                log.warning("projection_lag_sample_failed", error=type(exc).__name__, detail=str(exc)[:200])
                if conn is not None:
                    conn.terminate()  # closed here, not left to the garbage collector
                conn = None
            await asyncio.sleep(every)
    finally:
        if conn is not None:
            await close_quietly(conn)  # not held up by a connection that no longer answers
