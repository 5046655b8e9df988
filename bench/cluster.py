"""What the projection and compliance benchmarks share: a fresh durable cluster with an empty
``bench`` database, and percentiles."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from lrs.store.embedded import EmbeddedPostgres


def _folder(prefix: str) -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # the cluster may run as another user when started by root
    return base


@contextlib.asynccontextmanager
async def bench_database(prefix: str) -> AsyncIterator[str]:
    """A durable embedded PostgreSQL in a temp folder with an empty database ``bench``; its
    URL. The cluster and folder are gone afterwards."""
    base = _folder(prefix)
    pg = EmbeddedPostgres(base, durable=True)
    admin = pg.start()
    try:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute("CREATE DATABASE bench")
        finally:
            await conn.close()
        yield pg.url("bench")
    finally:
        pg.stop("fast")
        shutil.rmtree(base, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of the values, nearest rank; NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
