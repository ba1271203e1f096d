"""A realistic article stream for benchmarks and fault tests.

Articles are built from the sentences of the shared corpora (read at run time from
``../shared``; the project's own ``examples/`` otherwise): each new article mixes 3–14
sentences of one language, so lengths and languages vary like a real feed, plus a paragraph
of 40–120 words drawn at random from that language's vocabulary; a share of the stream are
reposts (exact or lightly edited copies of an earlier article under another outlet), which
dedupe must catch.

The corpora are small (about 170 English, 80 Russian and 70 Bulgarian sentences), so mixes of
whole sentences share most of their word pairs with some earlier mix: on 6,000 articles dedupe
rightly called 48 % of the new mixes near-duplicates, and a "15 % reposts" stream was in truth
56 % duplicates. So each sentence an article uses has a quarter of its words replaced by words
of the same language (``word_share``): its actors and triggers mostly survive, and a new mix is
as new to dedupe as a new article is.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schemas.models import RawArticle

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
_SENTENCE = re.compile(r"(?<=[.!?。])\s+|\n+")


def corpus_files() -> list[Path]:
    found = [
        SHARED / "corpus" / "dev" / "articles.jsonl",
        SHARED / "seeds" / "articles.jsonl",
    ]
    found = [p for p in found if p.exists()]
    return found or [REPO_ROOT / "examples" / "articles.jsonl"]


def load_records(paths: list[Path] | None = None) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for path in paths or corpus_files():
        with open(path, encoding="utf-8") as fh:
            records += [json.loads(line) for line in fh if line.strip()]
    return records


@dataclass(frozen=True)
class StreamItem:
    article: RawArticle
    wire_group: str  # the id of the first copy: reposts share it


_WORD = re.compile(r"\w{3,}")


def _vary(sentence: str, vocab: list[str], rng: random.Random, share: float) -> str:
    """The sentence with about ``share`` of its words replaced by words of the same language."""
    if share <= 0 or not vocab:
        return sentence
    return _WORD.sub(lambda m: rng.choice(vocab) if rng.random() < share else m.group(), sentence)


def build_stream(n: int, seed: int = 7, repost_share: float = 0.15,
                 records: list[dict[str, object]] | None = None,
                 start_ts: float = 1_790_000_000.0, word_share: float = 0.25) -> list[StreamItem]:
    """``n`` articles, deterministic for a given seed; ``word_share`` of the words of each
    corpus sentence an article uses are replaced (see the module docstring)."""
    rng = random.Random(seed)
    records = records if records is not None else load_records()
    pools: dict[str, list[str]] = defaultdict(list)
    vocab: dict[str, list[str]] = defaultdict(list)
    published: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        lang = str(rec.get("lang") or "en")
        text = str(rec.get("text") or "")
        pools[lang] += [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 25]
        vocab[lang] += re.findall(r"\w{3,}", text)
        if rec.get("published"):
            published[lang].append(str(rec["published"]))
    langs = sorted(lang for lang, pool in pools.items() if len(pool) >= 3)
    weights = [len(pools[lang]) for lang in langs]
    items: list[StreamItem] = []
    for i in range(n):
        ts = start_ts + i * 0.01
        if items and rng.random() < repost_share:
            original = items[rng.randrange(max(0, len(items) - 500), len(items))]
            text = original.article.text
            if rng.random() < 0.5:
                text = text + "\n\n(© a syndicating outlet)"
            art = original.article.model_copy(update={
                "id": f"b{i:07d}", "url": f"https://mirror{i % 7}.example.net/{i}",
                "outlet": f"mirror{i % 7}.example.net", "text": text, "ingested_at": ts})
            items.append(StreamItem(art, original.wire_group))
            continue
        lang = rng.choices(langs, weights)[0]
        k = rng.randint(3, max(3, min(14, len(pools[lang]) // 6)))
        sentences = rng.sample(pools[lang], min(k, len(pools[lang])))
        text = "\n".join(_vary(s, vocab[lang], rng, word_share) for s in sentences)
        filler = " ".join(rng.choices(vocab[lang], k=rng.randint(40, 120)))
        text = f"{text}\n\n{filler}."
        pub = rng.choice(published[lang]) if published[lang] and rng.random() < 0.8 else None
        art = RawArticle(id=f"b{i:07d}", url=f"https://news{i % 13}.example.org/{i}",
                         outlet=f"news{i % 13}.example.org", lang=lang, published=pub,
                         title=None, text=text, ingested_at=ts)
        items.append(StreamItem(art, art.id))
    return items


def iter_payloads(items: list[StreamItem]) -> Iterator[tuple[bytes, bytes]]:
    for item in items:
        yield item.article.id.encode(), item.article.model_dump_json().encode()
