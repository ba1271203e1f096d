"""The worker's process setup."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh interpreter: free an 8 MB block, then take a 4 MB one, and say whether the 4 MB
# one sits in the heap (brk) or in a mapping of its own.
_PROBE = """
import ctypes, sys
from streams.worker import tune_allocator
tuned = tune_allocator(int(sys.argv[1]))
freed = bytearray(8 << 20)
del freed
kept = bytearray(4 << 20)
address = ctypes.addressof((ctypes.c_char * len(kept)).from_buffer(kept))
for line in open("/proc/self/maps"):
    span, *rest = line.split()
    low, high = (int(x, 16) for x in span.split("-"))
    if low <= address < high:
        print(tuned, "heap" if rest[-1] == "[heap]" else "own mapping")
"""


def _probe(threshold_kb: int) -> str:
    return subprocess.run([sys.executable, "-c", _PROBE, str(threshold_kb)], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_fixed_mmap_threshold_keeps_big_blocks_out_of_the_heap() -> None:
    if _probe(64).split()[0] != "True":
        pytest.skip("not glibc")
    # glibc's default raised its threshold to 8 MB when the first block was freed
    assert _probe(0) == "False heap"
    assert _probe(64) == "True own mapping"
