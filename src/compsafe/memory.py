"""Give freed memory back to the operating system, so a run's resident memory follows what it holds.

Why: glibc's allocator keeps freed heap memory mapped for reuse, and serves large blocks with ``mmap`` only up
to a threshold that it *raises* each time such a block is freed (up to 32 MiB). After the first large tensor is
freed, the per-layer float32 copies a compression method makes (a few MiB each), a batch's KV cache and its
logits come from the heap instead, and the heap keeps them resident after they are freed: on compsafe-demo
(bf16, 257 MiB) each stage of a run (a probe on the base, a variant's build, a probe on the variant) left
30-180 MiB more resident than before it, so the run's peak grew with every stage (``bench_stage_memory.py``).

Two remedies:

* ``trim_freed_memory`` (always on): ``malloc_trim(0)`` hands the free pages of every heap back at once. The
  runner calls it at stage boundaries and the backend after every batch; it costs microseconds to a
  millisecond, and a stage then starts from what the run holds, not from what the previous stage freed.
* ``return_freed_memory`` (opt-in, ``COMPSAFE_LOW_MEMORY=1``): fix glibc's mmap threshold at 1 MiB, so freed
  buffers go back at once even inside a batch. It costs time: the default run (``benchmarks/bench_matrix.py``,
  quiet 2-core CPU) peaked at 1719 MiB in 422 s with it and at 2381 MiB in 311 s without it (before the trims):
  every generation step's fresh >= 1 MiB buffers are then new mappings, which must be zeroed on first touch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Any

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


@functools.cache
def _libc() -> Any | None:
    """The C library, loaded once (None off Linux or when it cannot be loaded)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def trim_freed_memory() -> bool:
    """Hand the free pages of glibc's heaps back to the OS now (``malloc_trim(0)``); True when some were.
    No-op elsewhere (musl and others have no ``malloc_trim``: their allocators return memory anyway)."""
    trim = getattr(_libc(), "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold (disabling its dynamic raise); True when set. No-op on other C libraries."""
    mallopt = getattr(_libc(), "mallopt", None)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) if mallopt is not None else False


def apply_memory_setting() -> bool:
    """``return_freed_memory`` when ``COMPSAFE_LOW_MEMORY=1`` (a memory-bound host); True when it was applied."""
    return os.environ.get("COMPSAFE_LOW_MEMORY") == "1" and return_freed_memory()
