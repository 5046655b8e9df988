"""The ``spor`` command line: serve, and the store/credential administration commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from lrs import admin
from lrs.data_folder_lock import SERVE_WAITS_SECONDS, DataFolderInUse, lock_data_folder
from lrs.database import resolve_database, stop_if_unused
from lrs.metrics_shared import MetricsFolderError, prepare_folder
from lrs.ops import bootstrap
from lrs.settings import Settings
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import set_json_codecs
from lrs.store.migrate import UnsuitableDatabase, migrate
from projections import cli as projections_cli

_public_url = admin.public_url


async def _prepare(settings: Settings) -> bootstrap.NewCredential | None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn)
        await set_json_codecs(conn)
        return await bootstrap.ensure_default(PgCredentialRepository(conn), _public_url(settings))
    finally:
        await conn.close()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


# How long SIGTERM waits for requests in flight (deploy/: service managers wait longer).
GRACEFUL_SHUTDOWN_SECONDS = 30


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lrs.http.protocol import StepWritesProtocol
    from lrs.logs import configure
    from lrs.memory import tune_malloc

    settings = Settings.for_command("spor serve", host=args.host, port=args.port, workers=args.workers)
    configure(settings.log_format, settings.log_level)
    tune_malloc()
    if settings.metrics_dir:
        try:  # the server's own folder: made, or emptied of an earlier run's figures
            prepare_folder(Path(settings.metrics_dir))
        except MetricsFolderError as exc:
            raise SystemExit(f"spor serve: {exc}") from exc
    if not settings.database_url:
        try:  # held until this process ends (lrs/data_folder_lock.py)
            lock_data_folder(settings.data_dir, SERVE_WAITS_SECONDS)
        except DataFolderInUse as exc:
            raise SystemExit(f"spor serve: {exc}") from None
    settings, embedded = resolve_database(settings)
    shared_metrics: str | None = None
    try:
        created = asyncio.run(_prepare(settings))
        if embedded is not None:
            print(f"  embedded database: {embedded.data_dir} (PostgreSQL from {embedded.pg_bin})", flush=True)
        if created is not None:
            print(f"  store: {created.store}", flush=True)
            print(f"  key:    {created.key}", flush=True)
            print(f"  secret: {created.secret}", flush=True)
            print("  (the secret is shown only now; `spor credential create` makes more)", flush=True)
        print(f"Spor is starting. Point your xAPI client at: {_public_url(settings)}/xapi/", flush=True)
        # uvicorn shuts down gracefully on SIGTERM/SIGINT (finishing in-flight requests), then
        # re-raises the signal; exiting normally from it lets the embedded database stop too.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        target: object
        if settings.workers > 1:
            # Worker processes build their app from the environment; the database URL the
            # parent resolved (maybe the embedded cluster) is handed over that way. The parent
            # only supervises: it does not import the app (~20 MB it would hold for nothing).
            os.environ["SPOR_DATABASE_URL"] = settings.database_url or ""
            if not settings.metrics_dir:
                # where the processes share their /metrics figures (lrs/metrics_shared.py)
                shared_metrics = tempfile.mkdtemp(prefix="spor-metrics-")
                os.environ["SPOR_METRICS_DIR"] = shared_metrics
            target = "lrs.app:app_from_env"
        else:
            from lrs.app import create_app
            from lrs.memory import tune_gc

            target = create_app(settings)
            tune_gc()
        uvicorn.run(
            target,  # type: ignore[arg-type]
            factory=settings.workers > 1, workers=settings.workers if settings.workers > 1 else None,
            host=settings.host, port=settings.port, log_config=None, access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, loop="auto", http=StepWritesProtocol,
            # the app sends its own Date, current to the second (lrs.ops.timestamps.http_date_now)
            date_header=False,
        )
    finally:
        if shared_metrics is not None:
            shutil.rmtree(shared_metrics, ignore_errors=True)
        # the last process using the cluster stops it (a cluster a server killed with kill -9
        # left is stopped by the next; one a projection worker still uses is left to it)
        stop_if_unused(embedded, holds_folder=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spor", description="Spor: an xAPI Learning Record Store on PostgreSQL")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the xAPI server")
    serve.add_argument("--host", default=None, help="address to listen on (SPOR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (SPOR_PORT, default 8080)")
    serve.add_argument("--workers", type=int, default=None,
                       help="server processes sharing the port (SPOR_WORKERS, default 1)")
    serve.set_defaults(func=cmd_serve)

    admin.add_subcommands(sub)
    projections_cli.add_subcommands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UnsuitableDatabase as exc:
        raise SystemExit(f"spor {args.command}: {exc}") from None


if __name__ == "__main__":
    raise SystemExit(main())
