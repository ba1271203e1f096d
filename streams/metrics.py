"""Prometheus metrics of the worker, served on its ``/metrics`` page."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROCESSED = Counter("relwatch_stage_processed_total", "Messages a stage processed", ["stage"])
ERRORS = Counter("relwatch_stage_errors_total", "Messages a stage failed on", ["stage", "reason"])
DEADLETTERS = Counter(
    "relwatch_deadletters_total", "Dead letters published", ["stage", "reason"]
)
DUPLICATES = Counter("relwatch_duplicates_total", "Reposts found by dedupe", ["kind"])
MENTIONS = Counter("relwatch_mentions_total", "Event mentions extracted")
TIMELINE_CHANGES = Counter("relwatch_timeline_changes_total", "Timeline records", ["kind"])
COMMIT_HOLES = Counter(
    "relwatch_commit_holes_total",
    "Holes in a partition's processed offsets the worker acted on (refetch, or give_up: "
    "the offsets were skipped after the refetches failed to fill them)",
    ["topic", "action"],
)
STALLED_PARTITIONS = Counter(
    "relwatch_stalled_partitions_total",
    "Assigned input partitions that had records to read but made no progress, fetched again "
    "from their committed offsets",
    ["topic"],
)
STAGE_PROCESSES = Gauge(
    "relwatch_stage_processes", "Processes running the normalize and extract stages (0: the "
    "worker's own process runs them)"
)
STAGE_PROCESS_RESTARTS = Counter(
    "relwatch_stage_process_restarts_total",
    "Times a stage process died mid-batch: the batch ran in the worker's process, the pool "
    "was started again",
)
TIMELINE_SIZE = Gauge("relwatch_timeline_entries", "Entries on the rolling timeline")
NEWEST_ENTRY_TS = Gauge(
    "relwatch_timeline_newest_update_timestamp", "Unix time of the newest timeline change"
)
INGEST_TO_TIMELINE = Histogram(
    "relwatch_ingest_to_timeline_seconds",
    "Seconds from a producer's push to the timeline record it caused",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
TIMELINE_MERGE_MENTIONS = Histogram(
    "relwatch_timeline_merge_mentions",
    "Mention records the timeline stage merged in one pass (a micro-batch)",
    buckets=(1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096),
)
TIMELINE_MERGE_SECONDS = Histogram(
    "relwatch_timeline_merge_seconds",
    "Seconds one timeline merge pass took, publishing included",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TABLE_MEMORY = Gauge(
    "relwatch_table_memory_bytes",
    "RAM a table's RocksDB store holds, by kind: block_cache, memtables, table_readers (the "
    "index and filter blocks of its files)",
    ["table", "kind"],
)
CONSUMER_LAG = Gauge(
    "relwatch_consumer_lag_messages",
    "Messages of a topic partition the worker's consumer group has not yet committed",
    ["group", "topic", "partition"],
)


def processed_total() -> float:
    """Messages processed so far, all stages together."""
    return sum(sample.value for metric in PROCESSED.collect() for sample in metric.samples
               if sample.name.endswith("_total"))
