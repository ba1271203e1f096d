"""The thin Faust agents: decode, call the stage's pure function, send; dead-letter on failure.

Each agent reads raw bytes (see ``streams.app``), so that any payload it cannot handle goes to
the dead-letter topic with its original bytes and the worker keeps running. State lives in
changelog-backed Faust tables that the pure functions receive as plain mappings.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from schemas.models import CleanArticle, DuplicateNotice, EventMention, RawArticle

from . import dedupe, enrich, extract, normalize, timeline
from .app import (
    app,
    archive_topic,
    clean_topic,
    duplicates_topic,
    mentions_topic,
    raw_topic,
    settings,
    timeline_topic,
    unique_topic,
)
from .deadletter import send_dead_letter
from .metrics import (
    DUPLICATES,
    ERRORS,
    INGEST_TO_TIMELINE,
    MENTIONS,
    NEWEST_ENTRY_TS,
    PROCESSED,
    TIMELINE_CHANGES,
    TIMELINE_SIZE,
)

log = structlog.get_logger(__name__)

# --- state ---------------------------------------------------------------------------------
dedupe_exact = app.Table("dedupe-exact", default=None, partitions=1, value_serializer="json")
dedupe_bands = app.Table("dedupe-bands", default=None, partitions=1, value_serializer="json")
dedupe_signatures = app.Table(
    "dedupe-signatures", default=None, partitions=1, value_serializer="json"
)
timeline_mentions = app.Table(
    "timeline-mentions", default=None, partitions=1, value_serializer="json"
)
timeline_entries = app.Table("timeline-entries", default=None, partitions=1, value_serializer="json")
timeline_reposts = app.Table("timeline-reposts", default=None, partitions=1, value_serializer="json")

EVICT_EVERY_S = 60.0
_last_eviction = {"dedupe": 0.0, "timeline": 0.0}


async def _fail(stage: str, event: Any, exc: BaseException) -> None:
    from .deadletter import failure_reason

    ERRORS.labels(stage=stage, reason=failure_reason(exc)).inc()
    await send_dead_letter(stage, event, exc)


# --- stage 1: normalize --------------------------------------------------------------------
@app.agent(raw_topic, name="normalize")
async def normalize_agent(stream: Any) -> None:
    async for event in stream.events():
        try:
            raw = RawArticle.model_validate_json(event.value)
            article = normalize.normalize(raw)
        except Exception as exc:
            await _fail("normalize", event, exc)
            continue
        PROCESSED.labels(stage="normalize").inc()
        await clean_topic.send(key=article.id.encode(), value=article.model_dump_json().encode())


# --- stage 1: dedupe -----------------------------------------------------------------------
def _dedupe_state() -> dedupe.DedupeState:
    return dedupe.DedupeState(
        exact=dedupe_exact, bands=dedupe_bands, signatures=dedupe_signatures
    )


@app.agent(clean_topic, name="dedupe")
async def dedupe_agent(stream: Any) -> None:
    async for event in stream.events():
        try:
            article = CleanArticle.model_validate_json(event.value)
            state = _dedupe_state()
            now = time.time()
            if now - _last_eviction["dedupe"] > EVICT_EVERY_S:
                dedupe.evict_older_than(state, now - settings.dedupe_window_days * 86400)
                _last_eviction["dedupe"] = now
            verdict = dedupe.check_and_remember(article, state, now=article.ingested_at)
        except Exception as exc:
            await _fail("dedupe", event, exc)
            continue
        PROCESSED.labels(stage="dedupe").inc()
        if verdict.duplicate_of is not None:
            DUPLICATES.labels(kind=verdict.kind).inc()
            notice = dedupe.duplicate_notice(article, verdict)
            await duplicates_topic.send(
                key=article.id.encode(), value=notice.model_dump_json().encode()
            )
        else:
            await unique_topic.send(key=article.id.encode(), value=event.value)


# --- stage 2: extract and enrich -----------------------------------------------------------
@app.agent(unique_topic, name="extract")
async def extract_agent(stream: Any) -> None:
    async for event in stream.events():
        try:
            article = CleanArticle.model_validate_json(event.value)
            mentions = [enrich.enrich(m) for m in extract.extract_events(article)]
        except Exception as exc:
            await _fail("extract", event, exc)
            continue
        PROCESSED.labels(stage="extract").inc()
        MENTIONS.inc(len(mentions))
        for mention in mentions:
            await mentions_topic.send(
                key=mention.mention_id.encode(), value=mention.model_dump_json().encode()
            )


# --- timeline sink -------------------------------------------------------------------------
def _timeline_state() -> timeline.TimelineState:
    return timeline.TimelineState(
        mentions=timeline_mentions, entries=timeline_entries, reposts=timeline_reposts
    )


async def _publish(changes: list[timeline.TimelineChange]) -> None:
    now = time.time()
    for change in changes:
        TIMELINE_CHANGES.labels(kind=change.kind).inc()
        key = change.entry_id.encode()
        if change.kind == "upsert" and change.entry is not None:
            await timeline_topic.send(key=key, value=change.entry.model_dump_json().encode())
            INGEST_TO_TIMELINE.observe(max(0.0, now - change.entry.updated))
            NEWEST_ENTRY_TS.set(now)
            continue
        if change.kind == "expire" and change.entry is not None:
            await archive_topic.send(key=key, value=change.entry.model_dump_json().encode())
        headers = [("relwatch-change", change.kind.encode())]
        if change.merged_into:
            headers.append(("relwatch-merged-into", change.merged_into.encode()))
        await timeline_topic.send(key=key, value=None, headers=headers)
    TIMELINE_SIZE.set(len(timeline_entries))


@app.agent(mentions_topic, name="timeline")
async def timeline_agent(stream: Any) -> None:
    async for event in stream.events():
        try:
            mention = EventMention.model_validate_json(event.value)
            state = _timeline_state()
            changes = timeline.apply_mention(state, mention)
            now = time.time()
            if now - _last_eviction["timeline"] > EVICT_EVERY_S:
                changes += timeline.expire(state, settings.timeline_horizon_days, now)
                _last_eviction["timeline"] = now
        except Exception as exc:
            await _fail("timeline", event, exc)
            continue
        PROCESSED.labels(stage="timeline").inc()
        await _publish(changes)


@app.agent(duplicates_topic, name="reposts")
async def reposts_agent(stream: Any) -> None:
    async for event in stream.events():
        try:
            notice = DuplicateNotice.model_validate_json(event.value)
            changes = timeline.apply_duplicate(_timeline_state(), notice)
        except Exception as exc:
            await _fail("reposts", event, exc)
            continue
        PROCESSED.labels(stage="reposts").inc()
        await _publish(changes)
