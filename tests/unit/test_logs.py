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
