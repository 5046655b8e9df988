"""Which database Spor uses: SPOR_DATABASE_URL, or the embedded cluster in the data folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from lrs.settings import Settings
from lrs.store.embedded import EmbeddedPostgres

DATABASE = "spor"


async def _ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')  # name is the constant DATABASE
    finally:
        await conn.close()


def resolve_database(settings: Settings) -> tuple[Settings, EmbeddedPostgres | None]:
    """Use SPOR_DATABASE_URL, or start the embedded cluster in the data folder."""
    if settings.database_url:
        return settings, None
    memory = {"shared_buffers": settings.pg_shared_buffers} if settings.pg_shared_buffers else {}
    embedded = EmbeddedPostgres(settings.data_dir, pg_bin=Path(settings.pg_bin) if settings.pg_bin else None,
                                settings=memory)
    admin_url = embedded.start()
    asyncio.run(_ensure_database(admin_url, DATABASE))
    return settings.with_(database_url=embedded.url(DATABASE)), embedded
