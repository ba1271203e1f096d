"""The process's C heap: glibc's allocator tuned and its free space given back.

Both the worker's event loop and its stage processes use these; this module imports nothing
of Faust or Kafka, so that a stage process can.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold_kb: int) -> bool:
    """Fix glibc's mmap threshold at ``mmap_threshold_kb`` (and its trim threshold at 16 times
    that); False where there is nothing to tune (0, or not glibc).

    By default glibc raises the threshold to the size of the largest block freed so far, so the
    worker's big transient blocks (a batch's JSON, grown lists and dicts) end up in the heap,
    which then holds their freed space for good. A fixed threshold keeps them in their own
    mappings, returned when freed.
    """
    if mmap_threshold_kb <= 0:
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:  # not glibc (musl, macOS): its defaults stay
        return False
    threshold = mmap_threshold_kb * 1024
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 16 * threshold))


@cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` may run ``ldconfig`` in a subprocess,
    which the event loop must not wait for at every quiet spell)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_free_heap() -> bool:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``); False where
    there is nothing to call (not glibc).

    glibc keeps the space of freed blocks in its heap, between blocks still in use, for the
    next allocations: under load the worker's batches reuse it (their transient JSON, lists
    and dicts), but once the stream goes quiet it is resident memory doing nothing (about
    35 MB at 55,000 articles on the bench stream, bench/README.md session 13). A call takes a
    few milliseconds.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


class IdleTrim:
    """Release the free heap once per quiet spell: at the first check that finds no message
    processed since the previous check, and not again until messages have flowed."""

    def __init__(self, release: Callable[[], bool] = release_free_heap) -> None:
        self._release = release
        self._last_count: float | None = None
        self._trimmed = False

    def check(self, processed: float) -> bool:
        """``processed``: messages processed so far. True when this check released the heap."""
        quiet = processed == self._last_count
        self._last_count = processed
        if not quiet:
            self._trimmed = False
            return False
        if self._trimmed:
            return False
        self._trimmed = True
        return self._release()
