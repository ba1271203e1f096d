"""Fixes for faust-streaming behaviours that lose messages, or stall, when a worker dies.

1. Table writes lost on ``kill -9`` (``ProducerBuffer.flush``, below).
2. Records fetched before a seek delivered after it, or handed over across it
   (``_drop_stale_records``), and acks of an older consumer generation counted
   (``_ack_of_current_generation``), further below.
3. Offsets committed over a hole, or a commit stalled behind one (``_new_offset_below_holes``,
   :class:`CommitHoleRepair`).
4. A partition assigned but never fetched again (:class:`StalledPartitionRepair`), at the end.

The first:

Faust writes a table's changelog records through ``ProducerBuffer`` (``send_soon``: a table's
``__setitem__`` is synchronous), and before committing the source offsets it calls
``producer.flush()``, which drains that buffer and then the Kafka producer. In faust-streaming
0.15 ``ProducerBuffer.flush`` returns

* as soon as a single message takes longer than 0.1 s to hand over (``wait_for(..., 0.1)``
  returns on timeout instead of waiting on), which a busy 2-core box hits under load, and
* when the queue is empty while the last message taken off it is still being handed to the
  Kafka producer (``size`` counts only the queue).

Either way the offsets are committed while changelog records are still in memory: a
``kill -9`` then loses table writes whose input will never be read again — a repost notice, a
mention or a dedupe signature missing after a failover (found by
``tests/integration/test_faults.py::test_two_workers_one_killed_mid_run``). The fixed flush
waits until the queue is empty *and* no message is in flight; :func:`install` applies it once,
before the app starts.

The second: Faust's fetch loop (``Consumer.getmany``) takes a batch of records from the
consumer thread and hands them to the agents one by one, awaiting each. When the group
rebalances meanwhile, Faust seeks the partitions it keeps back to their committed offsets, but
goes on handing out the rest of the batch fetched *before* the seek. Its read-offset logic then
sees, say, offset 1855 right after a seek to 1851, records 1852–1854 as a gap (as if compacted
away) and drops the re-fetched 1851–1854 as already read: a message lost, or a commit that never
passes it (found by ``test_two_workers_one_killed_mid_run``; docs/delivery-semantics.md). The fix
stamps every change of a partition's fetch position in the consumer thread (aiokafka's
``TopicPartitionState.seek``/``reset_to``), notes the stamps when a batch is fetched, and drops a
record whose partition has been repositioned — or unassigned — since its batch was fetched:
the consumer fetches it again from the new position if it is still to be read. A record whose
hand-over to its stream outlasted a seek (a full stream buffer waits across a rebalance) must
not leave its offset as the partition's read offset either: that hid the re-fetched records
below it (a commit stalled at offset 3 of a partition whose records 3–4 were never taken again,
in a loaded run). And the acks Faust gives the old-generation messages its streams skip after a
rebalance — and those they skip while a rebalance has the flow suspended — are not counted,
so a commit waits for their re-delivered copies.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from aiokafka.consumer.subscription_state import TopicPartitionState
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer

from schemas.topics import WORKER_INPUT_TOPICS

log = structlog.get_logger(__name__)

#: How long one wait for progress lasts before the buffer's state is checked again.
FLUSH_POLL_S = 0.5

_installed = {"done": False}


async def _send_pending_counted(self: Any, fut: Any) -> None:
    self._relwatch_inflight = getattr(self, "_relwatch_inflight", 0) + 1
    try:
        await _original_send_pending(self, fut)
    finally:
        self._relwatch_inflight -= 1


async def _flush_completely(self: Any) -> None:
    """Return only when every buffered message has been handed to the Kafka producer."""
    while self.size or getattr(self, "_relwatch_inflight", 0):
        if self.state != "running" and self.size:
            raise RuntimeError("Cannot flush: producer buffer not running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=FLUSH_POLL_S)
        except TimeoutError:
            continue  # slow, not done: keep waiting (the original returned here)


_original_send_pending = ProducerBuffer._send_pending


# --- 2. records fetched before a seek ----------------------------------------------------------
_position_stamps = itertools.count(1)
_original_seek = TopicPartitionState.seek
_original_reset_to = TopicPartitionState.reset_to
_original_fetch_records = AIOKafkaConsumerThread._fetch_records
_original_wait_next_records = Consumer._wait_next_records
_original_getmany = Consumer.getmany


def position_stamp(state: Any) -> int:
    """The stamp of a partition's last repositioning (0: never repositioned)."""
    return int(getattr(state, "_relwatch_stamp", 0))


def _stamp(state: Any) -> None:
    state._relwatch_stamp = next(_position_stamps)


def _seek_stamped(self: Any, position: int) -> None:
    _original_seek(self, position)
    _stamp(self)


def _reset_to_stamped(self: Any, position: int) -> None:
    _original_reset_to(self, position)
    _stamp(self)


class StampedRecords(dict[Any, Any]):
    """A fetched batch (partition -> records) with each partition's state and stamp at fetch."""

    stamps: Mapping[Any, tuple[Any, int]]


def stamp_batch(records: Mapping[Any, Any], assignment: Any) -> StampedRecords:
    """Note, for each partition of a just-fetched batch, its state object and position stamp."""
    batch = StampedRecords(records)
    stamps: dict[Any, tuple[Any, int]] = {}
    if assignment is not None:
        for tp in records:
            state = assignment.state_value(tp)
            if state is not None:
                stamps[tp] = (state, position_stamp(state))
    batch.stamps = stamps
    return batch


def is_stale(stamp: tuple[Any, int] | None) -> bool:
    """True when the partition was repositioned or unassigned after the record was fetched."""
    if stamp is None:
        return False
    state, at_fetch = stamp
    return position_stamp(state) != at_fetch or not state._assignment.active


async def _fetch_records_stamped(self: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
    # Runs in the consumer thread, like every seek: no seek can fall between the fetch and
    # the stamps taken here.
    records = await _original_fetch_records(self, consumer, *args, **kwargs)
    if not records:
        return records
    subscription = consumer._subscription.subscription
    return stamp_batch(records, subscription.assignment if subscription is not None else None)


async def _wait_next_records_noting_stamps(self: Any, timeout: float) -> Any:
    records, active_partitions = await _original_wait_next_records(self, timeout)
    self._relwatch_batch_stamps = getattr(records, "stamps", None)
    return records, active_partitions


async def _drop_stale_records(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    dropped: dict[Any, list[int]] = {}
    try:
        async for tp, message in _original_getmany(self, timeout):
            stamps = getattr(self, "_relwatch_batch_stamps", None)
            stamp = stamps.get(tp) if stamps else None
            if is_stale(stamp):
                dropped.setdefault(tp, []).append(message.offset)
                continue
            try:
                yield tp, message
            finally:
                # Resumed after the fetch loop handed the record to its stream — which can
                # wait on a full stream buffer across a whole rebalance — and then set the
                # partition's read offset to this record's offset, over the offset the seek
                # set meanwhile. Faust would then drop the re-fetched records below it (a
                # loss, or a commit that stalls); with no read offset it takes them again.
                if is_stale(stamp):
                    self._read_offset[tp] = None
    finally:
        for tp, offsets in dropped.items():
            log.info("stale_records_dropped", topic=tp.topic, partition=tp.partition,
                     first_offset=offsets[0], last_offset=offsets[-1], count=len(offsets))


_original_ack = Consumer.ack


def _ack_of_current_generation(self: Any, message: Any) -> bool:
    """Count an ack only for a message of the current consumer generation, and none while a
    rebalance has the flow suspended.

    When a rebalance starts, Faust suspends the flow, and its streams *skip* the messages still
    in their buffers — and ack them, as they do after the generation changed. Counted, those
    acks let the commit Faust makes on revocation pass messages that were never processed: the
    loss seen in a two-worker run (the first records of three partitions, skipped and acked
    when the group rebalanced, never processed). Not counted, they stay uncommitted, and the
    seek to the committed offsets after the rebalance delivers them again.
    """
    generation = getattr(message, "generation_id", None)
    flow = getattr(self.app, "flow_control", None)
    if (generation is not None and generation != self.app.consumer_generation_id) or (
        flow is not None and not flow.is_active()
    ):
        message.acked = True
        self._unacked_messages.discard(message)
        return False
    return bool(_original_ack(self, message))


# --- 3. holes in the acked offsets ------------------------------------------------------------
# Faust commits a partition up to the first gap in its acked offsets. Two of its checks miss a
# hole at the head, just above the committed offset: ``_new_offset`` looks for one only when
# ``min(acked) - committed > 1`` (a hole of exactly one offset is committed over: that message
# is lost) and only when the committed offset is truthy (0 and "never committed" skip the
# check). And a record that never reaches its stream after the consumer read it leaves a hole
# that nothing fills: the commit of that partition stalls for good. That was seen after a
# kill -9 and a restart: the restarted worker read mentions 0-5 of a partition its group had
# never committed, its timeline agent got 0, 4 and 5 but not 1-3, and the partition stayed
# 3,900 messages behind while every later mention was processed (``test_faults.py``, about one
# run in four). The records' way from the fetch to the stream in Faust is not where this module
# can see them; what it can do is never commit over a hole, and fetch the partition again from
# its committed offset when a hole stays open (at-least-once: the sink is idempotent).

_original_new_offset = Consumer._new_offset
_original_perform_seek = Consumer.perform_seek


def first_hole(acked: list[int], committed: int | None) -> tuple[int, int] | None:
    """The offsets ``[committed, min(acked))`` acked past but never acked themselves, or None."""
    if committed is None or not acked:
        return None
    head = min(acked)
    return (committed, head) if head > committed else None


def commit_hole(consumer: Any, tp: Any) -> tuple[int, int] | None:
    """The hole at the head of a Faust consumer's acked offsets of ``tp`` (:func:`first_hole`);
    None too for a partition with gaps of a compacted topic, which Faust tracks in ``_gap``
    and fills itself."""
    if consumer._gap[tp]:
        return None
    return first_hole(consumer._acked[tp], consumer._committed_offset[tp])


# Faust takes a jump in the offsets it hands to a stream for a gap compaction left, and commits
# over it. The worker's input topics are never compacted: there a jump is records that did not
# reach their stream. A two-worker run most likely lost 363 consecutive articles that way (the
# group's lag fell from about 2,100 to 0 within 3 s, 9 s after a rebalance, while they had never
# been processed; docs/delivery-semantics.md): such a gap is dropped, so that the hole check
# holds the commit and the repair fetches the records again.
_NOT_COMPACTED = tuple(spec.name for spec in WORKER_INPUT_TOPICS if not spec.compacted)


def never_compacted(topic: str) -> bool:
    """Whether ``topic`` (namespaced or not) is one of the worker's non-compacted inputs."""
    return any(topic == name or topic.endswith("." + name) for name in _NOT_COMPACTED)


def _new_offset_below_holes(self: Any, tp: Any) -> int | None:
    """Faust's ``_new_offset``, but nothing to commit while a hole sits at the head, and no
    gap of a topic that is never compacted taken as consumed."""
    gaps = self._gap.get(tp)
    if gaps and never_compacted(tp.topic):
        log.error("commit_gap_refused", topic=tp.topic, partition=tp.partition,
                  gaps=[[iv.begin, iv.end - 1] for iv in sorted(gaps)])
        del self._gap[tp]
    if commit_hole(self, tp):
        return None
    result: int | None = _original_new_offset(self, tp)
    return result


async def _perform_seek_from_log_start(self: Any) -> None:
    """After Faust's seek to the committed offsets, take a partition the group never
    committed as committed at its log start (where ``auto_offset_reset=earliest`` reads from),
    so that a hole at its very first records is seen as one."""
    await _original_perform_seek(self)
    uncommitted = [tp for tp in self.assignment()
                   if self._committed_offset[tp] is None
                   and self.app.topics.acks_enabled_for(tp.topic)]
    if not uncommitted:
        return
    try:
        starts = await self.earliest_offsets(*uncommitted)
    except Exception as exc:  # the hole check of these partitions waits for their first commit
        log.warning("log_start_offsets_unavailable", error=repr(exc))
        return
    for tp, start in starts.items():
        if self._committed_offset[tp] is None and start is not None and start >= 0:
            self._committed_offset[tp] = start


class CommitHoleRepair:
    """Fetch a partition again from its committed offset when a hole in its acked offsets stays
    open ``after_s`` seconds; after ``max_refetches`` fetches that did not fill it, give the hole
    up (counted as processed, logged as an error) so the partition is not stalled forever.

    Acks of one partition come in order (one agent, concurrency 1, per topic), so a hole that
    outlives a few commit intervals is a record that will not come: re-fetching it is safe, as
    the stages are idempotent and the timeline sink deduplicates by mention.
    """

    def __init__(self, after_s: float, max_refetches: int = 2) -> None:
        self.after_s = after_s
        self.max_refetches = max_refetches
        self._seen: dict[Any, tuple[int, float]] = {}  # tp -> (hole start, first seen)
        self._refetches: dict[tuple[Any, int], int] = {}

    def reset(self) -> None:
        """Forget every hole (a rebalance seeks every partition to its committed offset)."""
        self._seen.clear()

    def due(self, holes: Mapping[Any, tuple[int, int]],
            now: float) -> list[tuple[Any, int, int, str]]:
        """The holes to act on now: ``(tp, start, end, "refetch" | "give_up")``."""
        actions: list[tuple[Any, int, int, str]] = []
        for tp in list(self._seen):
            if tp not in holes or holes[tp][0] != self._seen[tp][0]:
                del self._seen[tp]  # filled, or the commit moved on to another hole
        for tp, (start, end) in holes.items():
            first_seen = self._seen.setdefault(tp, (start, now))[1]
            if now - first_seen < self.after_s:
                continue
            done = self._refetches.get((tp, start), 0)
            actions.append((tp, start, end, "refetch" if done < self.max_refetches
                            else "give_up"))
            self._refetches[(tp, start)] = done + 1
            self._seen[tp] = (start, now)  # the next action waits another after_s
        return actions

    async def check(self, consumer: Any, now: float) -> list[tuple[Any, int, int, str]]:
        """Find the consumer's holes and act on those that are due."""
        holes = {tp: hole for tp in list(consumer._acked)
                 if (hole := commit_hole(consumer, tp)) is not None}
        actions = self.due(holes, now)
        for tp, start, end, action in actions:
            if action == "refetch":
                log.warning("commit_hole_refetched", topic=tp.topic, partition=tp.partition,
                            first_offset=start, last_offset=end - 1)
                await consumer.seek(tp, start)
            else:
                log.error("commit_hole_given_up", topic=tp.topic, partition=tp.partition,
                          first_offset=start, last_offset=end - 1,
                          refetches=self.max_refetches)
                offsets = range(start, end)
                consumer._acked[tp].extend(offsets)
                consumer._acked_index[tp].update(offsets)
        return actions


# --- 4. a partition assigned but never fetched again ------------------------------------------
# Faust fetches only the partitions in its consumer's active set. A partition leaves that set
# while its stream's buffer is full (``on_buffer_full``) or while table recovery pauses it, and
# comes back when the buffer drains or recovery resumes it. aiokafka, meanwhile, sends no fetch
# request for a partition whose earlier records it still holds untaken. A partition that never
# comes back is assigned, has records to read, and is never fetched again: no record reaches
# its stream, so no hole opens and part 3 does not see it. That was seen once after a
# rebalance (318 records of ``articles.unique`` partition 1 left unread for 600 s, the event
# loop idle). The repair below finds an assigned input partition whose progress has not moved
# for ``after_s`` while the topic holds records past its committed offset (the broker's end
# offset: the consumer's own is that of its last fetch), logs where Faust and aiokafka hold it,
# puts it back in the active set and seeks it to its committed offset.


def progress_marker(consumer: Any, tp: Any) -> tuple[Any, ...]:
    """What changes whenever a partition makes progress: its committed and read offsets and its
    acked offsets (count and last)."""
    acked = consumer._acked.get(tp) or ()
    return (consumer._committed_offset.get(tp), consumer._read_offset.get(tp), len(acked),
            acked[-1] if acked else None)


def fetch_state(consumer: Any, tp: Any) -> dict[str, Any]:
    """Where Faust and aiokafka hold a partition: the facts a stall report needs."""
    active = consumer._active_partitions
    state: dict[str, Any] = {
        "active": active is None or tp in active,
        "paused": tp in consumer._paused_partitions,
        "buffer_full": tp in consumer._buffered_partitions,
        "read_offset": consumer._read_offset.get(tp),
    }
    try:  # aiokafka's own view, when the consumer thread's client is there to ask
        client = consumer._thread._ensure_consumer()
        tp_state = client._subscription.subscription.assignment.state_value(tp)
        state["fetch_position"] = tp_state.position if tp_state.has_valid_position else None
        state["fetch_paused"] = tp_state.paused
        state["records_held"] = tp in client._fetcher._records
    except Exception:  # a report, never a reason to fail the repair
        pass
    return state


class StalledPartitionRepair:
    """Fetch again an assigned partition of the worker's inputs whose progress has not moved for
    ``after_s`` seconds while its topic holds records past its committed offset.

    A partition that is caught up, or that keeps moving, is never touched; a refetch delivers
    at most what was already delivered (the stages are idempotent, the sink deduplicates).
    """

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._seen: dict[Any, tuple[Any, float]] = {}  # tp -> (marker, since)

    def reset(self) -> None:
        """Forget every partition's clock (a rebalance seeks every partition anyway)."""
        self._seen.clear()

    def due(self, markers: Mapping[Any, Any], now: float) -> list[Any]:
        """The partitions whose marker has not changed for ``after_s`` (each then waits another
        ``after_s`` before it is due again)."""
        for tp in list(self._seen):
            if tp not in markers:
                del self._seen[tp]
        stalled: list[Any] = []
        for tp, marker in markers.items():
            seen = self._seen.get(tp)
            if seen is None or seen[0] != marker:
                self._seen[tp] = (marker, now)
            elif now - seen[1] >= self.after_s:
                stalled.append(tp)
                self._seen[tp] = (marker, now)
        return stalled

    async def check(self, consumer: Any, now: float) -> list[tuple[Any, int, int]]:
        """Refetch the consumer's stalled partitions: ``(tp, committed, end offset)`` each."""
        markers = {
            tp: progress_marker(consumer, tp) for tp in consumer.assignment()
            if never_compacted(tp.topic) and consumer._committed_offset.get(tp) is not None
            and commit_hole(consumer, tp) is None  # part 3's to repair
        }
        stalled = self.due(markers, now)
        # the end offsets from the broker: the consumer's own highwater is that of its last
        # fetch, and a partition no longer fetched has an old one, or none
        ends: Mapping[Any, int | None] = await consumer.highwaters(*stalled) if stalled else {}
        refetched: list[tuple[Any, int, int]] = []
        for tp in stalled:
            committed, end = consumer._committed_offset.get(tp), ends.get(tp)
            if committed is None or end is None or end <= committed:
                continue  # caught up: an idle partition, not a stalled one
            log.warning("stalled_partition_refetched", topic=tp.topic, partition=tp.partition,
                        committed=committed, end_offset=end, stalled_s=self.after_s,
                        **fetch_state(consumer, tp))
            consumer._paused_partitions.discard(tp)
            consumer._buffered_partitions.discard(tp)
            consumer._get_active_partitions().add(tp)
            await consumer.seek(tp, committed)
            refetched.append((tp, committed, end))
        return refetched


def install() -> None:
    """Patch ``ProducerBuffer``, aiokafka's partition positions, Faust's fetch loop and its
    commit offsets (idempotent)."""
    if _installed["done"]:
        return
    ProducerBuffer._send_pending = _send_pending_counted  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush_completely  # type: ignore[method-assign]
    TopicPartitionState.seek = _seek_stamped
    TopicPartitionState.reset_to = _reset_to_stamped
    AIOKafkaConsumerThread._fetch_records = _fetch_records_stamped  # type: ignore[method-assign]
    Consumer._wait_next_records = _wait_next_records_noting_stamps  # type: ignore[method-assign]
    Consumer.getmany = _drop_stale_records  # type: ignore[method-assign]
    Consumer.ack = _ack_of_current_generation  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset_below_holes  # type: ignore[method-assign]
    Consumer.perform_seek = _perform_seek_from_log_start  # type: ignore[method-assign]
    _installed["done"] = True
