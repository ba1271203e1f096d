"""A real single-node Apache Kafka 4.3.1 broker (KRaft, broker + controller in one JVM).

The jars come from Maven Central through ``deploy/kafka/pom.xml`` (copied into
``deploy/kafka/libs/``); configuration comes from ``deploy/kafka/server.properties.template`` and
``deploy/kafka/log4j2.properties``. Each broker owns one data directory::

    <data dir>/server.properties   rendered from the template on every start
    <data dir>/cluster.id          the KRaft cluster id, chosen once
    <data dir>/kafka-logs/         log.dirs (formatted once with kafka.tools.StorageTool)
    <data dir>/logs/server.log     the broker's own log (INFO and above)
    <data dir>/broker.out          the JVM's stdout/stderr (WARN and above, crashes)
    <data dir>/broker.pid          pid of the running JVM

plus ``deploy/kafka/run/kafka-cds-*.jsa``, a class-data-sharing archive shared by all data dirs
(about 50 MB, git-ignored; ``RELWATCH_KAFKA_CDS=0`` turns it off).

Command line (also ``deploy/kafka/broker.sh``)::

    python -m streams.local_broker start|stop|status [--port 9092]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

__all__ = ["BrokerError", "BrokerStartError", "BrokerStatus", "LocalBroker", "main"]

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"
NODE_ID = 1
STARTED_MESSAGE = b"Kafka Server started"
KAFKA_HOME_ENV = "RELWATCH_KAFKA_HOME"
CDS_ENV = "RELWATCH_KAFKA_CDS"  # "0" turns class-data sharing off
DEFAULT_KAFKA_HOME = Path(__file__).resolve().parents[1] / "deploy" / "kafka"

_POLL_S = 0.1
_TAIL_LINES = 40
# Jars the broker cannot run without; if one is missing (say, an interrupted Maven run), rerun it.
_REQUIRED_JARS = (
    "kafka_2.13-",
    "kafka-clients-",
    "kafka-server-",
    "scala-library-",
    "slf4j-api-",
    "log4j-slf4j2-impl-",
    "log4j-core-",
)


class BrokerError(RuntimeError):
    """The local broker cannot be set up, started or stopped."""


class BrokerStartError(BrokerError):
    """The broker process died or did not become ready; the message carries the log tail."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path


def _default_kafka_home() -> Path:
    env = os.environ.get(KAFKA_HOME_ENV)
    return Path(env).expanduser().resolve() if env else DEFAULT_KAFKA_HOME


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _new_cluster_id() -> str:
    """A Kafka ``Uuid`` string: 16 random bytes, URL-safe base64 without padding.

    Same shape as ``StorageTool random-uuid`` but without starting a JVM. Kafka never hands out
    ids starting with '-' (they would read as command-line options), so neither do we.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def _tail(path: Path, offset: int = 0, lines: int = _TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(offset if offset <= size else 0)
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _find_executable(name: str) -> str | None:
    if name == "java":
        java_home = os.environ.get("JAVA_HOME")
        if java_home:
            candidate = Path(java_home) / "bin" / "java"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which(name)


class LocalBroker:
    """Start, stop and inspect one local Kafka broker that listens on 127.0.0.1 only."""

    def __init__(
        self,
        kafka_home: Path | None = None,
        data_dir: Path | None = None,
        port: int = 9092,
        controller_port: int = 9093,
        heap_mb: int = 512,
        *,
        class_data_sharing: bool | None = None,
    ) -> None:
        if port == controller_port:
            raise ValueError("port and controller_port must differ")
        self.kafka_home = (kafka_home or _default_kafka_home()).resolve()
        self.data_dir = (data_dir or self.kafka_home / "data" / str(port)).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        if class_data_sharing is None:
            class_data_sharing = os.environ.get(CDS_ENV, "1").strip().lower() not in {"0", "no"}
        self.class_data_sharing = class_data_sharing
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ paths

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return self.kafka_home / "libs"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kafka-logs"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    @property
    def console_log(self) -> Path:
        return self.data_dir / "broker.out"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    # ------------------------------------------------------------------ jars

    def _missing_jars(self) -> list[str]:
        names = [p.name for p in self.libs_dir.glob("*.jar")]
        return [req for req in _REQUIRED_JARS if not any(n.startswith(req) for n in names)]

    def ensure_jars(self) -> None:
        """Copy the broker jars into ``libs/`` with Maven unless they are already there."""
        if not self._missing_jars():
            return
        pom = self.kafka_home / "pom.xml"
        if not pom.is_file():
            raise BrokerError(f"no {pom}: set {KAFKA_HOME_ENV} to the deploy/kafka folder")
        if _find_executable("java") is None:
            raise BrokerError("java not found (need a JDK 17+ on PATH or JAVA_HOME)")
        mvn = _find_executable("mvn")
        if mvn is None:
            raise BrokerError(
                f"{self.libs_dir} has no Kafka jars and mvn is not on PATH: install Maven and "
                f"run `mvn -q -f {pom} dependency:copy-dependencies`"
            )
        log.info("kafka.jars.download", pom=str(pom), into=str(self.libs_dir))
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        missing = self._missing_jars()
        if done.returncode != 0 or missing:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-_TAIL_LINES:])
            raise BrokerError(
                f"`{' '.join(cmd)}` failed (exit {done.returncode}, missing {missing}):\n{output}"
            )

    # ------------------------------------------------------------------ processes

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _write_pid(self, pid: int) -> None:
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n")
        tmp.replace(self.pid_file)

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        with contextlib.suppress(ChildProcessError, OSError):
            # Reap it if it is our own child (started by another LocalBroker object).
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has already exited

    def _is_ours(self, pid: int) -> bool:
        """Whether ``pid`` is a Kafka JVM running this data dir's config (guards pid reuse)."""
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return not Path("/proc/self").exists()  # no procfs: trust the pid file
        except OSError:
            return False
        return b"kafka.Kafka" in args and str(self.config_path).encode() in args

    def _running_pid(self) -> int | None:
        pid = self._read_pid()
        if pid is not None and self._alive(pid) and self._is_ours(pid):
            return pid
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop of this data dir across processes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "broker.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ setup

    def _java(self) -> str:
        java = _find_executable("java")
        if java is None:
            raise BrokerError("java not found (need a JDK 17+ on PATH or JAVA_HOME)")
        return java

    def _common_jvm_args(self) -> list[str]:
        return [
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.kafka_home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.server_log.parent}",
            "-cp",
            str(self.libs_dir / "*"),  # expanded by the JVM, not by a shell
        ]

    def _broker_jvm_args(self) -> list[str]:
        # Kafka's own defaults (kafka-server-start.sh) with a small, fixed heap. G1 measured
        # as fast to start as SerialGC here, and keeps pauses short under load.
        return [
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            *self._common_jvm_args(),
        ]

    def _tool_jvm_args(self) -> list[str]:
        # Short-lived tools (StorageTool): small heap, quick JIT.
        return [
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            *self._common_jvm_args(),
        ]

    # Class-data sharing: the first broker run on a set of jars records the classes it loads
    # (-XX:ArchiveClassesAtExit, written when the JVM exits after SIGTERM); later runs map that
    # archive (-XX:SharedArchiveFile) and start about a second faster. The archive is shared by
    # every data dir of this kafka_home (deploy/kafka/run/, git-ignored) and keyed by the java
    # binary and the jars, so new jars or a new JDK train a fresh one. A stale or broken archive
    # only costs speed: the JVM then runs without sharing (-Xshare:auto, the default).

    @property
    def _cds_marker(self) -> Path:
        return self.data_dir / "cds-training"

    def _cds_archive(self, java: str) -> Path:
        digest = hashlib.sha256()
        java_bin = Path(java).resolve()
        st = java_bin.stat()
        digest.update(f"{java_bin}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        for jar in sorted(self.libs_dir.glob("*.jar")):
            st = jar.stat()
            digest.update(f"{jar.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return self.kafka_home / "run" / f"kafka-cds-{digest.hexdigest()[:16]}.jsa"

    def _cds_discard(self) -> None:
        """Forget a training run that did not exit cleanly (its archive may be cut short)."""
        with contextlib.suppress(OSError, ValueError):
            tmp_name, _ = self._cds_marker.read_text().split()
            Path(tmp_name).unlink(missing_ok=True)
        self._cds_marker.unlink(missing_ok=True)

    def _cds_args(self, java: str) -> list[str]:
        self._cds_discard()
        if not self.class_data_sharing:
            return []
        archive = self._cds_archive(java)
        quiet = "-Xlog:cds=off,cds+dynamic=off"  # "Skipping <class>" chatter at dump time
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}", quiet]
        archive.parent.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_name(f"{archive.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._cds_marker.write_text(f"{tmp}\n{archive}\n")
        return [f"-XX:ArchiveClassesAtExit={tmp}", quiet]

    def _cds_promote(self) -> None:
        """After a clean exit of a training run, publish its archive (atomically)."""
        try:
            tmp_name, final_name = self._cds_marker.read_text().split()
        except (OSError, ValueError):
            return
        self._cds_marker.unlink(missing_ok=True)
        tmp, final = Path(tmp_name), Path(final_name)
        try:
            if tmp.stat().st_size > 0:
                tmp.replace(final)
                log.info("kafka.cds.archived", archive=str(final))
        except OSError:
            tmp.unlink(missing_ok=True)
            return
        for old in final.parent.glob("kafka-cds-*.jsa"):
            if old != final:  # archives for earlier jars/JDKs (unlinking a mapped file is safe)
                old.unlink(missing_ok=True)

    def _write_config(self) -> None:
        template = string.Template((self.kafka_home / "server.properties.template").read_text())
        text = template.substitute(
            port=self.port, controller_port=self.controller_port, log_dirs=self.log_dirs
        )
        tmp = self.config_path.with_suffix(".properties.tmp")
        tmp.write_text(text)
        tmp.replace(self.config_path)

    def _format_storage(self) -> None:
        """Format ``log.dirs`` once; the cluster id is kept in ``<data dir>/cluster.id``."""
        if (self.log_dirs / "meta.properties").is_file():
            return
        id_file = self.data_dir / "cluster.id"
        cluster_id = id_file.read_text().strip() if id_file.is_file() else ""
        if not cluster_id:
            cluster_id = _new_cluster_id()
            id_file.write_text(cluster_id + "\n")
        log.info("kafka.format", data_dir=str(self.data_dir), cluster_id=cluster_id)
        # Static controller.quorum.voters: no --standalone (that is for the dynamic quorum).
        cmd = [
            self._java(),
            *self._tool_jvm_args(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.config_path),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-_TAIL_LINES:])
            raise BrokerError(
                f"formatting {self.log_dirs} failed (exit {done.returncode}):\n{output}"
            )

    # ------------------------------------------------------------------ readiness

    def _metadata_ok(self, timeout: float) -> bool:
        """One kafka-python round trip: a Metadata request and the broker registered, unfenced."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        ms = max(1000, int(timeout * 1000))
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="relwatch-local-broker-probe",
                bootstrap_timeout_ms=ms,
                request_timeout_ms=ms,
            )
        except (KafkaError, OSError):
            return False
        try:
            admin.list_topics()
            brokers = admin.describe_cluster().get("brokers") or []
            return any(b.get("broker_id") == NODE_ID and not b.get("is_fenced") for b in brokers)
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def _failure(self, what: str, out_offset: int, log_offset: int) -> BrokerStartError:
        console = _tail(self.console_log, out_offset, lines=10_000).splitlines()
        causes = [ln for ln in console if ln.startswith("Caused by:") or " ERROR " in ln]
        if causes:
            what += "\n" + "\n".join(list(dict.fromkeys(causes))[-8:])  # the gist
        return BrokerStartError(
            f"{what}\n--- {self.console_log} (tail) ---\n{_tail(self.console_log, out_offset)}"
            f"\n--- {self.server_log} (tail) ---\n{_tail(self.server_log, log_offset)}"
        )

    def _wait_ready(
        self, pid: int, deadline: float, out_offset: int, log_offset: int | None
    ) -> None:
        seen_started = log_offset is None  # joining a start begun by someone else
        while True:
            if not self._alive(pid):
                code = self._proc.returncode if self._proc is not None else None
                raise self._failure(
                    f"Kafka broker (pid {pid}) exited during start (exit code {code})",
                    out_offset,
                    log_offset or 0,
                )
            if not seen_started and log_offset is not None:
                with contextlib.suppress(OSError), self.server_log.open("rb") as fh:
                    if fh.seek(0, os.SEEK_END) >= log_offset:
                        fh.seek(log_offset)
                    else:  # rolled over meanwhile
                        fh.seek(0)
                    seen_started = STARTED_MESSAGE in fh.read()
            remaining = deadline - time.monotonic()
            if (
                seen_started
                and _port_open(self.port)
                and self._metadata_ok(min(10.0, max(remaining, 1.0)))
            ):
                return
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"Kafka broker (pid {pid}) not ready at {self.bootstrap} in time",
                    out_offset,
                    log_offset or 0,
                )
            time.sleep(_POLL_S)

    # ------------------------------------------------------------------ API

    def start(self, timeout: float = 90) -> str:
        """Start the broker (formatting its storage the first time); return the bootstrap."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        with self._locked():
            pid = self._running_pid()
            if pid is not None:
                if _port_open(self.port):
                    log.debug("kafka.already_running", pid=pid, bootstrap=self.bootstrap)
                    return self.bootstrap
                log.info("kafka.join_start", pid=pid)  # started by someone else, not ready yet
                self._wait_ready(pid, deadline, out_offset=0, log_offset=None)
                return self.bootstrap
            self.pid_file.unlink(missing_ok=True)  # stale
            for p in (self.port, self.controller_port):
                if _port_open(p):
                    raise BrokerError(
                        f"port {HOST}:{p} is already in use by a process that is not the broker "
                        f"of {self.data_dir}"
                    )
            self.ensure_jars()
            java = self._java()
            self.server_log.parent.mkdir(parents=True, exist_ok=True)
            self._write_config()
            self._format_storage()

            log_offset = self.server_log.stat().st_size if self.server_log.exists() else 0
            cds = self._cds_args(java)
            cmd = [java, *self._broker_jvm_args(), *cds, "kafka.Kafka", str(self.config_path)]
            out: IO[bytes]
            with self.console_log.open("ab") as out:
                out_offset = out.tell()
                out.write(f"=== start {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
                out.flush()
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    start_new_session=True,  # own process group: no Ctrl-C from our terminal
                    close_fds=True,
                )
            pid = self._proc.pid
            self._write_pid(pid)
            log.info(
                "kafka.starting", pid=pid, bootstrap=self.bootstrap, data_dir=str(self.data_dir)
            )
            try:
                self._wait_ready(pid, deadline, out_offset, log_offset)
            except BrokerStartError:
                self._terminate(pid, timeout=10)
                self._cds_discard()
                self.pid_file.unlink(missing_ok=True)
                raise
            log.info(
                "kafka.ready",
                pid=pid,
                bootstrap=self.bootstrap,
                seconds=round(time.monotonic() - t0, 2),
            )
            return self.bootstrap

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def _terminate(self, pid: int, timeout: float) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if it exited on SIGTERM."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_gone(pid, timeout):
            return True
        log.warning("kafka.kill", pid=pid, after_seconds=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, 10):
            raise BrokerError(f"Kafka broker pid {pid} survived SIGKILL")
        return False

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM the broker, SIGKILL it after ``timeout``; False if it was not running."""
        with self._locked():
            pid = self._running_pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)  # stale, if any
                return False
            log.info("kafka.stopping", pid=pid)
            if self._terminate(pid, timeout):
                self._cds_promote()
            self._cds_discard()  # a killed JVM may leave half an archive
            self.pid_file.unlink(missing_ok=True)
            # The listening socket goes with the process; give the kernel a moment anyway.
            deadline = time.monotonic() + 5
            while _port_open(self.port, timeout=0.2) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            log.info("kafka.stopped", pid=pid)
            return True

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        return BrokerStatus(
            running=pid is not None, pid=pid, bootstrap=self.bootstrap, data_dir=self.data_dir
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.local_broker",
        description="Run a local single-node Apache Kafka broker (KRaft) on 127.0.0.1.",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "jars"])
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, help="default: port + 1")
    parser.add_argument("--data-dir", type=Path, help="default: deploy/kafka/data/<port>")
    parser.add_argument(
        "--kafka-home", type=Path, help=f"default: ${KAFKA_HOME_ENV} or deploy/kafka"
    )
    parser.add_argument("--heap-mb", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds (start and stop)")
    args = parser.parse_args(argv)

    # Progress goes to stderr so that `BOOTSTRAP=$(... start)` captures only the address.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    broker = LocalBroker(
        kafka_home=args.kafka_home,
        data_dir=args.data_dir,
        port=args.port,
        controller_port=args.controller_port or args.port + 1,
        heap_mb=args.heap_mb,
    )
    try:
        if args.command == "jars":
            broker.ensure_jars()
            print(broker.libs_dir)
        elif args.command == "start":
            print(broker.start(timeout=args.timeout))
        elif args.command == "stop":
            print("stopped" if broker.stop(timeout=args.timeout) else "not running")
        else:
            st = broker.status()
            state = f"running pid={st.pid}" if st.running else "not running"
            print(f"{state} bootstrap={st.bootstrap} data_dir={st.data_dir}")
            return 0 if st.running else 3
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
