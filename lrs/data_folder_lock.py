"""One ``spor serve`` per embedded data folder.

A second server on the folder joined the first one's PostgreSQL, and was left answering 503 to
everything when the first stopped it on exit; two started at once raced to create or start the
cluster and the loser ended in a traceback (an operations audit). ``spor serve`` now holds an
exclusive lock on ``serve.lock`` in the folder for as long as it runs; the kernel drops it when
the process ends, however it ends, so a crash leaves no stale lock. An administration command
(``spor credential ...``) joins a running server's cluster; when none runs it takes the lock
itself for as long as it starts, uses and stops the cluster, so a server starting meanwhile waits
for it (``spor serve`` waits up to ``SERVE_WAITS_SECONDS``) instead of joining a cluster about
to be stopped under it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

LOCK_FILE = "serve.lock"
SERVE_WAITS_SECONDS = 30.0

__all__ = ["LOCK_FILE", "SERVE_WAITS_SECONDS", "DataFolderInUse", "lock_data_folder"]


class DataFolderInUse(RuntimeError):
    """Another ``spor serve`` runs on the folder (the message names its pid), or its lock file
    cannot be opened (another user's, say)."""


_ROLES = {"serve": "spor serve", "": "a spor process of an earlier release"}


def lock_data_folder(data_dir: Path, wait_seconds: float = 0.0, *, holder: str = "serve",
                     waiting: Callable[[str], None] | None = None) -> int:
    """Take the folder's serve lock and write this process's pid and ``holder`` (``serve``, or
    what the process is, e.g. "an administration command") in it; the open descriptor, which the
    caller keeps open while it serves (closing it, or exiting, releases the lock).

    ``wait_seconds``: how long to wait for the holder to let go: a command that started the
    cluster holds the lock until it has stopped it again, a server until it has finished its
    requests and stopped the cluster (a restart that does not wait for the old process). A
    second server waited 30 s in silence before it said so: ``waiting`` is told at once, and
    once, whom this waits for.

    Raises:
        DataFolderInUse: another process holds the lock (a server, or anyone after ``wait_seconds``).
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        lock = data_dir / LOCK_FILE
        raise DataFolderInUse(f"cannot take the lock {lock} of the data folder: {exc.strerror}") from None
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pid, _, role = os.pread(fd, 64, 0).decode("ascii", "replace").strip().partition(" ")
            if time.monotonic() < deadline:
                if waiting is not None and not told:
                    # an earlier release wrote the pid alone
                    waiting(f"process {pid or 'unknown'} ({_ROLES.get(role, role)})")
                    told = True
                time.sleep(0.1)
                continue
            os.close(fd)
            who = f"another spor serve (pid {pid or 'unknown'})" if role in ("", "serve") else f"process {pid} ({role})"
            raise DataFolderInUse(f"the data folder {data_dir} is in use by {who}; stop it first, or give this one "
                                  "its own SPOR_DATA_DIR") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
    return fd
