"""Start and stop worker processes, and wait until a pipeline has drained.

Used by ``relwatch replay``, the integration and fault tests and the benchmarks, so that all of
them drive the same real worker the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import structlog
from kafka.errors import KafkaError

from schemas.topics import WORKER_INPUT_TOPICS

from .kafka_io import LagProbe
from .settings import Settings

log = structlog.get_logger(__name__)



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """A ``relwatch worker`` subprocess with its own environment and log file."""

    def __init__(self, settings: Settings, bootstrap: str, log_path: Path,
                 extra_env: dict[str, str] | None = None, name: str = "w0") -> None:
        self.settings = settings
        self.name = name
        self.bootstrap = bootstrap
        self.log_path = log_path
        self.web_port = free_port()
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_URL", "APP_"))}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            RELWATCH_NAMESPACE=self.settings.namespace,
            RELWATCH_DATA_DIR=str(self.settings.data_dir / self.name),
            RELWATCH_WEB_PORT=str(self.web_port),
            RELWATCH_LOG_FORMAT="json",
            RELWATCH_COMMIT_INTERVAL_S=str(self.settings.commit_interval_s),
            RELWATCH_PRODUCER_LINGER_MS=str(self.settings.producer_linger_ms),
            RELWATCH_STAGE_PROCESSES=str(self.settings.stage_processes),
            RELWATCH_SESSION_TIMEOUT_S=str(self.settings.session_timeout_s),
            RELWATCH_HEARTBEAT_INTERVAL_S=str(self.settings.heartbeat_interval_s),
            RELWATCH_RAW_PARTITIONS=str(self.settings.raw_partitions),
            RELWATCH_UNIQUE_PARTITIONS=str(self.settings.unique_partitions),
            RELWATCH_DEDUPE_WINDOW_DAYS=str(self.settings.dedupe_window_days),
            RELWATCH_TIMELINE_HORIZON_DAYS=str(self.settings.timeline_horizon_days),
            RELWATCH_TIMELINE_EXPIRE_INTERVAL_S=str(self.settings.timeline_expire_interval_s),
            RELWATCH_LAG_METRICS_INTERVAL_S=str(self.settings.lag_metrics_interval_s),
            RELWATCH_COMMIT_HOLE_REFETCH_S=str(self.settings.commit_hole_refetch_s),
            RELWATCH_STALLED_PARTITION_REFETCH_S=str(
                self.settings.stalled_partition_refetch_s),
        )
        env.update(self.extra_env)
        return env

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = open(self.log_path, "ab")  # noqa: SIM115 (owned by the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.worker"],
            env=self.env(), stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logfile.close()
        log.info("worker_started", pid=self.proc.pid, log=str(self.log_path))
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: the crash the fault tests simulate."""
        if self.proc is not None and self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or not self.alive:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        log.info("worker_stopped", pid=self.proc.pid, returncode=self.proc.returncode)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_until_drained(
    settings: Settings,
    bootstrap: str,
    workers: list[WorkerProcess],
    timeout_s: float = 300.0,
    stable_polls: int = 3,
    poll_s: float = 0.25,
) -> float:
    """Block until the worker group has committed every input topic to its end.

    Returns the seconds waited. Raises if every worker has died or the timeout passes.
    """
    topics = [settings.topic_name(spec.name) for spec in WORKER_INPUT_TOPICS]
    with LagProbe(bootstrap) as probe:
        return _wait_for_zero_lag(probe, settings.group_id, topics, workers, timeout_s,
                                  stable_polls, poll_s)


def _wait_for_zero_lag(probe: LagProbe, group_id: str, topics: list[str],
                       workers: list[WorkerProcess], timeout_s: float, stable_polls: int,
                       poll_s: float) -> float:
    started = time.monotonic()
    zero_in_a_row = 0
    last_report = started
    while True:
        if workers and not any(w.alive for w in workers):
            raise RuntimeError("every worker died:\n" + workers[0].log_tail())
        try:
            total = sum(probe.lag(group_id, topics).values())
        except KafkaError as exc:  # coordinator not there yet, broker restarting: ask again
            log.debug("lag_unavailable", error=repr(exc))
            total = -1
        zero_in_a_row = zero_in_a_row + 1 if total == 0 else 0
        if zero_in_a_row >= stable_polls:
            return time.monotonic() - started
        now = time.monotonic()
        if now - started > timeout_s:
            raise TimeoutError(f"pipeline not drained after {timeout_s:.0f}s; lag={total}")
        if now - last_report > 5:
            log.info("waiting_for_pipeline", lag=total)
            last_report = now
        time.sleep(poll_s)
