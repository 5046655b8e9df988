"""The server's watch over its embedded cluster never makes a cluster in place of a missing one."""

from __future__ import annotations

import time
from pathlib import Path

from lrs.database import ClusterWatch
from lrs.store.embedded import PASSWORD_FILE, EmbeddedPostgres


def test_a_cluster_folder_gone_is_not_made_again(tmp_path: Path) -> None:
    """A review: with its folder gone (a volume unmounted) the watch ran initdb, a new empty
    cluster, and wrote a new password over the folder's, so the old cluster could not be
    reached once it was back."""
    (tmp_path / PASSWORD_FILE).write_text("the-old-password\n")
    embedded = EmbeddedPostgres(tmp_path)
    watch = ClusterWatch(embedded, interval=0.05)
    watch.start()
    try:
        time.sleep(0.5)
    finally:
        watch.stop()
    assert not embedded.initialised() and not (tmp_path / "pg").exists()
    assert (tmp_path / PASSWORD_FILE).read_text() == "the-old-password\n"
    assert watch.restarts == 0
