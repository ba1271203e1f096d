"""The compacted timeline topic against the real broker, read back with plain consumers:
merge tombstones, compaction, expiry into the archive, and ``relwatch reprocess``.

The sink tests write event mentions straight onto ``events.mentions`` — the contract topic the
timeline agent consumes — so that each scenario is exact; the reprocess test starts from raw
articles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from producers.articles import raw_article_from_record
from producers.kafka_producer import deliver_all
from producers.topics import ensure_topics
from schemas.models import EventMention
from streams.kafka_io import Record, fold_timeline, read_timeline, read_topic
from streams.pipeline import run_in_process
from streams.runner import WorkerProcess, wait_until_drained
from streams.settings import Settings, load_settings
from streams.timeline import entry_id_for

pytestmark = pytest.mark.integration

DAY = 86400.0


def _mention(mid: str, **over: Any) -> EventMention:
    """A synthetic mention: RUSGOV signs with PRKGOV on 2024-06-19, reported now."""
    fields: dict[str, Any] = {
        "mention_id": mid, "article_id": f"art-{mid}", "wire_id": f"art-{mid}",
        "url": f"https://outlet-{mid}.example/news/{mid}", "outlet": f"outlet-{mid}.example",
        "lang": "en", "quote": f"Synthetic sentence {mid}.", "cameo_code": "057",
        "cameo_root": "05", "source_actor": "RUSGOV", "target_actor": "PRKGOV", "actors": [],
        "date": "2024-06-19", "date_precision": "day", "goldstein": 8.0,
        "ingested_at": time.time(), "extractor_version": "it-1",
    }
    fields.update(over)
    return EventMention(**fields)


def _send_mentions(bootstrap: str, settings: Settings, mentions: list[EventMention]) -> None:
    report = deliver_all(bootstrap, settings.topic_name("events.mentions"),
                         [(m.mention_id.encode(), m.model_dump_json().encode()) for m in mentions])
    assert report.failed == 0 and report.delivered == len(mentions)


def _records(bootstrap: str, settings: Settings, base: str) -> list[Record]:
    return list(read_topic(bootstrap, settings.topic_name(base), timeout_s=30))


@pytest.fixture
def worker_for(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(**overrides: Any) -> tuple[Settings, WorkerProcess]:
        settings = load_settings(namespace=namespace, data_dir=tmp_path / "state",
                                 commit_interval_s=0.2, **overrides)
        ensure_topics(kafka_bootstrap, namespace)
        worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / f"w{len(started)}.log",
                               name=f"w{len(started)}").start()
        started.append(worker)
        return settings, worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def test_merge_tombstone_names_the_survivor_and_compaction_keeps_the_last_value(
    kafka_bootstrap: str, worker_for: Any
) -> None:
    settings, worker = worker_for()
    topic = settings.topic_name("timeline.entries")
    # compact this test's topic quickly: roll segments at once, clean at any dirt ratio
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
            "cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "86400000", "max.message.bytes": "16777216"})])
    finally:
        admin.close()

    # the 18th and the 20th are two events; a report of the 19th shows they are one
    _send_mentions(kafka_bootstrap, settings, [_mention("b", date="2024-06-18"),
                                               _mention("c", date="2024-06-20")])
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)
    assert {e.id for e in read_timeline(kafka_bootstrap, topic)} == {
        entry_id_for("b"), entry_id_for("c")}
    _send_mentions(kafka_bootstrap, settings, [_mention("a2", date="2024-06-19")])
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)

    survivor = entry_id_for("a2")
    entries = read_timeline(kafka_bootstrap, topic)
    assert [e.id for e in entries] == [survivor]
    assert entries[0].mention_count == 3
    records = _records(kafka_bootstrap, settings, "timeline.entries")
    last = {r.key.decode(): r for r in records if r.key}
    for absorbed in (entry_id_for("b"), entry_id_for("c")):
        assert last[absorbed].value is None, "the absorbed entry ends in a tombstone"
        assert last[absorbed].headers.get("relwatch-merged-into") == survivor.encode()
    assert last[survivor].value is not None

    # one more change rolls the segment; the cleaner then keeps the last record per key
    time.sleep(0.5)
    _send_mentions(kafka_bootstrap, settings, [_mention("z", cameo_code="042", cameo_root="04",
                                                        date="2024-09-02")])
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)
    deadline = time.monotonic() + 90
    while True:
        records = _records(kafka_bootstrap, settings, "timeline.entries")
        keys = [r.key for r in records]
        if keys.count(survivor.encode()) == 1:
            break
        assert time.monotonic() < deadline, f"not compacted: {len(records)} records"
        time.sleep(2)
    assert fold_timeline(iter(records)).keys() == {survivor, entry_id_for("z")}


def test_expired_entries_are_tombstoned_and_archived(
    kafka_bootstrap: str, worker_for: Any
) -> None:
    settings, worker = worker_for(timeline_horizon_days=30.0, timeline_expire_interval_s=0.0)
    now = time.time()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    old = _mention("old", date="2024-06-19", ingested_at=now - 60 * DAY)
    old_event_new_evidence = _mention("revisited", cameo_code="042", cameo_root="04",
                                      date="2024-05-02", ingested_at=now)
    fresh = _mention("fresh", cameo_code="036", cameo_root="03", date=today, ingested_at=now)
    _send_mentions(kafka_bootstrap, settings, [old, old_event_new_evidence, fresh])
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)

    topic = settings.topic_name("timeline.entries")
    kept = {e.id for e in read_timeline(kafka_bootstrap, topic)}
    assert kept == {entry_id_for("revisited"), entry_id_for("fresh")}
    records = _records(kafka_bootstrap, settings, "timeline.entries")
    gone = [r for r in records if r.key == entry_id_for("old").encode()]
    assert gone[-1].value is None and gone[-1].headers.get("relwatch-change") == b"expire"
    archive = fold_timeline(iter(_records(kafka_bootstrap, settings, "timeline.archive")))
    assert set(archive) == {entry_id_for("old")}
    assert archive[entry_id_for("old")].mentions[0].mention_id == "old"


def _consume_all(bootstrap: str, topic: str, start_offset: int) -> list[tuple[bytes, Any]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        return [(m.key, m.value) for m in consumer if m.offset >= start_offset]
    finally:
        consumer.close()


def test_reprocess_publishes_corrections_not_a_reset(
    kafka_bootstrap: str, worker_for: Any, seed_records: list[dict[str, object]]
) -> None:
    settings, worker = worker_for()
    now = time.time()
    raws = [raw_article_from_record(r, source="seeds", ingested_at=now + i)
            for i, r in enumerate(seed_records)]
    report = deliver_all(kafka_bootstrap, settings.topic_name("articles.raw"),
                         [(raw.id.encode(), raw.model_dump_json().encode()) for raw in raws])
    assert report.failed == 0 and report.delivered == len(raws)
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=180)
    topic = settings.topic_name("timeline.entries")
    expected = {e.id: e for e in run_in_process(raws)}
    assert {e.id: e for e in read_timeline(kafka_bootstrap, topic)} == expected

    # an older extractor left a wrong date on one mention and a spurious event on another
    live = [EventMention.model_validate_json(r.value or b"")
            for r in _records(kafka_bootstrap, settings, "events.mentions")]
    victim = live[0]
    stale = victim.model_copy(update={"date": "2019-04-25", "date_precision": "day",
                                      "extractor_version": "0.0.1-old"})
    ghost = _mention("ghost", article_id=raws[0].id, wire_id=raws[0].id, cameo_code="190",
                     cameo_root="19", source_actor="RUSMIL", target_actor="PRKMIL",
                     date="2019-01-02", ingested_at=now, extractor_version="0.0.1-old")
    mark = len(_records(kafka_bootstrap, settings, "timeline.entries"))
    _send_mentions(kafka_bootstrap, settings, [stale, ghost])
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)
    corrupted = {e.id: e for e in read_timeline(kafka_bootstrap, topic)}
    assert corrupted != expected and entry_id_for("ghost") in corrupted
    touched_by_corruption = {k for k, _ in _consume_all(kafka_bootstrap, topic, mark)}

    mark = len(_records(kafka_bootstrap, settings, "timeline.entries"))
    env = worker.env()
    out = subprocess.run([sys.executable, "-m", "streams.cli", "reprocess"], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert (plan["send"], plan["retract"]) == (1, 1), out.stderr[-2000:]
    wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=120)

    assert {e.id: e for e in read_timeline(kafka_bootstrap, topic)} == expected
    corrections = _consume_all(kafka_bootstrap, topic, mark)
    assert corrections, "the corrections are ordinary timeline records"
    assert {k for k, _ in corrections} <= touched_by_corruption, "corrections, not a reset"
    assert (entry_id_for("ghost").encode(), None) in corrections
