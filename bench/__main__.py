"""``python -m bench`` (or ``make bench``): throughput, latency and memory, in one run.

Measures, on the same generated stream (bench/stream.py):
  passthrough  produce + consume of the same messages through the broker (transport ceiling)
  in-process   the whole pipeline logic without Kafka (streams.pipeline)
  end-to-end   articles.raw -> timeline.entries through the broker and a worker
  latency      ingest -> first timeline record of an article at a fixed offered rate
  memory       the worker's peak RSS, and its RSS after --rss-articles articles: as the last
               one drains, and at rest --settle-seconds later (by default long enough for the
               worker's quiet-time heap release, RELWATCH_MALLOC_TRIM_IDLE_S)
Prints a table, and with ``--json`` a last line holding one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bench.stream import StreamItem, build_stream, corpus_files
from producers.topics import ensure_topics
from streams.kafka_io import described_partitions, read_topic
from streams.pipeline import InProcessPipeline
from streams.replay import bootstrap_for, delete_namespace_topics
from streams.runner import WorkerProcess, wait_until_drained
from streams.settings import Settings, load_settings


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def bench_producer(bootstrap: str) -> KafkaProducer:
    """The producer every phase sends with."""
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                         max_request_size=16 * 1024 * 1024)


def produce(bootstrap: str, topic: str, items: list[StreamItem], rate: float | None = None,
            restamp: bool = False) -> dict[str, float]:
    """Send the items (at ``rate`` per second if given); returns article id -> send time."""
    producer = bench_producer(bootstrap)
    sent: dict[str, float] = {}
    start = time.monotonic()
    for n, item in enumerate(items):
        if rate:
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        article = item.article
        now = time.time()
        if restamp:
            article = article.model_copy(update={"ingested_at": now})
        producer.send(topic, key=article.id.encode(), value=article.model_dump_json().encode())
        sent[article.id] = now
    producer.flush(120)
    producer.close()
    return sent


def stamped_payloads(items: list[StreamItem]) -> list[tuple[bytes, bytes]]:
    """The items' records, ingested now: made before a timed phase, so that the phase's clock
    and CPU figures hold the pipeline and the producer's sends, not pydantic serialising."""
    now = time.time()
    return [(i.article.id.encode(),
             i.article.model_copy(update={"ingested_at": now}).model_dump_json().encode())
            for i in items]


def send_payloads(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = bench_producer(bootstrap)
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush(120)
    producer.close()


def passthrough_rate(bootstrap: str, items: list[StreamItem]) -> float:
    topic = f"bench-passthrough-{uuid.uuid4().hex[:8]}"
    payloads = [(i.article.id.encode(), i.article.model_dump_json().encode()) for i in items]
    start = time.monotonic()
    send_payloads(bootstrap, topic, payloads)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = 0
    while got < len(payloads):
        for msgs in consumer.poll(timeout_ms=1000, max_records=5000).values():
            got += len(msgs)
    consumer.close()
    return len(payloads) / (time.monotonic() - start)


def in_process_rate(items: list[StreamItem], batch: int = 128
                    ) -> tuple[float, list[float], InProcessPipeline]:
    """Articles per second of the pure pipeline, fed ``batch`` articles at a time (their mentions
    merged in one pass, as the worker merges what it reads in a poll); the costs are per
    article, each article of a batch charged the batch's mean."""
    pipeline = InProcessPipeline()
    costs: list[float] = []
    start = time.perf_counter()
    for at in range(0, len(items), batch):
        chunk = [item.article for item in items[at:at + batch]]
        t0 = time.perf_counter()
        pipeline.process_batch(chunk)
        costs += [(time.perf_counter() - t0) * 1000 / len(chunk)] * len(chunk)
    return len(items) / (time.perf_counter() - start), costs, pipeline


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of ``/proc/PID/stat`` after the command name, from the state on) of
    every process on the box; a process that ends meanwhile is skipped."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            yield int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the worker and its stage processes)."""
    children: dict[int, list[int]] = {}
    for child, fields in proc_stats():
        children.setdefault(int(fields[1]), []).append(child)
    tree, pending = [], [pid]
    while pending:
        tree.append(current := pending.pop())
        pending += children.get(current, [])
    return tree


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared by the stage processes counted once in all."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unless_gone(read: Callable[..., float], *args: Any) -> float:
    """``read(*args)``, or 0 for a process that ended meanwhile (a stage process replaced)."""
    try:
        return read(*args)
    except OSError:
        return 0.0


def worker_memory(pid: int) -> dict[str, float]:
    """The worker process's RSS, its stage processes' RSS, and the RSS and PSS of the whole."""
    tree = process_tree(pid)
    stages = sum(_unless_gone(rss_mb, p, "VmRSS") for p in tree[1:])
    main = rss_mb(pid, "VmRSS")
    pss = sum(_unless_gone(pss_mb, p) for p in tree)
    return {"worker_main_rss_mb": main, "stage_processes_rss_mb": stages,
            "worker_rss_mb": main + stages, "worker_pss_mb": pss}


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds_by_process() -> dict[int, float]:
    """User + system CPU seconds of every process on the box (``/proc/PID/stat``)."""
    return {pid: (int(fields[11]) + int(fields[12])) / _TICKS for pid, fields in proc_stats()}


def _is_broker(pid: int) -> bool:
    try:
        return b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def cpu_shares(before: dict[int, float], after: dict[int, float], worker_pids: list[int],
               articles: int) -> dict[str, float]:
    """CPU milliseconds per article between two snapshots, by process: the workers' event loops,
    their stage processes, the broker, this bench (producing, polling) and the rest of the box.
    A process that ended between the snapshots is missed (a replaced stage process)."""
    groups = {"worker_main": set(worker_pids), "stage_processes": set(), "broker": set(),
              "bench": {os.getpid()}}
    for pid in worker_pids:
        groups["stage_processes"] |= set(process_tree(pid)[1:])
    groups["broker"] = {pid for pid in after if _is_broker(pid)}
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    result, counted = {}, set()
    for name, pids in groups.items():
        used = sum(spent.get(p, 0.0) for p in pids)
        result[f"cpu_ms_per_article_{name}"] = 1000 * used / articles
        counted |= pids
    result["cpu_ms_per_article_other"] = 1000 * sum(
        v for p, v in spent.items() if p not in counted) / articles
    return result


def messages_by_topic(bootstrap: str, settings: Settings) -> dict[str, int]:
    """Records written so far to each topic of the run: its namespace's topics and its worker
    group's (Faust's changelogs and repartition topics), by end offset."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None)
    try:
        ours = [t for t in admin.list_topics()
                if t.startswith((f"{settings.namespace}.", f"{settings.group_id}-"))]
        tps = described_partitions(admin.describe_topics(ours))
        written: dict[str, int] = {}
        for tp, end in consumer.end_offsets(tps).items():
            written[tp.topic] = written.get(tp.topic, 0) + end
        return written
    finally:
        consumer.close()
        admin.close()


def metrics_page(port: int) -> str:
    """A worker's ``/metrics`` page (Prometheus text)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        return str(page.read().decode())


def histogram_totals(port: int, name: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram on a worker's ``/metrics`` page."""
    text = metrics_page(port)
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith((f"{name}_sum", f"{name}_count"))}
    return values.get(f"{name}_sum", 0.0), values.get(f"{name}_count", 0.0)


def gauge_total(port: int, name: str) -> float:
    """The sum of a Prometheus gauge's samples on a worker's ``/metrics`` page (all labels)."""
    text = metrics_page(port)
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith((f"{name}{{", f"{name} ")))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fresh(settings: Settings, workdir: Path) -> Settings:
    return settings.model_copy(update={
        "namespace": f"bench-{uuid.uuid4().hex[:8]}", "data_dir": workdir / uuid.uuid4().hex[:6],
        "commit_interval_s": 0.5, "web_enabled": True})


def end_to_end(bootstrap: str, settings: Settings, items: list[StreamItem], workdir: Path,
               workers: int, rss_articles: int, settle_s: float = 0.0) -> dict[str, float]:
    ensure_topics(bootstrap, settings.namespace,
                  partitions_override={"articles.unique": settings.unique_partitions})
    procs = [WorkerProcess(settings, bootstrap, workdir / f"e2e-{i}.log", name=f"w{i}").start()
             for i in range(workers)]
    try:
        # warm up: the worker joins its group and loads its models before the clock starts
        warm = build_stream(20, seed=99)
        produce(bootstrap, settings.topic_name("articles.raw"), warm, restamp=True)
        wait_until_drained(settings, bootstrap, procs, timeout_s=300)
        written_before = messages_by_topic(bootstrap, settings)
        merges_before = [histogram_totals(w.web_port, "relwatch_timeline_merge_mentions")
                         for w in procs]
        payloads = stamped_payloads(items)
        cpu_before = cpu_seconds_by_process()
        start = time.monotonic()
        send_payloads(bootstrap, settings.topic_name("articles.raw"), payloads)
        wait_until_drained(settings, bootstrap, procs, timeout_s=3600, poll_s=0.1,
                           stable_polls=2)
        elapsed = time.monotonic() - start
        result = {"end_to_end_rate": len(items) / elapsed}
        result |= cpu_shares(cpu_before, cpu_seconds_by_process(),
                             [w.proc.pid for w in procs if w.proc is not None], len(items))
        # what the box could give: its CPUs over the phase, per article
        cpus = len(os.sched_getaffinity(0))
        result["cpu_ms_per_article_available"] = 1000 * elapsed * cpus / len(items)
        written = messages_by_topic(bootstrap, settings)
        per_article = {topic.split(".", 1)[-1] if topic.startswith(settings.namespace) else topic:
                       (n - written_before.get(topic, 0)) / len(items)
                       for topic, n in sorted(written.items())}
        log("records written per article: " + ", ".join(
            f"{topic} {n:.2f}" for topic, n in per_article.items() if n))
        result["kafka_records_per_article"] = sum(per_article.values())
        merged = [histogram_totals(w.web_port, "relwatch_timeline_merge_mentions") for w in procs]
        mentions = sum(a[0] - b[0] for a, b in zip(merged, merges_before, strict=True))
        passes = sum(a[1] - b[1] for a, b in zip(merged, merges_before, strict=True))
        result["timeline_mentions_per_merge"] = mentions / passes if passes else 0.0
        processed = len(items)
        while processed < rss_articles:
            batch = build_stream(min(len(items), rss_articles - processed),
                                 seed=processed + 1)
            batch = [StreamItem(i.article.model_copy(update={"id": f"r{processed}-{i.article.id}"}),
                                i.wire_group) for i in batch]
            produce(bootstrap, settings.topic_name("articles.raw"), batch, restamp=True)
            wait_until_drained(settings, bootstrap, procs, timeout_s=3600)
            processed += len(batch)
            memory = worker_memory(procs[0].proc.pid)  # type: ignore[union-attr]
            log(f"rss phase: {processed} articles, worker RSS {memory['worker_rss_mb']:.0f} MB "
                f"(main {memory['worker_main_rss_mb']:.0f}, stage processes "
                f"{memory['stage_processes_rss_mb']:.0f}), PSS {memory['worker_pss_mb']:.0f} MB")
        drained = worker_memory(procs[0].proc.pid)  # type: ignore[union-attr]
        result["rss_mb_at_drain"] = drained["worker_rss_mb"]
        time.sleep(settle_s)  # at rest: what the worker keeps once the stream goes quiet
        memory = worker_memory(procs[0].proc.pid)  # type: ignore[union-attr]
        log(f"rss at rest, {settle_s:.0f} s after the last article drained: worker RSS "
            f"{memory['worker_rss_mb']:.0f} MB (main {memory['worker_main_rss_mb']:.0f}, stage "
            f"processes {memory['stage_processes_rss_mb']:.0f}), PSS "
            f"{memory['worker_pss_mb']:.0f} MB")
        # RocksDB's part of the main process's RSS (block caches, memtables, table readers), as
        # the worker last polled it
        result["table_memory_mb"] = gauge_total(procs[0].web_port,
                                                "relwatch_table_memory_bytes") / 2**20
        log(f"of which the tables' RocksDB stores: {result['table_memory_mb']:.0f} MB")
        # the worker is its process and its stage processes: RSS summed over them (pages they
        # share counted in each, so this errs high; worker_pss_mb counts them once)
        result["rss_mb_after_100k"] = memory["worker_rss_mb"]
        result |= memory
        result["rss_articles"] = float(processed)
        pids = [w.proc.pid for w in procs if w.proc is not None]
        result["worker_peak_rss_mb"] = max(  # the peak of each process, summed
            sum(_unless_gone(rss_mb, p, "VmHWM") for p in process_tree(pid))
            for pid in pids)
        return result
    finally:
        for p in procs:
            p.stop()


def _waiting_for_an_anchor(items: list[StreamItem]) -> set[str]:
    """Articles whose every mention has only a partial date (they wait for an anchor)."""
    pipeline = InProcessPipeline()
    for item in items:
        pipeline.process(item.article)
    floating: dict[str, bool] = {}
    for mention in pipeline.mentions:
        floating[mention.article_id] = floating.get(mention.article_id, True) and bool(
            mention.date_anchor)
    return {aid for aid, waits in floating.items() if waits}


def latency(bootstrap: str, settings: Settings, items: list[StreamItem], workdir: Path,
            rate: float) -> dict[str, float]:
    ensure_topics(bootstrap, settings.namespace)
    worker = WorkerProcess(settings, bootstrap, workdir / "latency.log").start()
    try:
        warm = build_stream(10, seed=98)
        produce(bootstrap, settings.topic_name("articles.raw"), warm, restamp=True)
        wait_until_drained(settings, bootstrap, [worker], timeout_s=300)
        sent = produce(bootstrap, settings.topic_name("articles.raw"), items, rate=rate,
                       restamp=True)
        wait_until_drained(settings, bootstrap, [worker], timeout_s=600)
        # An article is on the timeline with the first entry record that lists it, or whose
        # `updated` is its ingest time (the bench stamps it with the send time): an entry whose
        # evidence is capped (docs/timeline-contract.md) counts a new mention without listing it.
        by_stamp = {stamp: aid for aid, stamp in sent.items()}
        first_seen: dict[str, float] = {}
        for record in read_topic(bootstrap, settings.topic_name("timeline.entries")):
            if record.value is None:
                continue
            doc = json.loads(record.value)
            cited = {mention["article_id"] for mention in doc["mentions"]}
            if (newest := by_stamp.get(doc["updated"])) is not None:
                cited.add(newest)
            for aid in cited:
                if aid in sent and aid not in first_seen:
                    first_seen[aid] = record.timestamp_ms / 1000
        # An undated article whose dates are all partial ("on the 12th") is placed only once a
        # dated report of the same event anchors it (timeline.py, cross-source anchoring): its
        # wait depends on when that report comes, not on the pipeline, so it is counted apart.
        waits = _waiting_for_an_anchor(items)
        lat = [first_seen[a] - sent[a] for a in first_seen if a not in waits]
        everyone = [first_seen[a] - sent[a] for a in first_seen]
        return {"latency_p50_s": pct(lat, 0.50), "latency_p95_s": pct(lat, 0.95),
                "latency_p99_s": pct(lat, 0.99), "latency_samples": float(len(lat)),
                "latency_p99_all_s": pct(everyone, 0.99),
                "latency_anchor_waits": float(len(waits & first_seen.keys()))}
    finally:
        worker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--articles", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=20.0, help="offered rate for latency")
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rss-articles", type=int, default=100_000)
    parser.add_argument("--settle-seconds", type=float, default=None,
                        help="wait after the memory phase drains before the RSS at rest "
                        "(default: two of the worker's quiet-time checks and a second)")
    parser.add_argument("--in-process-batch", type=int, default=128,
                        help="articles the in-process pipeline merges in one pass")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    items = build_stream(args.articles, seed=1)
    log(f"stream: {len(items)} articles, "
        f"{sum(i.wire_group != i.article.id for i in items)} reposts, from "
        + ", ".join(str(p) for p in corpus_files()))  # the shared corpora, else examples/
    result: dict[str, float] = {"articles": float(len(items))}
    rate, costs, pipeline = in_process_rate(items, args.in_process_batch)
    result |= {"in_process_rate": rate, "in_process_ms_p50": statistics.median(costs),
               "in_process_ms_p95": pct(costs, 0.95),
               # what the stream holds, as the pipeline sees it
               "duplicate_share": len(pipeline.duplicates) / len(items),
               "mentions_per_article": len(pipeline.mentions) / len(items),
               "timeline_entries": float(len(pipeline.timeline_state.entries))}
    del pipeline
    log(f"in-process: {rate:.0f} articles/s, {result['duplicate_share']:.0%} duplicates, "
        f"{result['mentions_per_article']:.2f} mentions per article")
    settings = load_settings()
    workdir = Path(tempfile.mkdtemp(prefix="relwatch-bench-"))
    with bootstrap_for(settings) as bootstrap:
        result["passthrough_rate"] = passthrough_rate(bootstrap, items)
        log(f"passthrough: {result['passthrough_rate']:.0f} articles/s")
        e2e_settings = fresh(settings, workdir)
        settle_s = (args.settle_seconds if args.settle_seconds is not None
                    else 2 * e2e_settings.malloc_trim_idle_s + 1)
        result |= end_to_end(bootstrap, e2e_settings, items, workdir, args.workers,
                             args.rss_articles, settle_s)
        log(f"end-to-end: {result['end_to_end_rate']:.0f} articles/s")
        delete_namespace_topics(bootstrap, e2e_settings)
        lat_settings = fresh(settings, workdir)
        n_lat = int(args.rate * args.latency_seconds)
        result |= latency(bootstrap, lat_settings, build_stream(n_lat, seed=2), workdir,
                          args.rate)
        delete_namespace_topics(bootstrap, lat_settings)
    result["end_to_end_vs_in_process"] = result["end_to_end_rate"] / result["in_process_rate"]
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:12.3f}")
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
