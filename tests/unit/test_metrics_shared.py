"""The processes of one server share their /metrics figures (lrs/metrics_shared.py): whichever
answers a scrape sums everyone's, so a counter does not jump between processes' totals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from lrs.metrics import Metrics
from lrs.metrics_shared import STALE_SECONDS, SharedMetrics, merge

REQUESTS = "spor_http_requests_total"
LATENCY = "spor_http_request_seconds"


def _figures(requests: int, latency: float, pool: int, waits: int, lag: float | None = None) -> Metrics:
    m = Metrics()
    m.describe(REQUESTS, "counter", "HTTP requests.")
    m.describe(LATENCY, "histogram", "latency")
    m.describe("spor_db_pool_size", "gauge", "Open database connections.")
    m.describe("spor_write_buffer_waits_total", "counter", "waits")
    m.describe("spor_projection_lag_events", "gauge", "lag")
    m.inc(REQUESTS, requests, method="POST", path="/xapi/statements", status="200")
    m.observe(LATENCY, latency, method="POST", path="/xapi/statements")
    m.gauge("spor_db_pool_size", lambda: pool)
    m.gauge("spor_write_buffer_waits_total", lambda: waits)
    if lag is not None:
        m.set("spor_projection_lag_events", lag, projection="transcript", store="1")
    return m


def _snap(m: Metrics, pid: int, at: float) -> dict[str, object]:
    # through JSON, as the files carry it
    return orjson.loads(orjson.dumps({"pid": pid, "at": at, **m.snapshot()}))  # type: ignore[no-any-return]


def _line(text: str, prefix: str) -> float:
    values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix + " ")]
    assert len(values) == 1, (prefix, text)
    return values[0]


def test_counters_and_histograms_sum_over_every_process_gauges_over_the_live_ones() -> None:
    now = time.time()
    snaps = [_snap(_figures(3, 0.002, pool=5, waits=1, lag=7), pid=101, at=now),
             _snap(_figures(4, 0.2, pool=6, waits=2, lag=9), pid=102, at=now - 0.5),
             # a process that has ended: its counts stay in the totals, its gauges do not
             _snap(_figures(10, 0.002, pool=20, waits=4, lag=1000), pid=103, at=now - 60)]
    text = merge(snaps, live={101, 102}).render()
    post = 'method="POST",path="/xapi/statements"'
    assert _line(text, f'{REQUESTS}{{{post},status="200"}}') == 17
    assert _line(text, f'{LATENCY}_count{{{post}}}') == 3
    assert _line(text, f'{LATENCY}_bucket{{{post},le="0.0025"}}') == 2
    assert _line(text, f'{LATENCY}_bucket{{{post},le="0.25"}}') == 3
    assert _line(text, f'{LATENCY}_sum{{{post}}}') == pytest.approx(0.204)
    assert _line(text, "spor_db_pool_size") == 11
    # a gauge described as a counter is a total: summed like one
    assert _line(text, "spor_write_buffer_waits_total") == 7
    # sampled from the database by each process: the freshest live value, not a sum
    assert _line(text, 'spor_projection_lag_events{projection="transcript",store="1"}') == 7
    assert _line(text, "spor_server_processes") == 2
    assert "# TYPE spor_http_requests_total counter" in text


def test_a_process_answers_for_the_others_from_their_files(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    dead_pid = int(ended.stdout)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        SharedMetrics(_figures(4, 0.01, pool=6, waits=0), tmp_path, pid=sleeper.pid).write()
        SharedMetrics(_figures(10, 0.01, pool=20, waits=0), tmp_path, pid=dead_pid).write()
        stale = _figures(100, 0.01, pool=50, waits=0)
        SharedMetrics(stale, tmp_path, pid=os.getppid()).write()
        # a live pid whose file stopped being written: not live (its counts still count)
        path = tmp_path / f"{os.getppid()}.json"
        snap = orjson.loads(path.read_bytes())
        snap["at"] -= STALE_SECONDS + 1
        path.write_bytes(orjson.dumps(snap))
        (tmp_path / "999999.json").write_bytes(b'{"pid": 999999, "at": ')  # torn: skipped
        me = SharedMetrics(_figures(3, 0.01, pool=5, waits=0), tmp_path)
        text = me.render()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _line(text, f'{REQUESTS}{{method="POST",path="/xapi/statements",status="200"}}') == 117
    assert _line(text, "spor_db_pool_size") == 11
    assert _line(text, "spor_server_processes") == 2
    # its own file is written only by its own loop; the render read the others
    assert not (tmp_path / f"{os.getpid()}.json").exists()


def test_the_file_is_replaced_whole_and_holds_the_figures_of_now(tmp_path: Path) -> None:
    m = _figures(1, 0.01, pool=2, waits=0)
    shared = SharedMetrics(m, tmp_path)
    shared.write()
    m.inc(REQUESTS, 5, method="POST", path="/xapi/statements", status="200")
    shared.write()
    assert [p.name for p in tmp_path.iterdir()] == [f"{os.getpid()}.json"]  # no temporary file left
    snap = orjson.loads(shared.path.read_bytes())
    assert snap["pid"] == os.getpid()
    assert [c[2] for c in snap["counters"]] == [6]


async def test_the_loop_writes_once_more_when_stopped(tmp_path: Path) -> None:
    import asyncio

    m = _figures(1, 0.01, pool=2, waits=0)
    shared = SharedMetrics(m, tmp_path)
    task = asyncio.create_task(shared.run())
    await asyncio.sleep(0.05)
    m.inc(REQUESTS, 41, method="POST", path="/xapi/statements", status="200")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [c[2] for c in orjson.loads(shared.path.read_bytes())["counters"]] == [42]
