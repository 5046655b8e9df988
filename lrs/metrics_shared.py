"""/metrics for a server of several processes (``spor serve --workers N``).

Each process keeps its own figures (lrs.metrics), and a scrape reaches whichever process the
kernel hands the connection to. Answered from that process alone, a counter would jump between
the processes' totals from one scrape to the next, which Prometheus reads as resets. So each
process writes its figures to a file of its own in a folder the processes share, every second,
whenever it answers a scrape (so what it reported is kept, should it be killed next) and when
it stops; the process that answers a scrape sums its own figures with the others' files:

- counters and histograms: summed over every process that has written, ended ones included, so
  a total does not go down when a process ends or is replaced (a process killed outright loses
  at most the last second of figures that no scrape has reported yet);
- gauges read from a process (pool size, write buffer): summed over the live processes; a gauge
  described as a counter (``..._total``) is summed like a counter;
- labelled gauges every process samples from the database (projection lag): the freshest live
  value, not a sum;
- ``spor_server_processes``: how many live processes the answer covers.

A process's file is named by its pid and a token of its own, so a later process given the same
pid writes a file of its own. A process is live when its file is fresher than ``STALE_SECONDS``
and its pid exists. ``spor serve`` makes the folder (or empties the one ``SPOR_METRICS_DIR``
names) when it starts: the figures start again with the server, as a single process's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

from lrs.metrics import Metrics
from lrs.processes import process_alive

SNAPSHOT_SECONDS = 1.0
STALE_SECONDS = 15.0
PROCESSES = "spor_server_processes"

log = structlog.get_logger("lrs.metrics")

Labels = tuple[tuple[str, str], ...]


class MetricsFolderError(RuntimeError):
    """The shared folder cannot be used (said at start, not found out at the first scrape)."""

    @classmethod
    def of(cls, folder: Path, exc: OSError) -> MetricsFolderError:
        return cls(f"SPOR_METRICS_DIR {folder}: {exc.strerror or exc}")


# a process's file, and its temporary name while written: nothing else in the folder is touched
FILE_NAME = re.compile(r"[0-9]+-[0-9a-f]{12}\.json")
TMP_NAME = re.compile(r"\.[0-9]+-[0-9a-f]{12}\.tmp")
MAX_PID = 2**22  # Linux's highest pid_max


def _ours(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if FILE_NAME.fullmatch(p.name) or TMP_NAME.fullmatch(p.name)]


def prepare_folder(folder: Path) -> None:
    """Make the shared folder, or empty it of an earlier server's files (the supervisor, at
    start); refused when a running server still writes there (one folder per server)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in _ours(folder):
            if old.suffix == ".json":
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    snap = load(old.read_bytes())
                    if now - snap["at"] <= STALE_SECONDS and process_alive(snap["pid"]):
                        raise MetricsFolderError(f"SPOR_METRICS_DIR {folder}: in use by a running server "
                                                 f"(process {snap['pid']}); give each server its own folder")
            old.unlink(missing_ok=True)
        probe = folder / f".probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")  # the processes must be able to write here
        probe.unlink()
    except OSError as exc:
        raise MetricsFolderError.of(folder, exc) from exc


_TEMP_FOLDER = re.compile(r"spor-metrics-([0-9]+)-[^/]+")


def temporary_folder() -> Path:
    """A new shared folder in the system's temporary directory, named for this process (``spor
    serve --workers N`` without SPOR_METRICS_DIR), after removing those of servers that died
    without removing theirs (kill -9 left one behind each time; a crash audit)."""
    tmp = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for old in tmp.iterdir():
            m = _TEMP_FOLDER.fullmatch(old.name)
            if m and old.is_dir() and old.stat().st_uid == os.getuid() and not process_alive(int(m.group(1))):
                shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"spor-metrics-{os.getpid()}-"))


def _number(value: object) -> float | None:
    """A finite number, or None (orjson writes NaN and infinities as null)."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _labels(raw: object) -> Labels:
    if not isinstance(raw, list):
        raise ValueError("labels")
    return tuple((str(k), str(v)) for k, v in raw)


def load(data: bytes) -> dict[str, Any]:
    """A process's file checked and in the shapes ``merge`` takes (a row whose number is not
    finite left out); ValueError/TypeError/KeyError when it is not such a file (written by
    something else, or damaged)."""
    raw = orjson.loads(data)
    at = _number(raw["at"])
    if at is None:
        raise ValueError("at")
    counters = [(str(n), _labels(lb), _number(v)) for n, lb, v in raw.get("counters", ())]
    hist = [(str(n), _labels(lb), [_number(c) for c in h]) for n, lb, h in raw.get("hist", ())]
    values = [(str(n), _labels(lb), _number(v)) for n, lb, v in raw.get("values", ())]
    gauges = [(str(n), _number(v)) for n, v in raw.get("gauges", ())]
    pid = int(raw["pid"])
    if not 0 < pid < MAX_PID:
        raise ValueError("pid")
    return {
        "pid": pid,
        "at": at,
        "help": {str(n): (str(kind), str(text)) for n, (kind, text) in dict(raw.get("help", {})).items()},
        "counters": [row for row in counters if row[2] is not None],
        "hist": [row for row in hist if None not in row[2]],
        "values": [row for row in values if row[2] is not None],
        "gauges": [row for row in gauges if row[1] is not None],
    }


def merge(snapshots: list[dict[str, Any]], live: set[int]) -> Metrics:
    """One registry holding the figures of ``snapshots`` (as ``load`` returns them, each with
    ``pid`` and ``at``), summed as the module says; ``live``: the pids whose gauges count."""
    out = Metrics()
    freshest: dict[tuple[str, Labels], tuple[float, float]] = {}
    gauges: dict[str, float] = {}
    for snap in snapshots:
        for name, (kind, text) in snap["help"].items():
            out.describe(name, kind, text)
    for snap in snapshots:
        is_live = snap["pid"] in live
        for name, labels, value in snap["counters"]:
            out.counters[(name, labels)] += value
        for name, labels, counts in snap["hist"]:
            h = out.hist.setdefault((name, labels), [0.0] * len(counts))
            if len(h) == len(counts):
                for i, c in enumerate(counts):
                    h[i] += c
        for name, value in snap["gauges"]:
            if is_live or out.help.get(name, ("gauge", ""))[0] == "counter":
                gauges[name] = gauges.get(name, 0.0) + value
        if is_live:
            for name, labels, value in snap["values"]:
                key = (name, labels)
                if key not in freshest or freshest[key][0] < snap["at"]:
                    freshest[key] = (snap["at"], value)
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
        self.path = folder / f"{self.pid}-{uuid.uuid4().hex[:12]}.json"
        self._failing = False

    def _own(self) -> dict[str, Any]:
        return {"pid": self.pid, "at": time.time(), **self.metrics.snapshot()}

    def first_write(self) -> None:
        """The process's first file, at start: a folder it cannot write is said now
        (MetricsFolderError), not found out at a scrape."""
        try:
            self.write()
        except OSError as exc:
            raise MetricsFolderError.of(self.folder, exc) from exc

    def write(self, own: dict[str, Any] | None = None) -> None:
        """Replace this process's file at once (a reader never sees half of it); OSError when
        it cannot be written."""
        tmp = self.folder / f".{self.path.stem}.tmp"
        tmp.write_bytes(orjson.dumps(self._own() if own is None else own))
        os.replace(tmp, self.path)

    def _others(self) -> list[dict[str, Any]]:
        out = []
        for path in self.folder.glob("*.json"):
            if path == self.path or not FILE_NAME.fullmatch(path.name):
                continue
            try:
                out.append(load(path.read_bytes()))
            except FileNotFoundError:  # replaced or removed since the listing
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("metrics_file_unreadable", file=path.name, error=type(exc).__name__)
        return out

    def render(self) -> str:
        own = self._own()
        # what this answer reports is kept before it is sent: killed next, the process's file
        # still holds it, so no later answer reports less
        self.write_quietly(own)
        others = self._others()
        now = own["at"]
        live = {self.pid} | {s["pid"] for s in others if now - s["at"] <= STALE_SECONDS and process_alive(s["pid"])}
        return merge([load(orjson.dumps(own)), *others], live).render()

    async def run(self) -> None:
        """Write the figures every ``SNAPSHOT_SECONDS`` until cancelled."""
        while True:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            self.write_quietly()

    def write_quietly(self, own: dict[str, Any] | None = None) -> None:
        """Write; a failure is logged when it starts and when it ends, not every second."""
        try:
            self.write(own)
        except Exception as exc:  # a gauge that raised, a full disk: the server goes on
            if not self._failing:
                log.error("metrics_file_not_written", folder=str(self.folder), error=type(exc).__name__,
                          detail=str(exc)[:200])
            self._failing = True
            return
        if self._failing:
            log.info("metrics_file_written_again", folder=str(self.folder))
        self._failing = False
