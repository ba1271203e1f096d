"""A fix for a faust-streaming behaviour that loses table writes when a worker is killed.

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
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.producer import ProducerBuffer

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


def install() -> None:
    """Patch ``ProducerBuffer`` (idempotent)."""
    if _installed["done"]:
        return
    ProducerBuffer._send_pending = _send_pending_counted  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush_completely  # type: ignore[method-assign]
    _installed["done"] = True
