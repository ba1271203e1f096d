"""Run the Faust worker with relwatch's settings and logging (``relwatch worker``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import faust

from .logs import configure_logging

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
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): its defaults stay
        return False
    threshold = mmap_threshold_kb * 1024
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 16 * threshold))


def run_worker() -> None:
    from .app import settings

    tune_allocator(settings.malloc_mmap_threshold_kb)
    from . import agents  # registers the agents on the app
    from .app import app

    configure_logging(settings.log_level, settings.log_format)
    agents.warm_up()
    gc.collect()
    gc.freeze()  # what is loaded by now lives as long as the process: no collection walks it
    gc.set_threshold(*settings.gc_thresholds)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    try:
        worker.execute_from_commandline()
    finally:
        agents.stop_stage_processes()


if __name__ == "__main__":
    run_worker()
