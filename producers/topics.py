"""Create relwatch's topics (partitions, compaction) before anything produces to them."""

from __future__ import annotations

import contextlib
import time

import structlog
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS, TopicSpec
from streams.security import client_security

log = structlog.get_logger(__name__)


MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """Compaction where the spec asks for it; room for a 10 MB article everywhere."""
    size = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    if spec.compacted:
        return size | {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.1",
            "segment.ms": "600000",
            "delete.retention.ms": "86400000",
        }
    return size | {"cleanup.policy": "delete"}


def ensure_topics(
    bootstrap_servers: str,
    namespace: str = "",
    replication_factor: int = 1,
    partitions_override: dict[str, int] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create every topic of ``schemas.topics`` that does not exist yet; returns their names."""
    overrides = partitions_override or {}

    def name(spec: TopicSpec) -> str:
        return f"{namespace}.{spec.name}" if namespace else spec.name

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers.split(","), client_id="relwatch-admin",
                **client_security(),
            )
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        wanted = {
            name(spec): {
                "num_partitions": overrides.get(spec.name, spec.partitions),
                "replication_factor": replication_factor,
                "configs": topic_config(spec),
            }
            for spec in ALL_TOPICS
            if name(spec) not in existing
        }
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile: fine
                admin.create_topics(
                    wanted, timeout_ms=int(timeout_s * 1000), wait_for_metadata=True
                )
            log.info("topics_created", topics=sorted(wanted))
        return [name(spec) for spec in ALL_TOPICS]
    finally:
        admin.close()
