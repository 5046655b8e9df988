"""Log lines on stderr: one JSON object each, with an exception as its traceback text, whether
the line comes from Spor's structlog loggers or the standard library's (uvicorn, asyncpg)."""

from __future__ import annotations

import subprocess
import sys

import orjson

_SCRIPT = """
import logging, structlog
from lrs import logs
logs.configure("json", "info")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("uvicorn.error").exception("stdlib_failed")
    structlog.get_logger("spor").exception("spor_failed")
"""


def test_exceptions_are_logged_as_traceback_text_from_both_kinds_of_logger() -> None:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, timeout=60, check=True)
    lines = [orjson.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert [e["event"] for e in lines] == ["stdlib_failed", "spor_failed"]
    for e in lines:
        assert e["level"] == "error"
        assert "exc_info" not in e, e
        assert e["exception"].startswith("Traceback (most recent call last):")
        assert "ZeroDivisionError: division by zero" in e["exception"]
    assert lines[0]["logger"] == "uvicorn.error"


_TASKS = """
import asyncio, logging, structlog
from lrs import logs
logs.configure("json", "info")

async def background() -> None:
    await asyncio.sleep(0.01)
    logging.getLogger("asyncpg.pool").warning("pool_retry")
    structlog.get_logger("spor").info("writer_line")

async def child() -> None:
    structlog.get_logger("spor").info("child_line")

async def request() -> asyncio.Task[None]:
    scope = logs.RequestScope()
    structlog.contextvars.bind_contextvars(request_id="r1", request_scope=scope)
    structlog.get_logger("spor").info("request_line")
    logging.getLogger("asyncpg.pool").warning("pool_in_request")
    await asyncio.create_task(child())  # work the request starts and waits for
    task = asyncio.create_task(background())  # inherits the request's context, outlives it
    scope.open = False  # the request is answered
    return task

async def main() -> None:
    task = await asyncio.create_task(request())
    await task

asyncio.run(main())
"""


def test_a_task_started_during_a_request_does_not_log_the_request_s_id() -> None:
    """An operations audit: asyncpg's pool, restoring connections in a task started during a
    request, logged that long-finished request's id on every retry."""
    proc = subprocess.run([sys.executable, "-c", _TASKS], capture_output=True, timeout=60, check=True)
    lines = {e["event"]: e for e in (orjson.loads(line) for line in proc.stderr.splitlines() if line.strip())}
    assert lines["request_line"]["request_id"] == lines["pool_in_request"]["request_id"] == "r1"
    assert lines["child_line"]["request_id"] == "r1"
    assert "request_id" not in lines["pool_retry"] and "request_id" not in lines["writer_line"]
    assert all("request_scope" not in e for e in lines.values())
