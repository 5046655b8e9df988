"""`spor serve` says where to point a client only once its port takes connections: a script that
connects as soon as it reads the line is not refused (it waits until the server accepts)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lrs.store.embedded import EmbeddedPostgres, free_port
from tests.conftest import ROOT, new_database

LINE = b"Point your xAPI client at"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_port_takes_connections_when_the_line_is_printed(pg: EmbeddedPostgres, workers: str) -> None:
    url = asyncio.run(new_database(pg))
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="spor-ready-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOR_")}
    env |= {"SPOR_DATABASE_URL": url, "SPOR_PORT": str(port), "SPOR_HOST": "127.0.0.1", "SPOR_LOG_LEVEL": "warning",
            "SPOR_DATA_DIR": str(data_dir), "SPOR_WORKERS": workers}
    proc = subprocess.Popen([sys.executable, "-m", "lrs.cli", "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 60
        while LINE not in seen:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, seen.decode()
            assert time.monotonic() < deadline, seen.decode()
            seen += line
        # at once: no wait, no retry
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    assert proc.returncode == 0
