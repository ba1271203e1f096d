"""``relwatch reprocess``: correct the live timeline after the extractor improved.

It replays ``articles.raw`` from the beginning through the current pure pipeline (normalize,
dedupe, extract, enrich — in this process), compares the mentions it finds with those the live
timeline holds, and publishes the difference onto ``events.mentions`` as ordinary messages:
mentions that are new or changed (a newer extractor version wins in the merge), and
retractions (``retracted: true``) for mentions the current version no longer finds. The worker
merges them like any other mention, so subscribers of the timeline topic see updates, new
entries and tombstones — corrections, not a reset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from schemas.models import EventMention, RawArticle, TimelineEntry

from .pipeline import InProcessPipeline

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReprocessPlan:
    send: list[EventMention]
    retract: list[EventMention]
    unchanged: int


def plan_reprocess(
    live_entries: Iterable[TimelineEntry],
    live_mentions: Mapping[str, EventMention],
    fresh_mentions: Iterable[EventMention],
) -> ReprocessPlan:
    """What to publish so that the live timeline matches the fresh extraction.

    ``live_mentions`` are the mentions the live state holds (from the mentions topic), used to
    tell changed payloads from unchanged ones; mention ids cited by live entries but missing
    there are still retracted.
    """
    fresh = {m.mention_id: m for m in fresh_mentions}
    cited = {ev.mention_id: (entry, ev) for entry in live_entries for ev in entry.mentions}
    send = [m for mid, m in sorted(fresh.items()) if live_mentions.get(mid) != m]
    retract = []
    for mid in sorted((set(cited) | set(live_mentions)) - set(fresh)):
        old = live_mentions.get(mid)
        if old is not None:
            if not old.retracted:
                retract.append(old.model_copy(update={"retracted": True}))
            continue
        entry, ev = cited[mid]  # only the timeline remembers it: rebuild it from the evidence
        retract.append(
            EventMention(
                mention_id=mid,
                article_id=ev.article_id,
                wire_id=ev.wire_id,
                url=ev.url,
                outlet=ev.outlet,
                lang=ev.lang,
                quote=ev.quote,
                cameo_code=entry.cameo_code,
                cameo_root=entry.cameo_root,
                source_actor=entry.source_actor,
                target_actor=entry.target_actor,
                actors=entry.actors,
                date=ev.date,
                date_precision=ev.date_precision,
                ingested_at=entry.updated,
                extractor_version=entry.extractor_version,
                retracted=True,
            )
        )
    unchanged = sum(1 for mid, m in fresh.items() if live_mentions.get(mid) == m)
    return ReprocessPlan(send, retract, unchanged)


def extract_all(raws: Iterable[RawArticle]) -> list[EventMention]:
    pipeline = InProcessPipeline()
    for raw in raws:
        pipeline.process(raw)
    return pipeline.mentions


def run_reprocess(
    bootstrap: str, topic_name: Mapping[str, str], dry_run: bool = False
) -> ReprocessPlan:
    """Read raw articles, live mentions and the live timeline; publish the plan."""
    from producers.kafka_producer import deliver_all

    from .kafka_io import fold_timeline, read_topic

    raws = []
    for record in read_topic(bootstrap, topic_name["articles.raw"], timeout_s=600):
        try:
            raws.append(RawArticle.model_validate_json(record.value or b""))
        except ValueError:
            continue  # the worker dead-lettered it already
    live_mentions: dict[str, EventMention] = {}
    for record in read_topic(bootstrap, topic_name["events.mentions"], timeout_s=600):
        try:
            mention = EventMention.model_validate_json(record.value or b"")
        except ValueError:
            continue
        live_mentions[mention.mention_id] = mention
    live = fold_timeline(read_topic(bootstrap, topic_name["timeline.entries"], timeout_s=600))
    plan = plan_reprocess(live.values(), live_mentions, extract_all(raws))
    log.info(
        "reprocess_plan",
        articles=len(raws),
        send=len(plan.send),
        retract=len(plan.retract),
        unchanged=plan.unchanged,
        dry_run=dry_run,
    )
    if not dry_run:
        report = deliver_all(
            bootstrap, topic_name["events.mentions"],
            ((m.mention_id.encode(), m.model_dump_json().encode())
             for m in [*plan.send, *plan.retract]),
        )
        if report.failed:
            raise RuntimeError(f"{report.failed} reprocess messages were not delivered")
    return plan
