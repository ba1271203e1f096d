"""``relwatch monitor``: a live terminal view of the pipeline and its timeline topic.

Every interval it reads, with plain Kafka clients (no worker needed): the consumer group's lag
per topic and partition, the end offsets of the timeline, mention and dead-letter topics (so
rates follow from two readings), the age of the newest timeline record (freshness) and the
dead letters by reason. ``--once --json`` prints one reading for scripts.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from kafka import KafkaConsumer, TopicPartition

from schemas.topics import (
    ARTICLES_RAW,
    DEADLETTER,
    EVENTS_MENTIONS,
    TIMELINE_ENTRIES,
    WORKER_INPUT_TOPICS,
)

from .kafka_io import LagProbe
from .security import client_security
from .settings import Settings


@dataclass
class Reading:
    at: float
    lag: dict[str, int]
    end_offsets: dict[str, int]
    newest_timeline_ts: float | None
    deadletters_by_reason: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def freshness_s(self) -> float | None:
        return None if self.newest_timeline_ts is None else self.at - self.newest_timeline_ts


class Monitor:
    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.consumer = KafkaConsumer(
            **client_security(),
            bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False
        )
        self.lag_probe = LagProbe(bootstrap)
        self.dlq_reasons: Counter[str] = Counter()
        self.dlq_position: dict[TopicPartition, int] = {}
        self.previous: Reading | None = None

    def _tps(self, base: str) -> list[TopicPartition]:
        topic = self.settings.topic_name(base)
        return [
            TopicPartition(topic, p)
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]

    def _newest_timestamp(
        self, tps: list[TopicPartition], end: dict[TopicPartition, int]
    ) -> float | None:
        newest = None
        for tp in tps:
            if end.get(tp, 0) == 0:
                continue
            self.consumer.assign([tp])
            self.consumer.seek(tp, end[tp] - 1)
            for msgs in self.consumer.poll(timeout_ms=2000).values():
                for msg in msgs:
                    ts = msg.timestamp / 1000
                    newest = ts if newest is None else max(newest, ts)
        return newest

    def _count_dead_letters(
        self, tps: list[TopicPartition], end: dict[TopicPartition, int]
    ) -> None:
        for tp in tps:
            start = self.dlq_position.get(tp, 0)
            if start >= end.get(tp, 0):
                continue
            self.consumer.assign([tp])
            self.consumer.seek(tp, start)
            while self.consumer.position(tp) < end[tp]:
                for msgs in self.consumer.poll(timeout_ms=1000, max_records=5000).values():
                    for msg in msgs:
                        headers = dict(msg.headers or [])
                        reason = headers.get("relwatch-reason", b"unknown").decode()
                        self.dlq_reasons[reason] += 1
            self.dlq_position[tp] = end[tp]

    def read(self) -> Reading:
        watched = {
            base: self._tps(base)
            for base in (
                ARTICLES_RAW.name,
                EVENTS_MENTIONS.name,
                TIMELINE_ENTRIES.name,
                DEADLETTER.name,
            )
        }
        all_tps = [tp for tps in watched.values() for tp in tps]
        end = self.consumer.end_offsets(all_tps) if all_tps else {}
        lag = self.lag_probe.lag(
            self.settings.group_id,
            [self.settings.topic_name(s.name) for s in WORKER_INPUT_TOPICS],
        )
        self._count_dead_letters(watched[DEADLETTER.name], end)
        reading = Reading(
            at=time.time(),
            lag={f"{t}[{p}]": n for (t, p), n in sorted(lag.items())},
            end_offsets={base: sum(end.get(tp, 0) for tp in tps) for base, tps in watched.items()},
            newest_timeline_ts=self._newest_timestamp(watched[TIMELINE_ENTRIES.name], end),
            deadletters_by_reason=dict(self.dlq_reasons),
        )
        if self.previous is not None:
            dt = max(1e-6, reading.at - self.previous.at)
            reading.rates = {
                base: (n - self.previous.end_offsets.get(base, 0)) / dt
                for base, n in reading.end_offsets.items()
            }
        self.previous = reading
        return reading

    def close(self) -> None:
        self.consumer.close()
        self.lag_probe.close()


def render(reading: Reading) -> str:
    lines = [f"relwatch monitor  {time.strftime('%H:%M:%S', time.localtime(reading.at))}", ""]
    lines.append(f"{'topic':<24}{'records':>10}{'rate/s':>10}")
    for base, n in reading.end_offsets.items():
        lines.append(f"{base:<24}{n:>10}{reading.rates.get(base, 0.0):>10.1f}")
    fresh = reading.freshness_s
    lines += [
        "",
        f"timeline freshness: {'-' if fresh is None else f'{fresh:.1f} s'}",
        "",
        f"{'consumer lag':<40}{'messages':>10}",
    ]
    lines += [f"{tp:<40}{n:>10}" for tp, n in reading.lag.items()]
    lines += ["", "dead letters by reason:"]
    lines += [f"  {r:<30}{n:>8}" for r, n in sorted(reading.deadletters_by_reason.items())] or [
        "  none"
    ]
    return "\n".join(lines)


def run_monitor(
    settings: Settings,
    bootstrap: str,
    interval: float = 2.0,
    once: bool = False,
    as_json: bool = False,
) -> int:
    monitor = Monitor(settings, bootstrap)
    try:
        while True:
            reading = monitor.read()
            if as_json:
                print(
                    json.dumps(asdict(reading) | {"freshness_s": reading.freshness_s}), flush=True
                )
            else:
                if sys.stdout.isatty():
                    sys.stdout.write("\x1b[2J\x1b[H")
                print(render(reading), flush=True)
            if once:
                return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
    finally:
        monitor.close()
