"""Handing freed heap memory back to the operating system between training steps.

On Linux, glibc's ``malloc`` serves most of a training step's activations from its heap: its mmap threshold starts
at 128 KiB but rises (up to 32 MiB) each time a block above it is freed, so after the first steps nearly every
activation tensor lives in the heap. Freed heap memory is reused but, unless it sits at the top of the heap, not
returned to the system; the process's resident memory (RSS) therefore climbs to the high-water mark of its largest
step — the batch with the longest texts — plus the fragmentation left by steps of other lengths, and stays there.
Measured on CARL pre-training (docs/text.md, "Memory"): the resident memory stayed at its peak after one long
batch although the live tensors went back to their size before it (same run under ``MALLOC_MMAP_THRESHOLD_=131072``:
RSS back to its start after every step) — allocator retention, not a leak.

:func:`release_freed_memory` calls ``malloc_trim(0)`` (which gives back every whole free page of the heap, not
only its top) when the heap holds at least ``min_free`` bytes free; it costs microseconds on a small heap and is a
no-op off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache

MIN_FREE_BYTES = 64 * 2**20  # trim only when at least this much freed heap memory could go back


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@lru_cache(maxsize=1)
def _libc():
    """glibc with ``malloc_trim`` and ``mallinfo2`` (glibc ≥ 2.33), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallinfo2.argtypes, libc.mallinfo2.restype = [], _MallInfo2
    except (OSError, AttributeError):  # not glibc (musl), or a glibc before 2.33
        return None
    return libc


def heap_free_bytes() -> int | None:
    """Bytes freed but kept by glibc's heaps (``mallinfo2().fordblks``, all arenas); None off glibc."""
    libc = _libc()
    return None if libc is None else int(libc.mallinfo2().fordblks)


def release_freed_memory(min_free: int = MIN_FREE_BYTES) -> bool:
    """Return glibc's freed heap pages to the system (``malloc_trim(0)``) when at least ``min_free`` bytes are
    free in its heaps. True when it trimmed; False when there was too little to give back or the C library is
    not glibc ≥ 2.33."""
    free = heap_free_bytes()
    if free is None or free < min_free:
        return False
    _libc().malloc_trim(0)
    return True
