"""A real Apache Kafka broker started by streams.local_broker: produce, consume, compact, stop.

Runs on free ports in a temporary data dir, so it can run beside a developer's broker on 9092.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from streams.local_broker import BrokerError, BrokerStartError, LocalBroker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
        reason="needs a JDK 17+ to run the Kafka broker",
    ),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    port = _free_port()
    controller_port = _free_port()
    while controller_port == port:
        controller_port = _free_port()
    b = LocalBroker(
        data_dir=tmp_path_factory.mktemp("kafka"),
        port=port,
        controller_port=controller_port,
        heap_mb=384,
    )
    try:
        assert b.start(timeout=120) == f"127.0.0.1:{port}"
        yield b
    finally:
        b.stop()


@pytest.fixture
def admin(broker: LocalBroker) -> Iterator[KafkaAdminClient]:
    broker.start()  # no-op unless an earlier test stopped it
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="test-admin")
    try:
        yield client
    finally:
        client.close()


def test_start_is_idempotent_and_status_reports_the_process(broker: LocalBroker) -> None:
    broker.start()
    status = broker.status()
    assert status.running
    assert status.pid is not None and _pid_exists(status.pid)
    assert status.bootstrap == broker.bootstrap
    assert status.data_dir == broker.data_dir
    assert int(broker.pid_file.read_text()) == status.pid

    t0 = time.monotonic()
    assert broker.start() == broker.bootstrap
    assert time.monotonic() - t0 < 2.0
    assert broker.status().pid == status.pid  # no second JVM

    # KRaft storage was formatted with the persisted cluster id.
    cluster_id = (broker.data_dir / "cluster.id").read_text().strip()
    meta = (broker.data_dir / "kafka-logs" / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta
    assert b"Kafka Server started" in broker.server_log.read_bytes()


def test_produce_and_consume(broker: LocalBroker, admin: KafkaAdminClient) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        sent = producer.send(topic, key=b"k1", value="привет 안녕".encode()).get(timeout=30)
        producer.flush()
    finally:
        producer.close()
    assert sent.topic == topic
    assert sent.offset == 0  # auto-created topic, first record

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    try:
        records = []
        for record in consumer:
            records.append(record)
            break
        consumer.commit()
        committed = consumer.committed(next(iter(consumer.assignment())))
    finally:
        consumer.close()
    assert [(r.key, r.value) for r in records] == [(b"k1", "привет 안녕".encode())]
    assert committed == 1  # offsets topic works on a single node

    assert topic in admin.list_topics()


def test_compacted_topic(broker: LocalBroker, admin: KafkaAdminClient) -> None:
    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    admin.create_topics(
        {
            topic: {
                "num_partitions": 2,
                "replication_factor": 1,
                "configs": {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"},
            }
        },
        wait_for_metadata=True,
    )
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    topic_configs = configs["topic"][topic]
    assert topic_configs["cleanup.policy"]["value"] == "compact"
    assert topic_configs["cleanup.policy"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert topic_configs["min.cleanable.dirty.ratio"]["value"] == "0.01"

    (described,) = admin.describe_topics([topic])
    assert described["name"] == topic
    assert len(described["partitions"]) == 2
    assert all(p["leader_id"] == 1 for p in described["partitions"])


def test_second_broker_on_a_taken_port_is_refused(broker: LocalBroker, tmp_path: Path) -> None:
    broker.start()
    other = LocalBroker(data_dir=tmp_path / "other", port=broker.port, controller_port=_free_port())
    with pytest.raises(BrokerError, match="already in use"):
        other.start(timeout=30)
    assert not other.status().running
    assert broker.status().running


def test_start_failure_reports_the_log_tail(tmp_path: Path) -> None:
    bad = LocalBroker(
        data_dir=tmp_path / "bad", port=_free_port(), controller_port=_free_port(), heap_mb=1
    )  # -Xmx1m: the JVM cannot even boot
    with pytest.raises(BrokerStartError, match=r"exited during start[\s\S]*broker\.out"):
        bad.start(timeout=60)
    assert not bad.status().running
    assert not bad.pid_file.exists()


def test_stop_kills_the_process_and_frees_the_port(
    broker: LocalBroker, admin: KafkaAdminClient
) -> None:
    kept = f"kept-{uuid.uuid4().hex[:8]}"
    admin.create_topics({kept: {"num_partitions": 1, "replication_factor": 1}})
    pid = broker.status().pid
    assert pid is not None

    cluster_id = admin.describe_cluster()["cluster_id"]
    assert broker.stop() is True
    assert not _pid_exists(pid)
    assert not _port_open(broker.port)
    assert not _port_open(broker.controller_port)
    assert not broker.pid_file.exists()
    status = broker.status()
    assert not status.running and status.pid is None
    assert broker.stop() is False  # already stopped

    # A restart reuses the formatted storage: same cluster, the topic is still there.
    broker.start(timeout=120)
    try:
        client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="test-restart")
        try:
            assert kept in client.list_topics()
            assert client.describe_cluster()["cluster_id"] == cluster_id
        finally:
            client.close()
    finally:
        assert broker.stop() is True
    assert not _port_open(broker.port)
