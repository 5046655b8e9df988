"""Which database Spor uses: SPOR_DATABASE_URL, or the embedded cluster in the data folder."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import asyncpg
import structlog

from lrs.data_folder_lock import DataFolderInUse, lock_data_folder
from lrs.settings import Settings
from lrs.store.embedded import EmbeddedPostgres

log = structlog.get_logger("spor.database")

DATABASE = "spor"


async def _ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')  # name is the constant DATABASE
    finally:
        await conn.close()


def resolve_database(settings: Settings, *, create: bool = True) -> tuple[Settings, EmbeddedPostgres | None]:
    """Use SPOR_DATABASE_URL, or start the embedded cluster in the data folder. ``create``: may
    make the cluster when the folder holds none (`spor serve`); other commands exit naming the
    folder instead, so a mistyped SPOR_DATA_DIR makes no empty database of its own."""
    if settings.database_url:
        return settings, None
    memory = {"shared_buffers": settings.pg_shared_buffers} if settings.pg_shared_buffers else {}
    embedded = EmbeddedPostgres(settings.data_dir, pg_bin=Path(settings.pg_bin) if settings.pg_bin else None,
                                settings=memory)
    if not create:
        require_cluster(settings)
    admin_url = embedded.start()
    asyncio.run(_ensure_database(admin_url, DATABASE))
    return settings.with_(database_url=embedded.url(DATABASE)), embedded


def require_cluster(settings: Settings) -> None:
    """Exit naming the data folder when it holds no embedded cluster (and no SPOR_DATABASE_URL is
    set): for commands that must not make one (a mistyped SPOR_DATA_DIR made an empty database)."""
    if not settings.database_url and not EmbeddedPostgres(settings.data_dir).initialised():
        raise SystemExit(f"no Spor database in {settings.data_dir} (SPOR_DATA_DIR, or SPOR_DATABASE_URL for a "
                         "database of your own): `spor serve` makes it on its first start")


class ClusterWatch(threading.Thread):
    """Starts the embedded cluster again when its postmaster has died (killed, out of memory):
    run by ``spor serve``, which holds the data folder. Requests are answered 503 meanwhile; the
    cluster comes back on the port it had, so the server's pool and the projection workers
    connect again by themselves (they stayed on 503 and retried the old port for good: a crash
    audit). A start that fails (a backend of the dead postmaster still holding its shared
    memory) is tried again every ``interval`` seconds."""

    def __init__(self, embedded: EmbeddedPostgres, interval: float = 2.0) -> None:
        super().__init__(name="spor-cluster-watch", daemon=True)
        self.embedded = embedded
        self.interval = interval
        self.stopping = threading.Event()
        self.restarts = 0

    def run(self) -> None:
        failing = False
        while not self.stopping.wait(self.interval):
            if self.embedded.alive():
                failing = False
                continue
            if not failing:
                log.error("embedded_postgres_down", data_dir=str(self.embedded.data_dir))
            if not self.embedded.initialised():
                # its folder gone (a volume unmounted): never a new, empty cluster in its place,
                # with a new password the folder's old one would then lack (a review)
                if not failing:
                    log.error("embedded_postgres_missing", cluster_dir=str(self.embedded.cluster_dir))
                failing = True
                continue
            try:
                self.embedded.start()
            except Exception as exc:  # logged, and tried again
                failing = True
                log.error("embedded_postgres_restart_failed", error=str(exc)[:500])
                continue
            failing = False
            self.restarts += 1
            log.warning("embedded_postgres_restarted", port=self.embedded.port)

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=120)


async def cluster_in_use(admin_url: str) -> bool:
    """Whether any other client is connected to the cluster."""
    conn = await asyncpg.connect(admin_url)
    try:
        others: int = await conn.fetchval("SELECT count(*) FROM pg_stat_activity "
                                          "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        return others > 0
    finally:
        await conn.close()


def stop_if_unused(embedded: EmbeddedPostgres | None, *, holds_folder: bool) -> None:
    """At the end of a command: stop the embedded cluster if this process is the last to use it,
    whoever started it. Any process may start the cluster (`spor serve`, `spor projections run`,
    an administration command), and others join it; the one that started it stopped it on exit,
    under the others (a `spor projections run` that started it stopped it under a server started
    after). Now the last one out stops it: when no other client is connected, and no `spor
    serve` holds the folder (``holds_folder``: this process does; otherwise its lock is taken
    for the check and the stop, so a server starting meanwhile waits for it). A cluster left
    running with no one connected (two processes ending at once) is stopped by the next."""
    if embedded is None or not (embedded.cluster_dir / "postmaster.pid").exists():
        return
    held = None
    if not holds_folder:
        try:
            held = lock_data_folder(embedded.data_dir, holder="a command stopping the cluster")
        except DataFolderInUse:
            return  # a server runs on it: the cluster is the server's to stop
    try:
        try:
            in_use = asyncio.run(cluster_in_use(embedded.url()))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # not answering (stopped by someone else, or starting): leave it alone
            log.info("embedded_cluster_not_checked", error=str(exc)[:200])
            return
        if in_use:
            log.info("embedded_cluster_left_running", reason="other clients are connected")
            return
        embedded.joined = False
        embedded.stop()
    finally:
        if held is not None:
            os.close(held)
