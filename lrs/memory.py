"""How the C allocator of a server process hands memory back (glibc on Linux).

Statement bodies, their parsed form and the parameters of an append are megabytes each. glibc
serves such blocks from the heap once its adaptive mmap threshold has grown (up to 32 MB), and
a heap fragmented by them rarely shrinks: a worker's resident size grew by ~100 MB under a few
concurrent 1,000-statement batches and stayed there. With a fixed threshold of 128 KiB, large
blocks are mapped and unmapped on their own, and the heap is trimmed above the same size
(measured: peak 178 -> 123 MB for one worker under four clients posting 1,000-statement
batches; docs/architecture.md). Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds for this process; False where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, THRESHOLD))
