"""One ``spor serve`` per embedded data folder.

A second server on the folder joined the first one's PostgreSQL, and was left answering 503 to
everything when the first stopped it on exit; two started at once raced to create or start the
cluster and the loser ended in a traceback (an operations audit). ``spor serve`` now holds an
exclusive lock on ``serve.lock`` in the folder for as long as it runs; the kernel drops it when
the process ends, however it ends, so a crash leaves no stale lock. The administration commands
(``spor credential ...``) take no lock: they join a running server's cluster on purpose.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "serve.lock"

__all__ = ["LOCK_FILE", "DataFolderInUse", "lock_data_folder"]


class DataFolderInUse(RuntimeError):
    """Another ``spor serve`` runs on the folder (the message names its pid), or its lock file
    cannot be opened (another user's, say)."""


def lock_data_folder(data_dir: Path) -> int:
    """Take the folder's serve lock and write this process's pid in it; the open descriptor,
    which the caller keeps open while it serves (closing it, or exiting, releases the lock).

    Raises:
        DataFolderInUse: another process holds the lock.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        lock = data_dir / LOCK_FILE
        raise DataFolderInUse(f"cannot take the lock {lock} of the data folder: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataFolderInUse(
            f"the data folder {data_dir} is in use by another spor serve (pid {holder}); stop it first, "
            "or give this one its own SPOR_DATA_DIR"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
