"""End to end through the real broker and a real worker process."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from producers.topics import ensure_topics
from schemas.models import CleanArticle, DeadLetter, RawArticle
from schemas.topics import FINGERPRINT_HEADER
from streams import dedupe
from streams.kafka_io import read_timeline, read_topic
from streams.runner import WorkerProcess, wait_until_drained
from streams.settings import load_settings

pytestmark = pytest.mark.integration

# Written for these tests; not news text.
SUMMIT_TEXT = (
    "MOSCOW, March 4, 2025 -- Russian President Vladimir Putin met North Korean leader "
    "Kim Jong Un in Moscow on Tuesday, and the two leaders signed an agreement on economic "
    "cooperation, the Kremlin said."
)


def _article(article_id: str, text: str, published: str | None = "2025-03-06") -> bytes:
    raw = RawArticle(id=article_id, url=f"https://example.org/{article_id}", outlet="example.org",
                     lang="en", published=published, title=None, text=text,
                     ingested_at=time.time())
    return raw.model_dump_json().encode()


@pytest.fixture
def pipeline(kafka_bootstrap: str, namespace: str, tmp_path: Path):
    settings = load_settings(namespace=namespace, data_dir=tmp_path / "state",
                             commit_interval_s=0.2)
    ensure_topics(kafka_bootstrap, namespace)
    worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker.log").start()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        yield settings, producer, worker
    finally:
        producer.close()
        worker.stop()


def test_an_article_reaches_the_compacted_timeline(pipeline, kafka_bootstrap: str) -> None:
    settings, producer, worker = pipeline
    producer.send(settings.topic_name("articles.raw"), key=b"it-1",
                  value=_article("it-1", SUMMIT_TEXT)).get(30)
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)
    entries = read_timeline(kafka_bootstrap, settings.topic_name("timeline.entries"))
    assert entries, worker.log_tail()
    assert all(any(m.article_id == "it-1" for m in e.mentions) for e in entries)
    countries = {a[:3] for e in entries for a in e.actors}
    assert {"RUS", "PRK"} <= countries
    # the timeline records are keyed by the entry id
    records = list(read_topic(kafka_bootstrap, settings.topic_name("timeline.entries")))
    assert {r.key.decode() for r in records if r.value} == {e.id for e in entries}
    # the clean article carries its near-duplicate fingerprint, made by the stage process
    [clean] = read_topic(kafka_bootstrap, settings.topic_name("articles.clean"))
    article = CleanArticle.model_validate_json(clean.value)
    assert clean.headers[FINGERPRINT_HEADER] == dedupe.text_fingerprint(article.text)


def test_a_malformed_message_is_dead_lettered_and_the_next_goes_through(
    pipeline, kafka_bootstrap: str
) -> None:
    settings, producer, worker = pipeline
    raw_topic = settings.topic_name("articles.raw")
    bad = b"\xff\xfe{ this is not json"
    producer.send(raw_topic, key=b"bad-1", value=bad).get(30)
    producer.send(raw_topic, key=b"bad-2", value=json.dumps({"id": "x"}).encode()).get(30)
    producer.send(raw_topic, key=b"good-1", value=_article("good-1", SUMMIT_TEXT)).get(30)
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)
    assert worker.alive
    letters = [DeadLetter.model_validate_json(r.value)
               for r in read_topic(kafka_bootstrap, settings.topic_name("deadletter"))]
    by_key = {base64.b64decode(dl.key_b64 or "").decode(): dl for dl in letters}
    assert set(by_key) == {"bad-1", "bad-2"}
    assert base64.b64decode(by_key["bad-1"].value_b64) == bad
    assert by_key["bad-1"].reason.startswith("invalid_json")
    assert by_key["bad-2"].reason.startswith("schema_violation")
    assert by_key["bad-1"].stage == "normalize"
    entries = read_timeline(kafka_bootstrap, settings.topic_name("timeline.entries"))
    assert any(m.article_id == "good-1" for e in entries for m in e.mentions)
