"""Every relwatch topic, named once.

Partitioning (see docs/partitioning.md): the stateless, expensive stages (normalize, extract)
read topics with several partitions so workers share them; the two stages whose state must see
every article (dedupe) or every mention (timeline merge) read single-partition topics, so that
exactly one worker owns that state at a time and a rebalance moves it whole, with its changelog.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import (
    CleanArticle,
    Contract,
    DeadLetter,
    DuplicateNotice,
    EventMention,
    RawArticle,
    TimelineEntry,
)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    value_model: type[Contract]
    key: str
    partitions: int
    compacted: bool = False
    description: str = ""


ARTICLES_RAW = TopicSpec(
    "articles.raw", RawArticle, "article id", 1,
    description="Articles as producers pushed them (one partition by default: a total order "
    "makes the first-copy choice of dedupe deterministic across restarts and replays)",
)
ARTICLES_CLEAN = TopicSpec(
    "articles.clean", CleanArticle, "article id", 1,
    description="Cleaned and dated articles, before dedupe (one partition: dedupe sees all); "
    "a record may carry the text's near-duplicate fingerprint in a FINGERPRINT_HEADER header",
)
FINGERPRINT_HEADER = "relwatch-fingerprint"
"""Header of an ``articles.clean`` record: the text's shingle count and MinHash signature as
the normalize stage computed them (``streams.dedupe.text_fingerprint``), so that dedupe does not;
absent or unreadable, dedupe computes them from the text."""
ARTICLES_UNIQUE = TopicSpec(
    "articles.unique", CleanArticle, "article id", 4,
    description="First copies only: the input of event extraction",
)
ARTICLES_DUPLICATES = TopicSpec(
    "articles.duplicates", DuplicateNotice, "article id", 1,
    description="Reposts, each naming the first copy",
)
EVENTS_MENTIONS = TopicSpec(
    "events.mentions", EventMention, "mention id", 1,
    description="Extracted and enriched event mentions (one partition: the merge sees all)",
)
TIMELINE_ENTRIES = TopicSpec(
    "timeline.entries", TimelineEntry, "entry id", 1, compacted=True,
    description="The rolling timeline: one record per change, tombstones for removals",
)
TIMELINE_ARCHIVE = TopicSpec(
    "timeline.archive", TimelineEntry, "entry id", 1, compacted=True,
    description="Entries expired from the rolling window",
)
DEADLETTER = TopicSpec(
    "deadletter", DeadLetter, "original key", 1,
    description="Messages a stage could not process, with the reason and the original bytes",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    ARTICLES_RAW,
    ARTICLES_CLEAN,
    ARTICLES_UNIQUE,
    ARTICLES_DUPLICATES,
    EVENTS_MENTIONS,
    TIMELINE_ENTRIES,
    TIMELINE_ARCHIVE,
    DEADLETTER,
)

# The topics the worker's consumer group reads (its lag is measured on these).
WORKER_INPUT_TOPICS: tuple[TopicSpec, ...] = (
    ARTICLES_RAW,
    ARTICLES_CLEAN,
    ARTICLES_UNIQUE,
    ARTICLES_DUPLICATES,
    EVENTS_MENTIONS,
)
