"""Pydantic v2 contracts for every relwatch topic.

This module imports neither Faust nor Kafka: producers, stream stages, tests and downstream
consumers all share it. Every model is frozen, forbids unknown fields and carries a
``schema_version`` so that a consumer can tell which contract a record was written under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DatePrecision = Literal["day", "month", "year"]
PublishedSource = Literal["metadata", "text", "ingest"]


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RawArticle(Contract):
    """An article as a producer saw it: `articles.raw`, key = the article's stable id."""

    schema_version: Literal[1] = 1
    id: str = Field(description="Stable id: the corpus id, else a hash of the canonical URL")
    url: str | None = None
    outlet: str | None = None
    lang: str | None = Field(default=None, description="Producer's language hint (secondary)")
    published: str | None = Field(
        default=None, description="Publication time as the source gave it"
    )
    title: str | None = None
    text: str = Field(description="Body: plain text or HTML")
    content_type: Literal["text", "html"] = "text"
    source: str | None = Field(default=None, description="Feed or backfill source id")
    ingested_at: float = Field(description="Unix time the producer pushed the article")


class CleanArticle(Contract):
    """A cleaned, dated, language-tagged article: `articles.clean`, key = article id."""

    schema_version: Literal[1] = 1
    id: str
    url: str | None = None
    outlet: str | None = None
    lang: str = Field(description="Detected language, ISO 639-1")
    lang_hint: str | None = None
    title: str | None = None
    text: str
    published: datetime | None = Field(default=None, description="Resolved publication time (UTC)")
    published_source: PublishedSource = "ingest"
    published_precision: DatePrecision = Field(
        default="day", description="Precision of `published` (metadata may give only a month)"
    )
    published_has_year: bool = Field(
        default=True, description="False when the publication time had to be built without a year"
    )
    content_hash: str = Field(description="sha1 of the normalized text (exact-duplicate key)")
    ingested_at: float
    duplicate_of: str | None = Field(
        default=None, description="Id of the first copy when this article is a repost"
    )
    similarity: float | None = Field(default=None, description="Similarity to duplicate_of")


class Place(Contract):
    name: str
    lat: float
    lon: float
    country: str | None = None


class EventMention(Contract):
    """One development one sentence of one article reports: `events.mentions`."""

    schema_version: Literal[1] = 1
    mention_id: str = Field(description="Stable: hash of article id, sentence and event key")
    article_id: str
    wire_id: str = Field(description="Id of the first copy of the story (reposts share it)")
    url: str | None = None
    outlet: str | None = None
    lang: str
    quote: str = Field(description="The sentence, original language")
    sentence_index: int = 0
    cameo_code: str = Field(description="CAMEO code, e.g. '057'; at least the two-digit root")
    cameo_root: str
    source_actor: str
    target_actor: str
    actors: list[str] = Field(default_factory=list, description="Actor codes involved")
    date: str = Field(
        description="Event date at its precision: YYYY, YYYY-MM or YYYY-MM-DD; for a floating "
        "mention (`date_anchor` set) the partial date itself, equal to `date_anchor`"
    )
    date_precision: DatePrecision = Field(
        description="Precision of `date`; for a floating mention the precision its date will "
        "have once anchored (day, or month for '--MM')"
    )
    date_source: str = Field(default="published", description="How the date was resolved")
    date_anchor: str | None = Field(
        default=None,
        description="Set only for a floating mention: an article without a dated publication "
        "states a partial date (ISO 8601 truncated: '--MM-DD', '---DD' day of month, '-W-D' "
        "ISO weekday, '--MM' month). The timeline infers the article's year and month from a "
        "dated report of a compatible event and resolves all the article's floating mentions "
        "from it; until then the mention stays out of the published timeline",
    )
    background: bool = False
    goldstein: float = 0.0
    tone: float = 0.0
    places: list[Place] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    published: datetime | None = None
    ingested_at: float
    extractor_version: str
    retracted: bool = Field(
        default=False,
        description="Set by `relwatch reprocess`: the current extractor no longer finds this "
        "mention; the timeline drops it",
    )


class MentionEvidence(Contract):
    mention_id: str
    article_id: str
    wire_id: str
    url: str | None = None
    outlet: str | None = None
    lang: str
    quote: str
    date: str
    date_precision: DatePrecision
    date_source: str | None = Field(
        default=None,
        description="Set when the date was inferred across sources: 'anchored:<mention id>' "
        "names the dated mention (of another story) that fixed this undated article's year "
        "and month",
    )


class DateAlternative(Contract):
    date: str
    date_precision: DatePrecision
    support: int
    sources: list[str] = Field(default_factory=list)


class TimelineEntry(Contract):
    """One real-world event with its evidence: the compacted `timeline.entries` topic.

    Key = ``id``, stable across updates, restarts and replays. A tombstone (null value)
    removes an entry; its ``relwatch-merged-into`` header names a survivor, if any.
    """

    schema_version: Literal[1] = 1
    id: str
    date: str
    date_precision: DatePrecision
    date_alternatives: list[DateAlternative] = Field(default_factory=list)
    cameo_code: str
    cameo_root: str
    actors: list[str]
    source_actor: str
    target_actor: str
    summary: str
    significance: float = Field(description="0..1, from intensity and independent support")
    goldstein: float = 0.0
    tone: float = 0.0
    background: bool = False
    places: list[Place] = Field(default_factory=list)
    mentions: list[MentionEvidence]
    sources: list[str] = Field(default_factory=list, description="Outlets citing the event")
    languages: list[str] = Field(default_factory=list)
    mention_count: int
    independent_source_count: int
    confidence: float
    first_seen: float = Field(description="Unix time of the first mention's ingest")
    updated: float = Field(description="Unix time of the latest mention's ingest")
    extractor_version: str


class DuplicateNotice(Contract):
    """A repost: `articles.duplicates`, key = the duplicate's id."""

    schema_version: Literal[1] = 1
    article_id: str
    duplicate_of: str
    kind: Literal["exact", "near"]
    similarity: float
    url: str | None = None
    outlet: str | None = None
    ingested_at: float


class DeadLetter(Contract):
    """A message a stage could not process: `deadletter`, key = the original key."""

    schema_version: Literal[1] = 1
    stage: str
    reason: str
    error_type: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str = Field(description="The original bytes, base64")
    failed_at: float


ALL_MODELS: dict[str, type[Contract]] = {
    "raw_article": RawArticle,
    "clean_article": CleanArticle,
    "duplicate_notice": DuplicateNotice,
    "event_mention": EventMention,
    "timeline_entry": TimelineEntry,
    "dead_letter": DeadLetter,
}
