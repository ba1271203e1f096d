"""Shared fixtures: the real Kafka broker, the shared corpora, per-test namespaces."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RELWATCH_SHARED_DIR", REPO_ROOT.parent / "shared"))
TEST_BROKER_PORT = int(os.environ.get("RELWATCH_TEST_BROKER_PORT", "19192"))


def _testcontainers_kafka() -> Iterator[str] | None:
    """testcontainers' Kafka (KRaft) when a Docker daemon answers; None otherwise."""
    try:
        from testcontainers.kafka import KafkaContainer
    except ImportError:
        return None
    try:
        container = KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft()
    except Exception:  # docker.errors.DockerException: no daemon on this machine
        return None

    def run() -> Iterator[str]:
        with container as kafka:
            yield kafka.get_bootstrap_server()

    return run()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real broker: $KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else deploy/kafka's broker."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    container = _testcontainers_kafka()
    if container is not None:
        yield from container
        return
    from streams.local_broker import LocalBroker

    data_dir = Path(tempfile.mkdtemp(prefix="relwatch-test-broker-"))
    broker = LocalBroker(data_dir=data_dir, port=TEST_BROKER_PORT,
                         controller_port=TEST_BROKER_PORT + 1)
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def namespace() -> str:
    """A fresh topic namespace (and consumer group) per test."""
    return f"t{uuid.uuid4().hex[:10]}"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the shared corpora live beside the repo in ../shared")
    return path


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return _need(SHARED / "seeds")


@pytest.fixture(scope="session")
def dev_dir() -> Path:
    return _need(SHARED / "corpus" / "dev")


def read_jsonl(path: Path) -> list[dict[str, object]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def seed_records(seeds_dir: Path) -> list[dict[str, object]]:
    return read_jsonl(seeds_dir / "articles.jsonl")


@pytest.fixture(scope="session")
def dev_records(dev_dir: Path) -> list[dict[str, object]]:
    return read_jsonl(dev_dir / "articles.jsonl")
