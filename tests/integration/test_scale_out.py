"""Scale-out on the local broker: three workers, several partitions, the same timeline.

Three ``relwatch worker`` processes (one consumer group) run the pipeline with
``articles.raw`` on 3 partitions and ``articles.unique`` on 6, so that normalize and
extraction really are spread over the workers, while dedupe (``articles.clean``) and the
timeline merge (``events.mentions``) stay on one partition each. The timeline they publish must
equal, entry for entry, the one the same pure pipeline computes in one process
(``streams.pipeline``), which ``tests/integration/test_faults.py`` shows is what one worker
publishes.

Why the reference is computed in the order dedupe saw: with ``articles.raw`` on several
partitions, normalize runs on several workers and the articles reach ``articles.clean`` in an
interleaving that differs from the order they were produced in (docs/delivery-semantics.md,
docs/partitioning.md). Dedupe keeps the *first* copy of a repost, and the timeline's evidence
comes from the copy that was kept, so the timeline is a deterministic function of that order,
not of the production order. A stream "without reposts" does not avoid this: the generated
articles draw their sentences from one corpus, and at dedupe's threshold (estimated Jaccard 0.2)
most of them are near-duplicates of one another anyway (about 70% of an 800-article stream with
``repost_share=0``). So the test reads ``articles.clean`` (one partition: exactly the order
dedupe consumed) and runs the reference in that order: the comparison stays exact, reposts
included. That every other stage is order-free is what the comparison then proves: extraction
is per article and the merge is order-independent (property test in test_timeline.py).

In the special case that the interleaving equals the production order, the reference is the
single-worker run itself. The test also checks that the same articles were kept as first
copies and the same mentions extracted, that no message was dead-lettered, and that each of the
three workers did part of the normalize and extract work.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.stream import build_stream
from producers.kafka_producer import deliver_all
from producers.topics import ensure_topics
from schemas.models import CleanArticle, DeadLetter, DuplicateNotice, EventMention, TimelineEntry
from streams.kafka_io import read_timeline, read_topic
from streams.pipeline import InProcessPipeline
from streams.runner import WorkerProcess, wait_until_drained
from streams.settings import Settings, load_settings

pytestmark = pytest.mark.integration

N_ARTICLES = 600
WORKERS = 3
RAW_PARTITIONS = 3
UNIQUE_PARTITIONS = 6
_METRIC = re.compile(r'^relwatch_stage_processed_total\{stage="(\w+)"\}\s+([0-9.e+]+)$', re.M)


def _settings(namespace: str, tmp_path: Path) -> Settings:
    # A generous session timeout: three CPU-bound workers share this machine's two cores with
    # the broker, and a worker whose event loop is busy extracting must not be taken for dead
    # (a rebalance mid-run is what tests/integration/test_faults.py is about, not this test).
    return load_settings(namespace=namespace, data_dir=tmp_path / "state", commit_interval_s=0.5,
                         session_timeout_s=30.0, heartbeat_interval_s=3.0,
                         raw_partitions=RAW_PARTITIONS, unique_partitions=UNIQUE_PARTITIONS)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _wait_until_all_ready(workers: list[WorkerProcess], timeout_s: float = 180) -> None:
    """Every worker answers /ready at once, twice in a row: the group has settled."""
    deadline = time.monotonic() + timeout_s
    in_a_row = 0
    while in_a_row < 2:
        for w in workers:
            assert w.alive, f"worker {w.name} died:\n{w.log_tail()}"
        ready = all(_get(w.web_port, "/ready")[0] == 200 for w in workers)
        in_a_row = in_a_row + 1 if ready else 0
        if time.monotonic() > deadline:
            raise TimeoutError("workers not ready:\n" + "\n".join(w.log_tail(5) for w in workers))
        time.sleep(1.0)


def _processed(worker: WorkerProcess) -> dict[str, float]:
    status, body = _get(worker.web_port, "/metrics")
    assert status == 200, f"/metrics of {worker.name}: {status}"
    return {stage: float(value) for stage, value in _METRIC.findall(body)}


def _produce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    """Through the project's own producer (acks=all, retries, ordered); every record acked."""
    report = deliver_all(bootstrap, topic, payloads)
    assert report.failed == 0 and report.delivered == len(payloads), report


def _dump(entries: list[TimelineEntry]) -> dict[str, dict[str, object]]:
    return {e.id: json.loads(e.model_dump_json()) for e in entries}


def test_three_workers_on_several_partitions_publish_the_same_timeline(
    kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    stream = build_stream(N_ARTICLES, seed=29)
    raws = {item.article.id: item.article for item in stream}
    settings = _settings(namespace, tmp_path)
    ensure_topics(kafka_bootstrap, namespace, partitions_override={
        "articles.raw": RAW_PARTITIONS, "articles.unique": UNIQUE_PARTITIONS})
    workers = [WorkerProcess(settings, kafka_bootstrap, tmp_path / f"worker{i}.log",
                             name=f"w{i}").start() for i in range(WORKERS)]
    try:
        _wait_until_all_ready(workers)
        _produce(kafka_bootstrap, settings.topic_name("articles.raw"),
                 [(a.id.encode(), a.model_dump_json().encode()) for a in raws.values()])
        wait_until_drained(settings, kafka_bootstrap, workers, timeout_s=300)
        for w in workers:
            assert w.alive, f"worker {w.name} died:\n{w.log_tail()}"
        work = {w.name: _processed(w) for w in workers}
        timeline = read_timeline(kafka_bootstrap, settings.topic_name("timeline.entries"),
                                 timeout_s=60)
        clean, unique_records, duplicate_records, mention_records, letters = (
            list(read_topic(kafka_bootstrap, settings.topic_name(name)))
            for name in ("articles.clean", "articles.unique", "articles.duplicates",
                         "events.mentions", "deadletter"))
    finally:
        for w in workers:
            w.stop()

    assert not letters, [DeadLetter.model_validate_json(r.value).reason for r in letters[:5]]
    # the order dedupe consumed: articles.clean has one partition (first copy of a redelivery)
    assert {r.partition for r in clean} == {0}
    order: list[str] = []
    for record in sorted(clean, key=lambda r: r.offset):
        article_id = CleanArticle.model_validate_json(record.value).id
        if article_id not in order:
            order.append(article_id)
    assert sorted(order) == sorted(raws), "every article normalized, none lost"

    reference = InProcessPipeline()
    for article_id in order:
        reference.process(raws[article_id])
    assert reference.duplicates, "the stream must exercise dedupe"
    duplicates = {}
    for record in duplicate_records:
        notice = DuplicateNotice.model_validate_json(record.value)
        duplicates[notice.article_id] = notice.duplicate_of
    assert duplicates == {d.article_id: d.duplicate_of for d in reference.duplicates}, (
        "the same first copies, given the same order")
    assert {r.key.decode() for r in unique_records if r.key} == set(raws) - set(duplicates)

    mention_ids = {EventMention.model_validate_json(r.value).mention_id for r in mention_records}
    assert mention_ids == {m.mention_id for m in reference.mentions}, "the same mentions"
    got, want = _dump(timeline), _dump(reference.entries())
    if got != want:  # keep both for the post-mortem
        (tmp_path / "timeline-got.json").write_text(json.dumps(got, indent=1, sort_keys=True))
        (tmp_path / "timeline-want.json").write_text(json.dumps(want, indent=1, sort_keys=True))
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    different = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    assert got == want, (f"{len(got)} entries on the topic, {len(want)} expected; missing "
                         f"{missing}, unexpected {unexpected}, different {different} (both in "
                         f"{tmp_path}); work per worker: {work}")

    # the work really was spread: each worker normalized and extracted part of the stream
    for stage in ("normalize", "extract"):
        per_worker = {name: counts.get(stage, 0.0) for name, counts in work.items()}
        assert all(n > 0 for n in per_worker.values()), (stage, per_worker)
    assert sum(c.get("normalize", 0.0) for c in work.values()) >= N_ARTICLES
    # dedupe (one partition) saw every article at least once, wherever it ran
    assert sum(c.get("dedupe", 0.0) for c in work.values()) >= N_ARTICLES
