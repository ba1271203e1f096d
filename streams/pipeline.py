"""The whole pipeline logic in one process, without Kafka.

The same pure functions the agents call, in the same order, over in-memory state: used by
``relwatch eval --in-process``, the benchmarks' in-process rate, and the agents' tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.models import (
    CleanArticle,
    DeadLetter,
    DuplicateNotice,
    EventMention,
    RawArticle,
    TimelineEntry,
)

from . import dedupe, enrich, extract, normalize, timeline
from .deadletter import make_dead_letter


@dataclass
class InProcessPipeline:
    """Pipeline state held in dicts, in place of the worker's Faust tables."""

    dedupe_state: dedupe.DedupeState = field(
        default_factory=lambda: dedupe.DedupeState(exact={}, signatures={})
    )
    timeline_state: timeline.TimelineState = field(
        default_factory=timeline.TimelineState.compact
    )
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: list[DuplicateNotice] = field(default_factory=list)
    mentions: list[EventMention] = field(default_factory=list)

    def process(self, raw: RawArticle) -> list[timeline.TimelineChange]:
        changes, mentions = self._up_to_mentions(raw)
        for mention in mentions:
            changes += timeline.apply_mention(self.timeline_state, mention)
        return changes

    def process_batch(self, raws: Iterable[RawArticle]) -> list[timeline.TimelineChange]:
        """Like :meth:`process` for each article, with their mentions merged in one pass
        (:func:`streams.timeline.apply_mentions`), as the worker's timeline stage merges the
        micro-batches it reads: the same final timeline, fewer intermediate versions."""
        changes: list[timeline.TimelineChange] = []
        batch: list[EventMention] = []
        for raw in raws:
            repost_changes, mentions = self._up_to_mentions(raw)
            changes += repost_changes
            batch += mentions
        return changes + timeline.apply_mentions(self.timeline_state, batch)

    def _up_to_mentions(
        self, raw: RawArticle
    ) -> tuple[list[timeline.TimelineChange], list[EventMention]]:
        """Normalize, dedupe and extract one article: a repost is applied to the timeline at once
        (its changes returned), a unique article's enriched mentions are returned to merge, and
        an article that cannot be normalized is dead-lettered (neither)."""
        try:
            article: CleanArticle = normalize.normalize(raw)
        except Exception as exc:
            self.dead_letters.append(make_dead_letter(
                "normalize", exc, source_topic="articles.raw", partition=None, offset=None,
                key=raw.id.encode(), value=raw.model_dump_json().encode()))
            return [], []
        verdict = dedupe.check_and_remember(article, self.dedupe_state, now=article.ingested_at)
        if verdict.duplicate_of is not None:
            notice = dedupe.duplicate_notice(article, verdict)
            self.duplicates.append(notice)
            return timeline.apply_duplicate(self.timeline_state, notice), []
        mentions = [enrich.enrich(m) for m in extract.extract_events(article)]
        self.mentions += mentions
        return [], mentions

    def entries(self) -> list[TimelineEntry]:
        return sorted(self.timeline_state.timeline().values(), key=lambda e: (e.date, e.id))


def run_in_process(raws: Iterable[RawArticle]) -> list[TimelineEntry]:
    pipeline = InProcessPipeline()
    for raw in raws:
        pipeline.process(raw)
    return pipeline.entries()
