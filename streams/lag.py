"""Consumer lag from a group's committed offsets and the partitions' end offsets.

Shared by the kafka-python probe (:class:`streams.kafka_io.LagProbe`: the monitor, the tests)
and the worker, which asks through its own aiokafka clients so that its process need not load
kafka-python (about 6 MB).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def partition_lag(partitions: Iterable[tuple[str, int]], committed: Mapping[Any, Any],
                  end: Mapping[Any, int]) -> dict[tuple[str, int], int]:
    """End offset minus committed offset per (topic, partition), never below zero.

    ``committed``: the group's offsets by partition, as ints or as objects with an
    ``offset`` (a client's ``OffsetAndMetadata``); a partition the group never committed, or
    committed as -1, counts from 0. Partition keys are (topic, partition) tuples or named
    tuples of them, as each client has its own."""
    lag: dict[tuple[str, int], int] = {}
    for tp in partitions:
        meta = committed.get(tp)
        done = meta if meta is None or isinstance(meta, int) else meta.offset
        lag[(tp[0], tp[1])] = max(0, end[tp] - (done if done is not None and done >= 0 else 0))
    return lag
