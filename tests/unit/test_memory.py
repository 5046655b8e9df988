"""The allocator settings of a server process (lrs/memory.py) take effect on glibc and are a
no-op elsewhere."""

from __future__ import annotations

import platform
import sys

from lrs.memory import tune_malloc


def test_glibc_takes_the_fixed_thresholds() -> None:
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tune_malloc() is on_glibc
