"""Driver errors become Spor's: a database that cannot serve now is a 503, not a 500."""

from __future__ import annotations

import asyncpg
import pytest

from lrs.errors import Conflict, ServiceUnavailable
from lrs.store.db import translate


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.DiskFullError, asyncpg.exceptions.OutOfMemoryError, asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError, asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.PostgresSystemError,
])
def test_a_database_that_cannot_serve_now_is_service_unavailable(error: type[asyncpg.PostgresError]) -> None:
    mapped = translate(error("no room"))
    assert isinstance(mapped, ServiceUnavailable)
    assert "no room" in str(mapped)  # what the database said


def test_too_many_connections_is_service_unavailable_too() -> None:
    assert isinstance(translate(asyncpg.exceptions.TooManyConnectionsError("full")), ServiceUnavailable)


def test_a_duplicate_key_is_a_conflict_and_a_programming_error_stays_ours() -> None:
    assert isinstance(translate(asyncpg.exceptions.UniqueViolationError("dup")), Conflict)
    assert translate(asyncpg.exceptions.UndefinedColumnError("no such column")) is None
    assert translate(asyncpg.exceptions.CheckViolationError("bad")) is None
