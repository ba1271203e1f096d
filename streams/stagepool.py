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

A stage process is a plain ``python`` child started with two pipes: a batch goes out as one
length-prefixed pickle and its outcomes come back the same way. ``multiprocessing``'s pool
would add a fork server and a resource tracker, two more processes of about 14 MB each, and
its queues; a pipe each way is all one batch at a time needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeAlias, TypeVar

import structlog

from schemas.models import CleanArticle, RawArticle

from . import dedupe
from .deadletter import failure_reason
from .errors import StageFailure
from .heap import release_free_heap

log = structlog.get_logger(__name__)

T = TypeVar("T")
Mentions: TypeAlias = list[tuple[bytes, bytes]]


# --- the stages, bytes in and bytes out ----------------------------------------------------
def normalize_payload(value: bytes, max_chars: int) -> tuple[bytes, bytes, bytes]:
    """A raw article record's value -> (key, value) of the cleaned article, and its text's
    near-duplicate fingerprint (the dedupe stage's costliest step, done here, beside the event
    loop rather than in it)."""
    from . import normalize  # here: the worker's own process need not load the stages' code

    article = normalize.normalize(RawArticle.model_validate_json(value), max_chars=max_chars)
    return (article.id.encode(), article.model_dump_json().encode(),
            dedupe.text_fingerprint(article.text))


def extract_payload(value: bytes) -> Mentions:
    """A unique article's record value -> (key, value) of each enriched event mention."""
    from . import enrich, extract

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
    from . import normalize

    normalize.warm_up()


_FRAME = struct.Struct("<Q")


def _write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(_FRAME.pack(len(payload)))
    out.write(payload)
    out.flush()


def _read_frame(source: IO[bytes]) -> bytes | None:
    """The next frame, or None at the end of the pipe (the other side is gone)."""
    head = source.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    body = source.read(size)
    return body if len(body) == size else None


def serve(requests_fd: int, outcomes_fd: int, log_level: str, log_format: str,
          trim_idle_s: float = 0.0) -> None:
    """A stage process's loop: (stage, values, args) in, ``run_batch``'s outcomes out, until
    the worker closes the pipe (it stopped, or died: a kill -9 closes its ends too).

    When no batch has come for ``trim_idle_s`` seconds (0: never), the heap's free space goes
    back to the system, once per quiet spell, as in the worker's own process (under load a
    stage process reuses that space batch after batch). glibc's mmap threshold stays its
    default here: fixed as the worker fixes it, it changed nothing at rest.
    """
    _start_stage_process(log_level, log_format)
    with open(requests_fd, "rb") as requests, open(outcomes_fd, "wb") as outcomes:
        while True:
            if trim_idle_s > 0 and not _readable_within(requests, trim_idle_s):
                release_free_heap()  # then wait for the next batch as long as it takes
            if (frame := _read_frame(requests)) is None:
                break
            stage, values, args = pickle.loads(frame)
            _write_frame(outcomes, pickle.dumps(run_batch(stage, values, *args), protocol=5))


def _readable_within(source: IO[bytes], seconds: float) -> bool:
    """Whether ``source`` has bytes (or its end) to read within ``seconds``. The worker sends
    one batch and waits for its outcomes, so nothing of the next batch is buffered here."""
    return bool(select.select([source], [], [], seconds)[0])


class StageProcessGone(RuntimeError):
    """The stage process exited (killed, out of memory) before it answered."""


class _StageProcess:
    """One child running :func:`serve`, and the worker's ends of its two pipes."""

    def __init__(self, log_level: str, log_format: str, trim_idle_s: float = 0.0) -> None:
        requests_read, requests_write = os.pipe()
        outcomes_read, outcomes_write = os.pipe()
        # the child imports what this process imports, from the same paths
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        code = ("from streams.stagepool import serve; "
                f"serve({requests_read}, {outcomes_write}, {log_level!r}, {log_format!r}, "
                f"{float(trim_idle_s)!r})")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=(requests_read, outcomes_write),
                stdin=subprocess.DEVNULL, env=env)
        finally:
            os.close(requests_read)
            os.close(outcomes_write)
        self._requests = open(requests_write, "wb")  # noqa: SIM115 (closed in close())
        self._outcomes = open(outcomes_read, "rb")  # noqa: SIM115
        self._lock = threading.Lock()

    def call(self, stage: Callable[..., Any], values: Sequence[bytes], args: tuple[object, ...]
             ) -> list[Any]:
        """Run one batch there (blocking: called from a thread); one batch at a time."""
        request = pickle.dumps((stage, list(values), args), protocol=5)
        with self._lock:
            try:
                _write_frame(self._requests, request)
                frame = _read_frame(self._outcomes)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise StageProcessGone(f"stage process {self.proc.pid} is gone") from exc
            if frame is None:
                raise StageProcessGone(
                    f"stage process {self.proc.pid} exited ({self.proc.poll()})")
        outcomes: list[Any] = pickle.loads(frame)
        return outcomes

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._requests.close()  # it finishes its batch, reads the end and exits
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self._outcomes.close()


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
    """Runs :func:`run_batch` in ``processes`` stage processes (0: in this process).

    A batch is split into one chunk per process; the outcomes come back in the batch's order.
    ``trim_idle_s``: when a stage process gives its free heap back (:func:`serve`).
    """

    def __init__(self, processes: int, log_level: str = "info", log_format: str = "json",
                 trim_idle_s: float = 0.0) -> None:
        self.processes = processes
        self._options = (log_level, log_format, trim_idle_s)
        self._children: list[_StageProcess] = []
        self.restarts = 0

    def start(self) -> StagePool:
        # here, not at the top: the stage processes import this module, and prometheus_client
        # (with its HTTP server's modules) would add about 2.5 MB to each of them
        from .metrics import STAGE_PROCESSES

        if self.processes > 0 and not self._children:
            # plain children, not forks of the worker (threads, sockets, an event loop): each
            # imports the stages itself and loads the models before its first batch
            self._children = [_StageProcess(*self._options) for _ in range(self.processes)]
            log.info("stage_pool_started", processes=self.processes, pids=self.pids())
        STAGE_PROCESSES.set(len(self._children))
        return self

    def pids(self) -> list[int]:
        return sorted(child.proc.pid for child in self._children)

    async def run(self, stage: Callable[..., T], values: Sequence[bytes], *args: object
                  ) -> list[T | StageFailure]:
        children = self._children
        if not children or not values:
            return run_batch(stage, values, *args)
        loop = asyncio.get_running_loop()
        size = -(-len(values) // len(children))
        chunks = [values[at:at + size] for at in range(0, len(values), size)]
        try:
            parts = await asyncio.gather(*(
                loop.run_in_executor(None, child.call, stage, chunk, args)
                for child, chunk in zip(children, chunks, strict=False)))
        except StageProcessGone as exc:
            # a stage process died (killed, out of memory): this batch runs here, the next
            # in new stage processes (started once: the other stage's batch, queued behind
            # this one, finds them started already)
            log.warning("stage_pool_broken", error=repr(exc), batch=len(values))
            if self._children is children:
                self.shutdown()
                self.restarts += 1
                from .metrics import STAGE_PROCESS_RESTARTS

                STAGE_PROCESS_RESTARTS.inc()
                self.start()
            return run_batch(stage, values, *args)
        except Exception as exc:  # the pool refused the batch (shut down underneath it, say)
            log.warning("stage_pool_failed", error=repr(exc), batch=len(values))
            return run_batch(stage, values, *args)
        return [outcome for part in parts for outcome in part]

    def shutdown(self) -> None:
        children, self._children = self._children, []
        for child in children:
            child.close()
