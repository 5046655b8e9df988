"""A first start on an empty database makes the default store and one first credential, however
many servers start on it at once (an operations audit: two made two credentials, or one failed
on the default store's name)."""

from __future__ import annotations

import asyncio

import asyncpg

from lrs.cli import _prepare
from lrs.settings import Settings


async def test_servers_starting_together_on_an_empty_database_make_one_first_credential(
        db_url: str, conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM credentials")  # (the template database holds none; made sure)
    await conn.execute("DELETE FROM stores")
    settings = Settings.from_env().with_(database_url=db_url)
    results = await asyncio.gather(*(_prepare(settings, make_credential=lambda: True) for _ in range(8)))
    made = [m for _, m in results if m is not None]
    assert len(made) == 1 and sum(first for first, _ in results) == 1
    assert await conn.fetchval("SELECT count(*) FROM credentials") == 1
    assert await conn.fetchval("SELECT count(*) FROM stores WHERE name = 'default'") == 1
