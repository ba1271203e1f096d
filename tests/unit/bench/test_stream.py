"""The benchmark stream is what it says: new mixes are new to dedupe, reposts are reposts."""

from __future__ import annotations

from bench.stream import build_stream
from streams import dedupe, normalize


def test_new_mixes_are_unique_to_dedupe_and_reposts_are_caught() -> None:
    items = build_stream(1200, seed=4)
    state = dedupe.DedupeState(exact={}, signatures={})
    mixes_called_duplicates = reposts = reposts_caught = 0
    for item in items:
        article = normalize.normalize(item.article)
        verdict = dedupe.check_and_remember(article, state, now=article.ingested_at)
        is_repost = item.wire_group != item.article.id
        reposts += is_repost
        reposts_caught += is_repost and verdict.duplicate_of == item.wire_group
        mixes_called_duplicates += not is_repost and verdict.is_duplicate
    new_mixes = len(items) - reposts
    assert 0.10 < reposts / len(items) < 0.20
    assert reposts_caught == reposts
    # the whole-sentence mixes of session 3 were called duplicates 48 % of the time
    assert mixes_called_duplicates / new_mixes < 0.03
