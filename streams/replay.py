"""``relwatch replay``: a file in, the timeline out, through the real broker and worker."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from kafka.admin import KafkaAdminClient

from producers.jsonl import IngestSummary, ingest_jsonl
from producers.topics import ensure_topics
from schemas.models import TimelineEntry
from schemas.topics import ARTICLES_RAW, TIMELINE_ENTRIES

from .kafka_io import read_timeline
from .local_broker import LocalBroker
from .runner import WorkerProcess, wait_until_drained
from .security import client_security
from .settings import Settings

log = structlog.get_logger(__name__)


@contextmanager
def bootstrap_for(settings: Settings) -> Iterator[str]:
    """The configured cluster, or the embedded local broker (started and later stopped here).

    A local broker that was already running is used and left running.
    """
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    broker = LocalBroker(
        port=settings.local_broker_port, controller_port=settings.local_broker_controller_port
    )
    was_running = broker.status().running
    started = time.monotonic()
    bootstrap = broker.start()
    log.info(
        "local_broker_ready",
        bootstrap=bootstrap,
        seconds=round(time.monotonic() - started, 2),
        already_running=was_running,
    )
    try:
        yield bootstrap
    finally:
        if not was_running:
            broker.stop()


def delete_namespace_topics(bootstrap: str, settings: Settings) -> None:
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), client_id="relwatch-admin", **client_security()
    )
    try:
        prefix = f"{settings.namespace}."
        group_prefix = f"{settings.group_id}-"
        doomed = [t for t in admin.list_topics() if t.startswith((prefix, group_prefix))]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


@dataclass
class ReplayResult:
    entries: list[TimelineEntry]
    ingest: IngestSummary
    seconds: float
    namespace: str


def replay(
    path: str,
    settings: Settings,
    timeout_s: float = 600.0,
    keep_topics: bool = False,
    progress: bool = True,
) -> ReplayResult:
    """Ingest ``path`` into a fresh namespace, run a worker until it drained, read the timeline."""
    namespace = settings.namespace or f"replay-{uuid.uuid4().hex[:10]}"
    workdir = Path(tempfile.mkdtemp(prefix="relwatch-replay-"))
    settings = settings.model_copy(
        update={"namespace": namespace, "data_dir": workdir / "state", "commit_interval_s": 0.2}
    )
    started = time.monotonic()
    with bootstrap_for(settings) as bootstrap:
        ensure_topics(
            bootstrap,
            namespace,
            settings.replication_factor,
            {
                ARTICLES_RAW.name: settings.raw_partitions,
                "articles.unique": settings.unique_partitions,
            },
        )
        worker = WorkerProcess(settings, bootstrap, workdir / "worker.log").start()
        try:
            summary = ingest_jsonl(
                path,
                bootstrap,
                topic=settings.topic_name(ARTICLES_RAW.name),
                progress=progress,
                compression=settings.producer_compression,
                linger_ms=settings.producer_linger_ms,
            )
            wait_until_drained(settings, bootstrap, [worker], timeout_s=timeout_s)
            entries = read_timeline(bootstrap, settings.topic_name(TIMELINE_ENTRIES.name))
        finally:
            worker.stop()
            if not keep_topics:
                try:
                    delete_namespace_topics(bootstrap, settings)
                except Exception as exc:  # cleanup must not hide the real outcome
                    log.warning("topic_cleanup_failed", error=repr(exc))
    shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    log.info(
        "replay_done",
        entries=len(entries),
        articles=summary.pushed,
        seconds=round(seconds, 2),
        namespace=namespace,
    )
    return ReplayResult(entries, summary, seconds, namespace)
