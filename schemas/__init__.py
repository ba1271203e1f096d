"""relwatch topic contracts: pydantic v2 models and the one list of topics."""

from .models import (
    ALL_MODELS,
    CleanArticle,
    DeadLetter,
    DuplicateNotice,
    EventMention,
    MentionEvidence,
    Place,
    RawArticle,
    TimelineEntry,
)
from .topics import ALL_TOPICS, TopicSpec

__all__ = [
    "ALL_MODELS",
    "ALL_TOPICS",
    "CleanArticle",
    "DeadLetter",
    "DuplicateNotice",
    "EventMention",
    "MentionEvidence",
    "Place",
    "RawArticle",
    "TimelineEntry",
    "TopicSpec",
]
