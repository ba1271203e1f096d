"""The fixes of streams/faust_fixes.py: the producer-buffer flush that Faust runs before
committing offsets must not return while table changelog records are still buffered or being
handed over; records fetched before a seek are dropped; no commit passes a hole in the acked
offsets, and a hole that stays open is fetched again."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from intervaltree import IntervalTree

from streams import faust_fixes


class _SlowChannel:
    """Hands a message to 'Kafka' after a delay longer than Faust's 0.1 s flush timeout."""

    def __init__(self, delay: float, published: list[int]) -> None:
        self.delay = delay
        self.published = published

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay)
        self.published.append(fut.n)


def _buffer() -> ProducerBuffer:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    return buffer


async def _flush_after_putting(n: int, delay: float) -> tuple[list[int], list[int]]:
    published: list[int] = []
    buffer = _buffer()
    await buffer.start()
    try:
        channel = _SlowChannel(delay, published)
        for i in range(n):
            buffer.put(SimpleNamespace(n=i, message=SimpleNamespace(channel=channel)))  # type: ignore[arg-type]
        await buffer.flush()
        at_flush_return = list(published)
    finally:
        with contextlib.suppress(RuntimeError):  # Faust's own flush refuses a stopped buffer
            await buffer.stop()
    return at_flush_return, published


def test_flush_waits_for_slow_and_in_flight_messages() -> None:
    faust_fixes.install()
    at_return, _ = asyncio.run(_flush_after_putting(4, delay=0.25))
    assert at_return == [0, 1, 2, 3]


def test_flush_of_an_empty_buffer_returns_at_once() -> None:
    faust_fixes.install()
    at_return, published = asyncio.run(_flush_after_putting(0, delay=0.25))
    assert at_return == published == []


# --- records fetched before a seek must not be delivered after it ------------------------------
def _assignment_of(*partitions: int) -> Any:
    from aiokafka.consumer.subscription_state import Assignment
    from aiokafka.structs import TopicPartition

    return Assignment({TopicPartition("articles.raw", p) for p in partitions})


def _tp(partition: int) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition("articles.raw", partition)


async def _stale_verdicts() -> dict[str, bool]:
    faust_fixes.install()
    assignment = _assignment_of(0, 1)
    assignment.state_value(_tp(0)).reset_to(1800)  # the position after the assignment
    assignment.state_value(_tp(1)).reset_to(40)
    records = {_tp(0): ["r1851", "r1852"], _tp(1): ["r40"]}
    before_seek = faust_fixes.stamp_batch(records, assignment)
    verdicts = {"untouched": faust_fixes.is_stale(before_seek.stamps[_tp(0)])}
    assignment.state_value(_tp(0)).seek(1851)  # the rebalance seeks partition 0 back
    verdicts["fetched before the seek"] = faust_fixes.is_stale(before_seek.stamps[_tp(0)])
    verdicts["other partition"] = faust_fixes.is_stale(before_seek.stamps[_tp(1)])
    after_seek = faust_fixes.stamp_batch(records, assignment)
    verdicts["fetched after the seek"] = faust_fixes.is_stale(after_seek.stamps[_tp(0)])
    assignment._unassign()  # revoked: nothing fetched for the old assignment is current
    verdicts["after unassignment"] = faust_fixes.is_stale(after_seek.stamps[_tp(1)])
    return verdicts


def test_a_record_is_stale_once_its_partition_is_repositioned_or_revoked() -> None:
    verdicts = asyncio.run(_stale_verdicts())
    assert verdicts == {
        "untouched": False,
        "fetched before the seek": True,
        "other partition": False,
        "fetched after the seek": False,
        "after unassignment": True,
    }


def test_a_batch_keeps_its_records_and_a_partition_without_state_is_never_stale() -> None:
    async def stamp() -> Any:
        return faust_fixes.stamp_batch({_tp(0): [1, 2], _tp(5): [3]}, _assignment_of(0))

    batch = asyncio.run(stamp())
    assert dict(batch) == {_tp(0): [1, 2], _tp(5): [3]}
    assert set(batch.stamps) == {_tp(0)}
    assert faust_fixes.is_stale(batch.stamps.get(_tp(5))) is False


def test_the_fetch_loop_drops_records_of_a_partition_seeked_mid_batch() -> None:
    """Faust's own getmany, fed a batch fetched before a seek, yields only what is current."""
    from types import MethodType

    from faust.transport.consumer import Consumer

    faust_fixes.install()

    async def run() -> list[tuple[int, int]]:
        assignment = _assignment_of(0, 1)
        assignment.state_value(_tp(0)).reset_to(1851)
        assignment.state_value(_tp(1)).reset_to(7)
        records = {_tp(0): [1851, 1852, 1853, 1854, 1855], _tp(1): [7, 8]}
        batch = faust_fixes.stamp_batch(records, assignment)

        consumer: Any = SimpleNamespace(
            app=SimpleNamespace(consumer_generation_id=1, monitor=SimpleNamespace(
                track_tp_end_offset=lambda tp, offset: None)),
            should_stop=False, flow_active=True, _buffered_partitions=set(), _read_offset={},
            highwater=lambda tp: 0,
            _to_message=lambda tp, record: SimpleNamespace(offset=record),
        )

        async def wait_next(timeout: float) -> Any:
            return batch, {_tp(0), _tp(1)}

        consumer._wait_next_records = wait_next
        consumer.scheduler = SimpleNamespace(iterate=lambda recs: (
            (tp, r) for tp, rs in recs.items() for r in rs))
        delivered: list[tuple[int, int]] = []
        getmany = MethodType(Consumer.getmany, consumer)
        # Consumer.getmany is the patched loop: it notes the stamps via _wait_next_records
        consumer._relwatch_batch_stamps = batch.stamps
        async for tp, message in getmany(1.0):
            delivered.append((tp.partition, message.offset))
            if message.offset == 1852:  # a rebalance seeks partition 0 back mid-hand-over
                assignment.state_value(_tp(0)).seek(1851)
            consumer._read_offset[tp] = message.offset  # what Faust's fetch loop does next
        return delivered, consumer._read_offset

    delivered, read_offset = asyncio.run(run())
    assert delivered == [(0, 1851), (0, 1852), (1, 7), (1, 8)]
    # the offset written over the seek's is cleared, so the re-fetched 1851... are taken again
    assert read_offset == {_tp(0): None, _tp(1): 8}


def test_acks_of_an_older_generation_or_during_a_rebalance_are_not_counted() -> None:
    from collections import defaultdict

    from faust.transport.consumer import Consumer

    faust_fixes.install()
    flow = {"active": True}
    consumer: Any = SimpleNamespace(
        app=SimpleNamespace(consumer_generation_id=3,
                            flow_control=SimpleNamespace(is_active=lambda: flow["active"]),
                            topics=SimpleNamespace(acks_enabled_for=lambda topic: True)),
        _unacked_messages=set(), _committed_offset=defaultdict(lambda: None),
        _acked_index=defaultdict(set), _acked=defaultdict(list), _n_acked=0,
        _waiting_for_ack=None,
    )

    class Message:  # hashable, like Faust's messages
        def __init__(self, offset: int, generation: int) -> None:
            self.tp, self.topic, self.offset = _tp(0), "articles.raw", offset
            self.acked, self.generation_id = False, generation

    def message(offset: int, generation: int) -> Any:
        msg = Message(offset, generation)
        consumer._unacked_messages.add(msg)
        return msg

    skipped_after_rebalance = message(1852, generation=2)
    current = message(1851, generation=3)
    assert Consumer.ack(consumer, skipped_after_rebalance) is False
    assert Consumer.ack(consumer, current) is True
    assert skipped_after_rebalance.acked and current.acked
    assert consumer._acked[_tp(0)] == [1851]  # 1852 waits for its re-delivered copy
    assert consumer._unacked_messages == set()

    flow["active"] = False  # a rebalance started: streams skip their buffered messages
    skipped_while_suspended = message(1853, generation=3)
    assert Consumer.ack(consumer, skipped_while_suspended) is False
    flow["active"] = True
    assert Consumer.ack(consumer, message(1852, generation=3)) is True
    assert consumer._acked[_tp(0)] == [1851, 1852]


# --- part 3: holes in the acked offsets ---------------------------------------------------------
def _consumer_with(acked: dict[Any, list[int]], committed: dict[Any, int | None]) -> Any:
    """The part of Faust's consumer state that ``_new_offset`` and the hole repair read."""
    seeks: list[tuple[Any, int]] = []

    async def seek(tp: Any, offset: int) -> None:
        seeks.append((tp, offset))

    consumer = SimpleNamespace(
        _acked=defaultdict(list, {tp: list(v) for tp, v in acked.items()}),
        _acked_index=defaultdict(set, {tp: set(v) for tp, v in acked.items()}),
        _committed_offset=defaultdict(lambda: None, committed),
        _gap=defaultdict(IntervalTree),
        seek=seek,
        seeks=seeks,
    )
    return consumer


def test_no_commit_over_a_hole_of_one_offset() -> None:
    """Faust's own check commits 1 -> 5 over a missing offset 1 (min(acked) - committed is 1,
    not > 1): the message at offset 1 would be lost."""
    tp = _tp(0)
    original = faust_fixes._original_new_offset(_consumer_with({tp: [2, 3, 4]}, {tp: 1}), tp)
    assert original == 5, "Faust's behaviour this fix exists for has changed"
    faust_fixes.install()
    consumer = _consumer_with({tp: [2, 3, 4]}, {tp: 1})
    assert Consumer._new_offset(consumer, tp) is None
    consumer._acked[tp].append(1)  # the missing record comes after all
    assert Consumer._new_offset(consumer, tp) == 5


def test_no_commit_over_a_hole_at_offset_zero() -> None:
    faust_fixes.install()
    tp = _tp(0)
    assert Consumer._new_offset(_consumer_with({tp: [1, 2]}, {tp: 0}), tp) is None
    assert Consumer._new_offset(_consumer_with({tp: [0, 1, 2]}, {tp: 0}), tp) == 3


def test_a_gap_in_a_topic_never_compacted_is_a_hole_not_consumed_offsets() -> None:
    """Faust takes a jump in a stream's offsets for a compacted gap and commits over it; on the
    worker's inputs, which are never compacted, the jump is records that never reached their
    stream: no commit over them, and the hole repair sees them."""
    from aiokafka.structs import TopicPartition

    faust_fixes.install()
    raw = TopicPartition("ns.articles.raw", 0)
    timeline = TopicPartition("ns.timeline.entries", 0)
    for tp in (raw, timeline):
        consumer = _consumer_with({tp: [1381, 1382]}, {tp: 1018})
        consumer._gap[tp].addi(1018, 1381)  # Faust's _add_gap(tp, 1018, 1380)
        committed = Consumer._new_offset(consumer, tp)
        if tp is raw:
            assert committed is None and not consumer._gap.get(tp)
            assert faust_fixes.commit_hole(consumer, tp) == (1018, 1381)
        else:  # a compacted topic keeps Faust's behaviour
            assert committed == 1383
    assert faust_fixes.never_compacted("articles.unique")
    assert not faust_fixes.never_compacted("ns.timeline.entries")
    assert not faust_fixes.never_compacted("ns.not-articles.raw")


def test_first_hole() -> None:
    assert faust_fixes.first_hole([4, 5, 7], 1) == (1, 4)
    assert faust_fixes.first_hole([1, 2], 1) is None
    assert faust_fixes.first_hole([], 3) is None
    assert faust_fixes.first_hole([5], None) is None  # never committed: no reference yet


def test_hole_repair_waits_then_refetches_then_gives_up() -> None:
    tp = _tp(0)
    repair = faust_fixes.CommitHoleRepair(after_s=10, max_refetches=2)
    holes = {tp: (1, 4)}
    assert repair.due(holes, now=0) == []
    assert repair.due(holes, now=9) == []
    assert repair.due(holes, now=10) == [(tp, 1, 4, "refetch")]
    assert repair.due(holes, now=15) == []  # the refetch gets its own after_s
    assert repair.due(holes, now=20) == [(tp, 1, 4, "refetch")]
    assert repair.due(holes, now=30) == [(tp, 1, 4, "give_up")]


def test_hole_repair_forgets_a_filled_hole() -> None:
    tp = _tp(0)
    repair = faust_fixes.CommitHoleRepair(after_s=10)
    assert repair.due({tp: (1, 4)}, now=0) == []
    assert repair.due({}, now=5) == []  # filled: the commit moved on
    assert repair.due({tp: (9, 12)}, now=8) == []  # a new hole starts its own clock
    assert repair.due({tp: (9, 12)}, now=18) == [(tp, 9, 12, "refetch")]


def test_hole_repair_seeks_back_to_the_committed_offset() -> None:
    tp, ok = _tp(0), _tp(1)
    consumer = _consumer_with({tp: [4, 5], ok: [7, 8]}, {tp: 1, ok: 7})
    repair = faust_fixes.CommitHoleRepair(after_s=1, max_refetches=1)
    asyncio.run(repair.check(consumer, now=0))
    assert consumer.seeks == []
    assert asyncio.run(repair.check(consumer, now=1)) == [(tp, 1, 4, "refetch")]
    assert consumer.seeks == [(tp, 1)]
    # the refetch did not fill it: given up, so the partition commits on, loudly
    assert asyncio.run(repair.check(consumer, now=2)) == [(tp, 1, 4, "give_up")]
    assert sorted(consumer._acked[tp]) == [1, 2, 3, 4, 5]
    assert faust_fixes._original_new_offset(consumer, tp) == 6


def test_stall_repair_waits_for_a_marker_that_does_not_move() -> None:
    stuck, moving = _tp(0), _tp(1)
    repair = faust_fixes.StalledPartitionRepair(after_s=10)
    assert repair.due({stuck: (5, None, 0, None), moving: (5, None, 0, None)}, now=0) == []
    assert repair.due({stuck: (5, None, 0, None), moving: (5, 6, 1, 5)}, now=6) == []
    assert repair.due({stuck: (5, None, 0, None), moving: (5, 8, 3, 7)}, now=10) == [stuck]
    # acted on: the same partition waits another after_s before it is due again
    assert repair.due({stuck: (5, None, 0, None), moving: (8, 8, 0, None)}, now=15) == []
    assert repair.due({stuck: (5, None, 0, None)}, now=20) == [stuck]
    repair.reset()
    assert repair.due({stuck: (5, None, 0, None)}, now=21) == []


def _assigned_consumer(committed: dict[Any, int], ends: dict[Any, int]) -> Any:
    """The consumer state the stall repair reads: an assignment, offsets, the active set."""
    consumer = _consumer_with({}, committed)
    asked: list[tuple[Any, ...]] = []

    async def highwaters(*tps: Any) -> dict[Any, int]:
        asked.append(tps)
        return {tp: ends[tp] for tp in tps}

    consumer.assignment = lambda: set(committed)
    consumer.highwater = committed.get  # its last fetch's: caught up, whatever came since
    consumer.highwaters = highwaters
    consumer.asked = asked
    consumer._read_offset = defaultdict(lambda: None)
    consumer._active_partitions = set(committed) - {_tp(0)}  # partition 0 left the active set
    consumer._paused_partitions = {_tp(0)}
    consumer._buffered_partitions = set()
    consumer._get_active_partitions = lambda: consumer._active_partitions
    return consumer


def test_stall_repair_refetches_only_a_partition_with_records_to_read() -> None:
    """Partition 0 is out of the active set and 318 records behind on the broker, though its
    last fetch saw it caught up:
    it is put back and sought to its committed offset. Partition 1 is caught up (idle), and is
    left alone; neither is touched before after_s."""
    never_fetched, idle = _tp(0), _tp(1)
    consumer = _assigned_consumer({never_fetched: 100, idle: 50}, {never_fetched: 418, idle: 50})
    repair = faust_fixes.StalledPartitionRepair(after_s=5)
    assert asyncio.run(repair.check(consumer, now=0)) == []
    assert asyncio.run(repair.check(consumer, now=4)) == []
    assert consumer.seeks == [] and consumer.asked == []
    assert asyncio.run(repair.check(consumer, now=5)) == [(never_fetched, 100, 418)]
    assert sorted(consumer.asked[0]) == [never_fetched, idle]  # the broker says where each ends
    assert consumer.seeks == [(never_fetched, 100)]
    assert never_fetched in consumer._active_partitions
    assert never_fetched not in consumer._paused_partitions


def test_stall_repair_leaves_a_hole_to_the_hole_repair_and_a_moving_partition_alone() -> None:
    holed, moving = _tp(0), _tp(1)
    consumer = _assigned_consumer({holed: 1, moving: 7}, {holed: 90, moving: 90})
    consumer._acked[holed] = [4, 5]  # a hole 1-3: part 3's
    repair = faust_fixes.StalledPartitionRepair(after_s=1)
    for now in range(4):
        consumer._acked[moving].append(7 + now)
        consumer._read_offset[moving] = 7 + now
        assert asyncio.run(repair.check(consumer, now=now)) == []
    assert consumer.seeks == []


async def _stall_reports() -> tuple[dict[str, Any], dict[str, Any]]:
    held, fresh = _tp(0), _tp(1)
    assignment = _assignment_of(0, 1)  # aiokafka's states want a running loop
    assignment.state_value(held).reset_to(100)  # aiokafka will fetch it from 100
    client = SimpleNamespace(
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment)),
        _fetcher=SimpleNamespace(_records={held: object()}))  # untaken records of it
    consumer = _assigned_consumer({held: 100, fresh: 7}, {})
    consumer._thread = SimpleNamespace(_ensure_consumer=lambda: client)
    return faust_fixes.fetch_state(consumer, held), faust_fixes.fetch_state(consumer, fresh)


def test_a_stall_report_says_where_faust_and_aiokafka_hold_the_partition() -> None:
    held, fresh = asyncio.run(_stall_reports())
    assert held == {
        "active": False, "paused": True, "buffer_full": False, "read_offset": None,
        "fetch_position": 100, "fetch_paused": False, "records_held": True}
    assert fresh["active"] and fresh["fetch_position"] is None
    assert not fresh["records_held"]
