"""The memory settings of a server process (lrs/memory.py): the allocator's take effect on glibc
and are a no-op elsewhere; the cycle collector's freeze startup objects and widen the young
generation."""

from __future__ import annotations

import gc
import platform
import sys

from lrs.memory import GC_YOUNG, tune_gc, tune_malloc


def test_glibc_takes_the_fixed_thresholds() -> None:
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tune_malloc() is on_glibc


def test_the_collector_freezes_startup_objects_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG, before[1], before[2])
        assert GC_YOUNG > 10 * 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
