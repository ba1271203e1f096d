"""The stateless stages (normalize, extract + enrich) on the worker's other CPUs.

A Faust worker is one Python process: its event loop runs every agent on one core. Normalize
and extract hold no state and cost most of an article's CPU, so the worker hands them, a
micro-batch at a time, to a small pool of processes (``RELWATCH_STAGE_PROCESSES``) and keeps
the Kafka I/O, dedupe and the timeline merge in its own process.

What crosses a process boundary is bytes: a record's value goes out, the encoded output (or
the reason it failed) comes back, in the order of the batch. A failure is returned as a
:class:`~streams.errors.StageFailure` carrying what the dead letter needs, since the original
exception may not come back from a pickle (one whose ``__init__`` takes other arguments
than its message does not). If a stage process dies, the batch is run in the worker's own
process and the pool is started again: nothing is lost and nothing is done twice, since
offsets are acknowledged only after the batch's outputs are sent.

The payload functions below are also what the worker runs when the pool is off
(``RELWATCH_STAGE_PROCESSES=0``), so both paths produce the same bytes.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeAlias, TypeVar

import structlog

from schemas.models import CleanArticle, RawArticle

from . import enrich, extract, normalize
from .deadletter import failure_reason
from .errors import StageFailure
from .metrics import STAGE_PROCESS_RESTARTS, STAGE_PROCESSES

log = structlog.get_logger(__name__)

T = TypeVar("T")
Mentions: TypeAlias = list[tuple[bytes, bytes]]


# --- the stages, bytes in and bytes out ----------------------------------------------------
def normalize_payload(value: bytes, max_chars: int) -> tuple[bytes, bytes]:
    """A raw article record's value -> (key, value) of the cleaned article."""
    article = normalize.normalize(RawArticle.model_validate_json(value), max_chars=max_chars)
    return article.id.encode(), article.model_dump_json().encode()


def extract_payload(value: bytes) -> Mentions:
    """A unique article's record value -> (key, value) of each enriched event mention."""
    article = CleanArticle.model_validate_json(value)
    return [(m.mention_id.encode(), m.model_dump_json().encode())
            for m in (enrich.enrich(m) for m in extract.extract_events(article))]


def as_failure(exc: BaseException) -> StageFailure:
    """What a dead letter needs of ``exc``, in a form that pickles."""
    if isinstance(exc, StageFailure):
        return exc
    return StageFailure(failure_reason(exc), str(exc), type(exc).__name__)


def run_batch(stage: Callable[..., T], values: Sequence[bytes], *args: object
              ) -> list[T | StageFailure]:
    """``stage`` on each value; a value that fails yields its :class:`StageFailure`."""
    outcomes: list[T | StageFailure] = []
    for value in values:
        try:
            outcomes.append(stage(value, *args))
        except Exception as exc:
            outcomes.append(as_failure(exc))
    return outcomes


def _start_stage_process(log_level: str, log_format: str) -> None:
    from .logs import configure_logging

    configure_logging(log_level, log_format)
    normalize.warm_up()


# The event loop's own work per article (Kafka I/O, dedupe, merge) is about that of the two
# stages, so a few stage processes keep it busy; more would only hold memory.
MOST_DEFAULT_PROCESSES = 3


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity, or its container's CPU limit if lower."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def default_processes() -> int:
    """One fewer than the CPUs this process may use (the event loop keeps one), at most
    :data:`MOST_DEFAULT_PROCESSES`."""
    return min(MOST_DEFAULT_PROCESSES, max(0, available_cpus() - 1))


class StagePool:
    """Runs :func:`run_batch` in ``processes`` worker processes (0: in this process).

    A batch is split into one chunk per process; the outcomes come back in the batch's order.
    """

    def __init__(self, processes: int, log_level: str = "info", log_format: str = "json") -> None:
        self.processes = processes
        self._log = (log_level, log_format)
        self._executor: Executor | None = None
        self.restarts = 0

    def start(self) -> StagePool:
        if self.processes > 0 and self._executor is None:
            # forkserver: children fork from a small, clean server process, not from the worker
            # (threads, sockets, an event loop) and not its __main__; each imports the stages
            # itself (preloading them in the server would hold a second copy of the modules)
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=_start_stage_process,
                initargs=self._log)
            log.info("stage_pool_started", processes=self.processes)
        STAGE_PROCESSES.set(self.processes if self._executor is not None else 0)
        return self

    def pids(self) -> list[int]:
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(processes)

    async def run(self, stage: Callable[..., T], values: Sequence[bytes], *args: object
                  ) -> list[T | StageFailure]:
        executor = self._executor
        if executor is None or not values:
            return run_batch(stage, values, *args)
        loop = asyncio.get_running_loop()
        size = -(-len(values) // self.processes)
        chunks = [values[at:at + size] for at in range(0, len(values), size)]
        try:
            parts = await asyncio.gather(*(
                loop.run_in_executor(executor, run_batch, stage, chunk, *args)
                for chunk in chunks))
        except BrokenProcessPool as exc:
            # a stage process died (killed, out of memory): this batch runs here, the next
            # in a new pool
            log.warning("stage_pool_broken", error=repr(exc), batch=len(values))
            self.shutdown()
            self.restarts += 1
            STAGE_PROCESS_RESTARTS.inc()
            self.start()
            return run_batch(stage, values, *args)
        except Exception as exc:  # the pool refused the batch (shut down underneath it, say)
            log.warning("stage_pool_failed", error=repr(exc), batch=len(values))
            return run_batch(stage, values, *args)
        return [outcome for part in parts for outcome in part]

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
