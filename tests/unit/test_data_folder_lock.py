"""The data folder's lock: a command holding it is waited for, a server is not."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from lrs.data_folder_lock import LOCK_FILE, DataFolderInUse, lock_data_folder


def test_a_command_holding_the_folder_is_waited_for_and_named_once(tmp_path: Path) -> None:
    held = lock_data_folder(tmp_path, holder="an administration command")
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()} an administration command\n"
    threading.Timer(0.5, os.close, [held]).start()
    told: list[str] = []
    fd = lock_data_folder(tmp_path, 30, waiting=told.append)
    try:
        assert told == [f"process {os.getpid()} (an administration command)"]
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()} serve\n"
    finally:
        os.close(fd)


def test_a_server_holding_the_folder_is_waited_for_and_named_at_once(tmp_path: Path) -> None:
    """A second `spor serve` waited 30 s in silence for the first (a docs audit): it says at once
    whom it waits for. It waits still: a server stopping holds the folder until its requests
    are done and its cluster stopped, and a restart need not wait for the old process (a review)."""
    held = lock_data_folder(tmp_path)
    try:
        told: list[str] = []
        with pytest.raises(DataFolderInUse) as err:
            lock_data_folder(tmp_path, 0.3, waiting=told.append)
        assert told == [f"process {os.getpid()} (spor serve)"]
        assert str(err.value) == (f"the data folder {tmp_path} is in use by another spor serve (pid {os.getpid()}); "
                                  "stop it first, or give this one its own SPOR_DATA_DIR")
    finally:
        os.close(held)


def test_a_lock_file_of_an_earlier_release_is_named_so(tmp_path: Path) -> None:
    held = lock_data_folder(tmp_path)
    (tmp_path / LOCK_FILE).write_text(f"{os.getpid()}\n")  # as the release before wrote it
    try:
        told: list[str] = []
        with pytest.raises(DataFolderInUse):
            lock_data_folder(tmp_path, 0.2, waiting=told.append)
        assert told == [f"process {os.getpid()} (a spor process of an earlier release)"]
    finally:
        os.close(held)


def test_a_command_still_holding_the_folder_after_the_wait_is_named(tmp_path: Path) -> None:
    held = lock_data_folder(tmp_path, holder="a command stopping the cluster")
    try:
        with pytest.raises(DataFolderInUse) as err:
            lock_data_folder(tmp_path, 0.3)
        assert f"is in use by process {os.getpid()} (a command stopping the cluster);" in str(err.value)
    finally:
        os.close(held)
