"""The one producer factory every source uses: acks=all, retries, errbacks that count.

A delivery failure is never dropped silently: each one is logged with the key and reason and
counted in :class:`DeliveryReport`, which the caller turns into an exit status.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from kafka import KafkaProducer

log = structlog.get_logger(__name__)


@dataclass
class DeliveryReport:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_success(self, _metadata: Any) -> None:
        with self._lock:
            self.delivered += 1

    def on_failure(self, key: bytes | None, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            self.failures[type(exc).__name__] += 1
        log.error("delivery_failed", key=key.decode("utf-8", "replace") if key else None,
                  error=repr(exc))


def make_producer(
    bootstrap_servers: str,
    *,
    compression: str = "none",
    linger_ms: int = 5,
    client_id: str = "relwatch-producer",
    **extra: Any,
) -> KafkaProducer:
    from streams.security import client_security

    extra = {**client_security(), **extra}
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id=client_id,
        acks="all",
        retries=10,
        retry_backoff_ms=200,
        max_in_flight_requests_per_connection=1,
        enable_idempotence=False,
        linger_ms=linger_ms,
        compression_type=None if compression == "none" else compression,
        max_request_size=16 * 1024 * 1024,
        request_timeout_ms=30_000,
        **extra,
    )


@contextmanager
def delivering(
    bootstrap_servers: str, **kwargs: Any
) -> Iterator[tuple[KafkaProducer, DeliveryReport]]:
    """A producer and its delivery report; flushes and closes on exit, whatever happens."""
    producer = make_producer(bootstrap_servers, **kwargs)
    report = DeliveryReport()
    try:
        yield producer, report
    finally:
        try:
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)


def send(
    producer: KafkaProducer,
    report: DeliveryReport,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send one record; its outcome lands in ``report`` through callbacks."""
    report.sent += 1
    try:
        future = producer.send(topic, key=key, value=value, headers=headers or [])
    except Exception as exc:  # buffer full, serialisation, closed producer: still counted
        report.on_failure(key, exc)
        return
    future.add_callback(report.on_success)
    future.add_errback(lambda exc: report.on_failure(key, exc))


def deliver_all(
    bootstrap_servers: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]],
    **kwargs: Any,
) -> DeliveryReport:
    """Send ``(key, value)`` records in order, flush, and return what was acknowledged."""
    with delivering(bootstrap_servers, **kwargs) as (producer, report):
        for key, value in records:
            send(producer, report, topic, key, value)
    return report
