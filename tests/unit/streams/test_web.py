"""Server-sent events splice the entry JSON already written for the topic (streams/web.py)."""

from __future__ import annotations

import json

import pytest

from streams.web import AllocationTracer, ChangeBroadcast, sse_event


def _data(event: bytes) -> dict[str, object]:
    lines = event.decode().split("\n")
    assert lines[0].startswith("event: ") and event.endswith(b"\n\n")
    return json.loads(next(line[6:] for line in lines if line.startswith("data: ")))  # type: ignore[no-any-return]


def test_an_upsert_event_carries_the_entry_as_sent_to_the_topic() -> None:
    entry = json.dumps({"id": "e1", "summary": "Путин — Ким: визит", "mentions": [1, 2]},
                       ensure_ascii=False)
    assert _data(sse_event("upsert", "e1", entry)) == {
        "kind": "upsert", "id": "e1", "entry": json.loads(entry)}


def test_a_retraction_has_a_null_entry_and_odd_ids_stay_valid_json() -> None:
    assert _data(sse_event("retract", 'e"2\\', None)) == {
        "kind": "retract", "id": 'e"2\\', "entry": None}


def test_the_broadcast_only_listens_while_someone_subscribes() -> None:
    broadcast = ChangeBroadcast(maxsize=2)
    assert not broadcast.listening
    queue = broadcast.subscribe()
    assert broadcast.listening
    for n in range(3):
        broadcast.publish(str(n).encode())
    assert [queue.get_nowait(), queue.get_nowait()] == [b"1", b"2"]  # the oldest was dropped
    broadcast.unsubscribe(queue)
    assert not broadcast.listening


class _Marker:
    pass


def test_heap_census_counts_live_objects_by_type() -> None:
    from streams.web import heap_census

    def count() -> int:
        return dict(heap_census(limit=10_000)).get(f"{__name__}._Marker", 0)

    before = count()
    markers = [_Marker() for _ in range(500)]
    assert count() == before + 500
    del markers
    assert count() == before


def test_allocation_tracer_names_the_line_that_grew() -> None:
    tracer = AllocationTracer()
    tracer.start()
    try:
        kept = [f"a string of some length {i}" * 4 for i in range(20_000)]  # about 2.5 MB
        growth = tracer.growth(limit=5)
    finally:
        tracer.stop()
    assert kept
    top = growth[0]
    assert top["where"].startswith(__file__), growth
    assert top["grew_kib"] > 1_500 and top["grew_blocks"] >= 20_000


def test_allocation_tracer_refuses_growth_before_start() -> None:
    with pytest.raises(RuntimeError):
        AllocationTracer().growth()


def _make_strings() -> list[str]:
    return [f"another string {i}" * 4 for i in range(20_000)]


def test_allocation_tracer_with_stacks_names_the_caller() -> None:
    tracer = AllocationTracer()
    tracer.start(frames=4)
    try:
        kept = _make_strings()
        growth = tracer.growth(limit=3)
    finally:
        tracer.stop()
    assert kept
    top = growth[0]
    assert top["where"].startswith(__file__)  # the allocating line, the newest frame
    callers = [frame for frame in top["stack"] if frame.startswith(__file__)]
    assert len(callers) >= 2, top  # and the test that called _make_strings
