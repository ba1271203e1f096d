"""The worker's HTTP endpoints: health, readiness, metrics, the timeline API and its live stream.

``GET /health``                 the process is up (liveness)
``GET /ready``                  the worker has joined its group and recovered its tables
``GET /metrics``                Prometheus exposition
``GET /timeline?since=&until=&type=&actor=``  current entries, filtered (JSON list)
``GET /timeline/{id}``          one entry, 404 when unknown
``GET /timeline/stream``        every timeline change as Server-Sent Events

The timeline is served from the worker that owns the timeline state (one partition; see
docs/partitioning.md); other workers answer with an empty list and ``owner: false``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aiohttp import web as aioweb
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.models import TimelineEntry

# --- pure ----------------------------------------------------------------------------------


def _date_key(date: str, end: bool) -> str:
    """Widen a partial date to a comparable day string ('2024-06' -> '2024-06-01'/'-31')."""
    parts = date.split("-")
    if len(parts) == 1:
        return f"{parts[0]}-12-31" if end else f"{parts[0]}-01-01"
    if len(parts) == 2:
        return f"{date}-31" if end else f"{date}-01"
    return date


def filter_entries(
    entries: Iterable[TimelineEntry],
    since: str | None = None,
    until: str | None = None,
    event_type: str | None = None,
    actor: str | None = None,
) -> list[TimelineEntry]:
    """Entries overlapping [since, until], whose CAMEO code starts with ``event_type`` and
    that involve ``actor`` (an exact code such as RUSGOV, or a country prefix such as PRK)."""
    result = []
    for entry in entries:
        if since and _date_key(entry.date, end=True) < _date_key(since, end=False):
            continue
        if until and _date_key(entry.date, end=False) > _date_key(until, end=True):
            continue
        if event_type and not (entry.cameo_code.startswith(event_type)
                               or entry.cameo_root == event_type):
            continue
        if actor and not any(a == actor or a.startswith(actor) for a in entry.actors):
            continue
        result.append(entry)
    return sorted(result, key=lambda e: (e.date, e.id))


def sse_event(kind: str, entry_id: str, entry_json: str | None) -> bytes:
    """One server-sent event; ``entry_json`` is the entry as already serialised for the topic
    (spliced in, not parsed and dumped again)."""
    head = json.dumps({"kind": kind, "id": entry_id}, ensure_ascii=False)[:-1]
    data = f'{head}, "entry": {entry_json if entry_json is not None else "null"}}}'
    return f"event: {kind}\nid: {entry_id}\ndata: {data}\n\n".encode()


# --- live change feed ----------------------------------------------------------------------


class ChangeBroadcast:
    """Fan-out of timeline changes to SSE subscribers; slow subscribers lose old events."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = maxsize
        self.subscribers: set[asyncio.Queue[bytes]] = set()

    @property
    def listening(self) -> bool:
        """Whether anyone subscribes (events are not even built otherwise)."""
        return bool(self.subscribers)

    def publish(self, message: bytes) -> None:
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    def subscribe(self) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self.maxsize)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self.subscribers.discard(queue)


broadcast = ChangeBroadcast()


def heap_census(limit: int = 40) -> list[tuple[str, int]]:
    """The most numerous kinds of live objects the garbage collector tracks (module.type,
    count): two censuses some time apart show what a growing worker is made of."""
    counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    return counts.most_common(limit)


class AllocationTracer:
    """Where Python memory grew since tracing started (tracemalloc, on demand: it slows every
    allocation, so a worker runs without it until an operator asks).

    The heap census counts objects the garbage collector tracks; strings, bytes and numpy
    buffers are not among them. This sees every allocation made through Python's allocator,
    by the line that made it.
    """

    def __init__(self) -> None:
        self._baseline: tracemalloc.Snapshot | None = None
        self._frames = 1

    @property
    def tracing(self) -> bool:
        return self._baseline is not None and tracemalloc.is_tracing()

    def start(self, frames: int = 1) -> None:
        """Trace from now, keeping ``frames`` callers of each allocation (more: slower, and
        :meth:`growth` groups by whole call stacks, so that a line inside a library such as
        ``json`` is told apart by who called it)."""
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        tracemalloc.start(frames)
        self._frames = frames
        self._baseline = tracemalloc.take_snapshot()

    def stop(self) -> None:
        self._baseline = None
        tracemalloc.stop()

    def growth(self, limit: int = 30) -> list[dict[str, Any]]:
        """The lines whose live allocations grew most since :meth:`start` (KiB and blocks)."""
        if self._baseline is None:
            raise RuntimeError("allocation tracing is not running")
        now = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        stats = now.compare_to(self._baseline, "lineno" if self._frames == 1 else "traceback")
        return [{"where": f"{st.traceback[-1].filename}:{st.traceback[-1].lineno}",  # newest
                 "stack": [f"{f.filename}:{f.lineno}" for f in st.traceback],
                 "grew_kib": round(st.size_diff / 1024, 1), "kib": round(st.size / 1024, 1),
                 "grew_blocks": st.count_diff}
                for st in stats[:limit]]


allocations = AllocationTracer()


# --- Faust pages ---------------------------------------------------------------------------


def register_pages(app: Any, current_entries: Any, is_ready: Any) -> None:
    """Add the pages to the Faust app. ``current_entries()`` returns this worker's entries."""

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok = bool(is_ready())
        return web.json({"ready": ok}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return aioweb.Response(body=generate_latest(),
                               headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/debug/heap")
    async def debug_heap(web: Any, request: Any) -> Any:
        limit = int(request.query.get("limit", "40"))
        return web.json([{"type": name, "count": n} for name, n in heap_census(limit)])

    @app.page("/debug/allocations")
    async def debug_allocations(web: Any, request: Any) -> Any:
        q = request.query
        if q.get("start"):
            allocations.start(frames=max(1, min(int(q.get("frames", "1")), 25)))
            return web.json({"tracing": True})
        if q.get("stop"):
            allocations.stop()
            return web.json({"tracing": False})
        if not allocations.tracing:
            return web.json({"error": "not tracing: GET /debug/allocations?start=1 first"},
                            status=409)
        return web.json(allocations.growth(int(q.get("limit", "30"))))

    @app.page("/timeline")
    async def timeline_list(web: Any, request: Any) -> Any:
        q = request.query
        entries = filter_entries(current_entries(), q.get("since"), q.get("until"),
                                 q.get("type"), q.get("actor"))
        return web.json([json.loads(e.model_dump_json()) for e in entries])

    @app.page("/timeline/stream")
    async def timeline_stream(web: Any, request: Any) -> Any:
        response = aioweb.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "Connection": "keep-alive"})
        await response.prepare(request)
        queue = broadcast.subscribe()
        try:
            await response.write(b": relwatch timeline changes\n\n")
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    message = b": keep-alive\n\n"
                await response.write(message)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            broadcast.unsubscribe(queue)
        return response

    @app.page("/timeline/{entry_id}")
    async def timeline_entry(web: Any, request: Any, entry_id: str) -> Any:
        for entry in current_entries():
            if entry.id == entry_id:
                return web.json(json.loads(entry.model_dump_json()))
        return web.json({"error": "not found", "id": entry_id}, status=404)
