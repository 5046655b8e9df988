"""How a server process manages memory: the C allocator (glibc) and Python's cycle collector.

Statement bodies, their parsed form and the parameters of an append are megabytes each. glibc
serves such blocks from the heap once its adaptive mmap threshold has grown (up to 32 MB), and
a heap fragmented by them rarely shrinks: a worker's resident size grew by ~100 MB under a few
concurrent 1,000-statement batches and stayed there. With a fixed threshold of 128 KiB, large
blocks are mapped and unmapped on their own, and the heap is trimmed above the same size
(measured: peak 178 -> 123 MB for one worker under four clients posting 1,000-statement
batches; docs/architecture.md). Elsewhere (macOS, musl) this does nothing.

Python's cycle collector runs a young-generation pass whenever 700 more container objects are
alive than at the last pass. Requests in flight hold many (a parsed statement is ~25 dicts and
lists; its prepared copy, futures, tasks and the request's own objects add more), so their
objects were traversed while still in use, promoted, and traversed again in older generations:
~10% of a worker's CPU under single-statement POSTs (perf: gc_collect_main, visit_decref,
visit_reachable), although reference counting frees almost all of them. ``tune_gc`` moves what
exists at startup (modules, the app) out of the collector's view and lets the young generation
grow to ``GC_YOUNG`` objects, so a request's objects are mostly gone before a pass looks at
them; cycles are still collected, later. Measured in bench/ingest: server CPU per statement
-5% under single-statement POSTs, -10% under batches of 100; peak RSS unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024
GC_YOUNG = 50_000


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


def tune_gc(young: int = GC_YOUNG) -> None:
    """Freeze the objects alive now (startup) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young, older, oldest)
