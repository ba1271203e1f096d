"""The worker's HTTP API and its live stream of timeline changes, against the real broker."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from producers.topics import ensure_topics
from schemas.models import RawArticle
from schemas.topics import WORKER_INPUT_TOPICS
from streams.runner import WorkerProcess, wait_until_drained
from streams.settings import Settings, load_settings

pytestmark = pytest.mark.integration

# Written for these tests; not news text.
FIRST = ("MOSCOW, March 4, 2025 -- Russian President Vladimir Putin met North Korean leader "
         "Kim Jong Un in Moscow on Tuesday, and the two leaders signed an agreement on "
         "economic cooperation, the Kremlin said.")
SECOND = ("PYONGYANG, May 6, 2025 -- Russian Foreign Minister Sergei Lavrov held talks with "
          "North Korean Foreign Minister Choe Son Hui in Pyongyang on Tuesday.")


def _raw(article_id: str, text: str, published: str) -> bytes:
    return RawArticle(id=article_id, url=f"https://example.org/{article_id}",
                      outlet="example.org", lang="en", published=published, text=text,
                      ingested_at=time.time()).model_dump_json().encode()


def _wait_http(url: str, timeout_s: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.3)


def _lag_samples(metrics: str) -> dict[tuple[str, str], float]:
    samples = {}
    for family in text_string_to_metric_families(metrics):
        if family.name == "relwatch_consumer_lag_messages":
            for sample in family.samples:
                samples[(sample.labels["topic"], sample.labels["partition"])] = sample.value
                assert sample.labels["group"]
    return samples


def _assert_lag_exported(base: str, settings: Settings) -> None:
    """Lag per topic and partition of the worker's group, for every topic the group reads;
    zero everywhere once the pipeline has drained (the timer refreshes it every second)."""
    expected = {(settings.topic_name(spec.name), str(p))
                for spec in WORKER_INPUT_TOPICS
                for p in range(spec.partitions)}
    deadline = time.monotonic() + 30
    while True:
        samples = _lag_samples(httpx.get(f"{base}/metrics", timeout=10).text)
        if set(samples) == expected and not any(samples.values()):
            return
        assert time.monotonic() < deadline, (sorted(expected), samples)
        time.sleep(0.5)


def _assert_table_memory_exported(base: str, settings: Settings) -> None:
    """The RAM of each table's RocksDB store, by kind: the mentions table has written (its
    memtables hold the mentions) once an article reached the timeline."""
    deadline = time.monotonic() + 30
    while True:
        found: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(httpx.get(f"{base}/metrics",
                                                                timeout=10).text):
            if family.name == "relwatch_table_memory_bytes":
                found |= {(s.labels["table"], s.labels["kind"]): s.value for s in family.samples}
        tables = {table for table, _ in found}
        if found.get(("timeline-mentions", "memtables"), 0) > 0:
            assert tables == {"dedupe-signatures", "timeline-mentions", "timeline-reposts"}
            assert {kind for _, kind in found} == {"block_cache", "memtables", "table_readers"}
            return
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


def test_api_and_server_sent_events(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    settings = load_settings(namespace=namespace, data_dir=tmp_path / "state",
                             commit_interval_s=0.2, lag_metrics_interval_s=1.0)
    ensure_topics(kafka_bootstrap, namespace)
    worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker.log").start()
    base = f"http://127.0.0.1:{worker.web_port}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        assert _wait_http(f"{base}/health").json() == {"status": "ok"}
        raw_topic = settings.topic_name("articles.raw")
        producer.send(raw_topic, key=b"api-1", value=_raw("api-1", FIRST, "2025-03-06")).get(30)
        wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)
        assert _wait_http(f"{base}/ready").json() == {"ready": True}

        entries = httpx.get(f"{base}/timeline", timeout=10).json()
        assert entries, worker.log_tail()
        first = entries[0]
        assert httpx.get(f"{base}/timeline/{first['id']}", timeout=10).json() == first
        assert httpx.get(f"{base}/timeline/tl-nope", timeout=10).status_code == 404
        assert httpx.get(f"{base}/timeline", params={"actor": "USA"}, timeout=10).json() == []
        assert httpx.get(f"{base}/timeline", params={"since": "2026"}, timeout=10).json() == []
        assert httpx.get(f"{base}/timeline", params={"actor": "PRK", "until": "2025-12"},
                         timeout=10).json() == entries

        received: list[str] = []

        def listen() -> None:
            with httpx.stream("GET", f"{base}/timeline/stream", timeout=30) as response:
                for line in response.iter_lines():
                    received.append(line)
                    if line.startswith("data:") and "api-2" in line:
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(1.0)  # subscribed before the change happens
        producer.send(raw_topic, key=b"api-2", value=_raw("api-2", SECOND, "2025-05-06")).get(30)
        listener.join(60)
        assert any(line == "event: upsert" for line in received), received[-5:]
        assert any(line.startswith("data:") and "api-2" in line for line in received)

        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'relwatch_stage_processed_total{stage="normalize"} 2.0' in metrics
        assert "relwatch_ingest_to_timeline_seconds_bucket" in metrics
        _assert_lag_exported(base, settings)
        if settings.store.startswith("rocksdb"):
            _assert_table_memory_exported(base, settings)
    finally:
        producer.close()
        worker.stop()
