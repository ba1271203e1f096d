"""Run the Faust worker with relwatch's settings and logging (``relwatch worker``)."""

from __future__ import annotations

import faust

from .logs import configure_logging


def run_worker() -> None:
    from . import agents  # registers the agents on the app
    from .app import app, settings

    configure_logging(settings.log_level, settings.log_format)
    agents.warm_up()
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
