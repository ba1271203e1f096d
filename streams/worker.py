"""Run the Faust worker with relwatch's settings and logging (``relwatch worker``)."""

from __future__ import annotations

import gc

import faust

from .heap import tune_allocator
from .logs import configure_logging


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
