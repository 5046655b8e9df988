"""The database connection pool, codecs, and the one place driver errors are translated.

Everything above ``lrs/store`` sees ``lrs.errors`` exceptions, never asyncpg's.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import asyncpg
import orjson
import structlog

from lrs.errors import BadRequest, Conflict, LRSError, ServiceUnavailable
from lrs.store.migrate import advise_rebuild, migrate
from lrs.store.queries import sql

log = structlog.get_logger(__name__)


def _jsonb_encode(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode()
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


async def set_json_codecs(conn: asyncpg.Connection) -> None:
    """json/jsonb to and from Python values with orjson (also used by one-off connections)."""
    # jsonb travels as text; bytes/str pass through untouched, so already-serialised JSON is
    # never parsed and re-serialised in Python on the write path.
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_jsonb_encode, decoder=orjson.loads, schema="pg_catalog")


# A database host that falls silent (a hard failover: no reset, no answer) would hold a
# connection until the kernel gives up retransmitting, 15 minutes and more. On Linux these make
# it give up in about a minute: an idle (or waiting) connection probed after 30 s, then every
# 10 s, and dropped when 60 s pass without an answer (TCP_USER_TIMEOUT, which also bounds data
# sent and not acknowledged, and decides when the probes give up: it is 30 + 3 x 10 s so three
# probes go out). It would also fire if the server stopped reading while we had data queued for
# 60 s (a zero window: pipelined sends such as COPY waiting on a lock); Spor sends each request
# as one message that PostgreSQL reads whole. Elsewhere (macOS) only the keepalive applies.
TCP_KEEPALIVE = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
TCP_USER_TIMEOUT_MS = 60_000
_socket_options_refused = False


def fail_fast_on_a_silent_host(conn: asyncpg.Connection) -> None:
    """Set keepalive and TCP_USER_TIMEOUT on a TCP connection to the database (a Unix socket,
    or a platform without the options, is left as it is; one that refuses them is logged once
    and the connection used as it is)."""
    global _socket_options_refused
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    options += [(socket.IPPROTO_TCP, getattr(socket, name), value)
                for name, value in TCP_KEEPALIVE.items() if hasattr(socket, name)]
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError as exc:
            if not _socket_options_refused:
                log.warning("database_socket_option_refused", option=option, error=str(exc))
                _socket_options_refused = True


async def connect_direct(url: str, *, connect_timeout: float = 10.0) -> asyncpg.Connection:
    """A connection of its own, outside the pool (a LISTEN, a background sampler, a projection
    worker): ``connect_timeout`` seconds to be made, and a silent host noticed in about a minute."""
    conn = await asyncpg.connect(url, timeout=connect_timeout)
    fail_fast_on_a_silent_host(conn)
    return conn


async def close_quietly(conn: asyncpg.Connection) -> None:
    """Close ``conn``; one that cannot close cleanly within 5 s (its host gone silent, say) is
    dropped."""
    if conn.is_closed():
        return
    try:
        async with asyncio.timeout(5):
            await conn.close()
    except Exception:
        conn.terminate()


async def init_pooled(conn: asyncpg.Connection) -> None:
    """Every pool connection: the JSON codecs, and a silent host noticed in about a minute."""
    fail_fast_on_a_silent_host(conn)
    await set_json_codecs(conn)


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection that knows whether it carries session settings to clear on release."""

    scoped = False
    # True until a cache of what the database holds (lrs.store.activities.KnownNames) has seen
    # this connection: a new connection may reach another history of the database than the
    # one the cache learnt from (a failover to a replica that missed the last commits, a restore)
    new = True

    def mark_scoped(self) -> None:
        self.scoped = True

    def take_new(self) -> bool:
        """Whether this connection is new to the caches; it is not after this call."""
        was, self.new = self.new, False
        return was


async def _reset_on_release(conn: PooledConnection) -> None:
    """What a connection going back to the pool needs, and only that.

    asyncpg rolls back an open transaction first; its default reset then sends
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release, a round trip
    per append group (~5% of a worker's CPU under single-statement POSTs). Spor's pool
    connections take only transaction-scoped locks and settings, never LISTEN or hold a cursor
    past its transaction (an analyst export's ends with its transaction), so only a connection
    that ``scoped`` gave session settings is reset.
    """
    if conn.scoped:
        conn.scoped = False
        await conn.execute("RESET ALL")


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20, role: str | None = None,
                      connect_timeout: float = 10, command_timeout: float | None = None) -> asyncpg.Pool:
    """Open the pool with Spor's codecs; ServiceUnavailable if the database cannot be reached.

    ``role`` (normally ``spor_app``) is sent as a startup parameter: every connection then acts
    as that role, which row-level security applies to, and RESET ALL on release keeps it (RESET
    returns to the connection's startup values). ``connect_timeout``: seconds for each new
    connection to be made, at start and whenever the pool replaces one. ``command_timeout``:
    seconds each command may take (None: no limit); past it the driver cancels it and raises
    TimeoutError, which ``translated`` makes a 503.
    """
    settings = {"role": role} if role else None
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=init_pooled, server_settings=settings,
            connection_class=PooledConnection, reset=_reset_on_release, timeout=connect_timeout,
            command_timeout=command_timeout,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise unavailable(exc) from exc
    assert pool is not None
    return pool


async def run_migrations(url: str) -> list[int]:
    """Apply pending migrations over a connection of the login user (the schema's owner)."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise unavailable(exc) from exc
    try:
        applied = await migrate(conn)
        await advise_rebuild(conn, applied, lambda number, advice: log.warning(
            "read_models_need_rebuild", migration=number, advice=advice))
        return applied
    finally:
        await conn.close()


def unavailable(exc: BaseException) -> ServiceUnavailable:
    """The 503 for a database that cannot be reached; what the driver said goes to the log (it
    can name the database's host and port)."""
    log.warning("database_unavailable", error=type(exc).__name__, detail=str(exc)[:200])
    if isinstance(exc, TimeoutError):
        return ServiceUnavailable("the database did not answer in time; send the request again shortly",
                                  headers={"Retry-After": "5"})
    return ServiceUnavailable("the database is unavailable; send the request again shortly",
                              headers={"Retry-After": "5"})


# What says the database could not be reached or went away, for a command line tool: a
# connection refused, reset or cut, a database starting, shutting down or full of connections
# (57P01-57P03: admin, crash, cannot connect now). Not every OSError (a broken pipe of the
# command's own output, a file) and not the driver's misuse: those keep their traceback (a review).
_LOST = (ConnectionError, TimeoutError, socket.gaierror, asyncpg.ConnectionDoesNotExistError,
         asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError, asyncpg.AdminShutdownError,
         asyncpg.CrashShutdownError)
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


def lost_database(exc: BaseException, command: str) -> SystemExit | None:
    """For a command line tool: the one-line exit for a database that cannot be reached or went
    away during the command (None: another error, with its traceback). An interrupted rebuild
    ended in asyncpg's traceback (an ops audit)."""
    cut = type(exc) is asyncpg.InternalClientError  # (the state a cut between two messages leaves)
    lost = isinstance(exc, _LOST) or cut or (isinstance(exc, OSError) and exc.errno in _UNREACHABLE)
    if not lost or isinstance(exc, BrokenPipeError):  # (the command's own output closed: `| head`)
        return None
    return SystemExit(f"{command}: the database could not be reached or went away ({type(exc).__name__}); "
                      "run the command again once it is back")


@contextlib.contextmanager
def exit_if_database_lost(command: str) -> Iterator[None]:
    """Run a command line tool's work: a lost database (:func:`lost_database`) ends it in one
    line, anything else keeps its traceback."""
    try:
        yield
    except Exception as exc:
        gone = lost_database(exc, command)
        if gone is None:
            raise
        raise gone from None


def translate(exc: BaseException) -> LRSError | None:
    """Map a driver exception to Spor's error hierarchy (None: not ours to translate)."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"conflicts with stored data: {exc.detail or exc}")
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return ServiceUnavailable("the database asked to retry the transaction; send the request again",
                                  headers={"Retry-After": "1"})
    if isinstance(exc, asyncpg.LockNotAvailableError):
        # a store's next ticket still held by a session whose reservation failed (migration
        # 0039): it goes with that session; what the database said stays in the log
        log.warning("lock_not_available", error=str(exc)[:200])
        return ServiceUnavailable("the store cannot take this append yet; send the request again shortly",
                                  headers={"Retry-After": "1"})
    if isinstance(exc, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError):
        # every 503 says when to come back (RFC 9110 10.2.3; an ops audit found these two bare,
        # during a restart of the database, when clients most need it)
        log.warning("database_unavailable", error=type(exc).__name__, detail=str(exc)[:200])
        return ServiceUnavailable("the database is busy or starting; send the request again shortly",
                                  headers={"Retry-After": "5"})
    if (isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError)) \
            or isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
        # InterfaceErrors of ours (a value the driver cannot encode: its DataError is a
        # ValueError too; a misconfigured client): a retry meets them again, so they stay
        # errors of ours, with their traceback
        return None
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.ConnectionDoesNotExistError):
        return unavailable(exc)
    if type(exc) is asyncpg.InternalClientError:  # not its subclasses (protocol, schema cache)
        # the driver's state after a cut that came between two messages (a database restart
        # during the request): the connection is gone, as above
        log.warning("database_connection_cut", error=str(exc)[:200])
        return ServiceUnavailable("the connection to the database was cut; send the request again",
                                  headers={"Retry-After": "1"})
    state = str(getattr(exc, "sqlstate", "") or "")
    if isinstance(exc, asyncpg.PostgresError) and state == "54000":
        # program_limit_exceeded: above all an identifier too long for a B-tree entry (about
        # 2,700 bytes: a verb or activity id, an agent's key or name, a document's stateId), which
        # is the request's, not a fault of the server
        key = _INDEXED.get(str(getattr(exc, "constraint_name", "") or ""), "") or next(
            (what for index, what in _INDEXED.items() if index in str(exc)), "a value")
        # what the database said stays in the log (it names relations and row positions)
        log.info("value_too_long_to_index", error=str(exc)[:300])
        return BadRequest(f"{key} is too long for Spor to index (about 2,600 bytes at most)")
    if isinstance(exc, asyncpg.PostgresError) and state in _NOT_NOW:
        # A database that cannot now (out of disk, shutting down, an I/O error) is not a fault
        # of the request: 503 asks the client to send it again, where a 500 may make e-learning
        # content give up on the statement. What the database said stays in the log: its text
        # can name server files.
        log.error("database_cannot_serve_now", sqlstate=state, error=str(exc)[:500])
        return ServiceUnavailable("the database cannot serve this request now; send it again shortly",
                                  headers={"Retry-After": "5"})
    return None


# What each index a long value can overflow holds, for the 400 that says so.
_INDEXED = {
    "activities_pkey": "an activity id",
    "agent_names_pkey": "an agent's name with its identifier",
    "documents_pkey": "the document's activityId, agent and stateId/profileId together",
}

# SQLSTATEs of a database that cannot serve now but will (PostgreSQL, Appendix A): out of
# resources (not out_of_memory 53200, which one oversized request can cause, again on retry),
# shutting down or not yet up, system and I/O errors. Not query_canceled 57014 (a timeout a
# request's own cost may hit), database_dropped 57P04, undefined_file 58P01, duplicate_file
# 58P02: those stay 500s.
_NOT_NOW = frozenset({"53000", "53100", "53300", "53400", "57000", "57P01", "57P02", "57P03", "57P05",
                      "58000", "58030"})


@contextlib.asynccontextmanager
async def scoped(
    pool: asyncpg.Pool, read: Sequence[int], write: int | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection allowed to read ``read`` stores and write ``write``.

    Row-level security (migration 0004) shows a connection nothing else, so even a query that
    forgot its store filter cannot leak across stores. The settings live until the connection
    goes back to the pool, whose RESET ALL clears them (``_reset_on_release``).
    """
    async with pool.acquire() as conn:
        mark = getattr(conn, "mark_scoped", None)
        if mark is not None:
            mark()  # before the settings: a failure half-way still resets the connection
        await conn.execute(sql("set_scope"), ",".join(str(int(s)) for s in read), "" if write is None else str(write))
        yield conn


@contextlib.asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Run a block, re-raising driver errors as ``lrs.errors`` exceptions."""
    try:
        yield
    except LRSError:
        raise
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
