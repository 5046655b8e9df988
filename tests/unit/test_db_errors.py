"""Driver errors become Spor's: a database that cannot serve now is a 503, not a 500."""

from __future__ import annotations

import errno
import socket

import asyncpg
import pytest

from lrs.errors import Conflict, ServiceUnavailable
from lrs.store.db import lost_database, translate, translated


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.DiskFullError, asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError, asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.PostgresSystemError, asyncpg.exceptions.PostgresIOError,
])
def test_a_database_that_cannot_serve_now_is_service_unavailable(error: type[asyncpg.PostgresError]) -> None:
    mapped = translate(error('could not extend file "base/16384/2619": No space left on device'))
    assert isinstance(mapped, ServiceUnavailable)
    # what the database said names server files: the log has it, the client does not
    assert "base/16384" not in str(mapped)
    # every 503 says when to come back (an ops audit: a restart of the database gave bare ones)
    assert mapped.headers.get("Retry-After")


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.OutOfMemoryError,  # one oversized request can cause it, again on retry
    asyncpg.exceptions.QueryCanceledError,  # a timeout the request's own cost may hit
    asyncpg.exceptions.DatabaseDroppedError, asyncpg.exceptions.UndefinedFileError,
])
def test_what_a_retry_would_meet_again_stays_an_internal_error(error: type[asyncpg.PostgresError]) -> None:
    assert translate(error("no")) is None


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,  # a store's next ticket still held (migration 0039)
])
def test_too_many_connections_and_a_transaction_to_retry_are_503_with_retry_after(
        error: type[asyncpg.PostgresError]) -> None:
    mapped = translate(error("full"))
    assert isinstance(mapped, ServiceUnavailable) and mapped.headers.get("Retry-After")


def test_a_duplicate_key_is_a_conflict_and_a_programming_error_stays_ours() -> None:
    assert isinstance(translate(asyncpg.exceptions.UniqueViolationError("dup")), Conflict)
    assert translate(asyncpg.exceptions.UndefinedColumnError("no such column")) is None
    assert translate(asyncpg.exceptions.CheckViolationError("bad")) is None


async def test_a_connection_cut_between_two_messages_is_service_unavailable() -> None:
    """asyncpg's InternalClientError ("cannot switch to state ...") is what a request meets when
    the database's farewell arrives between two of its queries: a 503 to send again, not a 500."""
    cut = asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress")
    mapped = translate(cut)
    assert isinstance(mapped, ServiceUnavailable) and mapped.headers.get("Retry-After")
    with pytest.raises(ServiceUnavailable):
        async with translated():
            raise cut


def test_what_the_driver_said_about_the_host_stays_in_the_log() -> None:
    refused = translate(ConnectionRefusedError(111, "Connect call failed ('10.0.3.7', 5432)"))
    timed_out = translate(TimeoutError())
    assert isinstance(refused, ServiceUnavailable) and isinstance(timed_out, ServiceUnavailable)
    assert "10.0.3.7" not in str(refused) and "5432" not in str(refused)
    assert "did not answer in time" in str(timed_out)  # not "database unavailable: " and nothing


def test_only_the_cut_kind_of_internal_client_error_is_a_503() -> None:
    """asyncpg's ProtocolError and OutdatedSchemaCacheError are InternalClientErrors too, and
    not cuts: they stay errors of ours."""
    assert translate(asyncpg.exceptions.ProtocolError("unexpected message")) is None
    assert translate(asyncpg.exceptions.OutdatedSchemaCacheError("cache")) is None


def test_interface_errors_of_ours_stay_ours() -> None:
    """asyncpg raises InterfaceErrors for our own mistakes too: a value it cannot encode (its
    DataError, also a ValueError) or a misconfigured client. A retry meets them again, so they
    stay 500s with a traceback, not a 503 that hides them; a closed connection is a 503."""
    from asyncpg.exceptions import _base

    assert translate(_base.DataError("invalid input for query argument $1: 2**70 (value out of int64 range)")) is None
    assert translate(_base.ClientConfigurationError("bad sslmode")) is None
    assert isinstance(translate(asyncpg.exceptions.ConnectionDoesNotExistError("closed")), ServiceUnavailable)
    assert isinstance(translate(asyncpg.InterfaceError("connection is closed")), ServiceUnavailable)


def test_a_command_line_tool_says_the_database_went_away_only_when_it_did() -> None:
    """`spor projections rebuild` interrupted by the database ended in a traceback (an ops
    audit); the one-line exit must not hide what is not a lost database either (a review: a
    broken pipe of the command's own output, a full disk, the driver's misuse)."""
    gone = [ConnectionRefusedError(111, "refused"), ConnectionResetError(104, "reset"), TimeoutError(),
            OSError(errno.EHOSTUNREACH, "no route"), socket.gaierror(-2, "unknown host"),
            asyncpg.exceptions.ConnectionDoesNotExistError("closed"), asyncpg.exceptions.CannotConnectNowError("x"),
            asyncpg.exceptions.AdminShutdownError("x"), asyncpg.exceptions.TooManyConnectionsError("x"),
            asyncpg.exceptions.InternalClientError("cannot switch to state 15")]
    for exc in gone:
        exit_ = lost_database(exc, "spor projections")
        assert exit_ is not None and "could not be reached or went away" in str(exit_.code), exc
    kept = [BrokenPipeError(32, "pipe"), FileNotFoundError(2, "no such file"), PermissionError(13, "denied"),
            asyncpg.exceptions.DiskFullError("disk"), asyncpg.exceptions.SerializationError("retry"),
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"), ValueError("x")]
    for exc in kept:
        assert lost_database(exc, "spor") is None, exc
