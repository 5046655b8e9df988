"""The server's background connections (the credential cache's LISTEN, the projection-lag
sampler) outlive whatever cuts them, and never leave a connection behind."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lrs import lag
from lrs.lag import sample_lag
from lrs.metrics import Metrics
from lrs.store import credential_cache
from lrs.store.credential_cache import CachedCredentials
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from projections import runner


async def _others(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))


async def _until(check: object, tries: int = 100) -> bool:
    for _ in range(tries):
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_the_credential_listener_comes_back_after_any_error(
        db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection attempt that times out, or asyncpg left with a cut between two messages
    (InternalClientError), used to end the listening task: the cache then stayed off for the
    life of the process. It listens again, and after its session is cut, again."""
    real = asyncpg.connect
    failures = [TimeoutError(), asyncpg.InternalClientError("cannot switch to state 12")]

    async def flaky(*args: object, **kwargs: object) -> asyncpg.Connection:
        if failures:
            raise failures.pop(0)
        return await real(*args, **kwargs)

    monkeypatch.setattr(credential_cache.asyncpg, "connect", flaky)
    pool = await create_pool(db_url, min_size=1, max_size=2)
    cache = CachedCredentials(PgCredentialRepository(pool), db_url)
    await cache.start()
    try:
        assert await _until(lambda: cache._listening, tries=300)  # after pauses of 1 and 2 s
        assert not failures
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND query ILIKE 'LISTEN%'")
        assert await _until(lambda: not cache._listening, tries=400)
        assert await _until(lambda: cache._listening, tries=400)
        assert cache._task is not None and not cache._task.done()
    finally:
        await cache.stop()
        await pool.close()


async def test_the_lag_sampler_drops_a_connection_whose_query_failed(
        db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample that fails with the connection still open (a read model's tables being swapped
    by a rebuild, say) used to forget the connection without closing it, left to the garbage
    collector (asyncpg's "unclosed connection" warning, which pytest reports, each time). Now it
    is closed, and the next sample connects again; none is left behind."""
    failing = True
    real = runner.status

    async def status(c: asyncpg.Connection, projections: list[runner.Projection]) -> list[runner.StoreStatus]:
        if failing:
            raise asyncpg.UndefinedTableError("relation \"checkpoint\" does not exist")
        return await real(c, projections)

    monkeypatch.setattr(runner, "status", status)
    made: list[asyncpg.Connection] = []

    async def connect(url: str, **kw: float) -> asyncpg.Connection:
        made.append(await real_connect(url, **kw))
        return made[-1]

    real_connect = lag.connect_direct
    monkeypatch.setattr(lag, "connect_direct", connect)
    task = asyncio.create_task(sample_lag(db_url, Metrics(), every=0.02))
    try:
        assert await _until(lambda: len(made) >= 5, tries=600)  # some failed samples (within 30 s)
        failing = False
        # good samples, on a connection that stays
        assert await _until(lambda: not made[-1].is_closed(), tries=600)
        await asyncio.sleep(0.1)  # samples on it
        assert all(c.is_closed() for c in made[:-1])  # every failed sample's connection was closed
        assert not made[-1].is_closed()  # the one it samples on
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for _ in range(100):  # its connection closed
        if await _others(conn) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _others(conn) == 0
