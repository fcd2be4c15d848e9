"""Process-wide allocator tuning for batch-sized buffers (glibc only; a no-op elsewhere).

A float batch of 64 images at 299x299 is 68 MB. glibc serves allocations that large with a fresh
`mmap` and returns them with `munmap`, so every batch pays ~17k page faults to zero new pages:
the reader then delivers ~2,800 float images/s instead of ~10,000 (benchmarks/bench_data.py).
Raising glibc's mmap threshold (and the trim threshold with it) keeps such blocks in the heap,
where the next batch reuses them. This is the documented `mallopt` knob behind the
MALLOC_MMAP_THRESHOLD_ environment variable; the CLI applies it once at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 30   # blocks up to 1 GiB come from the heap and are reused
TRIM_THRESHOLD_BYTES = 2 << 30   # keep up to 2 GiB of freed heap before returning it to the OS


def tune_allocator() -> bool:
    """Apply the thresholds above through glibc's mallopt; True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return bool(ok and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
