"""Plain kafka-python helpers: read a compacted topic to its end, measure consumer lag."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from schemas.models import TimelineEntry

from .lag import partition_lag
from .security import client_security


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int
    timestamp_ms: int


def read_topic(bootstrap_servers: str, topic: str, timeout_s: float = 30.0) -> Iterator[Record]:
    """Every record of ``topic`` from the beginning to the end offsets seen at the start."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        **client_security(),
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > consumer.position(tp)}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=2000)
            for tp, messages in batch.items():
                for msg in messages:
                    if msg.offset >= end[tp]:
                        continue
                    yield Record(
                        msg.key,
                        msg.value,
                        dict(msg.headers or []),
                        msg.partition,
                        msg.offset,
                        msg.timestamp,
                    )
            for tp in list(remaining):
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        if remaining:
            raise TimeoutError(f"could not read {topic} to its end in {timeout_s:.0f}s")
    finally:
        consumer.close()


def fold_timeline(records: Iterator[Record]) -> dict[str, TimelineEntry]:
    """Apply records of a compacted timeline topic in order: last value wins, null deletes."""
    entries: dict[str, TimelineEntry] = {}
    for record in records:
        if record.key is None:
            continue
        key = record.key.decode()
        if record.value is None:
            entries.pop(key, None)
        else:
            entries[key] = TimelineEntry.model_validate_json(record.value)
    return entries


def read_timeline(
    bootstrap_servers: str, topic: str, timeout_s: float = 30.0
) -> list[TimelineEntry]:
    entries = fold_timeline(read_topic(bootstrap_servers, topic, timeout_s))
    return sorted(entries.values(), key=lambda e: (e.date, e.id))


PARTITIONS_KEPT_S = 30.0


def described_partitions(described: list[dict[str, Any]]) -> list[TopicPartition]:
    """The partitions of the topics ``KafkaAdminClient.describe_topics`` found (those it
    reports an error for are left out), in topic and partition order."""
    return [
        TopicPartition(meta["name"], p["partition_index"])
        for meta in described
        if meta["error_code"] == 0
        for p in sorted(meta["partitions"], key=lambda p: int(p["partition_index"]))
    ]


class LagProbe:
    """Consumer-group lag, asked repeatedly over the same two clients.

    A drain wait asks several times a second; a new admin client and consumer per question
    cost this process and the broker a connection, version probes and a metadata fetch each
    time (in the benchmark, polling every 0.1 s, more CPU than the producer). A failed question
    drops the clients, so the next one reconnects (after a broker restart, say).

    Partitions come from the admin client, whose requests time out: kafka-python 3's
    ``KafkaConsumer.partitions_for_topic`` waits on a metadata refresh with no time limit, and
    once hung a test's drain wait (and would pile up threads of the worker's lag timer).
    """

    def __init__(self, bootstrap_servers: str) -> None:
        self._servers = bootstrap_servers.split(",")
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self._partitions: dict[tuple[str, ...], tuple[float, list[TopicPartition]]] = {}

    def lag(self, group_id: str, topics: list[str]) -> dict[tuple[str, int], int]:
        """Lag of ``group_id`` per (topic, partition): end offset minus committed offset."""
        try:
            if self._admin is None or self._consumer is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self._servers, client_id="relwatch-lag", **client_security()
                )
                self._consumer = self._new_consumer()
            committed = self._admin.list_group_offsets({group_id: None}).get(group_id, {})
            tps = self._topic_partitions(self._admin, topics)
            try:
                end = self._consumer.end_offsets(tps)
            except KeyError:  # a partition created since the consumer's last metadata fetch
                self._consumer.close()
                self._consumer = self._new_consumer()
                end = self._consumer.end_offsets(tps)
        except BaseException:
            self.close()
            raise
        return partition_lag(tps, committed, end)

    def _new_consumer(self) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=self._servers, group_id=None, **client_security())

    def _topic_partitions(self, admin: KafkaAdminClient, topics: list[str]
                          ) -> list[TopicPartition]:
        """The topics' partitions, kept for :data:`PARTITIONS_KEPT_S` once every topic was
        found (missing ones are asked for again next time; added partitions are seen within
        that time by a long-running probe, such as the monitor's)."""
        key = tuple(topics)
        kept = self._partitions.get(key)
        if kept is not None and time.monotonic() - kept[0] < PARTITIONS_KEPT_S:
            return kept[1]
        described = admin.describe_topics(topics)
        tps = described_partitions(described)
        if len(described) == len(topics) and all(m["error_code"] == 0 for m in described):
            self._partitions[key] = (time.monotonic(), tps)
        return tps

    def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                client.close()
        self._admin = self._consumer = None

    def __enter__(self) -> LagProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def consumer_lag(
    bootstrap_servers: str, group_id: str, topics: list[str]
) -> dict[tuple[str, int], int]:
    """Lag of ``group_id`` per (topic, partition), asked once (:class:`LagProbe` to ask again)."""
    with LagProbe(bootstrap_servers) as probe:
        return probe.lag(group_id, topics)
