"""The database connection pool, codecs, and the one place driver errors are translated.

Everything above ``lrs/store`` sees ``lrs.errors`` exceptions, never asyncpg's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from lrs.errors import Conflict, LRSError, ServiceUnavailable


def _jsonb_encode(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode()
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb travels as text; bytes/str pass through untouched, so already-serialised JSON is
    # never parsed and re-serialised in Python on the write path.
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_jsonb_encode, decoder=orjson.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Open the pool with Spor's codecs; ServiceUnavailable if the database cannot be reached."""
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceUnavailable(f"database unavailable: {exc}") from exc
    assert pool is not None
    return pool


def translate(exc: BaseException) -> LRSError | None:
    """Map a driver exception to Spor's error hierarchy (None: not ours to translate)."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"conflicts with stored data: {exc.detail or exc}")
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return ServiceUnavailable("the database asked to retry the transaction")
    if isinstance(exc, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError):
        return ServiceUnavailable("database is busy or starting; try again")
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.ConnectionDoesNotExistError):
        return ServiceUnavailable(f"database unavailable: {exc}")
    return None


@contextlib.asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Run a block, re-raising driver errors as ``lrs.errors`` exceptions."""
    try:
        yield
    except LRSError:
        raise
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
