"""Process-wide memory settings, applied once at a program's entry (train.py, scripts/benchmark.py)."""

from __future__ import annotations

import ctypes
import sys

_HEAP_KEPT = False


def keep_freed_memory_in_heap() -> bool:
    """glibc only (a no-op elsewhere): serve large blocks from the heap and never return freed memory to the
    system. By default glibc maps each large tensor (up to 32 MB) afresh and unmaps it when freed, so the same
    tensors of every training iteration are page-faulted in again, one fault per 4 KB page: 8% of an iteration
    of the default model on the CPU here, for the same peak memory (docs/PERFORMANCE.md). A process-wide setting
    for the allocations that follow; returns whether it applied."""
    global _HEAP_KEPT
    if _HEAP_KEPT or not sys.platform.startswith("linux"):
        return _HEAP_KEPT
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):  # glibc, not musl
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # malloc.h; mallopt returns 1 on success
        _HEAP_KEPT = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return _HEAP_KEPT
