"""The ``spor`` command line: serve, and the store/credential administration commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

from lrs import admin
from lrs.data_folder_lock import SERVE_WAITS_SECONDS, DataFolderInUse, lock_data_folder
from lrs.database import ClusterWatch, resolve_database, stop_if_unused
from lrs.metrics_shared import MetricsFolderError, prepare_folder, temporary_folder
from lrs.ops import bootstrap
from lrs.settings import Settings
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import set_json_codecs
from lrs.store.embedded import EmbeddedPostgresError
from lrs.store.migrate import UnsuitableDatabase, advise_rebuild, migrate
from projections import cli as projections_cli

_public_url = admin.public_url


# Where a first start not on a terminal leaves the first credential's secret (in the data folder).
FIRST_CREDENTIAL_FILE = "first-credential"
_FIRST_START_LOCK = 0x5370_6F72_4669_72  # any fixed number ("SporFir")


async def _prepare(settings: Settings, *, make_credential: Callable[[], bool]) -> tuple[
        bool, bootstrap.NewCredential | None]:
    """Migrate; on a first start (no credential yet), the default store and, when
    ``make_credential()`` says so (asked on a first start only), the first credential. Returns
    (first start, the credential made)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await migrate(conn)
        if applied:  # (an upgrade's migrations may take a while; the operator sees which ran)
            print(f"  database migrated: {', '.join(f'{n:04d}' for n in applied)}", flush=True)
            await advise_rebuild(conn, applied, lambda _, advice: print(f"  read models: {advice}", flush=True))
        await set_json_codecs(conn)
        repo = PgCredentialRepository(conn)
        # one first start at a time: two servers starting on an empty database made two first
        # credentials (each written to its own host's file), or one failed on the default
        # store's name (an operations audit); migrate's own lock is released by now
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _FIRST_START_LOCK)
            return await bootstrap.ensure_default(repo, _public_url(settings), credential=make_credential)
    finally:
        await conn.close()


def _secret_folder_ready(folder: Path) -> bool:
    """Whether this process may write the first credential's secret into ``folder`` (made here:
    asked on a first start only)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _show_first_credential(created: bootstrap.NewCredential | None, first: bool, on_terminal: bool,
                           folder: Path | None) -> None:
    """The first credential's key, and its secret: printed to a terminal; otherwise (a service
    manager, a container: what is printed is kept in a system log, and logs never hold secrets,
    docs/security.md) written to a file of the data folder that only this user may read, and
    with no such folder not made at all (a security audit: the secret of a scope-all credential
    went to the journal)."""
    if created is None:
        if first:
            print("  no credential yet: make one with `spor credential create --store default`", flush=True)
        return
    print(f"  store: {created.store}", flush=True)
    print(f"  key:    {created.key}", flush=True)
    if on_terminal or folder is None:  # (not on a terminal, a credential is made only with a folder)
        print(f"  secret: {created.secret}", flush=True)
        print("  (the secret is shown only now; `spor credential create` makes more)", flush=True)
        return
    path = folder / FIRST_CREDENTIAL_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(f"store: {created.store}\nkey: {created.key}\nsecret: {created.secret}\n")
    print(f"  secret: written to {path} (readable by this user alone; delete it once you have it)", flush=True)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


# How long SIGTERM waits for requests in flight (deploy/: service managers wait longer).
GRACEFUL_SHUTDOWN_SECONDS = 30


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lrs.http.protocol import StepWritesProtocol
    from lrs.listen import serve_listening
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
            lock_data_folder(settings.data_dir, SERVE_WAITS_SECONDS, waiting=lambda who: print(
                f"spor serve: waiting for {who} to let go of the data folder {settings.data_dir} "
                f"(up to {SERVE_WAITS_SECONDS:.0f} s)",
                file=sys.stderr, flush=True))
        except DataFolderInUse as exc:
            raise SystemExit(f"spor serve: {exc}") from None
    settings, embedded = resolve_database(settings)
    shared_metrics: str | None = None
    watch = ClusterWatch(embedded) if embedded is not None else None
    try:
        if watch is not None:
            watch.start()
        on_terminal = sys.stdout.isatty()
        folder = None if on_terminal else Path(settings.data_dir)
        first, created = asyncio.run(_prepare(
            settings, make_credential=lambda: folder is None or _secret_folder_ready(folder)))
        if embedded is not None:
            print(f"  embedded database: {embedded.data_dir} (PostgreSQL from {embedded.pg_bin})", flush=True)
        _show_first_credential(created, first, on_terminal, folder)
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
                shared_metrics = str(temporary_folder())
                os.environ["SPOR_METRICS_DIR"] = shared_metrics
            target = "lrs.app:app_from_env"
        else:
            from lrs.app import create_app
            from lrs.memory import tune_gc

            target = create_app(settings)
            tune_gc()
        config = uvicorn.Config(
            target,  # type: ignore[arg-type]
            factory=settings.workers > 1, workers=settings.workers if settings.workers > 1 else None,
            host=settings.host, port=settings.port, log_config=None, access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, loop="auto", http=StepWritesProtocol,
            timeout_keep_alive=settings.keep_alive_seconds,
            # the app sends its own Date, current to the second (lrs.ops.timestamps.http_date_now)
            date_header=False,
        )
        # the line a person (or a script) waits for, once the port takes connections
        serve_listening(config, ready=lambda: print(
            f"Spor is starting. Point your xAPI client at: {_public_url(settings)}/xapi/", flush=True))
    finally:
        if watch is not None:
            watch.stop()  # before the cluster is stopped: not started again under the stop
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
    except (UnsuitableDatabase, EmbeddedPostgresError) as exc:
        # one line, not a traceback (an embedded cluster that cannot start says why: a backend of
        # a killed postmaster still holding its memory, say; a crash audit)
        raise SystemExit(f"spor {args.command}: {exc}") from None


if __name__ == "__main__":
    raise SystemExit(main())
