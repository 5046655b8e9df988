"""Settings: one frozen object, built once from ``SPOR_*`` environment variables and passed in.

Nothing below the CLI reads the environment; code receives a ``Settings``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

# Settings that are counts, sizes or times of which there must be some, and those that may be 0
# (a rate limit of 0 is none; a pool may keep no idle connection): a setting out of its range
# stops every command with one line naming it (a review: SPOR_QUERY_LIMIT_MAX=0 made every
# query a 500, SPOR_MAX_BODY_BYTES=-1 every write a 413).
_AT_LEAST_ONE = ("pool_max_size", "max_body_bytes", "max_batch_statements", "max_attachment_bytes",
                 "max_document_bytes", "query_limit_max", "query_statement_bytes_max", "query_attachment_bytes_max",
                 "suppression_threshold", "db_connect_timeout", "max_request_head_bytes", "request_head_seconds",
                 "request_body_idle_seconds", "write_buffer_bytes", "keep_alive_seconds")
_NOT_NEGATIVE = ("pool_min_size", "rate_limit_per_second", "rate_limit_burst", "wrong_secrets_burst",
                 "wrong_secrets_per_minute", "db_command_timeout")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def default_data_dir() -> Path:
    """Where the embedded database lives when ``SPOR_DATA_DIR`` is not set.

    As root this is ``/var/lib/spor`` (the unprivileged PostgreSQL account must be able to
    reach it, which it cannot under ``/root``); otherwise ``$XDG_DATA_HOME/spor`` or
    ``~/.local/share/spor``.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/spor")
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) / "spor" if xdg else Path.home() / ".local" / "share" / "spor"


@dataclass(frozen=True)
class Settings:
    """Every knob of a Spor process. Each field maps to ``SPOR_<FIELD_NAME_UPPERCASE>``."""

    database_url: str | None = None
    data_dir: Path = Path()
    pg_bin: str | None = None
    # shared_buffers of the embedded cluster, e.g. 2GB; '' = a quarter of the machine's memory
    # between 128MB and 8GB (lrs/store/embedded.py memory_settings).
    pg_shared_buffers: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # A folder where the processes of one server share their /metrics figures
    # (lrs/metrics_shared.py); `spor serve --workers N` makes a temporary one when this is unset.
    metrics_dir: str = ""
    public_url: str | None = None
    # The X-Experience-API-Version sent on responses to requests that named no supported
    # version (those get 400 anyway): 2.0.0 or 1.0.3.
    xapi_default_version: str = "2.0.0"
    log_format: str = "json"  # json | console
    log_level: str = "info"
    pool_min_size: int = 2
    pool_max_size: int = 20
    # Seconds a new database connection may take before the request gets 503 (a database host
    # that stopped answering would otherwise hold requests for asyncpg's 60).
    db_connect_timeout: int = 10
    # Seconds one database command may take before its request gets 503 (0: no limit): a
    # database that hangs (a stalled disk, a stopped process) held requests for as long as it
    # did, since TCP keepalive sees nothing wrong with a host that still acknowledges (a crash audit).
    db_command_timeout: int = 120
    # Limits (see docs/configuration.md); 413 when exceeded.
    max_body_bytes: int = 64 * 1024 * 1024
    max_batch_statements: int = 5000
    max_attachment_bytes: int = 32 * 1024 * 1024
    max_document_bytes: int = 16 * 1024 * 1024
    # A request's line and headers at most this many bytes (431 beyond), all of it within this
    # many seconds of its first byte, and a body that never stops arriving for longer than
    # this (lrs/http/protocol.py): a connection past them is closed.
    max_request_head_bytes: int = 64 * 1024
    request_head_seconds: int = 30
    request_body_idle_seconds: int = 60
    # Seconds an idle kept-alive connection stays open for the client's next request. Longer
    # than a reverse proxy keeps its connections to the server (nginx and load balancers: 60):
    # a proxy that sends a request on a connection the server is closing at that moment answers
    # 502, and does not send a POST again. uvicorn's own default, 5, lost requests that way.
    keep_alive_seconds: int = 75
    # Statement bodies one process works on at once (lrs/http/admission.py): bounds its memory.
    write_buffer_bytes: int = 4 * 1024 * 1024
    # limit=0 means "the most the server allows" (Communication 2.1.3): pages of ~150 KB; ask
    # for more with a larger SPOR_QUERY_LIMIT_MAX when exporting.
    query_limit_max: int = 100
    # A query page with attachments=true carries at most this many bytes of attachment data
    # (one statement's always, however large): a page ends early, its "more" leading on, rather
    # than a response holding a hundred statements' files in memory at once.
    query_attachment_bytes_max: int = 64 * 1024 * 1024
    # A query page carries at most this many bytes of statements as stored (one statement
    # always, however large): a page of a hundred statements of 60 MB each would otherwise be
    # read and built in memory at once. An ordinary page of 100 is ~200 KB.
    query_statement_bytes_max: int = 16 * 1024 * 1024
    # Requests per second per credential in each process (0 = no limit), and the burst.
    rate_limit_per_second: int = 2000
    rate_limit_burst: int = 4000
    # Secret checks per credential key and client address that may find the secret wrong, per
    # process: a burst, then this many per minute (lrs/ops/auth.py); beyond that, 429 without a
    # check. A rate of 0: no limit.
    wrong_secrets_burst: int = 10
    wrong_secrets_per_minute: int = 30
    # The analyst API (docs/projections.md): aggregated groups smaller than this show no counts;
    # "expiring" means within this many days (a request may ask for another window).
    suppression_threshold: int = 5
    expiring_window_days: int = 30
    # The database role the service acts as (row-level security applies to it; docs/security.md).
    # Always one: an empty SPOR_DB_ROLE, as every empty variable, leaves the default.
    db_role: str = "spor_app"
    # Single sign-on: every SPOR_OIDC_* variable, keyed without the prefix (oidc_issuer, ...);
    # see docs/security-oidc.md. Empty: sign-on is off.
    oidc: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``SPOR_*`` variables (``env`` defaults to ``os.environ``)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {"data_dir": default_data_dir()}
        for f in fields(cls):
            if f.name == "oidc":
                continue
            raw = env.get(f"SPOR_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            default = getattr(cls, f.name, None)
            if isinstance(default, bool):
                values[f.name] = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                try:
                    values[f.name] = int(raw)
                except ValueError as exc:
                    raise ValueError(f"SPOR_{f.name.upper()} must be an integer, got {raw!r}") from exc
            elif f.name == "data_dir":
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        values["oidc"] = tuple(sorted((k.lower().removeprefix("spor_"), v) for k, v in env.items()
                                      if k.startswith("SPOR_OIDC_") and v))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.xapi_default_version not in ("1.0.3", "2.0.0"):
            raise ValueError(f"SPOR_XAPI_DEFAULT_VERSION must be 1.0.3 or 2.0.0, got {self.xapi_default_version!r}")
        if self.pg_shared_buffers and not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB|TB)", self.pg_shared_buffers):
            raise ValueError(f"SPOR_PG_SHARED_BUFFERS must be a size such as 512MB or 4GB, "
                             f"got {self.pg_shared_buffers!r}")
        if not 1 <= self.port <= 65535:
            # (a larger one was taken modulo 65536: the server listened elsewhere than it said)
            raise ValueError(f"SPOR_PORT (--port) must be between 1 and 65535, got {self.port}")
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ValueError(f"SPOR_{name.upper()} must be at least 1, got {getattr(self, name)}")
        for name in _NOT_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"SPOR_{name.upper()} must not be negative, got {getattr(self, name)}")
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(f"SPOR_POOL_MIN_SIZE ({self.pool_min_size}) must not exceed SPOR_POOL_MAX_SIZE "
                             f"({self.pool_max_size})")
        if self.log_format.lower() not in ("json", "console"):
            raise ValueError(f"SPOR_LOG_FORMAT must be json or console, got {self.log_format!r}")
        if not isinstance(logging.getLevelName(self.log_level.upper()), int):  # (warn, fatal, notset too)
            raise ValueError(f"SPOR_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {self.log_level!r}")
        if self.workers < 1:
            raise ValueError(f"SPOR_WORKERS (--workers) must be at least 1, got {self.workers}")
        if not 0 <= self.expiring_window_days <= 3650:
            raise ValueError(f"SPOR_EXPIRING_WINDOW_DAYS must be between 0 and 3650, got {self.expiring_window_days}")

    @classmethod
    def for_command(cls, command: str, **overrides: object) -> Settings:
        """``from_env`` for a command line: a setting out of range ends the command with a
        one-line message naming it (exit status 1), not a traceback."""
        try:
            return cls.from_env(None, **overrides)
        except ValueError as exc:
            raise SystemExit(f"{command}: {exc}") from None

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]
