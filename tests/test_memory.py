"""emoembed.memory: freed heap memory handed back to the system between training steps (glibc)."""
from __future__ import annotations

import pytest
import torch

from emoembed.memory import heap_free_bytes, release_freed_memory


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(heap_free_bytes() is None, reason="needs glibc ≥ 2.33 (malloc_trim, mallinfo2)")
def test_freed_heap_memory_goes_back_to_the_system():
    # 100 KB blocks stay below glibc's mmap threshold, so they come from the heap; freeing every other one leaves
    # holes that free() alone does not give back (the top of the heap stays in use)
    blocks = [torch.ones(25_000) for _ in range(1200)]  # ~120 MB, every page touched
    del blocks[::2]
    freed = 600 * 100_000
    assert heap_free_bytes() >= freed * 0.9
    before = rss_bytes()
    assert not release_freed_memory(min_free=10 * freed)  # too little to give back: nothing done
    assert rss_bytes() > before - freed * 0.2
    assert release_freed_memory(min_free=freed // 2)
    assert rss_bytes() < before - freed * 0.7
    assert all(float(b[0]) == 1.0 for b in blocks)  # the blocks still in use are untouched
