"""The processes of one server share their /metrics figures (lrs/metrics_shared.py): whichever
answers a scrape sums everyone's, so a counter does not jump between processes' totals."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from lrs.app import create_app
from lrs.metrics import Metrics
from lrs.metrics_shared import STALE_SECONDS, MetricsFolderError, SharedMetrics, load, merge, prepare_folder
from lrs.settings import Settings

REQUESTS = "spor_http_requests_total"
LATENCY = "spor_http_request_seconds"
POSTED = f'{REQUESTS}{{method="POST",path="/xapi/statements",status="200"}}'


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
    return load(orjson.dumps({"pid": pid, "at": at, **m.snapshot()}))


def _line(text: str, prefix: str) -> float:
    values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix + " ")]
    assert len(values) == 1, (prefix, text)
    return values[0]


def _ended_pid() -> int:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    return int(ended.stdout)


def test_counters_and_histograms_sum_over_every_process_gauges_over_the_live_ones() -> None:
    now = time.time()
    snaps = [_snap(_figures(3, 0.002, pool=5, waits=1, lag=7), pid=101, at=now),
             _snap(_figures(4, 0.2, pool=6, waits=2, lag=9), pid=102, at=now - 0.5),
             # a process that has ended: its counts stay in the totals, its gauges do not
             _snap(_figures(10, 0.002, pool=20, waits=4, lag=1000), pid=103, at=now - 60)]
    text = merge(snaps, live={101, 102}).render()
    post = 'method="POST",path="/xapi/statements"'
    assert _line(text, POSTED) == 17
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
    assert text.count("# TYPE spor_http_requests_total counter") == 1


def test_a_process_answers_for_the_others_from_their_files(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        SharedMetrics(_figures(4, 0.01, pool=6, waits=0), tmp_path, pid=sleeper.pid).write()
        SharedMetrics(_figures(10, 0.01, pool=20, waits=0), tmp_path, pid=_ended_pid()).write()
        # a live pid whose file stopped being written: not live (its counts still count)
        stale = SharedMetrics(_figures(100, 0.01, pool=50, waits=0), tmp_path, pid=os.getppid())
        snap = stale._own()
        snap["at"] -= STALE_SECONDS + 1
        stale.write(snap)
        me = SharedMetrics(_figures(3, 0.01, pool=5, waits=0), tmp_path)
        text = me.render()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _line(text, POSTED) == 117
    assert _line(text, "spor_db_pool_size") == 11
    assert _line(text, "spor_server_processes") == 2
    # what it answered is in its own file before the answer leaves: killed next, no later
    # answer can report less
    assert [c[2] for c in load(me.path.read_bytes())["counters"]] == [3]


def test_a_later_process_with_the_same_pid_keeps_the_ended_ones_counts(tmp_path: Path) -> None:
    ended = SharedMetrics(_figures(100, 0.01, pool=1, waits=0), tmp_path, pid=4242)
    snap = ended._own()
    snap["at"] -= STALE_SECONDS + 1
    ended.write(snap)
    SharedMetrics(_figures(7, 0.01, pool=1, waits=0), tmp_path, pid=4242).write()  # the pid again
    text = SharedMetrics(_figures(1, 0.01, pool=1, waits=0), tmp_path).render()
    assert len(list(tmp_path.glob("4242-*.json"))) == 2
    assert _line(text, POSTED) == 108


def test_files_that_are_not_a_processes_figures_are_left_out_not_a_500(tmp_path: Path) -> None:
    good = SharedMetrics(_figures(4, 0.01, pool=1, waits=0), tmp_path, pid=_ended_pid())
    good.write()
    (tmp_path / "1-000000000001.json").write_bytes(b'{"pid": 1, "at": ')
    rows = {"pid": 2, "at": time.time(), "counters": [[1, 2, 3, 4]]}
    (tmp_path / "2-000000000002.json").write_bytes(orjson.dumps(rows))
    (tmp_path / "3-000000000003.json").write_bytes(orjson.dumps({"pid": 3, "at": None}))
    (tmp_path / "4-000000000004.json").write_bytes(b"[1, 2]")
    # a number that is not finite (orjson writes NaN as null): that row is left out, not the file
    nan = good._own()
    nan["pid"] = 5
    nan["counters"].append([REQUESTS, [["method", "GET"]], float("nan")])
    (tmp_path / "5-000000000005.json").write_bytes(orjson.dumps(nan))
    text = SharedMetrics(_figures(1, 0.01, pool=1, waits=0), tmp_path).render()
    assert _line(text, POSTED) == 1 + 4 + 4
    assert "nan" not in text.lower()


def test_the_file_is_replaced_whole_and_holds_the_figures_of_now(tmp_path: Path) -> None:
    m = _figures(1, 0.01, pool=2, waits=0)
    shared = SharedMetrics(m, tmp_path)
    shared.write()
    m.inc(REQUESTS, 5, method="POST", path="/xapi/statements", status="200")
    shared.write()
    assert [p.name for p in tmp_path.iterdir()] == [shared.path.name]  # no temporary file left
    snap = load(shared.path.read_bytes())
    assert snap["pid"] == os.getpid()
    assert [c[2] for c in snap["counters"]] == [6]


async def test_the_loop_writes_every_second_and_a_failure_does_not_end_it(tmp_path: Path) -> None:
    m = _figures(1, 0.01, pool=2, waits=0)
    broken = True

    def pool_size() -> float:
        if broken:
            raise RuntimeError("pool gone")
        return 2

    m.gauge("spor_db_pool_size", pool_size)
    shared = SharedMetrics(m, tmp_path)
    task = asyncio.create_task(shared.run())
    try:
        await asyncio.sleep(1.2)
        assert not task.done() and not shared.path.exists()
        broken = False
        m.inc(REQUESTS, 41, method="POST", path="/xapi/statements", status="200")
        for _ in range(100):  # the next write is due within 1 s; up to 5 on a loaded machine
            if shared.path.exists():
                break
            await asyncio.sleep(0.05)
        assert [c[2] for c in load(shared.path.read_bytes())["counters"]] == [42]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_serve_makes_the_folder_or_empties_an_earlier_runs_and_says_when_it_cannot(tmp_path: Path) -> None:
    folder = tmp_path / "made" / "here"
    prepare_folder(folder)
    assert folder.is_dir()
    SharedMetrics(_figures(9, 0.01, pool=1, waits=0), folder, pid=_ended_pid()).write()
    prepare_folder(folder)  # a new server: its figures start again
    assert list(folder.iterdir()) == []
    (tmp_path / "a-file").write_text("")
    with pytest.raises(MetricsFolderError, match="SPOR_METRICS_DIR"):
        prepare_folder(tmp_path / "a-file" / "metrics")


async def test_a_server_whose_folder_cannot_be_written_does_not_start(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    app = create_app(Settings.from_env().with_(database_url=db_url, metrics_dir=str(tmp_path / "a-file" / "m")))
    with pytest.raises(MetricsFolderError, match="SPOR_METRICS_DIR"):
        async with app.router.lifespan_context(app):
            pass


def test_serve_touches_only_its_own_files_and_refuses_a_folder_a_running_server_writes(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{}")  # a folder named by mistake keeps what it holds
    SharedMetrics(_figures(9, 0.01, pool=1, waits=0), tmp_path, pid=_ended_pid()).write()
    prepare_folder(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
    SharedMetrics(_figures(9, 0.01, pool=1, waits=0), tmp_path).write()  # this process: running, fresh
    with pytest.raises(MetricsFolderError, match="in use by a running server"):
        prepare_folder(tmp_path)


@pytest.mark.parametrize("pid", ["0", "-1", str(2**40), str(2**70)])
def test_a_file_with_an_impossible_pid_is_left_out(tmp_path: Path, pid: str) -> None:
    snap = SharedMetrics(_figures(5, 0.01, pool=1, waits=0), tmp_path)._own()
    snap["pid"] = 424242
    (tmp_path / "7-0123456789ab.json").write_bytes(orjson.dumps(snap).replace(b"424242", pid.encode()))
    text = SharedMetrics(_figures(1, 0.01, pool=1, waits=0), tmp_path).render()
    assert _line(text, POSTED) == 1
    assert _line(text, "spor_server_processes") == 1
