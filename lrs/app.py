"""The application factory: routes, middleware, error handlers and the lifespan that owns the
database pool. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lrs.http import about, activities, agents, documents, operations, statements
from lrs.http.admission import WriteBudget
from lrs.http.alternate import AlternateRequestMiddleware
from lrs.http.cors import CORSMiddleware
from lrs.http.errors import HANDLERS
from lrs.http.form_text import QueryTextMiddleware
from lrs.http.middleware import RequestMiddleware
from lrs.http.request_limits import LimitedRequestsProtocol, RequestLimits
from lrs.lag import sample_lag
from lrs.logs import configure
from lrs.memory import tune_gc, tune_malloc
from lrs.metrics import Metrics
from lrs.metrics_shared import SharedMetrics
from lrs.ops.auth import Authenticator
from lrs.ops.oidc import OidcConfig, OidcVerifier
from lrs.ops.ratelimit import RateLimiter
from lrs.settings import Settings
from lrs.store.audit import PgAuditRepository
from lrs.store.credential_cache import CachedCredentials
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool, run_migrations
from lrs.store.documents import PgDocumentRepository
from lrs.store.statements import PgStatementRepository
from projections import api as analyst_api

Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(path: str, endpoints: dict[str, Endpoint]) -> Route:
    """One route for ``path`` that calls the endpoint of the request's method (HEAD: GET's)."""

    async def dispatch(request: Request) -> Response:
        return await endpoints["GET" if request.method == "HEAD" else request.method](request)

    return Route(path, dispatch, methods=list(endpoints))


def create_app(settings: Settings) -> Starlette:
    """A Spor ASGI app for ``settings`` (``settings.database_url`` must be set)."""
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (the CLI starts the embedded database)")
    # the HTTP protocol uvicorn runs for this process (lrs/http/protocol.py) takes its limits here
    LimitedRequestsProtocol.limits = RequestLimits(settings.max_request_head_bytes, settings.request_head_seconds,
                                                   settings.request_body_idle_seconds, settings.xapi_default_version)
    metrics = Metrics()
    metrics.describe("spor_statements_received_total", "counter", "Statements accepted by POST/PUT.")
    metrics.describe("spor_db_pool_size", "gauge", "Open database connections.")
    metrics.describe("spor_db_pool_idle", "gauge", "Idle database connections.")
    metrics.describe("spor_write_buffer_bytes", "gauge", "Bytes of statement bodies being written now.")
    metrics.describe("spor_write_buffer_waits_total", "counter",
                     "Statement writes that waited for the write buffer (SPOR_WRITE_BUFFER_BYTES).")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # settings that can be wrong are read before anything is opened that would need closing
        oidc_config = OidcConfig.from_settings_dict(dict(settings.oidc))
        shared = SharedMetrics(metrics, Path(settings.metrics_dir)) if settings.metrics_dir else None
        if shared is not None:
            shared.first_write()
        # Migrations run as the login user (the owner); the service's own connections act as
        # settings.db_role, which row-level security applies to (migration 0004).
        await run_migrations(settings.database_url or "")
        pool = await create_pool(settings.database_url or "", min_size=settings.pool_min_size,
                                 max_size=settings.pool_max_size, role=settings.db_role or None,
                                 connect_timeout=settings.db_connect_timeout,
                                 command_timeout=settings.db_command_timeout or None)
        app.state.pool = pool
        app.state.database_probe = probe = operations.DatabaseProbe(settings.database_url or "")
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.statements = PgStatementRepository(pool)
        app.state.credentials = CachedCredentials(PgCredentialRepository(pool), settings.database_url or "")
        await app.state.credentials.start()
        app.state.documents = PgDocumentRepository(pool)
        oidc = OidcVerifier(oidc_config) if oidc_config else None
        app.state.authenticator = Authenticator(
            app.state.credentials, oidc,
            RateLimiter(settings.wrong_secrets_per_minute / 60, settings.wrong_secrets_burst))
        app.state.audit = PgAuditRepository(pool)
        # whole CSV exports hold a connection each while their clients read: a quarter of the pool
        app.state.exports = analyst_api.ExportGate(max(1, settings.pool_max_size // 4))
        # and the analyst reads another quarter: statement writes keep the rest
        app.state.analyst_reads = analyst_api.ReadGate(max(1, settings.pool_max_size // 4))
        app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        app.state.write_budget = budget = WriteBudget(settings.write_buffer_bytes)
        metrics.gauge("spor_write_buffer_bytes", lambda: budget.used)
        metrics.gauge("spor_write_buffer_waits_total", lambda: budget.waits)
        metrics.gauge("spor_db_pool_size", pool.get_size)
        metrics.gauge("spor_db_pool_idle", pool.get_idle_size)
        lag_task = asyncio.create_task(sample_lag(settings.database_url or "", metrics))
        shared_task = asyncio.create_task(shared.run()) if shared is not None else None
        app.state.metrics_text = shared.render if shared is not None else metrics.render
        try:
            yield
        finally:
            try:
                lag_task.cancel()
                await app.state.credentials.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await lag_task
                if oidc is not None:
                    await oidc.aclose()
                await analyst_api.drain(app.state.exports)  # exports ending, and their audit records
                await probe.close()
                await pool.close()
            finally:
                if shared is not None and shared_task is not None:
                    # last, so what the shutdown itself counted is in the file
                    shared_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await shared_task
                    shared.write_quietly()

    # One route per path, dispatching on the method: a 405 then lists all of a path's methods in
    # Allow (RFC 9110 15.5.6; Starlette takes Allow from the first route of a path alone). The
    # busiest path, the statements, comes first.
    routes: list[BaseRoute] = [
        by_method(statements.PATH, {"POST": statements.post_statements, "GET": statements.get_statements,
                                    "PUT": statements.put_statement}),
        Route("/health", operations.health, methods=["GET"]),
        Route("/metrics", operations.metrics, methods=["GET"]),
        Route(about.PATH, about.get_about, methods=["GET", "HEAD"]),
        Route(activities.PATH, activities.get_activity, methods=["GET", "HEAD"]),
        Route(agents.PATH, agents.get_person, methods=["GET", "HEAD"]),
    ]
    for path, resource in ((documents.STATE_PATH, documents.STATE),
                           (documents.ACTIVITY_PROFILE_PATH, documents.ACTIVITY_PROFILE),
                           (documents.AGENT_PROFILE_PATH, documents.AGENT_PROFILE)):
        h = documents.handlers(resource)
        routes.append(by_method(path, {"GET": h["get"], "PUT": h["put"], "POST": h["post"], "DELETE": h["delete"]}))
    routes.append(analyst_api.mount())
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        middleware=[
            # Outermost first: CORS answers preflights before anything else; the alternate
            # syntax is rewritten before version negotiation sees the headers it carries.
            # Outermost first: every response (refusals of the alternate syntax included) gets a
            # request id, the version header, a log line and metrics.
            Middleware(RequestMiddleware, metrics=metrics, default_version=settings.xapi_default_version),
            Middleware(CORSMiddleware),
            Middleware(QueryTextMiddleware),
            Middleware(AlternateRequestMiddleware, max_body_bytes=settings.max_body_bytes)],
    )
    # /xapi/statements/ is no resource: 404, not a 307 to the path without the slash (a redirected
    # PUT or POST is a surprise, and its Location was built from the Host header)
    app.router.redirect_slashes = False
    return app


def stop_with_parent() -> None:
    """Have the kernel send this worker SIGTERM (a graceful stop) when the ``spor serve`` that
    started it dies, however it dies (Linux's PR_SET_PDEATHSIG). After a kill -9 of the parent
    the workers served on, orphans, while the data folder's lock, the parent's, was free: a new
    server could start beside them (a review). uvicorn starts every worker from its main thread,
    whose end is the process's."""
    if not sys.platform.startswith("linux"):
        return
    spawner = multiprocessing.parent_process()  # (read at spawn, not now: it may have died since)
    parent = spawner.pid if spawner is not None and spawner.pid is not None else os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # (not allowed here: the worker lives on as before)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def app_from_env() -> Starlette:
    """The app of a worker process (``spor serve --workers N``): settings from the environment."""
    stop_with_parent()
    settings = Settings.from_env()
    configure(settings.log_format, settings.log_level)
    tune_malloc()
    app = create_app(settings)
    tune_gc()
    return app
