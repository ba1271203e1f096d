from __future__ import annotations

import io
import json

import pytest

from producers.articles import canonical_url, raw_article_from_record, stable_article_id
from producers.jsonl import read_articles


def test_canonical_url_drops_fragment_tracking_and_case() -> None:
    assert (
        canonical_url("HTTPS://Example.COM/a/b/?utm_source=x&id=3#top")
        == "https://example.com/a/b?id=3"
    )


def test_stable_id_prefers_given_id_then_url_then_text() -> None:
    assert stable_article_id({"id": "d001", "url": "https://x.org/a"}) == "d001"
    by_url = stable_article_id({"url": "https://x.org/a?utm_medium=rss"})
    assert by_url == stable_article_id({"url": "https://X.org/a/"})
    assert (
        stable_article_id({"text": "abc"})
        == stable_article_id({"text": "abc"})
        != stable_article_id({"text": "abd"})
    )


def test_record_with_only_text_is_accepted_and_unknown_fields_dropped() -> None:
    raw = raw_article_from_record(
        {"text": "Hello", "distractor": True, "wire_group": None}, ingested_at=5.0
    )
    assert raw.text == "Hello" and raw.url is None and raw.ingested_at == 5.0


def test_html_bodies_are_recognised() -> None:
    raw = raw_article_from_record({"text": "<!DOCTYPE html><html><body>x</body></html>"})
    assert raw.content_type == "html"


def test_read_articles_reports_bad_lines_with_their_numbers() -> None:
    lines = "\n".join(
        [
            json.dumps({"id": "a", "text": "ok"}),
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"id": "b"}),
            "",
            json.dumps({"id": "c", "text": "fine", "published": None}),
        ]
    )
    got = list(read_articles(io.StringIO(lines), "test"))
    ok = [a.id for _, a in got if not isinstance(a, str)]
    bad = {n: r for n, r in got if isinstance(r, str)}
    assert ok == ["a", "c"]
    assert sorted(bad) == [2, 3, 4]
    assert bad[2].startswith("JSONDecodeError")


@pytest.mark.parametrize("field", ["url", "outlet", "lang", "published", "title"])
def test_every_field_but_text_may_be_null(field: str) -> None:
    raw = raw_article_from_record({"text": "t", field: None})
    assert getattr(raw, field) is None
