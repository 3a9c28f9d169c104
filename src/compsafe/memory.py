"""Give freed memory back to the operating system, so a run's resident memory follows what it holds.

Why: glibc's allocator serves large blocks with ``mmap`` only up to a threshold that it *raises* each time such a
block is freed (up to 32 MiB). After the first large tensor is freed, the per-layer float32 copies a compression
method makes (a few MiB each) come from the heap instead, and a fragmented heap is not returned when they are
freed. On compsafe-demo (bf16, 257 MiB) building one int8 variant left 186 MiB more resident after the variant
was restored than before it; with a fixed threshold it left 4 MiB.

It is opt-in (``COMPSAFE_LOW_MEMORY=1``) because it costs time: the default run (``benchmarks/bench_matrix.py``,
quiet 2-core CPU) peaked at 1719 MiB in 422 s with it and at 2381 MiB in 311 s without it. Every generation
step's fresh >= 1 MiB buffers are then new mappings, which must be zeroed on first touch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold (disabling its dynamic raise); True when set. No-op on other C libraries."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl and others have no mallopt: their allocators return memory anyway
        return False


def apply_memory_setting() -> bool:
    """``return_freed_memory`` when ``COMPSAFE_LOW_MEMORY=1`` (a memory-bound host); True when it was applied."""
    return os.environ.get("COMPSAFE_LOW_MEMORY") == "1" and return_freed_memory()
