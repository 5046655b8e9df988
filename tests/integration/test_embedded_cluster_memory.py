"""A durable embedded cluster starts with the machine-sized memory, or SPOR_PG_SHARED_BUFFERS;
a throwaway one keeps 128 MB."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from lrs.database import resolve_database
from lrs.settings import Settings
from lrs.store.embedded import EmbeddedPostgres, EmbeddedPostgresError, machine_memory, memory_settings


@pytest.fixture
def folder() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="spor-memory-pg-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _show(url: str, *names: str) -> list[str]:
    async def run() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            return [str(await conn.fetchval(f"SHOW {name}")) for name in names]
        finally:
            await conn.close()
    return asyncio.run(run())


def test_a_durable_cluster_takes_a_quarter_of_memory(folder: Path) -> None:
    cluster = EmbeddedPostgres(folder / "data")
    try:
        url = cluster.start()
        expected = memory_settings(machine_memory())
        assert _show(url, "shared_buffers", "effective_cache_size") == [
            expected["shared_buffers"], expected["effective_cache_size"]]
        # read-ahead for the bitmap heap scans of statement queries (0024), where the platform
        # has posix_fadvise; PostgreSQL's default elsewhere
        assert _show(url, "effective_io_concurrency") == ["64" if sys.platform.startswith("linux") else "0"]
    finally:
        cluster.stop("immediate")


def test_spor_pg_shared_buffers_overrides_it(folder: Path) -> None:
    settings = Settings.from_env({"SPOR_DATA_DIR": str(folder / "data"), "SPOR_PG_SHARED_BUFFERS": "160MB"})
    settings, cluster = resolve_database(settings)
    assert cluster is not None and settings.database_url
    try:
        assert _show(settings.database_url, "shared_buffers") == ["160MB"]
    finally:
        cluster.stop("immediate")


def test_a_throwaway_cluster_keeps_128mb(folder: Path) -> None:
    cluster = EmbeddedPostgres(folder / "data", durable=False)
    try:
        assert _show(cluster.start(), "shared_buffers", "fsync") == ["128MB", "off"]
    finally:
        cluster.stop("immediate")


def test_a_host_that_refuses_the_sized_segment_gets_postgresql_default(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrs.store import embedded

    sized = embedded.memory_settings

    # more than this machine has: mmap of the main segment fails, as on a host that does not
    # overcommit memory
    monkeypatch.setattr(embedded, "memory_settings",
                        lambda total: {"shared_buffers": "4TB"} if total else sized(total))
    cluster = EmbeddedPostgres(folder / "data")
    try:
        assert _show(cluster.start(), "shared_buffers") == ["128MB"]
    finally:
        cluster.stop("immediate")


def test_an_explicit_size_that_cannot_be_had_is_an_error_not_a_fallback(folder: Path) -> None:
    cluster = EmbeddedPostgres(folder / "data", settings={"shared_buffers": "4TB"})
    with pytest.raises(EmbeddedPostgresError, match="shared memory"):
        cluster.start()
