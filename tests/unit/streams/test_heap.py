"""The C heap: glibc's allocator tuned, its free space given back once per quiet spell."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh interpreter: free an 8 MB block, then take a 4 MB one, and say whether the 4 MB
# one sits in the heap (brk) or in a mapping of its own.
_PROBE = """
import ctypes, sys
from streams.heap import tune_allocator
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


def test_idle_trim_releases_once_per_quiet_spell() -> None:
    from streams.heap import IdleTrim

    calls: list[int] = []
    trim = IdleTrim(release=lambda: calls.append(1) is None)
    assert trim.check(0) is False  # the first check has nothing to compare with
    assert trim.check(0) is True and len(calls) == 1  # quiet: released
    assert trim.check(0) is False and len(calls) == 1  # still quiet: not again
    assert trim.check(50) is False  # messages flowed
    assert trim.check(80) is False
    assert trim.check(80) is True and len(calls) == 2  # the next quiet spell


# In a fresh interpreter with glibc's defaults: fill the heap with small blocks, free all but
# every 64th, and print the resident memory before and after the release (MB).
_TRIM_PROBE = """
import os
from streams.heap import release_free_heap
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
blocks = [bytearray(2000) for _ in range(100_000)]
kept = blocks[::64]
del blocks
before = resident()
print(release_free_heap(), before, resident())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_releasing_the_free_heap_gives_its_pages_back() -> None:
    out = subprocess.run([sys.executable, "-c", _TRIM_PROBE], check=True, capture_output=True,
                         text=True).stdout.split()
    if out[0] != "True":
        pytest.skip("not glibc")
    before, after = float(out[1]), float(out[2])
    assert before - after > 100  # about 190 MB held in free blocks between kept ones
