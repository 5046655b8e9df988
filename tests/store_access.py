"""Tests that drive the store below HTTP: the caller (a credential's principal with every scope)
and a statement repository on a pool of its own, as one server process has."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from lrs.ops.principal import Principal
from lrs.ops.statements import Prepared
from lrs.store.db import create_pool
from lrs.store.statements import PgStatementRepository, term_run_columns

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "test"}}


def principal(store_id: int) -> Principal:
    """A credential of store ``store_id`` with every scope and AUTHORITY as its authority. Its
    authority key (what "statements/read/mine" compares) is "account:x", not AUTHORITY's: the
    tests that use it read with every scope, and pass "account:x" where they write the rows."""
    return Principal(store_id, None, frozenset({"all"}), AUTHORITY, "account:x")


@contextlib.asynccontextmanager
async def statement_repository(db_url: str, **pool_args: Any) -> AsyncIterator[PgStatementRepository]:
    """A statement repository on a pool of its own (with its own caches, as one server process
    has), closed after."""
    pool = await create_pool(db_url, **pool_args)
    try:
        yield PgStatementRepository(pool)
    finally:
        await pool.close()


def run_columns(items: list[Prepared]) -> tuple[str, ...]:
    """The filter-term runs of a one-call append of ``items``, as the repository sends them."""
    runs = term_run_columns(items)
    assert runs is not None
    return runs
