"""/metrics for a server of several processes (``spor serve --workers N``).

Each process keeps its own figures (lrs.metrics), and a scrape reaches whichever process the
kernel hands the connection to. Answered from that process alone, a counter would jump between
the processes' totals from one scrape to the next, which Prometheus reads as resets. So each
process writes its figures to a file in a folder the processes share, every second and when it
stops, and the process that answers a scrape sums its own live figures with the others' files:

- counters and histograms: summed over every process that has written, stopped ones included,
  so a total never goes down when a process ends or is replaced;
- gauges read from a process (pool size, write buffer): summed over the live processes; a
  gauge described as a counter (``..._total``) is summed like a counter;
- labelled gauges every process samples from the database (projection lag): the freshest live
  value, not a sum;
- ``spor_server_processes``: how many live processes the answer covers.

A process is live when its file is fresher than ``STALE_SECONDS`` and its pid exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

from lrs.metrics import Metrics

SNAPSHOT_SECONDS = 1.0
STALE_SECONDS = 15.0
PROCESSES = "spor_server_processes"

log = structlog.get_logger("lrs.metrics")

Labels = tuple[tuple[str, str], ...]


def _labels(raw: list[list[str]]) -> Labels:
    return tuple((str(k), str(v)) for k, v in raw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def merge(snapshots: list[dict[str, Any]], live: set[int]) -> Metrics:
    """One registry holding the figures of ``snapshots`` (each with ``pid`` and ``at``), summed
    as the module says; ``live``: the pids whose gauges count."""
    out = Metrics()
    freshest: dict[tuple[str, Labels], tuple[float, float]] = {}
    gauges: dict[str, float] = {}
    for snap in snapshots:
        for name, (kind, text) in snap.get("help", {}).items():
            out.describe(name, kind, text)
    for snap in snapshots:
        is_live = snap["pid"] in live
        for name, labels, value in snap.get("counters", ()):
            out.counters[(name, _labels(labels))] += float(value)
        for name, labels, counts in snap.get("hist", ()):
            key = (name, _labels(labels))
            h = out.hist.setdefault(key, [0.0] * len(counts))
            if len(h) == len(counts):
                for i, c in enumerate(counts):
                    h[i] += float(c)
        for name, value in snap.get("gauges", ()):
            if is_live or out.help.get(name, ("gauge", ""))[0] == "counter":
                gauges[name] = gauges.get(name, 0.0) + float(value)
        if is_live:
            for name, labels, value in snap.get("values", ()):
                key = (name, _labels(labels))
                if key not in freshest or freshest[key][0] < snap["at"]:
                    freshest[key] = (snap["at"], float(value))
    out.values.update({k: v for k, (_, v) in freshest.items()})
    out.describe(PROCESSES, "gauge", "Live server processes whose figures this answer sums.")
    gauges[PROCESSES] = float(len({s["pid"] for s in snapshots if s["pid"] in live}))
    for name, value in gauges.items():
        out.gauge(name, _constant(value))
    return out


def _constant(value: float) -> Callable[[], float]:
    return lambda: value


class SharedMetrics:
    """A process's side of the shared folder: writes its figures, renders everyone's."""

    def __init__(self, metrics: Metrics, folder: Path, pid: int | None = None) -> None:
        self.metrics = metrics
        self.folder = folder
        self.pid = os.getpid() if pid is None else pid

    @property
    def path(self) -> Path:
        return self.folder / f"{self.pid}.json"

    def _own(self) -> dict[str, Any]:
        return {"pid": self.pid, "at": time.time(), **self.metrics.snapshot()}

    def write(self) -> None:
        """Replace this process's file at once (a reader never sees half of it)."""
        tmp = self.folder / f".{self.pid}.tmp"
        tmp.write_bytes(orjson.dumps(self._own()))
        os.replace(tmp, self.path)

    def _others(self) -> list[dict[str, Any]]:
        out = []
        for path in self.folder.glob("*.json"):
            if path.name == self.path.name:
                continue
            try:
                snap = orjson.loads(path.read_bytes())
                int(snap["pid"]), float(snap["at"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("metrics_file_unreadable", file=path.name, error=type(exc).__name__)
                continue
            out.append(snap)
        return out

    def render(self) -> str:
        own = self._own()
        others = self._others()
        now = own["at"]
        live = {self.pid} | {s["pid"] for s in others if now - s["at"] <= STALE_SECONDS and _alive(s["pid"])}
        return merge([own, *others], live).render()

    async def run(self) -> None:
        """Write the figures every ``SNAPSHOT_SECONDS`` until cancelled, and once more then."""
        try:
            while True:
                self._write_logged()
                await asyncio.sleep(SNAPSHOT_SECONDS)
        finally:
            self._write_logged()

    def _write_logged(self) -> None:
        try:
            self.write()
        except OSError as exc:
            log.warning("metrics_file_not_written", folder=str(self.folder), error=type(exc).__name__)
            with contextlib.suppress(OSError):
                (self.folder / f".{self.pid}.tmp").unlink()
