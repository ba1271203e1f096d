"""Crashes, restarts and hostile input, against the real broker and real worker processes.

The proof of the delivery semantics in docs/delivery-semantics.md: at-least-once processing
with an idempotent, deterministic sink. Each test compares the timeline on the topic with the
one the same pure pipeline computes in-process (``streams.pipeline``) — the undisturbed run;
``test_undisturbed_run_equals_in_process`` checks that this reference is right.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.stream import StreamItem, build_stream
from producers.kafka_producer import deliver_all
from producers.topics import ensure_topics
from schemas.models import DeadLetter, TimelineEntry
from streams.kafka_io import read_timeline, read_topic
from streams.pipeline import run_in_process
from streams.runner import WorkerProcess, wait_until_drained
from streams.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N_ARTICLES = 2000


def _settings(namespace: str, tmp_path: Path) -> Settings:
    return load_settings(namespace=namespace, data_dir=tmp_path / "state", commit_interval_s=0.5,
                         session_timeout_s=8.0, heartbeat_interval_s=2.0)


def _produce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    """Through the project's own producer (acks=all, retries, ordered); every record acked."""
    report = deliver_all(bootstrap, topic, payloads)
    assert report.failed == 0 and report.delivered == len(payloads), report


def _timeline_dump(entries: list[TimelineEntry]) -> dict[str, dict[str, object]]:
    return {e.id: json.loads(e.model_dump_json()) for e in entries}


def _explain(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> str:
    """A short account of how two timeline dumps differ (the full diff is unreadable)."""
    lines = [f"{len(got)} entries on the topic, {len(want)} expected"]
    for eid in sorted(set(got) | set(want)):
        a, b = got.get(eid), want.get(eid)
        if a == b:
            continue
        if a is None or b is None:
            doc = a or b or {}
            side = "missing" if a is None else "unexpected"
            mids = sorted(str(m["mention_id"]) for m in doc.get("mentions", []))
            lines.append(f"{side} {eid} {doc.get('date')} {doc.get('cameo_code')} {mids}")
            continue
        fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        ma = {str(m["mention_id"]) for m in a.get("mentions", [])}
        mb = {str(m["mention_id"]) for m in b.get("mentions", [])}
        lines.append(f"differs {eid}: fields {fields}; mentions extra {sorted(ma - mb)} "
                     f"missing {sorted(mb - ma)}; "
                     + "; ".join(f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in fields
                                 if k not in ("mentions",))[:800])
    return "\n".join(lines[:40])


def _where_are_the_mentions(bootstrap: str, settings: Settings,
                            got: dict[str, dict[str, Any]],
                            want: dict[str, dict[str, Any]]) -> str:
    """For mentions the topic's timeline lacks: are they on events.mentions at all?"""
    have = {str(m["mention_id"]) for e in got.values() for m in e["mentions"]}
    lacking = {str(m["mention_id"]): str(m["article_id"])
               for e in want.values() for m in e["mentions"]}
    lacking = {k: v for k, v in lacking.items() if k not in have}
    if not lacking:
        return ""
    on_topic = {r.key.decode() for r in read_topic(bootstrap, settings.topic_name(
        "events.mentions"), timeout_s=60) if r.key}
    unique = {r.key.decode() for r in read_topic(bootstrap, settings.topic_name(
        "articles.unique"), timeout_s=60) if r.key}
    dups = {r.key.decode() for r in read_topic(bootstrap, settings.topic_name(
        "articles.duplicates"), timeout_s=60) if r.key}
    letters = [DeadLetter.model_validate_json(r.value) for r in read_topic(
        bootstrap, settings.topic_name("deadletter"), timeout_s=60) if r.value]
    return f"\ndead letters: {[(dl.stage, dl.reason[:300]) for dl in letters][:10]}" + (
        "\nlacking mentions: ") + ", ".join(
        f"{mid} (article {aid}: on mentions topic {mid in on_topic}, unique {aid in unique}, "
        f"duplicate {aid in dups})" for mid, aid in sorted(lacking.items()))


def _assert_same_timeline(got: list[TimelineEntry], expected: dict[str, dict[str, object]],
                          workers: list[Path] | None = None,
                          where: tuple[str, Settings] | None = None) -> None:
    dump = _timeline_dump(got)
    if dump != expected:
        logs = _where_are_the_mentions(where[0], where[1], dump, expected) if where else ""
        for path in workers or []:
            tail = [line for line in path.read_text(errors="replace").splitlines()
                    if "reconcil" in line or "rebuilt" in line or "error" in line.lower()]
            logs += f"\n--- {path.name}\n" + "\n".join(tail[-15:])
        pytest.fail(_explain(dump, expected) + logs, pytrace=False)


def _processed(bootstrap: str, settings: Settings, topic: str = "articles.clean") -> int:
    return sum(1 for _ in read_topic(bootstrap, settings.topic_name(topic), timeout_s=30))


def _wait_for_progress(bootstrap: str, settings: Settings, at_least: int,
                       timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while _processed(bootstrap, settings) < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {at_least} articles processed in {timeout_s}s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stream() -> list[StreamItem]:
    return build_stream(N_ARTICLES, seed=11)


@pytest.fixture(scope="module")
def expected(stream: list[StreamItem]) -> dict[str, dict[str, object]]:
    entries = run_in_process(item.article for item in stream)
    assert entries, "the stream must produce timeline entries for these tests to mean anything"
    return _timeline_dump(entries)


def _run(bootstrap: str, settings: Settings, stream: list[StreamItem], tmp_path: Path,
         disrupt: Callable[[list[WorkerProcess]], None] | None = None,
         workers: int = 1) -> list[TimelineEntry]:
    ensure_topics(bootstrap, settings.namespace)
    procs = [WorkerProcess(settings, bootstrap, tmp_path / f"worker{i}.log", name=f"w{i}").start()
             for i in range(workers)]
    try:
        _produce(bootstrap, settings.topic_name("articles.raw"),
                 [(i.article.id.encode(), i.article.model_dump_json().encode()) for i in stream])
        if disrupt is not None:
            disrupt(procs)
        wait_until_drained(settings, bootstrap, procs, timeout_s=600)
        return read_timeline(bootstrap, settings.topic_name("timeline.entries"), timeout_s=60)
    finally:
        for proc in procs:
            proc.stop()


def test_undisturbed_run_equals_in_process(kafka_bootstrap, namespace, tmp_path, stream, expected):
    got = _run(kafka_bootstrap, _settings(namespace, tmp_path), stream, tmp_path)
    _assert_same_timeline(got, expected, sorted(tmp_path.glob("*.log")))


def test_kill_9_of_the_worker_mid_run_loses_and_duplicates_nothing(
    kafka_bootstrap, namespace, tmp_path, stream, expected
):
    settings = _settings(namespace, tmp_path)

    def crash_and_restart(procs: list[WorkerProcess]) -> None:
        _wait_for_progress(kafka_bootstrap, settings, N_ARTICLES // 3)
        procs[0].kill()
        assert not procs[0].alive
        procs.append(WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker-restarted.log",
                                   name="w0").start())

    got = _run(kafka_bootstrap, settings, stream, tmp_path, crash_and_restart)
    _assert_same_timeline(got, expected, sorted(tmp_path.glob("*.log")),
                          (kafka_bootstrap, settings))


def test_two_workers_one_killed_mid_run(kafka_bootstrap, namespace, tmp_path, stream, expected):
    settings = _settings(namespace, tmp_path)

    def kill_one(procs: list[WorkerProcess]) -> None:
        _wait_for_progress(kafka_bootstrap, settings, N_ARTICLES // 3)
        procs[1].kill()

    got = _run(kafka_bootstrap, settings, stream, tmp_path, kill_one, workers=2)
    _assert_same_timeline(got, expected, sorted(tmp_path.glob("*.log")),
                          (kafka_bootstrap, settings))


def test_broker_restart_mid_run(namespace, tmp_path, stream, expected):
    """A broker of its own (the session's broker keeps serving the other tests)."""
    from streams.local_broker import LocalBroker
    from streams.runner import free_port

    port = free_port()
    broker = LocalBroker(data_dir=Path(tempfile.mkdtemp(prefix="relwatch-restart-")),
                         port=port, controller_port=free_port())
    bootstrap = broker.start()
    settings = _settings(namespace, tmp_path)
    try:
        def restart_broker(procs: list[WorkerProcess]) -> None:
            _wait_for_progress(bootstrap, settings, N_ARTICLES // 3)
            broker.stop()
            time.sleep(3)
            broker.start()
            # a supervisor (systemd, Kubernetes) restarts a worker that gave up meanwhile
            if not any(p.alive for p in procs):
                procs.append(WorkerProcess(settings, bootstrap, tmp_path / "worker-after.log",
                                           name="w0").start())

        got = _run(bootstrap, settings, stream, tmp_path, restart_broker)
    finally:
        broker.stop()
    _assert_same_timeline(got, expected, sorted(tmp_path.glob("*.log")))


def _fuzz(valid: list[StreamItem], n_bad: int, seed: int = 3) -> list[tuple[bytes, bytes, bool]]:
    """Valid articles mixed with malformed ones: (key, value, is_valid)."""
    rng = random.Random(seed)
    good = [(i.article.id.encode(), i.article.model_dump_json().encode(), True) for i in valid]
    bad: list[tuple[bytes, bytes, bool]] = []
    for n in range(n_bad):
        kind = n % 8
        sample = good[rng.randrange(len(good))][1]
        if kind == 0:
            value = rng.randbytes(rng.randint(0, 400))
        elif kind == 1:
            value = sample[: rng.randint(1, len(sample) - 1)]  # truncated JSON
        elif kind == 2:
            value = json.dumps({"id": f"z{n}", "text": 42, "ingested_at": "soon"}).encode()
        elif kind == 3:
            value = json.dumps({"id": f"z{n}", "text": " \n\t ", "ingested_at": 1.0}).encode()
        elif kind == 4:
            value = json.dumps([1, 2, 3]).encode()
        elif kind == 5:
            value = json.dumps({"id": f"z{n}", "text": "\x00\x01\x02\x03" * 50,
                                "ingested_at": 1.0}).encode()
        elif kind == 6:
            value = b""
        else:
            doc = json.loads(sample)
            doc["unexpected_field"] = True
            value = json.dumps(doc).encode()
        bad.append((f"bad-{n}".encode(), value, False))
    mixed = good + bad
    rng.shuffle(mixed)
    # valid articles keep their relative order, so dedupe's first copies stay the same
    order = iter(good)
    return [next(order) if ok else (k, v, ok) for k, v, ok in mixed]


def test_fuzzed_messages_go_to_the_dead_letter_topic(kafka_bootstrap, namespace, tmp_path):
    valid = build_stream(600, seed=5)
    messages = _fuzz(valid, 10_000)
    settings = _settings(namespace, tmp_path)
    ensure_topics(kafka_bootstrap, namespace)
    worker = WorkerProcess(settings, kafka_bootstrap, tmp_path / "worker.log").start()
    try:
        _produce(kafka_bootstrap, settings.topic_name("articles.raw"),
                 [(k, v) for k, v, _ in messages])
        wait_until_drained(settings, kafka_bootstrap, [worker], timeout_s=600)
        assert worker.alive, worker.log_tail()
        letters = [DeadLetter.model_validate_json(r.value)
                   for r in read_topic(kafka_bootstrap, settings.topic_name("deadletter"))]
        clean_keys = {r.key for r in read_topic(kafka_bootstrap,
                                                settings.topic_name("articles.clean"))}
        timeline = read_timeline(kafka_bootstrap, settings.topic_name("timeline.entries"))
    finally:
        worker.stop()
    bad_keys = {k for k, _, ok in messages if not ok}
    good_keys = {k for k, _, ok in messages if ok}
    import base64

    lettered = {base64.b64decode(dl.key_b64 or "") for dl in letters}
    assert lettered == bad_keys
    assert all(dl.reason and dl.stage == "normalize" for dl in letters)
    originals = {k: v for k, v, ok in messages if not ok}
    assert all(base64.b64decode(dl.value_b64) == originals[base64.b64decode(dl.key_b64 or "")]
               for dl in letters)
    assert clean_keys == good_keys
    assert _timeline_dump(timeline) == _timeline_dump(
        run_in_process(item.article for item in valid))
