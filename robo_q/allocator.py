"""CPU memory settings for training processes; apply them before torch loads.

An update allocates the same activations every time. By default glibc hands blocks above its
mmap threshold back to the kernel when they are freed, so every update page-faults its big
tensors in again. With torch's huge-page allocation, each of those faults zeroes a fresh 2 MB
page and sometimes compacts memory to find one: a fresh 6 MB tensor then costs ~1 ms before
anything is computed on it. :func:`configure_cpu_allocator` makes glibc serve every size from its
heap and never shrink it, so after the first update allocations reuse memory that is already
mapped; torch's ``THP_MEM_ALLOC_ENABLE`` then backs big tensors with huge pages (fewer TLB misses
on pixel batches). Freed memory stays with the process, as in torch's CUDA caching allocator.
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters from glibc's <malloc.h>


def configure_cpu_allocator() -> bool:
    """Keep freed memory mapped (glibc) and ask torch for huge pages unless the environment says
    otherwise (``THP_MEM_ALLOC_ENABLE=0``). Returns whether glibc accepted the settings."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
