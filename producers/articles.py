"""Turn a source record (a corpus line, a file, a feed item) into a RawArticle."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from schemas.models import RawArticle

_RAW_FIELDS = ("url", "outlet", "lang", "published", "title")


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no trailing slash, no tracking parameters."""
    parts = urlsplit(url.strip())
    query = "&".join(
        q for q in parts.query.split("&") if q and not q.lower().startswith(("utm_", "fbclid="))
    )
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, query, ""))


def stable_article_id(record: Mapping[str, Any]) -> str:
    """The record's own id, else a hash of its canonical URL, else a hash of its text."""
    given = record.get("id")
    if isinstance(given, str) and given.strip():
        return given.strip()
    url = record.get("url")
    if isinstance(url, str) and url.strip():
        return "u" + hashlib.sha1(canonical_url(url).encode()).hexdigest()[:20]
    text = str(record.get("text") or "")
    return "t" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def raw_article_from_record(
    record: Mapping[str, Any], *, source: str | None = None, ingested_at: float | None = None
) -> RawArticle:
    """Map a corpus-format record (every field but text optional) onto the raw contract.

    Fields the contract does not know (``distractor``, ``wire_group``...) are dropped here, at
    the edge, so that the topic contract can stay strict.
    """
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError("record has no text")
    fields = {k: record.get(k) for k in _RAW_FIELDS}
    clean_fields = {k: (str(v) if v is not None else None) for k, v in fields.items()}
    content_type = record.get("content_type")
    if content_type not in ("text", "html"):
        head = text.lstrip()[:200].lower()
        content_type = "html" if head.startswith(("<!doctype html", "<html")) else "text"
    return RawArticle(
        id=stable_article_id(record),
        text=text,
        content_type=content_type,
        source=source,
        ingested_at=time.time() if ingested_at is None else ingested_at,
        **clean_fields,
    )
