"""Prometheus metrics of the feed poller and its one-line-per-cycle summary.

Every metric carries a ``feed`` label (the feed's id from FEEDS.yaml, never its URL). The
metrics live in their own registry so that several pollers (or tests) in one process do not
collide; :func:`serve_metrics` exposes that registry over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client import Counter as PromCounter

log = structlog.get_logger(__name__)


@dataclass
class CycleStats:
    """What happened since the last summary line, over all feeds."""

    started: float = field(default_factory=time.monotonic)
    fetches: int = 0
    not_modified: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    new: int = 0
    seen: int = 0
    bytes: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    feeds: set[str] = field(default_factory=set)


class FeedMetrics:
    """Per-feed counters and gauges, plus the running :class:`CycleStats`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.fetches = PromCounter("relwatch_feed_fetches", "Feed fetches attempted",
                                   ["feed"], registry=r)
        self.not_modified = PromCounter("relwatch_feed_not_modified",
                                        "Fetches answered 304 Not Modified", ["feed"], registry=r)
        self.errors = PromCounter("relwatch_feed_errors", "Feed and page errors by kind",
                                  ["feed", "kind"], registry=r)
        self.items_new = PromCounter("relwatch_feed_items_new",
                                     "Items not seen before (queued for delivery)", ["feed"],
                                     registry=r)
        self.items_seen = PromCounter("relwatch_feed_items_seen",
                                      "Items already pushed earlier (skipped)", ["feed"],
                                      registry=r)
        self.bytes = PromCounter("relwatch_feed_bytes", "Body bytes read (feeds and pages)",
                                 ["feed"], registry=r)
        self.pages = PromCounter("relwatch_feed_pages_fetched",
                                 "Linked pages fetched and extracted", ["feed"], registry=r)
        self.delivered = PromCounter("relwatch_feed_items_delivered",
                                     "Records acknowledged by Kafka", ["feed"], registry=r)
        self.delivery_failed = PromCounter("relwatch_feed_delivery_failures",
                                           "Deliveries that failed (kept and retried)", ["feed"],
                                           registry=r)
        self.last_success = Gauge("relwatch_feed_last_success_timestamp_seconds",
                                  "Unix time of the last successful poll", ["feed"], registry=r)
        self.failures = Gauge("relwatch_feed_consecutive_failures",
                              "Consecutive failed polls (drives the backoff)", ["feed"],
                              registry=r)
        self.pending = Gauge("relwatch_feed_outbox_pending",
                             "Records stored but not yet acknowledged", registry=r)
        self._lock = threading.Lock()
        self.cycle = CycleStats()

    # Each recorder updates Prometheus and the cycle at once. Delivery callbacks come from the
    # producer's I/O thread, hence the lock.
    def fetch(self, feed: str) -> None:
        self.fetches.labels(feed).inc()
        with self._lock:
            self.cycle.fetches += 1
            self.cycle.feeds.add(feed)

    def body(self, feed: str, nbytes: int) -> None:
        self.bytes.labels(feed).inc(nbytes)
        with self._lock:
            self.cycle.bytes += nbytes

    def page(self, feed: str, nbytes: int) -> None:
        self.pages.labels(feed).inc()
        self.bytes.labels(feed).inc(nbytes)
        with self._lock:
            self.cycle.bytes += nbytes

    def not_modified_response(self, feed: str) -> None:
        self.not_modified.labels(feed).inc()
        with self._lock:
            self.cycle.not_modified += 1

    def error(self, feed: str, kind: str) -> None:
        self.errors.labels(feed, kind).inc()
        with self._lock:
            self.cycle.errors[kind] += 1
            self.cycle.feeds.add(feed)

    def items(self, feed: str, new: int, seen: int) -> None:
        self.items_new.labels(feed).inc(new)
        self.items_seen.labels(feed).inc(seen)
        with self._lock:
            self.cycle.new += new
            self.cycle.seen += seen

    def success(self, feed: str, at: float) -> None:
        self.last_success.labels(feed).set(at)
        self.failures.labels(feed).set(0)

    def failure_streak(self, feed: str, n: int) -> None:
        self.failures.labels(feed).set(n)

    def delivery(self, feed: str, ok: bool) -> None:
        (self.delivered if ok else self.delivery_failed).labels(feed).inc()
        with self._lock:
            if ok:
                self.cycle.delivered += 1
            else:
                self.cycle.delivery_failed += 1

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0.0 when absent): for tests and the CLI summary."""
        got = self.registry.get_sample_value(name, labels)
        return 0.0 if got is None else got

    def summary(self, *, pending: int, cycle: int, extra: dict[str, Any] | None = None) -> dict[
            str, Any]:
        """Log one structured ``feeds_cycle`` line for the cycle that ends now; start a new one."""
        with self._lock:
            done, self.cycle = self.cycle, CycleStats()
        self.pending.set(pending)
        line: dict[str, Any] = {
            "cycle": cycle,
            "seconds": round(time.monotonic() - done.started, 3),
            "feeds": len(done.feeds),
            "fetches": done.fetches,
            "not_modified": done.not_modified,
            "errors": dict(done.errors),
            "items_new": done.new,
            "items_seen": done.seen,
            "bytes": done.bytes,
            "delivered": done.delivered,
            "delivery_failed": done.delivery_failed,
            "pending": pending,
            **(extra or {}),
        }
        log.info("feeds_cycle", **line)
        return line


def serve_metrics(metrics: FeedMetrics, port: int, host: str = "127.0.0.1") -> Any:
    """Expose ``metrics`` at ``http://host:port/metrics`` (daemon thread); returns the server."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("metrics_listening", host=host, port=server.server_port)
    return server
