"""Structured logging: structlog, JSON lines in production, one event name per line, with the
request id bound through contextvars so every line of a request carries it."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog


def _json_bytes(obj: Any, **kw: Any) -> bytes:
    return orjson.dumps(obj, default=kw.get("default"), option=orjson.OPT_NON_STR_KEYS)


def _json_text(obj: Any, **kw: Any) -> str:
    return _json_bytes(obj, **kw).decode()


REQUEST_SCOPE = "request_scope"  # bound beside request_id: a RequestScope, open while it is served


class RequestScope:
    """Whether the request a log context belongs to is still being served."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


def _open_request_only(logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Keep ``request_id`` only on lines logged while that request is served.

    A task started while a request is served (asyncpg's pool restoring its connections, a
    store's append writer, the health probe) inherits the request's context, and with it its
    id: every line it logged, seconds or hours later, named a request long finished (an
    operations audit). Lines logged after the request ended carry no request id now; those of
    the work it started and waits for (a streamed body, an export's closing task, a thread)
    still do."""
    scope = event.pop(REQUEST_SCOPE, None)
    if scope is not None and not scope.open:
        event.pop("request_id", None)
    return event


def configure(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog and the standard library root logger once, at process start."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    console = log_format.lower() == "console"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer(serializer=_json_text)
    )
    # Spor's own lines (one per request and more) are serialised by orjson straight to bytes:
    # the standard library's json encoder and print() were ~5% of a request's CPU.
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _open_request_only,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer if console else structlog.processors.JSONRenderer(serializer=_json_bytes),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=(structlog.PrintLoggerFactory(file=sys.stderr) if console
                        else structlog.BytesLoggerFactory(file=sys.stderr.buffer)),
        cache_logger_on_first_use=True,
    )
    # Lines from the standard library's logging (uvicorn, asyncpg) go through the same renderer,
    # so every line on stderr is one JSON object with an event name.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        # (format_exc_info: a record's exception becomes its traceback text, not a tuple repr)
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            _open_request_only,
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's own access log is replaced by Spor's structured request lines.
    logging.getLogger("uvicorn.access").disabled = True


log = structlog.get_logger("spor")
