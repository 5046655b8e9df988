"""How a server process manages memory: the C allocator (glibc) and Python's cycle collector.

Statement bodies, their parsed form and the parameters of an append are megabytes each. glibc
serves such blocks from the heap once its adaptive mmap threshold has grown (up to 32 MB), and
a heap fragmented by them rarely shrinks: a worker's resident size grew by ~100 MB under a few
concurrent 1,000-statement batches and stayed there. So the thresholds are fixed: a block of
``MMAP_THRESHOLD`` or more that the heap's free memory cannot hold is mapped and unmapped on its
own, and the heap is trimmed when more than ``TRIM_THRESHOLD`` is free at its top (so up to that
much free at the top may serve a block above the mmap threshold). Elsewhere (macOS, musl) this
does nothing.

At first both were 128 KiB (peak 178 -> 123 MB for one worker under four clients posting
1,000-statement batches; docs/architecture.md). But a batch of 100 makes blocks of that size
many times over (its body as read, the bodies joined for the append, the driver's message of
~1 MB that grows by doubling, the strings of the filter-term runs), and each fresh mapping is
zeroed and faulted in page by page: ~260,000 page faults in 6 s of bench/ingest (b), ~15% of a
server process's CPU (perf: exc_page_fault, clear_page, munmap). At 4 MiB / 8 MiB those blocks
reuse the heap: ~10,000 faults in 6 s, the server's CPU a statement ~10-15% lower. The price:
one worker under four clients posting 1,000-statement batches peaks at 118 MB instead of 105 MB
(bench/ingest --skip a,b,c --server-workers 1 --statements-query 150000); a full bench/ingest
run's (e) was 245 MB. Larger blocks (a batch of thousands, a large document) are mapped on
their own unless the free top of the heap holds them.

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
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 8 * 1024 * 1024
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
    # both set even if one is refused (a 32-bit glibc takes an mmap threshold of 512 KiB at most)
    mapped = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    trimmed = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return mapped and trimmed


def tune_gc(young: int = GC_YOUNG) -> None:
    """Freeze the objects alive now (startup) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young, older, oldest)
