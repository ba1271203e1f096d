"""The thin Faust agents: decode, call the stage's pure function, send; dead-letter on failure.

Each agent reads raw bytes (see ``streams.app``), so that any payload it cannot handle goes to
the dead-letter topic with its original bytes and the worker keeps running. State lives in
changelog-backed Faust tables that the pure functions receive as plain mappings.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import faust
import faust.streams as faust_streams
import structlog
from faust.types import TP

from schemas.models import CleanArticle, DuplicateNotice, EventMention, TimelineEntry
from schemas.topics import FINGERPRINT_HEADER, WORKER_INPUT_TOPICS

from . import dedupe, stagepool, timeline
from .app import (
    app,
    archive_topic,
    clean_topic,
    duplicates_topic,
    mentions_topic,
    raw_topic,
    settings,
    timeline_topic,
    unique_topic,
)
from .deadletter import send_dead_letter
from .errors import StageFailure
from .faust_fixes import CommitHoleRepair, StalledPartitionRepair
from .heap import IdleTrim, release_free_heap
from .lag import partition_lag
from .metrics import (
    COMMIT_HOLES,
    CONSUMER_LAG,
    DUPLICATES,
    ERRORS,
    INGEST_TO_TIMELINE,
    MENTIONS,
    NEWEST_ENTRY_TS,
    PROCESSED,
    STALLED_PARTITIONS,
    TABLE_MEMORY,
    TIMELINE_CHANGES,
    TIMELINE_MERGE_MENTIONS,
    TIMELINE_MERGE_SECONDS,
    TIMELINE_SIZE,
    processed_total,
)
from .web import broadcast, register_pages, sse_event

log = structlog.get_logger(__name__)

# --- state ---------------------------------------------------------------------------------
_JSON: Any = faust.Schema(key_serializer="json", value_serializer="json")


# faust's RocksDB defaults are for big servers (64 MB memtables, three per table, and a 2 GB
# block cache per table); these bound what a table may hold in RAM (ignored by memory://)
_STORE_OPTIONS = {
    "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024**2,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024**2,
    "block_cache_size": settings.rocksdb_cache_mb * 1024**2,
}


def _table(name: str, schema: Any = _JSON) -> Any:
    """A changelog-backed table (JSON values by default), co-partitioned with the one-partition
    topics."""
    return app.Table(name, default=None, partitions=1, schema=schema,
                     options=dict(_STORE_OPTIONS))  # faust pops keys from it: one per table


# Only the sources of truth are changelog-backed tables: the articles dedupe remembers, and the
# timeline's mentions and reposts. The indexes and entries derived from them live in memory and
# are rebuilt after every (re)assignment, so that a crash cannot leave them half-written and
# each message costs a few changelog writes, not dozens.
dedupe_signatures = _table("dedupe-signatures")
# mentions as compact JSON bytes (timeline.CompactMentions): half the memory of dicts
timeline_mentions = _table(
    "timeline-mentions", faust.Schema(key_serializer="json", value_serializer="raw"))
_stored_mentions = timeline.CompactMentions(
    timeline_mentions, reads=lambda: timeline_mentions.data)  # the store: one lookup a read
timeline_reposts = _table("timeline-reposts")
_stored_reposts = timeline.KnownKeys(timeline_reposts)  # absent keys answered from memory
timeline.set_aggregate_cache(settings.timeline_aggregate_members)
_derived: dict[str, Any] = {
    "exact": dedupe.ExactIndex(), "bands": dedupe.BandIndex(), "ages": dedupe.AgeQueue(),
    "index": timeline.PackedDocs(cache_size=settings.timeline_index_docs_in_use),
    "entries": timeline.CompressedEntries(),
}

EVICT_EVERY_S = 60.0
REPAIR_READ_TIMEOUT_S = 45.0
REVOKE_FLUSH_TIMEOUT_S = 10.0
_last_eviction = {"dedupe": 0.0, "timeline": 0.0}
# Dedupe evicts by stream time (the newest ingest time seen), not wall-clock time, so that a
# backfill of old articles keeps its window; a day of margin covers producers' clock skew.
_stream_clock = {"dedupe": 0.0}
DEDUPE_CONFIG = dedupe.DedupeConfig(window_s=settings.dedupe_window_days * 86400)


async def _fail(stage: str, event: Any, exc: BaseException) -> None:
    from .deadletter import failure_reason

    ERRORS.labels(stage=stage, reason=failure_reason(exc)).inc()
    await send_dead_letter(stage, event, exc)


def warm_up() -> None:
    """Start the stage processes (they load the models and data files), or load those here if
    the stages run in this process, before the first message."""
    if _stage_pool.processes == 0:
        from . import normalize  # about 120 MB once warm: only where the stages run

        normalize.warm_up()
    _stage_pool.start()


def stop_stage_processes() -> None:
    _stage_pool.shutdown()


# --- stage 1: normalize --------------------------------------------------------------------
# normalize and extract hold no state: their batches run in the stage processes (stagepool.py)
_stage_pool = stagepool.StagePool(
    stagepool.default_processes() if settings.stage_processes < 0 else settings.stage_processes,
    settings.log_level, settings.log_format, settings.malloc_trim_idle_s)


def _stage_batches(stream: Any) -> Any:
    return stream.take_events(settings.stage_batch_max, within=settings.stage_batch_within_s)


@app.agent(raw_topic, name="normalize")
async def normalize_agent(stream: Any) -> None:
    async for events in _stage_batches(stream):
        outcomes = await _stage_pool.run(stagepool.normalize_payload,
                                         [event.value for event in events],
                                         settings.max_text_chars)
        for event, outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, StageFailure):
                await _fail("normalize", event, outcome)
                continue
            PROCESSED.labels(stage="normalize").inc()
            key, value, fingerprint = outcome
            await clean_topic.send(key=key, value=value,
                                   headers=[(FINGERPRINT_HEADER, fingerprint)])


# --- stage 1: dedupe -----------------------------------------------------------------------
def _header(event: Any, name: str) -> bytes | None:
    """A header's value of a record (None if absent or not bytes)."""
    headers = getattr(event, "headers", None) or ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key == name and isinstance(value, bytes | bytearray):
            return bytes(value)
    return None


def _dedupe_state() -> dedupe.DedupeState:
    return dedupe.DedupeState(
        exact=_derived["exact"], bands=_derived["bands"], signatures=dedupe_signatures,
        ages=_derived["ages"],
    )


async def _rebuild_dedupe_index() -> None:
    if not _rebuild["dedupe"]:
        return
    _rebuild["dedupe"] = False
    exact = dedupe.ExactIndex()
    bands = dedupe.BandIndex()
    for _ in dedupe.rebuild_index_into(exact, bands, dedupe_signatures, DEDUPE_CONFIG):
        await asyncio.sleep(0)  # heartbeats and the other stages run between chunks
    _derived["exact"], _derived["bands"] = exact, bands
    _derived["ages"] = dedupe.eviction_queue(dedupe_signatures)
    log.info("dedupe_index_rebuilt", articles=len(dedupe_signatures), band_entries=bands.entries)


@app.agent(clean_topic, name="dedupe")
async def dedupe_agent(stream: Any) -> None:
    async for event in stream.events():
        try:
            await _rebuild_dedupe_index()
            article = CleanArticle.model_validate_json(event.value)
            state = _dedupe_state()
            clock = _stream_clock["dedupe"] = max(_stream_clock["dedupe"], article.ingested_at)
            now = time.time()
            if now - _last_eviction["dedupe"] > EVICT_EVERY_S:
                dedupe.evict_older_than(state, clock - DEDUPE_CONFIG.window_s - 86400)
                _last_eviction["dedupe"] = now
            verdict = dedupe.check_and_remember(
                article, state, now=article.ingested_at, config=DEDUPE_CONFIG,
                fingerprint=_header(event, FINGERPRINT_HEADER),
            )
        except Exception as exc:
            await _fail("dedupe", event, exc)
            continue
        PROCESSED.labels(stage="dedupe").inc()
        if verdict.duplicate_of is not None:
            DUPLICATES.labels(kind=verdict.kind).inc()
            notice = dedupe.duplicate_notice(article, verdict)
            await duplicates_topic.send(
                key=article.id.encode(), value=notice.model_dump_json().encode()
            )
        else:
            await unique_topic.send(key=article.id.encode(), value=event.value)


# --- stage 2: extract and enrich -----------------------------------------------------------
@app.agent(unique_topic, name="extract")
async def extract_agent(stream: Any) -> None:
    async for events in _stage_batches(stream):
        outcomes = await _stage_pool.run(stagepool.extract_payload,
                                         [event.value for event in events])
        for event, outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, StageFailure):
                await _fail("extract", event, outcome)
                continue
            PROCESSED.labels(stage="extract").inc()
            MENTIONS.inc(len(outcome))
            for key, value in outcome:
                await mentions_topic.send(key=key, value=value)


# --- timeline sink -------------------------------------------------------------------------
def _timeline_state() -> timeline.TimelineState:
    return timeline.TimelineState(
        mentions=_stored_mentions, entries=_derived["entries"], index=_derived["index"],
        reposts=_stored_reposts,
    )


def current_entries() -> list[TimelineEntry]:
    """This worker's timeline (empty where another worker owns the timeline state)."""
    return list(_timeline_state().timeline().values())


async def _publish(changes: list[timeline.TimelineChange], observe: bool = True) -> None:
    """Publish timeline changes: at once, or coalesced (``RELWATCH_TIMELINE_COALESCE_S``).

    Coalesced, a change waits in ``_pending`` until the next flush (the flush timer, a full
    buffer, a revocation), and a later change of the same entry replaces it: an entry that
    several mentions change in one window is published once, in its last version. A crash
    between a mention's commit and the flush is repaired like any lost record: the next
    assignment diffs the topic against the state (:func:`_repair_after_assignment`).
    """
    TIMELINE_SIZE.set(len(_derived["entries"]))
    if settings.timeline_coalesce_s <= 0:
        async with _flush_lock:
            for change in changes:
                await _send_change(change, observe)
        return
    for change in changes:
        _pending.add(change, observe)
    if len(_pending) >= MAX_PENDING_CHANGES:
        await _flush_pending()


async def _flush_pending() -> None:
    """Send the coalesced changes, oldest first; one flush at a time, so that an older version
    of an entry is never sent after a newer one."""
    async with _flush_lock:
        while _pending:  # one at a time: a cancelled flush loses no change but the one sent
            change, observe = _pending.pop()
            await _send_change(change, observe)


async def _send_change(change: timeline.TimelineChange, observe: bool) -> None:
    TIMELINE_CHANGES.labels(kind=change.kind).inc()
    key = change.entry_id.encode()
    if change.kind == "upsert" and change.entry is not None:
        value = change.entry_json()
        await timeline_topic.send(key=key, value=value.encode())
        now = time.time()
        if observe:
            INGEST_TO_TIMELINE.observe(max(0.0, now - change.entry.updated))
        NEWEST_ENTRY_TS.set(now)
        if broadcast.listening:
            broadcast.publish(sse_event("upsert", change.entry_id, value))
        return
    if broadcast.listening:
        broadcast.publish(sse_event(change.kind, change.entry_id, None))
    if change.kind == "expire" and change.entry is not None:
        await archive_topic.send(key=key, value=change.entry_json().encode())
    headers = [("relwatch-change", change.kind.encode())]
    if change.merged_into:
        headers.append(("relwatch-merged-into", change.merged_into.encode()))
    await timeline_topic.send(key=key, value=None, headers=headers)


# Coalesced changes (see _publish); a full buffer is flushed at once.
MAX_PENDING_CHANGES = 512
_pending = timeline.CoalescedChanges()
_flush_lock = asyncio.Lock()

if settings.timeline_coalesce_s > 0:

    @app.timer(interval=settings.timeline_coalesce_s)
    async def _flush_timer() -> None:
        await _flush_pending()


def _read_timeline_topic(bootstrap: str, topic: str) -> dict[str, TimelineEntry]:
    """The timeline topic folded to its entries (kafka-python's reader, loaded here only: the
    worker reads the topic this way once per assignment, not in its steady state)."""
    from .kafka_io import fold_timeline, read_topic

    return fold_timeline(read_topic(bootstrap, topic, timeout_s=30))


async def _repair_after_assignment() -> None:
    """Once per (re)assignment, before the next timeline message: derive the index and entries
    from the mentions and reposts tables, then publish what the topic lacks or has too much
    (a crash can lose a timeline record whose mention was already stored).

    It runs in the agent, where Faust has finished recovering the tables of this partition:
    a timer could see a half-recovered state during a rebalance and tombstone live entries.
    """
    if not _rebuild["timeline"]:
        return
    _rebuild["timeline"] = False
    stored = _timeline_state()
    fresh = timeline.empty_derived(stored)
    for _ in timeline.rebuild_derived_into(fresh, stored):
        await asyncio.sleep(0)  # heartbeats and the other stages run between chunks
    _derived["index"], _derived["entries"] = fresh.index, fresh.entries
    log.info("timeline_state_rebuilt", mentions=len(timeline_mentions),
             reposts=len(timeline_reposts), entries=len(fresh.entries))
    bootstrap = settings.bootstrap
    topic = timeline_topic.get_topic_name()
    try:
        # bounded: a read that hangs must not hold the timeline lock (and the agents) forever
        on_topic = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(
                None, _read_timeline_topic, bootstrap, topic),
            timeout=REPAIR_READ_TIMEOUT_S,
        )
    except Exception as exc:  # the state is repaired; only the topic check is skipped
        log.warning("timeline_topic_reconcile_skipped", error=repr(exc))
        return
    changes = timeline.diff_timelines(on_topic, _timeline_state().timeline())
    if changes:
        log.warning("timeline_topic_reconciled", changes=len(changes))
        await _publish(changes, observe=False)


# The timeline and reposts agents share the timeline state and the topic: one at a time may
# change the state and publish, or an older version of an entry could be sent after a newer.
_timeline_lock = asyncio.Lock()


def _expire_due(state: timeline.TimelineState) -> list[timeline.TimelineChange]:
    now = time.time()
    if now - _last_eviction["timeline"] < settings.timeline_expire_interval_s:
        return []
    _last_eviction["timeline"] = now
    return timeline.expire(state, settings.timeline_horizon_days, now)


async def _merge_batch(events: list[Any]) -> list[timeline.TimelineChange]:
    """Merge a batch of mention records: decode and check each (a bad one is dead-lettered),
    then merge the runs of new mentions in one pass each (:func:`timeline.apply_mentions`),
    retractions in their place in the order of the batch."""
    good: list[tuple[Any, EventMention]] = []
    for event in events:
        try:
            mention = EventMention.model_validate_json(event.value)
            timeline.check_mention(mention)
        except Exception as exc:
            await _fail("timeline", event, exc)
            continue
        good.append((event, mention))
    state = _timeline_state()
    changes: list[timeline.TimelineChange] = []
    run: list[tuple[Any, EventMention]] = []
    for item in [*good, None]:
        if item is not None and not item[1].retracted:
            run.append(item)
            continue
        if run:
            changes += await _apply_run(state, run)
            run = []
        if item is not None:
            try:
                changes += timeline.retract_mention(state, item[1].mention_id)
            except Exception as exc:
                await _fail("timeline", item[0], exc)
                continue
            PROCESSED.labels(stage="timeline").inc()
    return changes + _expire_due(state)


async def _apply_run(
    state: timeline.TimelineState, run: list[tuple[Any, EventMention]]
) -> list[timeline.TimelineChange]:
    try:
        changes = timeline.apply_mentions(state, [mention for _, mention in run])
    except Exception as batch_exc:  # one at a time, so that only the culprit is dead-lettered
        log.warning("timeline_batch_failed", size=len(run), error=repr(batch_exc))
        changes = []
        for event, mention in run:
            try:
                changes += timeline.apply_mention(state, mention)
            except Exception as exc:
                await _fail("timeline", event, exc)
                continue
            PROCESSED.labels(stage="timeline").inc()
        return changes
    PROCESSED.labels(stage="timeline").inc(len(run))
    return changes


@contextmanager
def _tables_written_for(event: Any) -> Iterator[None]:
    """Let a batch's body write tables: Faust sends a table's changelog record to the partition
    of the *current* event, which ``take_events`` does not set while its body runs. The batch's
    last event stands for it (the timeline tables are co-partitioned with events.mentions)."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


@app.agent(mentions_topic, name="timeline")
async def timeline_agent(stream: Any) -> None:
    # Micro-batches: whatever arrived within RELWATCH_TIMELINE_BATCH_WITHIN_S, at most
    # RELWATCH_TIMELINE_BATCH_MAX; Faust acks a batch's records once the body has run.
    async for events in stream.take_events(settings.timeline_batch_max,
                                           within=settings.timeline_batch_within_s):
        async with _timeline_lock:
            try:
                await _repair_after_assignment()
            except Exception as exc:
                for event in events:
                    await _fail("timeline", event, exc)
                continue
            started = time.perf_counter()
            with _tables_written_for(events[-1]):
                changes = await _merge_batch(list(events))
            await _publish(changes)
            merge_s = time.perf_counter() - started
            TIMELINE_MERGE_MENTIONS.observe(len(events))
            TIMELINE_MERGE_SECONDS.observe(merge_s)
        # under load, let the other stages run before the next batch is gathered, so that it
        # holds more mentions: a merge's cost is mostly that of the entries and months it
        # touches, which more mentions per merge share
        pause = timeline.pause_after_merge(merge_s, len(events), settings.timeline_batch_max,
                                           settings.timeline_yield_factor,
                                           settings.timeline_yield_max_s)
        if pause > 0:
            await asyncio.sleep(pause)


@app.agent(duplicates_topic, name="reposts")
async def reposts_agent(stream: Any) -> None:
    async for event in stream.events():
        async with _timeline_lock:
            try:
                await _repair_after_assignment()
                notice = DuplicateNotice.model_validate_json(event.value)
                changes = timeline.apply_duplicate(_timeline_state(), notice)
            except Exception as exc:
                await _fail("reposts", event, exc)
                continue
            PROCESSED.labels(stage="reposts").inc()
            await _publish(changes)


# --- after a (re)assignment ----------------------------------------------------------------
# The derived state is rebuilt from the recovered tables before the next message of each
# stateful agent (``_rebuild_dedupe_index``, ``_repair_after_assignment``).
_rebuild = {"dedupe": True, "timeline": True}


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust's stub wants signal=
async def _on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    _rebuild["dedupe"] = _rebuild["timeline"] = True
    _stored_mentions.clear_cache()  # the table may have been recovered or changed meanwhile
    _stored_reposts.reload()


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Publish what is coalesced before another worker may take the timeline over: its repair
    must not be overtaken by older versions sent from here. Faust flushed its producer before
    this signal, so the producer is flushed again. Bounded: a rebalance must not hang on it
    (what is not sent is published by the next owner's repair)."""
    try:
        await asyncio.wait_for(_flush_pending(), timeout=REVOKE_FLUSH_TIMEOUT_S)
        await asyncio.wait_for(app.producer.flush(), timeout=REVOKE_FLUSH_TIMEOUT_S)
    except Exception as exc:  # never crash the rebalance over it
        log.warning("timeline_flush_on_revoke_failed", error=repr(exc), pending=len(_pending))


# --- ops: consumer lag on /metrics -------------------------------------------------------
# asked through aiokafka, as the worker's own clients are: kafka-python (streams.kafka_io)
# would add about 6 MB to this process for it (82 against 76 MB once the agents are imported)
_lag_admin: list[Any] = []  # the admin client, made at first use and kept; dropped on error


async def _group_committed_offsets() -> Mapping[Any, Any]:
    """The offsets the worker's group committed, by partition (all workers', not only ours)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    if not _lag_admin:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap.split(","), client_id="relwatch-lag",
            request_timeout_ms=10_000,
            **credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context))
        await admin.start()
        _lag_admin.append(admin)
    try:
        committed: Mapping[Any, Any] = await _lag_admin[0].list_consumer_group_offsets(
            settings.group_id)
        return committed
    except BaseException:
        await _drop_lag_admin()  # the next export reconnects
        raise


async def _drop_lag_admin() -> None:
    """Close the lag's admin client (its connections, its background task), if one is open."""
    if _lag_admin:
        with suppress(Exception):
            await _lag_admin.pop().close()


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def _close_lag_admin(sender: Any, **kwargs: Any) -> None:
    await _drop_lag_admin()  # with the worker


async def _export_consumer_lag() -> int:
    """Set the lag gauge of every partition the group reads: the committed offsets from the
    group's coordinator, the end offsets and partition counts from the worker's consumer."""
    consumer = app.consumer
    partitions = [TP(topic, p)
                  for topic in (settings.topic_name(spec.name) for spec in WORKER_INPUT_TOPICS)
                  for p in range(consumer.topic_partitions(topic) or 0)]
    committed = await _group_committed_offsets()
    lag = partition_lag(partitions, committed, await consumer.highwaters(*partitions))
    for (topic, partition), n in lag.items():
        CONSUMER_LAG.labels(group=settings.group_id, topic=topic, partition=str(partition)).set(n)
    return sum(lag.values())


if settings.lag_metrics_interval_s > 0:

    @app.timer(interval=settings.lag_metrics_interval_s)
    async def _consumer_lag_timer() -> None:
        try:
            await asyncio.wait_for(_export_consumer_lag(), timeout=30)
        except Exception as exc:  # a metric, never a reason to disturb the agents
            log.warning("consumer_lag_unavailable", error=repr(exc))


# --- ops: what the tables' RocksDB stores hold in RAM --------------------------------------
_ROCKSDB_MEMORY = {
    "block_cache": "rocksdb.block-cache-usage",
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}


def _table_stores() -> Iterator[tuple[str, Any]]:
    """(table name, open RocksDB database) of every table the app registered, one per
    partition (none with memory://). Faust's RocksDB store keeps its open databases
    (``rocksdict.Rdict``) by partition in ``_dbs``, not a public attribute: a store without it
    yields nothing."""
    for table in app.tables.values():
        for db in (getattr(table.data, "_dbs", None) or {}).values():
            yield table.name, db


def table_memory() -> dict[tuple[str, str], int]:
    """(table, kind) -> bytes, summed over the table's partitions (empty with memory://)."""
    out: dict[tuple[str, str], int] = {}
    for name, db in _table_stores():
        for kind, prop in _ROCKSDB_MEMORY.items():
            value = db.property_int_value(prop) or 0
            out[(name, kind)] = out.get((name, kind), 0) + int(value)
    return out


if settings.lag_metrics_interval_s > 0:

    @app.timer(interval=settings.lag_metrics_interval_s)
    async def _table_memory_timer() -> None:
        try:
            for (table, kind), size in table_memory().items():
                TABLE_MEMORY.labels(table=table, kind=kind).set(size)
        except Exception as exc:  # a metric, never a reason to disturb the agents
            log.warning("table_memory_unavailable", error=repr(exc))


# --- ops: the heap's free space back to the system once the stream goes quiet ------------
def _pack_and_release_heap() -> bool:
    """Once the stream goes quiet: compress the entries the merge held as text
    (``CompressedEntries.pack``), write the tables' memtables out to their files (RocksDB
    frees them), then give the heap's free space back."""
    entries = _derived["entries"]
    if isinstance(entries, timeline.CompressedEntries):
        entries.pack()
    for _, db in _table_stores():
        try:
            db.flush(True)
        except Exception as exc:  # memory only: the data is safe in the WAL and changelog
            log.warning("table_flush_failed", error=repr(exc))
    return release_free_heap()


_idle_trim = IdleTrim(release=_pack_and_release_heap)


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


if settings.malloc_trim_idle_s > 0:

    @app.timer(interval=settings.malloc_trim_idle_s)
    async def _release_heap_when_idle() -> None:
        try:
            before = _resident_mb()
            if _idle_trim.check(processed_total()):
                log.info("heap_released", rss_mb_before=round(before, 1),
                         rss_mb_after=round(_resident_mb(), 1))
        except OSError as exc:  # no /proc: nothing to report, nothing lost
            log.warning("heap_release_unavailable", error=repr(exc))


# --- a record that never reached its stream ----------------------------------------------
_commit_holes = CommitHoleRepair(after_s=settings.commit_hole_refetch_s)

if settings.commit_hole_refetch_s > 0:

    @app.timer(interval=max(1.0, settings.commit_hole_refetch_s / 3))
    async def _repair_commit_holes() -> None:
        """Fetch again a partition whose commit waits on a record no stream will ack
        (streams/faust_fixes.py, part 3); a rebalance seeks every partition anyway."""
        if app.rebalancing or not app.flow_control.is_active():
            _commit_holes.reset()
            return
        for tp, _start, _end, action in await _commit_holes.check(app.consumer, time.monotonic()):
            COMMIT_HOLES.labels(topic=tp.topic, action=action).inc()


# --- a partition assigned but never fetched again ----------------------------------------
_stalled_partitions = StalledPartitionRepair(after_s=settings.stalled_partition_refetch_s)

if settings.stalled_partition_refetch_s > 0:

    @app.timer(interval=max(1.0, settings.stalled_partition_refetch_s / 3))
    async def _repair_stalled_partitions() -> None:
        """Fetch again an input partition that has records to read but has not moved
        (streams/faust_fixes.py, part 4); only between rebalances, with the tables recovered."""
        if not _ready() or not app.flow_control.is_active():
            _stalled_partitions.reset()
            return
        try:
            refetched = await _stalled_partitions.check(app.consumer, time.monotonic())
        except Exception as exc:  # a broker hiccup: the next tick tries again
            log.warning("stalled_partition_check_failed", error=repr(exc))
            return
        for tp, _committed, _end in refetched:
            STALLED_PARTITIONS.labels(topic=tp.topic).inc()


def _ready() -> bool:
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    return bool(recovery.completed.is_set() and not recovery.in_recovery
                and not app.rebalancing)


register_pages(app, current_entries, _ready)
