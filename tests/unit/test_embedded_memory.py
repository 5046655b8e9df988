"""The embedded cluster's memory follows the machine (lrs/store/embedded.py memory_settings)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lrs.settings import Settings
from lrs.store.embedded import machine_memory, memory_settings

GB = 1024**3


@pytest.mark.parametrize(("total", "shared", "cache"), [
    (24 * GB, "6144MB", "18432MB"),   # a quarter, three quarters
    (2 * GB, "512MB", "1536MB"),
    (256 * 1024**2, "128MB", "192MB"),  # never below 128 MB
    (64 * GB, "8192MB", "49152MB"),     # never above 8 GB
])
def test_shared_buffers_are_a_quarter_of_memory_within_bounds(total: int, shared: str, cache: str) -> None:
    assert memory_settings(total) == {"shared_buffers": shared, "effective_cache_size": cache}


def test_unknown_memory_gets_postgresql_default_buffers() -> None:
    assert memory_settings(None) == {"shared_buffers": "128MB"}


def test_machine_memory_is_read_on_linux() -> None:
    total = machine_memory()
    assert total is not None and total >= 128 * 1024**2


@pytest.mark.parametrize("value", ["2GB", "512MB", "65536kB"])
def test_shared_buffers_setting_takes_a_size(value: str) -> None:
    assert Settings.from_env({"SPOR_PG_SHARED_BUFFERS": value}).pg_shared_buffers == value


@pytest.mark.parametrize("value", ["2 GB", "lots", "0MB", "-1GB", "2gb"])
def test_shared_buffers_setting_refuses_what_postgresql_would_not_start_with(value: str) -> None:
    with pytest.raises(ValueError, match="SPOR_PG_SHARED_BUFFERS"):
        Settings.from_env({"SPOR_PG_SHARED_BUFFERS": value})


def _cgroup(tmp_path: Path, files: dict[str, str], own: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "self").write_text(own)
    return root, tmp_path / "self"


def test_the_process_s_own_cgroup_limit_counts_not_only_the_root_s(tmp_path: Path) -> None:
    """A systemd MemoryMax= sits on the service's own cgroup (v2), below an unlimited root."""
    root, own = _cgroup(tmp_path, {"memory.max": "max", "system.slice/memory.max": "max",
                                   "system.slice/spor.service/memory.max": str(512 * 1024**2)},
                        "0::/system.slice/spor.service\n")
    assert machine_memory(root, own) == 512 * 1024**2


def test_a_limit_on_a_cgroup_above_the_process_applies_too(tmp_path: Path) -> None:
    root, own = _cgroup(tmp_path, {"work.slice/memory.max": str(GB), "work.slice/job/memory.max": "max"},
                        "0::/work.slice/job\n")
    assert machine_memory(root, own) == GB


def test_a_cgroup_v1_memory_limit_is_read(tmp_path: Path) -> None:
    root, own = _cgroup(tmp_path, {"memory/memory.limit_in_bytes": str(2**63 - 4096),
                                   "memory/docker/abc/memory.limit_in_bytes": str(768 * 1024**2)},
                        "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    assert machine_memory(root, own) == 768 * 1024**2


def test_no_cgroup_files_leave_physical_memory(tmp_path: Path) -> None:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert machine_memory(tmp_path / "none", tmp_path / "none-self") == physical


def test_a_cgroup_file_not_as_the_kernel_writes_it_is_ignored(tmp_path: Path) -> None:
    root, own = _cgroup(tmp_path, {"memory.max": "max", "svc/memory.max": str(GB)}, "garbage\n0::/svc\n")
    assert machine_memory(root, own) == GB
