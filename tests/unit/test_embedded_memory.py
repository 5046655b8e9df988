"""The embedded cluster's memory follows the machine (lrs/store/embedded.py memory_settings)."""

from __future__ import annotations

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
