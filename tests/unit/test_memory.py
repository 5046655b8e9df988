"""The memory settings of a server process (lrs/memory.py): the allocator's take effect on glibc
and are a no-op elsewhere; the cycle collector's freeze startup objects and widen the young
generation."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys

import pytest

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


def test_blocks_below_the_mmap_threshold_come_from_the_heap_and_larger_ones_are_mapped() -> None:
    # in a process of its own: the thresholds stay for the rest of a process's life
    libc, version = platform.libc_ver()
    if libc != "glibc" or tuple(int(x) for x in version.split(".")[:2]) < (2, 33):
        pytest.skip("glibc's mallopt, and its mallinfo2 (2.33 and later) to see where a block went")
    probe = (
        "import ctypes, ctypes.util\n"
        "from lrs.memory import MMAP_THRESHOLD, TRIM_THRESHOLD, tune_malloc\n"
        "class Info(ctypes.Structure):\n"
        "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',\n"
        "                'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
        "libc.mallinfo2.restype = Info\n"
        "assert tune_malloc()\n"
        "mapped = libc.mallinfo2().hblks\n"
        "below = bytearray(MMAP_THRESHOLD // 2)\n"  # e.g. a batch's joined bodies: the heap
        "after_below = libc.mallinfo2().hblks\n"
        "above = bytearray(MMAP_THRESHOLD + TRIM_THRESHOLD)\n"  # more than a free heap top may hold
        "print(after_below - mapped, libc.mallinfo2().hblks - mapped)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["0", "1"]
