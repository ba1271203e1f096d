"""The producer-buffer flush that Faust runs before committing offsets must not return while
table changelog records are still buffered or being handed over (streams/faust_fixes.py)."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

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
