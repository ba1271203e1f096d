"""streams.kafka_io against the real broker: consumer-group lag asked once and over kept clients."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from streams import kafka_io
from streams.kafka_io import LagProbe, consumer_lag

pytestmark = pytest.mark.integration


def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group,
                             enable_auto_commit=False)
    try:
        consumer.assign(list(offsets))
        consumer.commit({tp: OffsetAndMetadata(n, "", -1) for tp, n in offsets.items()})
    finally:
        consumer.close()


def _first_answer(probe: LagProbe, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The probe's answer once the broker's group coordinator is up (it starts lazily)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return probe.lag(group, topics)
        except KafkaError:  # the failed question dropped the clients: the next one reconnects
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_probe_asked_again_sees_new_commits_and_topics_created_since(
    kafka_bootstrap: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, later = f"{namespace}.first", f"{namespace}.later"
    group = f"{namespace}-group"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(first, num_partitions=2, replication_factor=1)])
        for n in range(5):
            producer.send(first, value=b"x", partition=n % 2)  # 3 on partition 0, 2 on 1
        producer.flush()
        with LagProbe(kafka_bootstrap) as probe:
            # the later topic does not exist yet: no partitions of it, and none remembered
            assert _first_answer(probe, group, [first, later]) == {(first, 0): 3, (first, 1): 2}
            _commit(kafka_bootstrap, group, {TopicPartition(first, 0): 2})
            assert probe.lag(group, [first, later]) == {(first, 0): 1, (first, 1): 2}
            admin.create_topics([NewTopic(later, num_partitions=1, replication_factor=1)])
            producer.send(later, value=b"y")
            producer.flush()
            asked = probe.lag(group, [first, later])
            assert asked == {(first, 0): 1, (first, 1): 2, (later, 0): 1}
            assert consumer_lag(kafka_bootstrap, group, [first, later]) == asked
            probe.close()  # a dropped connection (a failed question) reconnects on the next
            assert probe.lag(group, [first]) == {(first, 0): 1, (first, 1): 2}
            # partitions added later: seen once the kept list is older than PARTITIONS_KEPT_S
            admin.create_partitions({first: NewPartitions(total_count=3)})
            fresh = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","))  # new metadata
            fresh.send(first, value=b"z", partition=2)
            fresh.close()
            assert (first, 2) not in probe.lag(group, [first])
            monkeypatch.setattr(kafka_io, "PARTITIONS_KEPT_S", 0.0)
            assert probe.lag(group, [first]) == {(first, 0): 1, (first, 1): 2, (first, 2): 1}
    finally:
        producer.close()
        admin.delete_topics([t for t in (first, later) if t in admin.list_topics()])
        admin.close()
